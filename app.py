"""FER Studio: the dashboard's entry point. Run with `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="FER Studio", page_icon="🎭", layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
]

st.navigation(PAGES).run()
