"""The Live page under Streamlit's AppTest: renders in each situation; the photo and video tabs analyse uploads."""

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.classes import EMOTION_ICONS
from ferlib.errors import FerError
from ferlib.live.video import CSV_COLUMNS, VideoWriter
from ferlib.live.webrtc import preload_srtp


@pytest.fixture(autouse=True)
def webrtc_without_a_server(monkeypatch):
    """AppTest's mock runtime has no session manager; streamlit-webrtc then runs as it does outside a live server."""
    preload_srtp()  # TensorFlow is already loaded by the tiny model (see ferlib.live.webrtc)
    monkeypatch.setattr("streamlit_webrtc.component.get_this_session_info", lambda: None)


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def no_runs(monkeypatch, tmp_path):
    """An empty runs folder: the model menu lists the shipped models, then runs' checkpoints."""
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def installed_model(monkeypatch, tmp_path, tiny_model_path):
    model = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    monkeypatch.setenv("FERLIB_MODEL", str(model))
    return model


@pytest.fixture
def astronaut_bgr():
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def open_live_page(timeout: float = 120) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    app.run()
    return app.switch_page("pages/live.py").run()


def test_live_page_without_a_model_explains_what_to_do(monkeypatch, tmp_path):
    from ferlib.nets import modelio

    monkeypatch.setenv("FERLIB_MODEL", str(tmp_path / "absent.keras"))
    monkeypatch.setattr(modelio, "MODELS_DIR", tmp_path)  # hide the shipped models/ as well
    app = open_live_page()
    assert not app.exception
    assert app.title[0].value == "🎥 Live"
    assert any("No trained model is installed yet" in info.value for info in app.info)


def test_live_page_offers_the_shipped_default_model_first_then_the_other_shipped_ones_then_runs(
    monkeypatch, tmp_path, tiny_model_path
):
    monkeypatch.delenv("FERLIB_MODEL", raising=False)
    shutil.copytree(tiny_model_path.parent, tmp_path / "runs" / tiny_model_path.parent.name)
    app = open_live_page()
    assert not app.exception
    (model_box,) = [box for box in app.sidebar.selectbox if box.label == "Model"]
    labels = model_box.options  # as the page labels them: the catalog's labels
    shipped = ["fer_vgg (default)", "fer_vgg_compact", "fer_vgg_six", "happy_or_sad"]  # the default, then by name
    assert [label.split(" ·")[0] for label in labels[:4]] == shipped
    assert labels[4].startswith(f"Run {tiny_model_path.parent.name} · compact_cnn") and len(labels) == 5


def test_live_page_renders_its_tabs_and_controls(installed_model):
    app = open_live_page()
    assert not app.exception
    assert [tab.label.split(" ", 1)[1] for tab in app.tabs] == ["Live camera", "Photo", "Snapshot", "Video file"]
    assert [box.label for box in app.sidebar.selectbox] == ["Face detector", "Model", "Model format"]
    assert [slider.label for slider in app.sidebar.slider] == ["Confidence threshold", "Smoothing window (frames)"]
    assert any("Waiting for the video" in caption.value for caption in app.caption)
    assert any("no STUN or TURN" in caption.value for caption in app.caption)
    app.sidebar.radio[0].set_value("box").run()
    app.sidebar.slider[1].set_value(3).run()
    assert not app.exception


def test_after_the_video_stops_the_last_faces_are_labelled_as_such(installed_model, astronaut_bgr):
    app = open_live_page()
    session = app.session_state["live_session"]  # the page configured it; frames arrive as from the camera
    frame = cv2.resize(astronaut_bgr, (640, 640))[80:560]
    for _ in range(3):
        session.process_frame(frame)
        assert session.settle()  # the session analyses in its own thread
    app.run()
    assert not app.exception
    captions = [caption.value for caption in app.caption]
    assert any(caption.startswith("The video stopped ") for caption in captions), captions
    assert not any("Waiting for the video" in caption for caption in captions)
    assert any(markdown.value.startswith("**Face 1**: ") for markdown in app.markdown)


def test_a_camera_pipeline_that_cannot_start_leaves_the_other_tabs_working(installed_model, monkeypatch):
    from ferlib.live.session import LiveSession

    def refuse(*arguments, **keywords):
        raise FerError("Expected a detector that loads; received a broken one")

    monkeypatch.setattr(LiveSession, "configure", refuse)
    app = open_live_page()
    assert not app.exception
    assert any("The live pipeline could not be started." in error.value for error in app.error)
    assert [uploader.label for uploader in app.get("file_uploader")][:1] == ["A photo with one or more faces"]
    assert not any("Waiting for the video" in caption.value for caption in app.caption)


def test_photo_tab_annotates_every_face(installed_model, astronaut_bgr, monkeypatch):
    import ferlib.nets.classifier

    loads, original = [], ferlib.nets.classifier.make_classifier

    def counted(model_path=None, backend="auto", num_threads=None):
        loads.append((str(model_path), backend))
        return original(model_path, backend=backend, num_threads=num_threads)

    monkeypatch.setattr(ferlib.nets.classifier, "make_classifier", counted)
    from ferlib.live.pipeline import EmotionPipeline

    analyses, analyze = [], EmotionPipeline.analyze
    monkeypatch.setattr(
        EmotionPipeline, "analyze", lambda self, image: analyses.append(found := analyze(self, image)) or found
    )
    app = open_live_page()
    head = astronaut_bgr[:300, 110:410]
    photo = np.full((300, 640, 3), 30, np.uint8)
    photo[:, :300], photo[:, 340:] = head, head
    ok, encoded = cv2.imencode(".png", photo)
    assert ok
    app.get("file_uploader")[0].upload("two.png", encoded.tobytes(), "image/png").run()
    assert not app.exception
    faces = analyses[0].faces
    centres = [x + width / 2 for x, _, width, _ in (face.box for face in faces)]
    assert any(50 < centre < 200 for centre in centres) and any(390 < centre < 540 for centre in centres)
    labels = [expander.label for expander in app.expander if expander.label.startswith("Face ")]
    assert labels == [
        f"Face {face.face_id}: {EMOTION_ICONS[face.label]} {face.label} ({face.confidence:.0%})" for face in faces
    ]
    (annotated,) = app.image
    assert annotated.captions == [f"{len(faces)} faces found"]
    assert "Download the annotated photo" in [button.label for button in app.get("download_button")]
    # One classifier, cached for every session, serves the camera and the photo pipelines: one load of the file.
    assert loads == [(str(installed_model), "keras")], loads  # the fixture has no TFLite exports
    # A rerun with other settings redraws the same faces without finding and classifying them again.
    assert len(analyses) == 1
    app.sidebar.slider[0].set_value(0.95).run()
    assert not app.exception and len(analyses) == 1
    assert app.image[0].captions == [f"{len(faces)} faces found"]


def test_photo_tab_says_when_there_is_no_face(installed_model):
    app = open_live_page()
    _, encoded = cv2.imencode(".png", np.full((200, 300, 3), 180, np.uint8))
    app.get("file_uploader")[0].upload("wall.png", encoded.tobytes(), "image/png").run()
    assert not app.exception
    assert any("No face was found" in warning.value for warning in app.warning)
    assert "Download the annotated photo" not in [button.label for button in app.get("download_button")]


def test_video_tab_analyses_a_clip(installed_model, astronaut_bgr, tmp_path):
    head = astronaut_bgr[:240, 110:410]
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 10, 320, 240) as writer:
        for index in range(8):
            frame = np.zeros((240, 320, 3), np.uint8)
            frame[:, 10 + 2 * index : 310] = head[:, : 300 - 2 * index]
            writer.write(frame)
    app = open_live_page()
    app.get("file_uploader")[1].upload("clip.mp4", clip.read_bytes(), "video/mp4").run()
    assert not app.exception
    next(button for button in app.button if button.label == "Analyse the video").click().run()
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Frames"] == "8" and metrics["Faces"] == "1"
    table = pd.DataFrame(app.session_state["live_video_result"]["rows"], columns=list(CSV_COLUMNS))  # the CSV's rows
    # Every frame has its row: a face not yet confirmed (min_hits) is kept for a file until it is.
    assert list(table["frame"]) == list(range(8)) and set(table["face_id"]) == {1}
    assert not app.dataframe  # every face in every frame is in the CSV, not in a raw table
    labels = [button.label for button in app.get("download_button")]
    assert "Download the CSV" in labels and "Download the annotated video" in labels


def test_a_clip_that_cannot_be_read_is_named_as_uploaded_not_by_a_server_path(installed_model):
    app = open_live_page()
    app.get("file_uploader")[1].upload("holiday.mp4", b"not a video at all" * 100, "video/mp4").run()
    next(button for button in app.button if button.label == "Analyse the video").click().run()
    assert not app.exception
    (error,) = [error.value for error in app.error]
    assert error.startswith("The video could not be analysed.") and "'holiday.mp4'" in error
    assert "/tmp" not in error and "clip.mp4" not in error
