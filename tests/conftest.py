"""Shared fixtures: the test-only baselines are registered in this process and in spawned workers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import suite  # noqa: F401  (pins the CPU kernels before any test imports torch or numpy)

ROOT = Path(__file__).resolve().parent.parent
os.environ["SUITE_PLUGINS"] = ",".join(filter(None, [os.environ.get("SUITE_PLUGINS", ""), "tests.fake_baselines"]))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")

import tests.fake_baselines  # noqa: E402,F401  (registers in this process too)

TOY_SPEC = ROOT / "tests" / "specs" / "toy.yaml"


@pytest.fixture
def toy_spec_path() -> Path:
    return TOY_SPEC


@pytest.fixture
def write_spec(tmp_path):
    """Write a variant of the toy spec with some text replaced; returns its path."""

    def make(replace: dict[str, str] | None = None, text: str | None = None, name: str = "spec.yaml") -> Path:
        body = TOY_SPEC.read_text() if text is None else text
        for old, new in (replace or {}).items():
            assert old in body, old
            body = body.replace(old, new)
        path = tmp_path / name
        path.write_text(body)
        return path

    return make
