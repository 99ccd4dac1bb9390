"""FER Studio: the dashboard's entry point. Run with `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="FER Studio", page_icon="🎭", layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
]

st.navigation(PAGES).run()
