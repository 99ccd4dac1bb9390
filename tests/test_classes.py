"""Class sets: subsets of FER-2013's seven emotions and merged groups, as configs and cards store them."""

import numpy as np
import pytest

from ferlib.classes import EMOTIONS, ClassSet


def test_a_subset_keeps_fer2013s_order_and_drops_the_other_emotions():
    seed_project = ClassSet.parse("happy, neutral, sad, angry, fear, surprise")  # disgust left out
    assert seed_project.names == ("angry", "fear", "happy", "sad", "surprise", "neutral")
    assert seed_project.to_config() == list(seed_project.names) and not seed_project.is_all
    keep, labels = seed_project.apply(np.arange(7))
    assert list(keep) == [True, False, True, True, True, True, True] and list(labels) == [0, 1, 2, 3, 4, 5]
    assert ClassSet.parse(None) == ClassSet.parse("all") == ClassSet.all() and ClassSet.all().names == EMOTIONS
    assert ClassSet.parse(["Sadness", "happiness"]).names == ("happy", "sad")  # aliases, canonical order


def test_merged_classes_map_their_emotions_and_round_trip_through_the_config():
    classes = ClassSet.parse({"happy": ["happy"], "negative": ["sad", "angry", "fear", "disgust"]})
    assert classes.names == ("negative", "happy")  # ordered by their first emotion
    assert classes.members == (("angry", "disgust", "fear", "sad"), ("happy",))
    assert list(classes.emotion_to_class()) == [0, 0, 0, 1, 0, -1, -1]
    assert ClassSet.parse(classes.to_config()) == classes
    assert classes.describe() == "negative (angry, disgust, fear, sad), happy"
    assert classes.color("negative") == classes.color("negative") and classes.icon("happy") == "😄"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("happy", "at least two classes"),
        ("happy,joy", "each emotion in one class only; received happy twice"),
        ({"Calm": ["neutral"], "calm": ["sad"]}, "distinct class names"),
        ("happy,bored", "Expected emotions among angry, disgust"),
        ({"a": ["sad"], "b": ["sad", "fear"]}, "each emotion in one class only; received sad twice"),
        ({"a": []}, "a list of emotions for class 'a'"),
        (42, "Expected classes as names"),
    ],
)
def test_class_sets_that_cannot_work_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        ClassSet.parse(value)
