"""Training augmentation: each random layer draws its own numbers, reproducibly from one seed."""

import numpy as np

from ferlib.data.augment import AugmentationConfig, augment_images, build_augmenter, layer_seeds


def test_layers_draw_independent_numbers_from_one_seed():
    """With one shared seed a face was flipped exactly when its rotation angle was negative."""
    config = AugmentationConfig(horizontal_flip=True, rotate_degrees=20.0, zoom=0.1, translate=0.1)
    flip, rotation, zoom, translation = build_augmenter(config, seed=7).layers
    batch = np.zeros((512, 48, 48, 1), np.float32)
    flips = np.asarray(flip.get_random_transformation(batch, training=True)["flips"]).ravel()
    angles = np.asarray(rotation.get_random_transformation(batch, training=True)["angle"]).ravel()
    assert 0.4 < np.mean(flips == (angles < 0)) < 0.6
    zooms = np.asarray(zoom.get_random_transformation(batch, training=True)["height_zoom"]).ravel()
    shifts = np.asarray(translation.get_random_transformation(batch, training=True)["translations"])[:, 1]
    assert abs(np.corrcoef(zooms, shifts)[0, 1]) < 0.2


def test_seeds_are_distinct_reproducible_and_optional():
    seeds = layer_seeds(2013)
    assert len(set(seeds.values())) == len(seeds) and seeds == layer_seeds(2013) and seeds != layer_seeds(2014)
    assert set(layer_seeds(None).values()) == {None}
    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    config = AugmentationConfig()
    np.testing.assert_array_equal(augment_images(faces, config, seed=3), augment_images(faces, config, seed=3))
    assert not np.array_equal(augment_images(faces, config, seed=3), augment_images(faces, config, seed=4))
