"""Omniglot (Lake et al. 2015) for few-shot classification as in Finn et al. 2017, Sec. 5.2.

1623 handwritten characters from 50 alphabets, 20 drawings each.  Following the paper (and Santoro
et al. 2016): images are resized to 28x28, 1200 characters (chosen by a fixed permutation,
irrespective of alphabet) are used for meta-training and the remaining 423 for testing, and every
character is augmented with its 90/180/270 degree rotations, each counted as a new class.

The zips come from the brendenlake/omniglot GitHub repository, verified by md5 through
:func:`suite.data.download.ensure_files`; the decoded 28x28 array is cached next to them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from suite.registry import register_env

_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
ZIPS = {"images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
        "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811"}
IMAGE_SIZE = 28
N_TRAIN_CHARACTERS = 1200
SPLIT_SEED = 1

for _n in (5, 20):
    for _k in (1, 5):
        register_env(f"omniglot-{_n}way-{_k}shot", "omniglot", f"Omniglot {_n}-way {_k}-shot classification",
                     n_way=_n, k_shot=_k)


def parse_env(env: str) -> tuple[int, int]:
    """(N, K) of an ``omniglot-<N>way-<K>shot`` env name."""
    _, way, shot = env.split("-")
    return int(way.removesuffix("way")), int(shot.removesuffix("shot"))


def read_character_folders(folder: Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Read ``folder/<alphabet>/<character>/*.png`` into uint8 ``(characters, drawings, size, size)``.

    Strokes become 255 on a 0 background (the PNGs are black on white), as in the reference code.
    """
    from PIL import Image  # pillow ships with matplotlib; imported lazily to keep registration light

    characters = sorted(p for alphabet in sorted(folder.iterdir()) if alphabet.is_dir()
                        for p in alphabet.iterdir() if p.is_dir())
    if not characters:
        raise FileNotFoundError(f"no <alphabet>/<character>/ folders under {folder}")
    out = []
    for character in characters:
        drawings = []
        for png in sorted(character.glob("*.png")):
            with Image.open(png) as image:
                small = image.convert("L").resize((size, size), Image.LANCZOS)
            drawings.append(255 - np.asarray(small, dtype=np.uint8))
        out.append(np.stack(drawings))
    return torch.from_numpy(np.stack(out))


def load_omniglot(root: Path | None = None) -> torch.Tensor:
    """All 1623 characters as uint8 ``(1623, 20, 28, 28)``, background alphabets first."""
    from suite.data.download import RemoteFile, ensure_files

    folder = ensure_files("omniglot", [RemoteFile(_URL + name, name, md5) for name, md5 in ZIPS.items()], root)
    cache = folder / f"omniglot{IMAGE_SIZE}.pt"
    if cache.exists():
        return torch.load(cache)
    parts = []
    for name in ZIPS:
        extracted = folder / name.removesuffix(".zip")
        if not extracted.exists():
            with zipfile.ZipFile(folder / name) as archive:
                archive.extractall(folder)
        parts.append(read_character_folders(extracted))
    images = torch.cat(parts)
    torch.save(images, cache)
    return images


def split_characters(images: torch.Tensor, n_train: int = N_TRAIN_CHARACTERS,
                     seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random train/test split of the characters (the same for every run)."""
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    return images[order[:n_train]], images[order[n_train:]]


class EpisodeSampler:
    """N-way K-shot episodes over characters x {0, 90, 180, 270} degree rotations, vectorised over tasks.

    ``sample`` returns support ``(T, N*K, 1, H, W)`` float in [0, 1] with labels ``(T, N*K)`` and query
    ``(T, N*Q, 1, H, W)`` / ``(T, N*Q)``; class ``j`` of an episode has label ``j`` and its support and
    query drawings are distinct.
    """

    def __init__(self, images: torch.Tensor, n_way: int, k_shot: int, k_query: int, rotations: bool = True) -> None:
        turns = range(4) if rotations else range(1)
        # (characters * rotations, drawings, H, W): rotated copies precomputed once
        self.classes = torch.stack([torch.rot90(images, r, dims=(-2, -1)) for r in turns], dim=1).flatten(0, 1)
        self.n_way, self.k_shot, self.k_query = n_way, k_shot, k_query
        if self.classes.shape[0] < n_way or self.classes.shape[1] < k_shot + k_query:
            raise ValueError(f"{tuple(images.shape)} images cannot make {n_way}-way {k_shot}+{k_query}-shot episodes")

    def sample(self, num_tasks: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        n, k, q = self.n_way, self.k_shot, self.k_query
        n_classes, n_drawings = self.classes.shape[:2]
        cls = torch.rand(num_tasks, n_classes, generator=generator).argsort(dim=1)[:, :n]
        drawing = torch.rand(num_tasks, n, n_drawings, generator=generator).argsort(dim=2)[:, :, : k + q]
        x = self.classes[cls[:, :, None], drawing].float().div_(255.0).unsqueeze(3)  # (T, N, K+Q, 1, H, W)
        y = torch.arange(n).view(1, n, 1).expand(num_tasks, n, k + q)
        return (x[:, :, :k].flatten(1, 2), y[:, :, :k].flatten(1, 2),
                x[:, :, k:].flatten(1, 2), y[:, :, k:].flatten(1, 2))
