"""Shipping a model: TFLite export agrees with Keras, FLOPs are counted, the card is complete."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ferlib.nets.classifier import KerasClassifier, TFLiteClassifier, make_classifier
from ferlib.nets.export import count_flops
from ferlib.nets.modelio import load_model, read_metadata
from ferlib.training.ship import ship_model


def test_ship_writes_model_tflite_and_card(tmp_path, tiny_model_path, training_data, monkeypatch):
    target = tmp_path / "models" / "shipped.keras"
    card = ship_model(tiny_model_path.parent, training_data, target)
    assert target.exists() and target.with_suffix(".tflite").exists()
    stored = read_metadata(target)
    assert stored == json.loads(json.dumps(card))
    for key in (
        "architecture",
        "parameters",
        "flops_per_face",
        "config",
        "epochs_completed",
        "train_wall_seconds",
        "per_class",
        "per_class_tta",
        "confusion_matrix",
        "tflite_top1_agreement",
        "file_size_mb",
    ):
        assert key in stored, key
    assert stored["metrics"]["n"] == 56
    assert set(stored["metrics"]) >= {"validation_accuracy", "validation_macro_f1", "validation_accuracy_tta"}
    # One pass of ten views is scored three ways, the zooms by a second: each figure is what a separate evaluation
    # of that mode gives.
    from ferlib.data.datasets import load_dataset
    from ferlib.evaluation.metrics import evaluate_model

    model, _ = load_model(target)
    images, labels = load_dataset(training_data).subset("validation")
    for mode, key in (("none", ""), ("flip", "_tta"), ("shifts", "_tta_shifts"), ("zooms", "_tta_zooms")):
        expected = evaluate_model(model, images, labels, tta=mode)
        assert stored["metrics"][f"validation_accuracy{key}"] == pytest.approx(expected["accuracy"]), mode
        assert stored["metrics"][f"validation_macro_f1{key}"] == pytest.approx(expected["macro_f1"]), mode
    assert stored["tflite_top1_agreement"] >= 0.99
    assert stored["epochs_completed"] == 1
    assert target.with_suffix(".int8.tflite").exists() and 0 <= stored["int8_validation_accuracy"] <= 1
    assert stored["int8_tflite_size_mb"] < stored["tflite_size_mb"]

    # A second ship that fails half-way (here the int8 conversion) leaves the first one's files as they were.
    before = {path.name: path.read_bytes() for path in target.parent.iterdir()}
    assert sorted(before) == ["shipped.int8.tflite", "shipped.json", "shipped.keras", "shipped.md", "shipped.tflite"]
    import ferlib.training.ship

    def failing_conversion(*args, **kwargs):
        raise ValueError("Expected a convertible model; received a converter failure")

    monkeypatch.setattr(ferlib.training.ship, "export_tflite_int8", failing_conversion)
    with pytest.raises(ValueError, match="converter failure"):
        ship_model(tiny_model_path.parent, training_data, target)
    assert {path.name: path.read_bytes() for path in target.parent.iterdir()} == before  # no staging folder left


def test_tflite_and_keras_give_the_same_probabilities(tmp_path, tiny_model_path, training_data):
    target = tmp_path / "m.keras"
    ship_model(tiny_model_path.parent, training_data, target)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    keras_probabilities = KerasClassifier(target)(faces)
    tflite_probabilities = TFLiteClassifier(target.with_suffix(".tflite"), num_threads=1)(faces)
    assert np.allclose(keras_probabilities, tflite_probabilities, atol=1e-4)
    assert np.allclose(tflite_probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert isinstance(make_classifier(target), TFLiteClassifier)  # auto picks the faster export
    assert isinstance(make_classifier(target, backend="keras"), KerasClassifier)
    assert tflite_probabilities[:1].shape == TFLiteClassifier(target.with_suffix(".tflite"))(faces[:1]).shape

    # Streamlit sessions share one cached classifier: concurrent calls with different batch sizes stay correct.
    shared = TFLiteClassifier(target.with_suffix(".tflite"), num_threads=1)
    expected = {size: shared(faces[:size]) for size in range(1, 6)}

    def repeated_calls_agree(size: int) -> bool:
        return all(np.allclose(shared(faces[:size]), expected[size], atol=1e-6) for _ in range(40))

    with ThreadPoolExecutor(max_workers=5) as pool:
        assert all(pool.map(repeated_calls_agree, range(1, 6)))


def test_a_tflite_export_is_refused_when_its_models_classes_differ(tmp_path, tiny_model_path, training_data):
    """Both exports read the sidecar of the .keras model they came from, as the Keras path does."""
    target = tmp_path / "m.keras"
    ship_model(tiny_model_path.parent, training_data, target)
    for export in ("m.tflite", "m.int8.tflite"):
        assert TFLiteClassifier(tmp_path / export).metadata["class_names"] == read_metadata(target)["class_names"]
    metadata = read_metadata(target)
    metadata["class_names"] = list(reversed(metadata["class_names"]))
    target.with_suffix(".json").write_text(json.dumps(metadata))
    for export in ("m.tflite", "m.int8.tflite"):
        with pytest.raises(ValueError, match=rf"^Expected a model over classes .*; received .*{export}'"):
            TFLiteClassifier(tmp_path / export)
    with pytest.raises(ValueError, match=r"^Expected a model over classes"):
        load_model(target)


def test_flops_of_a_known_model(tiny_model_path):
    model, _ = load_model(tiny_model_path)
    # compact_cnn filters (8, 16, 32), dense 16: conv 48x48x9x1x8 + 24x24x9x8x16 + 12x12x9x16x32 ; dense 32x16 + 16x7
    expected = 2 * (48 * 48 * 9 * 1 * 8 + 24 * 24 * 9 * 8 * 16 + 12 * 12 * 9 * 16 * 32 + 32 * 16 + 16 * 7)
    assert count_flops(model) == expected


def test_lineage_summary_adds_the_initial_models_stage(tmp_path):
    from ferlib.evaluation.lineage import lineage_summary

    run_dir = tmp_path / "run-b"
    run_dir.mkdir()
    records = [
        {"event": "epoch", "epoch": epoch, "partial": False, "epoch_seconds": 10.0, "val_accuracy": 0.5 + epoch / 100}
        for epoch in (1, 2)
    ]
    (run_dir / "progress.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    alone = lineage_summary(run_dir, {})
    assert alone["epochs_completed"] == 2 and [stage["source_run"] for stage in alone["stages"]] == ["run-b"]

    previous_card = {
        "source_run": "run-a",
        "epochs_completed": 3,
        "train_wall_seconds": 30.0,
        "history": [{"epoch": epoch, "val_accuracy": 0.4} for epoch in (1, 2, 3)],
        "metrics": {"validation_accuracy": 0.45},
    }
    (tmp_path / "first.json").write_text(json.dumps(previous_card))
    summary = lineage_summary(run_dir, {"initial_model": str(tmp_path / "first.keras")})
    assert summary["epochs_completed"] == 5
    assert summary["train_wall_seconds"] == 50.0
    assert [row["epoch"] for row in summary["history"]] == [1, 2, 3, 4, 5]
    assert summary["history"][3]["val_accuracy"] == 0.51
    assert [stage["source_run"] for stage in summary["stages"]] == ["run-a", "run-b"]
    assert summary["stages"][0]["validation_accuracy"] == 0.45
    assert summary["stages"][1]["initial_model"].endswith("first.keras")


def test_a_crop_model_trained_in_mixed_bfloat16_ships_in_float32_with_ten_crop_figures(tmp_path, training_data, capsys):
    """The long run's recipe: a 40-pixel-crop network, trained (partly) in mixed bfloat16, shipped from the CLI."""
    from ferlib.cli import main
    from ferlib.nets.precision import FLOAT32, precision_of
    from ferlib.training import run_launch
    from ferlib.training.config import TrainConfig
    from ferlib.training.trainer import run_training

    config = TrainConfig(
        architecture="vgg_fer",
        hyperparameters={"filters": (4, 8, 8, 8), "dense_units": 8, "input_crop": 40},
        epochs=1,
        batch_size=32,
        ema_momentum=0.9,
        precision="mixed_bfloat16",
        data=str(training_data),
    )
    run_dir = run_launch.create_run(config, tmp_path / "runs")
    assert run_training(run_dir, verbose=0)["state"] == "finished"
    target = tmp_path / "models" / "crops.keras"
    assert main(["ship", "--run-dir", str(run_dir), "--data", str(training_data), "--output", str(target)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "accuracy_tta_crops=" in last and "accuracy_tta_zooms=" in last and "shifts" not in last
    model, card = load_model(target)
    assert precision_of(model) == FLOAT32 and card["config"]["precision"] == "mixed_bfloat16"
    assert "validation_accuracy_tta_crops" in card["metrics"] and card["tflite_top1_agreement"] >= 0.95
    card_text = target.with_suffix(".md").read_text()
    assert "with TTA over ten crops: the centre and four corners, each mirrored" in card_text


def test_ship_writes_a_markdown_model_card(tmp_path, tiny_model_path, training_data):
    target = tmp_path / "models" / "shipped.keras"
    note = "Epochs 2-3 trained after the augmentation fix."
    card = ship_model(tiny_model_path.parent, training_data, target, notes=[note])
    assert read_metadata(target)["notes"] == [note] and card["stages"][-1]["notes"] == [note]
    text = target.with_suffix(".md").read_text(encoding="utf-8")
    assert f"- Note: {note}" in text
    assert text.startswith("# Model card: shipped.keras")
    for heading in ("## Intended use", "## Limitations and risks", "## Training data and procedure", "## Evaluation"):
        assert heading in text
    assert f"| Keras model | {card['metrics']['validation_accuracy']:.4f} |" in text
    shifts = card["metrics"]["validation_accuracy_tta_shifts"]
    assert f"| with TTA over flips and ±2-pixel shifts (10 views) | {shifts:.4f} |" in text
    zooms = card["metrics"]["validation_accuracy_tta_zooms"]
    assert f"| with TTA over flips, ±10% zooms and ±5° tilts (18 views) | {zooms:.4f} |" in text
    assert "| **angry** |" in text and f"{card['parameters']:,} parameters" in text


def test_ship_refuses_an_empty_note_before_any_work(tmp_path, training_data):
    for notes in (["  "], [None], ["two\nlines"]):
        with pytest.raises(ValueError, match="each note to be one line of text"):
            ship_model(tmp_path / "no-run", training_data, tmp_path / "m.keras", notes=notes)


def test_model_card_of_a_warm_restarted_model_lists_its_stages():
    from ferlib.evaluation.cards import render_model_card

    card = {
        "epochs_completed": 66,
        "train_wall_seconds": 3 * 3600 + 60,
        "stages": [
            {"source_run": "run-a", "epochs": 26, "train_wall_seconds": 5000, "validation_accuracy": 0.61},
            {"source_run": "run-b", "epochs": 40, "train_wall_seconds": 6000, "validation_accuracy": 0.65},
        ],
    }
    text = render_model_card(card, "m.keras")
    assert "66 epochs in all, 3 h 01 min" in text
    assert "| 2 | `run-b` | 40 | 1 h 40 min | 0.6500 |" in text
    assert "(10 views)" not in text  # a card shipped before the mode existed has no such row


def write_epochs(run_dir, epochs: int, seconds: float = 10.0) -> None:
    run_dir.mkdir(parents=True)
    records = [{"event": "start", "train_images": 100, "validation_images": 20}]
    records += [{"event": "epoch", "epoch": epoch, "epoch_seconds": seconds} for epoch in range(1, epochs + 1)]
    (run_dir / "progress.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (run_dir / "config.json").write_text("{}")


def test_lineage_is_recorded_at_start_and_chains_through_run_folders(tmp_path):
    from ferlib.evaluation.lineage import lineage_summary, record_initial_lineage

    write_epochs(tmp_path / "run-a", 3)
    write_epochs(tmp_path / "run-b", 2)
    (tmp_path / "run-b" / "config.json").write_text(json.dumps({"initial_model": str(tmp_path / "run-a/best.keras")}))
    record_initial_lineage(tmp_path / "run-b", tmp_path / "run-a" / "best.keras")
    write_epochs(tmp_path / "run-c", 4)
    record_initial_lineage(tmp_path / "run-c", tmp_path / "run-b" / "best.keras")  # a run's checkpoint: its folder

    # The starting run's folder changes later (e.g. it is resumed): run-c keeps what was true when it started.
    write_epochs(tmp_path / "run-b2", 9)
    shutil.rmtree(tmp_path / "run-b")
    (tmp_path / "run-b2").rename(tmp_path / "run-b")

    summary = lineage_summary(tmp_path / "run-c", {"initial_model": str(tmp_path / "run-b" / "best.keras")})
    assert [stage["source_run"] for stage in summary["stages"]] == ["run-a", "run-b", "run-c"]
    assert [stage["epochs"] for stage in summary["stages"]] == [3, 2, 4]
    assert summary["epochs_completed"] == 9 and summary["train_wall_seconds"] == 90.0
    assert summary["lineage_complete"] is True and summary["train_images"] == 100


def test_each_stage_keeps_the_models_it_learned_from(tmp_path):
    from ferlib.evaluation.cards import render_model_card
    from ferlib.evaluation.lineage import lineage_summary, record_initial_lineage

    # Stage 1 learns from a shipped model and a run's checkpoint; stage 2 warm-restarts from it on labels only.
    write_epochs(tmp_path / "student", 3)
    teachers = [str(tmp_path / "models" / "fer_vgg.keras"), str(tmp_path / "runs" / "run-t" / "best.keras")]
    distilled = {"teachers": teachers, "teacher_weight": 0.5}
    (tmp_path / "student" / "config.json").write_text(json.dumps(distilled))
    write_epochs(tmp_path / "finetune", 2)
    record_initial_lineage(tmp_path / "finetune", tmp_path / "student" / "best.keras")

    summary = lineage_summary(tmp_path / "finetune", {"initial_model": str(tmp_path / "student" / "best.keras")})
    first, second = summary["stages"]
    assert (first["teachers"], first["teacher_weight"]) == (["fer_vgg.keras", "run-t/best.keras"], 0.5)
    assert second["teachers"] == [] and "teacher_weight" not in second
    text = render_model_card(summary, "m.keras")
    assert "| stage | run | epochs | wall time | best validation accuracy | learned from |" in text
    assert "| 1 | `student` | 3 | 30 s | – | `fer_vgg.keras`, `run-t/best.keras` (50%) |" in text
    assert "| 2 | `finetune` | 2 | 20 s | – | labels only |" in text
    unrecorded = {key: value for key, value in second.items() if key != "teachers"}
    older = {**summary, "stages": [first, unrecorded]}
    assert "| 2 | `finetune` | 2 | 20 s | – | unknown |" in render_model_card(
        older, "m.keras"
    )  # recorded before teachers
    assert "Learned from" not in text  # the last stage's own recipe learned from the labels only
    # A distilled last stage says so in its recipe, as the last stage's.
    text = render_model_card({**summary, "config": distilled}, "m.keras")
    assert "- The last stage learned from `fer_vgg.keras`, `run-t/best.keras` as well as from the labels" in text


def test_a_starting_model_of_unknown_training_is_flagged(tmp_path):
    from ferlib.evaluation.cards import render_model_card
    from ferlib.evaluation.lineage import lineage_summary

    write_epochs(tmp_path / "run", 2)
    summary = lineage_summary(tmp_path / "run", {"initial_model": str(tmp_path / "downloaded.keras")})
    assert summary["lineage_complete"] is False and summary["epochs_completed"] == 2
    assert summary["stages"][0]["epochs"] is None
    text = render_model_card(summary, "m.keras")
    assert "The starting weights' own training is unknown" in text and "| 1 | unknown | unknown |" in text


def test_a_run_trained_under_two_recipe_revisions_says_which_epochs_on_its_card(tmp_path):
    from ferlib.evaluation.cards import render_model_card
    from ferlib.evaluation.lineage import lineage_summary, recipe_note

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    records = [{"event": "start", "initial_epoch": 0, "recipe_revision": 1}]
    records += [{"event": "epoch", "epoch": epoch, "epoch_seconds": 1.0} for epoch in (1, 2, 3)]
    records += [{"event": "start", "initial_epoch": 2, "recipe_revision": 2}]  # epoch 3 is trained again
    records += [{"event": "epoch", "epoch": epoch, "epoch_seconds": 1.0} for epoch in (3, 4)]
    (run_dir / "progress.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    summary = lineage_summary(run_dir, {})
    expected = (
        "Run run's training recipe changed while it ran (ferlib.training.config.RECIPE_REVISION): "
        "its epochs 1-2 under revision 1, epochs 3-4 under revision 2."
    )
    assert summary["stages"][0]["notes"] == [expected]
    assert f"- Note: {expected}" in render_model_card(summary, "m.keras")
    # Sessions of older ferlib versions recorded no revision: alone they raise no note, beside two they are named.
    assert recipe_note([None, None, 2, 2], "r") is None and recipe_note([2, 2, 2], "r") is None
    assert recipe_note([None, 1, 2], "r").endswith(
        "epoch 1 under an unrecorded revision, epoch 2 under revision 1, epoch 3 under revision 2."
    )


def test_a_run_trained_in_two_precisions_says_which_epochs_on_its_card(tmp_path):
    from ferlib.evaluation.cards import render_model_card
    from ferlib.evaluation.lineage import lineage_summary, precision_note

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    records = [{"event": "start", "initial_epoch": 0, "recipe_revision": 3}]  # before precision was recorded
    records += [{"event": "epoch", "epoch": epoch, "epoch_seconds": 1.0} for epoch in (1, 2)]
    records += [{"event": "start", "initial_epoch": 2, "recipe_revision": 3, "precision": "mixed_bfloat16"}]
    records += [{"event": "epoch", "epoch": epoch, "epoch_seconds": 1.0} for epoch in (3, 4, 5)]
    (run_dir / "progress.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    summary = lineage_summary(run_dir, {})
    expected = (
        "Run run trained in more than one precision (ferlib.nets.precision): its epochs 1-2 in float32, "
        "epochs 3-5 in mixed bfloat16."
    )
    assert summary["stages"][0]["notes"] == [expected] and "precisions" not in summary
    assert f"- Note: {expected}" in render_model_card(summary, "m.keras")
    assert precision_note(["float32"] * 3, "r") is None
    assert precision_note(["mixed_bfloat16", "float32"], "r").endswith("epoch 1 in mixed bfloat16, epoch 2 in float32.")


def test_a_warm_restarted_model_inherits_its_starting_models_notes(tmp_path):
    """Notes are kept per stage: an old card's top-level notes become its last stage's and are labelled by stage."""
    from ferlib.evaluation.cards import render_model_card
    from ferlib.evaluation.lineage import lineage_summary

    old_card = {
        "source_run": "run-a",
        "epochs_completed": 3,
        "train_wall_seconds": 30.0,
        "notes": ["Epochs 1-2 used the old augmentation."],
    }
    (tmp_path / "first.json").write_text(json.dumps(old_card))
    write_epochs(tmp_path / "run-b", 2)
    summary = lineage_summary(tmp_path / "run-b", {"initial_model": str(tmp_path / "first.keras")})
    assert summary["stages"][0]["notes"] == old_card["notes"] and "notes" not in summary["stages"][1]
    summary["stages"][1]["notes"] = ["Trained on a new machine."]
    text = render_model_card(summary, "m.keras")
    assert "- Note (stage 1): Epochs 1-2 used the old augmentation." in text
    assert "- Note (stage 2): Trained on a new machine." in text

    # A run started before notes were kept per stage recorded its starting lineage without them: the starting
    # card's notes are taken as it is now, as long as it still describes the same training.
    recorded = {
        "initial_model": str(tmp_path / "first.keras"),
        "lineage": {**summary, "stages": [{"source_run": "run-a", "epochs": 3}]},
    }
    recorded["lineage"]["epochs_completed"] = 3
    (tmp_path / "run-b" / "initial_model.json").write_text(json.dumps(recorded))
    again = lineage_summary(tmp_path / "run-b", {"initial_model": str(tmp_path / "first.keras")})
    assert again["stages"][0]["notes"] == old_card["notes"]
    (tmp_path / "first.json").write_text(json.dumps({**old_card, "source_run": "run-z"}))  # replaced since
    replaced = lineage_summary(tmp_path / "run-b", {"initial_model": str(tmp_path / "first.keras")})
    assert "notes" not in replaced["stages"][0]

    # Damaged cards: stages that are not objects, notes that are not a list.
    (tmp_path / "run-b" / "initial_model.json").unlink()
    (tmp_path / "first.json").write_text(json.dumps({**old_card, "stages": ["damaged"], "notes": "one string"}))
    damaged = lineage_summary(tmp_path / "run-b", {"initial_model": str(tmp_path / "first.keras")})
    assert [stage["source_run"] for stage in damaged["stages"]] == ["run-a", "run-b"]
    assert damaged["stages"][0]["epochs"] == 3 and "notes" not in damaged["stages"][0]


def test_a_damaged_sidecar_is_refused_with_its_path(tmp_path, tiny_model_path):
    model = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, model)
    model.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"^Expected a JSON object in the sidecar .*m\.json'; received a list$"):
        load_model(model)
    model.with_suffix(".json").write_text('{"class_names": ')
    with pytest.raises(ValueError, match=r"^Expected a readable JSON sidecar .*m\.json'; received Expecting value"):
        read_metadata(model)
    model.with_suffix(".json").unlink()
    assert read_metadata(model) == {}


def test_the_card_says_publictest_only_when_the_validation_files_are_publictest():
    """A train/val/test folder zip is laid out like Kaggle's, but its val/ is not FER-2013's PublicTest."""
    from types import SimpleNamespace

    from ferlib.training.ship import describe_validation_split

    def dataset(layout: str, names: list[str]):
        report = SimpleNamespace(source="/data/faces.zip", layout=layout, validation_from_train=False)
        paths = np.array(names)
        return SimpleNamespace(report=report, paths=paths, split_mask=lambda split: np.ones(len(paths), bool))

    kaggle = dataset("kaggle", ["test/happy/PublicTest_1.jpg", "test/sad/PublicTest_2.jpg"])
    assert describe_validation_split(kaggle) == "validation (FER-2013 PublicTest, from faces.zip)"
    assert describe_validation_split(dataset("kaggle", ["val/happy/img_1.jpg"])) == "validation (from faces.zip)"
