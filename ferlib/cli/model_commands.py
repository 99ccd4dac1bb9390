"""`evaluate`, `predict` and `explain`: a model scored on a dataset, and its answers on photos and videos."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any

from ferlib.errors import FerError

SEARCH = "search"


def weight_list(text: str) -> list[float]:
    """`--weights 0.6,0.4` as numbers (their sign and count are checked with the models)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"Expected weights such as 0.6,0.4; received {text!r}") from None


def weights_or_search(text: str) -> list[float] | str:
    """`evaluate --weights`: numbers as `weight_list` reads them, or `search`."""
    if text.strip().lower() == SEARCH:
        return SEARCH
    try:
        return weight_list(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"Expected weights such as 0.6,0.4, or search; received {text!r}") from None


def add_tta_option(parser: argparse.ArgumentParser, description: str) -> None:
    """`--tta [MODE]`: none by default, flip when given bare (a mode is checked by `tta_mode` where it is used, so a
    wrong one is the usual one-line error)."""
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="MODE", help=description)


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="score a model on a dataset split")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument(
        "--model",
        action="append",
        help="a .keras file (default: the shipped model); repeat it to score the models' average, as `ensemble` "
        "would combine them, without writing anything",
    )
    evaluate.add_argument(
        "--weights",
        type=weights_or_search,
        help="with several --model: one weight each, e.g. 0.6,0.4 (default: equal); or search, which tries "
        "whole-number weights 1-4 and scores the best on this split (chosen on it, so it flatters the average)",
    )
    evaluate.add_argument("--split", default="validation", choices=["train", "validation", "test", "all"])
    add_tta_option(
        evaluate,
        "test-time augmentation: flip (the default of a bare --tta) averages each face with its mirror image; "
        "shifts averages 10 views (flips, each moved 2 pixels up, down, left and right); crops averages ten "
        "40-pixel crops (centre and corners, each mirrored), for models that look at a 40-pixel crop; zooms "
        "averages 18 views (flips, each scaled by 0.9, 1 and 1.1 and tilted by -5, 0 and 5 degrees)",
    )
    evaluate.add_argument("--json", help="write all metrics to this JSON file")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="find faces in photos or a video and print each face's emotion")
    predict.add_argument(
        "images", nargs="+", metavar="IMAGE", help="photos of any size (JPEG, PNG, ...), or one video (MP4, ...)"
    )
    predict.add_argument("--model", help="a .keras or .tflite file (default: the shipped model)")
    predict.add_argument(
        "--detector", default="haar", help="face detector: haar (default), mtcnn, or none (image is a face)"
    )
    add_tta_option(
        predict,
        "photos: read each face through the views of this test-time augmentation and average them, as "
        "`evaluate --tta` does (flip, shifts, crops, or zooms: 18 views, usually the most accurate); by default "
        "each face is read once",
    )
    predict.add_argument("--annotated-dir", help="also write each photo with its faces drawn on it here")
    predict.add_argument("--json", help="write all predictions to this JSON file")
    predict.add_argument("--csv", help="video: write one row per face per frame here (default: standard output)")
    predict.add_argument("--video-out", help="video: also write the annotated video here (.mp4)")
    predict.add_argument(
        "--every-frame",
        action="store_true",
        help="video: run the face detector on every frame at 640 pixels (slower) instead of every 5th at 320, "
        "with faces followed in between",
    )
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser("explain", help="show which parts of each face made the model choose its class")
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="photos of any size (JPEG, PNG, ...)")
    explain.add_argument("--model", help="a .keras file (default: the shipped model)")
    explain.add_argument(
        "--detector", default="haar", help="face detector: haar (default), mtcnn, or none (image is a face)"
    )
    explain.add_argument("--output-dir", default="explained", help="where the overlay PNGs go (default explained/)")
    explain.add_argument("--json", help="write every face's box, label, probabilities and 48x48 heatmap here")
    explain.set_defaults(handler=_explain)


def _evaluate(arguments: argparse.Namespace) -> int:
    import numpy as np

    from ferlib.atomic import atomic_write_json
    from ferlib.data.datasets import ProgressPrinter, load_dataset
    from ferlib.evaluation.metrics import evaluate_model, tta_mode

    tta = tta_mode(arguments.tta)  # a wrong mode or model is named before the data is loaded
    model, classes, name = _scored_model(arguments)
    searching = arguments.weights == SEARCH
    dataset = load_dataset(arguments.data, progress=ProgressPrinter())
    images, labels = dataset.subset(arguments.split)
    keep, labels = classes.apply(labels)  # a model of fewer classes is scored on the faces of its classes
    images, left_out = images[keep], int(np.sum(~keep))
    if len(labels) == 0:
        sizes = {split: sum(per_class.values()) for split, per_class in dataset.counts().items()}
        present = ", ".join(f"{split} ({size})" for split, size in sizes.items() if size) or "no images"
        raise FerError(
            f"Expected images in the {arguments.split!r} split of {str(arguments.data)!r}; received none "
            f"(it has: {present}); choose one with --split, or --split all"
        )
    if searching:
        metrics = _searched_average(model, images, labels, tta, classes.names)
        name = f"{name} ({metrics['weight_search']['weights']})"
    else:
        metrics = evaluate_model(model, images, labels, tta=tta, class_names=classes.names)
    metrics.update({"split": arguments.split, "data": str(arguments.data), "model": name})
    metrics["left_out"] = left_out
    if left_out:
        print(f"{left_out} faces of other classes than the model's ({classes.describe()}) were left out")
    if arguments.json:
        atomic_write_json(arguments.json, metrics)
    for name, values in metrics["per_class"].items():
        print(
            f"{name:<9} precision={values['precision']:.4f} recall={values['recall']:.4f} "
            f"f1={values['f1']:.4f} support={values['support']}"
        )
    print(f"top2_accuracy={metrics['top2_accuracy']:.4f}")
    if searching:
        found = metrics["weight_search"]
        print(
            f"weights {found['weights']} scored best of {found['tried']} tried on these faces (equal weights: "
            f"{found['equal_accuracy']:.4f}); chosen on them, so the accuracy below flatters the average"
        )
    print(f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} n={metrics['n']}")
    return 0


def _scored_model(arguments: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model `evaluate` scores (the average of several --model, weighted by --weights), its classes and name."""
    from ferlib.nets.modelio import class_set_of, load_model

    paths = arguments.model or []
    if len(paths) > 1:
        from ferlib.training.combine import combined_model

        searching = arguments.weights == SEARCH
        model, classes, members = combined_model(paths, None if searching else arguments.weights)
        if searching:  # the weights are chosen once the faces are read
            return model, classes, " + ".join(member["model"] for member in members)
        return model, classes, " + ".join(f"{member['model']} ({member['weight']:.3f})" for member in members)
    if arguments.weights:
        raise FerError(f"Expected --weights only with several --model; received it with {len(paths)} model(s)")
    model, card = load_model(paths[0] if paths else None)
    return model, class_set_of(card, paths[0] if paths else "the shipped model"), str(paths[0] if paths else "default")


def _searched_average(
    ensemble: Any, images: Any, labels: Any, tta: str, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """The metrics of the members' average under the weights that score best on these faces, and the search."""
    from dataclasses import asdict

    from ferlib.evaluation.metrics import average_probabilities, predict_probabilities, score
    from ferlib.evaluation.weighting import search_weights
    from ferlib.nets.ensemble import ensemble_members

    members = [predict_probabilities(member, images, tta=tta) for member, _ in ensemble_members(ensemble)]
    found = search_weights(members, labels)
    metrics = score(labels, average_probabilities(members, found.weights), tta, class_names)
    metrics["weight_search"] = asdict(found) | {"weights": ",".join(map(str, found.weights))}
    return metrics


def _predict(arguments: argparse.Namespace) -> int:
    from ferlib.evaluation.metrics import tta_mode
    from ferlib.live.video import is_video_path

    _check_output_paths(arguments)
    arguments.tta = tta_mode(arguments.tta)  # a wrong mode is named before any model is loaded
    videos = [path for path in arguments.images if is_video_path(path)]
    if videos:
        if len(arguments.images) > 1:
            raise FerError(f"Expected photos or a single video; received {len(arguments.images)} files with a video")
        if arguments.json or arguments.annotated_dir:
            raise FerError("Expected --csv or --video-out with a video; received --json or --annotated-dir")
        if arguments.tta != "none":
            raise FerError(f"Expected --tta with photos (a video is read one view per frame); received {videos[0]!r}")
        return _predict_video(arguments, videos[0])
    if arguments.csv or arguments.video_out:
        raise FerError("Expected a video file with --csv or --video-out; received only photos")
    return _predict_photos(arguments)


def _check_output_paths(arguments: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that cannot be written: a file where a folder goes, or the reverse."""
    for option, value in (("--json", arguments.json), ("--csv", arguments.csv), ("--video-out", arguments.video_out)):
        if value and Path(value).is_dir():
            raise FerError(f"Expected a file path for {option}; received {value!r}, which is a folder")
    if arguments.video_out:
        from ferlib.live.video import VIDEO_OUTPUT_EXTENSIONS

        if Path(arguments.video_out).suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
            raise FerError(
                f"Expected --video-out ending in {', '.join(VIDEO_OUTPUT_EXTENSIONS)}; received {arguments.video_out!r}"
            )
    folder = arguments.annotated_dir
    if folder and Path(folder).exists() and not Path(folder).is_dir():
        raise FerError(f"Expected a folder for --annotated-dir; received {folder!r}, which is a file")


def _predict_video(arguments: argparse.Namespace, video_path: str) -> int:
    """One CSV row per face per frame; the last line is `frames=N faces=M fps=X` (frames per processing second)."""
    from ferlib.atomic import atomic_write_text
    from ferlib.live.analyzer import LiveAnalyzer
    from ferlib.live.detection import make_detector
    from ferlib.live.video import EVERY_FRAME, FAST, FAST_DETECTOR_OPTIONS, analyze_video, write_records_csv

    settings = EVERY_FRAME if arguments.every_frame else FAST
    options = {} if arguments.every_frame else FAST_DETECTOR_OPTIONS.get(arguments.detector, {})
    analyzer = LiveAnalyzer(
        make_detector(arguments.detector, **options), _fastest_classifier(arguments.model), settings
    )
    target = Path(arguments.video_out) if arguments.video_out else None
    # Written beside the target under a temporary name and moved into place once complete (same suffix: codec).
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}") if target else None
    try:
        analysis = analyze_video(video_path, analyzer, video_out=partial)
        if partial is not None and partial.exists():
            os.replace(partial, target)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    if arguments.csv:
        table = io.StringIO()
        write_records_csv(analysis.records, table)
        atomic_write_text(arguments.csv, table.getvalue())
        print(f"{video_path}: {analysis.frames} frames, {analysis.width}x{analysis.height}, rows in {arguments.csv}")
    else:
        write_records_csv(analysis.records, sys.stdout)
    if analysis.video_out is not None:
        print(f"annotated video: {target}")
    if analysis.stopped_early:
        print(f"{video_path}: {analysis.stopped_early}; the rows cover the frames read", file=sys.stderr)
    print(f"frames={analysis.frames} faces={analysis.faces} fps={analysis.fps:.1f}")
    return 0


def _fastest_classifier(model: str | None):
    """A .keras model's fastest export (int8 TFLite when it has one, as the live camera uses), else the file given."""
    from ferlib.live.session import model_variants
    from ferlib.nets.classifier import make_classifier
    from ferlib.nets.modelio import default_model_path

    path = Path(model) if model else default_model_path()
    variants = model_variants(path) if path.suffix == ".keras" else []
    if variants:
        return make_classifier(variants[0].path, backend=variants[0].backend, num_threads=1)
    return make_classifier(path)


def _predict_photos(arguments: argparse.Namespace) -> int:
    import cv2

    from ferlib.atomic import atomic_write_bytes, atomic_write_json
    from ferlib.data.preprocess import read_image
    from ferlib.evaluation.metrics import AveragedViews
    from ferlib.live.detection import make_detector
    from ferlib.live.pipeline import EmotionPipeline, annotate
    from ferlib.nets.classifier import make_classifier

    classifier = make_classifier(arguments.model)
    if arguments.tta != "none":
        classifier = AveragedViews(classifier, arguments.tta)
    pipeline = EmotionPipeline(make_detector(arguments.detector), classifier)
    results: list[dict] = []
    written: set[Path] = set()
    failures = 0
    for image_path in arguments.images:
        try:
            image = read_image(image_path)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            print(f"{image_path}: skipped ({reason})")
            failures += 1
            continue
        try:
            analysis = pipeline.analyze(image)
        except (ValueError, cv2.error) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            print(f"{image_path}: skipped (the analysis failed: {reason})")
            failures += 1
            continue
        if not analysis.faces:
            print(f"{image_path}: no face found")
        else:
            print(f"{image_path}: {len(analysis.faces)} face{'s' if len(analysis.faces) > 1 else ''}")
        for number, face in enumerate(analysis.faces, start=1):
            probabilities = " ".join(f"{name}={value:.3f}" for name, value in face.probabilities.items())
            x, y, width, height = face.box
            print(
                f"  face {number}: box=({x},{y},{width},{height}) label={face.label} "
                f"confidence={face.confidence:.3f} {probabilities}"
            )
        results.append({"image": image_path, "faces": [face.__dict__ for face in analysis.faces]})
        if arguments.annotated_dir:
            target = _annotated_path(Path(arguments.annotated_dir), image_path, written)
            encoded, png = cv2.imencode(".png", annotate(image, analysis))
            try:
                if not encoded:
                    raise OSError("PNG encoding failed")
                atomic_write_bytes(target, png.tobytes())
                written.add(target)
            except OSError as error:  # one copy that cannot be written does not stop the others
                print(f"{image_path}: the annotated copy could not be written to {target} ({error})")
                failures += 1
    if arguments.json:
        atomic_write_json(arguments.json, results)
    if not results:  # every photo was skipped; a copy that could not be written still leaves its printed analysis
        raise FerError(
            f"Expected readable image files; received {len(arguments.images)}, none of which could be read and analysed"
        )
    return 1 if failures else 0


def _explain(arguments: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ferlib.atomic import atomic_write_bytes, atomic_write_json
    from ferlib.data.preprocess import read_image
    from ferlib.evaluation.gradcam import GradCam, explain_photo, explanation_overlay
    from ferlib.live.detection import make_detector
    from ferlib.nets.modelio import check_class_names, load_model

    model, card = load_model(arguments.model)
    classes = check_class_names(card, arguments.model or "the shipped model")
    gradcam, detector = GradCam(model, classes), make_detector(arguments.detector)
    output_dir, written, records, failures = Path(arguments.output_dir), set(), [], 0
    for image_path in arguments.images:
        try:
            image = read_image(image_path)
        except (OSError, FerError) as error:
            print(f"{image_path}: skipped ({error.strerror if isinstance(error, OSError) else error})")
            failures += 1
            continue
        faces = explain_photo(gradcam, image, detector)
        target = _annotated_path(output_dir, image_path, written, suffix="explained")
        encoded, png = cv2.imencode(".png", explanation_overlay(image, faces))
        if not encoded:
            raise FerError(f"Expected an overlay OpenCV can encode as PNG; received none for {image_path}")
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, png.tobytes())
        written.add(target)
        print(f"{image_path}: {len(faces)} face{'' if len(faces) == 1 else 's'}, overlay {target}")
        for number, face in enumerate(faces, start=1):
            row, column = np.unravel_index(int(np.argmax(face.heatmap)), face.heatmap.shape)
            evidence = "no positive evidence (flat map)" if face.flat else f"strongest at ({row},{column}) of 48x48"
            print(f"  face {number}: box={face.box} label={face.label} confidence={face.confidence:.3f} {evidence}")
            records.append(
                {
                    "image": image_path,
                    "box": list(face.box),
                    "label": face.label,
                    "confidence": face.confidence,
                    "probabilities": dict(zip(gradcam.class_names, map(float, face.probabilities), strict=True)),
                    "flat": face.flat,
                    "heatmap": np.round(face.heatmap, 4).tolist(),
                    "overlay": str(target),
                }
            )
    if arguments.json:
        atomic_write_json(arguments.json, {"model": str(arguments.model or "shipped"), "faces": records})
    if failures == len(arguments.images):
        raise FerError(f"Expected readable image files; received {failures}, none of which could be read")
    print(f"faces={len(records)}")
    return 1 if failures else 0


def _annotated_path(folder: Path, image_path: str, taken: set[Path], suffix: str = "annotated") -> Path:
    """NAME_annotated.png in `folder`, numbered (NAME_annotated-2.png, ...) when two inputs share a name."""
    stem = Path(image_path).stem
    target = folder / f"{stem}_{suffix}.png"
    number = 2
    while target in taken:
        target = folder / f"{stem}_{suffix}-{number}.png"
        number += 1
    return target
