"""Checkpoint averaging, or stochastic weight averaging (SWA; Izmailov et al., 2018), of a run's epoch checkpoints.

A run with `keep_epoch_checkpoints` saves `epochs/epoch-NNN.weights.h5` at the end of each epoch (weights only:
the optimizer's state, twice the model's size again, is not needed to average). At a constant (or cyclic) learning
rate, those weights wander around a wide, flat region of the loss; their mean lies nearer its
centre and usually generalises better than any one of them, at no cost at inference. Batch-norm moving statistics
are not averaged (the mean of the statistics is not the statistics of the mean network): one pass over the
training split, augmented as in training, recomputes them (as `torch.optim.swa_utils.update_bn` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.data.datasets import load_dataset
from ferlib.errors import FerError
from ferlib.evaluation.lineage import checkpoint_lineage
from ferlib.evaluation.metrics import evaluate_modes, summary_metrics
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import model_metadata, save_model
from ferlib.nets.precision import FLOAT32, with_precision
from ferlib.training import run_launch
from ferlib.training.trainer import class_subset, make_training_pipeline, select_training_data


def average_weights(weight_lists: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several models' floating-point weights (same architecture), summed in float64;
    any integer array (a counter, not a weight) is taken from the last model."""
    total: list[np.ndarray] | None = None
    count = 0
    for weights in weight_lists:
        arrays = [np.asarray(array) for array in weights]
        if total is None:
            total = [array.astype(np.float64) for array in arrays]
        elif [array.shape for array in arrays] != [array.shape for array in total]:
            raise FerError(
                f"Expected weights shaped like the first model's ({len(total)} arrays); received a model with "
                f"{len(arrays)} arrays of other shapes"
            )
        else:
            for running, array in zip(total, arrays, strict=True):
                running += array
        last = arrays
        count += 1
    if total is None:
        raise FerError("Expected the weights of at least one model; received none")
    return [
        (running / count).astype(array.dtype) if np.issubdtype(array.dtype, np.floating) else array
        for running, array in zip(total, last, strict=True)
    ]


def batch_norm_layers(layer: Any) -> list[Any]:
    """Every BatchNormalization layer inside `layer`, nested models included."""
    import keras

    found = [layer] if isinstance(layer, keras.layers.BatchNormalization) else []
    for inner in getattr(layer, "layers", []):
        found += batch_norm_layers(inner)
    return found


def recalibrate_batch_norm(model: Any, batches: Iterable[Any]) -> int:
    """Replace every batch-norm layer's moving mean and variance by the average of the batch statistics over
    `batches` (eager forward passes in training mode: each call reads the momentum set for it); returns the
    number of batches. A model without batch norm is left as it is; a frozen batch-norm layer is refused, as
    training mode would not update it."""
    layers = batch_norm_layers(model)
    frozen = [layer.name for layer in layers if not layer.trainable]
    if frozen:
        raise FerError(f"Expected trainable batch-norm layers to recompute; received frozen ones: {frozen}")
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
        raise FerError("Expected at least one batch of training faces to recompute batch norm; received none")
    return count


def average_run(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    from_epoch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Average a run's kept epoch checkpoints from `from_epoch` (default: the first kept) to its last completed
    epoch, recompute batch norm, evaluate on the validation split beside the run's best checkpoint, and save the
    result as `average.keras` (+ sidecar) in the run folder; returns the sidecar's content.

    The average always ends at the run's last epoch, so the card's training record (every epoch of the run) is
    what the weights came from. `python -m ferlib ship --checkpoint average.keras` ships it.
    """
    import keras

    say = progress or (lambda message: None)
    run_dir = Path(run_dir)
    config = run_launch.load_config(run_dir)
    if folder.is_active(run_dir):
        raise FerError(f"Expected a run that is not training; received {run_dir.name}, which is training: stop it")
    completed = int(runs.saved_state(run_dir).get("epochs_completed") or 0)
    kept = {epoch: path for epoch, path in runs.epoch_checkpoints(run_dir).items() if epoch <= completed}
    chosen = {epoch: path for epoch, path in kept.items() if from_epoch is None or epoch >= from_epoch}
    if len(chosen) < 2 or completed not in chosen:
        raise FerError(
            f"Expected at least two epoch checkpoints, the last of them epoch {completed} (the run's last), in "
            f"{str(run_dir / runs.EPOCHS_DIR)!r} (train with keep_epoch_checkpoints); received "
            + (runs.epoch_span(sorted(chosen)) if chosen else "none")
            + (f" from epoch {from_epoch} on" if from_epoch is not None else "")
        )
    source = str(data or config.data)
    if not source or not Path(source).expanduser().exists():
        raise FerError(f"Expected an existing dataset (--data, or the run config's 'data'); received {source!r}")
    dataset = load_dataset(source)  # first: a wrong dataset fails before minutes of work
    validation_images, validation_labels = class_subset(dataset, "validation", config)
    if len(validation_labels) == 0:
        raise FerError(f"Expected a validation split in {source!r}; received none")

    try:
        model = keras.saving.load_model(run_dir / runs.LAST_MODEL, compile=False)  # the architecture to fill
        model = with_precision(model, FLOAT32)  # last.keras computes in the run's precision; the average in float32
    except Exception as error:  # Keras raises assorted types for a truncated or foreign file
        raise FerError(f"Expected a loadable {runs.LAST_MODEL} in {str(run_dir)!r}; received {error}") from None

    def loaded_weights():
        for epoch, path in chosen.items():
            say(f"reading epoch {epoch} ({path.name})")
            try:
                model.load_weights(path)
            except Exception as error:  # Keras raises assorted types for a truncated or foreign file
                raise FerError(f"Expected a loadable epoch checkpoint; received {str(path)!r} ({error})") from None
            yield model.get_weights()

    model.set_weights(average_weights(loaded_weights()))
    images, labels = select_training_data(dataset, config)
    say(f"recomputing batch-norm statistics over {len(labels)} augmented training faces")
    batches = (faces for faces, _ in make_training_pipeline(images, labels, config, seed=config.seed))
    recalibrate_batch_norm(model, batches)
    say(f"evaluating the average and the best checkpoint on {len(validation_labels)} validation faces")

    def evaluations_of(candidate: Any) -> dict[str, dict[str, Any]]:
        return evaluate_modes(candidate, validation_images, validation_labels, "flip", config.class_set.names)

    averaged = evaluations_of(model)
    state = runs.saved_state(run_dir)
    best = {"epoch": state.get("best_epoch")}
    if (run_dir / runs.BEST_MODEL).exists():
        best.update(summary_metrics(evaluations_of(keras.saving.load_model(run_dir / runs.BEST_MODEL, compile=False))))
    epochs = sorted(chosen)
    accuracy = averaged["none"]["accuracy"]
    metadata = model_metadata(
        config.to_dict(),
        {"val_accuracy": accuracy, **summary_metrics(averaged), "n": len(validation_labels)},
        averaged_epochs=epochs,
        averaged_run=run_dir.name,
        best_checkpoint=best,
    )
    lineage = checkpoint_lineage(run_dir, config.to_dict(), accuracy)
    stage = lineage["stages"][-1]  # a model warm-started from this file inherits the note, as from a shipped card
    stage["notes"] = [*stage.get("notes", []), averaging_note(metadata)]
    metadata.update(lineage)
    save_model(model, run_dir / runs.AVERAGE_MODEL, metadata)
    return metadata


def check_current(run_dir: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Refuse an average.keras made before the run trained on: its weights would not be what the card records."""
    completed = runs.saved_state(run_dir).get("epochs_completed")
    epochs = metadata.get("averaged_epochs") or []
    if epochs and epochs[-1] != completed:
        raise FerError(
            f"Expected an average.keras that ends at the run's last epoch, {completed}; received one of "
            f"{runs.epoch_span(epochs)}: run `python -m ferlib average` again"
        )


def averaging_note(metadata: dict[str, Any]) -> str | None:
    """The model card's sentence for averaged weights, from the checkpoint's sidecar (None for a plain one).

    Epochs are numbered within their run, which the note names (a card numbers epochs across stages)."""
    epochs = metadata.get("averaged_epochs")
    if not isinstance(epochs, list) or not epochs:
        return None
    run = f" of run {metadata['averaged_run']}" if metadata.get("averaged_run") else ""
    return (
        f"The weights are the average of the checkpoints of {runs.epoch_span(epochs)}{run} ({len(epochs)} checkpoints; "
        "stochastic weight averaging), with batch-norm statistics recomputed over the augmented training split."
    )
