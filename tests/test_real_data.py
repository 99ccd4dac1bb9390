"""Checks on the shared FER-2013 copy beside the repository (skipped where it is absent)."""

import numpy as np
import pytest
from conftest import SHARED_ZIP

from ferlib.data.datasets import load_dataset

pytestmark = [pytest.mark.real_data, pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("shared_cache")


def test_shared_zip_has_the_challenge_splits(shared_cache):
    dataset = load_dataset(SHARED_ZIP, cache_dir=shared_cache)
    counts = dataset.counts()
    assert sum(counts["train"].values()) == 28709
    assert sum(counts["validation"].values()) == 3589
    assert sum(counts["test"].values()) == 0  # PrivateTest is withheld from this copy
    assert counts["validation"]["disgust"] == 56 and counts["train"]["happy"] == 7215
    assert dataset.report.bad_files == []
    assert not dataset.report.validation_from_train
    assert dataset.images.dtype == np.uint8 and dataset.images.shape[1:] == (48, 48)


def test_second_load_is_served_from_the_cache(shared_cache):
    dataset = load_dataset(SHARED_ZIP, cache_dir=shared_cache)
    assert dataset.report.from_cache
    assert len(dataset) == 28709 + 3589
