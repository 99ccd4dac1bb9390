"""Creating, starting and resuming training runs: a TrainConfig becomes a checked run folder and a detached process.

The run folder's files and their reading and deleting live in ferlib.jobs.runs, below training; this
module adds what needs the config's meaning (its dataset, starting model and teachers). Plain Python: no Keras.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferlib.errors import FerError
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import check_initial_model, check_teacher
from ferlib.training.config import TrainConfig


def create_run(config: TrainConfig, runs_dir: str | os.PathLike | None = None, run_id: str | None = None) -> Path:
    """Make a new run folder holding the config and a 'created' status."""
    root = Path(runs_dir) if runs_dir is not None else folder.default_runs_dir()
    return folder.create_job(root, run_id or folder.new_job_id(config.architecture), config.to_dict())


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The run's TrainConfig, validated; refused for a folder that is not a run."""
    path = Path(run_dir) / folder.CONFIG_FILE
    if not path.exists():
        raise FerError(f"Expected a run folder containing {folder.CONFIG_FILE}; received {str(run_dir)!r}")
    return TrainConfig.from_file(path)


def create_checked_run(config: TrainConfig, runs_dir: str | os.PathLike | None = None) -> Path:
    """Check a new run's dataset, starting model and teachers, then create its folder; refused while another job is
    active.

    Nothing is written when a check fails. The new folder reads as 'created' by this process, so it blocks
    other launches until this process (or the training process it hands over to) trains or ends.
    """
    root = (Path(runs_dir) if runs_dir is not None else folder.default_runs_dir()).expanduser().resolve()
    folder.existing_dataset(config.data)
    if config.initial_model:
        initial = check_initial_model(config.initial_model, config.architecture, config.hyperparameters)
        config = config.updated(initial_model=str(initial))
    if config.teachers:
        config = config.updated(teachers=[str(check_teacher(path, config.class_set)) for path in config.teachers])
    with folder.launch_lock(root):
        folder.ensure_no_active_job(root)
        return create_run(config, root)


def start_run(
    config: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    *,
    extra_env: dict[str, str] | None = None,
) -> Path:
    """Create a run folder for `config` and train it in a detached process; refused while another job is active."""
    run_dir = create_checked_run(config, runs_dir)
    folder.launch(run_dir, runs.train_arguments(run_dir, config.data, resume=False), resume=False, extra_env=extra_env)
    return run_dir


def resume_run(run_dir: str | os.PathLike, *, extra_env: dict[str, str] | None = None) -> Path:
    """Continue a stopped, interrupted or failed run from its last checkpoint in a new detached process.

    Refused while any job is active; the run reads as 'created' until the new process starts training, so a
    second click cannot launch it twice.
    """
    path = Path(run_dir).expanduser().resolve()
    data = folder.existing_dataset(load_config(path).data)  # an unreadable config is refused before anything changes
    with folder.launch_lock(path.parent):
        state = folder.read_status(path).get("state")
        if not runs.may_resume(path, state):
            raise FerError(
                f"Expected a stopped or interrupted run, or a failed one with a checkpoint, to resume; "
                f"received {path.name}, which is {state}"
            )
        folder.ensure_no_active_job(path.parent)
        folder.clear_stop_request(path)
        folder.write_status(path, "created", resumed=True)
        folder.launch(path, runs.train_arguments(path, data, resume=True), resume=True, extra_env=extra_env)
    return path
