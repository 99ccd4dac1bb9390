"""Photo analysis, one for Home and the Live page: upload, find and read every face, draw them, list them, download."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from ferlib.classes import EMOTION_ICONS, EMOTIONS
from ferlib.data.preprocess import decode_image
from ferlib.errors import FerError
from ferlib.live.analyzer import LiveSettings, annotate_live
from pages.components.charts import probability_bars
from pages.components.common import attempt, load_classifier, load_detector, model_version

PHOTO_TYPES = ["jpg", "jpeg", "png", "bmp", "webp"]
NO_FACE_HINT = "No face was found. Faces should be frontal, well lit and at least 6% as wide as the photo's shorter "
NO_FACE_HINT += "side (the detectors skip smaller faces, which are too small to read an expression from)."


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR order as st.image expects it (gray images as they are)."""
    return image[:, :, ::-1] if image.ndim == 3 and image.shape[2] == 3 else image


def encode_png(image: np.ndarray) -> bytes:
    """An image as PNG bytes, for download buttons."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise FerError("Expected an image OpenCV can encode as PNG; received one it cannot")
    return encoded.tobytes()


def read_photo(upload) -> np.ndarray | None:
    """An uploaded picture decoded, or None after saying why it cannot be read."""
    return attempt("This file could not be read as an image.", lambda: decode_image(upload.getvalue()))


def analyze_photo(image: np.ndarray, photo: bytes, model_path: str, detector: str, backend: str, num_threads: int):
    """The faces found and read in a photo (`image`, decoded from `photo`), cached for an hour per photo, model
    version and settings: a rerun (a slider moved) redraws them without finding them again."""
    return _analyze_photo(image, photo, model_path, detector, backend, num_threads, model_version(model_path))


@st.cache_data(show_spinner="Finding and reading the faces…", max_entries=16, ttl=3600)
def _analyze_photo(_image, photo: bytes, model_path: str, detector: str, backend: str, threads: int, version: Any):
    from ferlib.live.pipeline import EmotionPipeline

    return EmotionPipeline(load_detector(detector), load_classifier(model_path, backend, threads)).analyze(_image)


def photo_analysis(upload, model_path: str, *, key: str, settings: LiveSettings | None = None, **pipeline) -> None:
    """The photo with every face found drawn on it, a table of the faces, each face's probabilities, a download.

    `pipeline`: the detector, backend and num_threads to analyse it with (the analysis is cached per photo).
    """
    if (image := read_photo(upload)) is None:
        return
    options = {"detector": "haar", "backend": "auto", "num_threads": None, **pipeline}
    analysis = attempt(
        "The model could not be run.", lambda: analyze_photo(image, upload.getvalue(), model_path, **options)
    )
    if analysis is None:
        return
    for number, face in enumerate(faces := analysis.faces, start=1):
        face.face_id = number
    annotated = annotate_live(image, faces, settings or LiveSettings())
    st.image(bgr_to_rgb(annotated), caption=f"{len(faces)} face(s) found", width="stretch")
    if not faces:
        st.warning(NO_FACE_HINT)
        return
    columns = ["face", "emotion", "confidence", "box (x, y, w, h)", *EMOTIONS]
    rows = [
        [face.face_id, f"{EMOTION_ICONS[face.label]} {face.label}", face.confidence, ", ".join(map(str, face.box))]
        + [face.probabilities[name] for name in EMOTIONS]
        for face in faces
    ]
    fraction = st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1)
    formats = dict.fromkeys(["confidence", *EMOTIONS], fraction)
    st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True, width="stretch", column_config=formats)
    for face in faces:
        label = f"Face {face.face_id}: {EMOTION_ICONS[face.label]} {face.label} ({face.confidence:.0%})"
        with st.expander(label, expanded=len(faces) <= 2):
            st.plotly_chart(probability_bars(face.probabilities), key=f"{key}-face-{face.face_id}")
    options = dict(key=f"{key}-download", on_click="ignore", icon=":material/download:")
    st.download_button("Download the annotated photo", encode_png(annotated), "emotions.png", "image/png", **options)
