"""Portable CPU numerics: the vector ISA of every numeric library, pinned before the library loads.

torch's elementwise kernels (ATen), oneDNN (convolutions), MKL (BLAS/LAPACK behind torch), OpenBLAS (behind
NumPy and SciPy) and NumPy's own SIMD loops each pick kernels for the CPU they find.  On an AVX-512 machine they
pick other kernels than on an AVX2 one, and the floats differ in the last bits, which a training run amplifies
into different metrics.  Each library reads an environment variable when it initialises, so pinning means
setting those variables before torch or NumPy is imported: ``import suite`` does it (:func:`apply`), and the
sweep's worker processes, DDP ranks and Ray tasks inherit or receive the same variables.

Levels, chosen by ``SUITE_NUMERICS`` (or ``--numerics``):

- ``avx2`` (default): every library limited to AVX2.  The committed records were made on an AVX2 host, so an
  AVX2 host computes the same floats pinned or not, and an AVX-512 host computes what the AVX2 host did.
- ``default``: the lowest level: ATen's non-vectorised kernels, oneDNN SSE4.1, OpenBLAS Nehalem, NumPy's
  baseline SIMD and MKL's ``COMPATIBLE`` branch, the one MKL promises gives the same results on Intel and
  AMD CPUs.  Slow; for comparing across CPU vendors.
- ``native``: nothing pinned (each library's fastest kernels); records then match only records of the same
  CPU.

MKL's ISA branches (``MKL_CBWR=AVX2`` and friends) are honoured on Intel CPUs only; on AMD MKL takes its own
AVX2 path whatever is set, and ``MKL_CBWR`` there only switches between that path's variants (it changed the
committed records on the AMD host that made them).  So ``avx2`` limits MKL's instructions but leaves its branch
alone, and every record stores whether MKL ran its Intel or its non-Intel path: the two are compared as
different numerics.  What each library actually runs is read back (:func:`effective`) into every record's
provenance, and a run whose pin did not take effect (torch imported before ``suite``) fails with one line.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
import tempfile
from typing import Any

ENV_VAR = "SUITE_NUMERICS"
DEFAULT_LEVEL = "avx2"
_AVX512 = "X86_V4 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
LEVELS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": _AVX512,
    },
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_CORETYPE": "Nehalem",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 AVX AVX2 FMA3 F16C " + _AVX512,
    },
    "native": {},
}
# What each pinned library must report back when the pin took effect.
EXPECTED: dict[str, dict[str, str]] = {
    "avx2": {"aten": "AVX2", "onednn": "Intel AVX2", "openblas": "Haswell"},
    "default": {"aten": "DEFAULT", "onednn": "Intel SSE4.1", "openblas": "Nehalem", "mkl_cbwr": "COMPATIBLE"},
}
_CBWR = {0: "OFF", 1: "BRANCH_OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
         9: "AVX", 10: "AVX2", 12: "AVX512", 14: "AVX512_E1"}


class NumericsError(RuntimeError):
    """The requested pin is unknown or did not take effect; the message is one line."""


def requested_level() -> str:
    """The level asked for by ``SUITE_NUMERICS`` (default ``avx2``); one-line error for an unknown one."""
    level = os.environ.get(ENV_VAR, DEFAULT_LEVEL).strip().lower() or DEFAULT_LEVEL
    if level not in LEVELS:
        raise NumericsError(f"{ENV_VAR}={level!r}: expected one of {', '.join(LEVELS)}")
    return level


def pinned_env(level: str | None = None) -> dict[str, str]:
    """The environment variables that pin ``level`` (what a child process needs, e.g. a Ray task)."""
    level = level or requested_level()
    env = dict(LEVELS[level])
    # A host that sets OPENBLAS_CORETYPE itself does so because other kernels are broken on its CPU: keep it
    # (the effective kernel is recorded and compared, so a different one shows up as different numerics).
    if "OPENBLAS_CORETYPE" in env and os.environ.get("OPENBLAS_CORETYPE") and not _set_by_us("OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    return {ENV_VAR: level, **env}


def _set_by_us(name: str) -> bool:
    return name in os.environ.get("_SUITE_NUMERICS_SET", "").split(",")


def apply(level: str | None = None) -> str:
    """Set the pinning variables of ``level`` in ``os.environ`` (for this process and every child); returns it.

    Variables a previous :func:`apply` set are replaced, so switching levels leaves nothing of the old one.
    Only takes effect in this process for libraries not yet imported; :func:`problems` tells.
    """
    level = level or requested_level()
    if level not in LEVELS:
        raise NumericsError(f"{ENV_VAR}={level!r}: expected one of {', '.join(LEVELS)}")
    env = pinned_env(level)
    for name in os.environ.get("_SUITE_NUMERICS_SET", "").split(","):
        if name and name not in env:
            os.environ.pop(name, None)
    os.environ.update(env)
    os.environ["_SUITE_NUMERICS_SET"] = ",".join(sorted(env))
    return level


def effective() -> dict[str, Any]:
    """What every numeric library of this process actually runs (imports torch and NumPy)."""
    import numpy
    import torch

    return {
        "aten": torch.backends.cpu.get_cpu_capability(),
        "onednn": _onednn_isa(),
        **_mkl_state(),
        "openblas": _openblas_architecture(),
        "numpy_simd": _numpy_simd(numpy),
    }


def describe(level: str | None = None) -> dict[str, Any]:
    """The record's ``numerics`` block: the level asked for and what each library runs."""
    level = level or requested_level()
    return {"level": level, **effective()}


def identity(numerics: dict[str, Any] | None) -> str | None:
    """Comparable form of a record's ``numerics`` block: equal identities promise bit-identical floats."""
    if not numerics:
        return None
    keys = ("level", "aten", "onednn", "mkl_path", "mkl_cbwr", "openblas", "numpy_simd")
    return " ".join(f"{k}={numerics.get(k)}" for k in keys)


def problems(level: str | None = None) -> list[str]:
    """Why the pin of ``level`` is not in effect in this process (empty when it is, or for ``native``)."""
    level = level or requested_level()
    state = effective()
    expected = dict(EXPECTED.get(level, {}))
    if "openblas" in expected and pinned_env(level).get("OPENBLAS_CORETYPE") != LEVELS[level]["OPENBLAS_CORETYPE"]:
        expected["openblas"] = pinned_env(level)["OPENBLAS_CORETYPE"]  # the host's own coretype, kept on purpose
    found = []
    for name, want in expected.items():
        got = state.get(name)
        values = got if isinstance(got, list) else [got]
        if got is None:
            continue  # not readable in this process (e.g. oneDNN's verbose header already printed): recorded as None
        if got == [] or any(str(v).lower() != want.lower() for v in values):
            found.append(f"{name} runs {got!r}, pinned {want!r}")
    banned = {"avx2": ("X86_V4", "AVX512"), "default": ("X86_V3", "X86_V4", "AVX")}.get(level, ())
    if banned and any(f.startswith(banned) for f in state["numpy_simd"]):
        found.append(f"numpy_simd runs {state['numpy_simd']}, pinned below {banned[0]}")
    return found


def check_in_effect(level: str | None = None) -> None:
    """Raise a one-line :class:`NumericsError` when the pin of ``level`` is not what this process runs."""
    level = level or requested_level()
    found = problems(level)
    if found:
        raise NumericsError(f"numerics pin {level!r} not in effect: {'; '.join(found)} (torch or numpy imported "
                            f"before `import suite`? a CPU without the pinned ISA needs {ENV_VAR}=default)")


@functools.lru_cache(maxsize=1)
def _onednn_isa() -> str | None:
    """The ISA oneDNN dispatches to, read from its verbose header (printed once per process, to C's stdout)."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.no_grad():
                torch.nn.functional.conv2d(torch.ones(8, 3, 16, 16), torch.ones(4, 3, 3, 3))
            ctypes.CDLL(None).fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    match = re.search(r"cpu,isa:([^\n,]+)", text)
    return match.group(1).strip() if match else None


def _mkl_state() -> dict[str, Any]:
    """MKL's vendor path (Intel / non-Intel) and conditional-reproducibility branch, through its service API."""
    import torch

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        intel = lib.mkl_serv_intel_cpu_true()
        branch = lib.mkl_serv_cbwr_get(1)  # MKL_CBWR_BRANCH
    except (OSError, AttributeError):
        return {"mkl_path": None, "mkl_cbwr": None}
    return {"mkl_path": "intel" if intel == 1 else "non-intel", "mkl_cbwr": _CBWR.get(branch, str(branch))}


def _openblas_architecture() -> list[str]:
    """Kernel family of every OpenBLAS loaded (NumPy's and SciPy's), via threadpoolctl when installed."""
    import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS, which FID and the statistics use)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    infos = threadpool_info()
    return sorted({str(info.get("architecture")) for info in infos if info.get("internal_api") == "openblas"})


def _numpy_simd(numpy: Any) -> list[str]:
    """NumPy's dispatched SIMD targets that this process uses (after NPY_DISABLE_CPU_FEATURES)."""
    core = getattr(numpy, "_core", None) or numpy.core
    umath = core._multiarray_umath
    return [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]


def cpu_flags() -> list[str]:
    """The CPU's vector-ISA flags (avx, avx2, avx512*, fma, ...) from /proc/cpuinfo, for provenance."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse", "amx")))
    except OSError:
        pass
    return []
