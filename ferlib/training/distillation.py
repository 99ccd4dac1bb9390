"""Learning from other models (knowledge distillation): soft targets from teachers, mixed into the labels.

FER-2013's labels are noisy (people agree with them about 65% of the time), and a model's probabilities say more than
a label does: that a face is half fear, half surprise. A run with `teachers` trains each face towards
`(1 - teacher_weight) * its one-hot label + teacher_weight * the teachers' averaged probabilities` (each teacher sees
the face and its mirror image). The targets are computed once, when the run starts, and kept in the run folder
(`teacher_targets.npz`, carried by snapshots), so a resumed or moved run needs neither the teachers nor their time.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferlib.atomic import atomic_write_bytes
from ferlib.classes import ClassSet
from ferlib.errors import FerError
from ferlib.evaluation.metrics import predict_probabilities, project_probabilities
from ferlib.nets.modelio import class_set_of, load_model

TARGETS_FILE = "teacher_targets.npz"
WORKER_WAIT_SECONDS = 3600  # a worker waits this long for the chief to score every face with every teacher


def faces_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """A name for a set of training faces and their labels, in order: targets belong to exactly these."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def teacher_probabilities(model, card: dict, images: np.ndarray, classes: ClassSet, name: str = "") -> np.ndarray:
    """One teacher's (N, classes) probabilities of `images` over `classes`, averaged with the mirror view.

    A merged class takes the sum of its emotions' probabilities; a subset of the teacher's classes is renormalised.
    """
    columns = class_set_of(card, name).columns_for(classes)  # FerError when the teacher lacks one of the classes
    return project_probabilities(predict_probabilities(model, images, tta="flip"), columns)


def compute_targets(teachers: Sequence[str], images: np.ndarray, classes: ClassSet) -> np.ndarray:
    """The teachers' averaged probabilities of every training face: (N, classes) float32."""
    total = np.zeros((len(images), len(classes.names)), dtype=np.float64)
    for path in teachers:
        model, card = load_model(path)
        total += teacher_probabilities(model, card, images, classes, path)
    return (total / len(teachers)).astype(np.float32)


def targets_for_run(
    run_dir: str | Path, config, images: np.ndarray, labels: np.ndarray, *, save: bool = True
) -> np.ndarray | None:
    """The run's teacher targets for its training faces (None without teachers): read from the run folder, or
    computed and saved there when the run starts. Targets computed on other faces or teachers are refused.

    Without `save` (a distributed run's worker) they are only read: the worker waits for the chief to write them.
    """
    if not config.teachers:
        return None
    path = Path(run_dir) / TARGETS_FILE
    digest = faces_digest(images, labels)
    if not save:
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(2)
    if path.exists():
        return _read_targets(path, config, digest, len(labels))
    if not save:
        raise FerError(
            f"Expected the chief to write {path.name} within {WORKER_WAIT_SECONDS // 60} minutes; received none"
        )
    print(f"learning from {len(config.teachers)} teacher(s): their targets for {len(labels):,} faces", file=sys.stderr)
    # Kept in half precision (probabilities to 1 part in 2,048): the same targets whether computed or read back.
    half = compute_targets(config.teachers, images, config.class_set).astype(np.float16)
    buffer = io.BytesIO()
    np.savez(buffer, targets=half, faces_digest=np.array(digest), teachers=np.array(config.teachers))
    atomic_write_bytes(path, buffer.getvalue())
    return half.astype(np.float32)


def _read_targets(path: Path, config, digest: str, count: int) -> np.ndarray:
    again = f"resume it with the dataset and teachers it started with, or delete {path.name} to score the faces again"
    try:
        with np.load(path) as stored:
            targets = stored["targets"].astype(np.float32)
            stored_digest, teachers = str(stored["faces_digest"]), [str(name) for name in stored["teachers"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise FerError(
            f"Expected readable teacher targets; received {str(path)!r}, which is damaged ({error})"
        ) from None
    if teachers != list(config.teachers):
        raise FerError(
            f"Expected the teachers {path.name} was computed from ({', '.join(teachers)}); received "
            f"{', '.join(config.teachers)}: {again}"
        )
    if stored_digest != digest or targets.shape != (count, len(config.class_set.names)):
        raise FerError(
            f"Expected the {len(targets):,} training faces {path.name} was computed on; received {count:,} faces "
            f"that differ from them: {again}"
        )
    return targets


def mixed_targets(labels: np.ndarray, num_classes: int, targets: np.ndarray | None, weight: float) -> np.ndarray:
    """Each face's training target: its one-hot label, with `weight` of it replaced by the teachers' targets."""
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    if targets is None or weight == 0:
        return one_hot
    return ((1.0 - weight) * one_hot + weight * targets).astype(np.float32)
