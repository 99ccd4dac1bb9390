"""The one list of models a user can pick: shipped models (models/*.keras) and the best checkpoints of runs.

Every page and command that offers a choice of model reads it from here, so they all list the same models under
the same names: the default model first, then the other shipped ones, then runs, newest first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferlib.classes import EMOTIONS, ClassSet
from ferlib.errors import FerError
from ferlib.jobs import runs
from ferlib.jsonutil import as_number
from ferlib.nets import modelio
from ferlib.nets.modelio import default_model_path, read_metadata

SHIPPED = "shipped"
RUN = "run"


@dataclass(frozen=True)
class CatalogEntry:
    """One model on offer: what it is, where its file is and what a menu calls it."""

    key: str  # stable across reruns: "shipped:<file name>" or "run:<run id>"
    kind: str  # SHIPPED or RUN
    label: str
    model_path: Path
    run_dir: Path | None
    architecture: str | None
    accuracy: float | None  # validation accuracy recorded with it, when there is one
    hyperparameters: dict[str, Any] | None = None
    classes: tuple[str, ...] = EMOTIONS  # the classes it tells apart, in output order

    @property
    def is_default(self) -> bool:
        return self.kind == SHIPPED and self.model_path.resolve() == default_model_path().expanduser().resolve()


def shipped_models(models_dir: str | os.PathLike | None = None) -> list[CatalogEntry]:
    """The default model (when it exists) first, then every other .keras model in models/ by name.

    A model whose card cannot be read is still listed (without architecture or accuracy): pages that load it say
    what is wrong with it.
    """
    default = default_model_path().expanduser()
    folder = Path(models_dir) if models_dir is not None else modelio.models_dir()
    paths = [default] if default.exists() else []
    paths += sorted(path for path in folder.glob("*.keras") if path.resolve() != default.resolve())
    entries = []
    for path in paths:
        try:
            card = read_metadata(path)
        except FerError:
            card = {}
        config = card.get("config") if isinstance(card.get("config"), dict) else {}
        hyperparameters = config.get("hyperparameters")
        accuracy = as_number((card.get("metrics") or {}).get("validation_accuracy"))
        suffix = " (default)" if path == default else ""
        entries.append(
            CatalogEntry(
                key=f"{SHIPPED}:{path.name}",
                kind=SHIPPED,
                label=f"{path.stem}{suffix}" + (f" · {accuracy:.1%}" if accuracy is not None else ""),
                model_path=path,
                run_dir=None,
                architecture=config.get("architecture"),
                accuracy=accuracy,
                hyperparameters=hyperparameters if isinstance(hyperparameters, dict) else None,
                classes=_classes(card.get("classes", card.get("class_names"))),
            )
        )
    return entries


def _classes(stored: Any) -> tuple[str, ...]:
    """The class names a card or config records (FER-2013's seven when it records none or cannot be read)."""
    try:
        return ClassSet.parse(stored).names
    except FerError:
        return EMOTIONS


def run_models(runs_dir: str | os.PathLike | None = None, *, finished_only: bool = False) -> list[CatalogEntry]:
    """The best checkpoints of runs that have one (finished or stopped; only finished runs with `finished_only`,
    whose end-of-run evaluation the Metrics page reads), newest first."""
    entries = []
    for run in runs.list_runs(runs_dir):
        best = run.path / runs.BEST_MODEL
        finished = run.state == "finished" and (run.path / runs.METRICS_FILE).exists()
        if not best.exists() or (finished_only and not finished) or run.state not in ("finished", "stopped"):
            continue
        accuracy = f" · {run.best_val_accuracy:.1%}" if run.best_val_accuracy is not None else ""
        hyperparameters = runs.read_config_value(run.path, "hyperparameters")
        entries.append(
            CatalogEntry(
                key=f"{RUN}:{run.run_id}",
                kind=RUN,
                label=f"Run {run.run_id} · {run.architecture}{accuracy}",
                model_path=best,
                run_dir=run.path,
                architecture=run.architecture,
                accuracy=run.best_val_accuracy,
                hyperparameters=hyperparameters if isinstance(hyperparameters, dict) else None,
                classes=_classes(runs.read_config_value(run.path, "classes")),
            )
        )
    return entries


def available_models(
    runs_dir: str | os.PathLike | None = None, *, include_runs: bool = True, finished_only: bool = False
) -> list[CatalogEntry]:
    """Shipped models, then (with `include_runs`) runs' best checkpoints."""
    return shipped_models() + (run_models(runs_dir, finished_only=finished_only) if include_runs else [])
