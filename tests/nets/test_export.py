"""TFLite exports compute what the Keras model computes: inference-mode batch norm, whatever the input layers."""

import numpy as np

from ferlib.nets.architectures import build_model
from ferlib.nets.classifier import TFLiteClassifier, tflite_interpreter_class
from ferlib.nets.export import export_tflite, export_tflite_int8


def test_the_int8_export_of_a_crop_model_uses_the_saved_batch_norm_statistics(tmp_path):
    model = build_model("vgg_fer", filters=(4, 8, 8, 8), dense_units=8, input_crop=40)
    generator = np.random.default_rng(0)
    for layer in model.layers:  # moving statistics unlike what one face's own statistics would give
        if type(layer).__name__ == "BatchNormalization":
            mean, variance = layer.moving_mean, layer.moving_variance
            mean.assign(generator.normal(0.0, 0.3, mean.shape).astype("float32"))
            variance.assign(generator.uniform(0.5, 2.0, variance.shape).astype("float32"))
    faces = generator.integers(0, 256, (64, 48, 48)).astype(np.uint8)
    expected = model.predict(faces[..., None].astype(np.float32), verbose=0)

    for path in (
        export_tflite_int8(model, tmp_path / "crop.int8.tflite", faces),
        export_tflite(model, tmp_path / "crop.tflite"),
    ):
        names = [tensor["name"] for tensor in tflite_interpreter_class()(model_path=str(path)).get_tensor_details()]
        assert not [name for name in names if "moments" in name], path.name  # no per-face batch statistics
        probabilities = TFLiteClassifier(path).predict(faces[..., None].astype(np.float32))
        assert np.mean(probabilities.argmax(axis=1) == expected.argmax(axis=1)) >= 0.9, path.name
        np.testing.assert_allclose(probabilities, expected, atol=0.1)
