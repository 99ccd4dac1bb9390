"""The Training page under Streamlit's AppTest: empty states, a finished run, an active run (stop), a stopped
run (resume), deleting with confirmation, and a form submission that trains a tiny real run in its own process."""

import os
import re
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.atomic import append_json_line, read_json
from ferlib.errors import FerError
from ferlib.evaluation import catalog
from ferlib.jobs import folder, runs
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig

TINY = {"filters": (8, 16, 32), "dense_units": 16}
LAUNCH_DEADLINE_SECONDS = 180  # the tiny run takes well under a minute alone; leave room for a busy machine


def tiny_config(data, **changes) -> TrainConfig:
    return TrainConfig(architecture="compact_cnn", hyperparameters=TINY, batch_size=32, data=str(data), **changes)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder and an empty data folder, seen by the page through the environment."""
    directory = tmp_path / "runs"
    directory.mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(directory))
    monkeypatch.setenv("FERLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FERLIB_SEARCHES_DIR", str(tmp_path / "searches"))
    return directory


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, training_data) -> Path:
    """A one-epoch compact run trained in this process, to copy into each test's runs folder."""
    from ferlib.data.datasets import load_dataset
    from ferlib.training.trainer import run_training

    run_dir = run_launch.create_run(tiny_config(training_data, epochs=1), tmp_path_factory.mktemp("finished_runs"))
    # Module scope runs before the per-test cache folder is set: decode without writing a cache.
    run_training(run_dir, dataset=load_dataset(training_data, use_cache=False), verbose=0)
    (run_dir / folder.LOG_FILE).write_text("loading data\nEpoch 1/1 - loss: 1.9\nstatus=finished\n")
    return run_dir


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def open_training_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.switch_page("pages/training.py")
    return app.run()


def start_button(app: AppTest):
    (button,) = [button for button in app.button if button.label == "Start training"]
    return button


def button_labelled(app: AppTest, label: str):
    matches = [button for button in app.button if button.label == label]
    assert matches, f"no {label!r} button among {[button.label for button in app.button]}"
    return matches[0]


def texts(elements) -> str:
    return "\n".join(element.value for element in elements)


def fake_active_run(runs_dir: Path, data: Path) -> Path:
    """A run whose 'training process' is this test process (alive), halfway through its second epoch."""
    run_dir = run_launch.create_run(tiny_config(data, epochs=5), runs_dir, run_id="20260101-000000-compact_cnn-aaaa")
    folder.write_status(run_dir, "running")
    now = time.time()
    progress = run_dir / folder.PROGRESS_FILE
    append_json_line(progress, {"event": "start", "epochs": 5, "initial_epoch": 0, "steps_per_epoch": 10})
    epoch_record = {"event": "epoch", "epoch": 1, "epochs": 5, "partial": False, "learning_rate": 0.005}
    epoch_record.update({"loss": 1.9, "accuracy": 0.2, "val_loss": 1.8, "val_accuracy": 0.25, "eta_seconds": 80.0})
    append_json_line(progress, epoch_record)
    batch_record = {"event": "batch", "epoch": 2, "epochs": 5, "batch": 3, "steps": 10, "loss": 1.7}
    batch_record.update({"accuracy": 0.3, "learning_rate": 0.01, "eta_seconds": 600.0, "time": now})
    append_json_line(progress, batch_record)
    (run_dir / folder.LOG_FILE).write_text("loading data from somewhere\nEpoch 1/5 done\n")
    return run_dir


# --- empty states -------------------------------------------------------------------------------------------


def test_with_no_runs_and_no_dataset_the_page_says_what_to_do(runs_dir):
    app = open_training_page()
    assert not app.exception
    assert app.title[0].value == "Training"
    information = texts(app.info)
    assert "No runs yet" in information
    assert "No dataset found" in information
    assert start_button(app).disabled  # nothing to train on
    assert not app.dataframe


def test_a_dataset_enables_the_start_button(runs_dir, training_data):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    app = open_training_page()
    assert not app.exception
    assert "No dataset found" not in texts(app.info)
    assert not start_button(app).disabled
    assert app.selectbox(key="training_dataset").value.name == "fer_small.zip"


# --- a finished run -----------------------------------------------------------------------------------------


def test_a_finished_run_shows_its_result_curves_log_and_table_row(runs_dir, finished_run):
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    app = open_training_page()
    assert not app.exception
    assert app.selectbox(key="training_watched_run").value == finished_run.name
    assert "Finished with validation accuracy" in texts(app.success)
    assert app.get("progress")[0].value == 100  # AppTest reports the bar in percent
    assert len(app.get("plotly_chart")) == 3  # loss, accuracy, learning rate
    assert "status=finished" in app.code[0].value
    table = app.dataframe[0].value
    assert list(table["Run"]) == [finished_run.name]
    assert list(table["Status"]) == ["finished"]
    state = read_json(finished_run / "state.json")
    assert table["Best val. accuracy"][0] == f"{state['best_val_accuracy']:.1%}"  # as the figures above it
    assert "aug flip" in table["Settings"][0]
    assert not [button for button in app.button if button.label in ("Stop", "Resume")]


def test_hand_damaged_run_folders_are_listed_not_fatal(runs_dir, finished_run):
    """Valid JSON of the wrong shape (or binary garbage) in one run folder used to take down the whole page."""
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    damage = {
        "29990101-000000-list": {"config.json": b"[1, 2]", "status.json": b'{"state": "stopped", "started": "soon"}'},
        "29990101-000001-text": {"config.json": b'{"epochs": "ten"}', "state.json": b'["x"]'},
        "29990101-000002-bytes": {"config.json": b'{"architecture": "vgg_fer"}', "status.json": b"\xff\xfe\x00"},
    }
    for name, files in damage.items():
        (runs_dir / name).mkdir()
        for file_name, content in files.items():
            (runs_dir / name / file_name).write_bytes(content)
    assert [run.run_id for run in runs.list_runs(runs_dir)][:3] == sorted(damage, reverse=True)
    app = open_training_page()
    assert not app.exception
    table = app.dataframe[0].value
    assert set(table["Run"]) == {*damage, finished_run.name}
    app.selectbox(key="training_watched_run").set_value("29990101-000001-text").run()
    assert not app.exception


def test_deleting_a_run_asks_for_confirmation_first(runs_dir, finished_run):
    """Delete… opens a popover that asks; only its Yes, delete removes the folder."""
    run_dir = runs_dir / finished_run.name
    shutil.copytree(finished_run, run_dir)
    app = open_training_page()
    (popover,) = [popover for popover in app.get("popover") if popover.proto.popover.label == "Delete…"]
    assert "cannot be undone" in texts(popover.warning) and run_dir.exists()
    app.run()
    assert run_dir.exists()
    button_labelled(app, "Yes, delete").click().run()
    assert not app.exception
    assert not run_dir.exists()
    assert "No runs yet" in texts(app.info)


# --- an active run ------------------------------------------------------------------------------------------


def test_an_active_run_is_watched_refuses_a_new_start_and_can_be_stopped(runs_dir, training_data):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    run_dir = fake_active_run(runs_dir, training_data)
    app = open_training_page()
    assert not app.exception
    assert app.selectbox(key="training_watched_run").value == run_dir.name
    assert "runs one job at a time" in texts(app.warning)
    assert start_button(app).disabled
    progress = app.get("progress")[0]
    assert progress.value == 26  # 1.3 of 5 epochs
    # The record's 10-minute ETA, counted down by the seconds since it was written (a slow machine may take minutes).
    assert re.fullmatch(r"Epoch 2/5 · batch 3/10 · about ([5-9] min [0-5]\d s|10 min 00 s) left", progress.proto.text)
    assert "Epoch 1/5 done" in app.code[0].value
    assert [row for row in app.dataframe[0].value["Status"]] == ["running"]
    assert "Delete…" not in [popover.proto.popover.label for popover in app.get("popover")]  # it is training

    button_labelled(app, "Stop").click().run()
    assert not app.exception
    assert folder.stop_requested(run_dir)
    assert button_labelled(app, "Stopping after the current batch…").disabled


def test_an_active_search_disables_start_and_says_so(runs_dir, training_data):
    from ferlib.jobs import searches

    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    search_dir = Path(os.environ["FERLIB_SEARCHES_DIR"]) / "20260101-000000-random"
    search_dir.mkdir(parents=True)
    (search_dir / "config.json").write_text('{"strategy": "random", "space": {"dropout": [0.3, 0.5]}}')
    folder.write_status(search_dir, "running")  # this process: alive
    assert [search.search_id for search in searches.active_searches()] == [search_dir.name]
    app = open_training_page()
    assert not app.exception
    assert "hyperparameter search **20260101-000000-random** is" in texts(app.warning)
    assert start_button(app).disabled


def test_a_start_that_ferlib_refuses_shows_an_error_not_a_traceback(runs_dir, training_data, monkeypatch):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    app = open_training_page()

    def refuse(*arguments, **keywords):
        raise FerError("Expected no active run, since one run trains at a time; received another (running)")

    monkeypatch.setattr(run_launch, "start_run", refuse)  # another session started a run after this page was drawn
    start_button(app).click().run()
    assert not app.exception
    assert "The run could not be started" in texts(app.error)
    assert "one run trains at a time" in texts(app.error)


def test_invalid_settings_are_explained(runs_dir, training_data):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    app = open_training_page()
    app.text_input(key="training_hp_vgg_fer_filters").set_value("32, lots")
    start_button(app).click().run()
    assert not app.exception
    assert "These settings cannot be used" in texts(app.error)
    assert runs.list_runs(runs_dir) == []


def compact_form_beside_a_finished_run(runs_dir, training_data, finished_run, monkeypatch) -> AppTest:
    """The page with a dataset and a finished run to choose from, compact_cnn chosen; starts spawn nothing."""
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=os.getpid()))
    app = open_training_page()
    app.selectbox(key="training_architecture").set_value("compact_cnn").run()
    return app


def test_a_run_can_warm_start_from_a_finished_runs_model(runs_dir, training_data, finished_run, monkeypatch):
    app = compact_form_beside_a_finished_run(runs_dir, training_data, finished_run, monkeypatch)
    start_from = app.selectbox(key="training_initial_model_compact_cnn")
    best = str(runs_dir / finished_run.name / runs.BEST_MODEL)
    assert start_from.options[0] == "Random initialisation"
    assert any(finished_run.name in option for option in start_from.options)
    start_from.set_value(best).run()

    # The run's own sizes, fixed: its weights fit no others. Dropout stays free.
    (filters,) = [widget for widget in app.text_input if widget.label == "Filters"]
    (units,) = [widget for widget in app.number_input if widget.label == "Dense units"]
    assert (filters.value, filters.disabled) == ("8, 16, 32", True)
    assert (units.value, units.disabled) == (16, True)
    assert not next(slider for slider in app.slider if slider.label == "Dense dropout").disabled
    assert "The sizes are the starting model's" in texts(app.caption)
    app.toggle(key="training_keep_epoch_checkpoints").set_value(True)
    precision = app.selectbox(key="training_precision")
    assert precision.value == "float32" and precision.options[1].startswith("mixed bfloat16 (")
    precision.set_value("mixed_bfloat16")
    start_button(app).click().run()
    assert not app.exception and not app.error
    (started,) = [run for run in runs.list_runs(runs_dir) if run.run_id != finished_run.name]
    config = run_launch.load_config(started.path)
    assert config.initial_model == best and list(config.hyperparameters["filters"]) == [8, 16, 32]
    assert config.keep_epoch_checkpoints and not run_launch.load_config(finished_run).keep_epoch_checkpoints
    assert config.precision == "mixed_bfloat16" and run_launch.load_config(finished_run).precision == "float32"

    # Back to a random start: the architecture's own defaults, free to change.
    app.selectbox(key="training_initial_model_compact_cnn").set_value("").run()
    filters = app.text_input(key="training_hp_compact_cnn_filters")
    assert (filters.value, filters.disabled) == ("32, 64, 128, 256", False)


def test_a_run_can_learn_from_chosen_models_as_well_as_the_labels(runs_dir, training_data, finished_run, monkeypatch):
    app = compact_form_beside_a_finished_run(runs_dir, training_data, finished_run, monkeypatch)
    teachers = app.multiselect(key="training_teachers")
    shipped, best = str(catalog.shipped_models()[0].model_path), str(runs_dir / finished_run.name / runs.BEST_MODEL)
    assert teachers.value == [] and any(finished_run.name in option for option in teachers.options)
    offered = " ".join(teachers.options)  # a teacher speaks for every class the run learns: seven here
    assert "fer_vgg (default)" in offered and "happy_or_sad" not in offered and "fer_vgg_six" not in offered
    teachers.set_value([shipped, best])
    app.slider(key="training_teacher_weight").set_value(0.3)
    start_button(app).click().run()
    assert not app.exception and not app.error
    (started,) = [run for run in runs.list_runs(runs_dir) if run.run_id != finished_run.name]
    config = run_launch.load_config(started.path)
    assert config.teachers == [shipped, best] and config.teacher_weight == 0.3


def test_the_shipped_default_offers_itself_as_a_start_with_its_sizes(runs_dir, training_data):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    shipped = next(entry for entry in catalog.shipped_models() if entry.model_path.stem == "fer_vgg_compact")
    assert shipped.architecture == "vgg_fer"  # the default is an ensemble of two, which no run starts from
    app = open_training_page()
    app.selectbox(key="training_initial_model_vgg_fer").set_value(str(shipped.model_path)).run()
    (filters,) = [widget for widget in app.text_input if widget.label == "Filters"]
    assert filters.value == ", ".join(map(str, shipped.hyperparameters["filters"])) and filters.disabled
    assert not app.exception and not app.error


# --- resuming -----------------------------------------------------------------------------------------------


def test_a_stopped_run_can_be_resumed(runs_dir, training_data, monkeypatch):
    run_dir = run_launch.create_run(tiny_config(training_data, epochs=3), runs_dir)
    folder.write_status(run_dir, "stopped", epochs_completed=1)
    launched = []

    def fake_spawn(path, arguments, *, extra_env=None):
        launched.append((Path(path).name, "--resume" in arguments))
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(folder, "spawn", fake_spawn)
    app = open_training_page()
    assert not app.exception
    assert "Resume" in texts(app.info)
    button_labelled(app, "Resume").click().run()
    assert not app.exception
    assert launched == [(run_dir.name, True)]
    assert folder.read_status(run_dir)["state"] == "created"
    assert "Resume" not in [button.label for button in app.button]
    assert "Stop" in [button.label for button in app.button]


@pytest.mark.parametrize("native", [False, True])
def test_the_page_says_a_mixed_run_resumes_in_float32_on_a_cpu_without_bfloat16(
    runs_dir, training_data, monkeypatch, native
):
    from ferlib.nets import precision

    config = tiny_config(training_data, epochs=3).updated(precision="mixed_bfloat16")
    run_dir = run_launch.create_run(config, runs_dir)
    folder.write_status(run_dir, "stopped", epochs_completed=1)
    launched = []

    def fake_spawn(path, arguments, *, extra_env=None):
        launched.append(arguments)
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(folder, "spawn", fake_spawn)
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: native)
    app = open_training_page()
    assert not app.exception
    assert ("continues it in float32" in texts(app.info)) is not native  # the training process switches it
    button_labelled(app, "Resume").click().run()
    assert not app.exception
    (arguments,) = launched
    assert "--resume" in arguments and "--precision" not in arguments


def test_a_failed_run_offers_resume_only_when_it_saved_a_checkpoint(runs_dir, training_data, monkeypatch):
    run_dir = run_launch.create_run(tiny_config(training_data, epochs=3), runs_dir)
    folder.write_status(run_dir, "failed", error="OSError: [Errno 28] No space left on device")
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=os.getpid()))
    app = open_training_page()
    assert not app.exception
    assert "Start a new run once the cause is fixed" in texts(app.error)
    assert "Resume" not in [button.label for button in app.button]

    (run_dir / runs.LAST_MODEL).write_bytes(b"the epoch-2 checkpoint")
    app = open_training_page()
    assert "No space left on device" in texts(app.error) and "**Resume** continues" in texts(app.error)
    button_labelled(app, "Resume").click().run()
    assert not app.exception
    assert folder.read_status(run_dir)["state"] == "created"


# --- portable snapshots -------------------------------------------------------------------------------------


def test_a_finished_run_offers_its_snapshot_written_only_when_asked(runs_dir, finished_run, monkeypatch):
    from ferlib.training import snapshot

    run_dir = runs_dir / finished_run.name
    shutil.copytree(finished_run, run_dir)
    from streamlit.runtime.media_file_manager import MediaFileManager

    written, write, deferred, add_deferred = [], snapshot.write_snapshot, {}, MediaFileManager.add_deferred
    monkeypatch.setattr(snapshot, "write_snapshot", lambda *arguments: written.append(1) or write(*arguments))

    def remember(self, data, *arguments, file_name=None, **keywords):  # what a click on the download would call
        deferred[file_name] = data
        return add_deferred(self, data, *arguments, file_name=file_name, **keywords)

    monkeypatch.setattr(MediaFileManager, "add_deferred", remember)
    app = open_training_page()
    app.run()
    assert not app.exception and not written  # not on every rerun: only when the download is clicked
    assert "Download snapshot" in [button.label for button in app.get("download_button")]
    data = deferred[f"{finished_run.name}.snapshot.zip"]()
    assert len(written) == 1
    (runs_dir.parent / "served.zip").write_bytes(data)
    assert snapshot.read_snapshot(runs_dir.parent / "served.zip").manifest["run_id"] == finished_run.name


def test_a_snapshot_is_restored_and_resumed_in_its_own_process(runs_dir, training_data, finished_run, monkeypatch):
    from ferlib.training import snapshot

    snapshot.write_snapshot(finished_run, runs_dir.parent / "run.snapshot.zip")
    launched = []

    def fake_spawn(path, arguments, *, extra_env=None):
        launched.append((Path(path).name, "--resume" in arguments))
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(folder, "spawn", fake_spawn)
    app = open_training_page()
    upload = (runs_dir.parent / "run.snapshot.zip").read_bytes()
    app.file_uploader(key="training_snapshot_upload").upload("run.snapshot.zip", upload, "application/zip").run()
    button_labelled(app, "Resume from the snapshot").click().run()
    assert not app.exception and not app.error
    restored = runs_dir / finished_run.name
    assert launched == [(finished_run.name, True)]
    assert folder.read_status(restored)["state"] == "created"  # handed to the new training process
    assert run_launch.load_config(restored).data == str(training_data)
    assert app.selectbox(key="training_watched_run").value == finished_run.name
    assert "Stop" in [button.label for button in app.button]


def test_a_snapshot_from_another_machine_continues_on_a_dataset_chosen_here(
    runs_dir, training_data, finished_run, tmp_path, monkeypatch
):
    """Its recorded dataset path does not exist here: refused (nothing created) until a dataset is chosen."""
    from ferlib.atomic import atomic_write_json
    from ferlib.training import snapshot

    elsewhere = Path(shutil.copytree(finished_run, tmp_path / "elsewhere" / finished_run.name))
    atomic_write_json(
        elsewhere / folder.CONFIG_FILE, run_launch.load_config(elsewhere).updated(data="/nowhere/fer.zip").to_dict()
    )
    snapshot.write_snapshot(elsewhere, tmp_path / "run.snapshot.zip")
    here = Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip"
    shutil.copy(training_data, here)
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=os.getpid()))
    app = open_training_page()
    upload = (tmp_path / "run.snapshot.zip").read_bytes()
    app.file_uploader(key="training_snapshot_upload").upload("run.snapshot.zip", upload, "application/zip").run()
    button_labelled(app, "Resume from the snapshot").click().run()
    assert not app.exception
    assert "Expected an existing dataset" in texts(app.error) and "/nowhere/fer.zip" in texts(app.error)
    assert list(runs_dir.iterdir()) == []

    app.selectbox(key="training_snapshot_data").set_value(here)
    button_labelled(app, "Resume from the snapshot").click().run()
    assert not app.exception and not app.error
    restored = runs_dir / finished_run.name
    assert run_launch.load_config(restored).data == str(here.resolve())
    assert folder.read_status(restored)["state"] == "created"


def test_a_damaged_snapshot_is_refused_and_creates_nothing(runs_dir, monkeypatch):
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: pytest.fail("nothing may be launched"))
    app = open_training_page()
    app.file_uploader(key="training_snapshot_upload").upload(
        "run.snapshot.zip", b"PK\x03\x04 cut short", "application/zip"
    )
    app.run()
    button_labelled(app, "Resume from the snapshot").click().run()
    assert not app.exception
    assert "This snapshot cannot be resumed here" in texts(app.error)
    assert "Expected a ferlib training snapshot" in texts(app.error)
    assert list(runs_dir.iterdir()) == []


# --- a real run from the form -------------------------------------------------------------------------------


@pytest.fixture
def launched_processes(monkeypatch):
    """Record the training processes the page starts, and end any still running when the test ends."""
    processes = []
    original_launch = folder.spawn

    def recording_launch(*arguments, **keywords):
        process = original_launch(*arguments, **keywords)
        processes.append(process)
        return process

    monkeypatch.setattr(folder, "spawn", recording_launch)
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except Exception:
                process.kill()
                process.wait()


def test_submitting_the_form_trains_a_tiny_run_in_its_own_process(runs_dir, training_data, launched_processes):
    shutil.copy(training_data, Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip")
    app = open_training_page()
    app.selectbox(key="training_architecture").set_value("compact_cnn").run()
    app.text_input(key="training_hp_compact_cnn_filters").set_value("8, 16, 32")
    app.number_input(key="training_hp_compact_cnn_dense_units").set_value(16)
    app.number_input(key="training_epochs").set_value(1)
    app.number_input(key="training_batch_size").set_value(32)
    start_button(app).click().run()
    assert not app.exception, app.exception

    (run,) = runs.list_runs(runs_dir)
    config = run_launch.load_config(run.path)
    assert (config.architecture, config.epochs, config.batch_size) == ("compact_cnn", 1, 32)
    assert config.hyperparameters["filters"] == [8, 16, 32] and config.hyperparameters["dense_units"] == 16
    assert config.data == str((Path(os.environ["FERLIB_DATA_DIR"]) / "fer_small.zip").resolve())
    assert len(launched_processes) == 1 and launched_processes[0].pid != os.getpid()
    assert app.selectbox(key="training_watched_run").value == run.run_id
    assert start_button(app).disabled, (folder.read_status(run.path), folder.read_log_tail(run.path))  # it is active

    deadline = time.time() + LAUNCH_DEADLINE_SECONDS
    state = None
    while time.time() < deadline:
        state = (read_json(run.path / folder.STATUS_FILE, default={}) or {}).get("state")
        if state in ("finished", "failed") or launched_processes[0].poll() is not None:
            break
        time.sleep(1)
    log = folder.read_log_tail(run.path)
    assert folder.read_status(run.path)["state"] == "finished", log
    assert (run.path / runs.BEST_MODEL).exists()

    app.run()  # the page, reopened, shows the finished run
    assert not app.exception
    assert "Finished with validation accuracy" in texts(app.success)
    assert list(app.dataframe[0].value["Status"]) == ["finished"]
    assert not start_button(app).disabled

    app.switch_page("pages/metrics.py").run()  # the finished run is offered on the Metrics page
    assert not app.exception, app.exception
    assert any(run.run_id in str(option) for option in app.selectbox(key="metrics_model").options)
