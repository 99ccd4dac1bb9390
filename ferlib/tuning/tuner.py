"""Hyperparameter search with keras-tuner, run in its own process on a search folder (see ferlib.jobs.searches).

`run_search` is what `python -m ferlib tune` executes. It first trains the untuned baseline config on the
search's budget, then lets a keras-tuner strategy (random, grid, Bayesian optimisation or Hyperband) train
trials built by `FerHyperModel` (ferlib.tuning.hypermodel): each trial is `trial_config(baseline, values)` trained
exactly as a training run would be. Progress goes to the folder as JSON lines, stop requests and SIGTERM end the search
after the current batch, and a stopped or killed search resumes where it was (keras-tuner reloads its project
with `overwrite=False` and re-runs the trial that was interrupted).
"""

from __future__ import annotations

import gc
import math
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np

from ferlib.atomic import append_json_line, atomic_write_json, read_json, read_json_object
from ferlib.data.datasets import Dataset, ProgressPrinter, load_dataset
from ferlib.errors import FerError
from ferlib.jobs import folder, network
from ferlib.jobs.folder import StopSignal, install_stop_signal
from ferlib.jobs.searches import (
    BASELINE_FILE,
    BASELINE_TRIAL,
    BEST_FILE,
    TRIALS_FILE,
    TUNER_DIR,
    read_trials,
)
from ferlib.training.trainer import steps_per_epoch
from ferlib.tuning import distributed
from ferlib.tuning.hypermodel import FerHyperModel, TuningData, build_compiled_model, fit_config
from ferlib.tuning.project import back_up_project, repair_project
from ferlib.tuning.search_launch import load_search_config
from ferlib.tuning.search_space import SearchConfig, trial_config
from ferlib.tuning.session import OBJECTIVE, SearchSession, SearchStopped, TimeLimitReached


class SessionHooks:
    """Tuner hooks shared by the four strategies: records, backups, stop/time checks, memory release."""

    session: SearchSession

    def pre_create_trial(self) -> None:
        self.session.before_trial()
        super().pre_create_trial()

    def on_trial_begin(self, trial) -> None:
        super().on_trial_begin(trial)
        if self.session.worker is None:  # with workers the chief writes the oracle's state, and backs it up
            back_up_project(self.project_dir)
        self.session.trial_begun(trial)

    def on_trial_end(self, trial) -> None:
        super().on_trial_end(trial)
        if self.session.worker is None:
            back_up_project(self.project_dir)
        self.session.trial_ended(self.oracle.get_trial(trial.trial_id))
        write_best(self.session.search_dir, self.session.config, self.oracle)
        keras.backend.clear_session()  # free the finished trial's graph and weights before the next one
        gc.collect()


def _tuner_class(base: type) -> type:
    return type(f"Fer{base.__name__}", (SessionHooks, base), {})


TUNERS = {
    "random": _tuner_class(keras_tuner.RandomSearch),
    "grid": _tuner_class(keras_tuner.GridSearch),
    "bayesian": _tuner_class(keras_tuner.BayesianOptimization),
    "hyperband": _tuner_class(keras_tuner.Hyperband),
}


def make_tuner(search_dir: Path, config: SearchConfig, hypermodel: FerHyperModel, session: SearchSession):
    """The strategy's tuner on the folder's tuner/ project, reloading it if it exists (overwrite=False)."""
    common = {
        "objective": keras_tuner.Objective(OBJECTIVE, direction="max"),
        "seed": config.base.seed,
        "directory": str(search_dir),
        "project_name": TUNER_DIR,
        "overwrite": False,
        "max_consecutive_failed_trials": 3,
    }
    if config.strategy == "hyperband":
        # Every Hyperband iteration has at least one trial: as many iterations as trials lets max_trials decide.
        strategy_settings = {"max_epochs": config.epochs, "factor": 3, "hyperband_iterations": config.max_trials}
    elif config.strategy == "bayesian":
        dimensions = sum(len(choices) > 1 for choices in config.space.values())
        initial_points = max(2, min(3 * dimensions, config.max_trials // 2))
        strategy_settings = {"max_trials": config.max_trials, "num_initial_points": initial_points}
    else:
        strategy_settings = {"max_trials": config.max_trials}
    tuner = TUNERS[config.strategy](hypermodel, **common, **strategy_settings)
    tuner.session = session
    tuner.oracle.max_trials = config.max_trials  # Hyperband has no max_trials of its own; the budget applies to all
    return tuner


def write_best(search_dir: Path, config: SearchConfig, oracle) -> None:
    """best.json: the best completed trial's score, hyperparameters and full TrainConfig."""
    best = oracle.get_best_trials(1)
    if not best or best[0].score is None or not math.isfinite(best[0].score):
        return
    trial = best[0]
    values = {name: trial.hyperparameters.values[name] for name in config.space if name in trial.hyperparameters}
    atomic_write_json(
        search_dir / BEST_FILE,
        {
            "trial": trial.trial_id,
            "score": float(trial.score),
            "hyperparameters": values,
            "config": trial_config(config.base, values).to_dict(),
            "updated": time.time(),
        },
    )


def train_baseline(search_dir: Path, session: SearchSession, data: TuningData, verbose: int) -> dict[str, Any]:
    """Train the untuned config on the search's budget and write baseline.json; progress as trial 'baseline'."""
    base = session.config.base
    started = time.time()
    model = build_compiled_model(base, data)
    steps = steps_per_epoch(len(data.train_labels), base)
    callback = session.progress_callback(BASELINE_TRIAL, base.epochs, steps)
    history = fit_config(model, base, data, [callback], epochs=base.epochs, verbose=verbose)
    scores = [float(value) for value in history.history.get(OBJECTIVE, []) if math.isfinite(value)]
    counts = data.validation[1].sum(axis=0)  # one-hot labels: faces per class
    result = {
        "score": max(scores) if scores else None,
        "best_epoch": int(np.argmax(scores)) + 1 if scores else None,
        "duration_seconds": time.time() - started,
        "epochs": base.epochs,
        "train_images": len(data.train_labels),
        "validation_images": len(data.validation[1]),
        # What always answering the commonest class scores: a baseline at this level learned nothing on its budget.
        "commonest_class": base.class_set.names[int(np.argmax(counts))],
        "commonest_class_share": float(counts.max() / max(counts.sum(), 1)),
        "parameters": int(model.count_params()),
        "config": base.to_dict(),
    }
    atomic_write_json(search_dir / BASELINE_FILE, result)
    keras.backend.clear_session()
    shown = f"{result['score']:.4f}" if result["score"] is not None else "none"
    print(f"baseline: {OBJECTIVE}={shown} in {result['duration_seconds']:.0f} s", flush=True)
    return result


def search_result(search_dir: Path) -> dict[str, Any]:
    """best_score, baseline and completed trials of the folder, as the CLI's last line and status.json report."""
    best, baseline = read_json_object(search_dir / BEST_FILE), read_json_object(search_dir / BASELINE_FILE)
    completed = sum(row.status == "completed" for row in read_trials(search_dir))
    return {"best_score": best.get("score"), "baseline_score": baseline.get("score"), "trials": completed}


def run_search(
    search_dir: str | Path,
    data: str | Path | None = None,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    verbose: int = 0,
) -> dict[str, Any]:
    """Run (or resume) the search in `search_dir` to its end, a stop request, or failure; returns the status."""
    path = Path(search_dir)
    config = load_search_config(path)
    if folder.read_status(path).get("state") == "running":
        raise FerError(f"Expected a search that is not running; received {path.name}, whose process is still running")
    stop = install_stop_signal(path)
    if stop.should_stop():  # Stop was pressed while the process started up; launchers drop stale requests
        folder.clear_stop_request(path)
        folder.write_status(path, "stopped", reason="stopped before the search started", **search_result(path))
        return folder.read_status(path)
    folder.write_status(path, "running", resumed=resume)
    try:
        status = _search(path, config, data, dataset, stop, verbose)
    except KeyboardInterrupt:
        folder.write_status(path, "stopped", reason="interrupted from the keyboard", **search_result(path))
        raise
    except Exception as error:
        if not isinstance(error, FerError):  # a message for the user, not a bug to trace
            traceback.print_exc(file=sys.stderr)
        folder.write_status(path, "failed", error=f"{type(error).__name__}: {error}", **search_result(path))
        raise
    folder.clear_stop_request(path)
    return status


def _search(path: Path, config: SearchConfig, data, dataset: Dataset | None, stop: StopSignal, verbose: int) -> dict:
    session = SearchSession(path, config, stop, started=time.time())
    if dataset is None:
        source = data or config.base.data
        if not source:
            raise FerError("Expected a dataset path (--data PATH or the search config's 'data'); received none")
        print(f"loading data from {source}", file=sys.stderr, flush=True)
        dataset = load_dataset(source, progress=ProgressPrinter())
    tuning_data = TuningData.from_dataset(dataset, config.base)
    for action in repair_project(path / TUNER_DIR):
        print(f"tuner project: {action}", file=sys.stderr, flush=True)
    reason = "all trials done"
    try:
        if read_json(path / BASELINE_FILE, default=None) is None:
            train_baseline(path, session, tuning_data, verbose)
        if config.workers > 1:
            return _serve_workers(path, config, tuning_data, session, data, verbose)
        tuner = make_tuner(path, config, FerHyperModel(config, tuning_data, session), session)
        tuner.search(verbose=verbose)
    except SearchStopped:
        if session.current_trial is not None:
            append_json_line(
                path / TRIALS_FILE,
                {"time": time.time(), "event": "trial_end", "trial": session.current_trial, "status": "stopped"},
            )
        folder.write_status(path, "stopped", **search_result(path))
        return folder.read_status(path)
    except TimeLimitReached as limit:
        reason = str(limit)
    keras.backend.clear_session()
    folder.write_status(path, "finished", reason=reason, **search_result(path))
    return folder.read_status(path)


def _serve_workers(
    path: Path, config: SearchConfig, data: TuningData, session: SearchSession, source: str | None, verbose: int
) -> dict:
    """The chief of a search spread over worker processes: serve the oracle, keep `config.workers` workers going."""
    port = network.free_port()
    distributed.set_role(distributed.CHIEF, "0.0.0.0", port)  # every interface: workers on other machines too
    tuner = make_tuner(path, config, FerHyperModel(config, data, session), session)
    address = f"{socket.gethostname()}:{port}"
    folder.write_status(path, "running", resumed=folder.read_status(path).get("resumed", False), oracle=address)
    print(f"oracle at {address}; {config.workers} workers", flush=True)

    def should_stop() -> bool:
        out_of_time = session.deadline is not None and time.time() >= session.deadline
        return session.stop.should_stop() or out_of_time

    back_up = lambda: back_up_project(path / TUNER_DIR)  # noqa: E731  (the chief writes the oracle's state)
    chief = distributed.Chief(path, config.workers, port, source, session.record, should_stop, back_up)
    outcome = chief.run(lambda: tuner.search(verbose=verbose))
    out_of_time = session.deadline is not None and time.time() >= session.deadline and not session.stop.triggered
    result = {**search_result(path), "workers": config.workers}
    if outcome == "stopped" and not out_of_time:
        folder.write_status(path, "stopped", **result)
    else:
        reason = f"the {config.max_minutes:g}-minute limit was reached" if out_of_time else "all trials done"
        folder.write_status(path, "finished", reason=reason, **result)
    return folder.read_status(path)


def run_worker(
    search_dir: str | Path, address: str, worker_id: str, *, threads: int = 0, data: str | None = None, verbose: int = 0
) -> int:
    """Join a running search as one of its workers: train the trials its chief's oracle hands out until it says
    stop (or a stop is requested); returns the trials this worker completed."""
    path = Path(search_dir)
    config = load_search_config(path)
    distributed.ensure_joinable(path)
    host, port = network.parse_address(address)
    if threads > 0:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 0)
    distributed.set_role(worker_id, host, port)
    stop = install_stop_signal(path)
    session = SearchSession(path, config, stop, started=time.time(), worker=worker_id)
    source = data or config.base.data
    print(f"worker {worker_id}: loading data from {source}", file=sys.stderr, flush=True)
    tuning_data = TuningData.from_dataset(load_dataset(source, progress=ProgressPrinter()), config.base)
    tuner = make_tuner(path, config, FerHyperModel(config, tuning_data, session), session)
    try:
        tuner.search(verbose=verbose)
    except SearchStopped:
        if session.current_trial is not None:
            session.record({"event": "trial_end", "trial": session.current_trial, "status": "stopped"})
    completed = [row for row in read_trials(path) if row.status == "completed" and row.worker == worker_id]
    return len(completed)
