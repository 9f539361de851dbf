"""The claims engine on hand-made records: the non-inferiority test kind end to end (spec -> verdict)."""

from __future__ import annotations

import pytest

from suite.claims import evaluate_claims
from suite.record import RunRecord
from suite.spec import SpecError, load_spec
from tests.records import make_record

NONINFERIORITY = """claims:
  - id: fast_not_much_worse
    text: fast keeps at least 80% of slow's score
    lhs: {variant: fast, metric: weight_error}
    op: ">"
    rhs: {variant: slow, metric: weight_error}
    test: noninferiority
    margin: 0.8
    envs: [toy-a]
"""


def _records(fast: list[float], slow: list[float]) -> list[RunRecord]:
    return [make_record(variant=variant, env="toy-a", seed=seed, metrics={"weight_error": value})
            for variant, values in (("fast", fast), ("slow", slow)) for seed, value in enumerate(values)]


def _spec(write_spec, claims: str = NONINFERIORITY):
    text = write_spec().read_text()
    return load_spec(write_spec(text=text[:text.index("claims:")] + claims))


@pytest.mark.parametrize("fast, verdict", [
    ([9.0, 9.1, 8.9, 9.0, 9.05], "holds"),          # 9.0 vs 0.8 x 10 = 8: shown non-inferior (though below 10)
    ([6.0, 6.1, 5.9, 6.0, 6.05], "fails"),          # 6.0 well under 8: shown inferior
    ([4.0, 14.0, 7.0, 11.0, 9.0], "inconclusive"),  # mean 9 but too noisy to show either
])
def test_noninferiority_claim_verdicts(write_spec, fast, verdict):
    spec = _spec(write_spec)
    assert spec.claims[0].test == "noninferiority" and spec.claims[0].margin == 0.8
    [outcome] = evaluate_claims(spec, "smoke", _records(fast, [10.0, 10.1, 9.9, 10.0, 10.05]))
    assert outcome.verdict == verdict
    assert "> 0.8 x slow.weight_error" in outcome.detail and "vs 0.8 x rhs" in outcome.detail


@pytest.mark.parametrize("old, new, message", [
    ("    margin: 0.8\n", "", r"claims\[0\]: missing required key 'margin' for a noninferiority test"),
    ("margin: 0.8", "margin: -1", r"claims\[0\]\.margin: expected a positive number, got -1"),
    ("margin: 0.8", "margin: lots", r"claims\[0\]\.margin: expected a number"),
    ("test: noninferiority", "test: welch", r"claims\[0\]\.margin: a margin needs test: noninferiority"),
])
def test_noninferiority_spec_errors(write_spec, old, new, message):
    with pytest.raises(SpecError, match=message):
        _spec(write_spec, NONINFERIORITY.replace(old, new))
