"""Home: what the studio does, the active model's card, and 'upload a photo' to try it at once."""

import io
from pathlib import Path

import pandas as pd
import streamlit as st

from ferlib.classes import EMOTION_ICONS, EMOTIONS
from ferlib.data.preprocess import decode_image
from ferlib.errors import FerError
from ferlib.evaluation.metrics import metric_key
from ferlib.nets.modelio import default_model_path
from pages.common import (
    NO_FACE_HINT,
    analyze_photo,
    bgr_to_rgb,
    load_model_card,
    model_available,
    probability_chart,
    require_app,
    show_error,
)

require_app("pages/home.py")


def figure(value, template: str) -> str:
    """A card's number formatted, or a dash when the card does not record it."""
    return template.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


st.title("🎭 FER Studio")
st.caption(
    "Facial emotion recognition on FER-2013: explore the data, train and tune models, read their metrics, "
    "and see emotions live on your webcam."
)

model_path = str(default_model_path())
card_column, try_column = st.columns([2, 3], gap="large")

with card_column:
    st.subheader("Active model")
    if not model_available(model_path):
        st.info(
            "No trained model is installed yet. Train one on the **Training** page or with "
            "`python -m ferlib train --data PATH`, then copy its `best.keras` into `models/`.",
            icon=":material/model_training:",
        )
    else:
        try:
            card = load_model_card(model_path)
        except FerError as error:
            show_error("The model's card could not be read, so its figures are not shown.", error)
            card = {}
        metrics = card.get("metrics", {})
        first, second, third = st.columns(3)
        first.metric(
            "Validation accuracy",
            figure(metrics.get(metric_key("accuracy", "none")), "{:.1%}"),
            help="Accuracy on FER-2013 PublicTest (3,589 faces), the validation split used for selection.",
        )
        second.metric(
            "Macro-F1",
            figure(metrics.get(metric_key("macro_f1", "none")), "{:.3f}"),
            help="The F1 score averaged over the seven classes, so rare classes count as much as common ones.",
        )
        if metric_key("accuracy", "flip") in metrics:
            third.metric(
                "With flip TTA",
                f"{metrics[metric_key('accuracy', 'flip')]:.1%}",
                help="Averaging the prediction of the face and its mirror image.",
            )
        per_class = card.get("per_class") or {}
        if per_class:
            table = pd.DataFrame(per_class).T.loc[list(EMOTIONS)]
            st.dataframe(
                table,
                width="stretch",
                column_config={
                    "precision": st.column_config.ProgressColumn("precision", format="%.2f", min_value=0, max_value=1),
                    "recall": st.column_config.ProgressColumn("recall", format="%.2f", min_value=0, max_value=1),
                    "f1": st.column_config.ProgressColumn("F1", format="%.2f", min_value=0, max_value=1),
                },
            )
        details = {
            key: card[key]
            for key in (
                "architecture",
                "parameters",
                "file_size_mb",
                "flops_per_face",
                "ms_per_face",
                "epochs_completed",
                "train_wall_seconds",
                "stages",
            )
            if key in card
        }
        if details:
            st.json(details, expanded=False)
        card_page = Path(model_path).with_suffix(".md")
        if card_page.exists():
            with st.expander("Model card: intended use, limitations, training, evaluation"):
                st.markdown(card_page.read_text(encoding="utf-8"))

with try_column:
    st.subheader("Try it: upload a photo")
    upload = st.file_uploader(
        "A photo with one or more faces",
        type=["jpg", "jpeg", "png", "bmp", "webp"],
        help="Faces are found with OpenCV's Haar cascade; each one is classified separately. "
        "The photo is not saved; the faces found in it are kept in the server's memory for an hour, so the page "
        "can redraw them.",
    )
    if upload is None:
        st.caption("Try a selfie, a group photo or a film still: every face gets a box, a label and its probabilities.")
    elif not model_available(model_path):
        show_error("There is no model to run yet; see 'Active model' on the left.")
    else:
        try:
            image = decode_image(upload.getvalue())
        except FerError as error:
            show_error("This file could not be read as an image.", error)
        else:
            try:
                analysis = analyze_photo(image, upload.getvalue(), model_path)
            except FerError as error:
                show_error("The model could not be run.", error)
            else:
                from ferlib.live.pipeline import annotate

                annotated = annotate(image, analysis)
                st.image(bgr_to_rgb(annotated), caption=f"{len(analysis.faces)} face(s) found", width="stretch")
                if not analysis.faces:
                    st.warning(NO_FACE_HINT)
                for number, face in enumerate(analysis.faces, start=1):
                    with st.expander(
                        f"Face {number}: {EMOTION_ICONS[face.label]} {face.label} ({face.confidence:.0%})",
                        expanded=len(analysis.faces) <= 2,
                    ):
                        st.plotly_chart(probability_chart(face.probabilities), key=f"face-{number}")
                import cv2

                ok, encoded = cv2.imencode(".png", annotated)
                if ok:
                    st.download_button(
                        "Download the annotated photo",
                        io.BytesIO(encoded.tobytes()),
                        file_name="emotions.png",
                        mime="image/png",
                    )
