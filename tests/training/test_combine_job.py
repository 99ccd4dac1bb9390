"""Ensemble jobs: the request checked before any folder exists, the job's own process combining and recording its
outcome, one job at a time, a stop that saves nothing, and `python -m ferlib ensemble --job-dir`."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ferlib.errors import FerError
from ferlib.jobs import folder
from ferlib.jobs.ensembles import list_ensemble_jobs, stop_ensemble_job, summarize_ensemble_job
from ferlib.nets.modelio import read_metadata
from ferlib.training import combine, combine_launch
from ferlib.training.combine import ship_ensemble_job
from ferlib.training.combine_launch import ensemble_request, new_model_path, start_ensemble


@pytest.fixture
def pair(tmp_path, tiny_model_path):
    from test_combine import copied_model

    return [tiny_model_path, copied_model(tiny_model_path, tmp_path / "other.keras")]


def in_process_launch(job_dir, arguments, *, resume, extra_env=None):
    """The launcher's contract (the job's process named in status.json), with the job run here and now."""
    folder.write_status(job_dir, "created", pid=os.getpid(), launched=time.time(), resumed=resume)
    ship_ensemble_job(job_dir)


def test_a_request_is_checked_in_full_before_any_folder_exists(tmp_path, pair, training_data):
    target, root = tmp_path / "models" / "pair.keras", tmp_path / "ensembles"
    refusals = {
        r"^Expected two or more models to combine; received 1": ([pair[0]], training_data, target, None),
        r"^Expected one weight for each of the 2 models; received 3": (pair, training_data, target, [1, 2, 3]),
        r"^Expected an existing \.keras model to combine; received .*missing\.keras": (
            [pair[0], tmp_path / "missing.keras"],
            training_data,
            target,
            None,
        ),
        r"^Expected different models to combine": ([pair[0], pair[0]], training_data, target, None),
        r"^Expected an output path ending in \.keras": (pair, training_data, tmp_path / "pair.h5", None),
        r"^Expected an output path other than the models combined": (pair, training_data, pair[1], None),
        r"^Expected an existing dataset; received .*nowhere\.zip": (pair, tmp_path / "nowhere.zip", target, None),
    }
    for message, (models, data, output, weights) in refusals.items():
        with pytest.raises(FerError, match=message):
            start_ensemble(models, data, output, weights, root=root)
    assert not root.exists() and not target.parent.exists()
    config = ensemble_request(pair, training_data, target, [3, 1])
    assert config["kind"] == "ensemble" and config["weights"] == [3.0, 1.0]
    assert config["output"] == str(target.resolve()) and config["models"] == [str(path.resolve()) for path in pair]


def test_a_new_model_name_is_a_plain_unused_file_name(tmp_path):
    (tmp_path / "fer_vgg.keras").write_bytes(b"taken")
    assert new_model_path("pair_2-b", tmp_path) == tmp_path / "pair_2-b.keras"
    for name in ("", "../escape", "a b", "x" * 65, "-dash"):
        with pytest.raises(FerError, match=r"^Expected a model name of letters, digits"):
            new_model_path(name, tmp_path)
    with pytest.raises(FerError, match=r"^Expected a new model name; received 'fer_vgg'"):
        new_model_path("fer_vgg", tmp_path)


def test_the_job_ships_the_ensemble_and_records_its_figures(tmp_path, pair, training_data, monkeypatch):
    monkeypatch.setattr(combine_launch, "launch", in_process_launch)
    target, root = tmp_path / "models" / "pair.keras", tmp_path / "ensembles"
    job_dir = start_ensemble(pair, training_data, target, [3, 1], root=root)
    job = summarize_ensemble_job(job_dir)
    assert job.state == "finished" and job.name == "pair" and job.weights == (3.0, 1.0)
    card = read_metadata(target)
    assert [member["weight"] for member in card["config"]["members"]] == [0.75, 0.25]
    assert job.result["output"] == str(target.resolve())
    assert job.result["accuracy"] == {
        mode: card["metrics"][key]
        for mode, key in (
            ("none", "validation_accuracy"),
            ("flip", "validation_accuracy_tta"),
            ("shifts", "validation_accuracy_tta_shifts"),
            ("zooms", "validation_accuracy_tta_zooms"),
        )
    }
    assert job.result["int8_accuracy"] == card["int8_validation_accuracy"]
    assert [listed.path for listed in list_ensemble_jobs(root)] == [job_dir]
    with pytest.raises(FerError, match=r"^Expected an ensemble job that has not run; received .*, finished"):
        ship_ensemble_job(job_dir)  # a job runs once


def test_a_job_whose_dataset_vanished_fails_with_the_reason(tmp_path, pair, training_data, monkeypatch):
    monkeypatch.setattr(combine_launch, "launch", lambda *args, **kwargs: None)  # started by hand below
    data = tmp_path / "data.zip"
    data.write_bytes(training_data.read_bytes())
    job_dir = start_ensemble(pair, data, tmp_path / "pair.keras", root=tmp_path / "ensembles")
    data.unlink()
    with pytest.raises(FerError):
        ship_ensemble_job(job_dir)
    job = summarize_ensemble_job(job_dir)
    assert job.state == "failed" and "data.zip" in job.error
    assert not (tmp_path / "pair.keras").exists()


def test_one_ensemble_job_at_a_time_and_not_another_kind_of_folder(tmp_path, pair, training_data, monkeypatch):
    monkeypatch.setattr(combine_launch, "launch", lambda *args, **kwargs: None)  # stays 'created' (this process)
    root = tmp_path / "ensembles"
    first = start_ensemble(pair, training_data, tmp_path / "a.keras", root=root)
    with pytest.raises(FerError, match=rf"^Expected no ensemble being combined; received {first.name} \(created\)"):
        start_ensemble(pair, training_data, tmp_path / "b.keras", root=root)
    run_like = folder.create_job(tmp_path / "runs", "20260101-000000-run", {"architecture": "compact_cnn"})
    with pytest.raises(FerError, match=r"^Expected an ensemble job folder"):
        ship_ensemble_job(run_like)


def sigterm_to_self():
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("the job's SIGTERM handler needs the main thread")  # else the signal would end the test process
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_stop_while_exporting_leaves_nothing_and_one_while_moving_lets_it_finish(
    tmp_path, pair, training_data, monkeypatch
):
    monkeypatch.setattr(combine_launch, "launch", lambda *args, **kwargs: None)  # run by hand below
    root, models, before = tmp_path / "ensembles", tmp_path / "models", signal.getsignal(signal.SIGTERM)
    exporting = start_ensemble(pair, training_data, models / "stopped.keras", root=root)
    real_exports = combine.exports

    def stopped_while_exporting(*args, **kwargs):
        sigterm_to_self()
        return real_exports(*args, **kwargs)

    monkeypatch.setattr(combine, "exports", stopped_while_exporting)
    assert ship_ensemble_job(exporting)["state"] == "stopped"
    assert list(models.iterdir()) == []  # the staging folder went too
    assert signal.getsignal(signal.SIGTERM) == before  # the job's handler is gone with it

    monkeypatch.setattr(combine, "exports", real_exports)
    moving = start_ensemble(pair, training_data, models / "pair.keras", root=root)
    real_replace, moved = os.replace, []

    def stopped_while_moving(source, destination):
        if Path(destination).parent == models:  # the model's files, not the job's status
            if not moved:
                sigterm_to_self()
            moved.append(destination)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", stopped_while_moving)
    assert ship_ensemble_job(moving)["state"] == "finished"  # too late to stop: all five files are in place
    names = ["pair.int8.tflite", "pair.json", "pair.keras", "pair.md", "pair.tflite"]
    assert sorted(path.name for path in models.iterdir()) == names and len(moved) == 5


def test_a_stop_asked_while_the_process_starts_is_kept(tmp_path, pair, training_data, monkeypatch):
    monkeypatch.setattr(combine_launch, "launch", lambda *args, **kwargs: None)
    job_dir = start_ensemble(pair, training_data, tmp_path / "pair.keras", root=tmp_path / "ensembles")
    stop_ensemble_job(job_dir)  # 'created': no process to signal yet, so a request waits for it
    assert folder.stop_requested(job_dir)
    status = ship_ensemble_job(job_dir)
    assert status["state"] == "stopped" and not folder.stop_requested(job_dir)
    assert not (tmp_path / "pair.keras").exists()
    (tmp_path / "taken.keras").write_bytes(b"a model")
    with pytest.raises(FerError, match=r"^Expected a new output path; received .*taken\.keras', which exists"):
        start_ensemble(pair, training_data, tmp_path / "taken.keras", root=tmp_path / "other")


def test_the_command_runs_a_job_and_a_stop_saves_nothing(tmp_path, pair, training_data):
    """The real process, as the dashboard starts it: stopped at once (SIGTERM) it writes no model; left alone, the
    next job ships its ensemble."""
    root, environment = tmp_path / "ensembles", {**os.environ, "FERLIB_CACHE_DIR": str(tmp_path / "cache")}
    stopped = start_ensemble(pair, training_data, tmp_path / "models" / "stopped.keras", root=root)
    deadline = time.time() + 120
    while folder.read_status(stopped).get("state") != "running" and time.time() < deadline:
        time.sleep(0.2)
    folder.terminate(stopped)
    while folder.is_active(stopped) and time.time() < deadline:
        time.sleep(0.2)
    assert folder.read_status(stopped)["state"] == "stopped"
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())

    finished = folder.create_job(
        root, "20260101-000000-ensemble-ab12", ensemble_request(pair, training_data, tmp_path / "models" / "pair.keras")
    )
    command = [sys.executable, "-m", "ferlib", "ensemble", "--job-dir", str(finished)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr
    assert f"ensemble job {finished.name}: finished" in result.stdout
    assert (tmp_path / "models" / "pair.int8.tflite").exists()
    command = [sys.executable, "-m", "ferlib", "ensemble", "--job-dir", str(finished), "--data", str(training_data)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: Expected --job-dir alone")
