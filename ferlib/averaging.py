"""Checkpoint averaging, or stochastic weight averaging (SWA; Izmailov et al., 2018), of a run's epoch checkpoints.

A run with `keep_epoch_checkpoints` saves `epochs/epoch-NNN.keras` at the end of each epoch. At a constant (or
cyclic) learning rate, those weights wander around a wide, flat region of the loss; their mean lies nearer its
centre and usually generalises better than any one of them, at no cost at inference. Batch-norm moving statistics
are not averaged (the mean of the statistics is not the statistics of the mean network): one pass over the
training split, augmented as in training, recomputes them (as `torch.optim.swa_utils.update_bn` does).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ferlib import runs

EPOCHS_DIR = "epochs"
AVERAGE_MODEL = "average.keras"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.keras$")


def epoch_checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """Where a run keeps the checkpoint of one completed epoch (counted from 1)."""
    return Path(run_dir) / EPOCHS_DIR / f"epoch-{epoch:03d}.keras"


def epoch_checkpoints(run_dir: str | os.PathLike) -> dict[int, Path]:
    """The run's kept epoch checkpoints by epoch number, in order."""
    folder = Path(run_dir) / EPOCHS_DIR
    found = {}
    for path in folder.glob("epoch-*.keras") if folder.is_dir() else []:
        match = _EPOCH_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def average_weights(weight_lists: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several models' weight lists (same architecture), summed in float64."""
    total: list[np.ndarray] | None = None
    count = 0
    for weights in weight_lists:
        if total is None:
            total = [np.asarray(array, dtype=np.float64).copy() for array in weights]
            dtypes = [np.asarray(array).dtype for array in weights]
        else:
            shapes = [array.shape for array in total]
            if [np.shape(array) for array in weights] != shapes:
                raise ValueError(
                    f"Expected weights shaped like the first model's ({len(shapes)} arrays); received a model "
                    f"with {len(weights)} arrays of other shapes"
                )
            for running, array in zip(total, weights, strict=True):
                running += array
        count += 1
    if total is None:
        raise ValueError("Expected the weights of at least one model; received none")
    return [(running / count).astype(dtype) for running, dtype in zip(total, dtypes, strict=True)]


def batch_norm_layers(layer: Any) -> list[Any]:
    """Every BatchNormalization layer inside `layer`, nested models included."""
    import keras

    found = [layer] if isinstance(layer, keras.layers.BatchNormalization) else []
    for inner in getattr(layer, "layers", []):
        found += batch_norm_layers(inner)
    return found


def recalibrate_batch_norm(model: Any, batches: Iterable[Any]) -> int:
    """Replace every batch-norm layer's moving mean and variance by the average of the batch statistics over
    `batches` (forward passes in training mode); returns the number of batches. A model without batch norm is
    left as it is."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
    count = 0
    try:
        for batch in batches:
            for layer in layers:
                layer.momentum = count / (count + 1)  # the running value becomes the mean over batches so far
            model(batch, training=True)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    if count == 0:
        raise ValueError("Expected at least one batch of training faces to recompute batch norm; received none")
    return count


def parse_epoch_range(text: str | None) -> tuple[int | None, int | None]:
    """'5-26' -> (5, 26), '5-' -> (5, None), '' or None -> (None, None)."""
    if not text:
        return None, None
    match = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", text)
    if not match or not (match.group(1) or match.group(2)):
        raise ValueError(f"Expected an epoch range such as 5-26, 5- or -20; received {text!r}")
    first, last = (int(group) if group else None for group in match.groups())
    if first is not None and last is not None and first > last:
        raise ValueError(f"Expected an epoch range whose first epoch is not after its last; received {text!r}")
    return first, last


def average_run(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    first_epoch: int | None = None,
    last_epoch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Average a run's epoch checkpoints `first_epoch`..`last_epoch` (default: all kept), recompute batch norm,
    evaluate on the validation split and save the result as `average.keras` (+ sidecar) in the run folder.

    Returns the sidecar's content: the averaged epochs, and validation metrics with and without flip TTA beside
    those of the run's best single checkpoint. `python -m ferlib ship --checkpoint average.keras` ships it.
    """
    import keras

    from ferlib.datasets import load_dataset
    from ferlib.evaluation import predict_views, score_views, summary_metrics
    from ferlib.lineage import checkpoint_lineage
    from ferlib.modelio import model_metadata, save_model
    from ferlib.training import make_training_pipeline, select_training_data

    say = progress or (lambda message: None)
    run_dir = Path(run_dir)
    config = runs.load_config(run_dir)
    kept = epoch_checkpoints(run_dir)
    chosen = {
        epoch: path
        for epoch, path in kept.items()
        if (first_epoch is None or epoch >= first_epoch) and (last_epoch is None or epoch <= last_epoch)
    }
    if len(chosen) < 2:
        raise ValueError(
            f"Expected at least two epoch checkpoints to average in {str(run_dir / EPOCHS_DIR)!r} (train with "
            f"keep_epoch_checkpoints); received {len(chosen)} in the range asked for, of {len(kept)} kept"
        )
    if runs.is_active(run_dir):
        raise ValueError(f"Expected a run that is not training; received {run_dir.name}, which is: stop it first")

    def loaded_weights():
        for epoch, path in chosen.items():
            say(f"reading epoch {epoch} ({path.name})")
            try:
                yield keras.saving.load_model(path, compile=False).get_weights()
            except Exception as error:  # Keras raises assorted types for a truncated or foreign file
                raise ValueError(f"Expected a loadable epoch checkpoint; received {str(path)!r} ({error})") from None

    model = keras.saving.load_model(next(iter(chosen.values())), compile=False)
    model.set_weights(average_weights(loaded_weights()))
    dataset = load_dataset(data or config.data)
    images, labels = select_training_data(dataset, config)
    say(f"recomputing batch-norm statistics over {len(labels)} training faces")
    batches = (faces for faces, _ in make_training_pipeline(images, labels, config, seed=config.seed))
    recalibrate_batch_norm(model, batches)
    validation_images, validation_labels = dataset.subset("validation")
    if len(validation_labels) == 0:
        raise ValueError(f"Expected a validation split in {str(data or config.data)!r}; received none")
    say(f"evaluating on {len(validation_labels)} validation faces")
    views = predict_views(model, validation_images, tta="flip")
    evaluations = {mode: score_views(views, validation_labels, mode) for mode in ("none", "flip")}
    accuracy = evaluations["none"]["accuracy"]
    epochs = sorted(chosen)
    state = runs.saved_state(run_dir)
    metadata = model_metadata(
        config.to_dict(),
        {"val_accuracy": accuracy, **summary_metrics(evaluations), "n": len(validation_labels)},
        averaged_epochs=epochs,
        best_checkpoint={"val_accuracy": state.get("best_val_accuracy"), "epoch": state.get("best_epoch")},
    )
    lineage = checkpoint_lineage(run_dir, config.to_dict(), accuracy)
    stage = lineage["stages"][-1]  # a model warm-started from this file inherits the note, as from a shipped card
    stage["notes"] = [*stage.get("notes", []), averaging_note(metadata)]
    metadata.update(lineage)
    save_model(model, run_dir / AVERAGE_MODEL, metadata)
    return metadata


def averaging_note(metadata: dict[str, Any]) -> str | None:
    """The model card's sentence for averaged weights, from the checkpoint's sidecar (None for a plain one)."""
    epochs = metadata.get("averaged_epochs")
    if not isinstance(epochs, list) or not epochs:
        return None
    consecutive = epochs == list(range(epochs[0], epochs[-1] + 1))
    span = f"epochs {epochs[0]}-{epochs[-1]}" if consecutive else "epochs " + ", ".join(map(str, epochs))
    return (
        f"The weights are the average of the checkpoints of {span} ({len(epochs)} checkpoints; stochastic weight "
        "averaging), with batch-norm statistics recomputed over the augmented training split."
    )
