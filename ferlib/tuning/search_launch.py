"""Creating, starting and resuming searches: a SearchConfig becomes a search folder and a detached process.

The search folder's files and their reading live in ferlib.jobs.searches, below tuning; this module adds what needs
the config's meaning (its baseline's dataset, the training recipe its trials follow). Plain Python: no Keras.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferlib.atomic import read_json
from ferlib.errors import FerError
from ferlib.jobs.folder import (
    CONFIG_FILE,
    RESUMABLE_STATES,
    clear_stop_request,
    create_job,
    default_runs_dir,
    default_searches_dir,
    ensure_no_active_job,
    existing_dataset,
    launch,
    launch_lock,
    new_job_id,
    read_status,
    write_status,
)
from ferlib.jobs.searches import RECIPE_FILE, read_best, recipe_revision
from ferlib.training.config import RECIPE_REVISION, TrainConfig
from ferlib.tuning.search_space import SearchConfig


def create_search(
    config: SearchConfig, searches_dir: str | os.PathLike | None = None, search_id: str | None = None
) -> Path:
    """Make a new search folder holding the config, the recipe revision its trials follow and a 'created' status."""
    root = Path(searches_dir) if searches_dir is not None else default_searches_dir()
    files = {RECIPE_FILE: {"revision": RECIPE_REVISION}}
    return create_job(root, search_id or new_job_id(config.strategy), config.to_dict(), **files)


def load_search_config(search_dir: str | os.PathLike) -> SearchConfig:
    """The search's SearchConfig, validated; refused for a folder without a readable config."""
    path = Path(search_dir) / CONFIG_FILE
    value = read_json(path, default=None)
    if not isinstance(value, dict):
        raise FerError(f"Expected a search folder containing a readable {CONFIG_FILE}; received {search_dir!r}")
    return SearchConfig.from_dict(value)


def resume_refusal(search_dir: str | os.PathLike) -> str | None:
    """Why the search must not resume under this ferlib's training recipe, or None when it may."""
    revision = recipe_revision(search_dir)
    if revision == RECIPE_REVISION:
        return None
    if revision is None:
        received = "whose trials' recipe is unrecorded (it predates recipe.json)"
    else:
        received = f"whose trials were trained with revision {revision}"
    return (
        f"Expected a search whose trials train as this ferlib trains them (recipe revision {RECIPE_REVISION}); "
        f"received {Path(search_dir).name}, {received}. Start a new search with the same settings instead."
    )


def _existing_dataset(config: SearchConfig, data: str | os.PathLike | None = None) -> None:
    """The search's dataset, or `data` where it is now (it moved), refused when unnamed or missing."""
    if not data and not config.base.data:
        raise FerError("Expected the search's baseline config to name its dataset ('data'); received none")
    existing_dataset(str(data or config.base.data))


def start_search(
    config: SearchConfig,
    searches_dir: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> Path:
    """Create a search folder and run it in a detached process; refused while a run or a search is active."""
    searches_root = (Path(searches_dir) if searches_dir is not None else default_searches_dir()).expanduser().resolve()
    runs_root = (Path(runs_dir) if runs_dir is not None else default_runs_dir()).expanduser().resolve()
    _existing_dataset(config)
    with launch_lock(runs_root):
        ensure_no_active_job(runs_root, searches_root)
        search_dir = create_search(config, searches_root)
        launch(search_dir, ["tune", "--search-dir", str(search_dir)], resume=False)
    return search_dir


def claim_for_resume(
    search_dir: str | os.PathLike, runs_dir: str | os.PathLike | None = None, data: str | os.PathLike | None = None
) -> Path:
    """Check a search can resume (stopped or interrupted, no active job) and mark it 'created' under the lock.

    `data` is where the dataset is now, when it moved (another machine); by default, where the search recorded it.
    """
    path = Path(search_dir).expanduser().resolve()
    config = load_search_config(path)
    refusal = resume_refusal(path)  # its finished trials would be ranked against trials trained differently
    if refusal:
        raise FerError(refusal)
    runs_root = (Path(runs_dir) if runs_dir is not None else default_runs_dir()).expanduser().resolve()
    _existing_dataset(config, data)
    with launch_lock(runs_root):
        state = read_status(path).get("state")
        if state not in RESUMABLE_STATES:
            raise FerError(
                f"Expected a stopped or interrupted search to resume; received {path.name}, which is {state}"
            )
        ensure_no_active_job(runs_root, path.parent)
        clear_stop_request(path)
        write_status(path, "created", resumed=True)
    return path


def resume_search(search_dir: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> Path:
    """Continue a stopped or interrupted search in a new detached process (keras-tuner reloads its trials)."""
    path = claim_for_resume(search_dir, runs_dir)
    launch(path, ["tune", "--search-dir", str(path)], resume=True)
    return path


def full_training_config(search_dir: str | os.PathLike, epochs: int) -> TrainConfig:
    """The best trial's TrainConfig for a full run: all the training data, `epochs` epochs."""
    best = read_best(search_dir)
    if not best or not isinstance(best.get("config"), dict):
        raise FerError(f"Expected a search with a completed trial; received {Path(search_dir).name}, which has none")
    return TrainConfig.from_dict(best["config"]).updated(epochs=int(epochs), train_fraction=1.0)
