"""Saving and loading models together with their sidecar JSON (classes, input size, config, metrics)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_save, atomic_write_json
from ferlib.classes import EMOTIONS, ClassSet
from ferlib.data.preprocess import IMAGE_SIZE
from ferlib.errors import FerError
from ferlib.nets.architectures import ARCHITECTURE_DEFAULTS, shapes_layers
from ferlib.nets.ensemble import ENSEMBLE_ARCHITECTURE
from ferlib.nets.precision import FLOAT32, with_precision

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"  # the repository's models/ folder
DEFAULT_MODEL_NAME = "fer_vgg.keras"


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """`model.keras` -> `model.json`."""
    return Path(model_path).with_suffix(".json")


def models_dir() -> Path:
    """Where shipped models are listed from: $FERLIB_MODELS_DIR when set, else the repository's models/."""
    configured = os.environ.get("FERLIB_MODELS_DIR")
    return Path(configured).expanduser() if configured else MODELS_DIR


def default_model_path() -> Path:
    """The shipped model, or $FERLIB_MODEL when set."""
    configured = os.environ.get("FERLIB_MODEL")
    return Path(configured).expanduser() if configured else models_dir() / DEFAULT_MODEL_NAME


def model_metadata(
    config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """The sidecar's content: what a consumer needs to feed the model and read its output (its classes come from
    the config's class set)."""
    classes = ClassSet.parse((config or {}).get("classes"))
    return {
        "class_names": list(classes.names),
        "classes": classes.to_config(),
        "input_size": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "input_format": "grayscale uint8 pixels 0-255 as float32; the model rescales internally",
        "config": config or {},
        "metrics": metrics or {},
        **extra,
    }


def save_model(model: Any, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write `model` (.keras, atomically) and its sidecar JSON."""
    target = Path(path)
    if target.suffix != ".keras":
        raise FerError(f"Expected a model path ending in .keras; received {str(path)!r}")
    atomic_save(target, model.save)
    atomic_write_json(sidecar_path(target), metadata)
    return target


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a model, or an empty dict when it has none; a damaged one is refused, not taken as none."""
    sidecar = sidecar_path(path)
    try:
        with open(sidecar, encoding="utf-8") as stream:
            metadata = json.load(stream)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FerError(f"Expected a readable JSON sidecar {str(sidecar)!r}; received {error}") from None
    if not isinstance(metadata, dict):
        raise FerError(f"Expected a JSON object in the sidecar {str(sidecar)!r}; received a {type(metadata).__name__}")
    return metadata


def keras_source(path: str | os.PathLike) -> Path:
    """The .keras model a TFLite export was made from: `m.tflite` and `m.int8.tflite` -> `m.keras`."""
    name = Path(path).name.removesuffix(".tflite").removesuffix(".int8")
    return Path(path).with_name(f"{name}.keras")


def class_set_of(metadata: dict[str, Any], path: str | os.PathLike) -> ClassSet:
    """The class set a model's card records (FER-2013's seven for a card without one), checked against its names."""
    stored = metadata.get("classes", metadata.get("class_names"))
    try:
        classes = ClassSet.parse(stored)
    except FerError as error:
        raise FerError(f"Expected a model card naming its classes; received {str(path)!r} ({error})") from None
    names = metadata.get("class_names", list(classes.names))
    if list(names) != list(classes.names):
        raise FerError(f"Expected a model over classes {list(classes.names)}; received {str(path)!r}, one over {names}")
    return classes


def check_class_names(metadata: dict[str, Any], path: str | os.PathLike) -> tuple[str, ...]:
    """The model's class names, in output order; a card whose classes do not hold together is refused."""
    return class_set_of(metadata, path).names


def check_teacher(path: str | os.PathLike, classes: ClassSet) -> Path:
    """Refuse, before a run starts, a teacher that is not a .keras model knowing every class the run learns."""
    target = Path(path).expanduser()
    if target.suffix != ".keras" or not target.is_file():
        raise FerError(f"Expected each teacher to be an existing .keras file; received {str(path)!r}")
    class_set_of(read_metadata(target), target).columns_for(classes)
    return target.resolve()


def check_initial_model(path: str | os.PathLike, architecture: str, hyperparameters: dict[str, Any]) -> Path:
    """Refuse, before a run starts, a warm-start model whose layers the configured architecture cannot take.

    Compares the sidecar's architecture and layer-shaping settings (dropout rates may differ); a model without a
    sidecar is checked weight by weight when training starts.
    """

    target = Path(path).expanduser()
    if target.suffix != ".keras" or not target.is_file():
        raise FerError(f"Expected initial_model to be an existing .keras file; received {str(path)!r}")
    target = target.resolve()
    stored = read_metadata(target).get("config")
    if not isinstance(stored, dict) or not stored.get("architecture"):
        return target
    if stored["architecture"] == ENSEMBLE_ARCHITECTURE:
        raise FerError(
            f"Expected initial_model to be one {architecture} network; received {target.name}, an ensemble of several "
            "(start from one of its members instead)"
        )

    def shaping(name: str, values: dict[str, Any]) -> dict[str, Any]:
        merged = {**ARCHITECTURE_DEFAULTS.get(name, {}), **values}
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in merged.items()
            if shapes_layers(key)
        }

    expected = (architecture, shaping(architecture, hyperparameters))
    stored_hyperparameters = stored.get("hyperparameters")
    stored_hyperparameters = stored_hyperparameters if isinstance(stored_hyperparameters, dict) else {}
    received = (stored["architecture"], shaping(stored["architecture"], stored_hyperparameters))
    if expected != received:
        raise FerError(
            f"Expected initial_model to be a {architecture} with {expected[1]}; received {target.name}, "
            f"a {received[0]} with {received[1]}"
        )
    return target


def load_model(path: str | os.PathLike | None = None) -> tuple[Any, dict[str, Any]]:
    """Load a .keras model and its sidecar, checked once here for every path that uses it: its classes, its input
    (48x48 gray faces) and its output (one probability per class). A wrong path or file names what was expected."""
    import zipfile

    import keras

    target = Path(path) if path is not None else default_model_path()
    if not target.exists():
        hint = " (no model is shipped yet: train one with `python -m ferlib train`)" if path is None else ""
        raise FerError(f"Expected a trained .keras model file; received {str(target)!r}, which does not exist{hint}")
    if target.suffix != ".keras":
        raise FerError(f"Expected a model file ending in .keras; received {str(target)!r}")
    if not zipfile.is_zipfile(target):  # Keras would say "File not found" of a truncated file that exists
        raise FerError(
            f"Expected a Keras model file (a zip archive); received {str(target)!r}, which is truncated or not one"
        )
    metadata = read_metadata(target)
    class_names = check_class_names(metadata, target)
    try:
        model = keras.saving.load_model(target, compile=False)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FerError(f"Expected a readable Keras model; received {str(target)!r} ({reason})") from None
    check_model_shapes(model.input_shape, model.output_shape, target, class_names)
    try:
        model = with_precision(model, FLOAT32)  # a training checkpoint may compute in mixed bfloat16
    except ValueError as error:
        raise FerError(
            f"Expected a model computing in float32, or a functional one; received {str(target)!r} ({error})"
        ) from None
    return model, metadata


def check_model_shapes(
    input_shape: Any, output_shape: Any, path: str | os.PathLike, class_names: tuple[str, ...] = EMOTIONS
) -> None:
    """Refuse a model that does not take (N, 48, 48, 1) faces or does not give one probability per class."""
    expected_input = (IMAGE_SIZE, IMAGE_SIZE, 1)
    received_input = tuple(input_shape[1:]) if isinstance(input_shape, (tuple, list)) else None
    if received_input != expected_input:
        raise FerError(
            f"Expected a model taking {IMAGE_SIZE}x{IMAGE_SIZE} gray faces, input (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 1); "
            f"received {str(path)!r}, whose input is {input_shape}"
        )
    outputs = int(output_shape[-1]) if isinstance(output_shape, (tuple, list)) and output_shape[-1] else None
    if outputs != len(class_names):
        raise FerError(
            f"Expected a model with {len(class_names)} class outputs ({', '.join(class_names)}); received "
            f"{str(path)!r}, with {outputs}"
        )
