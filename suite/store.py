"""Results store: one JSON record per run, written atomically, verified on read.

Layout: ``<root>/<profile>/<task>/runs/<variant>__<env>__s<seed>.json``; the run's live folder (checkpoint and
live log, not records) is ``<root>/<profile>/<task>/live/<variant>__<env>__s<seed>/``.  A record
carries a sha256 of its own canonical content (``record_hash``); reading checks the
schema, every field's type and that hash, so a truncated or hand-edited file is reported by path and
re-run instead of being used.  Records are :class:`suite.record.RunRecord` (format: ``docs/records.md``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.record import (  # noqa: F401 (re-exported: the store's API since before records had a type)
    SCHEMA_VERSION,
    STATUSES,
    CorruptRecord,
    Provenance,
    RunRecord,
    canonical_json,
    jsonable,
    seal,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
TEMP_PREFIX = ".tmp-"  # a record being written; never a record: every reader skips dot-files
STALE_TEMP_AGE_S = 3600  # a temp file this old is an abandoned write even when its writer's pid is reused


@dataclass(frozen=True)
class RunKey:
    task: str
    variant: str
    env: str
    seed: int
    profile: str

    @property
    def label(self) -> str:
        return f"{self.task}/{self.variant}/{self.env}/seed{self.seed}"


def slug(text: str) -> str:
    """File-name-safe form of an env or variant name (``MinAtar/Breakout-v1`` -> ``MinAtar-Breakout-v1``)."""
    return _UNSAFE.sub("-", text).strip("-")


def runs_folder(root: Path, profile: str, task: str) -> Path:
    return Path(root) / profile / task / "runs"


def record_path(root: Path, key: RunKey) -> Path:
    return runs_folder(root, key.profile, key.task) / f"{slug(key.variant)}__{slug(key.env)}__s{key.seed}.json"


def live_path(root: Path, key: RunKey) -> Path:
    """The run's live folder (checkpoint, ``metrics.csv``): ``<root>/<profile>/<task>/live/<variant>__<env>__s<seed>``.

    Not a record: git-ignored, and its checkpoint is deleted once the run's record is written.
    """
    return Path(root) / key.profile / key.task / "live" / f"{slug(key.variant)}__{slug(key.env)}__s{key.seed}"


def config_hash(baseline: str, env: str, hparams: dict[str, Any]) -> str:
    """Hash of what determines a run apart from its seed."""
    content = canonical_json({"baseline": baseline, "env": env, "hparams": hparams})
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _temp_prefix() -> str:
    # The writer's host and pid in the name let a later sweep tell an abandoned write from a live one.
    return f"{TEMP_PREFIX}{slug(platform.node()) or 'host'}-{os.getpid()}-"


def write_record(root: Path, record: RunRecord, before_rename: Callable[[], None] | None = None) -> Path:
    """Seal and write a record atomically (temp file in the same folder + fsync + rename + fsync of the folder).

    ``before_rename`` runs just before the record becomes visible; a sweep worker uses it to die
    instead of publishing a record once its sweep is gone.
    """
    record = seal(record)
    path = record_path(root, RunKey(record.task, record.variant, record.env, record.seed, record.profile))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(), suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record.to_json(), handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself survives a power loss only once the folder is on disk
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open a folder (Windows) have no folder fsync either
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def record_files(folder: Path) -> list[Path]:
    """The record files of a ``runs/`` folder: ``*.json`` minus dot-files (temp files of writes in progress)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files whose writer is gone (this host, dead pid) or that are over an hour old."""
    removed = []
    host = slug(platform.node()) or "host"
    for path in folder.glob(TEMP_PREFIX + "*") if folder.is_dir() else []:
        match = re.match(re.escape(TEMP_PREFIX) + r"(.*)-(\d+)-[^-]*\.json$", path.name)
        try:
            old = time.time() - path.stat().st_mtime > STALE_TEMP_AGE_S
        except FileNotFoundError:
            continue  # its writer just renamed it into place
        if old or match is None or (match.group(1) == host and not _pid_alive(int(match.group(2)))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_record(path: Path) -> RunRecord:
    """Load and verify one record; raises :class:`CorruptRecord` naming the path and the problem."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptRecord(f"{path}: unreadable ({error})") from None
    except json.JSONDecodeError as error:
        raise CorruptRecord(f"{path}: not valid JSON (truncated?): {error}") from None
    return RunRecord.from_json(data, str(path))


def scan(root: Path, profile: str, task: str) -> tuple[list[RunRecord], list[str]]:
    """All valid records of one task and profile, plus one error line per corrupt file."""
    records, errors = [], []
    for path in record_files(runs_folder(root, profile, task)):
        try:
            records.append(read_record(path))
        except CorruptRecord as error:
            errors.append(str(error))
    return records, errors


GIT_ENV = ("SUITE_GIT_COMMIT", "SUITE_GIT_DIRTY")


def pin_git_state() -> None:
    """Fix the commit/dirty state for this process and its workers: the code a sweep runs is the code at launch."""
    commit, dirty = _git_state()
    os.environ[GIT_ENV[0]], os.environ[GIT_ENV[1]] = commit, "1" if dirty else "0"


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str, bool]:
    if os.environ.get(GIT_ENV[0]):
        return os.environ[GIT_ENV[0]], os.environ.get(GIT_ENV[1]) == "1"
    here = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10)
        commit = result.stdout.strip() if result.returncode == 0 else "unknown"
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, dirty


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    """Model name plus family/model numbers: a VM's "AMD EPYC" alone does not tell Zen 2 from Zen 4."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
            if not line.strip():
                break
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    if "cpu family" in fields:
        return f"{fields['model name']} (family {fields['cpu family']} model {fields.get('model', '?')})"
    return fields["model name"]


def provenance(threads: int, accelerator: str = "cpu", world_size: int = 1, precision: str = "32-true",
               numerics_level: str | None = None) -> Provenance:
    """Where and with what a run was produced, including the CPU's vector ISA and the kernels each library ran."""
    import lightning
    import numpy
    import torch

    from suite import numerics

    commit, dirty = _git_state()
    gpu = torch.cuda.get_device_name(0) if accelerator != "cpu" and torch.cuda.is_available() else None
    return Provenance(
        git_commit=commit, git_dirty=dirty,
        python=platform.python_version(), torch=torch.__version__, lightning=lightning.__version__,
        numpy=numpy.__version__, platform=platform.platform(), cpu=_cpu_model(),
        cpu_isa=numerics.cpu_flags(), numerics=numerics.describe(numerics_level),
        cpu_count=os.cpu_count(), gpu=gpu, accelerator=accelerator, threads=threads,
        precision=precision,
        world_size=world_size if world_size > 1 else None,
        device_class=device_class(accelerator),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    )


def device_class(accelerator: str = "cpu") -> str:
    """Coarse machine type used to pick the exact-match vs tolerance rule in ``suite check``."""
    return "cpu-" + platform.machine() if accelerator == "cpu" else accelerator
