"""The one list of models: shipped ones (default first) and runs' best checkpoints."""

from ferlib.atomic import atomic_write_json
from ferlib.evaluation import catalog
from ferlib.jobs import folder, runs
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig


def test_shipped_models_come_first_with_the_default_at_the_top(tmp_path, monkeypatch):
    for name in ("alpha", "fer_vgg", "zeta"):
        (tmp_path / f"{name}.keras").write_bytes(b"model")
    atomic_write_json(
        tmp_path / "zeta.json", {"config": {"architecture": "vgg_fer"}, "metrics": {"validation_accuracy": 0.5}}
    )
    (tmp_path / "alpha.json").write_text("{broken")  # a damaged card: still listed, without its figures
    monkeypatch.setenv("FERLIB_MODEL", str(tmp_path / "fer_vgg.keras"))
    entries = catalog.shipped_models(tmp_path)
    assert [entry.key for entry in entries] == ["shipped:fer_vgg.keras", "shipped:alpha.keras", "shipped:zeta.keras"]
    assert entries[0].is_default and entries[0].label == "fer_vgg (default)"
    assert entries[2].label == "zeta · 50.0%" and entries[2].architecture == "vgg_fer"
    assert entries[1].architecture is None and entries[1].accuracy is None


def test_runs_are_offered_by_their_best_checkpoint_when_they_have_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_MODEL", str(tmp_path / "none.keras"))
    config = TrainConfig(architecture="compact_cnn", hyperparameters={"filters": (8, 16, 32)})
    finished, stopped, empty = (
        run_launch.create_run(config, tmp_path / "runs", run_id=name) for name in ("c", "b", "a")
    )
    for run_dir, state in ((finished, "finished"), (stopped, "stopped"), (empty, "finished")):
        folder.write_status(run_dir, state)
    for run_dir in (finished, stopped):
        (run_dir / runs.BEST_MODEL).write_bytes(b"model")
    atomic_write_json(finished / runs.METRICS_FILE, {})
    atomic_write_json(finished / runs.STATE_FILE, {"best_val_accuracy": 0.625})
    entries = catalog.run_models(tmp_path / "runs")
    assert [entry.key for entry in entries] == ["run:c", "run:b"]
    assert entries[0].label == "Run c · compact_cnn · 62.5%" and entries[0].hyperparameters == {"filters": [8, 16, 32]}
    assert [entry.key for entry in catalog.run_models(tmp_path / "runs", finished_only=True)] == ["run:c"]
