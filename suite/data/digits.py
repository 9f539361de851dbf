"""scikit-learn's bundled 8x8 digits: the offline data set behind the default profiles."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=4)
def _split_arrays(test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # pixel values are 0..16
    labels = digits.target.astype(np.int64)
    return tuple(
        train_test_split(images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    )


def load_digits_split(
    test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(x_train, y_train, x_test, y_test)``: float32 images (N, 8, 8) in [0, 1] and int64 labels.

    The split is stratified and fixed by ``seed`` so every baseline and run sees the same sets.
    Fresh tensors are returned on each call; callers may modify them.
    """
    x_train, x_test, y_train, y_test = _split_arrays(test_fraction, seed)
    return (torch.from_numpy(x_train.copy()), torch.from_numpy(y_train.copy()),
            torch.from_numpy(x_test.copy()), torch.from_numpy(y_test.copy()))
