"""FER Studio: the dashboard's entry point. Run with `streamlit run app.py`."""

import streamlit as st

from pages.components.common import internal_errors

# "auto": the sidebar starts collapsed on phone-width screens instead of covering the page.
st.set_page_config(page_title="FER Studio", page_icon="🎭", layout="wide", initial_sidebar_state="auto")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/live.py", title="Live", icon=":material/videocam:"),
    st.Page("pages/tune.py", title="Tune", icon=":material/tune:"),
]

# A page opened by URL before app.py ever ran comes back through here (require_app) for this navigation and config.
st.session_state["fer_studio_app"] = True
navigation = st.navigation(PAGES)
requested_page = st.session_state.pop("fer_studio_requested_page", None)
if requested_page:
    st.switch_page(requested_page)
# A bug (anything but a FerError, which pages explain) shows a short error box; its traceback goes to the server log.
with internal_errors(f"the {navigation.title} page"):
    navigation.run()
