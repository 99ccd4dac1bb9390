"""Every page looks finished and tells the truth (issue 21), under Streamlit's AppTest: a run's phase and time left,
curves across resumes, labels from one fresh read, one palette, smoothing, names and tags, the Home summary and
sample photo, readable Tune tables, and the Live page's snapshot and 'stopped … ago'."""

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.atomic import append_json_line, atomic_write_json
from ferlib.jobs import folder, runs, searches
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_launch, search_space
from pages.components import charts

TINY = {"filters": (8, 16, 32), "dense_units": 16}
RUN_ID = "20260101-000000-compact_cnn-aaaa"


@pytest.fixture
def env(studio_folders) -> SimpleNamespace:
    """Empty runs, searches and data folders, seen by the pages through the environment."""
    return studio_folders


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(page: str, timeout: float = 120) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    app.switch_page(f"pages/{page}.py")
    return app.run()


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def start(initial: int = 0) -> dict:
    return {"event": "start", "epochs": 5, "initial_epoch": initial, "steps_per_epoch": 45}


def batch(epoch: int, number: int, eta: float | None = 100.0, age: float = 0.0) -> dict:
    record = {"event": "batch", "epoch": epoch, "epochs": 5, "batch": number, "steps": 45, "loss": 1.7}
    return record | {"accuracy": 0.3, "learning_rate": 0.01, "eta_seconds": eta, "time": time.time() - age}


def epoch(number: int, accuracy: float = 0.3, partial: bool = False) -> dict:
    record = {"event": "epoch", "epoch": number, "epochs": 5, "partial": partial, "learning_rate": 0.01}
    record |= {"loss": 2 - accuracy, "accuracy": accuracy, "val_loss": 2.1 - accuracy, "val_accuracy": accuracy - 0.05}
    return record | {"eta_seconds": None if partial else 100.0, "time": time.time()}


def a_run(runs_dir: Path, data: Path, *records: dict, state: str = "running", **status) -> Path:
    """A run folder whose 'training process' is this test process (alive), with these progress records."""
    config = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, data=str(data), epochs=5)
    run_dir = run_launch.create_run(config, runs_dir, run_id=RUN_ID)
    folder.write_status(run_dir, state, **status)
    for record in records:
        append_json_line(run_dir / folder.PROGRESS_FILE, record)
    return run_dir


def figure(app: AppTest, title: str) -> dict:
    """The plotly figure of the chart titled `title`."""
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    (found,) = [spec for spec in specs if (spec["layout"].get("title") or {}).get("text") == title]
    return found


# --- Training: phases, time left, where a stop happened, curves across resumes ----------------------------------


@pytest.mark.parametrize(
    "phase, shown",
    [("starting", "Starting: loading"), ("evaluating", "evaluating the best checkpoint"), ("training", "Epoch 3/5")],
)
def test_a_run_shows_its_phase_and_never_zero_seconds_left(env, training_data, phase, shown):
    """The last batch's ETA (100 s, written 5 min ago) counted down used to read 'about 0 s left', also while the
    end-of-run evaluation ran."""
    a_run(env.runs, training_data, start(), epoch(1), epoch(2), batch(3, 44, age=300), phase=phase)
    app = open_page("training")
    assert not app.exception
    bar = app.get("progress")[0].proto.text
    assert shown in bar and "left" not in bar, bar
    assert any(phase in markdown.value for markdown in app.markdown if "badge" in markdown.value)


def test_a_run_in_training_shows_the_time_left(env, training_data):
    a_run(env.runs, training_data, start(), epoch(1), batch(2, 10, eta=600.0), phase="training")
    bar = open_page("training").get("progress")[0].proto.text
    assert bar.startswith("Epoch 2/5 · batch 10/45 · about ") and bar.endswith(" left"), bar


def test_a_run_stopped_in_the_middle_of_an_epoch_says_where(env, training_data):
    """Stopped at batch 18/45 the page said 'Stopped after epoch 0'."""
    records = [start(), batch(1, 18, eta=None), epoch(1, partial=True)]
    a_run(env.runs, training_data, *records, state="stopped", epochs_completed=0)
    information = texts(open_page("training").info)
    assert "Stopped at batch 18/45 of epoch 1 (0 epochs completed before it)" in information
    assert "trains epoch 1 in full" in information and "Stopped after epoch 0" not in information


def test_curves_span_every_session_of_a_run_and_mark_where_it_resumed(env, training_data):
    """After a resume the earlier epochs vanished; epoch 3 of the killed session is replaced by its retrained one."""
    records = [start(), epoch(1, 0.2), epoch(2, 0.3), epoch(3, 0.35), start(2), epoch(3, 0.4), epoch(4, 0.5)]
    a_run(env.runs, training_data, *records, phase="training")
    accuracy = figure(open_page("training"), "Accuracy")
    train = accuracy["data"][0]
    assert train["x"] == [1, 2, 3, 4] and train["y"] == pytest.approx([0.2, 0.3, 0.4, 0.5])
    (resumed,) = [note for note in accuracy["layout"]["annotations"] if note["text"] == "resumed"]
    assert resumed["x"] == 2


def test_every_label_comes_from_one_fresh_read(env, training_data, monkeypatch):
    """A run read as starting by the page, running by the time its monitor reads it: the menu and the banner used
    to keep '· starting' and 'is starting' until something else redrew the page."""
    run_dir = a_run(env.runs, training_data, start(), batch(1, 3), phase="training")
    listed, list_runs = [], runs.list_runs

    def stale_then_fresh(*arguments, **keywords):
        found = list_runs(*arguments, **keywords)
        listed.append(1)
        return [dataclasses.replace(run, state="created") for run in found] if len(listed) == 1 else found

    monkeypatch.setattr(runs, "list_runs", stale_then_fresh)
    app = open_page("training")
    assert not app.exception
    assert app.selectbox(key="training_watched_run").options == [f"{run_dir.name} · running"]
    assert "is running" in texts(app.warning) and "is starting" not in texts(app.warning)


# --- one palette, smoothing, a quiet log -------------------------------------------------------------------------


def test_train_and_validation_have_one_palette_on_training_and_metrics(env, tiny_model_path, monkeypatch):
    """Train and validation were two near-identical blues, and other colours on Metrics."""
    from ferlib.nets import modelio

    monkeypatch.setattr(modelio, "MODELS_DIR", env.data)  # no shipped model: the run's is the only one
    monkeypatch.setenv("FERLIB_MODEL", str(env.data / "absent.keras"))
    shutil.copytree(tiny_model_path.parent, env.runs / tiny_model_path.parent.name)
    for page in ("training", "metrics"):
        train, validation = figure(open_page(page), "Accuracy")["data"][:2]
        assert (train["line"]["color"], train["line"].get("dash")) == (charts.TRAIN_COLOR, "solid"), page
        assert (validation["line"]["color"], validation["line"]["dash"]) == (charts.VALIDATION_COLOR, "dash"), page
    assert charts.TRAIN_COLOR != charts.VALIDATION_COLOR


def test_curves_are_smoothed_as_tensorboard_smooths_them(env, training_data):
    a_run(env.runs, training_data, start(), epoch(1, 0.2), epoch(2, 0.4), epoch(3, 0.6), phase="training")
    app = open_page("training")
    assert len(figure(app, "Accuracy")["data"]) == 2  # train and validation, not smoothed yet
    app.slider(key="training-smoothing").set_value(0.5).run()
    raw, smoothed = figure(app, "Accuracy")["data"][:2]
    assert raw["y"] == pytest.approx([0.2, 0.4, 0.6]) and raw["opacity"] < 1  # the raw values, faint
    average, expected = 0.0, []
    for step, value in enumerate([0.2, 0.4, 0.6], start=1):  # an exponential moving average, debiased
        average = 0.5 * average + 0.5 * value
        expected.append(average / (1 - 0.5**step))
    assert smoothed["y"] == pytest.approx(expected) and expected[0] == pytest.approx(0.2)


def test_the_log_leaves_out_tensorflows_start_up_notices(env, training_data):
    run_dir = a_run(env.runs, training_data, start(), phase="training")
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796392742.228738   17089 port.cc:153] oneDNN custom operations are on. You may see slightly",
        "I0000 00:00:1796392742.265464   17089 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with",
    ]
    (run_dir / folder.LOG_FILE).write_text("\n".join([*noise, "loading data from fer.zip", "Epoch 1/5", ""]))
    log = open_page("training").code[0].value
    assert log == "loading data from fer.zip\nEpoch 1/5"


# --- a single dataset, names and tags -----------------------------------------------------------------------------


def test_a_single_dataset_is_chosen_for_you(env, training_data, tiny_model_path, monkeypatch):
    monkeypatch.setenv("FERLIB_MODEL", str(env.data / "absent.keras"))
    shutil.copy(training_data, env.data / "fer_small.zip")
    shutil.copytree(tiny_model_path.parent, env.runs / tiny_model_path.parent.name)
    assert open_page("training").selectbox(key="training_dataset").value.name == "fer_small.zip"
    assert open_page("tune").selectbox(key="tune_dataset").value.name == "fer_small.zip"
    app = open_page("metrics", timeout=240)
    assert not app.exception and app.selectbox(key="metrics_dataset").value.name == "fer_small.zip"


def test_runs_are_named_tagged_and_noted_and_listed_by_name(env, training_data, tiny_model_path, monkeypatch):
    shutil.copy(training_data, env.data / "fer_small.zip")
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=os.getpid()))
    app = open_page("training")
    app.text_input(key="training_name").set_value("Baseline with flips")
    app.text_input(key="training_tags").set_value("baseline, flip")
    next(button for button in app.button if button.label == "Start training").click().run()
    assert not app.exception and not app.error
    (run,) = runs.list_runs(env.runs)
    assert (run.label.name, run.label.tags) == ("Baseline with flips", ("baseline", "flip"))
    assert app.selectbox(key="training_watched_run").options == ["Baseline with flips · starting"]
    table = app.dataframe[0].value
    assert list(table["Run"]) == ["Baseline with flips"] and list(table["Tags"]) == ["baseline, flip"]

    key = f"training-label-{run.run_id}"
    app.text_area(key=f"{key}-note").set_value("The first try.")
    next(button for button in app.button if button.label == "Save").click().run()
    assert not app.exception and folder.read_label(run.path).note == "The first try."
    assert "*The first try.*" in texts(app.markdown)

    finished = shutil.copytree(tiny_model_path.parent, env.runs / tiny_model_path.parent.name)
    folder.write_label(finished, name="My first model")
    app = open_page("metrics")
    assert any(
        option.startswith("My first model · compact_cnn") for option in app.selectbox(key="metrics_model").options
    )


# --- Home ---------------------------------------------------------------------------------------------------------


def test_home_shows_a_designed_summary_and_the_card_for_people(monkeypatch, tmp_path, tiny_model_path):
    """No raw JSON widget; the written card without its own oversized title or internal notes on its training."""
    model = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, model)
    card = json.loads(tiny_model_path.with_suffix(".json").read_text()) | {"train_wall_seconds": 22672.338747}
    model.with_suffix(".json").write_text(json.dumps(card))
    note = "- Note: Epochs 1-53 drew their augmentations from layers that shared one seed."
    model.with_suffix(".md").write_text(f"# Model card: model.keras\n\n## Intended use\n\nDemos.\n{note}\n")
    monkeypatch.setenv("FERLIB_MODEL", str(model))
    app = open_page("home")
    assert not app.exception and not app.get("json")
    assert "22672" not in texts(app.markdown) and "6 h 17 min" in texts(app.markdown)
    (written,) = [expander for expander in app.expander if expander.label.startswith("Model card")]
    shown = texts(written.markdown)
    assert "#### Intended use" in shown and "# Model card" not in shown and "Epochs 1-53" not in shown


def test_home_tries_the_sample_photo_with_no_file(monkeypatch):
    monkeypatch.delenv("FERLIB_MODEL", raising=False)  # the shipped model
    app = open_page("home")
    assert not app.image
    next(button for button in app.button if button.label == "Try the sample photo").click().run()
    assert not app.exception
    assert app.image[0].captions == ["1 face found"]
    assert any(" happy (" in expander.label for expander in app.expander if expander.label.startswith("Face 1:"))
    assert "Download the annotated photo" in [button.label for button in app.get("download_button")]
    sample = REPO_ROOT / "pages" / "assets" / "sample-face.jpg"
    assert sample.stat().st_size < 60_000 and (sample.parent / "README.md").exists()  # small, with its licence


def test_a_huge_photo_is_analysed_reduced_and_never_offered_larger_than_a_screen(monkeypatch):
    from pages.components import photo

    skimage_data = pytest.importorskip("skimage.data")
    monkeypatch.delenv("FERLIB_MODEL", raising=False)
    encoded, encode = [], photo.encode_png
    monkeypatch.setattr(photo, "encode_png", lambda image: encoded.append(image.shape) or encode(image))
    big = np.full((4000, 6000, 3), 90, np.uint8)  # 24 megapixels: decoded at half size
    big[500:3500, 1500:4500] = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (3000, 3000))
    app = open_page("home")
    app.get("file_uploader")[0].upload("big.jpg", cv2.imencode(".jpg", big)[1].tobytes(), "image/jpeg").run()
    assert not app.exception and app.image[0].captions == ["1 face found"]
    assert encoded and max(max(shape[:2]) for shape in encoded) <= 1920


def test_a_photo_without_a_face_offers_no_annotated_download(monkeypatch):
    monkeypatch.delenv("FERLIB_MODEL", raising=False)
    app = open_page("home")
    wall = cv2.imencode(".png", np.full((200, 300, 3), 180, np.uint8))[1].tobytes()
    app.get("file_uploader")[0].upload("wall.png", wall, "image/png").run()
    assert not app.exception and "No face was found" in texts(app.warning)
    assert "Download the annotated photo" not in [button.label for button in app.get("download_button")]


# --- Tune ---------------------------------------------------------------------------------------------------------


def a_search(env, data, state: str = "finished", workers: int = 1, **status) -> Path:
    base = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, data=str(data))
    space = {"learning_rate": [0.001, 0.01], "optimizer": ["sgd", "adam"]}
    config = search_space.SearchConfig(max_trials=4, epochs=1, subset=0.5, space=space, base=base, workers=workers)
    search_dir = search_launch.create_search(config, env.searches, search_id="20260101-000000-random-aaaa")
    trials = search_dir / searches.TRIALS_FILE
    for trial, values, score in [("0", {"learning_rate": 0.01, "optimizer": "sgd"}, 0.1132), ("1", {}, None)]:
        append_json_line(trials, {"event": "trial_start", "trial": trial, "hyperparameters": values, "worker": "w-1"})
        if score is not None:
            append_json_line(trials, {"event": "trial_end", "trial": trial, "status": "completed", "score": score})
    atomic_write_json(search_dir / searches.BASELINE_FILE, {"score": 0.1, "config": base.to_dict()})
    folder.write_status(search_dir, "running", **status)
    if state != "running":
        folder.write_status(search_dir, state)
    return search_dir


def test_tune_tables_speak_in_words_and_one_number_format(env, training_data):
    """Tables showed None, snake_case headers and mixed rounding (11.4% beside 13.32%)."""
    a_search(env, training_data, state="stopped")
    app = open_page("tune")
    assert not app.exception
    (table,) = app.dataframe
    frame = table.value
    words = ["Trial", "Status", "Val. accuracy", "Duration", "Epochs", "Worker", "Learning rate", "Optimizer"]
    assert list(frame.columns) == words
    assert list(frame["Val. accuracy"]) == ["11.3%", "–"] and list(frame["Status"]) == ["completed", "interrupted"]
    cells = frame.astype(str).to_numpy().ravel().tolist()
    assert "None" not in cells and "nan" not in cells and "baseline's" in cells
    assert all('"parcoords"' not in chart.proto.spec for chart in app.get("plotly_chart"))


def test_a_running_distributed_search_shows_how_to_add_a_worker(env, training_data):
    search_dir = a_search(env, training_data, state="running", workers=2, oracle="10.0.0.5:41889")
    (command,) = [code.value for code in open_page("tune").code if "--join" in code.value]
    assert command == (f"python -m ferlib tune --search-dir {search_dir} --join 10.0.0.5:41889 --data {training_data}")


def test_a_search_can_be_started_with_local_workers(env, training_data, monkeypatch):
    shutil.copy(training_data, env.data / "fer_small.zip")
    launched = []
    monkeypatch.setattr(folder, "spawn", lambda job_dir, *_, **__: launched.append(job_dir) or SimpleNamespace(pid=1))
    app = open_page("tune")
    app.number_input(key="tune_workers").set_value(2)
    next(button for button in app.button if button.label == "Start search").click().run()
    assert not app.exception and not app.error
    (search_dir,) = list(env.searches.iterdir())
    assert search_launch.load_search_config(search_dir).workers == 2


# --- Live ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def live_page(monkeypatch, env, tiny_model_path, tmp_path):
    from ferlib.live.webrtc import preload_srtp

    preload_srtp()
    monkeypatch.setattr("streamlit_webrtc.component.get_this_session_info", lambda: None)
    model = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    monkeypatch.setenv("FERLIB_MODEL", str(model))
    return lambda: open_page("live")


def test_the_snapshot_download_waits_for_a_frame(live_page):
    """Before START it offered a black 320x240 PNG."""
    app = live_page()
    (snapshot,) = [button for button in app.get("download_button") if button.label == "Download a snapshot"]
    assert snapshot.disabled
    app.session_state["live_session"].process_frame(np.full((240, 320, 3), 90, np.uint8))
    app.run()
    (snapshot,) = [button for button in app.get("download_button") if button.label == "Download a snapshot"]
    assert not snapshot.disabled


def test_after_the_video_stops_its_stopped_for_counter_keeps_counting(live_page, monkeypatch):
    """The results beside the video were redrawn only while it played, so 'stopped 3 s ago' froze."""
    import streamlit as st

    refreshes, fragment = [], st.fragment

    def recorded(function=None, *, run_every=None):
        if function is None:  # used as st.fragment(run_every=...)(function)
            return lambda function: recorded(function, run_every=run_every)
        refreshes.append((function.__name__, run_every))
        return fragment(function, run_every=run_every)

    monkeypatch.setattr(st, "fragment", recorded)
    app = live_page()
    assert ("live_results", None) in refreshes  # nothing shown yet: nothing to refresh
    app.session_state["live_session"].process_frame(np.full((240, 320, 3), 90, np.uint8))
    refreshes.clear()
    app.run()
    (every,) = [seconds for name, seconds in refreshes if name == "live_results"]
    assert every and every <= 5
    assert any(caption.value.startswith("The video stopped ") for caption in app.caption)
