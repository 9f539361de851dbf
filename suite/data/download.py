"""Offline-first file fetching: verified files in the data root, a download only when the network allows.

Every data set of the ``paper`` profiles goes through :func:`ensure_files`, so a
missing file gives one line naming the file, its URL and where to place it,
instead of a stack trace from deep inside a loader.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class DataUnavailable(RuntimeError):
    """A data file is neither in the data root nor downloadable (offline, or the checksum did not match)."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    md5: str


def data_root() -> Path:
    """``$SUITE_DATA`` or ``~/.cache/suite``."""
    return Path(os.environ.get("SUITE_DATA", Path.home() / ".cache" / "suite")).expanduser()


def md5sum(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_files(dataset: str, files: list[RemoteFile], root: Path | None = None, timeout: float = 30.0) -> Path:
    """Return ``<root>/<dataset>/`` holding every file of ``files`` with a verified checksum.

    Files already present are verified, missing ones downloaded (into a temp file,
    verified, then renamed).  Raises :class:`DataUnavailable` naming the first file
    that can be neither found nor fetched.
    """
    folder = (root or data_root()) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for remote in files:
        target = folder / remote.filename
        if target.exists():
            if md5sum(target) == remote.md5:
                continue
            raise DataUnavailable(
                f"{target}: md5 {md5sum(target)} does not match the expected {remote.md5}; delete it and retry"
            )
        _download(remote, target, timeout)
    return folder


def _download(remote: RemoteFile, target: Path, timeout: float) -> None:
    hint = f"place {remote.filename} (md5 {remote.md5}, from {remote.url}) in {target.parent}/ or set SUITE_DATA"
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response:  # noqa: S310 (https URLs from code)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                shutil.copyfileobj(response, tmp)
                tmp_path = Path(tmp.name)
    except OSError as error:
        raise DataUnavailable(f"cannot download {remote.filename} ({type(error).__name__}: {error}); {hint}") from None
    if md5sum(tmp_path) != remote.md5:
        tmp_path.unlink(missing_ok=True)
        raise DataUnavailable(f"downloaded {remote.filename} has the wrong md5; {hint}")
    os.replace(tmp_path, target)
