"""TrainConfig validation: settings of the wrong type or out of range are named in one ValueError."""

import pytest

from ferlib.training.config import TrainConfig


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"learning_rate": "0.01"}, "Expected learning_rate to be a number; received '0.01'"),
        ({"epochs": 3.5}, "Expected epochs to be a whole number; received 3.5"),
        ({"class_weighting": 1}, "Expected class_weighting to be true or false; received 1"),
        ({"augmentation": {"zoom": "a lot"}}, "Expected augmentation.zoom to be a number; received 'a lot'"),
        ({"hyperparameters": [32, 64]}, "Expected hyperparameters to be an object; received [32, 64]"),
        ({"data": None}, "Expected data to be a string; received None"),
        ({"augmentation": None}, "Expected augmentation to be an object; received None"),
        ({"momentum": 1.5}, "Expected momentum in [0, 1); received 1.5"),
        (
            {"hyperparameters": {"filters": 64}},
            "Expected filters of 'vgg_fer' to be a list of positive whole numbers such as [32, 64, 128]; received 64",
        ),
        (
            {"hyperparameters": {"activation": "relux"}},
            "Expected activation of 'vgg_fer' to be one of relu, elu, gelu, swish, selu; received 'relux'",
        ),
        (
            {"hyperparameters": {"dense_dropout": 1.5}},
            "Expected dense_dropout of 'vgg_fer' to be a rate in [0, 1); received 1.5",
        ),
        (
            {"hyperparameters": {"kernel_size": 0}},
            "Expected kernel_size of 'vgg_fer' to be a whole number >= 1; received 0",
        ),
        (
            {"hyperparameters": {"filters": [32, True]}},
            "Expected filters of 'vgg_fer' to be a list of positive whole numbers such as [32, 64, 128]; received "
            "[32, True]",
        ),
    ],
)
def test_a_wrong_setting_is_named(settings, message):
    with pytest.raises(ValueError) as raised:
        TrainConfig.from_dict(settings)
    assert str(raised.value) == message


def test_numbers_may_be_written_either_way_where_any_number_will_do():
    config = TrainConfig.from_dict({"learning_rate": 1, "weight_decay": 0, "epochs": 2})
    assert (config.learning_rate, config.weight_decay, config.epochs) == (1, 0, 2)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_a_layer_may_be_left_out_with_zero_where_the_architecture_allows_it():
    config = TrainConfig.from_dict({"hyperparameters": {"dense_units": 0, "input_crop": 0, "block_dropout": 0}})
    assert config.hyperparameters["dense_units"] == 0
