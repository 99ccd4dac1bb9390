"""Hyperparameter search on generated data: the space, each strategy, stop and resume (also after SIGKILL),
repairing keras-tuner's files, the one-active-job rule and the CLI's last line."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ferlib.atomic import read_json, read_json_lines
from ferlib.classes import EMOTIONS
from ferlib.cli import main
from ferlib.jobs import folder, searches
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_launch, search_space, session, tuner
from ferlib.tuning.search_space import default_space, scaled_augmentation, trial_config, validate_space

TINY = {"filters": (8, 16, 32), "dense_units": 16}
TINY_SPACE = {
    "width_multiplier": [0.5, 1.0],
    "convs_per_block": [1],
    "kernel_size": [3],
    "activation": ["relu", "elu"],
    "block_dropout": [0.0, 0.1],
    "learning_rate": [0.003, 0.01],
    "optimizer": ["sgd", "adam"],
    "augmentation": [0.0, 1.0],
}
LAST_LINE = re.compile(r"^best_score=0\.\d{4} baseline=0\.\d{4} trials=(\d+)$")


def tiny_search(data, strategy: str = "random", **changes) -> search_space.SearchConfig:
    base = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, batch_size=32, data=str(data))
    settings = {"strategy": strategy, "max_trials": 2, "epochs": 1, "subset": 1.0, "space": TINY_SPACE, "base": base}
    return search_space.SearchConfig(**{**settings, **changes})


def as_json(value) -> str:
    """JSON text, so tuples and the lists they become on disk compare equal."""
    return json.dumps(value, sort_keys=True)


@pytest.fixture(scope="module")
def dataset(training_data):
    from ferlib.data.datasets import load_dataset

    return load_dataset(training_data, use_cache=False)  # module scope: no per-test cache folder yet


# --- the search space ---------------------------------------------------------------------------------------


def test_trial_values_become_a_train_config_and_the_empty_trial_is_the_baseline():
    base = TrainConfig(architecture="compact_cnn", hyperparameters=TINY)
    assert trial_config(base, {}) == base
    config = trial_config(
        base,
        {"width_multiplier": 2.0, "convs_per_block": 2, "kernel_size": 5, "activation": "elu", "block_dropout": 0.3}
        | {"learning_rate": 0.001, "optimizer": "adam", "augmentation": 0.0},
    )
    assert config.hyperparameters["filters"] == (16, 32, 64)
    assert config.hyperparameters["convs_per_block"] == 2 and config.hyperparameters["activation"] == "elu"
    assert (config.optimizer, config.learning_rate) == ("adam", 0.001)
    assert not config.augmentation.is_active()
    stronger = scaled_augmentation(base.augmentation, 2.0)
    assert stronger.rotate_degrees == 2 * base.augmentation.rotate_degrees and stronger.horizontal_flip
    assert len(default_space()) >= 5


def test_invalid_spaces_and_budgets_are_refused_in_ferlib_wording(training_data):
    with pytest.raises(ValueError, match="Expected hyperparameters among"):
        validate_space({"momentum": [0.9]})
    with pytest.raises(ValueError, match="Expected at least one value for kernel_size"):
        validate_space({"kernel_size": []})
    with pytest.raises(ValueError, match="Expected values of learning_rate among"):
        validate_space({"learning_rate": [0.5]})
    assert validate_space({"kernel_size": ["5", 3, 3]}) == {"kernel_size": [3, 5]}
    with pytest.raises(ValueError, match=r"^Expected whole numbers for kernel_size; received \[5.5\]$"):
        validate_space({"kernel_size": [3, 5.5]})
    assert validate_space({"kernel_size": [5.0]}) == {"kernel_size": [5]}
    with pytest.raises(ValueError, match="Expected values of activation among"):
        validate_space({"activation": [1.0]})  # a text setting gets the choices, not the whole-number message
    with pytest.raises(ValueError, match="Expected strategy among random, grid, bayesian, hyperband"):
        tiny_search(training_data, strategy="evolution")
    with pytest.raises(ValueError, match=r"Expected subset in \(0, 1\]"):
        tiny_search(training_data, subset=0)
    with pytest.raises(ValueError, match=r"^Expected a search base without teachers \(a training run's setting\)"):
        search_space.SearchConfig(base=TrainConfig(teachers=["models/fer_vgg.keras"], teacher_weight=0.5))
    config = tiny_search(training_data, epochs=2, subset=0.5)
    assert (config.base.epochs, config.base.train_fraction) == (2, 0.5)  # the baseline trains on the budget
    reloaded = search_space.SearchConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert as_json(reloaded.to_dict()) == as_json(config.to_dict())


# --- the four strategies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", search_space.STRATEGIES)
def test_each_strategy_runs_two_trials_and_the_baseline(tmp_path, training_data, dataset, strategy, monkeypatch):
    import keras

    from ferlib.tuning.tuner import run_search

    clears = []
    original_clear = keras.backend.clear_session
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: (clears.append(1), original_clear(*a, **k)))
    search_dir = search_launch.create_search(tiny_search(training_data, strategy), tmp_path)
    status = run_search(search_dir, dataset=dataset)

    assert status["state"] == "finished", status
    assert status["trials"] == 2
    for name in ("config.json", "status.json", "trials.jsonl", "progress.jsonl", "baseline.json", "best.json"):
        assert (search_dir / name).exists(), name
    assert (search_dir / "tuner" / "oracle.json").exists()
    trials = searches.read_trials(search_dir)
    assert [row.status for row in trials] == ["completed", "completed"]
    assert all(0 <= row.score <= 1 and row.duration_seconds > 0 and row.epochs == 1 for row in trials)
    assert all(set(row.hyperparameters) == set(TINY_SPACE) for row in trials)

    baseline = searches.read_baseline(search_dir)
    assert 0 <= baseline["score"] <= 1 and baseline["config"]["optimizer"] == "sgd"
    labels = dataset.subset("validation")[1]  # what always answering the commonest class would score
    assert baseline["commonest_class_share"] == pytest.approx(np.bincount(labels).max() / len(labels))
    assert baseline["commonest_class"] == EMOTIONS[np.bincount(labels).argmax()]
    best = searches.read_best(search_dir)
    assert best["score"] == max(row.score for row in trials)
    best_row = next(row for row in trials if row.trial == best["trial"])
    assert best["hyperparameters"] == best_row.hyperparameters
    full = search_launch.full_training_config(search_dir, epochs=7)
    expected = trial_config(tiny_search(training_data).base, best_row.hyperparameters).updated(epochs=7)
    assert as_json(full.to_dict()) == as_json(expected.to_dict())

    epochs = [record for record in searches.read_search_progress(search_dir) if record["event"] == "epoch"]
    assert [record["trial"] for record in epochs] == ["baseline", trials[0].trial, trials[1].trial]
    assert all("val_accuracy" in record and "loss" in record for record in epochs)
    assert len(clears) >= 2 + 2  # the baseline's and each trial's end, besides keras-tuner's own
    assert (status["best_score"], status["baseline_score"]) == (best["score"], baseline["score"])


# --- stop and resume ----------------------------------------------------------------------------------------


def test_a_stopped_search_resumes_without_retraining_the_baseline_and_survives_torn_tuner_files(
    tmp_path, training_data, dataset, monkeypatch
):

    search_dir = search_launch.create_search(tiny_search(training_data, "bayesian"), tmp_path)
    original_end = session.SearchSession.trial_ended

    def stop_after_the_first_trial(self, trial, status=None):
        original_end(self, trial, status)
        folder.request_stop(search_dir)

    monkeypatch.setattr(session.SearchSession, "trial_ended", stop_after_the_first_trial)
    status = tuner.run_search(search_dir, dataset=dataset)
    monkeypatch.undo()
    assert status["state"] == "stopped" and status["trials"] == 1
    assert summary_state(search_dir) == "stopped"
    baseline_before = read_json(search_dir / "baseline.json")

    # A search killed while keras-tuner rewrote its files: a truncated oracle.json and a torn new trial folder.
    project = search_dir / "tuner"
    (project / "oracle.json").write_text((project / "oracle.json").read_text()[:40])
    (project / "trial_7").mkdir()
    (project / "trial_7" / "trial.json").write_text('{"trial_id": "7", "hyperpa')

    search_launch.claim_for_resume(search_dir, tmp_path / "runs")
    status = tuner.run_search(search_dir, dataset=dataset, resume=True)
    assert status["state"] == "finished" and status["trials"] == 2, status
    assert read_json(search_dir / "baseline.json") == baseline_before
    assert [row.status for row in searches.read_trials(search_dir)] == ["completed", "completed"]
    assert not (project / "trial_7").exists()
    assert not (search_dir / folder.STOP_FILE).exists()


def test_a_launched_search_process_takes_over_with_search_dir_and_learns_whether_it_resumes(tmp_path, training_data):
    """The dashboard claims or creates the folder, then launches `tune --search-dir`; the process must accept
    the 'created' folder (a second claim would refuse it) and resume only a claimed one."""
    from ferlib.cli.tune_commands import _handed_over_search

    new = search_launch.create_search(tiny_search(training_data), tmp_path / "searches")
    assert _handed_over_search(new) == (new, False)
    folder.write_status(new, "stopped")
    with pytest.raises(ValueError, match="which is stopped: continue a stopped search with --resume"):
        _handed_over_search(new)
    folder.request_stop(new)  # left over from the earlier session
    search_launch.claim_for_resume(new, tmp_path / "runs")
    assert _handed_over_search(new) == (new, True)
    assert not folder.stop_requested(new)


def test_a_search_whose_dataset_moved_resumes_with_the_new_path(tmp_path, training_data):
    """On another machine the recorded dataset path is gone; `tune --resume DIR --data NEW` names where it is now."""
    import shutil

    moved = tmp_path / "moved" / "fer_small.zip"
    moved.parent.mkdir()
    shutil.copy(training_data, moved)
    search_dir = search_launch.create_search(tiny_search(moved), tmp_path / "searches")
    folder.write_status(search_dir, "stopped")
    moved.rename(tmp_path / "fer_small.zip")
    with pytest.raises(ValueError, match=r"Expected an existing dataset; received .*moved"):
        search_launch.claim_for_resume(search_dir, tmp_path / "runs")
    assert search_launch.claim_for_resume(search_dir, tmp_path / "runs", tmp_path / "fer_small.zip") == search_dir
    assert folder.read_status(search_dir)["state"] == "created"


def test_a_search_from_an_older_training_recipe_is_not_resumed(tmp_path, training_data, launches):
    """Its finished trials trained differently (one shared augmentation seed), so new trials would not compare."""
    from ferlib.training.config import RECIPE_REVISION

    search_dir = search_launch.create_search(tiny_search(training_data), tmp_path / "searches")
    assert searches.recipe_revision(search_dir) == RECIPE_REVISION
    folder.write_status(search_dir, "stopped")
    (search_dir / searches.RECIPE_FILE).unlink()  # as a folder made before recipe.json existed
    assert search_launch.resume_refusal(search_dir).endswith(
        "unrecorded (it predates recipe.json). Start a new search with the same settings instead."
    )
    with pytest.raises(ValueError, match=f"recipe revision {RECIPE_REVISION}.*unrecorded"):
        search_launch.resume_search(search_dir, tmp_path / "runs")
    (search_dir / searches.RECIPE_FILE).write_text('{"revision": 1}')
    with pytest.raises(ValueError, match=r"trained with revision 1\. Start a new search"):
        search_launch.resume_search(search_dir, tmp_path / "runs")
    assert launches == [] and folder.read_status(search_dir)["state"] == "stopped"


def summary_state(search_dir: Path) -> str:
    return searches.summarize_search(search_dir).state


def tune_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ferlib", "tune", *arguments]


def test_a_sigkilled_search_resumes_in_a_process_launched_like_the_dashboards(tmp_path, training_data):
    """Kill the CLI mid-trial, then a resumed search process re-runs the partial trial and prints the last line."""
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(TINY_SPACE))
    environment = {**os.environ, "FERLIB_RUNS_DIR": str(tmp_path / "runs")}
    searches_dir = tmp_path / "searches"
    arguments = ["--data", str(training_data), "--strategy", "random", "--max-trials", "2", "--epochs", "2"]
    arguments += ["--subset", "1", "--space", str(space_file), "--dir", str(searches_dir)]
    process = subprocess.Popen(
        tune_command(*arguments), cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            records = [
                record for folder in searches_dir.glob("*") for record in read_json_lines(folder / "trials.jsonl")
            ]
            if any(record["event"] == "trial_start" for record in records):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the search ended before its first trial started"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    (search_dir,) = list(searches_dir.iterdir())
    assert summary_state(search_dir) == "interrupted"
    assert [row.status for row in searches.read_trials(search_dir)][-1] == "interrupted"

    # Resume as the dashboard does: claim the folder, launch `tune --search-dir` detached, watch status.json.
    search_launch.resume_search(search_dir, tmp_path / "runs")
    deadline = time.time() + 300
    while time.time() < deadline and folder.is_active(search_dir):
        time.sleep(0.5)
    log = (search_dir / folder.LOG_FILE).read_text()
    assert summary_state(search_dir) == "finished", log[-3000:]
    last_line = log.strip().splitlines()[-1]
    assert LAST_LINE.match(last_line), last_line
    assert LAST_LINE.match(last_line).group(1) == "2"
    trials = searches.read_trials(search_dir)
    assert [row.status for row in trials] == ["completed", "completed"]
    assert summary_state(search_dir) == "finished"


def test_the_cli_refuses_mistakes_with_one_error_line(tmp_path, capsys, training_data):
    assert main(["tune", "--strategy", "random", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: Expected --data PATH for a new search")
    assert main(["tune", "--data", str(training_data), "--max-trials", "0", "--dir", str(tmp_path)]) == 2
    assert "Expected max_trials >= 1" in capsys.readouterr().err
    assert main(["tune", "--resume", str(tmp_path / "missing")]) == 2
    assert "Expected a search folder" in capsys.readouterr().err


# --- one active job -----------------------------------------------------------------------------------------


@pytest.fixture
def launches(monkeypatch):
    """Replace both process launches with recorders; the 'process' is this test process, so it reads as alive."""
    calls = []

    def fake_spawn(job_dir, arguments, *, extra_env=None):
        if arguments[0] == "train":
            calls.append(("run", Path(job_dir)))
        else:
            calls.append(("search", Path(job_dir), folder.read_status(job_dir).get("resumed", False)))
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(folder, "spawn", fake_spawn)
    return calls


def test_one_job_at_a_time_across_runs_and_searches(tmp_path, training_data, launches, monkeypatch):
    runs_dir, searches_dir = tmp_path / "runs", tmp_path / "searches"
    monkeypatch.setenv("FERLIB_SEARCHES_DIR", str(searches_dir))
    search_dir = search_launch.start_search(tiny_search(training_data), searches_dir, runs_dir)
    assert launches == [("search", search_dir.resolve(), False)]
    assert folder.read_status(search_dir)["state"] == "created"
    assert [search.search_id for search in searches.active_searches(searches_dir)] == [search_dir.name]

    run_config = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, data=str(training_data))
    with pytest.raises(ValueError, match="Expected no active hyperparameter search.*" + search_dir.name):
        run_launch.start_run(run_config, runs_dir)
    with pytest.raises(ValueError, match="Expected no active hyperparameter search"):
        search_launch.start_search(tiny_search(training_data), searches_dir, runs_dir)

    folder.write_status(search_dir, "stopped")
    run_dir = run_launch.start_run(run_config, runs_dir)
    with pytest.raises(
        ValueError, match="Expected no active run, since one run trains at a time; received " + run_dir.name
    ):
        search_launch.start_search(tiny_search(training_data), searches_dir, runs_dir)
    with pytest.raises(ValueError, match="Expected no active run"):
        search_launch.resume_search(search_dir, runs_dir)

    folder.write_status(run_dir, "finished")
    search_launch.resume_search(search_dir, runs_dir)
    assert launches[-1] == ("search", search_dir.resolve(), True)
    with pytest.raises(ValueError, match="Expected a stopped or interrupted search to resume"):
        search_launch.resume_search(search_dir, runs_dir)
