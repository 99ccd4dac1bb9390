"""Portable training snapshots: one checksummed file that recreates a run folder on any machine.

A run folder is tied to the machine it trains on. A snapshot carries everything its resume needs (config, saved
state and patience counters, history, progress log, the last checkpoint's weights with the optimizer's slots and
weight average, the best checkpoint's weights), so `python -m ferlib train --resume-from FILE` continues the run at
the same optimizer step, rate and history elsewhere. Large float arrays travel in half precision (a round trip
changes a weight by at most 1 part in 2,048; small arrays such as batch-norm statistics, and integers, stay exact),
stored as two byte planes (all high bytes, then all low bytes) so that compression finds the repetitive sign and
exponent bits: a 2.6-million-parameter run takes under 20 MiB, a 3.5-million one about 23.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferlib import jsonutil
from ferlib.atomic import atomic_save, atomic_write_bytes
from ferlib.errors import FerError
from ferlib.jobs import folder, runs
from ferlib.nets.architectures import build_model
from ferlib.training import distillation, run_launch
from ferlib.training.config import TrainConfig
from ferlib.training.trainer import compile_with_optimizer

FORMAT = "ferlib-training-snapshot"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 stored 16-bit arrays as they are, without byte planes
BYTE_PLANES = "byte-planes"
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
# Run-folder files a snapshot carries as they are (config.json is required; the others when the run has them).
RUN_FILES = (
    folder.CONFIG_FILE,
    runs.STATE_FILE,
    runs.HISTORY_FILE,
    folder.PROGRESS_FILE,
    folder.LOG_FILE,
    folder.LABEL_FILE,
    runs.METRICS_FILE,
    runs.INITIAL_MODEL_CARD,
    "last.json",
    "best.json",
    distillation.TARGETS_FILE,
)
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
HALF_PRECISION_MIN_SIZE = 4096  # float arrays with at least this many values travel as float16
FLOAT16_MAX = float(np.finfo(np.float16).max)
HALF_PRECISION = ("float16", "bfloat16")
CONSISTENT_READ_ATTEMPTS = 5  # a training process may save the next epoch while the snapshot reads the folder


@dataclass(frozen=True)
class SnapshotSummary:
    """What a snapshot holds, as `snapshot` and `train --resume-from` report it."""

    path: Path
    run_id: str
    epochs_completed: int
    epochs: int
    optimizer_steps: int
    best_val_accuracy: float | None
    size_bytes: int
    half_precision_arrays: int
    exact_arrays: int


def write_snapshot(run_dir: str | os.PathLike, output: str | os.PathLike) -> SnapshotSummary:
    """Write the run's snapshot to `output` (atomically); the run may be training meanwhile."""
    run_dir = Path(run_dir)
    config = run_launch.load_config(run_dir)
    if not (run_dir / runs.LAST_MODEL).exists():
        raise FerError(
            f"Expected a run that has saved a checkpoint (last.keras) to snapshot; received {run_dir.name}, which "
            "has not finished an epoch yet"
        )
    for _ in range(CONSISTENT_READ_ATTEMPTS):
        before = _checkpoint_stamp(run_dir)
        files = {name: (run_dir / name).read_bytes() for name in RUN_FILES if (run_dir / name).is_file()}
        arrays, entries, optimizer = _checkpoint_arrays(run_dir)
        state = runs.saved_state(run_dir)  # inside the window: the state of the very checkpoints read
        if _checkpoint_stamp(run_dir) == before:
            break
        time.sleep(2)
    else:
        raise FerError(
            f"Expected the run's checkpoints to stay unchanged for a moment; received {run_dir.name} saving new "
            f"ones throughout {CONSISTENT_READ_ATTEMPTS} attempts: try again"
        )
    epochs_completed = jsonutil.as_int(state.get("epochs_completed"))
    files[runs.HISTORY_FILE] = _history_up_to(files.get(runs.HISTORY_FILE, b""), epochs_completed)
    files[runs.STATE_FILE] = json.dumps(state, indent=2).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files[ARRAYS] = buffer.getvalue()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_dir.name,
        "created": time.time(),
        "epochs_completed": epochs_completed,
        "epochs": config.epochs,
        "optimizer_steps": int(arrays[_optimizer_step_key(entries)]) if _optimizer_step_key(entries) else 0,
        "best_val_accuracy": jsonutil.as_number(state.get("best_val_accuracy")),
        "optimizer": optimizer,
        "arrays": entries,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as handle:
        handle.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for name, data in files.items():
            handle.writestr(name, data)
    output = Path(output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output, archive.getvalue())
    return _summary(output, manifest)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read into memory and checked: its manifest, run files and arrays."""

    path: Path
    manifest: dict[str, Any]
    files: dict[str, bytes]
    arrays: dict[str, np.ndarray]
    config: TrainConfig

    @property
    def summary(self) -> SnapshotSummary:
        return _summary(self.path, self.manifest)


def read_snapshot(path: str | os.PathLike) -> Snapshot:
    """Read and verify a snapshot; a truncated, corrupted or foreign file raises one 'Expected …' ValueError."""
    path = Path(path).expanduser()
    expected = "a ferlib training snapshot (written by `python -m ferlib snapshot`)"
    if not path.is_file():
        raise FerError(f"Expected {expected}; received {str(path)!r}, which is not a file")
    try:
        with zipfile.ZipFile(path) as handle:
            names = set(handle.namelist())
            if MANIFEST not in names:
                raise FerError(f"Expected {expected}; received {path.name}, a zip without its {MANIFEST}")
            manifest = json.loads(handle.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise FerError(f"Expected {expected}; received {path.name}, whose manifest is of another format")
            if manifest.get("version") not in READABLE_VERSIONS:
                raise FerError(
                    f"Expected a snapshot of format version {VERSION} or earlier; received {path.name}, of version "
                    f"{manifest.get('version')!r}: use the ferlib version that wrote it"
                )
            checksums = manifest.get("sha256")
            if not isinstance(checksums, dict) or folder.CONFIG_FILE not in checksums or ARRAYS not in checksums:
                raise FerError(f"Expected {expected}; received {path.name}, whose manifest lists no contents")
            foreign = sorted(set(checksums) - {*RUN_FILES, ARRAYS})
            run_id = manifest.get("run_id")
            if foreign or not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
                shown = f"files {foreign}" if foreign else f"run id {run_id!r}"
                raise FerError(f"Expected {expected}; received {path.name}, which names {shown}")
            files = {}
            for name, digest in checksums.items():
                if name not in names:
                    raise FerError(f"Expected {name} in the snapshot; received {path.name} without it")
                data = handle.read(name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise FerError(f"Expected {name} to match its checksum; received {path.name} with it altered")
                files[name] = data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FerError(f"Expected {expected}; received {path.name}, which is truncated or damaged ({error})") from None
    with np.load(io.BytesIO(files.pop(ARRAYS)), allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    stored_config = json.loads(files[folder.CONFIG_FILE])
    if not isinstance(stored_config, dict):
        raise FerError(f"Expected {expected}; received {path.name}, whose config.json is not a settings object")
    config = TrainConfig.from_dict(stored_config)  # one this ferlib cannot read: refused
    return Snapshot(path, manifest, files, arrays, config)


def restore_snapshot(
    snapshot: Snapshot | str | os.PathLike, runs_dir: str | os.PathLike | None = None, *, data: str | None = None
) -> Path:
    """Recreate the snapshot's run folder (same run id) under `runs_dir`, stopped and ready to resume; `data` names
    the dataset on this machine when it lies elsewhere than the snapshot's config says."""
    snapshot = snapshot if isinstance(snapshot, Snapshot) else read_snapshot(snapshot)
    root = Path(runs_dir) if runs_dir is not None else folder.default_runs_dir()
    run_dir = root / str(snapshot.manifest["run_id"])
    if run_dir.exists():
        raise FerError(
            f"Expected a runs folder without run {run_dir.name}; received {str(root)!r}, which has it: resume that "
            f"folder with --run-dir {run_dir} --resume, or restore into another --runs-dir"
        )
    last_model, best_model = _rebuild_models(snapshot)  # before anything is written: a mismatch creates nothing
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.restoring-", dir=root))
    try:
        for name, content in snapshot.files.items():
            atomic_write_bytes(staging / name, content)
        if data:
            config = snapshot.config.updated(data=str(Path(data).expanduser().resolve()))
            atomic_write_bytes(staging / folder.CONFIG_FILE, json.dumps(config.to_dict(), indent=2).encode())
        _save_keras(last_model, staging / runs.LAST_MODEL)
        if best_model is not None:
            _save_keras(best_model, staging / runs.BEST_MODEL)
        folder.write_status(staging, "stopped", reason=f"restored from the snapshot {snapshot.path.name}")
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def _summary(path: Path, manifest: dict[str, Any]) -> SnapshotSummary:
    entries = manifest.get("arrays", [])
    return SnapshotSummary(
        path=path,
        run_id=str(manifest.get("run_id")),
        epochs_completed=jsonutil.as_int(manifest.get("epochs_completed")),
        epochs=jsonutil.as_int(manifest.get("epochs")),
        optimizer_steps=jsonutil.as_int(manifest.get("optimizer_steps")),
        best_val_accuracy=jsonutil.as_number(manifest.get("best_val_accuracy")),
        size_bytes=path.stat().st_size,
        half_precision_arrays=sum(entry.get("stored") in HALF_PRECISION for entry in entries),
        exact_arrays=sum(entry.get("stored") not in HALF_PRECISION for entry in entries),
    )


def _checkpoint_stamp(run_dir: Path) -> tuple:
    """What changes whenever the training process saves an epoch."""
    names = (runs.LAST_MODEL, runs.BEST_MODEL, runs.STATE_FILE, "last.json", "best.json")
    return tuple((run_dir / name).stat().st_mtime_ns if (run_dir / name).exists() else None for name in names)


def _pack(value: np.ndarray, optimizer_state: bool = False) -> tuple[np.ndarray, str]:
    """An array as stored: a large float array in 16 bits, anything else exactly as it is.

    Weights (and their moving average) become float16: 11 bits of precision, and a weight's range fits. An
    optimizer's other slots (momentum, Adam's moments) span far smaller magnitudes, which float16 would flush to
    zero, so they keep float32's range in bfloat16 (its upper 16 bits, rounded to nearest).
    """
    value = np.asarray(value)
    if value.dtype != np.float32 or value.size < HALF_PRECISION_MIN_SIZE or not np.all(np.isfinite(value)):
        return value, str(value.dtype)
    if optimizer_state:
        bits = value.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return rounded.astype(np.uint16), "bfloat16"
    if float(np.max(np.abs(value), initial=0.0)) < FLOAT16_MAX:
        return value.astype(np.float16), "float16"
    return value, str(value.dtype)


def _byte_planes(value: np.ndarray) -> np.ndarray:
    """A 16-bit array as a (2, size) uint8 array: its values' first bytes, then their second bytes."""
    return np.ascontiguousarray(value.reshape(-1).view(np.uint8).reshape(-1, 2).T)


def _from_byte_planes(planes: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    kind = np.uint16 if entry.get("stored") == "bfloat16" else np.float16
    return np.ascontiguousarray(planes.T).view(kind).reshape(entry["shape"])


def _unpack(stored: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """The array as it was, from its stored form."""
    if entry.get("layout") == BYTE_PLANES:
        stored = _from_byte_planes(stored, entry)
    if entry.get("stored") == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored.astype(entry["dtype"])


def _checkpoint_arrays(run_dir: Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], dict[str, Any]]:
    """The last checkpoint's model and optimizer variables and the best checkpoint's weights, with their index."""
    import keras

    import ferlib.training.schedule  # noqa: F401  (registers the rate schedule the checkpoint's optimizer refers to)

    arrays: dict[str, np.ndarray] = {}
    entries: list[dict[str, Any]] = []

    def add(group: str, variables) -> None:
        for index, variable in enumerate(variables):
            value = keras.ops.convert_to_numpy(variable)
            key = f"{group}/{index}"
            # The optimizer's own slots keep their range; its weight average is a copy of the weights.
            slot = group.endswith("/optimizer") and not variable.path.endswith("_average")
            packed, stored = _pack(value, optimizer_state=slot)
            shape, dtype = list(value.shape), str(value.dtype)
            entry = {"key": key, "path": variable.path, "shape": shape, "dtype": dtype, "stored": stored}
            if stored in HALF_PRECISION:
                packed, entry["layout"] = _byte_planes(packed), BYTE_PLANES
            arrays[key] = packed
            entries.append(entry)

    last = keras.saving.load_model(run_dir / runs.LAST_MODEL, compile=True)
    add("last/model", last.weights)
    add("last/optimizer", last.optimizer.variables)
    optimizer = keras.saving.serialize_keras_object(last.optimizer)
    if (run_dir / runs.BEST_MODEL).exists():
        add("best/model", keras.saving.load_model(run_dir / runs.BEST_MODEL, compile=False).weights)
    return arrays, entries, optimizer


def _optimizer_step_key(entries: list[dict[str, Any]]) -> str | None:
    for entry in entries:
        if entry["key"].startswith("last/optimizer/") and entry["path"].endswith("/iteration"):
            return entry["key"]
    return None


def _history_up_to(history: bytes, epochs_completed: int) -> bytes:
    """history.csv without rows of epochs past the checkpoint (a training process may write them meanwhile)."""
    lines = history.decode("utf-8").splitlines(keepends=True)
    kept = lines[:1] + [
        line
        for line in lines[1:]
        if line.split(",", 1)[0].strip().isdigit() and int(line.split(",", 1)[0]) < epochs_completed
    ]
    return "".join(kept).encode("utf-8") if lines else b""


def _group(snapshot: Snapshot, group: str) -> list[tuple[dict[str, Any], np.ndarray]]:
    entries = [entry for entry in snapshot.manifest["arrays"] if entry["key"].startswith(group + "/")]
    return [(entry, _unpack(snapshot.arrays[entry["key"]], entry)) for entry in entries]


def _assign(variables, stored: list[tuple[dict[str, Any], np.ndarray]], what: str, name: str) -> None:
    variables = list(variables)
    if len(variables) != len(stored):
        raise FerError(
            f"Expected {len(variables)} {what} arrays for the snapshot's configured network; received {name} with "
            f"{len(stored)}"
        )
    for variable, (entry, value) in zip(variables, stored, strict=True):
        if tuple(variable.shape) != value.shape:
            raise FerError(
                f"Expected {what} array {variable.path} shaped {tuple(variable.shape)}; received {name} with "
                f"{entry['path']} shaped {value.shape}"
            )
        variable.assign(value)


def _rebuild_models(snapshot: Snapshot):
    """The last checkpoint (compiled, optimizer state in place) and the best one's weights, as Keras models."""
    import ferlib.training.schedule  # noqa: F401  (registers the rate schedule the saved optimizer refers to)

    config, name = snapshot.config, snapshot.path.name
    classes = len(config.class_set.names)
    last = build_model(config.architecture, num_classes=classes, **config.hyperparameters)
    _assign(last.weights, _group(snapshot, "last/model"), "model", name)
    optimizer = compile_with_optimizer(last, config, snapshot.manifest["optimizer"])
    _assign(optimizer.variables, _group(snapshot, "last/optimizer"), "optimizer", name)
    best = None
    if _group(snapshot, "best/model"):
        best = build_model(config.architecture, num_classes=classes, **config.hyperparameters)
        _assign(best.weights, _group(snapshot, "best/model"), "model", name)
    return last, best


def _save_keras(model, path: Path) -> None:
    atomic_save(path, model.save)
