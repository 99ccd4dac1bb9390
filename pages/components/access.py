"""A public deployment: with FERLIB_PUBLIC=1 (environment) or `public = true` under [ferlib] in the app's secrets,
anyone may analyse photos, snapshots, videos and the live camera, while starting, resuming, stopping or deleting
jobs, storing datasets and labelling jobs wait for the admin password ([ferlib] admin_password in the secrets)."""

import hmac
import os

import streamlit as st

KEY, PASSWORD_KEY = "ferlib_admin", "ferlib_admin_password"
LOCKED = "This public demo analyses photos, videos and the camera for everyone; training, searches and stored "
LOCKED += "datasets need the administrator's password (sidebar), so that visitors cannot tie up or change this server."


def _secrets() -> dict:
    """The [ferlib] table of the app's secrets (empty without a secrets file)."""
    return dict(st.secrets.get("ferlib", {})) if st.secrets.load_if_toml_exists() else {}


def locked() -> str | None:
    """Why this visitor may not change jobs or data (a public demo, no admin password entered), or None."""
    public = os.environ.get("FERLIB_PUBLIC", "").strip().lower() in ("1", "true", "yes", "on")
    public = public or _secrets().get("public") in (True, "true", "1", 1)
    return LOCKED if public and not st.session_state.get(KEY) else None


def admin_sidebar() -> None:
    """In public mode: the administrator's sign-in (and sign-out), in the sidebar of every page."""
    if not locked() and not st.session_state.get(KEY):
        return
    with st.sidebar.expander("Administrator", icon=":material/admin_panel_settings:"):
        if st.session_state.get(KEY):
            st.button("Sign out", on_click=st.session_state.pop, args=(KEY,), help="Back to the public demo.")
            return
        with st.form("ferlib_admin_form", border=False, clear_on_submit=True):
            help_text = "admin_password under [ferlib] in the app's secrets."
            entered = st.text_input("Password", type="password", key=PASSWORD_KEY, help=help_text)
            if not st.form_submit_button("Sign in", icon=":material/login:"):
                return
        expected = str(_secrets().get("admin_password") or "")
        if hmac.compare_digest(entered.encode(), expected.encode()) and expected:
            st.session_state[KEY] = True
            st.rerun()  # every page drawn again with its buttons open
        st.error("That is not the administrator's password.", icon=":material/lock:")
