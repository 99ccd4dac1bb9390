"""Ensemble jobs: a job folder (ferlib.jobs.folder) whose process combines saved models into one shipped ensemble.

Its config.json names the models, their weights, the dataset that measures the ensemble and the output .keras path;
status.json says what came of it (the output's accuracies when it finished, the error when it failed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferlib.atomic import read_json_object
from ferlib.jobs.folder import ACTIVE_STATES, CONFIG_FILE, default_ensembles_dir, read_status, request_stop, terminate
from ferlib.jsonutil import as_number

KIND = "ensemble"


@dataclass(frozen=True)
class EnsembleJob:
    """One job combining models: what it was asked and what came of it."""

    path: Path
    state: str
    models: tuple[str, ...]
    weights: tuple[float, ...]
    output: str
    error: str | None = None
    result: dict[str, Any] | None = None  # the shipped ensemble's figures, once finished
    started: float | None = None
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def name(self) -> str:
        """The model it writes, as its file is named without .keras."""
        return Path(self.output).stem


def summarize_ensemble_job(job_dir: str | os.PathLike) -> EnsembleJob:
    """The job in `job_dir`, read from its config and status (empty fields for unreadable ones)."""
    path = Path(job_dir)
    config, status = read_json_object(path / CONFIG_FILE), read_status(path)
    models = config.get("models") if isinstance(config.get("models"), list) else []
    weights = config.get("weights") if isinstance(config.get("weights"), list) else []
    result = status.get("result") if isinstance(status.get("result"), dict) else None
    return EnsembleJob(
        path=path,
        state=str(status.get("state", "interrupted")),
        models=tuple(str(model) for model in models),
        weights=tuple(number for number in map(as_number, weights) if number is not None),
        output=str(config.get("output", "")),
        error=str(status["error"]) if status.get("error") else None,
        result=result,
        started=as_number(status.get("started")),
        ended=as_number(status.get("ended")),
    )


def is_ensemble_job(path: str | os.PathLike) -> bool:
    return read_json_object(Path(path) / CONFIG_FILE).get("kind") == KIND


def list_ensemble_jobs(root: str | os.PathLike | None = None) -> list[EnsembleJob]:
    """Every ensemble job under `root` ($FERLIB_ENSEMBLES_DIR or ensembles/), newest first."""
    folder = Path(root) if root is not None else default_ensembles_dir()
    if not folder.is_dir():
        return []
    found = [child for child in folder.iterdir() if child.is_dir() and is_ensemble_job(child)]
    return [summarize_ensemble_job(child) for child in sorted(found, key=lambda child: child.name, reverse=True)]


def stop_ensemble_job(job_dir: str | os.PathLike) -> None:
    """Stop an ensemble job: a request its process reads when it begins, and SIGTERM once it runs."""
    request_stop(job_dir)
    terminate(job_dir)
