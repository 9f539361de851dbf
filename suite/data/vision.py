"""Real loaders for the ``paper`` profiles: MNIST, Fashion-MNIST, CIFAR-10 (verified by md5, offline-first)."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np

from suite.data.download import RemoteFile, ensure_files

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_FILES = [RemoteFile(_MNIST_URL + name, name, md5) for name, md5 in zip(_IDX_NAMES, (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))]
FASHION_FILES = [RemoteFile(_FASHION_URL + name, name, md5) for name, md5 in zip(_IDX_NAMES, (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))]
CIFAR10_FILES = [RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                            "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def read_idx(path: Path) -> np.ndarray:
    """Decode a (gzipped) IDX file as used by MNIST: big-endian dims after a 4-byte magic."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: Path | None = None, fashion: bool = False) -> Arrays:
    """``(x_train uint8 (60000, 28, 28), y_train int64, x_test, y_test)`` of MNIST or Fashion-MNIST."""
    name, files = ("fashion-mnist", FASHION_FILES) if fashion else ("mnist", MNIST_FILES)
    folder = ensure_files(name, files, root)
    x_train, y_train, x_test, y_test = (read_idx(folder / remote.filename) for remote in files)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def load_cifar10(root: Path | None = None) -> Arrays:
    """``(x_train uint8 (50000, 32, 32, 3), y_train int64, x_test (10000, ...), y_test)``."""
    folder = ensure_files("cifar10", CIFAR10_FILES, root)
    batches: dict[str, dict] = {}
    with tarfile.open(folder / CIFAR10_FILES[0].filename) as archive:
        for member in archive.getmembers():
            stem = Path(member.name).name
            if stem.startswith(("data_batch_", "test_batch")):
                batches[stem] = pickle.load(archive.extractfile(member), encoding="bytes")  # noqa: S301 (md5-verified)

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        images = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.concatenate([batches[n][b"labels"] for n in names]).astype(np.int64)
        return np.ascontiguousarray(images), labels

    x_train, y_train = stack([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = stack(["test_batch"])
    return x_train, y_train, x_test, y_test
