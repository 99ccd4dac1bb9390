"""The Tune page under Streamlit's AppTest: empty state, a finished search (table, plots, gain, training the best
configuration), an active search (stop) and starting a search from the form."""

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.atomic import append_json_line, atomic_write_json
from ferlib.jobs import folder, searches
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_launch, search_space
from ferlib.tuning.search_space import default_space, trial_config

TINY = {"filters": (8, 16, 32), "dense_units": 16}
SPACE = {"width_multiplier": [0.5, 1.0], "learning_rate": [0.001, 0.01], "optimizer": ["sgd", "adam"]}
TRIALS = [
    ("0", {"width_multiplier": 0.5, "learning_rate": 0.01, "optimizer": "sgd"}, 0.31),
    ("1", {"width_multiplier": 1.0, "learning_rate": 0.001, "optimizer": "adam"}, 0.42),
    ("2", {"width_multiplier": 1.0, "learning_rate": 0.01, "optimizer": "adam"}, 0.38),
]


@pytest.fixture
def folders(studio_folders) -> SimpleNamespace:
    """Empty runs, searches and data folders, seen by the pages through the environment."""
    return studio_folders


@pytest.fixture
def launches(monkeypatch):
    calls = []
    monkeypatch.setattr(folder, "spawn", lambda job_dir, arguments, **_: calls.append(Path(job_dir)) or fake_process())
    return calls


def fake_process() -> SimpleNamespace:
    return SimpleNamespace(pid=os.getpid())


def written_search(searches_dir: Path, data: Path, state: str = "finished") -> Path:
    """A search folder as `ferlib tune` leaves it: config, status, trials, baseline and best (no training)."""
    base = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, data=str(data))
    config = search_space.SearchConfig(strategy="random", max_trials=4, epochs=1, subset=0.5, space=SPACE, base=base)
    search_dir = search_launch.create_search(config, searches_dir, search_id="20260101-000000-random-aaaa")
    write_trials(search_dir)
    baseline = {"score": 0.3, "commonest_class": "happy", "commonest_class_share": 0.25}  # it learned a little
    atomic_write_json(search_dir / searches.BASELINE_FILE, {**baseline, "config": config.base.to_dict()})
    best_values = TRIALS[1][1]
    best = {"trial": "1", "score": 0.42, "hyperparameters": best_values}
    atomic_write_json(
        search_dir / searches.BEST_FILE, {**best, "config": trial_config(config.base, best_values).to_dict()}
    )
    folder.write_status(search_dir, "running")
    if state != "running":
        folder.write_status(search_dir, state, reason="all trials done")
    (search_dir / folder.LOG_FILE).write_text("baseline: val_accuracy=0.3000\ntrial 0: val_accuracy=0.3100\n")
    return search_dir


def write_trials(search_dir: Path) -> None:
    """trials.jsonl as the search process writes it: a start and an end record per trial."""
    path = search_dir / searches.TRIALS_FILE
    for trial, values, score in TRIALS:
        append_json_line(path, {"event": "trial_start", "trial": trial, "hyperparameters": values})
        end = {"event": "trial_end", "trial": trial, "status": "completed", "score": score}
        append_json_line(path, {**end, "duration_seconds": 12.0, "epochs": 1})


def open_tune_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    app.switch_page("pages/tune.py")
    return app.run()


def button_labelled(app: AppTest, label: str):
    matches = [button for button in app.button if button.label == label]
    assert matches, f"no {label!r} button among {[button.label for button in app.button]}"
    return matches[0]


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def test_with_no_searches_and_no_dataset_the_page_says_what_to_do(folders):
    app = open_tune_page()
    assert not app.exception
    assert app.title[0].value == "Tune"
    information = texts(app.info)
    assert "No searches yet" in information and "No dataset found" in information
    assert button_labelled(app, "Start search").disabled
    assert not app.dataframe


def test_a_finished_search_shows_its_trials_plots_and_gain(folders, training_data):
    written_search(folders.searches, training_data)
    app = open_tune_page()
    assert not app.exception
    (table,) = app.dataframe
    assert list(table.value["Trial"]) == ["0", "1", "2"]
    assert list(table.value["Status"]) == ["completed"] * 3
    assert {"Width multiplier", "Learning rate", "Optimizer", "Val. accuracy", "Duration"} <= set(table.value.columns)
    assert list(table.value["Val. accuracy"]) == ["31.0%", "42.0%", "38.0%"]  # as the figures above: one format
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Baseline"] == "30.0%" and metrics["Best trial"] == "42.0%"
    assert metrics["Gain over baseline"] == "+12.0 pts"
    charts = app.get("plotly_chart")
    assert len(charts) == 2
    assert '"parcoords"' not in charts[1].proto.spec and "Width multiplier" in charts[1].proto.spec
    assert "Finished" in texts(app.success)
    assert "baseline scored no better" not in texts(app.info)


def test_a_baseline_that_learned_nothing_is_called_so(folders, training_data):
    search_dir = written_search(folders.searches, training_data)
    baseline = {"score": 0.2494, "commonest_class": "happy", "commonest_class_share": 0.2494}
    atomic_write_json(search_dir / searches.BASELINE_FILE, baseline)
    app = open_tune_page()
    assert not app.exception
    (note,) = [str(element.value) for element in app.info if "baseline scored no better" in str(element.value)]
    assert "always answering *happy* (24.9% of the validation faces): 1 epoch(s) on 50% of the training" in note


def test_one_click_trains_the_best_configuration(folders, training_data, launches):
    written_search(folders.searches, training_data)
    app = open_tune_page()
    app.number_input(key="tune-full-epochs-20260101-000000-random-aaaa").set_value(12)
    button_labelled(app, "Train with the best hyperparameters").click()
    app.run()
    assert not app.exception
    (run_dir,) = [path for path in folders.runs.iterdir() if path.is_dir()]
    assert launches == [run_dir]
    config = run_launch.load_config(run_dir)
    assert (config.epochs, config.train_fraction, config.optimizer, config.learning_rate) == (12, 1.0, "adam", 0.001)
    assert tuple(config.hyperparameters["filters"]) == TINY["filters"]


def test_the_best_configuration_can_learn_from_chosen_models(
    folders, training_data, launches, tiny_model_path, tiny_happy_sad_path, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    for source, name in ((tiny_model_path, "fer_vgg"), (tiny_happy_sad_path, "happy_or_sad")):
        shutil.copy(source, models / f"{name}.keras")
        shutil.copy(source.with_suffix(".json"), models / f"{name}.json")
    monkeypatch.setenv("FERLIB_MODELS_DIR", str(models))
    monkeypatch.delenv("FERLIB_MODEL", raising=False)
    written_search(folders.searches, training_data)
    app = open_tune_page()
    teachers = app.multiselect(key="tune-full-20260101-000000-random-aaaa_teachers")
    offered = " ".join(teachers.options)  # the search learns all seven classes: only seven-class models teach
    assert teachers.value == [] and len(teachers.options) == 1 and "happy_or_sad" not in offered
    default = str(models / "fer_vgg.keras")
    teachers.set_value([default])
    app.slider(key="tune-full-20260101-000000-random-aaaa_teacher_weight").set_value(0.4)
    button_labelled(app, "Train with the best hyperparameters").click()
    app.run()
    assert not app.exception and not app.error
    (run_dir,) = [path for path in folders.runs.iterdir() if path.is_dir()]
    config = run_launch.load_config(run_dir)
    assert (config.teachers, config.teacher_weight, config.optimizer) == ([default], 0.4, "adam")


def test_an_active_search_can_be_stopped_and_blocks_new_jobs(folders, training_data):
    search_dir = written_search(folders.searches, training_data, state="running")
    shutil.copy(training_data, folders.data / "fer_small.zip")
    app = open_tune_page()
    assert not app.exception
    assert button_labelled(app, "Start search").disabled
    assert "runs one job at a time" in texts(app.warning)
    assert "Train with the best hyperparameters" not in [button.label for button in app.button]  # once it has ended
    button_labelled(app, "Stop").click()
    app.run()
    assert folder.stop_requested(search_dir)


def test_resume_is_offered_only_to_a_search_of_this_training_recipe(folders, training_data, launches):
    search_dir = written_search(folders.searches, training_data, state="stopped")
    app = open_tune_page()
    assert not app.exception and not button_labelled(app, "Resume").disabled
    (search_dir / searches.RECIPE_FILE).unlink()  # made before searches recorded their recipe
    app = open_tune_page()
    assert not app.exception
    resume = button_labelled(app, "Resume")
    assert resume.disabled and "Start a new search with the same settings" in resume.help
    assert not launches


def test_the_form_starts_a_search_in_its_own_process(folders, training_data, launches):
    shutil.copy(training_data, folders.data / "fer_small.zip")
    app = open_tune_page()
    app.selectbox(key="tune_strategy").set_value("grid")
    app.number_input(key="tune_max_trials").set_value(3)
    app.multiselect(key="tune_space_optimizer").set_value(["adam"])
    button_labelled(app, "Start search").click()
    app.run()
    assert not app.exception
    (search_dir,) = list(folders.searches.iterdir())
    assert launches == [search_dir]
    config = search_launch.load_search_config(search_dir)
    assert (config.strategy, config.max_trials, config.space["optimizer"]) == ("grid", 3, ["adam"])
    assert (config.epochs, config.subset) == (10, 0.2)  # 900 steps a trial: the least on which the nets learn
    assert config.base.data.endswith("fer_small.zip")


def test_an_empty_search_space_is_explained_not_raised(folders, training_data, launches):
    shutil.copy(training_data, folders.data / "fer_small.zip")
    app = open_tune_page()
    for name in default_space():
        app.multiselect(key=f"tune_space_{name}").set_value([])
    button_labelled(app, "Start search").click()
    app.run()
    assert not app.exception
    assert "These settings cannot be used" in texts(app.error)
    assert not launches
