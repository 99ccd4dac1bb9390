"""The decoded-dataset cache: images decoded once, kept outside the repository, keyed by the source's content.

A file's key is its SHA-256; a folder's is its file names, sizes and mtimes, so a re-copied archive still hits the
cache. Writing a new cache for a path deletes that path's older ones (each is about 80 MB for FER-2013).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ferlib.atomic import atomic_save
from ferlib.data.preprocess import IMAGE_SIZE

CACHE_FORMAT_VERSION = 1
ARRAYS = ("images", "labels", "splits", "paths")  # and the load report, as JSON


def default_cache_dir() -> Path:
    """Where decoded datasets are cached: $FERLIB_CACHE_DIR, else ~/.cache/ferlib."""
    configured = os.environ.get("FERLIB_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ferlib"


def _source_signature(source: Path) -> dict:
    """What the cache key depends on: a file's bytes, or a folder's names, sizes and mtimes (hashing images is slow)."""
    digest = hashlib.sha256()
    if source.is_dir():
        for root, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                relative = (Path(root) / name).relative_to(source).as_posix()
                try:
                    stat = (Path(root) / name).stat()
                except OSError:  # a dangling or looping link: listed as a bad file when the images are read
                    digest.update(f"{relative}\0unreadable\n".encode())
                    continue
                digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {"tree": digest.hexdigest()}
    with open(source, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest()}


def _cache_prefix(source: Path) -> str:
    """The part of a cache file name that stands for the source's path: `<stem>-<path digest>-`."""
    return f"{source.stem}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}-"


def cache_file(source: Path, cache_dir: str | os.PathLike | None) -> Path:
    """The cache file of `source`'s current content: `<stem>-<path digest>-<content key>.npz`."""
    signature = {"version": CACHE_FORMAT_VERSION, "size": IMAGE_SIZE, **_source_signature(source)}
    key = hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / f"{_cache_prefix(source)}{key}.npz"


def remove_stale_caches(cache_file: Path, source: Path) -> None:
    """Delete caches of the same source path whose content key no longer matches."""
    for stale in cache_file.parent.glob(f"{_cache_prefix(source)}*.npz"):
        if stale != cache_file:
            try:
                stale.unlink()
            except OSError as error:
                print(f"warning: could not remove the stale dataset cache {stale}: {error}", file=sys.stderr)


def write_cache(cache_file: Path, arrays: dict[str, np.ndarray], report: dict) -> None:
    """Save the decoded arrays and the load report; a cache that cannot be written is a warning, not a failure."""
    payload = {name: arrays[name] for name in ARRAYS} | {"report": np.array(json.dumps(report))}
    try:
        atomic_save(cache_file, lambda temporary: np.savez(temporary, **payload))
    except OSError as error:
        print(f"warning: could not write the dataset cache {cache_file}: {error}", file=sys.stderr)


def read_cache(cache_file: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The cached arrays and load report, or None when the file is unreadable or from another format."""
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            return {name: data[name] for name in ARRAYS}, json.loads(str(data["report"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
