"""Run folders for the dashboard (ferlib.jobs.runs, ferlib.training.run_launch): one active run at a time, launching,
resuming, deleting, reading progress."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ferlib.atomic import atomic_write_json, read_json
from ferlib.data.augment import AugmentationConfig
from ferlib.jobs import folder, progress, runs
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig, describe_config

TINY = {"filters": (8, 16, 32), "dense_units": 16}


def tiny_config(data, **changes) -> TrainConfig:
    return TrainConfig(architecture="compact_cnn", hyperparameters=TINY, batch_size=32, data=str(data), **changes)


def dead_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def set_status(run_dir: Path, **fields) -> None:
    """Overwrite fields of status.json directly, e.g. to age it or point it at another process."""
    path = run_dir / folder.STATUS_FILE
    atomic_write_json(path, {**read_json(path), **fields})


@pytest.fixture
def launches(monkeypatch):
    """Replace the process launch with a recorder; the 'process' is this test process, so it reads as alive."""
    calls = []

    def fake_spawn(run_dir, arguments, *, extra_env=None):
        data = arguments[arguments.index("--data") + 1]
        calls.append({"run_dir": Path(run_dir), "data": data, "resume": "--resume" in arguments})
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(folder, "spawn", fake_spawn)
    return calls


# --- active runs --------------------------------------------------------------------------------------------


def test_active_runs_are_the_created_and_running_ones_with_a_live_process(tmp_path, training_data):
    assert runs.active_runs(tmp_path / "missing") == []
    run_launch.create_run(tiny_config(training_data), tmp_path, run_id="a-created")
    running = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="b-running")
    folder.write_status(running, "running")  # this test process is its 'training process'
    dead = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="c-dead")
    folder.write_status(dead, "running", pid=dead_pid())
    finished = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="d-finished")
    folder.write_status(finished, "finished")
    assert [run.run_id for run in runs.active_runs(tmp_path)] == ["b-running", "a-created"]
    assert folder.read_status(dead)["state"] == "interrupted"


def test_ensure_no_active_run_names_the_active_run(tmp_path, training_data):
    folder.ensure_no_active_job(tmp_path)  # nothing there: no error
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="busy")
    folder.write_status(run_dir, "running")
    with pytest.raises(ValueError, match=r"Expected no active run.*busy \(running\)"):
        folder.ensure_no_active_job(tmp_path)
    folder.write_status(run_dir, "stopped")
    folder.ensure_no_active_job(tmp_path)


# --- starting and resuming ----------------------------------------------------------------------------------


def test_start_run_creates_the_folder_and_launches_its_process(tmp_path, training_data, launches):
    run_dir = run_launch.start_run(tiny_config(training_data, epochs=2), tmp_path)
    assert run_dir.parent == tmp_path.resolve()
    assert run_launch.load_config(run_dir).epochs == 2
    assert launches == [{"run_dir": run_dir, "data": str(training_data), "resume": False}]
    status = read_json(run_dir / folder.STATUS_FILE)
    assert status["state"] == "created" and status["pid"] == os.getpid() and status["launched"] > 0
    assert [run.run_id for run in runs.active_runs(tmp_path)] == [run_dir.name]


def test_a_second_start_is_refused_while_a_run_is_active(tmp_path, training_data, launches):
    first = run_launch.start_run(tiny_config(training_data), tmp_path)
    with pytest.raises(ValueError, match=f"Expected no active run.*{first.name}"):
        run_launch.start_run(tiny_config(training_data), tmp_path)
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == [first.name]
    assert len(launches) == 1
    folder.write_status(first, "finished")
    second = run_launch.start_run(tiny_config(training_data), tmp_path)
    assert second != first and len(launches) == 2


def test_start_run_refuses_a_missing_dataset_without_creating_a_folder(tmp_path, launches):
    with pytest.raises(ValueError, match="Expected an existing dataset"):
        run_launch.start_run(tiny_config(tmp_path / "nowhere.zip"), tmp_path / "runs")
    with pytest.raises(ValueError, match="name its dataset"):
        run_launch.start_run(TrainConfig(architecture="compact_cnn"), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or runs.list_runs(tmp_path / "runs") == []
    assert launches == []


def test_a_process_that_cannot_start_marks_the_run_failed(tmp_path, training_data, monkeypatch):
    def failing_launch(*arguments, **keywords):
        raise OSError("no such interpreter")

    monkeypatch.setattr(folder, "spawn", failing_launch)
    with pytest.raises(ValueError, match="no such interpreter"):
        run_launch.start_run(tiny_config(training_data), tmp_path)
    (run,) = runs.list_runs(tmp_path)
    assert run.state == "failed"
    assert runs.active_runs(tmp_path) == []


def test_a_launched_process_that_dies_before_training_stops_blocking_after_the_grace_minute(
    tmp_path, training_data, monkeypatch
):
    gone = dead_pid()
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=gone))
    run_dir = run_launch.start_run(tiny_config(training_data), tmp_path)
    assert read_json(run_dir / folder.STATUS_FILE)["pid"] == gone  # the training process, not this one
    assert folder.is_active(run_dir)  # still within the minute a new process gets to start
    set_status(run_dir, updated=time.time() - 120)
    assert folder.read_status(run_dir)["state"] == "interrupted"
    assert runs.active_runs(tmp_path) == []


def test_simultaneous_starts_launch_only_one_run(tmp_path, training_data, launches, monkeypatch):
    original_create = run_launch.create_run

    def slow_create(*arguments, **keywords):
        time.sleep(0.3)  # widen the gap between checking for active runs and creating the folder
        return original_create(*arguments, **keywords)

    monkeypatch.setattr(run_launch, "create_run", slow_create)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            run_launch.start_run(tiny_config(training_data), tmp_path)
            outcomes.append("started")
        except ValueError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "started"]
    assert len(launches) == 1 and len(runs.list_runs(tmp_path)) == 1


def test_resume_run_relaunches_a_stopped_run_and_marks_it_active(tmp_path, training_data, launches):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    folder.write_status(run_dir, "stopped")
    assert run_launch.resume_run(run_dir) == run_dir.resolve()
    assert launches == [{"run_dir": run_dir.resolve(), "data": str(training_data), "resume": True}]
    status = folder.read_status(run_dir)
    assert status["state"] == "created" and status["resumed"] is True
    with pytest.raises(ValueError, match="which is created"):
        run_launch.resume_run(run_dir)  # a second click while it starts
    assert len(launches) == 1


def test_resume_run_refuses_a_config_this_version_cannot_read_before_anything_changes(
    tmp_path, training_data, launches
):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    folder.write_status(run_dir, "stopped")
    config = json.loads((run_dir / folder.CONFIG_FILE).read_text())
    (run_dir / folder.CONFIG_FILE).write_text(json.dumps({**config, "epochs": "many"}))
    with pytest.raises(ValueError, match=r"^Expected"):
        run_launch.resume_run(run_dir)
    assert folder.read_status(run_dir)["state"] == "stopped" and launches == []


def test_resume_run_accepts_an_interrupted_run_but_not_a_finished_one(tmp_path, training_data, launches):
    interrupted = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="interrupted")
    folder.write_status(interrupted, "running", pid=dead_pid())
    finished = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="finished")
    folder.write_status(finished, "finished")
    with pytest.raises(ValueError, match="which is finished"):
        run_launch.resume_run(finished)
    run_launch.resume_run(interrupted)
    assert [call["run_dir"].name for call in launches] == ["interrupted"]


def test_resume_run_is_refused_while_another_run_is_active(tmp_path, training_data, launches):
    stopped = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="stopped")
    folder.write_status(stopped, "stopped")
    busy = run_launch.create_run(tiny_config(training_data), tmp_path, run_id="busy")
    folder.write_status(busy, "running")
    with pytest.raises(ValueError, match="Expected no active run"):
        run_launch.resume_run(stopped)
    assert folder.read_status(stopped)["state"] == "stopped"
    assert launches == []


def test_resume_run_accepts_a_failed_run_only_with_a_checkpoint(tmp_path, training_data, launches):
    failed = run_launch.create_run(tiny_config(training_data), tmp_path)
    folder.write_status(failed, "failed", error="OSError: [Errno 28] No space left on device")
    with pytest.raises(ValueError, match="which is failed"):
        run_launch.resume_run(failed)
    (failed / runs.LAST_MODEL).write_bytes(b"a checkpoint")
    folder.request_stop(failed)  # left over from an earlier session
    run_launch.resume_run(failed)
    assert folder.read_status(failed)["state"] == "created" and not folder.stop_requested(failed)
    assert [call["resume"] for call in launches] == [True]


def test_ensure_run_may_train_claims_a_resumed_run_and_refuses_a_fresh_start_of_a_trained_one(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    runs.ensure_run_may_train(run_dir, resume=False)  # a new run handed over by its launcher
    atomic_write_json(run_dir / runs.STATE_FILE, {"epochs_completed": 25, "best_val_accuracy": 0.6, "best_epoch": 20})
    folder.write_status(run_dir, "running", pid=dead_pid())  # killed at epoch 25
    with pytest.raises(ValueError, match=r"which is interrupted with 25 saved epoch.*add --resume to continue it"):
        runs.ensure_run_may_train(run_dir, resume=False)  # training it afresh would overwrite its checkpoints
    folder.request_stop(run_dir)
    runs.ensure_run_may_train(run_dir, resume=True)
    status = folder.read_status(run_dir)
    assert status["state"] == "created" and status["pid"] == os.getpid() and status["resumed"] is True
    assert not folder.stop_requested(run_dir)  # a stale request would stop the resumed run at once
    folder.request_stop(run_dir)  # ...but Stop pressed while it starts up is kept for the process
    runs.ensure_run_may_train(run_dir, resume=True)
    assert folder.stop_requested(run_dir)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_a_reused_pid_does_not_keep_a_dead_run_alive(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    folder.write_status(run_dir, "running")  # this test process, with its boot and start time
    status = read_json(run_dir / folder.STATUS_FILE)
    assert status["pid"] == os.getpid() and isinstance(status["pid_start_ticks"], int)
    assert folder.read_status(run_dir)["state"] == "running"
    set_status(run_dir, pid_start_ticks=status["pid_start_ticks"] - 1)  # the pid now names a later process
    assert folder.read_status(run_dir)["state"] == "interrupted"
    set_status(run_dir, pid_start_ticks=status["pid_start_ticks"], boot_id="an-earlier-boot")
    assert folder.read_status(run_dir)["state"] == "interrupted"
    set_status(run_dir, boot_id=status["boot_id"])
    assert folder.read_status(run_dir)["state"] == "running"
    older = {key: value for key, value in status.items() if key not in ("boot_id", "pid_start_ticks")}
    atomic_write_json(run_dir / folder.STATUS_FILE, older)  # written by an older ferlib: only the pid to go on
    assert folder.read_status(run_dir)["state"] == "running"
    stat_lines = Path("/proc/stat").read_text().splitlines()
    booted = float(next(line for line in stat_lines if line.startswith("btime ")).split()[1])
    atomic_write_json(run_dir / folder.STATUS_FILE, {**older, "updated": booted - 60})  # before this boot
    assert folder.read_status(run_dir)["state"] == "interrupted"


def test_a_created_run_is_taken_over_only_by_the_process_its_launcher_started(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        set_status(run_dir, pid=other.pid)  # a dashboard launch, still importing TensorFlow
        with pytest.raises(ValueError, match=f"which process {other.pid} is starting: wait for it, or stop it"):
            runs.ensure_run_may_train(run_dir, resume=True)
    finally:
        other.kill()
        other.wait()


def test_saved_state_trusts_the_checkpoints_written_before_state_json(tmp_path, training_data):
    """Killed between saving the epoch's checkpoints and state.json: the sidecars have the newer counts."""
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    atomic_write_json(run_dir / runs.STATE_FILE, {"epochs_completed": 3, "best_val_accuracy": 0.5, "best_epoch": 2})
    atomic_write_json(run_dir / "last.json", {"epochs_completed": 4})
    atomic_write_json(run_dir / "best.json", {"metrics": {"val_accuracy": 0.6, "epoch": 4}})
    assert runs.saved_state(run_dir)["epochs_completed"] == 3  # sidecars without their checkpoints count for nothing
    (run_dir / runs.LAST_MODEL).write_bytes(b"epoch 4")
    (run_dir / runs.BEST_MODEL).write_bytes(b"epoch 4")
    state = runs.saved_state(run_dir)
    assert (state["epochs_completed"], state["best_val_accuracy"], state["best_epoch"]) == (4, 0.6, 4)


# --- deleting -----------------------------------------------------------------------------------------------


def test_delete_run_removes_a_finished_run(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    (run_dir / folder.LOG_FILE).write_text("trained\n")
    folder.write_status(run_dir, "finished")
    runs.delete_run(run_dir)
    assert not run_dir.exists()


def test_delete_run_refuses_an_active_run_and_other_folders(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    folder.write_status(run_dir, "running")
    with pytest.raises(ValueError, match="stop it first"):
        runs.delete_run(run_dir)
    assert run_dir.exists()
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match="Expected a run folder"):
        runs.delete_run(other)
    assert (other / "precious.txt").exists()


# --- reading a run ------------------------------------------------------------------------------------------


def test_read_log_tail(tmp_path):
    assert folder.read_log_tail(tmp_path) == ""
    (tmp_path / folder.LOG_FILE).write_text("".join(f"line {number}\n" for number in range(100)))
    assert folder.read_log_tail(tmp_path, max_lines=3) == "line 97\nline 98\nline 99"
    # Reading only the last 20 bytes cuts a line in the middle: that fragment is left out.
    assert folder.read_log_tail(tmp_path, max_lines=10, max_bytes=20) == "line 98\nline 99"


START = {"event": "start", "epochs": 4, "initial_epoch": 0, "steps_per_epoch": 10, "time": 100.0}


def batch(epoch: int, number: int, **fields) -> dict:
    record = {"event": "batch", "epoch": epoch, "epochs": 4, "batch": number, "steps": 10, "time": 100.0}
    return {**record, "loss": 1.0, "accuracy": 0.5, "learning_rate": 0.01, **fields}


def epoch(number: int, partial: bool = False, **fields) -> dict:
    record = {"event": "epoch", "epoch": number, "epochs": 4, "partial": partial, "learning_rate": 0.01}
    return {**record, "loss": 1.0, "val_accuracy": 0.4, "eta_seconds": 30.0, "time": 100.0, **fields}


def test_progress_snapshot_follows_the_latest_record():
    assert progress.progress_snapshot([]) is None
    started = progress.progress_snapshot([START])
    assert (started.epoch, started.batch, started.steps, started.fraction) == (0, 0, 10, 0.0)
    assert started.learning_rate is None and started.eta_seconds is None

    mid = progress.progress_snapshot([START, epoch(1), batch(2, 5, eta_seconds=50.0, learning_rate=0.005)])
    assert (mid.epoch, mid.epochs, mid.batch, mid.steps) == (2, 4, 5, 10)
    assert mid.fraction == pytest.approx(1.5 / 4)
    assert mid.learning_rate == 0.005
    assert mid.eta_at(110.0) == pytest.approx(40.0)  # counted down by the record's age
    assert mid.eta_at(1000.0) == 0.0

    done = progress.progress_snapshot([START, epoch(1), epoch(2)])
    assert done.fraction == pytest.approx(0.5) and done.batch is None
    stopped = progress.progress_snapshot([START, epoch(1), epoch(2, partial=True)])
    assert stopped.fraction == pytest.approx(0.25)
    resumed = progress.progress_snapshot([{**START, "initial_epoch": 3}])
    assert resumed.fraction == pytest.approx(0.75)


def test_epoch_records_keep_one_completed_record_per_epoch():
    records = [
        START,
        epoch(1, val_accuracy=0.1),
        epoch(2, val_accuracy=0.2),
        epoch(3, val_accuracy=0.3),  # never saved in state.json: the process was killed
        {**START, "initial_epoch": 2},  # the resumed session trains epoch 3 again
        epoch(3, partial=True),
        {**START, "initial_epoch": 2},
        epoch(3, val_accuracy=0.33),
    ]
    kept = progress.epoch_records(records)
    assert [(record["epoch"], record["val_accuracy"]) for record in kept] == [(1, 0.1), (2, 0.2), (3, 0.33)]


def test_current_epoch_batches_are_those_after_the_latest_epoch():
    records = [START, batch(1, 5), batch(1, 10), epoch(1), batch(2, 3), batch(2, 6)]
    assert [(record["epoch"], record["batch"]) for record in progress.current_epoch_batches(records)] == [
        (2, 3),
        (2, 6),
    ]
    assert progress.current_epoch_batches([START, batch(1, 5), epoch(1)]) == []


def test_run_duration_depends_on_the_state(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    assert runs.run_duration(runs.summarize_run(run_dir)) is None  # never started
    set_status(run_dir, state="running", pid=os.getpid(), started=1000.0)
    assert runs.run_duration(runs.summarize_run(run_dir), now=1060.0) == pytest.approx(60.0)
    set_status(run_dir, state="finished", started=1000.0, ended=1300.0, updated=1300.0)
    assert runs.run_duration(runs.summarize_run(run_dir)) == pytest.approx(300.0)
    set_status(run_dir, state="running", pid=dead_pid(), started=1000.0, ended=None, updated=1000.0)
    (run_dir / folder.PROGRESS_FILE).write_text(json.dumps(START) + "\n")
    os.utime(run_dir / folder.PROGRESS_FILE, (1500.0, 1500.0))
    interrupted = runs.summarize_run(run_dir)
    assert interrupted.state == "interrupted"
    assert runs.run_duration(interrupted) == pytest.approx(500.0)  # up to the last progress write


def test_describe_config():
    config = TrainConfig(
        optimizer="adamw",
        learning_rate=0.001,
        batch_size=128,
        schedule="cosine",
        warmup_epochs=2,
        label_smoothing=0.1,
        weight_decay=0.0,
        train_fraction=0.25,
        augmentation=AugmentationConfig(horizontal_flip=True, translate=0.1, rotate_degrees=0, zoom=0, erasing=0.5),
    )
    assert describe_config(config) == (
        "adamw lr 0.001, batch 128, cosine (warm-up 2), smoothing 0.1, 25% of train, aug flip+translate+erasing"
    )
    plain = TrainConfig(
        schedule="constant",
        warmup_epochs=0,
        label_smoothing=0,
        weight_decay=0,
        augmentation=AugmentationConfig(horizontal_flip=False, translate=0, rotate_degrees=0, zoom=0),
    )
    assert describe_config(plain) == "sgd lr 0.01, batch 64, constant, no aug"


def test_a_job_can_be_named_tagged_and_noted_and_lists_show_it(tmp_path, training_data, capsys):
    from ferlib.cli import main

    run_dir = run_launch.create_run(tiny_config(training_data), tmp_path)
    assert runs.summarize_run(run_dir).title == run_dir.name  # no name yet: the id
    label = folder.write_label(
        run_dir, name="  crops   baseline ", tags=["crops", " ", "long", "crops"], note=" first "
    )
    assert label == folder.JobLabel("crops baseline", ("crops", "long"), "first")
    (listed,) = runs.list_runs(tmp_path)
    assert listed.title == "crops baseline" and listed.label.tags == ("crops", "long")
    with pytest.raises(ValueError, match="at most 80 characters; received 81"):
        folder.write_label(run_dir, name="x" * 81)
    with pytest.raises(ValueError, match="without commas"):
        folder.write_label(run_dir, tags=["a,b"])
    assert main(["label", str(run_dir), "--name", "renamed", "--tag", "t1"]) == 0
    assert "name='renamed' tags=t1" in capsys.readouterr().out
    assert folder.read_label(run_dir) == folder.JobLabel("renamed", ("t1",), "")
    (run_dir / folder.LABEL_FILE).write_text("{broken")
    assert folder.read_label(run_dir) == folder.JobLabel()


def test_the_log_tail_leaves_out_tensorflows_start_up_chatter(tmp_path):
    (tmp_path / folder.LOG_FILE).write_text(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796385842.042684    5116 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796385842.1    5116 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        "loading data from fer2013.zip\nEpoch 1/2\n"
    )
    assert folder.read_log_tail(tmp_path) == "loading data from fer2013.zip\nEpoch 1/2"
    assert len(folder.read_log_tail(tmp_path, keep_noise=True).splitlines()) == 5
