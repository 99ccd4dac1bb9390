"""Data: reading FER-2013 in its forms, checking it, and the one preprocessing of faces."""
