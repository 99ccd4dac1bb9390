"""Checking an uploaded dataset .zip before it is stored, and reading single files of a dataset source.

An uploaded zip is never extracted: `ferlib.data.datasets.load_dataset` reads it in place. It is still checked as if it
were going to be, because a person may unpack it by hand: no entry may point outside the folder it would be
extracted into (absolute paths, `..`, symbolic links), the declared uncompressed size is bounded (zip bombs; Python's
zipfile never inflates a member past its declared size), and it must hold a layout the loader knows.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import lzma
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ferlib.atomic import atomic_write_bytes
from ferlib.data.layouts import EXPECTED_LAYOUTS, classify_entry, has_images, is_hidden, split_from_name
from ferlib.errors import FerError

MEGABYTE = 1024 * 1024
DEFAULT_MAX_ZIP_BYTES = 300 * MEGABYTE
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2048 * MEGABYTE
DEFAULT_MAX_ENTRIES = 250_000
DEFAULT_UPLOAD_QUOTA_BYTES = 1024 * MEGABYTE  # about a dozen FER-2013 zips
# What reading one file of a folder or zip raises when the file, not the program, is at fault: missing, unreadable,
# too large (FerError), damaged (a bad CRC, a broken deflate stream, cut short), encrypted or compressed in a way
# Python's zipfile cannot read. Anything else is a bug and shows as one.
UNREADABLE_FILE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")

ZipSource = bytes | BinaryIO | str | os.PathLike


@dataclass
class ArchiveLimits:
    """Upper bounds for an accepted zip: its own size, its declared uncompressed size and its entry count."""

    max_zip_bytes: int = DEFAULT_MAX_ZIP_BYTES
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES


@dataclass
class ArchiveCheck:
    """What a checked zip holds: the layout the loader will see and its sizes."""

    layout: str  # "kaggle", "folder" or "csv", as in LoadReport.layout
    entries: int
    image_files: int
    zip_bytes: int
    uncompressed_bytes: int


@dataclass
class SavedArchive:
    """Where a checked zip was stored; `already_present` when an identical file was there already."""

    path: Path
    check: ArchiveCheck
    already_present: bool = False


def check_dataset_zip(source: ZipSource, limits: ArchiveLimits | None = None) -> ArchiveCheck:
    """Raise ValueError("Expected ...; received ...") unless `source` is a safe zip of a known dataset layout."""
    limits = limits or ArchiveLimits()
    data = _read_limited(source, limits.max_zip_bytes)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise FerError(f"Expected a .zip file; received {len(data)} bytes that are not a zip archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_entries(infos, limits)
            return _check_layout(archive, infos, zip_bytes=len(data))
    except zipfile.BadZipFile as error:
        raise FerError(f"Expected a readable .zip file; received a damaged archive ({error})") from None


def save_dataset_zip(
    source: ZipSource,
    file_name: str,
    directory: str | os.PathLike,
    limits: ArchiveLimits | None = None,
    quota_bytes: int | None = None,
) -> SavedArchive:
    """Check a zip, then store it in `directory` under a safe version of `file_name`, never overwriting another file.

    A file with the same bytes already there, under any name, is reused, so one zip uploaded twice is stored once
    (and decoded once). A new file that would take the folder's zips past `quota_bytes` (default: the
    upload quota) is refused.
    """
    limits = limits or ArchiveLimits()
    data = _read_limited(source, limits.max_zip_bytes)
    check = check_dataset_zip(data, limits)
    target_directory = Path(directory).expanduser()
    stored = sorted(target_directory.glob("*.zip")) if target_directory.is_dir() else []
    digest = hashlib.sha256(data).hexdigest()
    for existing in stored:
        if existing.is_file() and existing.stat().st_size == len(data) and _sha256(existing) == digest:
            return SavedArchive(path=existing, check=check, already_present=True)
    quota = upload_quota_bytes() if quota_bytes is None else quota_bytes
    used = sum(path.stat().st_size for path in stored if path.is_file())
    if used + len(data) > quota:
        raise FerError(
            f"Expected room for {len(data) / MEGABYTE:,.0f} MB in the upload folder, whose quota is "
            f"{quota / MEGABYTE:,.0f} MB; received {used / MEGABYTE:,.0f} MB already used: delete a dataset first"
        )
    for candidate in _candidate_paths(target_directory, safe_zip_name(file_name)):
        if not candidate.exists():
            atomic_write_bytes(candidate, data)
            return SavedArchive(path=candidate, check=check)
    raise FerError(f"Expected a free file name in {str(target_directory)!r}; received {file_name!r}, taken 1000 times")


def upload_quota_bytes() -> int:
    """How much the upload folder may hold: $FERLIB_UPLOAD_QUOTA_MB megabytes, else DEFAULT_UPLOAD_QUOTA_BYTES."""
    configured = os.environ.get("FERLIB_UPLOAD_QUOTA_MB", "").strip()
    try:
        return int(float(configured) * MEGABYTE) if configured else DEFAULT_UPLOAD_QUOTA_BYTES
    except ValueError:
        raise FerError(
            f"Expected FERLIB_UPLOAD_QUOTA_MB to be a number of megabytes; received {configured!r}"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_zip_name(file_name: str) -> str:
    """A plain file name ending in .zip: no folders, only letters, digits, '.', '_' and '-'."""
    base = PurePosixPath(file_name.replace("\\", "/")).name
    stem = base[:-4] if base.lower().endswith(".zip") else base
    stem = _UNSAFE_NAME_CHARACTERS.sub("_", stem).strip("._-")
    return f"{stem or 'dataset'}.zip"


def unsafe_entry_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an entry would land outside its extraction folder (or be a link), or None when it is safe."""
    name = info.filename.replace("\\", "/")
    if not name or "\x00" in name:
        return "an empty or NUL-containing name"
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a '..' path that escapes the folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def read_source_files(source: str | os.PathLike, members: Sequence[str]) -> list[bytes]:
    """The bytes of some files of a dataset source (a folder or a .zip), e.g. to show images before preprocessing.

    A zip is opened once for all members: parsing the central directory of 32k entries is the slow part.
    """
    with open_source(source) as read:
        return [read(member) for member in members]


@contextlib.contextmanager
def open_source(source: str | os.PathLike, *, max_file_bytes: int | None = None) -> Iterator[Callable[[str], bytes]]:
    """A reader of single files of a dataset source (a folder or a .zip, opened once), for reading them one by one.

    Each call returns one file's bytes or raises FerError: a member missing or outside the folder (a link out of it),
    or larger than `max_file_bytes`, which is refused before it is read (a small zip may inflate a huge member).
    """
    root = Path(source).expanduser()
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as archive:
            yield lambda member: _read_member(archive, root, member, max_file_bytes)
        return
    if root.is_dir():
        yield lambda member: _read_folder_file(root, member, max_file_bytes)
        return
    raise FerError(f"Expected a dataset folder or .zip; received {str(source)!r}")


# ---------------------------------------------------------------------------------------------
# Helpers


def _read_limited(source: ZipSource, max_bytes: int) -> bytes:
    """The zip's bytes, refusing more than `max_bytes` before reading them all."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FerError(f"Expected a .zip file; received {str(source)!r}, which is not a file")
        _check_size(path.stat().st_size, max_bytes)
        data = path.read_bytes()
    else:
        source.seek(0)
        data = source.read(max_bytes + 1)
    _check_size(len(data), max_bytes)
    return data


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FerError(f"Expected a .zip of at most {_megabytes(max_bytes)}; received {_megabytes(size)} or more")


def _check_entries(infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(infos) > limits.max_entries:
        raise FerError(f"Expected at most {limits.max_entries} entries in the zip; received {len(infos)}")
    for info in infos:
        reason = unsafe_entry_reason(info)
        if reason is not None:
            raise FerError(
                f"Expected zip entries that stay inside the dataset folder; received {reason}: {info.filename!r}"
            )
    uncompressed = sum(info.file_size for info in infos)
    if uncompressed > limits.max_uncompressed_bytes:
        raise FerError(
            f"Expected at most {_megabytes(limits.max_uncompressed_bytes)} once uncompressed; "
            f"received {_megabytes(uncompressed)} (a zip bomb or far more than a dataset needs)"
        )


def _check_layout(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], zip_bytes: int) -> ArchiveCheck:
    """The layout `load_dataset` will see, found with its own rules for hidden files, CSVs and emotion folders."""
    names = [info.filename for info in infos if not info.is_dir()]
    uncompressed = sum(info.file_size for info in infos)
    csv_names = [name for name in names if name.lower().endswith(".csv") and not is_hidden(name)]
    if csv_names and not has_images(names):
        _check_csv_header(archive, csv_names[0])
        return ArchiveCheck("csv", len(names), 0, zip_bytes, uncompressed)
    placed = [name for name in names if not is_hidden(name) and has_images([name])]
    placed = [name for name in placed if classify_entry(name)[0] is not None]
    if not placed:
        detail = f"a zip of {len(names)} files with no images inside a folder named after an emotion"
        raise FerError(f"Expected {EXPECTED_LAYOUTS}; received {detail}")
    has_splits = any(classify_entry(name)[1] or split_from_name(PurePosixPath(name).name) for name in placed)
    return ArchiveCheck("kaggle" if has_splits else "folder", len(names), len(placed), zip_bytes, uncompressed)


def _check_csv_header(archive: zipfile.ZipFile, name: str) -> None:
    with archive.open(name) as raw:
        first_line = raw.readline(64 * 1024).decode("utf-8-sig", errors="replace")  # -sig: Excel writes a BOM
    header = [column.strip().lower() for column in next(csv.reader([first_line]), [])]
    if "emotion" not in header or "pixels" not in header:
        raise FerError(f"Expected {EXPECTED_LAYOUTS}; received CSV {name!r} with columns {header}")


def _candidate_paths(directory: Path, file_name: str) -> Iterator[Path]:
    stem, suffix = file_name[:-4], file_name[-4:]
    yield directory / file_name
    for number in range(2, 1001):
        yield directory / f"{stem}-{number}{suffix}"


def _megabytes(size: int) -> str:
    return f"{size / MEGABYTE:.1f} MB"


def _read_member(archive: zipfile.ZipFile, root: Path, member: str, max_file_bytes: int | None = None) -> bytes:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise FerError(f"Expected a file inside {str(root)!r}; received {member!r}") from None
    _check_file_bytes(info.file_size, max_file_bytes)
    return archive.read(info)  # no more than its declared size: zipfile stops there (a lying header fails its CRC)


def _read_folder_file(root: Path, member: str, max_file_bytes: int | None = None) -> bytes:
    """A file under `root`, refusing paths that resolve outside it (and files over `max_file_bytes`)."""
    path = (root / member).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise FerError(f"Expected a file inside {str(root)!r}; received {member!r}")
    with open(path, "rb") as stream:
        _check_file_bytes(os.fstat(stream.fileno()).st_size, max_file_bytes)
        return stream.read()


def _check_file_bytes(size: int, max_file_bytes: int | None) -> None:
    if max_file_bytes is not None and size > max_file_bytes:
        raise FerError(f"Expected a file of at most {_megabytes(max_file_bytes)}; received {_megabytes(size)}")
