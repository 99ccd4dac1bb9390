"""Searches spread over worker processes: keras-tuner's chief and workers, a killed worker's trial retried."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferlib.cli import main
from ferlib.jobs import folder, network
from ferlib.tuning import distributed


def tune_command(training_data, tmp_path, *extra, trials: int = 4):
    return [
        sys.executable, "-m", "ferlib", "tune", "--data", str(training_data), "--strategy", "random",
        "--max-trials", str(trials), "--epochs", "1", "--subset", "0.5", "--dir", str(tmp_path / "searches"),
        "--runs-dir", str(tmp_path / "runs"), *extra,
    ]  # fmt: skip


def trial_records(search_dir: Path) -> list[dict]:
    path = search_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def worker_pid(worker: str) -> int | None:
    """The pid of the local worker process of that id (found by its command line)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--join" in arguments and worker.encode() in arguments:
                return int(entry.name)
    return None


def test_a_search_spread_over_two_workers_trains_every_trial_once(training_data, tmp_path):
    result = subprocess.run(tune_command(training_data, tmp_path, "--workers", "2"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("best_score=") and last.endswith("trials=4 workers=2"), last
    (search_dir,) = (tmp_path / "searches").iterdir()
    ended = [record for record in trial_records(search_dir) if record.get("event") == "trial_end"]
    assert sorted(record["trial"] for record in ended) == ["0", "1", "2", "3"]
    assert {record["worker"] for record in ended} == {distributed.worker_id(0), distributed.worker_id(1)}
    assert folder.read_status(search_dir)["workers"] == 2


def test_a_killed_workers_trial_is_retried_not_lost(training_data, tmp_path):
    command = tune_command(training_data, tmp_path, "--workers", "2", trials=2)
    chief = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        search_dir = Path(chief.stdout.readline().strip())
        victim, trial = distributed.worker_id(0), None
        deadline = time.time() + 240
        while trial is None and time.time() < deadline:
            started = [
                r for r in trial_records(search_dir) if r.get("event") == "trial_start" and r["worker"] == victim
            ]
            trial = started[0]["trial"] if started else None
            time.sleep(0.2)
        assert trial is not None, "the worker never started a trial"
        os.kill(worker_pid(victim), signal.SIGKILL)
        output, _ = chief.communicate(timeout=300)
    finally:
        if chief.poll() is None:
            chief.kill()
    assert chief.returncode == 0 and output.strip().splitlines()[-1].endswith("trials=2 workers=2")
    records = trial_records(search_dir)
    assert any(r.get("event") == "worker_restart" and r["worker"] == victim for r in records)
    starts = [r for r in records if r.get("event") == "trial_start" and r["trial"] == trial]
    assert len(starts) == 2 and {r["worker"] for r in starts} == {victim}  # the same worker id ran it again
    ends = {r["trial"]: r["status"] for r in records if r.get("event") == "trial_end"}
    assert ends == dict.fromkeys(["0", "1"], "completed")


def test_joining_takes_a_host_and_port_and_a_running_search(tmp_path, training_data, capsys):
    for address in ("localhost", "localhost:port", ":8470", "host:70000"):
        with pytest.raises(ValueError, match=r"^Expected a chief's address as HOST:PORT"):
            network.parse_address(address)
    assert network.parse_address("10.0.0.5:8470") == ("10.0.0.5", 8470)
    from ferlib.training.config import TrainConfig
    from ferlib.tuning import search_launch
    from ferlib.tuning.search_space import SearchConfig

    config = SearchConfig(strategy="random", base=TrainConfig(architecture="compact_cnn", data=str(training_data)))
    search_dir = search_launch.create_search(config, tmp_path)
    folder.write_status(search_dir, "stopped")
    assert main(["tune", "--search-dir", str(search_dir), "--join", "localhost:8470"]) == 2
    assert "Expected a running search to join; received" in capsys.readouterr().err
