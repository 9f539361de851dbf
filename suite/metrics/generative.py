"""Sample-quality metrics of generative models: FID, Inception Score and KID through torchmetrics.

The metrics are torchmetrics' ``FrechetInceptionDistance``, ``InceptionScore`` and ``KernelInceptionDistance``
with a custom ``feature=`` module, so the core install needs neither torchvision nor torch-fidelity:

- ``digits``: a small conv classifier trained deterministically on the digits train split; its weights are
  committed (``suite/metrics/weights/``, verified by a hash of the tensors) and rebuilt bit for bit under pinned
  numerics only by ``suite extractor train``.  FID/KID use its 64-d penultimate layer (the role of
  Inception's 2048-d pool3), IS its 10 logits.  Values are therefore *not* comparable with published
  Inception-based numbers; rankings and spreads are.
- ``points2d`` (Gaussian mixtures): FID/KID on the raw 2-D points, IS on the Bayes posterior over the mixture's
  modes, plus mode coverage (``modes_hit``, ``high_quality_fraction``).
- ``paper`` images (MNIST / Fashion-MNIST / CIFAR-10): the standard 2048-d Inception features, needing the
  optional extra ``torchmetrics[image]`` and the FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``)
  in ``data_root()/feature_extractors/``; their absence is one clear error.

torchmetrics traps handled here: a custom module needs ``num_features`` (else a dummy ``input_img_size`` forward);
``normalize=True`` casts images to uint8 (``InceptionScore`` does so even for custom modules), so custom modules
get float images with ``normalize=False``; KID's ``subset_size`` may not exceed either sample count.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

DIGITS_EXTRACTOR = "digits-classifier-v1"
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
_DIGITS_RECIPE = dict(epochs=40, batch_size=64, lr=1e-3, seed=0)


# --------------------------------------------------------------------------------------------- feature extractors
class DigitsClassifier(nn.Module):
    """8x8 digits -> 10 logits; ``features`` is the 64-d penultimate layer used for FID/KID."""

    num_features = 64

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, self.num_features), nn.ReLU(),
        )
        self.classifier = nn.Linear(self.num_features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.float().reshape(-1, 1, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FeatureHead(nn.Module):
    """Frozen view of a classifier for torchmetrics: ``output='features'`` (FID/KID) or ``'logits'`` (IS)."""

    def __init__(self, classifier: DigitsClassifier, output: str) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.output = output
        self.num_features = classifier.num_features if output == "features" else 10

    def train(self, mode: bool = True) -> FeatureHead:  # torchmetrics may call .train(); keep BN-free net frozen
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x) if self.output == "features" else self.classifier(x)


class PointFeatures(nn.Module):
    """Identity features of 2-D points (FID/KID) or the mixture's log-posterior over modes (IS)."""

    def __init__(self, centers: torch.Tensor | None = None, std: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("centers", centers if centers is not None else torch.zeros(0, 2))
        self.std = std
        self.num_features = 2 if centers is None else len(centers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(-1, 2)
        if self.centers.numel() == 0:
            return x
        logits = -torch.cdist(x, self.centers).square() / (2 * self.std**2)
        # floor at e^-50 of the top mode: an exactly-zero class probability makes torchmetrics' IS log(0) -> NaN
        return (logits - logits.max(dim=1, keepdim=True).values).clamp_min(-50.0)


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _feature_dir() -> Path:
    """Where downloaded feature-extractor weights (Inception) live: the data root, never the repository."""
    from suite.data.download import data_root

    return data_root() / "feature_extractors"


def train_digits_classifier() -> tuple[DigitsClassifier, float]:
    """Train the digits feature extractor from scratch (deterministic: fixed seed, 1 thread); returns (net, test acc).

    Only ``suite extractor train`` calls this: runs load the committed weights.  Runs inside ``fork_rng`` so it
    leaves the caller's RNG state untouched.
    """
    from suite.data.digits import load_digits_split

    x_train, y_train, x_test, y_test = load_digits_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_DIGITS_RECIPE["seed"])
            net = DigitsClassifier()
            optimizer = torch.optim.Adam(net.parameters(), lr=_DIGITS_RECIPE["lr"])
            batch = _DIGITS_RECIPE["batch_size"]
            for _ in range(_DIGITS_RECIPE["epochs"]):
                order = torch.randperm(len(x_train))
                for start in range(0, len(order), batch):
                    index = order[start:start + batch]
                    # light shift augmentation keeps features meaningful on imperfect generated digits
                    images = torch.roll(x_train[index], shifts=tuple(torch.randint(-1, 2, (2,)).tolist()), dims=(1, 2))
                    loss = nn.functional.cross_entropy(net(images), y_train[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            net.eval()
            with torch.no_grad():
                accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    return net, accuracy


def tensor_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors themselves (names, dtypes, shapes, bytes), not of the file: ``torch.save``'s zip
    holds a folder named after the file, so the same weights saved twice can differ byte for byte."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def digits_extractor_paths(folder: Path | None = None) -> tuple[Path, Path]:
    """(weights, card) of the digits extractor in ``folder`` (default: the committed copy in the package)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    return folder / f"{DIGITS_EXTRACTOR}.pt", folder / f"{DIGITS_EXTRACTOR}.json"


@lru_cache(maxsize=1)
def load_digits_classifier() -> tuple[DigitsClassifier, dict[str, Any]]:
    """The committed digits classifier and its card ``{name, tensor_sha256, test_accuracy, recipe, numerics}``.

    The weights are a versioned artifact of the repository, verified against the card's tensor hash; they are
    never retrained behind the caller's back (every FID/IS/KID would move).  A missing or mismatching file is
    one error naming it.
    """
    weights, card_path = digits_extractor_paths()
    rebuild = "restore it with `git checkout -- suite/metrics/weights` or rebuild it with `suite extractor train`"
    if not weights.exists() or not card_path.exists():
        raise RuntimeError(f"{weights if not weights.exists() else card_path}: digits feature extractor missing; "
                           + rebuild)
    card = json.loads(card_path.read_text())
    state = torch.load(weights, map_location="cpu", weights_only=True)
    found = tensor_sha256(state)
    if found != card.get("tensor_sha256"):
        raise RuntimeError(f"{weights}: tensor sha256 {found[:16]}... differs from its card's "
                           f"{str(card.get('tensor_sha256'))[:16]}... (edited or corrupt); " + rebuild)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; keep the caller's RNG intact
        net = DigitsClassifier()
    net.load_state_dict(state)
    return net.eval(), card


def build_digits_classifier(folder: Path | None = None) -> dict[str, Any]:
    """Train the digits extractor under this process's numerics and write weights + card into ``folder``.

    Returns the new card plus ``matches_committed`` (its tensors equal the committed ones bit for bit).
    """
    from suite import numerics

    weights, card_path = digits_extractor_paths(folder)
    committed_card = digits_extractor_paths()[1]
    committed = json.loads(committed_card.read_text()).get("tensor_sha256") if committed_card.exists() else None
    net, accuracy = train_digits_classifier()
    state = net.state_dict()
    card = dict(name=DIGITS_EXTRACTOR, tensor_sha256=tensor_sha256(state), test_accuracy=accuracy,
                recipe=_DIGITS_RECIPE, numerics=numerics.requested_level(), torch=torch.__version__)
    weights.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # a file-like target gives the zip a fixed inner folder name
    torch.save(state, buffer)
    _atomic_write(weights, lambda path: Path(path).write_bytes(buffer.getvalue()))
    _atomic_write(card_path, lambda path: Path(path).write_text(json.dumps(card, indent=1) + "\n"))
    load_digits_classifier.cache_clear()
    return {**card, "matches_committed": committed == card["tensor_sha256"]}


def _atomic_write(target: Path, write: Any) -> None:
    handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(handle)
    os.chmod(tmp, 0o644)  # committed artifacts: readable by everyone, like the rest of the checkout
    write(tmp)
    os.replace(tmp, target)


def _inception_kwargs() -> dict[str, Any]:
    """Where the FID Inception weights are, or one error naming what to install / which file to place."""
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        raise RuntimeError("Inception FID/IS/KID need the optional extra: pip install 'torchmetrics[image]' "
                           "(torch-fidelity + torchvision; not installable on the CPU-only dev machines)")
    weights = _feature_dir() / INCEPTION_WEIGHTS
    if not weights.exists():
        raise RuntimeError(f"Inception weights missing: place {INCEPTION_WEIGHTS} (torch-fidelity's FID Inception, "
                           f"github.com/toshas/torch-fidelity releases) in {weights.parent}/ or set SUITE_DATA")
    return dict(feature_extractor_weights_path=str(weights))


def _inception_modules() -> tuple[nn.Module, nn.Module]:
    """(2048-d pool features, unbiased logits) of the FID Inception network, both fed uint8 RGB images.

    Built here and passed as ``feature=`` modules because torchmetrics' InceptionScore / KID take no weights path.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = _inception_kwargs()["feature_extractor_weights_path"]
    features = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    logits = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=path)
    features.num_features, logits.num_features = 2048, 1008
    return features, logits


# ----------------------------------------------------------------------------------------------------- metrics
def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), in float64.

    S1 S2 is similar to the symmetric PSD matrix L^T S2 L (S1 = L L^T, Cholesky), so tr((S1 S2)^1/2) is the sum
    of square roots of its eigenvalues: one Cholesky, two matmuls and a values-only symmetric ``eigvalsh``,
    instead of torchmetrics' general non-symmetric ``eigvals(S1 @ S2)`` (fewer flops, and real-valued).  When S1
    is singular (fewer samples than features, dead ReLU units) L comes from S1's eigendecomposition instead.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    factor, info = torch.linalg.cholesky_ex(sigma1)
    if int(info) != 0:
        values, vectors = torch.linalg.eigh(sigma1)
        factor = vectors * values.clamp_min(0).sqrt()
    inner = torch.linalg.eigvalsh(factor.T @ sigma2 @ factor).clamp_min(0).sqrt().sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * inner


class FrechetDistance(FrechetInceptionDistance):
    """torchmetrics FID (same streaming feature statistics) whose ``compute`` uses :func:`frechet_distance`."""

    def compute(self) -> torch.Tensor:
        n_real, n_fake = self.real_features_num_samples, self.fake_features_num_samples
        if n_real < 2 or n_fake < 2:
            raise RuntimeError("FID needs at least two real and two fake samples")
        mean_real, mean_fake = self.real_features_sum / n_real, self.fake_features_sum / n_fake
        cov_real = (self.real_features_cov_sum - n_real * torch.outer(mean_real, mean_real)) / (n_real - 1)
        cov_fake = (self.fake_features_cov_sum - n_fake * torch.outer(mean_fake, mean_fake)) / (n_fake - 1)
        return frechet_distance(mean_real, cov_real, mean_fake, cov_fake)


class GenerativeEvaluator:
    """FID / IS / KID (+ mode coverage for mixtures) of samples against a fixed real set.

    The real set's feature statistics are computed once (``reset_real_features=False``) and reused for every
    evaluation of a run.  KID's and IS's random subsets come from a fixed seed inside ``fork_rng`` so the metric
    values do not depend on how much randomness training consumed.
    """

    def __init__(self, data: Any, kid_subset_size: int = 1000, kid_subsets: int = 100, is_splits: int = 10,
                 batch_size: int = 1000) -> None:
        self.data = data
        self.kid_subset_size, self.kid_subsets, self.is_splits, self.batch_size = (
            kid_subset_size, kid_subsets, is_splits, batch_size)
        if not data.is_image:
            features, logits = PointFeatures(), PointFeatures(data.centers, data.std)
            self.info = dict(feature_extractor="identity-2d+mixture-posterior", feature_extractor_accuracy=None)
        elif data.name == "digits":
            net, card = load_digits_classifier()
            features, logits = FeatureHead(net, "features"), FeatureHead(net, "logits")
            self.info = dict(feature_extractor=card["name"], feature_extractor_accuracy=card["test_accuracy"],
                             feature_extractor_tensor_sha256=card["tensor_sha256"])
        else:
            features, logits = _inception_modules()
            self.info = dict(feature_extractor="inception-v3-compat-2048", feature_extractor_accuracy=None)
        self._inception = data.is_image and data.name != "digits"
        self._features, self._logits = features, logits
        # custom modules everywhere, normalize=False: the images reach them unchanged (uint8 RGB for Inception)
        self.fid = FrechetDistance(feature=features, reset_real_features=False, normalize=False)
        for chunk in self._chunks(data.eval_real):
            self.fid.update(chunk, real=True)
        self.info["num_real"] = len(data.eval_real)

    def _chunks(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._inception:  # Inception takes uint8 RGB in [0, 255] and resizes to 299x299 itself
            x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
        return list(torch.split(x, self.batch_size))

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor, fid_only: bool = False) -> dict[str, float]:
        """Metrics of ``samples`` (same layout as the data) against the held-out real set."""
        samples = samples.detach().float()
        self.fid.reset()  # keeps the real statistics (reset_real_features=False)
        chunks = self._chunks(samples)
        for chunk in chunks:
            self.fid.update(chunk, real=False)
        out = {"fid": float(self.fid.compute())}
        if fid_only:
            return out
        subset = min(self.kid_subset_size, len(samples), len(self.data.eval_real))
        with warnings.catch_warnings():
            # "will save all extracted features in buffer": a few thousand small feature vectors, on purpose
            warnings.filterwarnings("ignore", message=r".*will save all extracted features", category=UserWarning)
            inception = InceptionScore(feature=self._logits, splits=self.is_splits, normalize=False)
            kid = KernelInceptionDistance(feature=self._features, subsets=self.kid_subsets, subset_size=subset,
                                          normalize=False)
        for chunk in self._chunks(self.data.eval_real):
            kid.update(chunk, real=True)
        for chunk in chunks:
            inception.update(chunk)
            kid.update(chunk, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out["inception_score"] = float(inception.compute()[0])
            out["kid"] = float(kid.compute()[0])
        if not self.data.is_image:
            out.update(mode_coverage(samples, self.data.centers, self.data.std))
        return out


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, min_share: float = 0.25
                  ) -> dict[str, float]:
    """Mode coverage of 2-D samples (Srivastava et al. 2017): a sample is *high quality* within 3 sigma of its
    nearest mode; a mode is *hit* when it holds at least ``min_share`` of its fair share (n / K) of HQ samples.

    ``modes_covered`` applies the same share test to all samples by nearest mode, without the 3-sigma quality
    cut: it separates mode collapse (few modes covered) from imprecise samples (modes covered but not hit).
    """
    distance, nearest = torch.cdist(samples.reshape(-1, 2).float(), centers).min(dim=1)
    good = distance <= 3 * std
    threshold = max(1.0, min_share * len(samples) / len(centers))
    hit = torch.bincount(nearest[good], minlength=len(centers)) >= threshold
    covered = torch.bincount(nearest, minlength=len(centers)) >= threshold
    return {"modes_hit": float(hit.sum()), "modes_covered": float(covered.sum()),
            "high_quality_fraction": float(good.float().mean())}
