"""Starting an ensemble job: the request checked in full, then combined in the job's own process
(`python -m ferlib ensemble --job-dir DIR`, which runs ferlib.training.combine.ship_ensemble_job)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ferlib.errors import FerError
from ferlib.jobs.ensembles import KIND, list_ensemble_jobs
from ferlib.jobs.folder import create_job, default_ensembles_dir, existing_dataset, launch, launch_lock, new_job_id
from ferlib.nets.ensemble import ensemble_weights
from ferlib.nets.modelio import models_dir
from ferlib.training.ship import checked_notes, checked_target

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def new_model_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Where a new model called `name` is saved beside the shipped models (`folder`, models_dir() by default);
    refused for a name that is not a plain file name, or one a model already has."""
    if not MODEL_NAME.fullmatch(name):
        raise FerError(f"Expected a model name of letters, digits, '-' and '_' (up to 64); received {name!r}")
    path = (Path(folder) if folder is not None else models_dir()) / f"{name}.keras"
    if path.exists():
        raise FerError(f"Expected a new model name; received {name!r}, which {path.parent} already holds")
    return path


def ensemble_request(
    models: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    output: str | os.PathLike,
    weights: Sequence[float] | None = None,
    notes: Sequence[str] = (),
) -> dict:
    """The config of an ensemble job; refused (FerError) for what can be told without loading a model: fewer than
    two models, missing or repeated files, wrong weights, a missing dataset, or an output that exists or is a member
    (the job's process refuses models over different classes when it loads them)."""
    paths = [Path(model).expanduser().resolve() for model in models]
    ensemble_weights(weights, len(paths))  # two or more models, one positive weight each
    for path in paths:
        if path.suffix != ".keras" or not path.is_file():
            raise FerError(f"Expected an existing .keras model to combine; received {str(path)!r}")
    if len(set(paths)) != len(paths):
        raise FerError(f"Expected different models to combine; received {[str(path) for path in paths]}")
    target = checked_target(output).expanduser().resolve()
    if target in paths:
        raise FerError(f"Expected an output path other than the models combined; received {str(output)!r}")
    if target.exists():  # a job saves a new model; `ferlib ensemble --output` may replace one on purpose
        raise FerError(f"Expected a new output path; received {str(output)!r}, which exists")
    return {
        "kind": KIND,
        "models": [str(path) for path in paths],
        "weights": None if weights is None else [float(weight) for weight in weights],
        "data": str(Path(existing_dataset(str(data))).expanduser().resolve()),
        "output": str(target),
        "notes": checked_notes(notes),
    }


def start_ensemble(
    models: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    output: str | os.PathLike,
    weights: Sequence[float] | None = None,
    *,
    notes: Sequence[str] = (),
    root: str | os.PathLike | None = None,
) -> Path:
    """Check the request, make its job folder under `root` ($FERLIB_ENSEMBLES_DIR or ensembles/) and start its
    process; one ensemble job at a time. Returns the job folder."""
    config = ensemble_request(models, data, output, weights, notes)
    root = Path(root) if root is not None else default_ensembles_dir()
    with launch_lock(root):
        if active := [job for job in list_ensemble_jobs(root) if job.active]:
            busy = f"{active[0].path.name} ({active[0].state}), which writes {active[0].name}"
            raise FerError(f"Expected no ensemble being combined; received {busy}: wait for it or stop it")
        job_dir = create_job(root, new_job_id(KIND), config)
        launch(job_dir, ["ensemble", "--job-dir", str(job_dir)], resume=False)
    return job_dir
