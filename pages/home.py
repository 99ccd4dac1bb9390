"""Home: what the studio does, a photo (or the sample photo) analysed at once (which emotion, or the workshop's
question: happy or sad?), and the active model at a glance."""

from pathlib import Path

import streamlit as st

from ferlib.classes import class_icon
from ferlib.evaluation import catalog
from ferlib.evaluation.metrics import metric_key
from ferlib.evaluation.reports import shipped_report
from ferlib.nets.modelio import default_model_path
from pages.components import charts, common
from pages.components.common import attempt, load_model_card, metric_row, percent, require_app, show_error
from pages.components.photo import PHOTO_TYPES, photo_analysis

require_app("pages/home.py")
SAMPLE = Path(__file__).parent / "assets" / "sample-face.jpg"
FIGURES = (("accuracy", "none"), ("macro_f1", "none"), ("accuracy", "flip"), ("accuracy", "zooms"))
SAMPLE_CREDIT = "Sample photo: astronaut Eileen Collins, NASA (public domain), via scikit-image."
WHICH, HAPPY_OR_SAD = "Which emotion?", "Happy or sad?"
QUESTION_HELP = "Which emotion: the active model's classes. Happy or sad: a model that tells only those two apart."
VIEWS_HELP = "Reads each face 18 times (mirrored, zoomed by ±10% and tilted by ±5°) and averages the answers, as the "
VIEWS_HELP += "model's best validation accuracy was measured: usually more accurate, at 18 times the work."


def happy_or_sad_model() -> Path | None:
    """The shipped model that tells happy from sad (and nothing else), if there is one."""
    chosen = [entry for entry in catalog.shipped_models() if set(entry.classes) == {"happy", "sad"}]
    return chosen[0].model_path if chosen else None


def answer(faces: list) -> None:
    """The workshop's answer in big type: the emotion of the largest face and how sure the model is."""
    face = max(faces, key=lambda face: face.box[2] * face.box[3])
    st.markdown(f"# {class_icon(face.label)} {face.label.capitalize()}")
    others = f" (the largest of {len(faces)} faces; each is listed below)" if len(faces) > 1 else ""
    st.caption(f"{face.confidence:.0%} sure{others}. The model only knows these two answers: it says one of them.")


st.title("🎭 FER Studio")
st.caption("Facial emotion recognition on FER-2013: explore the data, train, tune and evaluate models, go live.")
model, two_class = default_model_path(), happy_or_sad_model()
try_column, model_column = st.columns([3, 2], gap="large")
with model_column:
    st.subheader("Active model")
    card, failure = None, "The model's card could not be read, so its figures are not shown."
    if not model.exists():
        common.show_no_model_hint()
    else:  # the two headline figures and what they were measured on
        recorded = (card := attempt(failure, lambda: load_model_card(model)) or {}).get("metrics", {})
        accuracy, macro_f1, flip, zooms = (recorded.get(metric_key(name, tta)) for name, tta in FIGURES)
        f1_text = f"{macro_f1:.3f}" if isinstance(macro_f1, float) else "–"
        on = f"{recorded['n']:,} validation faces of FER-2013" if isinstance(recorded.get("n"), int) else "FER-2013"
        classes = len(card.get("class_names") or []) or 7
        accurate = ("Validation accuracy", percent(accuracy), f"Faces of {on} whose expression it names right.")
        f1_help = f"F1 averaged over the {classes} classes, rare ones counting as much."
        metric_row([accurate, ("Macro-F1", f1_text, f1_help)])
        mirror = f"; {percent(flip)} reading each face together with its mirror image" if flip else ""
        mirror += f", {percent(zooms)} reading 18 zoomed, tilted and mirrored views of it" if flip and zooms else ""
        st.caption(f"On {on} it never trained on{mirror}. People agree with FER-2013's labels about 65% of the time.")
with try_column:
    st.subheader("Try it on a photo")
    question = st.segmented_control(
        "Question", [WHICH, HAPPY_OR_SAD], default=WHICH, key="home_question", help=QUESTION_HELP
    )
    question = question or WHICH
    help_text = "Faces are found with OpenCV's Haar cascade and each one is classified. The photo is not saved; the "
    help_text += "faces found in it stay in the server's memory for an hour, so the page can redraw them."
    upload = st.file_uploader("A photo with one or more faces", type=PHOTO_TYPES, help=help_text)
    if st.button("Try the sample photo", icon=":material/face:", help=SAMPLE_CREDIT, disabled=upload is not None):
        st.session_state["home_sample"] = True
    sample = upload is None and st.session_state.get("home_sample", False)
    if upload is None and not sample:
        st.caption("A selfie, a group photo or a film still: every face gets a box, a label and its probabilities.")
    views = "zooms" if st.toggle("Read each face 18 ways", key="home_views", help=VIEWS_HELP) else "none"
if upload is not None or sample:
    asked = two_class if question == HAPPY_OR_SAD else model
    if question == HAPPY_OR_SAD and two_class is None:
        how = "`python -m ferlib train --classes happy,sad …`, then `python -m ferlib ship --run-dir RUN --data DATA "
        how += "--output models/happy_or_sad.keras`"
        show_error(f"There is no happy-or-sad model yet: train one with {how}.")
    elif not asked.exists():
        show_error("There is no model to run yet; see 'Active model' above.")
    else:
        verdict = st.container()
        photo = upload.getvalue() if upload else SAMPLE.read_bytes()
        faces = photo_analysis(photo, str(asked), key=f"home-photo-{question == HAPPY_OR_SAD}", tta=views)
        if faces and question == HAPPY_OR_SAD:
            with verdict:
                answer(faces)
        if sample:
            st.caption(SAMPLE_CREDIT)
if card is not None:  # how well it finds each expression, what it is, and its full written card
    st.subheader("About the active model")
    chart_column, facts_column = st.columns(2, gap="large")
    if per_class := card.get("per_class"):
        names = card.get("class_names") or list(per_class)
        recall = {name: float((per_class.get(name) or {}).get("recall") or 0) for name in names}
        title = "How often each expression is recognised (recall)"
        chart_column.plotly_chart(charts.probability_bars(recall, 260, title), key="home-recall")
    with facts_column:
        common.model_facts({**shipped_report(model, card).details, "train_images": card.get("train_images")})
    if (written := model.with_suffix(".md")).exists():
        with st.expander("Model card: intended use, limitations, training and evaluation", icon=":material/article:"):
            st.markdown(common.card_text(written))
