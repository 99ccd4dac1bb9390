"""The one family of errors that are the user's to mend: a wrong path, setting, file or request.

A FerError's message reads `Expected …; received …`. The CLI prints it as one `error:` line and exits 2; pages show
it with `st.error`. Any other exception is a bug, and shows as one.
"""

from __future__ import annotations


class FerError(ValueError):
    """A user mistake ferlib can name: what it expected and what it received."""
