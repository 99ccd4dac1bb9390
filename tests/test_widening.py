import numpy as np
import pytest

from ferlib.architectures import build_model
from ferlib.widening import widen_into, widening_map


def randomised(model, seed: int):
    """Give every weight, batch-norm statistics included, distinct random values, so copying mistakes show."""
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            width = weights[0].shape
            uniform = generator.uniform
            weights = [
                uniform(0.5, 1.5, width),
                uniform(-0.1, 0.3, width),
                uniform(-0.1, 0.1, width),
                uniform(0.5, 1.5, width),
            ]
        elif weights:
            fan_in = int(np.prod(weights[0].shape[:-1]))
            weights = [generator.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape) for weight in weights]
        layer.set_weights([weight.astype(np.float32) for weight in weights])
    return model


@pytest.fixture(scope="module")
def faces():
    generator = np.random.default_rng(0)
    levels = np.linspace(20, 230, 6)[:, None, None, None]
    return np.clip(levels + generator.normal(0, 40, (6, 48, 48, 1)), 0, 255).astype(np.float32)


@pytest.mark.parametrize(
    ("architecture", "narrow", "wide"),
    [
        ("vgg_fer", {"filters": (4, 8, 8, 16), "dense_units": 12}, {"filters": (6, 8, 13, 24), "dense_units": 20}),
        ("compact_cnn", {"filters": (4, 8, 16), "dense_units": 8}, {"filters": (7, 12, 16), "dense_units": 8}),
    ],
)
def test_the_widened_network_computes_the_narrow_ones_function(architecture, narrow, wide, faces):
    source = randomised(build_model(architecture, **narrow), seed=1)
    target = build_model(architecture, **wide)
    widen_into(source, target, seed=3)
    assert target.count_params() > source.count_params()
    expected = np.log(source(faces, training=False).numpy())
    np.testing.assert_allclose(np.log(target(faces, training=False).numpy()), expected, atol=1e-3)
    assert expected.std(axis=0).max() > 0.05  # the scores move between faces: the comparison has teeth


def test_noise_breaks_the_copies_symmetry_but_keeps_the_function_close(faces):
    source = randomised(build_model("vgg_fer", filters=(4, 8, 8, 16), dense_units=12), seed=1)
    exact, noisy, again = (build_model("vgg_fer", filters=(8, 16, 16, 32), dense_units=12) for _ in range(3))
    widen_into(source, exact, seed=3)
    widen_into(source, noisy, noise=0.01, seed=3)
    widen_into(source, again, noise=0.01, seed=3)
    kernel = noisy.get_layer("block1_conv1").kernel.numpy()
    assert not np.allclose(kernel[..., 4:], exact.get_layer("block1_conv1").kernel.numpy()[..., 4:])
    np.testing.assert_array_equal(kernel[..., :4], source.get_layer("block1_conv1").kernel.numpy())
    np.testing.assert_array_equal(kernel, again.get_layer("block1_conv1").kernel.numpy())
    difference = np.abs(noisy(faces, training=False).numpy() - exact(faces, training=False).numpy()).max()
    assert 0 < difference < 0.05


def test_a_narrower_or_different_target_is_refused():
    source = build_model("compact_cnn", filters=(8, 16, 32), dense_units=16)
    with pytest.raises(ValueError, match="Expected a width of at least 16"):
        widen_into(source, build_model("compact_cnn", filters=(8, 12, 32), dense_units=16))
    with pytest.raises(ValueError, match="Expected a model with the layers of"):
        widen_into(source, build_model("compact_cnn", filters=(8, 16, 32, 64), dense_units=16))


def test_widening_map_keeps_the_old_channels_in_place_and_copies_existing_ones():
    mapping = widening_map(5, 12, np.random.default_rng(0))
    assert list(mapping[:5]) == [0, 1, 2, 3, 4] and len(mapping) == 12
    assert mapping.min() >= 0 and mapping.max() < 5
