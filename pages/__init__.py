"""Streamlit pages of FER Studio; `components` holds the UI they share."""
