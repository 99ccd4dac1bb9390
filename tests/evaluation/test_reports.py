"""Metrics reports: a finished run's and the shipped model's, evaluation on a split, mistakes, tables and exports."""

import csv
import io
import json
import shutil

import numpy as np
import pytest

from ferlib.classes import EMOTIONS
from ferlib.data.datasets import load_dataset
from ferlib.evaluation import reports
from ferlib.evaluation.metrics import classification_metrics, evaluate_model
from ferlib.jobs import folder, progress, runs
from ferlib.nets.modelio import load_model, read_metadata
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tiny_model_path):
    """The finished one-epoch run that produced the tiny model."""
    return tiny_model_path.parent


def ship_like_card(per_class, confusion, history) -> dict:
    """A card shaped like the one ferlib.training.ship.ship_model writes."""
    return {
        "class_names": list(EMOTIONS),
        "metrics": {
            "split": "validation (FER-2013 PublicTest)",
            "validation_accuracy": 0.7,
            "validation_macro_f1": 0.65,
            "validation_top2_accuracy": 0.85,
            "validation_accuracy_tta": 0.71,
            "validation_macro_f1_tta": 0.66,
            "n": 10,
        },
        "architecture": "vgg_fer",
        "parameters": 1234,
        "per_class": per_class,
        "per_class_tta": per_class,
        "confusion_matrix": confusion,
        "confusion_matrix_tta": confusion,
        "source_run": "20260101-000000-vgg_fer-abcd",
        "epochs_completed": len(history),
        "train_wall_seconds": 12.5,
        "history": history,
        "config": {"architecture": "vgg_fer", "epochs": 60},
    }


# --- a finished run -----------------------------------------------------------------------------------------


def test_a_finished_runs_report_holds_its_recorded_metrics_and_curves(run_dir):
    report = reports.run_report(run_dir)
    recorded = json.loads((run_dir / runs.METRICS_FILE).read_text())
    assert report.name == run_dir.name and report.kind == reports.RUN
    assert report.model_path == run_dir / runs.BEST_MODEL
    assert report.metrics["accuracy"] == recorded["validation"]["accuracy"]
    assert report.metrics["n"] == 56 and report.has_per_class and report.has_confusion_matrix
    assert report.metrics_tta["accuracy"] == recorded["validation_tta"]["accuracy"]
    assert report.details["architecture"] == "compact_cnn" and report.details["epochs_completed"] == 1
    (epoch,) = report.history
    last_progress = progress.epoch_records(folder.read_progress(run_dir))[-1]
    assert epoch["epoch"] == 1 and epoch["val_accuracy"] == pytest.approx(last_progress["val_accuracy"])
    assert epoch["learning_rate"] is not None and set(epoch) == set(reports.HISTORY_KEYS)


def test_without_progress_the_curves_come_from_history_csv(run_dir, tmp_path):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    (copy / folder.PROGRESS_FILE).unlink()
    history = reports.run_history(copy)
    csv_rows = runs.read_history(copy)
    assert [row["epoch"] for row in history] == [1]  # CSVLogger counts from 0
    assert history[0]["val_loss"] == pytest.approx(csv_rows[0]["val_loss"])


def test_an_unfinished_run_has_no_report_yet(tmp_path, training_data):
    config = TrainConfig(architecture="compact_cnn", epochs=1, data=str(training_data))
    created = run_launch.create_run(config, tmp_path)
    with pytest.raises(ValueError, match="Expected a finished run folder"):
        reports.run_report(created)


def test_finished_runs_lists_only_runs_with_metrics(run_dir, tmp_path, training_data):
    shutil.copytree(run_dir, tmp_path / run_dir.name)
    run_launch.create_run(
        TrainConfig(architecture="compact_cnn", data=str(training_data)), tmp_path, run_id="zz-created"
    )
    stopped = run_launch.create_run(TrainConfig(architecture="compact_cnn", data=str(training_data)), tmp_path)
    folder.write_status(stopped, "stopped")
    assert [run.run_id for run in reports.finished_runs(tmp_path)] == [run_dir.name]
    assert reports.finished_runs(tmp_path / "missing") == []


# --- the shipped model --------------------------------------------------------------------------------------


def test_the_shipped_models_card_becomes_an_evaluation_shaped_report(tmp_path):
    metrics = classification_metrics(np.array([0, 1, 3, 3]), np.eye(7)[[0, 3, 3, 3]])
    history = [
        {"epoch": 1, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.4, "val_accuracy": 0.45, "learning_rate": 0.01},
        {"epoch": 2, "loss": 1.2, "accuracy": 0.5, "val_loss": 1.3, "val_accuracy": None, "learning_rate": 0.005},
    ]
    card = ship_like_card(metrics["per_class"], metrics["confusion_matrix"], history)
    report = reports.shipped_report(tmp_path / "fer_vgg.keras", card)
    assert report.kind == reports.SHIPPED and report.name == report.model_path.stem
    assert report.metrics["accuracy"] == 0.7 and report.metrics["macro_f1"] == 0.65
    assert report.metrics["top2_accuracy"] == 0.85 and report.metrics["n"] == 10
    assert report.metrics["per_class"] == metrics["per_class"]
    assert report.metrics["confusion_matrix"] == metrics["confusion_matrix"]
    assert report.metrics_tta["accuracy"] == 0.71 and report.metrics_tta["per_class"] == metrics["per_class"]
    assert report.history == history
    assert report.details["architecture"] == "vgg_fer" and report.details["epochs_completed"] == 2
    assert report.details["source_run"] == "20260101-000000-vgg_fer-abcd" and "notes" not in report.details
    assert "accuracy_with_10_view_tta" not in report.details  # a card shipped before 10-view TTA
    completed = {**card, "metrics": {**card["metrics"], "validation_accuracy_tta_shifts": 0.72}}
    completed["metrics"]["validation_macro_f1_tta_shifts"] = 0.66
    details = reports.shipped_report(tmp_path / "fer_vgg.keras", completed).details
    assert (details["accuracy_with_10_view_tta"], details["macro_f1_with_10_view_tta"]) == (0.72, 0.66)
    assert "accuracy_with_zoom_tta" not in details
    completed["metrics"]["validation_accuracy_tta_zooms"] = 0.73
    assert reports.shipped_report(tmp_path / "fer_vgg.keras", completed).details["accuracy_with_zoom_tta"] == 0.73
    noted = reports.shipped_report(tmp_path / "fer_vgg.keras", {**card, "notes": ["Epochs 1-2 on old code.", " "]})
    assert noted.details["notes"] == ["Note: Epochs 1-2 on old code."]
    staged = {**card, "stages": [{"source_run": "a", "notes": ["Shared seed."]}, {"source_run": "b"}, "damaged"]}
    assert reports.shipped_report(tmp_path / "fer_vgg.keras", staged).details["notes"] == [
        "Note (stage 1): Shared seed."
    ]


def test_a_plain_checkpoint_sidecar_gives_the_summary_metrics_only(tiny_model_path):
    report = reports.shipped_report(tiny_model_path)  # best.json: summary metrics and lineage, no per-class scores
    recorded = read_metadata(tiny_model_path)["metrics"]
    assert (
        report.metrics["accuracy"] == pytest.approx(recorded["validation_accuracy"])
        and "top2_accuracy" in report.metrics
    )
    assert not report.has_per_class and not report.has_confusion_matrix
    assert report.details["architecture"] == "compact_cnn" and report.details["epochs_completed"] == 1
    assert [row["epoch"] for row in report.history] == [1]  # the training curve travels with the checkpoint


# --- tables and exports -------------------------------------------------------------------------------------


def test_normalised_confusion_rows_sum_to_one_and_empty_rows_stay_zero():
    matrix = [[2, 2, 0], [0, 0, 0], [1, 0, 3]]
    normalised = reports.normalized_confusion(matrix)
    np.testing.assert_allclose(normalised, [[0.5, 0.5, 0], [0, 0, 0], [0.25, 0, 0.75]])


def test_per_class_csv_has_one_row_per_class_in_canonical_order(run_dir):
    report = reports.run_report(run_dir)
    rows = list(csv.DictReader(io.StringIO(reports.per_class_csv(report.metrics["per_class"]))))
    assert [row["class"] for row in rows] == list(EMOTIONS)
    assert list(rows[0]) == ["class", "precision", "recall", "f1", "support"]
    assert sum(int(row["support"]) for row in rows) == 56
    happy = report.metrics["per_class"]["happy"]
    assert float(rows[3]["f1"]) == pytest.approx(happy["f1"], abs=1e-6)
    with_tta = list(
        csv.DictReader(io.StringIO(reports.per_class_csv(report.metrics["per_class"], report.metrics_tta["per_class"])))
    )
    assert list(with_tta[0])[-3:] == ["precision_tta", "recall_tta", "f1_tta"]
    assert float(with_tta[3]["recall_tta"]) == pytest.approx(
        report.metrics_tta["per_class"]["happy"]["recall"], abs=1e-6
    )


def test_report_json_round_trips_with_an_evaluation(run_dir):
    report = reports.run_report(run_dir)
    evaluation = {"dataset": "x.zip", "accuracy": np.float32(0.5), "confusion_matrix": np.eye(2, dtype=np.int64)}
    content = json.loads(reports.report_json(report, evaluation))
    assert content["name"] == run_dir.name and content["class_names"] == list(EMOTIONS)
    assert content["metrics"]["per_class"] == report.metrics["per_class"]
    assert content["history"] == report.history
    assert content["evaluation"]["confusion_matrix"] == [[1, 0], [0, 1]]
    assert "evaluation" not in json.loads(reports.report_json(report))


def test_summary_rows_line_up_models(run_dir, tmp_path):
    run_row = reports.summary_row(reports.run_report(run_dir))
    assert run_row["model"] == run_dir.name and run_row["architecture"] == "compact_cnn"
    assert run_row["epochs"] == 1 and run_row["n"] == 56 and run_row["top2_accuracy"] is not None
    shipped_row = reports.summary_row(reports.shipped_report(tmp_path / "none.keras", {}))
    assert shipped_row["model"] == "none" and shipped_row["accuracy"] is None
    assert shipped_row["epochs"] is None


# --- evaluation and mistakes --------------------------------------------------------------------------------


def test_evaluating_a_split_returns_probabilities_and_the_same_metrics_as_evaluation(tiny_model_path, training_data):
    model, _ = load_model(tiny_model_path)
    dataset = load_dataset(training_data)
    evaluation = reports.evaluate_split(model, dataset, "validation")
    images, labels = dataset.subset("validation")
    assert evaluation.probabilities.shape == (56, 7) and evaluation.split == "validation"
    np.testing.assert_array_equal(evaluation.images, images)
    np.testing.assert_array_equal(evaluation.labels, labels)
    expected = evaluate_model(model, images, labels)
    assert evaluation.metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert evaluation.metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert evaluation.metrics["tta"] == "none"
    assert reports.evaluate_split(model, dataset, "validation", tta=True).metrics["tta"] == "flip"
    with pytest.raises(ValueError, match="Expected images in the test split"):
        reports.evaluate_split(model, dataset, "test")  # the generated zip has train and PublicTest only


def test_most_confident_mistakes_are_sorted_filtered_and_limited():
    labels = np.array([0, 1, 2, 3, 3, 5])
    probabilities = np.full((6, 7), 0.01)
    probabilities[0, 0] = 0.9  # right
    probabilities[1, 3] = 0.8  # 1 -> 3 at 0.8
    probabilities[2, 3] = 0.95  # 2 -> 3 at 0.95
    probabilities[3, 6] = 0.6  # 3 -> 6 at 0.6
    probabilities[4, 0] = 0.8  # 3 -> 0 at 0.8 (ties with index 1: lower index first)
    probabilities[5, 5] = 0.7  # right
    probabilities[1, 1] = 0.15
    mistakes = reports.most_confident_mistakes(labels, probabilities)
    assert [mistake.index for mistake in mistakes] == [2, 1, 4, 3]
    first = mistakes[0]
    assert (first.true_label, first.predicted_label) == ("fear", "happy")
    assert first.confidence == pytest.approx(0.95) and first.true_probability == pytest.approx(0.01)
    assert mistakes[1].true_probability == pytest.approx(0.15)
    assert [m.index for m in reports.most_confident_mistakes(labels, probabilities, 2)] == [2, 1]
    assert [m.index for m in reports.most_confident_mistakes(labels, probabilities, true_class=3)] == [4, 3]
    assert [m.index for m in reports.most_confident_mistakes(labels, probabilities, predicted_class=3)] == [2, 1]
    assert reports.most_confident_mistakes(labels, probabilities, true_class=3, predicted_class=3) == []
    assert reports.most_confident_mistakes(labels[:0], probabilities[:0]) == []
    with pytest.raises(ValueError, match="Expected probabilities shaped"):
        reports.most_confident_mistakes(labels, probabilities[:, :6])
