"""Streamlit pages of FER Studio; `common` holds their shared, cached helpers."""
