"""A small registry of CNN architectures built from a config's hyperparameters.

Every model takes (N, 48, 48, 1) float32 pixels in 0-255 and scales them itself, so all
inference paths feed the same `preprocess_face` output. Outputs are softmax probabilities
over `EMOTIONS`. With `input_crop` (say 40) a model looks at the central crop of that side only: training shifts
the face up to the margin, so the crop it sees is a random one, and ten-crop TTA shifts the face to each corner.

Keras is imported inside the builders: reading configs and listing architectures (the dashboard's pages, the
run listings) must not load TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

from ferlib.classes import NUM_CLASSES
from ferlib.data.preprocess import IMAGE_SIZE
from ferlib.errors import FerError

if TYPE_CHECKING:
    import keras

ArchitectureBuilder = Callable[..., "keras.Model"]
_REGISTRY: dict[str, ArchitectureBuilder] = {}
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {}
ACTIVATIONS = ("relu", "elu", "gelu", "swish", "selu")  # the activations a network may use between its layers
OPTIONAL_LAYERS = ("dense_units", "input_crop")  # settings whose 0 leaves their layer out


def register(name: str, **defaults: Any) -> Callable[[ArchitectureBuilder], ArchitectureBuilder]:
    """Add a builder to the registry under `name`, with its default hyperparameters."""

    def decorator(builder: ArchitectureBuilder) -> ArchitectureBuilder:
        _REGISTRY[name] = builder
        ARCHITECTURE_DEFAULTS[name] = dict(defaults)
        return builder

    return decorator


def architecture_names() -> list[str]:
    return sorted(_REGISTRY)


def shapes_layers(setting: str) -> bool:
    """Whether an architecture setting shapes the layers, so a warm-start model must share it (dropout rates do not
    change any weight and may differ)."""
    return "dropout" not in setting


def _whole(number: Any) -> bool:
    return isinstance(number, Integral) and not isinstance(number, bool)


def check_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> None:
    """Refuse an unknown architecture, unknown settings, or a value of the wrong kind, before any model is built:
    channel lists of positive whole numbers, whole numbers (0 only where it leaves a layer out), an activation
    among ACTIVATIONS, rates in [0, 1)."""
    if name not in _REGISTRY:
        raise FerError(f"Expected an architecture among {', '.join(architecture_names())}; received {name!r}")
    defaults = ARCHITECTURE_DEFAULTS[name]
    unknown = sorted(set(hyperparameters) - set(defaults))
    if unknown:
        raise FerError(f"Expected hyperparameters of {name!r} among {', '.join(sorted(defaults))}; received {unknown}")
    for setting, value in hyperparameters.items():
        default = defaults[setting]
        if isinstance(default, (tuple, list)):
            valid = isinstance(value, (tuple, list)) and bool(value) and all(_whole(n) and n >= 1 for n in value)
            expected = "a list of positive whole numbers such as [32, 64, 128]"
        elif isinstance(default, str):
            valid, expected = value in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"
        elif isinstance(default, int):
            low = 0 if setting in OPTIONAL_LAYERS else 1
            valid, expected = _whole(value) and value >= low, f"a whole number >= {low}"
        else:
            number = isinstance(value, Real) and not isinstance(value, bool)
            valid, expected = number and 0 <= value < 1, "a rate in [0, 1)"
        if not valid:
            raise FerError(f"Expected {setting} of {name!r} to be {expected}; received {value!r}")


def build_model(name: str, num_classes: int = NUM_CLASSES, **hyperparameters: Any) -> keras.Model:
    """Build the named architecture with `num_classes` outputs; unknown names and wrong settings raise FerError."""
    check_hyperparameters(name, hyperparameters)
    defaults = ARCHITECTURE_DEFAULTS[name]
    if not isinstance(num_classes, int) or num_classes < 2:
        raise FerError(f"Expected at least 2 classes; received {num_classes!r}")
    return _REGISTRY[name](num_classes=num_classes, **{**defaults, **hyperparameters})


def _inputs(input_crop: int = 0) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = inputs
    if input_crop:
        if not 8 <= int(input_crop) < IMAGE_SIZE:
            raise FerError(f"Expected input_crop 0 (none) or 8-{IMAGE_SIZE - 1} pixels; received {input_crop!r}")
        x = layers.CenterCrop(int(input_crop), int(input_crop), name="crop")(x)
    return inputs, layers.Rescaling(1.0 / 255.0, name="scale")(x)


def _conv_block(x, filters: int, convs: int, kernel_size: int, activation: str, dropout: float, name: str):
    from keras import layers

    for index in range(convs):
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv{index + 1}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{index + 1}")(x)
        x = layers.Activation(activation, name=f"{name}_act{index + 1}")(x)
    x = layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)  # odd sides keep their edge
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def _classifier_head(x, dense_units: int, activation: str, dropout: float, num_classes: int):
    from keras import layers

    if dense_units > 0:
        x = layers.Dense(dense_units, use_bias=False, name="fc")(x)
        x = layers.BatchNormalization(name="fc_bn")(x)
        x = layers.Activation(activation, name="fc_act")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="fc_drop")(x)
    return layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)


def _conv_net(
    name: str,
    pooling: str,
    filters,
    convs_per_block,
    kernel_size,
    activation,
    block_dropout,
    dense_units,
    dense_dropout,
    input_crop,
    num_classes,
) -> keras.Model:
    """Blocks of conv + batch norm + activation (`convs_per_block` each), pooling and dropout, then the feature maps
    averaged ("average") or flattened ("flatten") into the dense head."""
    import keras
    from keras import layers

    inputs, x = _inputs(input_crop)
    for index, width in enumerate(filters):
        x = _conv_block(
            x, int(width), int(convs_per_block), int(kernel_size), activation, block_dropout, f"block{index + 1}"
        )
    x = layers.GlobalAveragePooling2D(name="gap")(x) if pooling == "average" else layers.Flatten(name="flatten")(x)
    head = _classifier_head(x, int(dense_units), activation, dense_dropout, num_classes)
    return keras.Model(inputs, head, name=name)


@register(
    "compact_cnn",
    filters=(32, 64, 128, 256),
    convs_per_block=1,
    kernel_size=3,
    activation="relu",
    block_dropout=0.1,
    dense_units=128,
    dense_dropout=0.3,
    input_crop=0,
)
def compact_cnn(**hyperparameters) -> keras.Model:
    """A small, fast CNN (one conv per block, global average pooling): for quick runs and tuning."""
    return _conv_net("compact_cnn", "average", **hyperparameters)


@register(
    "vgg_fer",
    filters=(32, 64, 128, 256),
    convs_per_block=2,
    kernel_size=3,
    activation="relu",
    block_dropout=0.2,
    dense_units=256,
    dense_dropout=0.5,
    input_crop=0,
)
def vgg_fer(**hyperparameters) -> keras.Model:
    """A VGG-style network (two 3x3 convs per block, the last feature maps flattened into a dense head)."""
    return _conv_net("vgg_fer", "flatten", **hyperparameters)
