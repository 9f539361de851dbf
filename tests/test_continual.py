"""Continual-learning baseline: EWC forgets less than fine-tuning, lambda = 0 is fine-tuning, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from suite.api import RunContext, RunOutput
from suite.registry import get_baseline
from suite.runner import seed_everything
from tests.records import make_record


def run(env: str, strategy: str, tmp_path: Path, seed: int = 0, **overrides: Any) -> RunOutput:
    entry = get_baseline("continual")
    hparams = {**entry.defaults, "strategy": strategy, "eval_every": 0, **overrides}
    seed_everything(seed, 1)
    ctx = RunContext("t", strategy, env, seed, "test", "continual", entry.resolved(hparams, env, seed), tmp_path)
    return entry.fit(ctx)


def test_ewc_with_zero_lambda_is_finetuning(tmp_path: Path) -> None:
    ewc = run("permuted-digits-2", "ewc", tmp_path, lam=0.0, epochs=1)
    finetune = run("permuted-digits-2", "finetune", tmp_path, epochs=1)
    assert ewc.metrics == finetune.metrics
    assert ewc.extras["R"] == finetune.extras["R"]


def test_ewc_forgets_less_than_finetuning_on_two_tasks(tmp_path: Path) -> None:
    ewc = run("permuted-digits-2", "ewc", tmp_path, lam=100.0)
    finetune = run("permuted-digits-2", "finetune", tmp_path)
    r_ewc, r_ft = ewc.extras["R"], finetune.extras["R"]
    assert r_ft[1][0] > 0.85 and r_ewc[1][0] > 0.85  # both learnt task 1
    assert r_ft[2][0] < r_ft[1][0] - 0.2  # fine-tuning forgets task 1 catastrophically
    assert ewc.metrics["bwt"] > finetune.metrics["bwt"] + 0.15
    assert ewc.metrics["acc"] > finetune.metrics["acc"]
    assert r_ewc[2][1] > 0.7  # and still learns task 2


def test_same_seed_is_bit_identical_and_the_loop_key_is_a_no_op(tmp_path: Path) -> None:
    a = run("permuted-digits-2", "si", tmp_path, c=10.0, epochs=1, eval_every=1)
    b = run("permuted-digits-2", "si", tmp_path, c=10.0, epochs=1, eval_every=1, loop="trainer")
    c = run("permuted-digits-2", "si", tmp_path, seed=1, c=10.0, epochs=1, eval_every=1)
    assert a.metrics == b.metrics and a.extras["trajectory"] == b.extras["trajectory"]
    assert a.metrics != c.metrics


@pytest.mark.parametrize("strategy", ["l2", "online_ewc", "mas", "multitask"])
def test_other_strategies_run_and_report_r(tmp_path: Path, strategy: str) -> None:
    out = run("permuted-digits-2", strategy, tmp_path, epochs=1, lam=0.1)
    r = out.extras["R"]
    assert len(r) == 3 and all(len(row) == 2 for row in r)
    assert set(out.metrics) >= {"acc", "bwt", "fwt", "newest_task_acc"}
    assert out.metrics["newest_task_acc"] > 0.5


def test_class_incremental_finetuning_forgets_everything_task_incremental_does_not(tmp_path: Path) -> None:
    cls = run("split-digits-class-IL", "finetune", tmp_path, epochs=1)
    task = run("split-digits-task-IL", "finetune", tmp_path, epochs=1)
    # class-IL: the newest head dominates the softmax over all seen classes (van de Ven & Tolias 2019)
    assert max(cls.extras["R"][-1][:-1]) < 0.2
    assert task.metrics["acc"] > 0.8


def test_penalty_gradient_is_the_gradient_of_its_value() -> None:
    from baselines.continual_penalties import QuadraticPenalty

    net = torch.nn.Linear(3, 2).double()
    penalty = QuadraticPenalty(strength=0.7, gamma=None)
    for _ in range(2):
        penalty.consolidate(net, {n: torch.rand_like(p) for n, p in net.named_parameters()})
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    penalty.add_grad(net)
    params = dict(net.named_parameters())
    value = sum(0.7 * (om[n] * (params[n] - an[n]) ** 2).sum() for om, an in penalty.terms for n in params)
    grads = torch.autograd.grad(value, list(params.values()))
    for p, g in zip(params.values(), grads, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert penalty.value(net) == pytest.approx(float(value))


def test_permutations_do_not_depend_on_the_run(tmp_path: Path) -> None:
    from suite.data.continual import make_stream

    a, b = make_stream("permuted-digits-5"), make_stream("permuted-digits-5")
    assert a.tasks[0].perm is None
    for ta, tb in zip(a.tasks[1:], b.tasks[1:], strict=True):
        assert torch.equal(ta.perm, tb.perm)
    assert not torch.equal(a.tasks[1].perm, a.tasks[2].perm)


def test_mnist_protocols_run_on_mnist_shaped_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper envs' code path (784 inputs, GEM's 1000-sample subsets, 20 tasks) without the real files."""
    import suite.data.continual as data

    gen = torch.Generator().manual_seed(0)
    fake = (torch.rand(1500, 28, 28, generator=gen), torch.randint(0, 10, (1500,), generator=gen),
            torch.rand(100, 28, 28, generator=gen), torch.randint(0, 10, (100,), generator=gen))
    monkeypatch.setattr(data, "_mnist", lambda: fake)
    stream = data.make_stream("permuted-MNIST-GEM")
    assert len(stream.tasks) == 20 and stream.in_features == 784
    assert all(len(task.y_train) == 1000 for task in stream.tasks)
    out = run("permuted-MNIST-GEM", "ewc", tmp_path, lam=1.0, hidden=[16, 16], fisher_samples=100)
    assert out.extras["effective_hparams"]["batch_size"] == 10 and out.steps == 20 * 1000
    assert len(out.extras["R"]) == 21


def test_spec_loads_and_figures_draw_from_records(tmp_path: Path) -> None:
    from suite.registry import FIGURES
    from suite.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "tasks" / "ewc_permuted_digits.yaml")
    records = []
    for variant in ("finetune", "ewc"):
        for seed in (0, 1):
            out = run("permuted-digits-2", variant, tmp_path, seed=seed, epochs=2, eval_every=1)
            records.append(make_record(variant=variant, env="permuted-digits-2", seed=seed, extras=out.extras))
    paths = [p for name in spec.figures for p in FIGURES[name](spec, records, tmp_path / "figures")]
    assert len(paths) == 2 and all(p.stat().st_size > 10_000 for p in paths)


def test_si_path_integral_equals_loss_decrease_on_a_quadratic() -> None:
    """For small gradient steps on L = a/2 w^2, sum_t -g dw -> L(w0) - L(w_end) (Zenke et al. 2017, Eq. 3)."""
    from baselines.continual_penalties import SynapticIntelligence

    net = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        net.weight.fill_(2.0)
    si, a = SynapticIntelligence(xi=0.1), 3.0
    si.begin_task(net)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    for _ in range(3000):
        opt.zero_grad()
        (0.5 * a * net.weight.pow(2).sum()).backward()
        si.after_backward(net)
        opt.step()
        si.after_step(net)
    w = float(net.weight)
    assert si.omega["weight"].item() == pytest.approx(0.5 * a * (4.0 - w * w), rel=1e-2)
    omega = si.estimate(net, None, None, None, None)["weight"].item()
    assert omega == pytest.approx(si.omega["weight"].item() / ((w - 2.0) ** 2 + 0.1))


def test_merge_rules_of_the_penalty() -> None:
    from baselines.continual_penalties import QuadraticPenalty

    net = torch.nn.Linear(2, 1)
    one, two = ({n: torch.full_like(p, v) for n, p in net.named_parameters()} for v in (1.0, 3.0))
    ewc, online, l2 = QuadraticPenalty(1.0, None), QuadraticPenalty(1.0, 0.5), QuadraticPenalty(1.0, 0.0)
    for penalty in (ewc, online, l2):
        penalty.consolidate(net, one)
        penalty.consolidate(net, two)
    assert len(ewc.terms) == 2 and len(online.terms) == 1 and len(l2.terms) == 1
    assert torch.equal(online.terms[0][0]["weight"], torch.full((1, 2), 0.5 * 1.0 + 3.0))
    assert torch.equal(l2.terms[0][0]["weight"], torch.full((1, 2), 3.0))
