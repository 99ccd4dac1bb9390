"""A human-readable model card (Markdown) rendered from a shipped model's sidecar JSON.

The JSON sidecar is what programs read; this page is what people read before using the model: what it was
trained on, how it was measured, and where it should not be trusted (after Mitchell et al., "Model Cards for
Model Reporting", 2019). Every figure comes from the sidecar, so the two never disagree.
"""

from __future__ import annotations

from typing import Any

from ferlib.classes import EMOTIONS
from ferlib.evaluation.lineage import model_file_name, noted_stages
from ferlib.evaluation.metrics import SUMMARY_FIGURES, TTA_DESCRIPTIONS, metric_key

LIMITATIONS = (
    "FER-2013 faces were found by web image search with emotion keywords, and its labels are noisy: human accuracy "
    "on it is about 65 ± 5% (Goodfellow et al., 2013). Some images are duplicated across splits or nearly blank "
    "(`ferlib.data.quality` lists them).",
    "It recognises facial *expressions* in {count} categories, not felt emotions, intentions or mental states.",
    "The data's age, skin-tone and cultural make-up is undocumented; accuracy across groups has not been measured "
    "and should be expected to differ.",
    "Inputs are 48×48 grayscale crops: small, blurred, occluded or strongly turned faces degrade it, and the face "
    "detector in front of it (OpenCV's Haar cascade by default) misses some faces.",
    "Do not use it to make decisions about people (hiring, grading, policing, health, access). It is meant for "
    "demonstrations, teaching and research on expression recognition.",
)


def _percent(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "–"


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, remainder = divmod(round(seconds), 3600)
    return f"{hours} h {remainder // 60:02d} min" if hours else f"{remainder // 60} min"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def data_line(card: dict[str, Any]) -> str:
    """Which faces trained and selected the model, from the card's counts."""
    metrics = card.get("metrics") or {}
    split = str(metrics.get("split", "the validation split"))
    train_images = card.get("train_images")
    trained = f"{train_images:,} training faces" if isinstance(train_images, int) else "the training split"
    line = f"Trained on {trained}; the checkpoint was selected on {split}, {metrics.get('n', '?')} faces."
    if _members(card):
        faces = f"{metrics.get('n', '?')} faces"
        line = (
            f"Its members are listed below. Measured on {split}, {faces}; the members' checkpoints "
            "and these weights may have been chosen on the same faces, so its figures can flatter it slightly."
        )
    if "PublicTest" in split:
        line += " FER-2013's PrivateTest split was not used for training or selection."
    return line


def _members(card: dict[str, Any]) -> list[dict[str, Any]]:
    """An ensemble's members as its config lists them (older cards listed them beside it); [] for a single network."""
    config = card.get("config") if isinstance(card.get("config"), dict) else {}
    members = config.get("members", card.get("members"))
    return [member for member in members if isinstance(member, dict)] if isinstance(members, list) else []


def ensemble_lines(card: dict[str, Any]) -> list[str]:
    """How an ensemble combines its members, and each member with its weight and its own figures."""
    members = _members(card)
    rows = [
        [
            f"`{member.get('model', '?')}`",
            f"{float(member.get('weight') or 0):.0%}",
            str(member.get("architecture") or "?"),
            f"{member['parameters']:,}" if isinstance(member.get("parameters"), int) else "–",
            str(member["epochs_completed"]) if isinstance(member.get("epochs_completed"), int) else "–",
            _duration(member.get("train_wall_seconds")),
            _number(member.get("validation_accuracy")),
            _number(member.get("validation_accuracy_tta")),
        ]
        for member in members
    ]
    notes = [note for note in card.get("notes") or [] if isinstance(note, str)]
    effort = (
        f"Its members trained {card['epochs_completed']} epochs in all, {_duration(card.get('train_wall_seconds'))} "
        "of wall time (a run two members share counted once)."
        if isinstance(card.get("epochs_completed"), int)
        else "Not every member's card says how long it trained, so the ensemble's total is unknown."
    )
    header = ["member", "weight", "network", "parameters", "epochs", "wall time", "its accuracy", "its accuracy (flip)"]
    return [
        f"An ensemble of {len(members)} networks, combined by `python -m ferlib ensemble`: each face's probabilities "
        "are the weighted average of its members'. Every face passes through every member, so it costs their sum. "
        f"{effort}",
        "",
        *_table(header, rows),
        "",
        *(
            f"- `{member.get('model', '?')}`: {describe_hyperparameters(member.get('hyperparameters'))}."
            for member in members
        ),
        *([""] if notes else []),
        *(f"- Note: {note}" for note in notes),
    ]


def training_lines(card: dict[str, Any]) -> list[str]:
    """The recipe (from the config) and the stages that produced the weights."""
    if _members(card):
        return ensemble_lines(card)
    config = card.get("config") or {}
    augmentation = config.get("augmentation") or {}
    transforms = [
        name
        for name, active in (
            ("horizontal flips", augmentation.get("horizontal_flip")),
            (f"±{augmentation.get('translate', 0):.0%} shifts", augmentation.get("translate")),
            (f"±{augmentation.get('rotate_degrees', 0):g}° rotations", augmentation.get("rotate_degrees")),
            (f"±{augmentation.get('zoom', 0):.0%} zoom", augmentation.get("zoom")),
            (f"±{augmentation.get('contrast', 0):.0%} contrast", augmentation.get("contrast")),
            (f"random erasing (p = {augmentation.get('erasing', 0):g})", augmentation.get("erasing")),
        )
        if active
    ]
    optimizer = str(config.get("optimizer", "?"))
    if optimizer == "sgd":
        optimizer += f" (Nesterov momentum {config.get('momentum', '?')})"
    lines = [
        f"- Recipe of the last stage: {optimizer}, "
        f"learning rate {config.get('learning_rate', '?')} with {config.get('schedule', '?')} schedule and "
        f"{config.get('warmup_epochs', 0)} warm-up epoch(s), weight decay {config.get('weight_decay', '?')}, "
        f"label smoothing {config.get('label_smoothing', '?')}, batch {config.get('batch_size', '?')}; "
        f"augmentation: {', '.join(transforms) or 'none'}.",
        f"- Architecture settings: {describe_hyperparameters(config.get('hyperparameters'))}.",
        f"- {card.get('epochs_completed', '?')} epochs in all, {_duration(card.get('train_wall_seconds'))} of "
        "wall time.",
    ]
    stages = [stage for stage in card.get("stages") or [] if isinstance(stage, dict)]
    teachers = config.get("teachers") or []
    if teachers and config.get("teacher_weight"):
        weight = float(config["teacher_weight"])
        names = ", ".join(f"`{model_file_name(path)}`" for path in teachers)
        smoothing = f", then label smoothing {config['label_smoothing']:g}" if config.get("label_smoothing") else ""
        learned = "The last stage learned" if len(stages) > 1 else "Learned"
        lines.append(
            f"- {learned} from {names} as well as from the labels (knowledge distillation): each face's target was "
            f"{1 - weight:.0%} its label and {weight:.0%} the averaged probabilities of those models{smoothing}."
        )
    if card.get("lineage_complete") is False:
        lines.append("- The starting weights' own training is unknown; the totals count only the known stages.")
    lines += [f"- {label}: {note}" for label, note in labelled_notes(card)]
    if len(stages) > 1:
        lines += [
            "",
            "Trained in stages; each after the first is a warm restart from the previous stage's best weights with a "
            "fresh schedule:",
            "",
        ]
        distilled = any(stage.get("teachers") for stage in stages)
        rows = [
            [
                str(index),
                f"`{stage['source_run']}`" if stage.get("source_run") else "unknown",
                "unknown" if stage.get("epochs") is None else str(stage["epochs"]),
                _duration(stage.get("train_wall_seconds")),
                _number(stage.get("validation_accuracy")),
                *([_teachers(stage)] if distilled else []),
            ]
            for index, stage in enumerate(stages, start=1)
        ]
        header = ["stage", "run", "epochs", "wall time", "best validation accuracy"]
        lines += _table(header + (["learned from"] if distilled else []), rows)
    return lines


# The evaluation table's rows, one per TTA mode (the int8 row follows the flip row).
MODE_ROWS = {
    "none": "Keras model",
    "flip": "with horizontal-flip TTA",
    "shifts": f"with TTA over {TTA_DESCRIPTIONS['shifts']}",
    "crops": f"with TTA over {TTA_DESCRIPTIONS['crops']}",
    "zooms": f"with TTA over {TTA_DESCRIPTIONS['zooms']}",
}


def labelled_notes(card: dict[str, Any]) -> list[tuple[str, str]]:
    """Each stage's notes ("Note", or "Note (stage k)" when there are several stages), in stage order."""
    stages = noted_stages(card)
    return [
        ("Note" if len(stages) == 1 else f"Note (stage {index})", note)
        for index, stage in enumerate(stages, start=1)
        for note in (stage.get("notes") if isinstance(stage.get("notes"), list) else [])
        if isinstance(note, str) and note.strip()
    ]


def evaluation_lines(card: dict[str, Any]) -> list[str]:
    """Overall, per-class and confusion-matrix figures on the validation split."""
    metrics = card.get("metrics") or {}
    lines = [f"Measured on {metrics.get('split', 'the validation split')}, {metrics.get('n', '?')} faces.", ""]
    rows = []
    for mode, label in MODE_ROWS.items():
        keys = dict(zip(SUMMARY_FIGURES, (metric_key(figure, mode) for figure in SUMMARY_FIGURES), strict=True))
        if mode not in ("none", "flip") and keys["accuracy"] not in metrics:  # a card records the modes it measured
            continue
        rows.append([label, *(_number(metrics.get(key)) for key in keys.values())])
        if mode == "flip":
            rows.append(["int8 TFLite", _number(card.get("int8_validation_accuracy")), "", ""])
    lines += _table(["", "accuracy", "macro-F1", "top-2 accuracy"], rows)
    per_class, per_class_tta = card.get("per_class") or {}, card.get("per_class_tta") or {}
    names = tuple(card.get("class_names") or EMOTIONS)
    if per_class:
        lines += [""]
        lines += _table(
            ["class", "precision", "recall", "F1", "F1 with flip TTA", "support"],
            [
                [
                    name,
                    _number(per_class[name].get("precision"), 3),
                    _number(per_class[name].get("recall"), 3),
                    _number(per_class[name].get("f1"), 3),
                    _number((per_class_tta.get(name) or {}).get("f1"), 3),
                    str(per_class[name].get("support", "–")),
                ]
                for name in names
                if name in per_class
            ],
        )
    matrix = card.get("confusion_matrix")
    if matrix:
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", ""]
        lines += _table(
            ["true \\ predicted", *names],
            [[f"**{name}**", *(str(count) for count in row)] for name, row in zip(names, matrix, strict=True)],
        )
    lines += [
        "",
        "Top-1 agreement with the Keras model on the same faces: "
        f"float32 TFLite {_percent(card.get('tflite_top1_agreement'))}, "
        f"int8 TFLite {_percent(card.get('int8_tflite_top1_agreement'))}.",
    ]
    return lines


CLASS_LIMITATIONS = {  # said of a model that tells these classes apart
    "disgust": "`disgust` has 436 training faces (1.5%) and is the weakest class (see the confusion matrix).",
    "fear": "`fear` and `sad` are often confused with each other and with `neutral` (see the confusion matrix).",
}


def limitations(class_names: list[str]) -> list[str]:
    """The card's limitations for a model over `class_names`."""
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
    count = words.get(len(class_names), str(len(class_names)))
    general = [text.replace("{count}", count) for text in LIMITATIONS]
    specific = [text for name, text in CLASS_LIMITATIONS.items() if name in class_names]
    return general[:3] + specific + general[3:]


def describe_hyperparameters(hyperparameters: Any) -> str:
    """An architecture's settings in words: {"filters": [40, 80], "dense_units": 256} -> "filters 40-80, dense units
    256"; the settings a card leaves out are the architecture's defaults."""
    if not isinstance(hyperparameters, dict) or not hyperparameters:
        return "the architecture's defaults"

    def value(setting: Any) -> str:
        if isinstance(setting, list | tuple):
            return "-".join(map(str, setting))
        return f"{setting:g}" if isinstance(setting, float) else str(setting)

    return ", ".join(f"{name.replace('_', ' ')} {value(setting)}" for name, setting in hyperparameters.items())


def render_model_card(card: dict[str, Any], name: str = "model") -> str:
    """The Markdown model card of a sidecar `card` for the model file `name`."""
    parameters, flops = card.get("parameters"), card.get("flops_per_face")
    files = [
        [f"`{name}`", "Keras 3 model (weights and config)", _number(card.get("file_size_mb"), 2)],
        [f"`{card.get('tflite_file', '–')}`", "TFLite, float32", _number(card.get("tflite_size_mb"), 2)],
        [
            f"`{card.get('int8_tflite_file', '–')}`",
            "TFLite, int8 weights and activations",
            _number(card.get("int8_tflite_size_mb"), 2),
        ],
    ]
    lines = [
        f"# Model card: {name}",
        "",
        f"Facial expression classifier over {', '.join(card.get('class_names') or EMOTIONS)} (in output order).",
        f"Architecture `{card.get('architecture', '?')}`"
        + (f", {parameters:,} parameters" if isinstance(parameters, int) else "")
        + (f", {flops / 1e6:.0f} MFLOPs per face" if isinstance(flops, (int, float)) else "")
        + f". Input shape {card.get('input_shape', [48, 48, 1])}: "
        f"{card.get('input_format', '48×48 grayscale faces')}; "
        "faces are cut and normalised by `ferlib.data.preprocess.preprocess_face`, the function training used.",
        "",
        "## Intended use",
        "",
        "Live demonstrations, teaching and research on facial expression recognition, through the `ferlib` "
        "dashboard, command line and Python API. It labels the expression of a detected face; it does not identify "
        "people.",
        "",
        "## Limitations and risks",
        "",
        *(f"- {text}" for text in limitations(list(card.get("class_names") or EMOTIONS))),
        "",
        "## Training data and procedure",
        "",
        data_line(card),
        "",
        *training_lines(card),
        "",
        "## Evaluation",
        "",
        *evaluation_lines(card),
        "",
        "## Files",
        "",
        *_table(["file", "content", "MiB"], files),
        "",
        (
            "Generated by `python -m ferlib ensemble` from the sidecar JSON, which holds the members and every figure."
            if _members(card)
            else "Generated by `python -m ferlib ship` from the sidecar JSON, which holds the full config and epoch "
            "history."
        ),
        "",
    ]
    return "\n".join(lines)


def _teachers(stage: dict[str, Any]) -> str:
    """The models a stage learned from, with their share of each face's target ('labels only' when none, 'unknown'
    for a stage recorded before teachers were)."""
    if not isinstance(stage.get("teachers"), list):
        return "unknown"
    teachers = [str(name) for name in stage["teachers"]]
    if not teachers:
        return "labels only"
    share = stage.get("teacher_weight")
    return ", ".join(f"`{name}`" for name in teachers) + (f" ({float(share):.0%})" if share else "")
