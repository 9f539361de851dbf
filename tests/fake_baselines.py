"""Test-only baselines (registered through SUITE_PLUGINS) that exercise the harness's failure paths.

``counter`` is a real (tiny) learner: a linear regression fitted by SGD, so its metrics depend on
the seed and its hyperparameters in a way the determinism and check tests can see.
"""

from __future__ import annotations

import os
import signal
import time

import torch

from suite.api import RunContext, RunOutput, check_finite
from suite.registry import register_baseline, register_env

register_env("toy-a", "toy", "linear regression, 8 features")
register_env("toy-b", "toy", "linear regression, 16 features")

DEFAULTS = {
    "steps": 50,  # SGD steps
    "lr": 0.05,  # SGD step size
    "mode": "ok",  # ok | crash | nan | hang | kill: which failure to inject
    "sleep": 0.0,  # seconds to sleep after each step (a slow run, for timeouts and progress)
}


@register_baseline("toy_regression", defaults=DEFAULTS, env_families=("toy",))
def fit(ctx: RunContext) -> RunOutput:
    """Linear regression by SGD; `mode` injects failures: crash, nan, hang, kill."""
    hp = ctx.hparams
    features = 8 if ctx.env == "toy-a" else 16
    true_w = torch.linspace(-1, 1, features)
    weights = torch.zeros(features, requires_grad=True)
    optimizer = torch.optim.SGD([weights], lr=hp["lr"])
    curve = []
    for step in range(hp["steps"]):
        x = torch.randn(32, features)
        y = x @ true_w + 0.1 * torch.randn(32)
        loss = ((x @ weights - y) ** 2).mean()
        if hp["mode"] == "nan" and step == 7:
            loss = loss * float("nan")
        check_finite(loss, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append((step, loss.item()))
        ctx.progress(step + 1, hp["steps"])
        if hp["sleep"]:
            time.sleep(hp["sleep"])
        if hp["mode"] == "crash" and step == 3:
            raise RuntimeError("injected failure")
        if hp["mode"] == "kill" and step == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        if hp["mode"] == "hang" and step == 3:
            time.sleep(3600)
    return RunOutput(metrics={"final_loss": curve[-1][1], "weight_error": (weights.detach() - true_w).norm().item()},
                     curves={"loss": curve}, steps=hp["steps"], step_unit="sgd_steps")


def resolve_toy(hparams: dict, env: str, seed: int) -> dict:
    """``lr`` left None takes the env's value, ``batch`` left None alternates with the seed (as a search by seed)."""
    resolved = dict(hparams)
    if resolved["lr"] is None:
        resolved["lr"] = 0.1 if env == "toy-a" else 0.05
    if resolved["batch"] is None:
        resolved["batch"] = 16 if seed % 2 else 32
    return resolved


@register_baseline("toy_resolved", defaults={**DEFAULTS, "lr": None, "batch": None}, env_families=("toy",),
                   resolve=resolve_toy)
def fit_resolved(ctx: RunContext) -> RunOutput:
    """``toy_regression`` with per-env and per-seed hyperparameters; ``extras["seen"]``: the hparams fit received."""
    out = fit(ctx)  # a None lr would fail here: the hook must have run
    out.extras["seen"] = dict(ctx.hparams)
    return out
