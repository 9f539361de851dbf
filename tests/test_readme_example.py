"""The README's worked example (a new baseline file + a variant line) runs as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from suite.cli import main
from suite.store import scan

ROOT = Path(__file__).resolve().parent.parent


def _blocks(language: str) -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Adding a baseline", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_readme_baseline_example_registers_validates_and_runs(tmp_path):
    (code,) = _blocks("python")
    (variant_line,) = _blocks("yaml")
    module_path = tmp_path / "anil_example.py"
    module_path.write_text(code)
    spec = importlib.util.spec_from_file_location("anil_example", module_path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers "anil"

    task = (ROOT / "tasks" / "maml_sinusoid.yaml").read_text()
    task = task.replace("variants:\n", "variants:\n" + variant_line, 1)
    task = task.replace("    variants: [maml, pretrain]", "    variants: [maml, pretrain, anil]", 1)
    spec_path = tmp_path / "maml_sinusoid.yaml"
    spec_path.write_text(task)
    assert main(["validate", str(spec_path)]) == 0
    results = tmp_path / "results"
    assert main(["run", str(spec_path), "--profile", "smoke", "--variants", "anil", "--envs", "sinusoid-K5",
                 "--seeds", "1", "--workers", "0", "--results", str(results), "--no-report"]) == 0
    (record,), errors = scan(results, "smoke", "maml_sinusoid")
    assert not errors and record.variant == "anil" and record.status == "ok"
    # a meta-learned head adapts: one step on K points already lowers the held-out MSE
    assert record.metrics["mse_step1"] < record.metrics["mse_step0"]
