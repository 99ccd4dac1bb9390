"""Crash-safe file writes: write a temporary sibling, fsync, then rename over the target.

A process killed at any moment (even SIGKILL) leaves either the old file or the new one, never a
truncated one, so another process can always read a run folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:  # name the file the caller wanted to write, not the temporary one it never got
        raise _about(error, target) from None
    try:
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _about(error, target) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _about(error: OSError, target: Path) -> OSError:
    """The same failure (errno and reason), naming the file that was to be written."""
    return type(error)(error.errno, error.strerror or str(error), str(target))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """Replace `path` with pretty-printed JSON atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save(path: str | os.PathLike, save: Callable[[str], None]) -> None:
    """Call `save(temporary_path)` (e.g. `model.save`) and rename the result over `path`.

    The temporary name keeps the target's suffix, because Keras and NumPy choose the format by it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".weights.h5" if target.name.endswith(".weights.h5") else target.suffix  # Keras wants the whole ending
    stem = target.name[: len(target.name) - len(suffix)]
    temporary = target.with_name(f".{stem}.partial{os.getpid()}{suffix}")
    try:
        save(str(temporary))
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _about(error, target) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def append_json_line(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON record as a single line (one write call), flushed to disk."""
    line = json.dumps(record, default=_json_default) + "\n"
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line)
        stream.flush()


def read_json_lines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file of objects, skipping a torn last line left by a killed writer (and any non-object)."""
    records: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:  # garbage bytes: keep the records read before them
        return records
    return records


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file, returning `default` when it does not exist or cannot be parsed (or decoded as UTF-8)."""
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (FileNotFoundError, UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        return default


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file holding an object, or {} when it is missing, unreadable or holds something else (say, a list)."""
    value = read_json(path, default=None)
    return value if isinstance(value, dict) else {}


def _json_default(value: Any) -> Any:
    """Serialise NumPy scalars and arrays, paths and sets in JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")
