"""Ensemble weights searched on labelled faces: the best accuracy, the lower log-loss among equals, clear refusals."""

import numpy as np
import pytest

from ferlib.errors import FerError
from ferlib.evaluation import weighting
from ferlib.evaluation.weighting import search_weights


def two_class(first: float, faces: int = 4) -> np.ndarray:
    """Every face given probability `first` for class 0."""
    return np.tile([first, 1.0 - first], (faces, 1))


def test_a_stronger_weight_for_the_right_model_wins_and_the_lower_log_loss_breaks_ties():
    labels = np.zeros(4, dtype=int)
    right, wrong = two_class(0.7), two_class(0.2)  # equal weights average 0.45 for class 0: every face wrong
    found = search_weights([right, wrong], labels)
    # 2:1, 3:1 and 4:1 all answer every face right; 4:1 gives the true class the most probability
    assert found.weights == (4, 1)
    assert (found.accuracy, found.equal_accuracy, found.gain) == (1.0, 0.0, 1.0)
    assert found.log_loss == pytest.approx(-np.log(0.6))
    assert found.tried == 11  # 16 pairs of 1-4, less (2,2), (3,3), (4,4), (2,4) and (4,2), which repeat others


def test_equal_weights_stay_when_nothing_scores_better():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 50)
    perfect = np.eye(7)[labels] * 0.9 + 0.1 / 7
    found = search_weights([perfect, perfect.copy()], labels)
    assert found.weights == (1, 1) and found.accuracy == found.equal_accuracy == 1.0


def test_many_models_are_searched_one_weight_at_a_time_and_still_find_the_one_that_matters():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    good = np.eye(3)[labels] * 0.6 + 0.4 / 3  # right on every face, not very sure
    noise = [rng.dirichlet(np.ones(3) * 0.3, size=40) for _ in range(6)]  # confident and random
    assert len(weighting.WEIGHT_LEVELS) ** 7 > weighting.MAX_EXHAUSTIVE
    found = search_weights([*noise[:3], good, *noise[3:]], labels)
    assert found.weights[3] == max(found.weights) and found.accuracy > found.equal_accuracy
    assert found.tried < len(weighting.WEIGHT_LEVELS) ** 7
    stacked = np.stack([*noise[:3], good, *noise[3:]])
    favoured = weighting._accuracy_and_log_loss(stacked, labels, (1, 1, 1, 4, 1, 1, 1))
    assert (found.accuracy, -found.log_loss) >= (favoured[0], -favoured[1])  # at least the obvious guess


@pytest.mark.parametrize(
    ("probabilities", "labels", "expected"),
    [
        ([two_class(0.5)], np.zeros(4), "Expected two or more models' probabilities to weigh; received 1"),
        ([two_class(0.5), two_class(0.5, 3)], np.zeros(4), "Expected (faces, classes) probabilities of one shape"),
        ([two_class(0.5), two_class(0.5)], np.zeros(3), "Expected one label for each of the 4 faces; received 3"),
        ([two_class(0.5), two_class(0.5)], np.full(4, 2), "Expected labels from 0 to 1; received 2 to 2"),
    ],
)
def test_mismatched_inputs_are_refused_with_one_sentence(probabilities, labels, expected):
    with pytest.raises(FerError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        search_weights(probabilities, labels)
