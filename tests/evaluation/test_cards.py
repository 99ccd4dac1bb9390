"""Model cards in words: the architecture's settings as a reader would write them."""

from ferlib.evaluation.cards import describe_hyperparameters


def test_architecture_settings_read_as_words_not_a_python_dict():
    settings = {"filters": [40, 80, 160, 320], "block_dropout": 0.1, "dense_units": 256, "input_crop": 40}
    described = describe_hyperparameters(settings)
    assert described == "filters 40-80-160-320, block dropout 0.1, dense units 256, input crop 40"
    assert "{" not in described and "[" not in described


def test_a_card_without_settings_names_the_defaults():
    assert describe_hyperparameters({}) == "the architecture's defaults"
    assert describe_hyperparameters(None) == "the architecture's defaults"
