"""Training runs: fit a model from a TrainConfig, writing everything to its run folder.

`run_training` is what the separate training process executes (`python -m ferlib train`); the
dashboard only starts that process and reads the folder.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.atomic import atomic_write_json, read_json, read_json_object
from ferlib.classes import NUM_CLASSES, ClassSet
from ferlib.data.augment import build_augmenter
from ferlib.data.datasets import VALIDATION_FRACTION, Dataset, ProgressPrinter, load_dataset, stratified_holdout
from ferlib.errors import FerError
from ferlib.evaluation.lineage import record_initial_lineage
from ferlib.evaluation.metrics import evaluate_modes, summary_metrics
from ferlib.jobs import folder, runs
from ferlib.jsonutil import as_int
from ferlib.nets.architectures import build_model
from ferlib.nets.modelio import class_set_of, model_metadata, save_model, sidecar_path
from ferlib.nets.precision import FLOAT32, precision_for_this_cpu, precision_of, with_precision
from ferlib.training import distributed, run_launch
from ferlib.training.config import RECIPE_REVISION, TrainConfig
from ferlib.training.distillation import mixed_targets, targets_for_run
from ferlib.training.distributed import Cluster


def steps_per_epoch(train_images: int, config: TrainConfig) -> int:
    return int(np.ceil(train_images / config.batch_size))


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The optimizer's rate: a WarmupSchedule of the global step (cosine, constant), or for plateau runs a plain
    rate that PlateauWarmup and ReduceLROnPlateau set by epoch."""
    from ferlib.training.schedule import WarmupSchedule  # keras

    if config.schedule == "plateau":
        return config.learning_rate
    return WarmupSchedule(
        config.learning_rate,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        total_steps=config.epochs * steps_per_epoch,
        shape=config.schedule,
    )


def build_optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    rate = learning_rate(config, steps_per_epoch)
    average = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            rate,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay or None,
            **average,
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay or 0.004, **average)
    return keras.optimizers.Adam(rate, **average)


def in_precision(model, config: TrainConfig):
    """A compiled training model computing in the config's precision, with the same weights and optimizer state
    (step, rate schedule, momentum slots, weight average): `model` itself when it already computes so."""
    import keras

    if precision_of(model) == config.precision:
        return model
    copy = with_precision(model, config.precision)
    optimizer = compile_with_optimizer(copy, config, keras.saving.serialize_keras_object(model.optimizer))
    for new, old in zip(optimizer.variables, model.optimizer.variables, strict=True):
        new.assign(old)
    return copy


def compile_with_optimizer(model, config: TrainConfig, saved_optimizer: dict):
    """Compile `model` with a saved optimizer (its serialised config, rate schedule included), built on the model's
    variables so that its step, slots and weight average can be assigned; returns that optimizer."""
    import keras

    optimizer = keras.saving.deserialize_keras_object(saved_optimizer)
    compile_model(model, config, optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def compile_model(model, config: TrainConfig, steps_per_epoch: int = 0, optimizer=None) -> None:
    """Compile for training with the config's loss and metrics, and its optimizer (or `optimizer`, e.g. a
    restored one)."""
    import keras

    model.compile(
        optimizer=optimizer or build_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=2, name="top2"),
        ],
    )


def class_subset(dataset: Dataset, split: str, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """A split's faces of the config's classes, labelled by their class there (merged emotions share one)."""
    images, labels = dataset.subset(split)
    keep, mapped = config.class_set.apply(labels)
    return images[keep], mapped


def select_training_data(dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training split's faces of the config's classes, reduced to a stratified `train_fraction` when asked."""
    images, labels = class_subset(dataset, "train", config)
    if len(labels) == 0:
        raise FerError(f"Expected training images in {dataset.report.source!r}; received an empty train split")
    if config.train_fraction < 1.0:
        keep = stratified_holdout(labels, config.train_fraction, config.seed)
        images, labels = images[keep], labels[keep]
    return images, labels


def session_seed(config: TrainConfig, initial_epoch: int = 0, stopped_at_step: int = 0) -> int:
    """The seed for a training session that starts at `initial_epoch`.

    A fresh run uses the config's seed. A resumed run must not reuse it: the shuffles, augmentations and
    dropout masks would replay those of the run's first epochs, which the network has already seen, so
    each resume point gets its own (still reproducible) seed. A run stopped inside an epoch kept that
    epoch's updates and restarts it: `stopped_at_step` (the optimizer step it stopped at) keeps the restarted
    epoch from replaying the batches it already trained on.
    """
    if initial_epoch <= 0 and stopped_at_step <= 0:
        return config.seed
    entropy = [config.seed, initial_epoch] + ([stopped_at_step] if stopped_at_step > 0 else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))


def make_training_pipeline(
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    seed: int | None = None,
    teacher_targets: np.ndarray | None = None,
):
    """A shuffled, batched, augmented tf.data pipeline of (float32 0-255 faces, targets[, weights]): one-hot labels,
    mixed with `teacher_targets` by the config's teacher_weight when given (ferlib.training.distillation), and with
    `class_weighting` each face's weight by its label's class (not by the mixed target's largest class).

    `seed` (default: the config's) fixes the shuffle order and the augmentation draws.
    """
    import tensorflow as tf

    seed = config.seed if seed is None else seed
    num_classes = len(config.class_set.names)
    columns = [images[..., None], mixed_targets(labels, num_classes, teacher_targets, config.teacher_weight)]
    if config.class_weighting:
        weights = class_weights(labels, num_classes)
        columns.append(np.array([weights[int(label)] for label in labels], dtype=np.float32))
    pipeline = tf.data.Dataset.from_tensor_slices(tuple(columns))
    pipeline = pipeline.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(config.batch_size)
    pipeline = pipeline.map(lambda x, *rest: (tf.cast(x, tf.float32), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    if config.augmentation.is_active():
        augmenter = build_augmenter(config.augmentation, seed=seed)
        augment = lambda x, *rest: (augmenter(x, training=True), *rest)  # noqa: E731
        pipeline = pipeline.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def validation_arrays(
    images: np.ndarray, labels: np.ndarray, num_classes: int = NUM_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Validation faces as Keras takes them in `fit`: (float32 0-255 (N, 48, 48, 1), one-hot labels)."""
    return images[..., None].astype(np.float32), np.eye(num_classes, dtype=np.float32)[labels]


def class_weights(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> dict[int, float]:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return {index: float(weight) for index, weight in enumerate(weights)}


def run_training(
    run_dir: str | Path,
    data: str | Path | None = None,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    verbose: int = 2,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir` to completion, a stop request, or failure; returns the status.

    With a `cluster` (ferlib.training.distributed) this process is its chief: the workers train with it.
    """
    run_dir = Path(run_dir)
    config = run_launch.load_config(run_dir)
    if folder.read_status(run_dir).get("state") == "running":
        raise FerError(f"Expected a run that is not running; received {run_dir.name}, whose process is still training")
    stop = folder.install_stop_signal(run_dir)
    if stop.should_stop():  # Stop was pressed while the process started up; launchers drop stale requests
        folder.clear_stop_request(run_dir)
        folder.write_status(run_dir, "stopped", reason="stopped before training started")
        return folder.read_status(run_dir)
    folder.write_status(run_dir, "running", resumed=resume, phase="starting")
    try:
        result = _fit(run_dir, config, data, resume, dataset, stop, verbose, cluster)
    except KeyboardInterrupt:
        folder.write_status(run_dir, "stopped", reason="interrupted from the keyboard")
        raise
    except Exception as error:
        if not isinstance(error, (FerError, OSError)):  # a message for the user, not a bug to trace
            traceback.print_exc(file=sys.stderr)
        try:
            folder.write_status(run_dir, "failed", error=describe_failure(error))
        except OSError as status_error:  # the folder itself is unwritable: the log keeps the first failure
            print(
                f"error: {describe_failure(error)} (status.json could not record it: {status_error})", file=sys.stderr
            )
        raise
    folder.clear_stop_request(run_dir)
    return result


def run_worker(run_dir: str | Path, cluster: Cluster, data: str | Path | None = None, resume: bool = False) -> None:
    """Train as one of a cluster's workers (not its chief): the same steps on this worker's share of each batch,
    writing nothing to the run folder, until the workers agree to stop or the run ends."""
    run_dir = Path(run_dir)
    stop = folder.install_stop_signal(run_dir)  # its votes join the chief's when the workers agree on a stop
    _fit(run_dir, run_launch.load_config(run_dir), data, resume, None, stop, 0, cluster)


def describe_failure(error: BaseException) -> str:
    """What went wrong, in one line: for a file that could not be read or written, its path and the reason."""
    if isinstance(error, OSError) and error.filename:
        return f"{type(error).__name__}: [Errno {error.errno}] {error.strerror}: {error.filename}"
    return f"{type(error).__name__}: {error}"


def load_initial_weights(model, path: str | Path, classes: ClassSet | None = None) -> None:
    """Start `model` from the weights of a saved model of the same architecture and layer sizes (a warm restart).

    Only weights are taken: the run's own optimizer, schedule and regularisation apply from epoch 1, which is how a
    longer schedule continues from an earlier run whose folder is gone. A model of other `classes` than the saved
    one's (say happy and sad from a seven-class model) takes every layer but the last, whose columns are those of
    its classes (a merged class averages its emotions' columns), and then learns its classes in a short run.
    """
    import keras

    path = Path(path).expanduser()
    if path.suffix != ".keras" or not path.is_file():
        raise FerError(f"Expected initial_model to be an existing .keras file; received {str(path)!r}")
    source = keras.saving.load_model(path, compile=False)
    weights = source.get_weights()
    expected = [tuple(weight.shape) for weight in model.get_weights()]
    received = [tuple(weight.shape) for weight in weights]
    source_classes = class_set_of(read_json_object(sidecar_path(path)), path)
    if classes is not None and classes != source_classes and expected[:-2] == received[:-2]:
        weights[-2:] = _head_for(weights[-2], weights[-1], source_classes, classes)
        received = [tuple(weight.shape) for weight in weights]
    if expected != received:
        raise FerError(
            f"Expected initial_model weights shaped like the configured {model.name!r} "
            f"({len(expected)} arrays, {model.count_params():,} parameters); "
            f"received {str(path)!r} with {len(received)} arrays, {source.count_params():,} parameters"
        )
    model.set_weights(weights)


def _head_for(kernel: np.ndarray, bias: np.ndarray, source: ClassSet, target: ClassSet) -> list[np.ndarray]:
    """The last layer's kernel and bias for `target`'s classes from a layer over `source`'s."""
    new_kernel, new_bias = [], []
    for picked in source.columns_for(target):  # FerError when the starting model lacks an emotion of target's
        new_kernel.append(kernel[:, picked].mean(axis=1))
        new_bias.append(float(np.log(np.sum(np.exp(bias[picked])))))  # the group's probability, as a logit
    return [np.stack(new_kernel, axis=1).astype(kernel.dtype), np.array(new_bias, dtype=bias.dtype)]


def _saved_counters(run_dir: Path) -> dict[str, dict]:
    """The plateau and early-stopping counters saved beside last.keras ({} for runs saved before they were)."""
    counters = read_json_object(sidecar_path(run_dir / runs.LAST_MODEL)).get("patience_counters")
    return counters if isinstance(counters, dict) else {}


def _stopped_at_step(run_dir: Path) -> int:
    """The optimizer step a run stopped at inside an epoch, from last.keras's sidecar (0 after a whole epoch)."""
    return as_int(read_json_object(sidecar_path(run_dir / runs.LAST_MODEL)).get("stopped_at_step"))


def _fit(
    run_dir: Path, config: TrainConfig, data, resume: bool, dataset: Dataset | None, stop, verbose: int, cluster=None
) -> dict:
    strategy = distributed.strategy_for(cluster) if cluster else None  # before anything else TensorFlow does
    chief = cluster is None or cluster.is_chief
    import keras

    import ferlib.training.schedule  # noqa: F401  keras; registers the rate schedule last.keras's optimizer names
    from ferlib.training.callbacks import (  # keras
        AtomicCheckpoint,
        EmaValidation,
        ProgressWriter,
        StopOnRequest,
        learning_rate_callbacks,
        patience_callbacks,
    )

    state = runs.saved_state(run_dir)
    resuming = resume and (run_dir / runs.LAST_MODEL).exists()
    initial_epoch = int(state.get("epochs_completed", 0)) if resuming else 0
    seed = session_seed(config, initial_epoch, _stopped_at_step(run_dir) if resuming else 0)
    keras.utils.set_random_seed(seed)
    source = data or config.data
    if dataset is None:
        if not source:
            raise FerError("Expected a dataset path (--data PATH or the config's 'data'); received none")
        print(f"loading data from {source}", file=sys.stderr, flush=True)
        dataset = load_dataset(source, progress=ProgressPrinter())
    train_images, train_labels = select_training_data(dataset, config)
    validation_images, validation_labels = class_subset(dataset, "validation", config)
    classes = config.class_set.names
    if len(validation_labels) == 0:
        carved = (
            f" (the source has none, so it is {VALIDATION_FRACTION:.0%} of each class's training images, and a class "
            "needs 2 or more to give one)"
            if dataset.report.validation_from_train
            else ""
        )
        raise FerError(
            f"Expected validation images in {dataset.report.source!r}; received an empty validation split{carved}"
        )

    steps = steps_per_epoch(len(train_labels), config)
    if precision_for_this_cpu(config.precision) != config.precision:
        print(
            "note: this CPU has no native bfloat16 (AVX-512 BF16 or AMX): mixed_bfloat16 trains many times slower "
            "here than float32 (about 11x on an AVX2 CPU); stopped and resumed without --precision, the run continues "
            "in float32",
            file=sys.stderr,
            flush=True,
        )
    with strategy.scope() if strategy else contextlib.nullcontext():  # a distributed run's variables are mirrored
        if resuming:
            saved_model = keras.saving.load_model(run_dir / runs.LAST_MODEL, compile=True)
            model = in_precision(saved_model, config)  # the config's precision may have changed since
            if config.schedule != "plateau":  # the config's curve (its epochs may have been extended); same step
                model.optimizer.learning_rate = learning_rate(config, steps)
        else:
            model = build_model(config.architecture, num_classes=len(classes), **config.hyperparameters)
            if config.initial_model:
                load_initial_weights(model, config.initial_model, config.class_set)
            model = with_precision(model, config.precision)
            compile_model(model, config, steps)
    if chief and resuming:
        runs.truncate_history(run_dir, initial_epoch)
    if chief and config.initial_model and not resuming:
        record_initial_lineage(run_dir, config.initial_model)

    teacher_targets = targets_for_run(run_dir, config, train_images, train_labels, save=chief)
    pipeline = make_training_pipeline(train_images, train_labels, config, seed=seed, teacher_targets=teacher_targets)
    validation = validation_arrays(validation_images, validation_labels, len(classes))
    if strategy:
        distributed.prepare_model_for_fit(model, strategy, *validation)
        stop = distributed.AgreedStop(stop, strategy)  # every worker leaves at the same step
    patience = patience_callbacks(config, stop, _saved_counters(run_dir) if resuming else {})
    leading = [  # what every worker of a distributed run does too: the same decisions, the same collective steps
        *learning_rate_callbacks(config),
        distributed.agreement_callback(stop) if strategy else StopOnRequest(stop),
        # Before everything that reads the epoch's logs: it adds val_ema_accuracy to them.
        EmaValidation(validation_images, validation_labels, stop),
    ]
    fit = functools.partial(
        model.fit,
        pipeline,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        validation_batch_size=256,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    if not chief:
        fit(callbacks=[*leading, *patience.values()], verbose=0)
        return {}
    callbacks = [
        *leading,
        ProgressWriter(
            run_dir,
            stop,
            steps_per_epoch=steps,
            total_epochs=config.epochs,
            initial_epoch=initial_epoch,
            batch_size=config.batch_size,
            extra={
                "train_images": len(train_labels),
                "validation_images": len(validation_labels),
                "resumed": resume,
                "seed": seed,
                "initial_model": config.initial_model or None,
                "parameters": int(model.count_params()),
                "recipe_revision": RECIPE_REVISION,
                "workers": cluster.size if cluster else 1,
                "precision": config.precision,
            },
        ),
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY_FILE), append=resume),
        # Before the checkpoint, so last.keras holds a rate just cut and the counters after this epoch.
        *patience.values(),
        AtomicCheckpoint(run_dir, stop, config, patience_callbacks=patience),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD_DIR), write_graph=False, profile_batch=0),
    ]
    started = time.time()
    if stop.should_stop():  # Stop pressed while the data loaded and the model was built: nothing trained yet
        folder.write_status(run_dir, "stopped", epochs_completed=initial_epoch, reason="stopped before training")
        return folder.read_status(run_dir)
    folder.write_status(run_dir, "running", resumed=resume, phase="training")
    if initial_epoch < config.epochs:
        try:
            fit(callbacks=callbacks, verbose=verbose)
        except Exception:  # a worker that died breaks the step the others wait in: the run failed for that
            if cluster and (dead := distributed.dead_worker(cluster, seconds=5)):
                folder.write_status(run_dir, "failed", error=dead)
                return folder.read_status(run_dir)
            raise
    if stop.triggered:
        state = runs.saved_state(run_dir)
        folder.write_status(run_dir, "stopped", epochs_completed=state.get("epochs_completed", 0))
        return folder.read_status(run_dir)

    folder.write_status(run_dir, "running", resumed=resume, phase="evaluating")
    best_path = run_dir / runs.BEST_MODEL
    # Read back from its file: a distributed run's own model would predict only with every worker taking part.
    saved = best_path if best_path.exists() else run_dir / runs.LAST_MODEL
    best_model = keras.saving.load_model(saved, compile=False) if strategy or best_path.exists() else model
    best_model = with_precision(best_model, FLOAT32)  # what is saved for use computes in float32
    evaluations = evaluate_modes(best_model, validation_images, validation_labels, "flip", classes)
    metrics = {
        "validation": evaluations["none"],
        "validation_tta": evaluations["flip"],
        "train_seconds_this_session": time.time() - started,
        "best_epoch": runs.saved_state(run_dir).get("best_epoch"),
        "parameters": int(best_model.count_params()),
    }
    atomic_write_json(run_dir / runs.METRICS_FILE, metrics)
    if best_path.exists():
        checkpoint = read_json(sidecar_path(best_path), default={}) or {}  # keeps the lineage the checkpoint wrote
        summary = _summary_metrics(metrics)
        if isinstance(checkpoint.get("metrics"), dict) and "weights" in checkpoint["metrics"]:
            summary["weights"] = checkpoint["metrics"]["weights"]  # training or moving average
        metadata = model_metadata(config.to_dict(), summary, parameters=metrics["parameters"])
        save_model(best_model, best_path, {**checkpoint, **metadata})
    folder.write_status(run_dir, "finished", accuracy=metrics["validation"]["accuracy"])
    return folder.read_status(run_dir)


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    evaluations = {"none": metrics["validation"], "flip": metrics["validation_tta"]}
    return {**summary_metrics(evaluations), "best_epoch": metrics.get("best_epoch")}
