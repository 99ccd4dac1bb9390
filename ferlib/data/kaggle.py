"""Downloading FER-2013 from Kaggle with the optional `kaggle` package, stored like an uploaded zip."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from ferlib.data.archive import SavedArchive, save_dataset_zip
from ferlib.errors import FerError

FER2013 = "msambare/fer2013"


def credentials_present() -> bool:
    """Whether the Kaggle API could authenticate: KAGGLE_USERNAME + KAGGLE_KEY, or a kaggle.json file."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_directory = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()
    return (config_directory / "kaggle.json").is_file()


def package_present() -> bool:
    """Whether the optional `kaggle` package is installed, found without importing it (importing authenticates)."""
    return importlib.util.find_spec("kaggle") is not None


def download(directory: str | os.PathLike, dataset: str = FER2013) -> SavedArchive:
    """Download `dataset` into a temporary folder, then check and store it in `directory` like an upload.

    A download that is not a usable dataset raises FerError; network, authentication and package failures raise
    FerError naming the cause.
    """
    if not package_present():
        raise FerError("Expected the `kaggle` package to download from Kaggle; received none: pip install kaggle")
    name = f"{dataset.split('/')[-1]}.zip"
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # optional; importing it authenticates

        api = KaggleApi()
        api.authenticate()
        with tempfile.TemporaryDirectory(prefix="kaggle-") as folder:
            api.dataset_download_files(dataset, path=folder, unzip=False, quiet=True, force=True)
            return save_dataset_zip(Path(folder) / name, name, Path(directory))
    except FerError:
        raise
    except Exception as error:  # network, HTTP 401/403 and the package's own errors: the user's to mend
        raise FerError(f"Expected a Kaggle download of {dataset}; received {type(error).__name__}: {error}") from None
