"""Pages with a model of two classes (happy, sad): the Training page's class choice, Home's "happy or sad?" answer,
the Metrics page (its own classes, faces of other classes left out, comparisons across class sets) and Live."""

import re
import shutil
from pathlib import Path

import cv2
import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.training import run_launch


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def studio(tmp_path, monkeypatch, tiny_model_path, tiny_happy_sad_path, training_data) -> dict[str, Path]:
    """The seven-class tiny model as the default, the happy-or-sad one shipped beside it, the tiny dataset."""
    from ferlib.nets import modelio

    models, data, runs_dir = tmp_path / "models", tmp_path / "data", tmp_path / "runs"
    for folder in (models, data, runs_dir):
        folder.mkdir()
    for source, name in ((tiny_model_path, "fer_vgg"), (tiny_happy_sad_path, "happy_or_sad")):
        shutil.copy(source, models / f"{name}.keras")
        shutil.copy(source.with_suffix(".json"), models / f"{name}.json")
    shutil.copy(training_data, data / "fer_small.zip")
    monkeypatch.setattr(modelio, "MODELS_DIR", models)
    monkeypatch.setenv("FERLIB_MODEL", str(models / "fer_vgg.keras"))
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("FERLIB_DATA_DIR", str(data))
    monkeypatch.setenv("FERLIB_SEARCHES_DIR", str(tmp_path / "searches"))
    return {"models": models, "data": data, "runs": runs_dir}


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    return app.switch_page(page).run() if page != "pages/home.py" else app


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def button(app: AppTest, label: str):
    (found,) = [element for element in app.button if element.label == label]
    return found


def test_a_preset_ticks_its_classes_shows_their_faces_and_starts_a_run_of_those_classes(studio, monkeypatch):
    started = []
    create = run_launch.create_run  # started as created, without a training process
    monkeypatch.setattr(
        run_launch, "start_run", lambda config, runs_dir: started.append(config) or create(config, runs_dir)
    )
    app = open_page("pages/training.py")
    assert not app.exception, app.exception
    button(app, "Happy vs sad").click().run()
    ticked = {box.key.rsplit("_", 1)[1]: box.value for box in app.checkbox if box.key.startswith("training_classes_")}
    assert ticked == {name: name in ("happy", "sad") for name in ticked} and len(ticked) == 7
    assert "happy 40 · sad 40: 80 training faces and 16 validation faces." in texts(app.caption)
    app.selectbox(key="training_architecture").set_value("compact_cnn").run()
    app.text_input(key="training_hp_compact_cnn_filters").set_value("8, 16, 32")
    button(app, "Start training").click().run()
    assert not app.exception and not app.error, texts(app.error)
    (config,) = started
    assert config.class_set.names == ("happy", "sad") and config.classes == ["happy", "sad"]

    button(app, "Six (no disgust)").click().run()
    assert "disgust" not in texts(app.caption) and "neutral 40: 240 training faces" in texts(app.caption)
    for name in ("angry", "fear", "happy", "sad", "surprise"):
        app.checkbox(key=f"training_classes_{name}").uncheck()
    app.run()
    assert "Choose at least two classes to tell apart; 1 chosen." in texts(app.warning)
    assert button(app, "Start training").disabled


def test_home_answers_the_workshops_question_in_big_type(studio):
    app = open_page("pages/home.py")
    app.button_group(key="home_question").set_value("Happy or sad?").run()
    button(app, "Try the sample photo").click().run()
    assert not app.exception and not app.error, texts(app.error)
    answers = [text for text in texts(app.markdown).splitlines() if text.startswith("# ")]
    assert answers in (["# 😄 Happy"], ["# 😢 Sad"]), answers
    assert re.search(r"\d+% sure\. The model only knows these two answers", texts(app.caption))
    faces = [expander.label for expander in app.expander if expander.label.startswith("Face ")]
    assert faces and all(re.fullmatch(r"Face \d: \S+ (happy|sad) \(\d+%\)", label) for label in faces), faces

    app.button_group(key="home_question").set_value("Which emotion?").run()
    assert not [text for text in texts(app.markdown).splitlines() if text.startswith("# ")]


def test_home_without_a_two_class_model_says_how_to_make_one(studio):
    (studio["models"] / "happy_or_sad.keras").unlink()
    app = open_page("pages/home.py")
    app.button_group(key="home_question").set_value("Happy or sad?").run()
    button(app, "Try the sample photo").click().run()
    assert "There is no happy-or-sad model yet" in texts(app.error) and "--classes happy,sad" in texts(app.error)


def test_metrics_reads_a_two_class_model_and_scores_it_on_its_faces(studio, training_data):
    app = open_page("pages/metrics.py")
    app.selectbox(key="metrics_model").set_value("shipped:happy_or_sad.keras").run()
    assert not app.exception, app.exception
    # The mistakes tab: the seven-class dataset, scored on its happy and sad faces only.
    assert re.search(
        r"On 16 validation faces of fer_small\.zip \(40 faces of other classes left out\)", texts(app.caption)
    )
    options = app.selectbox(key="metrics_true_class").options
    assert [option for option in options if option != "any"] == ["😄 happy", "😢 sad"]
    assert app.selectbox(key="metrics_photo_class").options == ["predicted class", "happy", "sad"]

    app.multiselect(key="metrics_compare").set_value(["shipped:fer_vgg.keras", "shipped:happy_or_sad.keras"]).run()
    assert not app.exception
    assert "tell apart different classes" in texts(app.warning) and not app.dataframe[1:]


def test_live_names_only_a_two_class_models_classes(studio, monkeypatch):
    from ferlib.live.webrtc import preload_srtp

    skimage_data = pytest.importorskip("skimage.data")
    preload_srtp()  # as tests/pages/test_page_live.py: streamlit-webrtc as outside a live server
    monkeypatch.setattr("streamlit_webrtc.component.get_this_session_info", lambda: None)
    app = open_page("pages/live.py")
    app.selectbox(key="live_model").set_value("shipped:happy_or_sad.keras").run()
    assert not app.exception, app.exception
    _, encoded = cv2.imencode(".png", cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    app.get("file_uploader")[0].upload("astronaut.png", encoded.tobytes(), "image/png").run()
    assert not app.exception, app.exception
    faces = [expander.label for expander in app.expander if expander.label.startswith("Face ")]
    assert faces and all(re.fullmatch(r"Face \d: \S+ (happy|sad) \(\d+%\)", label) for label in faces), faces


def test_charts_draw_a_models_own_classes():
    import numpy as np

    from pages.components import charts

    figure = charts.confusion_matrix(np.eye(2), "Counts", False, ("happy", "sad"))
    assert list(figure.data[0].x) == ["😄 happy", "😢 sad"] and figure.layout.height < 420
    bars = charts.probability_bars({"negative": 0.3, "happy": 0.7})
    assert list(bars.data[0].y) == ["◆ negative", "😄 happy"] and bars.data[0].marker.color[1] == "#fdd835"
    timeline = charts.timeline([(1, 0.0, "sad", 0.9), (1, 0.5, "happy", 0.8)], classes=("happy", "sad"))
    assert list(timeline.layout.yaxis.categoryarray) == ["happy", "sad"]


def test_models_of_different_classes_are_scored_on_the_faces_of_the_classes_they_share(studio, training_data):
    app = open_page("pages/metrics.py")
    app.multiselect(key="metrics_compare").set_value(["shipped:fer_vgg.keras", "shipped:happy_or_sad.keras"]).run()
    app.selectbox(key="metrics_compare_dataset").set_value(studio["data"] / "fer_small.zip").run()
    assert not app.exception and not app.error, texts(app.error)
    (table,) = [frame.value for frame in app.dataframe if "Faces" in frame.value.columns]
    assert list(table["Model"]) == ["fer_vgg", "happy_or_sad"] and list(table["Faces"]) == ["16", "16"]
    assert "On the validation faces of happy, sad in fer_small.zip." in texts(app.caption)


def test_a_seven_class_model_answers_a_two_class_question_with_the_likelier_of_the_two():
    import numpy as np

    from ferlib.classes import ClassSet
    from ferlib.evaluation.metrics import project_probabilities

    seven, negative = ClassSet.all(), ClassSet.parse({"negative": ["angry", "sad"], "happy": ["happy"]})
    probabilities = np.array([[0.1, 0.0, 0.0, 0.2, 0.3, 0.0, 0.4], [0.0, 0.0, 0.0, 0.6, 0.2, 0.2, 0.0]])
    projected = project_probabilities(probabilities, seven.columns_for(negative))
    np.testing.assert_allclose(projected, [[0.4 / 0.6, 0.2 / 0.6], [0.2 / 0.8, 0.6 / 0.8]])
    with pytest.raises(ValueError, match="Expected a model that knows angry; received one over happy, sad"):
        ClassSet.parse("happy,sad").columns_for(negative)


def test_a_snapshot_face_is_saved_to_my_faces_under_the_emotion_shown(studio, monkeypatch):
    from ferlib.data.datasets import load_dataset
    from ferlib.live.webrtc import preload_srtp

    skimage_data = pytest.importorskip("skimage.data")
    preload_srtp()
    monkeypatch.setattr("streamlit_webrtc.component.get_this_session_info", lambda: None)
    app = open_page("pages/live.py")
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    app.camera_input(key="live-camera-input").set_value(("snapshot.jpg", encoded.tobytes(), "image/jpeg")).run()
    assert not app.exception, app.exception
    assert button(app, "Save to my faces").disabled  # until the emotion is chosen
    app.selectbox(key="live_my_face_class").set_value("happy").run()
    button(app, "Save to my faces").click().run()
    assert not app.exception and not app.error, texts(app.error)
    target = studio["data"] / "my-faces"
    assert "Saved as happy: 1 face in" in texts(app.success) and len(list(target.rglob("*.png"))) == 1
    assert load_dataset(target, use_cache=False).counts()["train"]["happy"] == 1  # a dataset Training can use
