"""Correctness of the FID / IS / KID wiring (torchmetrics + custom feature extractors) and the claim checkers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from suite.envs.generative import GenerativeData, load_generative_data
from suite.metrics import generative as gm
from suite.metrics import generative_claims as gc
from suite.record import RunRecord
from tests.records import make_record


class _Linear64(nn.Module):
    """A fixed random float64 feature map (so torchmetrics keeps float64 end to end)."""

    num_features = 12

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.randn(64, self.num_features, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.reshape(len(x), -1).double() @ self.weight)


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(root)))


def test_fid_matches_scipy_sqrtm_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.rand(400, 1, 8, 8, generator=gen), torch.rand(300, 1, 8, 8, generator=gen) ** 2
    extractor = _Linear64()
    expected = _scipy_fid(extractor(real).numpy(), extractor(fake).numpy())
    for metric_class in (FrechetInceptionDistance, gm.FrechetDistance):
        metric = metric_class(feature=extractor, normalize=False)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        assert float(metric.compute()) == pytest.approx(expected, rel=1e-6), metric_class.__name__
    # the symmetric-eigh square root agrees with sqrtm on a badly conditioned, larger problem as well
    feats = torch.randn(3000, 256, generator=gen, dtype=torch.float64) @ torch.randn(256, 256, generator=gen,
                                                                                        dtype=torch.float64)
    a, b = feats[:1500].numpy(), (feats[1500:] * 1.1 + 0.2).numpy()
    ours = gm.frechet_distance(torch.tensor(a.mean(0)), torch.tensor(np.cov(a, rowvar=False)),
                               torch.tensor(b.mean(0)), torch.tensor(np.cov(b, rowvar=False)))
    assert float(ours) == pytest.approx(_scipy_fid(a, b), rel=1e-6)


def test_fid_on_digits_features_self_zero_halves_small() -> None:
    data = load_generative_data("digits")
    evaluator = gm.GenerativeEvaluator(data)
    assert evaluator.info["feature_extractor_accuracy"] > 0.95
    self_fid = evaluator(data.eval_real, fid_only=True)["fid"]
    train_fid = evaluator(data.train, fid_only=True)["fid"]
    noise_fid = evaluator(torch.rand_like(data.eval_real), fid_only=True)["fid"]
    assert abs(self_fid) < 1e-6 * noise_fid
    assert train_fid < 0.05 * noise_fid
    # two disjoint halves of the real data: small, far below noise
    half = gm.FrechetDistance(feature=evaluator.fid.inception, normalize=False)
    half.update(data.train[::2], real=True)
    half.update(data.train[1::2], real=False)
    assert float(half.compute()) < 0.05 * noise_fid


def test_inception_score_bounds_constant_and_real() -> None:
    data = load_generative_data("digits")
    evaluator = gm.GenerativeEvaluator(data)
    real = evaluator(data.train[:1000])
    constant = evaluator(data.train[:1].expand(1000, -1, -1, -1).clone())
    assert constant["inception_score"] == pytest.approx(1.0, abs=1e-4)
    assert 7.5 < real["inception_score"] <= 10.0
    noise = evaluator(torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert 1.0 - 1e-4 <= noise["inception_score"] < real["inception_score"]
    assert real["kid"] < noise["kid"] and real["fid"] < noise["fid"]


def test_kid_unbiased_on_equal_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    identity = gm.PointFeatures()
    same, shifted = [], []
    for _ in range(5):
        kid = KernelInceptionDistance(feature=identity, subsets=50, subset_size=200)
        kid.update(torch.randn(500, 2, generator=gen), real=True)
        kid.update(torch.randn(500, 2, generator=gen), real=False)
        same.append(float(kid.compute()[0]))
        kid = KernelInceptionDistance(feature=identity, subsets=50, subset_size=200)
        kid.update(torch.randn(500, 2, generator=gen), real=True)
        kid.update(torch.randn(500, 2, generator=gen) + 0.5, real=False)
        shifted.append(float(kid.compute()[0]))
    assert min(same) < 0 < max(same), "an unbiased estimator of 0 takes both signs"
    assert abs(np.mean(same)) < 0.1 * np.mean(shifted)


def test_kid_subset_size_clamped_to_sample_count() -> None:
    data = load_generative_data("gaussian-grid")
    evaluator = gm.GenerativeEvaluator(data, kid_subset_size=1000, kid_subsets=5)
    out = evaluator(data.eval_real[:300])  # fewer samples than the requested subset size
    assert np.isfinite(out["kid"]) and out["modes_covered"] == 25


def test_mode_coverage_real_vs_collapsed() -> None:
    data = load_generative_data("gaussian-grid")
    real = gm.mode_coverage(data.eval_real, data.centers, data.std)
    assert real["modes_hit"] == 25 and real["high_quality_fraction"] > 0.98
    collapsed = data.centers[3] + data.std * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    out = gm.mode_coverage(collapsed, data.centers, data.std)
    assert out["modes_hit"] == 1 and out["modes_covered"] == 1


def test_inception_path_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SUITE_DATA", str(tmp_path))
    images = torch.rand(4, 1, 28, 28)
    mnist_like = GenerativeData("mnist", images, images, torch.zeros(4, dtype=torch.int64), 10)
    with pytest.raises(RuntimeError, match=r"torchmetrics\[image\]|pt_inception"):
        gm.GenerativeEvaluator(mnist_like)


def _records(values: dict[str, list[float]]) -> list[RunRecord]:
    return [make_record(env="digits", variant=v, seed=i, metrics={"fid": x})
            for v, xs in values.items() for i, x in enumerate(xs)]


def test_claim_checkers_detect_lucic_pattern_and_its_absence() -> None:
    rng = np.random.default_rng(0)
    gans = {f"gan{i}": list(10 + i * 0.2 + rng.lognormal(2, 1, 20)) for i in range(4)}
    lucic = _records({**gans, "vae": list(40 + rng.normal(0, 1, 20))})
    args = dict(variants=list(gans), envs=["digits"])
    assert gc.spread_exceeds_best_gap(args, lucic, "fid", False)["verdict"] == "holds"
    pair = dict(lhs="vae", rhs=list(gans), envs=["digits"])
    assert gc.best_worse_than(pair, lucic, "fid", False)["verdict"] == "holds"
    assert gc.spread_narrower_than(pair, lucic, "fid", False)["verdict"] == "holds"
    # models far apart with tight spreads, and a VAE that is best and widest: every claim fails
    apart = {f"gan{i}": list(10 + 50 * i + rng.normal(0, 0.5, 20)) for i in range(4)}
    opposite = _records({**apart, "vae": list(1 + rng.lognormal(3, 1, 20))})
    assert gc.spread_exceeds_best_gap(args, opposite, "fid", False)["verdict"] == "fails"
    assert gc.best_worse_than(pair, opposite, "fid", False)["verdict"] == "fails"
    assert gc.spread_narrower_than(pair, opposite, "fid", False)["verdict"] == "fails"


def test_committed_digits_extractor_is_rebuilt_bit_for_bit(tmp_path) -> None:
    """`suite extractor train` reproduces the committed weights exactly under the pinned numerics."""
    card = gm.build_digits_classifier(tmp_path)
    assert card["matches_committed"], card
    committed = gm.digits_extractor_paths()[0]
    assert (tmp_path / committed.name).read_bytes() == committed.read_bytes()  # same tensors, same zip bytes


def test_edited_or_missing_extractor_is_one_error_naming_the_file(tmp_path, monkeypatch) -> None:
    import shutil

    for path in gm.digits_extractor_paths():
        shutil.copy(path, tmp_path / path.name)
    weights = tmp_path / gm.digits_extractor_paths()[0].name
    state = torch.load(weights, weights_only=True)
    state["classifier.bias"][0] += 1e-6  # a silent change FID would otherwise absorb
    torch.save(state, weights)
    monkeypatch.setattr(gm, "WEIGHTS_DIR", tmp_path)
    gm.load_digits_classifier.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=f"^{weights}: tensor sha256 .* differs from its card") as error:
            gm.load_digits_classifier()
        assert "\n" not in str(error.value)
        weights.unlink()
        with pytest.raises(RuntimeError, match=f"^{weights}: digits feature extractor missing"):
            gm.load_digits_classifier()
    finally:
        gm.load_digits_classifier.cache_clear()


def test_evaluation_does_not_warn_about_the_feature_buffers_it_keeps_on_purpose() -> None:
    import warnings

    data = load_generative_data("gaussian-grid")
    evaluator = gm.GenerativeEvaluator(data, kid_subset_size=100, kid_subsets=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluator(data.eval_real[:200])
    assert not [w for w in caught if "will save all extracted features" in str(w.message)]
