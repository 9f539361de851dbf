"""CPU-kernel pinning (suite.numerics): applied in every worker, recorded, part of the run's identity, and enforced.

The levels are told apart through what each library reports back (ATen's capability, oneDNN's verbose ISA,
OpenBLAS's kernel family, MKL's reproducibility branch, NumPy's dispatch), so these tests see a pin take effect
on any x86-64 host: ``default`` is below every CPU this project runs on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite import numerics
from suite.runner import Job, run_one
from suite.store import RunKey, config_hash
from tests.records import make_record

ROOT = Path(__file__).resolve().parent.parent
TOY = ["tests/specs/toy.yaml", "--profile", "smoke", "--seeds", "1", "--variants", "fast", "--envs", "toy-a",
       "--workers", "1"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _record(root: Path) -> dict:
    (path,) = (root / "smoke" / "toy" / "runs").glob("fast__toy-a__s0.json")
    return json.loads(path.read_text())


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64 ISA levels")
def test_sweep_workers_run_the_pinned_kernels_and_the_level_is_part_of_the_run(tmp_path):
    root = str(tmp_path / "results")
    low = _cli("run", *TOY, "--results", root, "--no-report", "--numerics", "default")
    assert low.returncode == 0, low.stderr[-2000:]
    used = _record(Path(root))["provenance"]["numerics"]
    assert used["level"] == "default" and used["aten"] == "DEFAULT" and used["onednn"] == "Intel SSE4.1"
    assert used["openblas"] == ["Nehalem"] and used["mkl_cbwr"] == "COMPATIBLE"
    assert not any(f.startswith(("X86_V3", "X86_V4", "AVX")) for f in used["numpy_simd"])

    pinned = _cli("run", *TOY, "--results", root, "--no-report", env={"SUITE_NUMERICS": "avx2"})
    assert pinned.returncode == 0 and "1 to run" in pinned.stdout + pinned.stderr  # another level: not a resume
    record = _record(Path(root))
    used = record["provenance"]["numerics"]
    assert used["level"] == "avx2" and used["aten"] == "AVX2" and used["onednn"] == "Intel AVX2"
    assert used["openblas"] == ["Haswell"] and not any(f.startswith(("X86_V4", "AVX512")) for f in used["numpy_simd"])
    assert "avx2" in record["provenance"]["cpu_isa"]

    again = _cli("run", *TOY, "--results", root, "--no-report")  # default level is avx2: resumes
    assert "1 already recorded" in again.stdout + again.stderr

    check = _cli("check", *TOY, "--results", root, "--numerics", "default")
    assert check.returncode == 1
    assert "only promised bit-identical under the same numerics" in check.stdout + check.stderr
    assert "level=avx2" in check.stdout + check.stderr and "level=default" in check.stdout + check.stderr


def test_a_run_whose_pin_is_not_in_effect_fails_with_one_line():
    # this process pinned avx2 when `suite` was imported; a job asking for `default` cannot get it here
    assert numerics.problems("avx2") == []
    job = Job(RunKey("toy", "fast", "toy-a", 0, "smoke"), "toy_regression", {"steps": 5, "lr": 0.1, "mode": "ok",
              "sleep": 0.0}, config_hash("toy_regression", "toy-a", {}), 60.0, numerics="default")
    record = run_one(job)
    assert record["status"] == "failed"
    last = record["reason"].strip().splitlines()[-1]
    assert "NumericsError: numerics pin 'default' not in effect" in last and "aten runs 'AVX2'" in last


def test_apply_switches_levels_without_leftovers(monkeypatch):
    for name in (*numerics.LEVELS["default"], numerics.ENV_VAR, "_SUITE_NUMERICS_SET"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    numerics.apply("default")
    assert os.environ["MKL_CBWR"] == "COMPATIBLE" and os.environ["ATEN_CPU_CAPABILITY"] == "default"
    numerics.apply("avx2")
    assert "MKL_CBWR" not in os.environ and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    numerics.apply("native")
    assert "ATEN_CPU_CAPABILITY" not in os.environ and os.environ[numerics.ENV_VAR] == "native"
    monkeypatch.setenv(numerics.ENV_VAR, "avx9000")
    with pytest.raises(numerics.NumericsError, match="SUITE_NUMERICS='avx9000': expected one of avx2, default"):
        numerics.requested_level()


def test_identity_separates_what_changes_floats():
    base = {"level": "avx2", "aten": "AVX2", "onednn": "Intel AVX2", "mkl_path": "non-intel", "mkl_cbwr": "BRANCH_OFF",
            "openblas": ["Haswell"], "numpy_simd": ["X86_V3"]}
    assert numerics.identity(base) == numerics.identity(dict(base))
    assert numerics.identity(base) != numerics.identity({**base, "mkl_path": "intel"})
    assert numerics.identity(base) != numerics.identity({**base, "aten": "AVX512", "level": "native"})
    assert numerics.identity(None) is None


def test_check_explains_numerics_differences_and_legacy_records():
    from suite.check import numerics_note

    made = {"level": "avx2", "aten": "AVX2", "onednn": "Intel AVX2", "mkl_path": "non-intel", "mkl_cbwr": "BRANCH_OFF",
            "openblas": ["Haswell"], "numpy_simd": ["X86_V3"]}
    record = make_record(provenance={"numerics": made, "cpu": "AMD EPYC (family 23 model 49)"})
    assert numerics_note(record, record) is None
    intel = make_record(provenance={"numerics": {**made, "mkl_path": "intel"}})
    assert "mkl_path=intel" in numerics_note(record, intel) and "SUITE_NUMERICS" in numerics_note(record, intel)
    legacy = make_record(provenance={"cpu": "AMD EPYC"})
    assert numerics_note(legacy, record).startswith("committed records predate numerics pinning (made unpinned on")
