"""UI shared by the pages: job monitor, charts, photo analysis, cached loaders and small helpers."""
