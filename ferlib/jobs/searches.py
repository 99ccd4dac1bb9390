"""Search folders: a hyperparameter search's job folder (ferlib.jobs.folder) and the files the search adds.

Besides config.json (the SearchConfig), status.json, progress.jsonl (batch and epoch records of the baseline and of
every trial) and log.txt, a search folder holds trials.jsonl (a record when each trial starts and ends),
baseline.json (the untuned config's score on the same budget), best.json (the best trial so far, with its full
TrainConfig), recipe.json (the training recipe revision its trials use) and tuner/ (keras-tuner's own project,
reloaded on resume). ferlib.tuning.search_launch creates, starts and resumes searches. Plain Python: no Keras, so the
dashboard can import it cheaply.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferlib.atomic import read_json, read_json_lines, read_json_object
from ferlib.jobs.folder import (
    ACTIVE_STATES,
    CONFIG_FILE,
    PROGRESS_FILE,
    JobLabel,
    default_searches_dir,
    is_active,
    read_label,
    read_status,
)
from ferlib.jsonutil import as_int, as_number

TRIALS_FILE = "trials.jsonl"
BASELINE_FILE = "baseline.json"
BEST_FILE = "best.json"
RECIPE_FILE = "recipe.json"
TUNER_DIR = "tuner"
BASELINE_TRIAL = "baseline"


def recipe_revision(search_dir: str | os.PathLike) -> int | None:
    """The training recipe revision the search's trials were trained with; None for folders without recipe.json."""
    revision = read_json_object(Path(search_dir) / RECIPE_FILE).get("revision")
    return revision if isinstance(revision, int) and not isinstance(revision, bool) else None


def is_search(path: str | os.PathLike) -> bool:
    config = read_json(Path(path) / CONFIG_FILE, default=None)
    return isinstance(config, dict) and "strategy" in config and "space" in config


# --- reading a search ---------------------------------------------------------------------------------------


@dataclass
class TrialRow:
    """One line of the trials table."""

    trial: str
    hyperparameters: dict[str, Any]
    score: float | None
    status: str  # running, completed, failed, invalid, interrupted (retried on resume)
    duration_seconds: float | None
    epochs: int | None
    started: float | None
    worker: str | None = None  # which worker process trained it, in a search spread over several


def read_trials(search_dir: str | os.PathLike, now: float | None = None) -> list[TrialRow]:
    """The trials in the order they first started; a trial killed or stopped mid-way reads as 'interrupted'.

    A retried trial (resuming a search re-runs the trial it was in) keeps its first position and its latest state.
    """
    path = Path(search_dir)
    active = is_active(path)
    rows: dict[str, TrialRow] = {}
    for record in read_json_lines(path / TRIALS_FILE):
        trial = str(record.get("trial"))
        if record.get("event") == "trial_start":
            values = record.get("hyperparameters")
            rows[trial] = TrialRow(trial, values if isinstance(values, dict) else {}, None, "running", None, None, None)
            rows[trial].started = as_number(record.get("time"))
            rows[trial].worker = str(record["worker"]) if record.get("worker") else None
        elif record.get("event") == "trial_end" and trial in rows:
            row = rows[trial]
            row.score = as_number(record.get("score"))
            row.status = str(record.get("status", "completed"))
            row.duration_seconds = as_number(record.get("duration_seconds"))
            row.epochs = as_int(record.get("epochs")) if record.get("epochs") is not None else None
    current = (now if now is not None else time.time()) if active else None
    for row in rows.values():
        if row.status == "running":
            if current is None:
                row.status = "interrupted"
            elif row.started:
                row.duration_seconds = current - row.started
    return list(rows.values())


def read_baseline(search_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The baseline's result ({'score', 'duration_seconds', 'config', ...}); None until it has trained."""
    return read_json_object(Path(search_dir) / BASELINE_FILE) or None


def read_best(search_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The best completed trial ({'trial', 'score', 'hyperparameters', 'config'}); None before one completes."""
    return read_json_object(Path(search_dir) / BEST_FILE) or None


def read_search_progress(search_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_json_lines(Path(search_dir) / PROGRESS_FILE)


def best_so_far(trials: list[TrialRow]) -> list[tuple[int, float]]:
    """(completed trial number from 1, best score up to it): the search's progress curve."""
    curve: list[tuple[int, float]] = []
    best = -math.inf
    for row in [row for row in trials if row.status == "completed" and row.score is not None]:
        best = max(best, float(row.score))
        curve.append((len(curve) + 1, best))
    return curve


def gain(best_score: float | None, baseline_score: float | None) -> tuple[float, float] | None:
    """(absolute gain in accuracy points, relative gain) of the best trial over the baseline; None if unknown."""
    if best_score is None or baseline_score is None:
        return None
    relative = (best_score - baseline_score) / baseline_score if baseline_score > 0 else math.inf
    return best_score - baseline_score, relative


def untrained_baseline_note(baseline: dict[str, Any] | None, epochs: int, subset: float) -> str | None:
    """A sentence for a baseline that scored no better than always answering the commonest class (it learned
    nothing on the search's budget, so gains over it flatter the trials); None otherwise or when unrecorded."""
    baseline = baseline or {}
    score, share = baseline.get("score"), baseline.get("commonest_class_share")
    if not isinstance(score, (int, float)) or not isinstance(share, (int, float)) or score > share + 0.005:
        return None
    return (
        f"The baseline scored no better than always answering *{baseline.get('commonest_class', '?')}* "
        f"({share:.1%} of the validation faces): {epochs} epoch(s) on {subset:.0%} of the training images were "
        "probably too few for it to learn, so the gain over it flatters the trials. More epochs per trial or a larger "
        "training fraction give a baseline worth beating."
    )


@dataclass
class SearchSummary:
    """One line of the searches list."""

    search_id: str
    path: Path
    state: str
    strategy: str
    trials_completed: int
    max_trials: int
    best_score: float | None
    baseline_score: float | None
    started: float | None
    label: JobLabel = field(default_factory=JobLabel)

    @property
    def title(self) -> str:
        """The search's name, or its id when it has none."""
        return self.label.title(self.search_id)


def summarize_search(search_dir: str | os.PathLike) -> SearchSummary:
    path = Path(search_dir)
    status = read_status(path)
    config = read_json_object(path / CONFIG_FILE)
    trials = read_trials(path)
    best, baseline = read_json_object(path / BEST_FILE), read_json_object(path / BASELINE_FILE)
    return SearchSummary(
        search_id=path.name,
        path=path,
        state=str(status.get("state", "interrupted")),
        strategy=str(config.get("strategy", "?")),
        trials_completed=sum(row.status == "completed" for row in trials),
        max_trials=as_int(config.get("max_trials")),
        best_score=as_number(best.get("score")),
        baseline_score=as_number(baseline.get("score")),
        started=as_number(status.get("started")),
        label=read_label(path),
    )


def list_searches(searches_dir: str | os.PathLike | None = None) -> list[SearchSummary]:
    """All search folders under `searches_dir`, newest first."""
    root = Path(searches_dir) if searches_dir is not None else default_searches_dir()
    if not root.is_dir():
        return []
    found = [summarize_search(child) for child in root.iterdir() if child.is_dir() and is_search(child)]
    return sorted(found, key=lambda search: search.search_id, reverse=True)


def active_searches(searches_dir: str | os.PathLike | None = None) -> list[SearchSummary]:
    """Searches that are starting or running (their folders say so and their process is alive), newest first."""
    return [search for search in list_searches(searches_dir) if search.state in ACTIVE_STATES]
