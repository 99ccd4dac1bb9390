"""What a trial trains: the search space as a keras-tuner HyperModel, built and fitted exactly as a training run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import keras_tuner
import numpy as np

from ferlib.data.datasets import Dataset
from ferlib.errors import FerError
from ferlib.nets.architectures import build_model
from ferlib.nets.precision import with_precision
from ferlib.training.callbacks import learning_rate_callbacks, patience_callbacks
from ferlib.training.config import TrainConfig
from ferlib.training.trainer import (
    class_subset,
    compile_model,
    make_training_pipeline,
    select_training_data,
    steps_per_epoch,
    validation_arrays,
)
from ferlib.tuning.search_space import SearchConfig, trial_config
from ferlib.tuning.session import SearchSession


@dataclass
class TuningData:
    """The training subset and validation split every trial (and the baseline) trains and scores on."""

    train_images: np.ndarray
    train_labels: np.ndarray
    validation: tuple[np.ndarray, np.ndarray]

    @classmethod
    def from_dataset(cls, dataset: Dataset, base: TrainConfig) -> TuningData:
        images, labels = select_training_data(dataset, base)
        validation_images, validation_labels = class_subset(dataset, "validation", base)
        if len(validation_labels) == 0:
            raise FerError(
                f"Expected validation images in {dataset.report.source!r}; received an empty validation split"
            )
        classes = len(base.class_set.names)
        return cls(images, labels, validation_arrays(validation_images, validation_labels, classes))


def build_compiled_model(config: TrainConfig, data: TuningData) -> keras.Model:
    """The config's model, seeded and compiled as a training run on `data` would build it."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.architecture, num_classes=len(config.class_set.names), **config.hyperparameters)
    model = with_precision(model, config.precision)
    compile_model(model, config, steps_per_epoch(len(data.train_labels), config))
    return model


def fit_config(
    model: keras.Model,
    config: TrainConfig,
    data: TuningData,
    callbacks: list[keras.callbacks.Callback],
    *,
    epochs: int,
    initial_epoch: int = 0,
    verbose: int = 0,
):
    """Train `model` on the config's augmented pipeline with its learning-rate schedule (plateau cuts and early
    stopping included, as in a training run); returns the History."""
    pipeline = make_training_pipeline(data.train_images, data.train_labels, config)
    return model.fit(
        pipeline,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=data.validation,
        validation_batch_size=256,
        callbacks=[*learning_rate_callbacks(config), *patience_callbacks(config).values(), *callbacks],
        verbose=verbose,
    )


class FerHyperModel(keras_tuner.HyperModel):
    """The search space as a keras-tuner HyperModel: every hyperparameter a Choice among the search's values.

    `build` and `fit` both go through `trial_config`, so a trial trains exactly like a training run of the
    config it reports (and like the baseline, which is `trial_config` of no changes).
    """

    def __init__(self, config: SearchConfig, data: TuningData, session: SearchSession) -> None:
        super().__init__(name="fer_studio", tunable=True)
        self.config = config
        self.data = data
        self.session = session

    def trial_values(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declare (first call) or read every hyperparameter of the space."""
        return {name: hp.Choice(name, list(choices)) for name, choices in self.config.space.items()}

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        return build_compiled_model(trial_config(self.config.base, self.trial_values(hp)), self.data)

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """Train one trial. Hyperband passes `epochs` and `initial_epoch`; other strategies train the full budget."""
        config = trial_config(self.config.base, self.trial_values(hp))
        epochs = int(kwargs.get("epochs", config.epochs))
        steps = steps_per_epoch(len(self.data.train_labels), config)
        trial = self.session.current_trial or "?"
        callbacks = [*kwargs.get("callbacks", []), self.session.progress_callback(trial, epochs, steps)]
        return fit_config(
            model,
            config,
            self.data,
            callbacks,
            epochs=epochs,
            initial_epoch=int(kwargs.get("initial_epoch", 0)),
            verbose=kwargs.get("verbose", 0),
        )
