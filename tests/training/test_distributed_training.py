"""One run across two local processes (tf.distribute's MultiWorkerMirroredStrategy): it trains and resumes as one
run, a stop request stops every worker at the same step, a dead worker ends the chief with a failure to resume from,
and the distributed options are checked."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ferlib.cli import main
from ferlib.jobs import folder, runs
from ferlib.jobs.folder import read_progress

TINY = {"architecture": "compact_cnn", "hyperparameters": {"filters": [8, 16, 32], "dense_units": 16}}


def tiny_config(tmp_path, epochs: int) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, "batch_size": 32, "epochs": epochs, "ema_momentum": 0.99}))
    return str(path)


def train_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ferlib", "train", "--quiet", *arguments]


def environment(tmp_path) -> dict[str, str]:
    return {**os.environ, "FERLIB_CACHE_DIR": str(tmp_path / "cache")}


def only_run(runs_dir):
    (run,) = runs.list_runs(runs_dir)
    return run.path


def wait_for(condition, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.5)


def start_a_long_two_worker_run(tmp_path, training_data) -> tuple[subprocess.Popen, object]:
    """A 100-epoch run across two local workers, returned (with its runs folder) once its first epoch is done."""
    runs_dir = tmp_path / "runs"
    command = train_command("--data", str(training_data), "--config", tiny_config(tmp_path, 100), "--workers", "2")
    pipes = dict(text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chief = subprocess.Popen([*command, "--runs-dir", str(runs_dir)], env=environment(tmp_path), **pipes)
    try:
        wait_for(
            lambda: runs.list_runs(runs_dir) and any(r["event"] == "epoch" for r in read_progress(only_run(runs_dir)))
        )
    except BaseException:
        chief.kill()
        raise
    return chief, runs_dir


def test_a_run_trains_across_two_workers(tmp_path, training_data):
    runs_dir, env = tmp_path / "runs", environment(tmp_path)
    command = train_command("--data", str(training_data), "--config", tiny_config(tmp_path, 1), "--workers", "2")
    done = subprocess.run([*command, "--runs-dir", str(runs_dir)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run(runs_dir)
    assert done.stdout.splitlines()[-1] == f"status=finished run={run_dir} workers=2"
    assert (run_dir / runs.BEST_MODEL).exists() and (run_dir / "workers" / "worker-1.log").exists()
    assert f"worker=1 run={run_dir}" in (run_dir / "workers" / "worker-1.log").read_text()

    assert read_progress(run_dir)[0]["workers"] == 2 and folder.read_status(run_dir)["state"] == "finished"


def test_a_stop_request_stops_every_worker_at_the_same_step_and_resume_continues_the_run(tmp_path, training_data):
    chief, runs_dir = start_a_long_two_worker_run(tmp_path, training_data)
    try:
        run_dir = only_run(runs_dir)
        folder.request_stop(run_dir)
        stdout, stderr = chief.communicate(timeout=240)
    finally:
        chief.kill()
    assert chief.returncode == 0, stderr[-3000:]
    assert stdout.splitlines()[-1] == f"status=stopped run={run_dir} workers=2"
    assert f"worker=1 run={run_dir}" in (run_dir / "workers" / "worker-1.log").read_text()  # it ended too
    stopped_at = runs.saved_state(run_dir)["epochs_completed"]
    assert 1 <= stopped_at < 100

    more = str(stopped_at + 1)  # resumed, one more epoch: the same run continues
    resumed = train_command("--run-dir", str(run_dir), "--resume", "--epochs", more, "--workers", "2")
    done = subprocess.run(resumed, capture_output=True, text=True, env=environment(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_progress(run_dir)
    starts = [record for record in records if record["event"] == "start"]
    assert [start["workers"] for start in starts] == [2, 2] and starts[1]["resumed"] is True
    epochs = [record["epoch"] for record in records if record["event"] == "epoch" and not record.get("partial")]
    assert epochs == list(range(1, stopped_at + 2))
    assert all(
        "val_ema_accuracy" in record for record in records if record["event"] == "epoch" and not record.get("partial")
    )
    assert runs.saved_state(run_dir)["epochs_completed"] == stopped_at + 1
    assert folder.read_status(run_dir)["state"] == "finished"


def test_a_dead_worker_ends_the_chief_with_a_failure_to_resume_from(tmp_path, training_data):
    chief, runs_dir = start_a_long_two_worker_run(tmp_path, training_data)
    try:
        run_dir = only_run(runs_dir)
        found = subprocess.run(
            ["pgrep", "-f", "--", f"--run-dir {run_dir} --quiet --worker-index 1"], capture_output=True, text=True
        )
        (worker,) = [int(pid) for pid in found.stdout.split()]
        os.kill(worker, signal.SIGKILL)
        chief.communicate(timeout=120)
    finally:
        chief.kill()
    assert chief.returncode == 1
    status = folder.read_status(run_dir)
    assert status["state"] == "failed" and "worker 1 exited with code -9" in status["error"], status
    assert runs.may_resume(run_dir, "failed")  # its checkpoints are there: Resume continues


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--cluster", "a:1,b:2"], "Expected --cluster and --worker-index together"),
        (["--workers", "100", "--data", "x.zip"], "Expected --workers from 2 to 64"),
        (["--cluster", "host-without-port,b:2", "--worker-index", "1"], "Expected each worker's address as HOST:PORT"),
        (["--cluster", "a:1,b:2", "--worker-index", "2"], "Expected a worker index from 0 to 1"),
        (["--cluster", "a:1,b:2", "--worker-index", "1"], "Expected --run-dir RUN (the chief's run folder"),
        (["--cluster", "a:1,b:2", "--worker-index", "1", "--workers", "2"], "Expected --workers (this machine's"),
    ],
)
def test_distributed_options_are_checked_before_anything_starts(arguments, message, capsys):
    assert main(["train", *arguments]) == 2
    assert message in capsys.readouterr().err
