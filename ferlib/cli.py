"""Command line: `python -m ferlib info|train|evaluate|predict ...`.

User mistakes print one `error: ...` line and exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferlib", description="Facial emotion recognition on FER-2013.")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="counts per split and class, and the load report")
    info.add_argument("--data", required=True, help="Kaggle folder/.zip, fer2013.csv, or a <class>/* folder")

    train = commands.add_parser("train", help="train a model in a new run folder (or resume one)")
    train.add_argument("--data", help="dataset path (default: the config's 'data')")
    train.add_argument("--config", help="JSON file with TrainConfig settings")
    train.add_argument("--epochs", type=int, help="override the config's epochs")
    train.add_argument("--runs-dir", help="where run folders go (default: runs/ or $FERLIB_RUNS_DIR)")
    train.add_argument("--run-dir", help="train in this existing run folder (as the dashboard does)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no Keras progress output")

    evaluate = commands.add_parser("evaluate", help="score a model on a dataset split")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--model", help="a .keras file (default: the shipped model)")
    evaluate.add_argument("--split", default="validation", choices=["train", "validation", "test", "all"])
    evaluate.add_argument("--tta", action="store_true", help="average with the horizontally flipped face")
    evaluate.add_argument("--json", help="write all metrics to this JSON file")
    predict = commands.add_parser("predict", help="find faces in photos and print each face's emotion")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photos of any size (JPEG, PNG, ...)")
    predict.add_argument("--model", help="a .keras or .tflite file (default: the shipped model)")
    predict.add_argument("--detector", default="haar", help="face detector: haar (default) or none (image is a face)")
    predict.add_argument("--annotated-dir", help="also write each photo with its faces drawn on it here")
    predict.add_argument("--json", help="write all predictions to this JSON file")
    ship = commands.add_parser("ship", help="install a run's best model as a shipped model with its card and TFLite")
    ship.add_argument("--run-dir", required=True, help="a finished (or stopped) run folder with best.keras")
    ship.add_argument("--data", required=True, help="the dataset whose validation split the card reports")
    ship.add_argument("--output", help="target .keras path (default: the shipped model path)")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    handlers = {"info": _info, "train": _train, "evaluate": _evaluate, "predict": _predict, "ship": _ship}
    try:
        return handlers[arguments.command](arguments)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _info(arguments: argparse.Namespace) -> int:
    from ferlib.classes import EMOTIONS
    from ferlib.datasets import SPLITS, ProgressPrinter, load_dataset

    dataset = load_dataset(arguments.data, progress=ProgressPrinter())
    counts = dataset.counts()
    report = dataset.report
    print(f"source: {report.source}")
    print(f"layout: {report.layout}{' (from cache)' if report.from_cache else ''}")
    width = max(len(name) for name in EMOTIONS)
    print(f"{'split':<11}" + "".join(f"{name:>{width + 2}}" for name in EMOTIONS) + f"{'total':>9}")
    for split in SPLITS:
        row = counts[split]
        print(f"{split:<11}" + "".join(f"{row[name]:>{width + 2}}" for name in EMOTIONS) + f"{sum(row.values()):>9}")
    print(
        f"{'all':<11}"
        + "".join(f"{sum(counts[s][n] for s in SPLITS):>{width + 2}}" for n in EMOTIONS)
        + f"{len(dataset):>9}"
    )
    print(f"load report: {len(report.bad_files)} unreadable files skipped")
    for bad in report.bad_files:
        print(f"  skipped {bad.path}: {bad.reason}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


def _train(arguments: argparse.Namespace) -> int:
    from ferlib import runs
    from ferlib.config import TrainConfig
    from ferlib.training import run_training

    if arguments.resume or arguments.run_dir:
        if not arguments.run_dir:
            raise ValueError("Expected --run-dir RUN_FOLDER with --resume; received none")
        run_dir = Path(arguments.run_dir)
        config = runs.load_config(run_dir)
        if arguments.epochs:
            config = config.updated(epochs=arguments.epochs)
            from ferlib.atomic import atomic_write_json

            atomic_write_json(run_dir / runs.CONFIG_FILE, config.to_dict())
    else:
        config = TrainConfig.from_file(arguments.config) if arguments.config else TrainConfig()
        changes = {}
        if arguments.epochs:
            changes["epochs"] = arguments.epochs
        if arguments.data:
            changes["data"] = str(Path(arguments.data).expanduser().resolve())
        config = config.updated(**changes)
        if not config.data:
            raise ValueError("Expected --data PATH (or 'data' in the config); received none")
        run_dir = runs.create_run(config, arguments.runs_dir)
    print(run_dir, flush=True)
    status = run_training(run_dir, arguments.data, resume=arguments.resume, verbose=0 if arguments.quiet else 2)
    print(f"status={status.get('state')} run={run_dir}", flush=True)
    return 0 if status.get("state") in ("finished", "stopped") else 1


def _evaluate(arguments: argparse.Namespace) -> int:
    from ferlib.atomic import atomic_write_json
    from ferlib.datasets import ProgressPrinter, load_dataset
    from ferlib.evaluation import evaluate_model
    from ferlib.modelio import load_model

    dataset = load_dataset(arguments.data, progress=ProgressPrinter())
    images, labels = dataset.subset(arguments.split)
    if len(labels) == 0:
        raise ValueError(f"Expected images in the {arguments.split!r} split of {arguments.data!r}; received none")
    model, _ = load_model(arguments.model)
    metrics = evaluate_model(model, images, labels, tta=arguments.tta)
    metrics.update({"split": arguments.split, "data": str(arguments.data), "model": str(arguments.model or "default")})
    if arguments.json:
        atomic_write_json(arguments.json, metrics)
    for name, values in metrics["per_class"].items():
        print(
            f"{name:<9} precision={values['precision']:.4f} recall={values['recall']:.4f} "
            f"f1={values['f1']:.4f} support={values['support']}"
        )
    print(f"top2_accuracy={metrics['top2_accuracy']:.4f}")
    print(f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} n={metrics['n']}")
    return 0


def _predict(arguments: argparse.Namespace) -> int:
    import cv2

    from ferlib.atomic import atomic_write_json
    from ferlib.classes import EMOTIONS
    from ferlib.classifier import make_classifier
    from ferlib.detection import make_detector
    from ferlib.pipeline import EmotionPipeline, annotate
    from ferlib.preprocess import read_image

    pipeline = EmotionPipeline(make_detector(arguments.detector), make_classifier(arguments.model))
    results: list[dict] = []
    failures = 0
    for image_path in arguments.images:
        try:
            image = read_image(image_path)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            print(f"{image_path}: skipped ({reason})")
            failures += 1
            continue
        analysis = pipeline.analyze(image)
        if not analysis.faces:
            print(f"{image_path}: no face found")
        else:
            print(f"{image_path}: {len(analysis.faces)} face{'s' if len(analysis.faces) > 1 else ''}")
        for number, face in enumerate(analysis.faces, start=1):
            probabilities = " ".join(f"{name}={face.probabilities[name]:.3f}" for name in EMOTIONS)
            x, y, width, height = face.box
            print(
                f"  face {number}: box=({x},{y},{width},{height}) label={face.label} "
                f"confidence={face.confidence:.3f} {probabilities}"
            )
        results.append({"image": image_path, "faces": [face.__dict__ for face in analysis.faces]})
        if arguments.annotated_dir:
            target = Path(arguments.annotated_dir) / f"{Path(image_path).stem}_annotated.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), annotate(image, analysis))
    if arguments.json:
        atomic_write_json(arguments.json, results)
    if failures == len(arguments.images):
        raise ValueError(f"Expected readable image files; received none among {len(arguments.images)}")
    return 1 if failures else 0


def _ship(arguments: argparse.Namespace) -> int:
    from ferlib.export import ship_model
    from ferlib.modelio import default_model_path

    target = Path(arguments.output) if arguments.output else default_model_path()
    card = ship_model(arguments.run_dir, arguments.data, target)
    metrics = card["metrics"]
    tflite = target.with_suffix(".tflite")
    print(f"shipped {target} ({card['file_size_mb']} MB) and {tflite} ({card['tflite_size_mb']} MB)")
    print(
        f"parameters={card['parameters']} flops_per_face={card['flops_per_face']} "
        f"tflite_agreement={card['tflite_top1_agreement']:.4f}"
    )
    print(
        f"accuracy={metrics['validation_accuracy']:.4f} macro_f1={metrics['validation_macro_f1']:.4f} "
        f"accuracy_tta={metrics['validation_accuracy_tta']:.4f} n={metrics['n']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
