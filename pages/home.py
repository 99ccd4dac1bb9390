"""Home: what the studio does, the active model's card, and 'upload a photo' to try it at once."""

from pathlib import Path

import pandas as pd
import streamlit as st

from ferlib.classes import EMOTIONS
from ferlib.errors import FerError
from ferlib.evaluation.metrics import metric_key
from ferlib.nets.modelio import default_model_path
from pages.components import common
from pages.components.common import PER_CLASS_COLUMNS, load_model_card, metric_row, percent, require_app, show_error
from pages.components.photo import PHOTO_TYPES, photo_analysis

require_app("pages/home.py")
CARD_DETAILS = ("architecture", "parameters", "file_size_mb", "flops_per_face", "ms_per_face", "epochs_completed")
CARD_DETAILS += ("train_wall_seconds", "stages")
FIGURES = (("accuracy", "none"), ("macro_f1", "none"), ("accuracy", "flip"))


def model_card(model_path: Path) -> None:
    """The headline figures, per-class scores, details and written card of the active model."""
    try:
        card = load_model_card(model_path)
    except FerError as error:
        show_error("The model's card could not be read, so its figures are not shown.", error)
        card = {}
    recorded = card.get("metrics", {})
    accuracy, macro_f1, flip = (recorded.get(metric_key(name, tta)) for name, tta in FIGURES)
    figures = [
        ("Validation accuracy", percent(accuracy), "On FER-2013 PublicTest (3,589 faces), the selection split."),
        ("Macro-F1", f"{macro_f1:.3f}" if isinstance(macro_f1, float) else "–", "F1 averaged over the seven classes."),
    ]
    metric_row(figures + ([("With flip TTA", percent(flip), "Averaging the face's and its mirror's.")] if flip else []))
    if per_class := card.get("per_class") or {}:
        table = pd.DataFrame(per_class).T.loc[list(EMOTIONS)]
        st.dataframe(table, width="stretch", column_config=PER_CLASS_COLUMNS)
    if details := {key: card[key] for key in CARD_DETAILS if key in card}:
        st.json(details, expanded=False)
    if (written := model_path.with_suffix(".md")).exists():
        with st.expander("Model card: intended use, limitations, training, evaluation"):
            st.markdown(written.read_text(encoding="utf-8"))


st.title("🎭 FER Studio")
st.caption("Facial emotion recognition on FER-2013: explore the data, train, tune and evaluate models, go live.")
model = default_model_path()
card_column, try_column = st.columns([2, 3], gap="large")
with card_column:
    st.subheader("Active model")
    if model.exists():
        model_card(model)
    else:
        common.show_no_model_hint()
with try_column:
    st.subheader("Try it: upload a photo")
    upload = st.file_uploader(
        "A photo with one or more faces",
        type=PHOTO_TYPES,
        help="Faces are found with OpenCV's Haar cascade; each one is classified separately. The photo is not "
        "saved; the faces found in it are kept in the server's memory for an hour, so the page can redraw them.",
    )
    if upload is None:
        st.caption("Try a selfie, a group photo or a film still: every face gets a box, a label and its probabilities.")
    elif not model.exists():
        show_error("There is no model to run yet; see 'Active model' on the left.")
    else:
        photo_analysis(upload, str(model), key="home-photo")
