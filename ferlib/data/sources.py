"""Where datasets live on this machine: the data folders, the datasets found in them, and a cheap fingerprint."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_directories() -> list[Path]:
    """Where the app looks for datasets: $FERLIB_DATA_DIR (os.pathsep-separated), else data/ and ../shared/data."""
    configured = os.environ.get("FERLIB_DATA_DIR")
    if configured:
        return [Path(part).expanduser() for part in configured.split(os.pathsep) if part]
    return [REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]


def upload_directory() -> Path:
    """Where uploaded and downloaded datasets are stored: the first data directory."""
    return data_directories()[0]


def dataset_sources() -> list[Path]:
    """Datasets found in the data directories: .zip and .csv files and sub-folders."""
    found: list[Path] = []
    for directory in data_directories():
        if not directory.is_dir():
            continue
        for child in sorted(directory.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir() or child.suffix.lower() in (".zip", ".csv"):
                found.append(child)
    return found


def dataset_version(path: str | os.PathLike) -> tuple[int, int]:
    """A cheap fingerprint of a dataset on disk (size and newest modification time, in nanoseconds).

    A file replaced at the same path, or images added to a folder's class folders, change it; caches keyed by
    it then load the new data instead of serving the old.
    """
    root = Path(path)
    if not root.exists():
        return (0, 0)
    if root.is_file():
        status = root.stat()
        return (status.st_size, status.st_mtime_ns)
    folders = [root, *_subfolders(root)]  # split or class folders, then class folders: a file added changes one
    folders += [child for folder in folders[1:] for child in _subfolders(folder)]
    return (len(folders), max(folder.stat().st_mtime_ns for folder in folders))


def _subfolders(folder: Path) -> list[Path]:
    """Sub-folders, told apart by the directory listing itself (no stat per image in a class folder)."""
    with os.scandir(folder) as entries:
        return [Path(entry.path) for entry in entries if entry.is_dir()]
