"""Fixed per-env reference scores (``normalization:`` in a task spec) and the scaling the pooled table uses.

rliable and the Atari literature pool envs on a common scale by fixed anchors, ``(score - random) /
(reference - random)``: 0 is a random policy (or chance, or a trivial predictor), 1 the reference.  Fixed
anchors keep a variant's pooled score independent of which other variants are in the table, which a min-max
over the table's own runs does not.  The formula needs no sign flip for lower-is-better metrics: a reference
below random still maps random to 0 and the reference to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from suite.spec_reader import Reader


@dataclass(frozen=True)
class EnvScores:
    random: float
    reference: float
    source: str


@dataclass(frozen=True)
class Normalization:
    scores: dict[str, EnvScores]  # env -> anchors
    note: str = ""                # e.g. why some envs have none

    def covers(self, envs: tuple[str, ...] | list[str]) -> bool:
        return all(env in self.scores for env in envs)

    def normalise(self, env: str, values: np.ndarray) -> np.ndarray:
        anchors = self.scores[env]
        return (np.asarray(values, dtype=float) - anchors.random) / (anchors.reference - anchors.random)


def parse_normalization(reader: Reader, raw: Any, env_names: list[str], higher_is_better: bool) -> Normalization:
    """``{note: str, scores: {env: {random: x, reference: y, source: str}}}``, validated field by field."""
    raw = reader.mapping(raw or {}, "normalization", ("note", "scores"))
    note = reader.typed(raw.get("note", ""), "normalization.note", str, "a string")
    scores = {}
    for env, body in reader.mapping(raw.get("scores", {}) or {}, "normalization.scores").items():
        where = f"normalization.scores.{env}"
        reader.names(env, where, env_names, "env")
        body = reader.mapping(body, where, ("random", "reference", "source"), ("random", "reference", "source"))
        random = reader.number(body["random"], f"{where}.random", "a score")
        reference = reader.number(body["reference"], f"{where}.reference", "a score")
        source = reader.typed(body["source"], f"{where}.source", str, "where the two scores come from")
        if not source.strip():
            raise reader.fail(f"{where}.source", "expected where the two scores come from, got an empty string")
        if (reference > random) != higher_is_better or reference == random:
            better = "above" if higher_is_better else "below"
            raise reader.fail(where, f"reference {reference:g} must be {better} random {random:g} "
                              f"(metric.higher_is_better is {str(higher_is_better).lower()})")
        scores[env] = EnvScores(float(random), float(reference), source)
    return Normalization(scores, note)
