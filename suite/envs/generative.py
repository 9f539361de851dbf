"""Data sets of the GAN-evaluation task: image sets (family ``images``) and 2-D Gaussian mixtures (``points2d``).

- ``digits``: scikit-learn's bundled 8x8 digits (offline; the default profiles).  Train on the fixed train split,
  evaluate FID/IS/KID against the held-out test split, as Lucic et al. do with the MNIST test set.
- ``mnist``, ``fashion-mnist``, ``cifar10``: the real sets through ``suite.data.vision`` (``paper`` profile).
- ``gaussian-ring``: 8 Gaussians on a circle of radius 2, sigma 0.02 (Metz et al. 2017, unrolled GANs).
  ``gaussian-grid``: 25 Gaussians on the 5x5 grid {-4,-2,0,2,4}^2, sigma 0.05 (Srivastava et al. 2017, VEEGAN).
  Points are drawn from a fixed-seed generator, so every run sees the same sets; mode-collapse shows directly
  in ``modes_hit`` / ``high_quality_fraction`` (suite.metrics.generative.mode_coverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from suite.registry import register_env

IMAGE_SETS = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
MIXTURES = {"gaussian-ring": (8, 0.02), "gaussian-grid": (25, 0.05)}
MIXTURE_TRAIN, MIXTURE_EVAL = 50_000, 10_000

register_env("digits", "images", "scikit-learn 8x8 digits (offline), FID on a digits classifier",
             shape=IMAGE_SETS["digits"], num_classes=10)
register_env("mnist", "images", "MNIST 28x28 (needs the files in SUITE_DATA), FID on Inception features",
             shape=IMAGE_SETS["mnist"], num_classes=10)
register_env("fashion-mnist", "images", "Fashion-MNIST 28x28 (needs the files in SUITE_DATA)",
             shape=IMAGE_SETS["fashion-mnist"], num_classes=10)
register_env("cifar10", "images", "CIFAR-10 32x32 RGB (needs the files in SUITE_DATA)",
             shape=IMAGE_SETS["cifar10"], num_classes=10)
register_env("gaussian-ring", "points2d", "ring of 8 2-D Gaussians, radius 2, sigma 0.02", num_modes=8, std=0.02)
register_env("gaussian-grid", "points2d", "5x5 grid of 2-D Gaussians, spacing 2, sigma 0.05", num_modes=25, std=0.05)


@dataclass
class GenerativeData:
    """A training set and the held-out real set the metrics compare samples with.

    Images are float32 (N, C, H, W) in [0, 1]; points are float32 (N, 2).  ``eval_labels`` are classes (images)
    or mode indices (points); ``centers``/``std`` describe a Gaussian mixture (None for images).
    """

    name: str
    train: torch.Tensor
    eval_real: torch.Tensor
    eval_labels: torch.Tensor
    num_classes: int
    centers: torch.Tensor | None = None
    std: float = 0.0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.centers is None


def mixture_centers(name: str) -> torch.Tensor:
    """The (K, 2) mode centres of ``gaussian-ring`` / ``gaussian-grid``."""
    if name == "gaussian-ring":
        angles = 2 * np.pi * np.arange(8) / 8
        return torch.tensor(np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1), dtype=torch.float32)
    if name == "gaussian-grid":
        axis = np.arange(-4.0, 4.01, 2.0)
        return torch.tensor(np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2), dtype=torch.float32)
    raise KeyError(f"unknown mixture {name!r}; known: {', '.join(MIXTURES)}")


def _mixture_points(name: str, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    centers = mixture_centers(name).numpy()
    std = MIXTURES[name][1]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(centers), count)
    points = centers[labels] + std * rng.standard_normal((count, 2))
    return torch.tensor(points, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def load_generative_data(name: str) -> GenerativeData:
    """Load data set ``name`` (see the module docstring); real image sets raise DataUnavailable when offline."""
    if name in MIXTURES:
        train, _ = _mixture_points(name, MIXTURE_TRAIN, seed=0)
        eval_real, eval_labels = _mixture_points(name, MIXTURE_EVAL, seed=1)
        return GenerativeData(name, train, eval_real, eval_labels, MIXTURES[name][0], mixture_centers(name),
                              MIXTURES[name][1])
    if name == "digits":
        from suite.data.digits import load_digits_split

        x_train, _, x_test, y_test = load_digits_split()
        return GenerativeData(name, x_train.unsqueeze(1), x_test.unsqueeze(1), y_test, 10)
    if name in ("mnist", "fashion-mnist", "cifar10"):
        from suite.data import vision

        if name == "cifar10":
            x_train, _, x_test, y_test = vision.load_cifar10()
        else:
            x_train, _, x_test, y_test = vision.load_mnist(fashion=name == "fashion-mnist")
        return GenerativeData(name, _to_float_images(x_train), _to_float_images(x_test),
                              torch.as_tensor(y_test, dtype=torch.int64), 10)
    raise KeyError(f"unknown generative data set {name!r}; known: {', '.join([*IMAGE_SETS, *MIXTURES])}")


def _to_float_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) / (N, C, H, W) -> float32 (N, C, H, W) in [0, 1]."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous()
