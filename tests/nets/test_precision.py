"""Mixed bfloat16: the same network and weights computing in another precision, probabilities always float32."""

from pathlib import Path

import numpy as np

from ferlib.nets.architectures import build_model
from ferlib.nets.precision import (
    FLOAT32,
    MIXED_BFLOAT16,
    fast_bfloat16,
    has_bfloat16_flags,
    precision_of,
    with_precision,
)


def tiny_network():
    return build_model("vgg_fer", filters=(4, 8, 8, 8), dense_units=8, input_crop=40)


def test_a_network_moves_to_mixed_bfloat16_and_back_with_its_weights():
    model = tiny_network()
    assert precision_of(model) == FLOAT32 and with_precision(model, FLOAT32) is model
    mixed = with_precision(model, MIXED_BFLOAT16)
    assert precision_of(mixed) == MIXED_BFLOAT16
    policies = {layer.name: layer.dtype_policy.name for layer in mixed.layers}
    assert policies["emotion"] == FLOAT32 and policies["block1_conv1"] == MIXED_BFLOAT16
    for before, after in zip(model.weights, mixed.weights, strict=True):
        assert after.dtype == "float32"  # the weights stay float32: only the computation is bfloat16
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before))

    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype("float32")
    exact, approximate = model.predict(faces, verbose=0), mixed.predict(faces, verbose=0)
    assert approximate.dtype == np.float32
    np.testing.assert_allclose(approximate.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(approximate, exact, atol=0.05)  # bfloat16 keeps about 3 significant digits

    back = with_precision(mixed, FLOAT32)
    assert precision_of(back) == FLOAT32
    np.testing.assert_allclose(back.predict(faces, verbose=0), exact, rtol=1e-5, atol=1e-6)


def test_the_cpu_check_reads_the_bfloat16_flags():
    genoa = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n"
    sapphire = "flags\t\t: fpu avx512f amx_tile amx_bf16\n"
    skylake = "flags\t\t: fpu avx2 avx512f avx512bw\nbugs\t\t: avx512_bf16_missing\n"
    assert has_bfloat16_flags(genoa) and has_bfloat16_flags(sapphire)
    graviton3 = "Features\t: fp asimd sve bf16 i8mm\n"
    assert not has_bfloat16_flags(skylake) and not has_bfloat16_flags("")
    assert has_bfloat16_flags(graviton3) and not has_bfloat16_flags("Features\t: fp asimd\n")
    assert fast_bfloat16() == has_bfloat16_flags(Path("/proc/cpuinfo").read_text())


def test_only_functional_networks_change_precision():
    import keras
    import pytest

    sequential = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    assert with_precision(sequential, FLOAT32) is sequential
    with pytest.raises(ValueError, match="only functional models"):
        with_precision(sequential, MIXED_BFLOAT16)
