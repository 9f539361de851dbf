"""Records: atomic, hashed, and every kind of corruption is reported by path."""

from __future__ import annotations

import json
import os
import platform
import stat
import time

import pytest

from suite.runner import failed_record, plan_jobs
from suite.spec import load_spec
from suite.store import (
    CorruptRecord,
    read_record,
    record_files,
    record_path,
    scan,
    slug,
    sweep_stale_temps,
    write_record,
)


@pytest.fixture
def record(toy_spec_path):
    job = plan_jobs(load_spec(toy_spec_path), "smoke")[0]
    return failed_record(job, "example").replace(status="ok", reason=None, metrics={"weight_error": 0.5},
                                                 curves={"loss": [[0, 1.0]]})


def test_round_trip_carries_provenance(tmp_path, record):
    path = write_record(tmp_path, record)
    assert path == record_path(tmp_path, plan_jobs(load_spec("tests/specs/toy.yaml"), "smoke")[0].key)
    loaded = read_record(path)
    assert loaded.metrics == {"weight_error": 0.5}
    for key in ("git_commit", "git_dirty", "python", "torch", "lightning", "numpy", "cpu", "threads", "command"):
        assert key in loaded.provenance.to_json()
    assert not list(path.parent.glob(".tmp-*"))  # no temp file left behind


@pytest.mark.parametrize("corrupt, message", [
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: text.replace('"weight_error": 0.5', '"weight_error": 0.25'), "content hash mismatch"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "metrics"}), "missing field 'metrics'"),
    (lambda text: text.replace('"status": "ok"', '"status": "great"'), "unknown status"),
    (lambda text: "[]", "expected a JSON object"),
])
def test_corrupt_record_is_reported_by_path(tmp_path, record, corrupt, message):
    path = write_record(tmp_path, record)
    path.write_text(corrupt(path.read_text()))
    with pytest.raises(CorruptRecord) as error:
        read_record(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    records, errors = scan(tmp_path, "smoke", "toy")
    assert records == [] and errors and errors[0].startswith(str(path))


def test_non_finite_metrics_are_stored_as_json(tmp_path, record):
    record.metrics = {"a": float("nan"), "b": float("inf")}
    loaded = read_record(write_record(tmp_path, record))
    assert loaded.metrics == {"a": None, "b": 1e308}


def test_a_complete_record_left_as_a_temp_file_is_not_a_record(tmp_path, record):
    path = write_record(tmp_path, record)
    left_over = path.parent / ".tmp-host-99999999-abcd1234.json"  # what a kill between fsync and rename leaves
    left_over.write_text(path.read_text())
    records, errors = scan(tmp_path, "smoke", "toy")
    assert len(records) == 1 and not errors
    assert record_files(path.parent) == [path]


def test_stale_temp_files_are_swept_and_live_ones_kept(tmp_path, record):
    folder = write_record(tmp_path, record).parent
    host = slug(platform.node())
    dead = folder / f".tmp-{host}-99999999-abcd1234.json"  # no such pid
    live = folder / f".tmp-{host}-{os.getpid()}-efgh5678.json"  # a write in progress in this process
    foreign = folder / ".tmp-otherhost-1-ijkl9012.json"  # another host's write: only age tells
    old_foreign = folder / ".tmp-otherhost-2-mnop3456.json"
    for path in (dead, live, foreign, old_foreign):
        path.write_text("{}")
    os.utime(old_foreign, (time.time() - 2 * 3600,) * 2)
    assert sorted(sweep_stale_temps(folder)) == sorted([dead, old_foreign])
    assert live.exists() and foreign.exists()


def test_the_folder_is_fsynced_after_the_rename(tmp_path, record, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_record(tmp_path, record)
    assert synced == [False, True]  # the file's content, then the folder holding the new name
