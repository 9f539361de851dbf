"""The typed run record: every committed record round-trips unchanged; old schemas read; bad files name themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.record import SCHEMA_VERSION, CorruptRecord, RunRecord, content_hash
from suite.runner import failed_record, plan_jobs
from suite.spec import load_spec
from suite.store import read_record, write_record

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(ROOT.glob("results/*/*/runs/*.json"))


def _dump(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"  # how the store writes a record


def test_every_committed_record_round_trips_byte_for_byte():
    assert COMMITTED, "no committed records found"
    for path in COMMITTED:
        text = path.read_text()
        record = read_record(path)
        assert _dump(record.to_json()) == text, path
        assert content_hash(record.to_json()) == record.record_hash


def test_committed_records_are_schema_1_and_have_no_resolved_hyperparameters():
    schemas = {read_record(path).schema for path in COMMITTED}
    assert schemas <= {1, SCHEMA_VERSION}
    record = read_record(COMMITTED[0])
    if record.schema == 1:
        assert record.resolved is None and "resolved" not in record.to_json()


@pytest.fixture
def record(toy_spec_path) -> RunRecord:
    job = plan_jobs(load_spec(toy_spec_path), "smoke")[0]
    return failed_record(job, "example").replace(status="ok", reason=None, metrics={"weight_error": 0.5})


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    data["record_hash"] = content_hash(data)  # a well-sealed file, so only the change itself can be rejected
    path.write_text(_dump(data))


def test_new_records_carry_the_resolved_hyperparameters_at_the_current_schema(tmp_path, record):
    loaded = read_record(write_record(tmp_path, record))
    assert loaded.schema == SCHEMA_VERSION == 2
    assert loaded.resolved == loaded.config  # the toy baseline has no resolution hook


def test_a_schema_1_record_reads_without_resolved(tmp_path, record):
    path = write_record(tmp_path, record)

    def downgrade(data: dict) -> None:
        data["schema"] = 1
        del data["resolved"]

    _rewrite(path, downgrade)
    loaded = read_record(path)
    assert loaded.schema == 1 and loaded.resolved is None
    assert _dump(loaded.to_json()) == path.read_text()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema=99), "schema 99 (this suite reads 1, 2)"),
    (lambda d: d.update(schema=1), "field 'resolved' in a schema-1 record"),
    (lambda d: d.update(colour="blue"), "unknown field 'colour'"),
    (lambda d: d.update(seed="0"), "field 'seed' has type str"),
    (lambda d: d.update(seed=True), "field 'seed' has type bool"),
    (lambda d: d["provenance"].update(threads="1"), "field 'provenance.threads' has type str"),
    (lambda d: d["provenance"].pop("git_commit"), "missing field 'provenance.git_commit'"),
    (lambda d: d["provenance"].update(mood="ok"), "unknown field 'provenance.mood'"),
    (lambda d: d.update(provenance=[]), "field 'provenance' has type list"),
])
def test_a_malformed_record_gives_one_line_naming_the_file(tmp_path, record, change, message):
    path = write_record(tmp_path, record)
    _rewrite(path, change)
    with pytest.raises(CorruptRecord) as error:
        read_record(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_subscript_reads_for_scripts_written_against_the_dict_record(record):
    assert record["metrics"] == {"weight_error": 0.5}
    assert record["provenance"]["threads"] == record.provenance.threads
    with pytest.raises(KeyError):
        record["nope"]
