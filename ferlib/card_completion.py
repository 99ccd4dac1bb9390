"""Completing a shipped model's card with the summary figures it was shipped without.

Cards record what `ship` measured at the time; later ferlib versions measure more (10-view TTA, top-2 with TTA).
A card is completed, not re-shipped: its recorded figures must first reproduce on the same validation faces, so
the added ones describe the same model and data, and nothing already recorded is changed.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_write_json, atomic_write_text
from ferlib.evaluation import evaluate_modes, metric_key, summary_metrics
from ferlib.export import describe_validation_split
from ferlib.model_card import render_model_card
from ferlib.modelio import load_model, sidecar_path

REPRODUCTION_TOLERANCE = 1e-3  # about 3.6 faces of PublicTest: floating-point differences between CPUs, not models


def complete_card(model_path: str | os.PathLike, data: str | os.PathLike, progress=None) -> dict[str, Any]:
    """Measure the model's summary figures on `data`'s validation split and add the ones its card lacks.

    Returns the added figures (empty when the card already has them all). Refuses, changing nothing, when the
    dataset is not the one the card describes or a recorded figure does not reproduce.
    """
    from ferlib.datasets import load_dataset

    path = Path(model_path)
    if path.suffix != ".keras" or not path.exists():
        raise ValueError(f"Expected an existing .keras model; received {str(path)!r}")
    model, card = load_model(path)  # the model and its card, class order checked
    recorded = card.get("metrics")
    if not isinstance(recorded, dict) or not _finite(recorded.get(metric_key("accuracy", "none"))):
        raise ValueError(
            f"Expected a shipped model's card with its validation accuracy beside it; received {str(path)!r}"
        )
    if not isinstance(recorded.get("split"), str) or not isinstance(recorded.get("n"), int):
        raise ValueError(
            f"Expected a card that records its validation split and face count; received neither in {str(path)!r}"
        )
    additions = card.get("metrics_added", [])
    if not isinstance(additions, list):
        raise ValueError(f"Expected the card's metrics_added to be a list; received {type(additions).__name__}")
    dataset = load_dataset(data, progress=progress)
    images, labels = dataset.subset("validation")
    split = describe_validation_split(dataset)
    if (split, len(labels)) != (recorded.get("split"), recorded.get("n")):
        raise ValueError(
            f"Expected the dataset the card was measured on ({recorded.get('split')}, {recorded.get('n')} faces); "
            f"received {split}, {len(labels)} faces"
        )
    measured = summary_metrics(evaluate_modes(model, images, labels, "shifts"))  # the 10 views score all modes
    differing = [
        f"{key} recorded {recorded[key]!r}, measured {value:.4f}"
        for key, value in measured.items()
        if key in recorded and not (_finite(recorded[key]) and abs(recorded[key] - value) <= REPRODUCTION_TOLERANCE)
    ]
    if differing:
        raise ValueError(
            f"Expected the card's recorded figures to reproduce on {str(data)!r}; received {'; '.join(differing)}"
        )
    added = {key: value for key, value in measured.items() if key not in recorded}
    if not added:
        return {}
    card["metrics"] = {**recorded, **added}
    card["metrics_added"] = [*additions, {"keys": list(added), "date": datetime.now(UTC).strftime("%Y-%m-%d")}]
    # The Markdown first: were the sidecar written first and the card not, a second run would find nothing to add
    # and leave the Markdown stale. The .keras file is untouched, so caches keyed on it stay valid.
    atomic_write_text(path.with_suffix(".md"), render_model_card(card, path.name))
    atomic_write_json(sidecar_path(path), card)
    return added


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
