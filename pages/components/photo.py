"""Photo analysis, one for Home and the Live page: find and read every face, draw them beside their probabilities,
download the annotated photo (never larger than a screen)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import streamlit as st

from ferlib.classes import class_label
from ferlib.data.preprocess import decode_photo, fit_within
from ferlib.live.analyzer import LiveSettings, annotate_live
from pages.components.charts import probability_bars
from pages.components.common import attempt, load_classifier, load_detector, model_version

PHOTO_TYPES = ["jpg", "jpeg", "png", "bmp", "webp"]
SCREEN_SIDE = 1920  # the annotated photo is never larger than a screen
NO_FACE_HINT = "No face was found. Faces should be frontal, well lit and at least 6% as wide as the photo's shorter "
NO_FACE_HINT += "side (the detectors skip smaller faces, which are too small to read an expression from)."


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR order as st.image expects it (gray images as they are)."""
    return image[:, :, ::-1] if image.ndim == 3 and image.shape[2] == 3 else image


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit image (as drawn here) as PNG bytes, for download buttons."""
    return cv2.imencode(".png", image)[1].tobytes()


def read_photo(photo: bytes) -> np.ndarray | None:
    """A photo decoded (reduced when it is larger than analysis needs), or None after saying why it cannot be read."""
    return attempt("This file could not be read as an image.", lambda: decode_photo(photo))


@st.cache_data(show_spinner="Finding and reading the faces…", max_entries=16, ttl=3600)
def analyze_photo(
    _image, photo: bytes, model_path: str, detector: str, backend: str, threads: int, tta: str, version: Any
):
    """The faces found and read in a photo (`_image`, decoded from `photo`), each read through the views of `tta`
    ("none": once), cached for an hour per photo, model version and settings: a rerun (a slider moved) redraws them
    without finding them again."""
    from ferlib.evaluation.metrics import AveragedViews
    from ferlib.live.pipeline import EmotionPipeline

    classifier = load_classifier(model_path, backend, threads)
    classifier = AveragedViews(classifier, tta) if tta != "none" else classifier
    return EmotionPipeline(load_detector(detector), classifier).analyze(_image)


def photo_analysis(photo: bytes, model_path: str, *, key: str, settings: LiveSettings | None = None, **pipeline):
    """The photo with every face drawn on it beside each face's emotion and probabilities, and the annotated photo to
    download (none when no face was found); `pipeline`: the detector, backend, num_threads and TTA mode (tta) to
    analyse it with.
    Returns the faces found (None when the photo or the model failed)."""
    if (image := read_photo(photo)) is None:
        return None
    options = {"detector": "haar", "backend": "auto", "num_threads": None, "tta": "none", **pipeline}
    analyze = lambda: analyze_photo(image, photo, model_path, *options.values(), model_version(model_path))  # noqa: E731
    analysis = attempt("The model could not be run.", analyze)
    if analysis is None:
        return None
    for number, face in enumerate(faces := analysis.faces, start=1):
        face.face_id = number
    annotated = fit_within(annotate_live(image, faces, settings or LiveSettings()), SCREEN_SIDE)
    picture, details = st.columns([3, 2], gap="medium")
    found = f"{len(faces)} face{'' if len(faces) == 1 else 's'} found"
    picture.image(bgr_to_rgb(annotated), caption=found, width="stretch")
    if not faces:
        details.warning(NO_FACE_HINT, icon=":material/face:")
        return faces
    for face in faces:
        label = f"Face {face.face_id}: {class_label(face.label)} ({face.confidence:.0%})"
        with details.expander(label, expanded=len(faces) <= 3):
            st.plotly_chart(probability_bars(face.probabilities, 230), key=f"{key}-face-{face.face_id}")
    options = dict(key=f"{key}-download", on_click="ignore", icon=":material/download:")
    picture.download_button(
        "Download the annotated photo", encode_png(annotated), "emotions.png", "image/png", **options
    )
    return faces
