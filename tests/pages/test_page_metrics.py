"""The Metrics page under Streamlit's AppTest: empty state, a finished run, two runs compared, the shipped model's
card, the mistakes gallery with Grad-CAM on a dataset, an uploaded photo, and unreadable metrics."""

import json
import os
import re
import shutil
import time
from pathlib import Path

import cv2
import keras
import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.classes import EMOTIONS
from ferlib.data.datasets import load_dataset
from ferlib.evaluation import reports
from ferlib.evaluation.lineage import LINEAGE_KEYS
from ferlib.jobs import folder, progress, runs
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig

TINY = {"filters": (8, 16, 32), "dense_units": 16}
CAPTION = re.compile(r"#\d+ (\w+) → (\w+) \d+%")
HEATMAP = re.compile(r"#\d+ (?:heatmap|no evidence \(flat map\)) for (\w+) ")


@pytest.fixture
def environment(tmp_path, monkeypatch) -> dict[str, Path]:
    """No shipped model, an empty runs folder and an empty data folder, seen by the page through the environment."""
    from ferlib.nets import modelio

    folders = {"runs": tmp_path / "runs", "data": tmp_path / "data", "model": tmp_path / "models" / "fer_vgg.keras"}
    folders["runs"].mkdir()
    folders["data"].mkdir()
    folders["model"].parent.mkdir()
    monkeypatch.setenv("FERLIB_MODEL", str(folders["model"]))
    monkeypatch.setattr(modelio, "MODELS_DIR", folders["model"].parent)  # the shipped models are this folder's
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(folders["runs"]))
    monkeypatch.setenv("FERLIB_DATA_DIR", str(folders["data"]))
    return folders


@pytest.fixture(scope="module")
def second_run(tmp_path_factory, training_data) -> Path:
    """A two-epoch compact run with another seed, trained in this process (a second model to compare)."""
    from ferlib.data.datasets import load_dataset
    from ferlib.training.trainer import run_training

    config = TrainConfig(
        architecture="compact_cnn", hyperparameters=TINY, batch_size=32, data=str(training_data), epochs=2, seed=7
    )
    run_dir = run_launch.create_run(
        config, tmp_path_factory.mktemp("second_runs"), run_id="20260102-000000-compact_cnn-seed7"
    )
    # Module scope runs before the per-test cache folder is set: decode without writing a cache.
    run_training(run_dir, dataset=load_dataset(training_data, use_cache=False), verbose=0)
    return run_dir


@pytest.fixture
def first_run(tiny_model_path) -> Path:
    """The finished one-epoch run that produced conftest's tiny model."""
    return tiny_model_path.parent


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def open_metrics_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    return app.switch_page("pages/metrics.py").run()


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def chart_count(app: AppTest) -> int:
    return len(app.get("plotly_chart"))


def image_captions(app: AppTest) -> list[str]:
    return [caption for image in app.get("image") for caption in image.captions]


def install_run(run_dir: Path, environment: dict[str, Path]) -> Path:
    return Path(shutil.copytree(run_dir, environment["runs"] / run_dir.name))


def ship_card_from_run(run_dir: Path) -> dict:
    """A model card shaped like ferlib.training.ship.ship_model's, built from a run's recorded metrics."""
    recorded = json.loads((run_dir / runs.METRICS_FILE).read_text())
    plain, tta = recorded["validation"], recorded["validation_tta"]
    history = [
        {key: record.get(key) for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")}
        for record in progress.epoch_records(folder.read_progress(run_dir))
    ]
    return {
        "class_names": list(EMOTIONS),
        "input_size": [48, 48, 1],
        "metrics": {
            "validation_accuracy": plain["accuracy"],
            "validation_macro_f1": plain["macro_f1"],
            "validation_top2_accuracy": plain["top2_accuracy"],
            "validation_accuracy_tta": tta["accuracy"],
            "validation_macro_f1_tta": tta["macro_f1"],
            "n": plain["n"],
        },
        "architecture": "compact_cnn",
        "per_class": plain["per_class"],
        "per_class_tta": tta["per_class"],
        "confusion_matrix": plain["confusion_matrix"],
        "confusion_matrix_tta": tta["confusion_matrix"],
        "history": history,
        "source_run": run_dir.name,
    }


# --- empty state --------------------------------------------------------------------------------------------


def test_with_no_model_and_no_runs_the_page_says_what_to_do(environment):
    app = open_metrics_page()
    assert not app.exception
    assert app.title[0].value == "Metrics"
    assert "There is no model to show yet" in texts(app.info)
    assert "Training" in texts(app.info)
    assert not app.tabs and chart_count(app) == 0


# --- a finished run -----------------------------------------------------------------------------------------


def test_a_finished_run_shows_curves_confusion_matrices_per_class_table_and_downloads(environment, first_run):
    installed = install_run(first_run, environment)
    recorded = json.loads((installed / runs.METRICS_FILE).read_text())
    recorded["validation_tta"]["accuracy"] = 0.4321  # unlike the plain figure, so the toggle must switch
    (installed / runs.METRICS_FILE).write_text(json.dumps(recorded))
    app = open_metrics_page()
    assert not app.exception
    assert app.selectbox(key="metrics_model").value == f"run:{first_run.name}"
    assert [tab.label for tab in app.tabs] == [
        "Overview",
        "Compare models",
        "Most confident mistakes",
        "Explain a photo",
    ]
    metrics = {metric.label: metric.value for metric in app.metric}
    recorded = recorded["validation"]
    assert metrics["Accuracy"] == f"{recorded['accuracy']:.1%}" != "43.2%"
    assert metrics["Top-2 accuracy"] == f"{recorded['top2_accuracy']:.1%}"
    assert metrics["Macro-F1"] == f"{recorded['macro_f1']:.3f}"
    assert chart_count(app) == 5  # loss, accuracy, learning rate; confusion counts and normalised
    table = app.dataframe[0].value
    assert list(table.index) == list(EMOTIONS) and int(table["support"].sum()) == 56
    labels = {button.label: button for button in app.get("download_button")}
    assert not labels["Metrics (JSON)"].disabled and not labels["Per-class metrics (CSV)"].disabled
    assert "needs at least two models" in texts(app.info)  # compare tab
    assert "No dataset found" in texts(app.info)  # mistakes tab

    app.toggle(key="metrics_use_tta").set_value(True).run()
    assert not app.exception
    assert {metric.label: metric.value for metric in app.metric}["Accuracy"] == "43.2%"


def test_two_finished_runs_are_compared_side_by_side(environment, first_run, second_run):
    install_run(first_run, environment)
    install_run(second_run, environment)
    app = open_metrics_page()
    assert not app.exception
    assert app.selectbox(key="metrics_model").value == f"run:{max(first_run.name, second_run.name)}"  # newest first
    assert "Pick two or more models" in texts(app.caption)
    charts_alone = chart_count(app)

    app.multiselect(key="metrics_compare").set_value([f"run:{first_run.name}", f"run:{second_run.name}"]).run()
    assert not app.exception
    assert chart_count(app) == charts_alone + 3  # validation accuracy, validation loss, F1 per class
    table = app.dataframe[1].value
    assert list(table["Model"]) == [first_run.name, second_run.name]
    assert list(table["Epochs"]) == ["1", "2"]
    assert table["Accuracy"].str.fullmatch(r"\d{1,3}\.\d%").all()  # as the figures above: one format
    assert "None" not in table.to_numpy().ravel().tolist()

    app.toggle(key="metrics_compare_train").set_value(True).run()
    assert not app.exception


def compared_on_faces(environment, first_run, second_run, training_data) -> AppTest:
    """The Metrics page comparing two runs' models on a dataset's validation faces."""
    shutil.copy(training_data, environment["data"] / "faces.zip")
    install_run(first_run, environment)
    install_run(second_run, environment)
    app = open_metrics_page()
    app.multiselect(key="metrics_compare").set_value([f"run:{first_run.name}", f"run:{second_run.name}"]).run()
    return app.selectbox(key="metrics_compare_dataset").set_value(environment["data"] / "faces.zip").run()


@pytest.fixture
def launched(environment, monkeypatch) -> list:
    """Ensemble jobs go in the test's folder and are created, not started: their folders are recorded here."""
    from ferlib.training import combine_launch

    launched = []
    monkeypatch.setattr(combine_launch, "launch", lambda job_dir, *args, **kwargs: launched.append(job_dir))
    monkeypatch.setenv("FERLIB_ENSEMBLES_DIR", str(environment["runs"].parent / "ensembles"))
    return launched


def test_two_models_average_into_an_ensemble_scored_then_saved_as_a_model(
    environment, first_run, second_run, training_data, monkeypatch
):
    """The compare tab scores the models' weighted average on a dataset's faces, then saves it as a model: its job
    (run in this process here; tests/training/test_combine_job.py runs the real one) ships it beside the shipped
    models, and it joins the model menu."""
    import numpy as np

    from ferlib.evaluation.metrics import predict_probabilities, score
    from ferlib.training import combine_launch
    from ferlib.training.combine import ship_ensemble_job

    def launch_here(job_dir, arguments, *, resume, extra_env=None):
        folder.write_status(job_dir, "created", pid=os.getpid(), launched=time.time(), resumed=resume)
        ship_ensemble_job(job_dir)

    monkeypatch.setattr(combine_launch, "launch", launch_here)
    monkeypatch.setenv("FERLIB_ENSEMBLES_DIR", str(environment["runs"].parent / "ensembles"))
    app = compared_on_faces(environment, first_run, second_run, training_data)
    assert not app.exception and not app.error, texts(app.error)
    table = app.dataframe[-1].value  # below the recorded scores: the scores on the chosen faces
    assert list(table["Model"]) == [first_run.name, second_run.name, "ensemble (1:1)"]

    weight = app.number_input(key=f"metrics_weight_{environment['runs'] / first_run.name / runs.BEST_MODEL}")
    weight.set_value(3.0).run()
    table = app.dataframe[-1].value  # below the recorded scores: the scores on the chosen faces
    assert table["Model"].iloc[-1] == "ensemble (3:1)"
    faces = load_dataset(training_data)
    images, labels = faces.subset("validation")
    members = [keras.saving.load_model(run / runs.BEST_MODEL) for run in (first_run, second_run)]
    predictions = [member.predict(images[..., None].astype(np.float32), verbose=0) for member in members]
    expected = score(labels, 0.75 * predictions[0] + 0.25 * predictions[1], "none")["accuracy"]
    assert table["Accuracy"].iloc[-1] == f"{expected:.1%}"  # what the two models answer together
    app.selectbox(key="metrics_compare_tta").set_value("flip").run()
    flipped = [predict_probabilities(member, images, tta="flip") for member in members]
    expected = score(labels, 0.75 * flipped[0] + 0.25 * flipped[1], "flip")["accuracy"]
    assert app.dataframe[-1].value["Accuracy"].iloc[-1] == f"{expected:.1%}"
    assert "each averaged over flip (2 views)." in texts(app.caption)

    app.text_input(key="metrics_ensemble_name").set_value("our pair").run()
    app.button(key="metrics_ensemble_save").click().run()
    assert "Expected a model name of letters, digits" in texts(app.error)
    app.text_input(key="metrics_ensemble_name").set_value("our_pair").run()
    app.button(key="metrics_ensemble_save").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert "Saved **our_pair** (validation accuracy: plain " in texts(app.success)
    saved = environment["model"].parent / "our_pair.keras"
    assert saved.exists() and saved.with_suffix(".int8.tflite").exists()
    assert any(option.startswith("our_pair · ") for option in app.selectbox(key="metrics_model").options)
    weight.set_value(2.0).run()
    assert "Saved **our_pair**" not in texts(app.success)  # about other weights than these
    app.text_input(key="metrics_ensemble_name").set_value("our_pair").run()
    app.button(key="metrics_ensemble_save").click().run()
    assert "Expected a new model name; received 'our_pair'" in texts(app.error)  # a saved model is never replaced


def test_the_best_weights_are_searched_on_the_faces_set_in_the_inputs_and_said_to_flatter(
    environment, first_run, second_run, training_data, launched
):
    from ferlib.evaluation.metrics import predict_probabilities
    from ferlib.evaluation.weighting import search_weights

    app = compared_on_faces(environment, first_run, second_run, training_data)
    app.button(key="metrics_weight_search_button").click().run()
    assert not app.exception and not app.error, texts(app.error)
    images, labels = load_dataset(training_data).subset("validation")
    found = search_weights(
        [
            predict_probabilities(keras.saving.load_model(run / runs.BEST_MODEL), images)
            for run in (first_run, second_run)
        ],
        labels,
    )
    keys = [f"metrics_weight_{environment['runs'] / run.name / runs.BEST_MODEL}" for run in (first_run, second_run)]
    assert [app.number_input(key=key).value for key in keys] == [float(weight) for weight in found.weights]
    shares = ":".join(map(str, found.weights))
    assert app.dataframe[-1].value["Model"].iloc[-1] == f"ensemble ({shares})"
    assert app.dataframe[-1].value["Accuracy"].iloc[-1] == f"{found.accuracy:.1%}"
    said = f"Weights {shares} score best of the {found.tried} combinations tried on these faces"
    assert said in texts(app.caption) and "this row flatters the ensemble a little" in texts(app.caption)
    app.number_input(key=keys[0]).set_value(found.weights[0] + 1.5).run()
    assert said not in texts(app.caption)  # the sentence is about the weights it set, not these
    app.button(key="metrics_weight_search_button").click().run()
    app.button(key="metrics_ensemble_save").click().run()
    assert not app.exception and not app.error, texts(app.error)
    (job_dir,) = launched
    request = json.loads((job_dir / folder.CONFIG_FILE).read_text())
    assert request["weights"] == [float(weight) for weight in found.weights]
    assert request["notes"] == [  # its card says how its weights were chosen
        f"Its weights ({shares}) were chosen as the ones scoring best on the validation faces it is measured on, so "
        "its validation figures flatter it a little."
    ]


def test_while_an_ensemble_is_combined_it_is_watched_and_no_second_one_starts(
    environment, first_run, second_run, training_data, launched
):
    from ferlib.training.combine import ship_ensemble_job

    app = compared_on_faces(environment, first_run, second_run, training_data)
    app.button(key="metrics_ensemble_save").click().run()
    assert not app.exception and not app.error, texts(app.error)
    (job_dir,) = launched  # 'created' by this process, as a launcher leaves it: active until its process ends
    name = app.text_input(key="metrics_ensemble_name").value
    assert f"Combining **{name}**: measuring it on every validation face" in texts(app.info)
    save = app.button(key="metrics_ensemble_save")
    assert save.disabled and save.help == f"{name} is being combined: wait for it."
    stop = app.button(key=f"metrics-ensemble-stop-{job_dir.name}")
    assert stop.label == "Stop" and not stop.disabled
    stop.click().run()
    assert folder.stop_requested(job_dir)  # its process, still starting, reads it when it begins:
    assert ship_ensemble_job(job_dir)["state"] == "stopped"
    app.run()
    assert f"Combining {name} was stopped: nothing was saved." in texts(app.warning)
    assert not app.button(key="metrics_ensemble_save").disabled


def test_a_public_demo_scores_an_ensemble_but_does_not_save_or_stop_one(
    environment, first_run, second_run, training_data, monkeypatch
):
    from ferlib.training import combine_launch
    from pages.components.access import LOCKED

    monkeypatch.setenv("FERLIB_ENSEMBLES_DIR", str(environment["runs"].parent / "ensembles"))
    monkeypatch.setenv("FERLIB_PUBLIC", "1")
    app = compared_on_faces(environment, first_run, second_run, training_data)
    assert not app.exception and app.dataframe[-1].value["Model"].iloc[-1] == "ensemble (1:1)"
    save = app.button(key="metrics_ensemble_save")
    assert save.disabled and save.help == LOCKED
    monkeypatch.setattr(combine_launch, "launch", lambda *args, **kwargs: None)  # an admin's job, still starting
    members = [first_run / runs.BEST_MODEL, second_run / runs.BEST_MODEL]
    job_dir = combine_launch.start_ensemble(members, training_data, environment["model"].parent / "x.keras")
    app.run()
    assert "Combining **x**" in texts(app.info) and app.button(key=f"metrics-ensemble-stop-{job_dir.name}").disabled


def test_unreadable_metrics_are_an_explained_error(environment, first_run):
    copy = install_run(first_run, environment)
    (copy / runs.METRICS_FILE).write_text("{not json")
    app = open_metrics_page()
    assert not app.exception
    assert "This model's metrics could not be read" in texts(app.error)


# --- the shipped model --------------------------------------------------------------------------------------


def test_the_shipped_model_shows_its_cards_metrics(environment, first_run):
    model = environment["model"]
    shutil.copy(first_run / runs.BEST_MODEL, model)
    note = "Epochs 1-53 trained before the augmentation fix."
    model.with_suffix(".json").write_text(json.dumps({**ship_card_from_run(first_run), "notes": [note]}))
    install_run(first_run, environment)
    app = open_metrics_page()
    assert not app.exception
    assert note not in texts(app.caption) + texts(app.markdown)  # how the weights came to be: not for the page
    shipped = "shipped:fer_vgg.keras"  # the catalog's key; its label names the file and its accuracy
    assert app.selectbox(key="metrics_model").value == shipped
    assert app.selectbox(key="metrics_model").format_func(shipped).startswith("fer_vgg (default) · ")
    assert chart_count(app) == 5
    assert list(app.dataframe[0].value.index) == list(EMOTIONS)

    app.multiselect(key="metrics_compare").set_value([shipped, f"run:{first_run.name}"]).run()
    assert not app.exception
    assert list(app.dataframe[1].value["Model"]) == ["fer_vgg", first_run.name]


def test_a_shipped_checkpoint_without_a_full_card_says_what_is_missing(environment, first_run):
    model = environment["model"]
    shutil.copy(first_run / runs.BEST_MODEL, model)
    shutil.copy(first_run / "best.json", model.with_suffix(".json"))  # summary metrics and training lineage
    app = open_metrics_page()
    assert not app.exception
    assert "records no confusion matrix" in texts(app.caption)
    assert "records no per-class metrics" in texts(app.caption)
    assert "No training curves" not in texts(app.caption)  # the checkpoint's sidecar carries its history
    assert {button.label: button for button in app.get("download_button")}["Per-class metrics (CSV)"].disabled

    sidecar = json.loads((first_run / "best.json").read_text())
    bare = {key: value for key, value in sidecar.items() if key not in LINEAGE_KEYS}  # e.g. written by another tool
    model.with_suffix(".json").write_text(json.dumps(bare))
    app = open_metrics_page()
    assert not app.exception
    assert "No training curves" in texts(app.caption)


# --- mistakes, Grad-CAM and photos --------------------------------------------------------------------------


def test_the_mistakes_gallery_shows_the_surest_mistakes_and_their_heatmaps(environment, first_run, training_data):
    install_run(first_run, environment)
    shutil.copy(training_data, environment["data"] / "fer_small.zip")
    app = open_metrics_page()  # the only dataset is chosen for you
    assert not app.exception, app.exception
    assert app.selectbox(key="metrics_dataset").value == environment["data"] / "fer_small.zip"
    split = app.selectbox(key="metrics_split")  # the zip has train and PublicTest faces, no test split
    assert (split.options, split.value) == (["train", "validation"], "validation")
    assert re.search(r"On 56 validation faces of fer_small\.zip: accuracy", texts(app.caption))
    captions = image_captions(app)
    gallery = [caption for caption in captions if CAPTION.fullmatch(caption)]
    assert gallery, captions
    for caption in gallery:
        true_label, predicted_label = CAPTION.fullmatch(caption).groups()
        assert true_label != predicted_label and {true_label, predicted_label} <= set(EMOTIONS)
    heatmaps = [caption for caption in captions if HEATMAP.match(caption)]  # or "no evidence (flat map)" where flat
    assert len(heatmaps) == min(4, len(gallery))
    first_predicted = CAPTION.fullmatch(gallery[0]).group(2)
    assert HEATMAP.match(heatmaps[0]).group(1) == first_predicted

    app.selectbox(key="metrics_eval_tta").set_value("shifts").run()
    assert not app.exception
    model = keras.saving.load_model(first_run / runs.BEST_MODEL, compile=False)
    expected = reports.evaluate_split(model, load_dataset(training_data), "validation", tta="shifts").metrics
    assert (
        f"of fer_small.zip with TTA over flips and ±2-pixel shifts (10 views): accuracy {expected['accuracy']:.1%},"
        in texts(app.caption)
    )
    app.selectbox(key="metrics_eval_tta").set_value("none").run()

    app.radio(key="metrics_explain_target").set_value("true class").run()
    assert not app.exception
    first_true = CAPTION.fullmatch(gallery[0]).group(1)
    explained = [caption for caption in image_captions(app) if HEATMAP.match(caption)]
    assert HEATMAP.match(explained[0]).group(1) == first_true
    app.selectbox(key="metrics_true_class").set_value(EMOTIONS.index(first_true)).run()
    assert not app.exception
    filtered = [caption for caption in image_captions(app) if CAPTION.fullmatch(caption)]
    assert filtered and all(CAPTION.fullmatch(caption).group(1) == first_true for caption in filtered)


def test_an_uploaded_photo_is_explained_face_by_face(environment, first_run, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    install_run(first_run, environment)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    app = open_metrics_page()
    uploader = app.get("file_uploader")[0]
    uploader.set_value(("astronaut.png", encoded.tobytes(), "image/png"))
    app.run()
    assert not app.exception, app.exception
    labels = [expander.label for expander in app.expander if expander.label.startswith("Face ")]
    assert labels and re.fullmatch(r"Face 1: \S+ (\w+) \(\d+%\) · heatmap for \1", labels[0]), labels
    assert image_captions(app) == ["Red: where the evidence for the class lies"]  # drawn on the photo itself

    app.selectbox(key="metrics_photo_class").set_value("surprise").run()
    assert not app.exception
    assert all(
        expander.label.endswith("heatmap for surprise") for expander in app.expander if "Face " in expander.label
    )


def test_an_unreadable_upload_is_an_explained_error(environment, first_run):
    install_run(first_run, environment)
    app = open_metrics_page()
    app.get("file_uploader")[0].set_value(("notes.png", b"not an image", "image/png"))
    app.run()
    assert not app.exception
    assert "could not be read as an image" in texts(app.error)


def test_a_shipped_ensemble_shows_its_figures_and_members(environment, first_run, training_data, tmp_path):
    from ferlib.training.combine import ship_ensemble

    other = tmp_path / "other.keras"
    shutil.copy(first_run / runs.BEST_MODEL, other)
    shutil.copy(first_run / "best.json", other.with_suffix(".json"))
    ship_ensemble([first_run / runs.BEST_MODEL, other], training_data, environment["model"])
    app = open_metrics_page()
    assert not app.exception and not app.error
    assert "An ensemble has no training curves of its own: each member's card holds its own." in texts(app.caption)
    facts = texts(app.markdown)
    assert "- **Network**: ensemble" in facts
    assert f"- **Members**: {first_run.name}/best.keras (50.0%) · other.keras (50.0%)" in facts
