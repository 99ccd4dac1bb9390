"""Command line: `python -m ferlib info|faces|train|label|evaluate|predict|explain|snapshot|ship|average|tune ...`.

User mistakes (FerError) print one `error: Expected …` line and exit with status 2; anything else is reported as an
internal error (its traceback with --debug). Each command imports what it needs inside its handler, so `--help` and a
mistake found early answer without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from ferlib.errors import FerError
from ferlib.jobs import folder
from ferlib.tuning import search_space

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferlib", description="Facial emotion recognition on FER-2013.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="counts per split and class, and the load report")
    info.add_argument("--data", required=True, help="Kaggle folder/.zip, fer2013.csv, or a <class>/* folder")

    faces = commands.add_parser(
        "faces", help="make a dataset of your own faces from labelled photos (<class>/<photo>, a folder or a .zip)"
    )
    faces.add_argument("source", metavar="SOURCE", help="a folder or .zip of happy/*.jpg, sad/*.jpg, ...")
    faces.add_argument("--output", required=True, help="the new dataset folder (train/<class>/, test/<class>/)")
    faces.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of each class's faces kept for testing (default 0.2)"
    )
    faces.add_argument("--detector", default="haar", help="face detector: haar (default), mtcnn, or none")
    faces.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")

    train = commands.add_parser("train", help="train a model in a new run folder (or resume one)")
    train.add_argument("--data", help="dataset path (default: the config's 'data')")
    train.add_argument("--config", help="JSON file with TrainConfig settings")
    train.add_argument("--epochs", type=int, help="override the config's epochs")
    train.add_argument(
        "--classes", help="the classes to tell apart, e.g. happy,sad (default: the config's, else all seven)"
    )
    train.add_argument(
        "--initial-model",
        help="start from this .keras model's weights (same architecture and sizes), fresh schedule",
    )
    train.add_argument("--runs-dir", help="where run folders go (default: runs/ or $FERLIB_RUNS_DIR)")
    train.add_argument("--run-dir", help="train in this existing run folder (as the dashboard does)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    train.add_argument(
        "--resume-from",
        metavar="SNAPSHOT",
        help="recreate a run from its snapshot under --runs-dir and continue it (any machine)",
    )
    train.add_argument("--quiet", action="store_true", help="no Keras progress output")
    train.add_argument("--name", default="", help="a name for the new run, shown wherever runs are listed")
    train.add_argument("--tag", action="append", default=[], help="a tag for the new run (repeatable)")
    train.add_argument("--note", default="", help="a note about the new run")
    train.add_argument(
        "--workers", type=int, default=1, help="train across this many processes here (tf.distribute; default 1)"
    )
    train.add_argument(
        "--cluster", metavar="HOST:PORT,…", help="every worker's address, the chief's first (with --worker-index)"
    )
    train.add_argument("--worker-index", type=int, help="this machine's place in --cluster (0: the chief)")
    label = commands.add_parser("label", help="name, tag or note a run or search (replaces its label)")
    label.add_argument("job_dir", metavar="FOLDER", help="a run or search folder")
    label.add_argument("--name", default="", help="its name")
    label.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    label.add_argument("--note", default="", help="a note")

    evaluate = commands.add_parser("evaluate", help="score a model on a dataset split")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--model", help="a .keras file (default: the shipped model)")
    evaluate.add_argument("--split", default="validation", choices=["train", "validation", "test", "all"])
    evaluate.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default="none",
        metavar="MODE",
        help="test-time augmentation: flip (the default of a bare --tta) averages each face with its mirror image; "
        "shifts averages 10 views (flips, each moved 2 pixels up, down, left and right); crops averages ten "
        "40-pixel crops (centre and corners, each mirrored), for models that look at a 40-pixel crop",
    )
    evaluate.add_argument("--json", help="write all metrics to this JSON file")
    predict = commands.add_parser("predict", help="find faces in photos or a video and print each face's emotion")
    predict.add_argument(
        "images", nargs="+", metavar="IMAGE", help="photos of any size (JPEG, PNG, ...), or one video (MP4, ...)"
    )
    predict.add_argument("--model", help="a .keras or .tflite file (default: the shipped model)")
    predict.add_argument(
        "--detector", default="haar", help="face detector: haar (default), mtcnn, or none (image is a face)"
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
    explain = commands.add_parser("explain", help="show which parts of each face made the model choose its class")
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="photos of any size (JPEG, PNG, ...)")
    explain.add_argument("--model", help="a .keras file (default: the shipped model)")
    explain.add_argument(
        "--detector", default="haar", help="face detector: haar (default), mtcnn, or none (image is a face)"
    )
    explain.add_argument("--output-dir", default="explained", help="where the overlay PNGs go (default explained/)")
    explain.add_argument("--json", help="write every face's box, label, probabilities and 48x48 heatmap here")
    snapshot = commands.add_parser(
        "snapshot", help="write a run's portable snapshot: one file that `train --resume-from` continues anywhere"
    )
    snapshot.add_argument("--run-dir", required=True, help="a run folder with at least one finished epoch")
    snapshot.add_argument("--output", required=True, help="the snapshot file to write (e.g. run.snapshot.zip)")
    ship = commands.add_parser("ship", help="install a run's model as the shipped model with its card and TFLite")
    ship.add_argument("--run-dir", required=True, help="a finished (or stopped) run folder with best.keras")
    ship.add_argument("--data", required=True, help="the dataset whose validation split the card reports")
    ship.add_argument("--output", help="target .keras path (default: the shipped model path)")
    ship.add_argument(
        "--note",
        action="append",
        default=[],
        help="a sentence for the model card that the run folder cannot tell (repeatable)",
    )
    ship.add_argument(
        "--checkpoint",
        default="best.keras",
        help="the run's model to ship: best.keras (default), or average.keras written by `average`",
    )
    average = commands.add_parser(
        "average", help="average a run's epoch checkpoints (SWA) into average.keras, with batch norm recomputed"
    )
    average.add_argument("--run-dir", required=True, help="a run trained with keep_epoch_checkpoints")
    average.add_argument("--data", help="dataset path (default: the run config's 'data')")
    average.add_argument(
        "--from-epoch", type=int, help="average from this epoch to the run's last (default: every kept epoch)"
    )
    tune = commands.add_parser("tune", help="search hyperparameters with keras-tuner (and train the untuned baseline)")
    tune.add_argument("--data", help="dataset path (required for a new search)")
    tune.add_argument("--strategy", choices=["random", "grid", "bayesian", "hyperband"], default="bayesian")
    tune.add_argument("--max-trials", type=int, default=10, help="at most this many trials (default 10)")
    tune.add_argument("--epochs", type=int, default=3, help="epochs per trial, and Hyperband's maximum (default 3)")
    tune.add_argument("--subset", type=float, default=0.2, help="fraction of the training split to use (default 0.2)")
    tune.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock limit; 0 for none (default)")
    tune.add_argument("--architecture", default="compact_cnn", help="the architecture to tune (default compact_cnn)")
    tune.add_argument("--space", help="JSON file mapping hyperparameter names to the values to try")
    tune.add_argument("--dir", help="where search folders go (default: searches/ or $FERLIB_SEARCHES_DIR)")
    tune.add_argument("--runs-dir", help="training runs that must not be active (default: runs/ or $FERLIB_RUNS_DIR)")
    tune.add_argument("--resume", metavar="SEARCH_DIR", help="continue a stopped or interrupted search")
    tune.add_argument("--search-dir", help="run this existing, newly created search folder (as the dashboard does)")
    tune.add_argument("--verbose", action="store_true", help="Keras progress output for every epoch")
    tune.add_argument(
        "--workers", type=int, default=1, help="worker processes training trials at once on this machine (default 1)"
    )
    tune.add_argument("--join", metavar="HOST:PORT", help="work for the running search in --search-dir (its oracle)")
    tune.add_argument("--worker-id", help="with --join: this worker's id (default: this machine's name and 0)")
    tune.add_argument("--threads", type=int, default=0, help="with --join: cores this worker may use (0 = all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    handlers = {
        "info": _info,
        "faces": _faces,
        "train": _train,
        "snapshot": _snapshot,
        "label": _label,
        "explain": _explain,
        "evaluate": _evaluate,
        "predict": _predict,
        "ship": _ship,
        "average": _average,
        "tune": _tune,
    }
    try:
        return handlers[arguments.command](arguments)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` closed the pipe: no traceback, and no second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a path that cannot be read or written (a folder, a read-only place, a full disk)
        if error.filename:
            message = f"Expected a readable or writable path; received {error.filename!r} ({error.strerror or error})"
        else:
            message = f"Expected the operation to succeed; received {type(error).__name__}: {error}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: say so in one line, or show the traceback with --debug
        if arguments.debug:
            raise
        print(
            f"internal error: {type(error).__name__}: {error} (this is a bug in ferlib; run again with --debug for "
            "the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def _info(arguments: argparse.Namespace) -> int:
    from ferlib.classes import EMOTIONS
    from ferlib.data.datasets import SPLITS, ProgressPrinter, load_dataset

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


def _faces(arguments: argparse.Namespace) -> int:
    from ferlib.data.datasets import ProgressPrinter
    from ferlib.live.own_faces import collect_faces

    report = collect_faces(
        arguments.source,
        arguments.output,
        detector=arguments.detector,
        test_fraction=arguments.test_fraction,
        seed=arguments.seed,
        progress=ProgressPrinter("finding faces"),
    )
    for file, reason in report.skipped:
        print(f"skipped {file}: {reason}")
    print(report.summary())
    return 0


def _train(arguments: argparse.Namespace) -> int:
    folder.lower_priority()  # training yields the CPU to the dashboard and the live camera
    from ferlib.jobs import runs
    from ferlib.training import distributed
    from ferlib.training.config import TrainConfig
    from ferlib.training.trainer import run_training, run_worker

    if (arguments.cluster is None) != (arguments.worker_index is None):
        raise FerError("Expected --cluster and --worker-index together; received one of them")
    if arguments.cluster and arguments.workers != 1:
        raise FerError("Expected --workers (this machine's processes) or --cluster (machines), not both")
    cluster = distributed.parse_cluster(arguments.cluster, arguments.worker_index) if arguments.cluster else None
    if arguments.workers != 1:
        cluster = distributed.local_cluster(arguments.workers)  # the count is checked before a run is made
    if cluster and not cluster.is_chief:  # a worker: the chief owns the run folder and its checks
        if not arguments.run_dir:
            raise FerError("Expected --run-dir RUN (the chief's run folder, on shared storage) for a worker")
        run_worker(arguments.run_dir, cluster, arguments.data, resume=arguments.resume)
        print(f"worker={cluster.index} run={arguments.run_dir}", flush=True)
        return 0

    if (arguments.resume_from or arguments.resume or arguments.run_dir) and (
        arguments.name or arguments.tag or arguments.note
    ):
        raise FerError(
            "Expected --name, --tag and --note only for a new run; received them for an existing one: "
            "use python -m ferlib label FOLDER"
        )
    if (arguments.resume_from or arguments.resume or arguments.run_dir) and arguments.classes:
        raise FerError(
            "Expected --classes only for a new run; received it for an existing one, whose model has its own"
        )
    if arguments.resume_from:
        if arguments.resume or arguments.run_dir or arguments.config or arguments.initial_model:
            raise FerError(
                "Expected --resume-from SNAPSHOT alone (with --runs-dir, --data, --epochs); received it with "
                "--resume, --run-dir, --config or --initial-model"
            )
        from ferlib.training.snapshot import read_snapshot, restore_snapshot

        snapshot = read_snapshot(arguments.resume_from)
        config = snapshot.config
        if arguments.epochs is not None:
            config = config.updated(epochs=arguments.epochs)  # checked before anything is restored
        data = arguments.data or config.data
        if not data or not Path(data).expanduser().exists():
            raise FerError(
                f"Expected the run's dataset on this machine; received {data!r}, which does not exist here: "
                "pass --data PATH"
            )
        root = Path(arguments.runs_dir) if arguments.runs_dir else folder.default_runs_dir()
        folder.ensure_no_active_job(root)  # one job at a time here too
        run_dir = restore_snapshot(snapshot, root, data=arguments.data)
        arguments.resume = True
        if arguments.epochs is not None:
            from ferlib.atomic import atomic_write_json

            updated = runs.load_config(run_dir).updated(epochs=arguments.epochs)
            atomic_write_json(run_dir / folder.CONFIG_FILE, updated.to_dict())
        runs.ensure_run_may_train(run_dir, resume=True)
    elif arguments.resume or arguments.run_dir:
        if arguments.initial_model:
            raise FerError(
                "Expected --initial-model only for a new run; received it with --run-dir/--resume, "
                "whose run keeps the starting weights it was created with"
            )
        if not arguments.run_dir:
            raise FerError("Expected --run-dir RUN_FOLDER with --resume; received none")
        run_dir = Path(arguments.run_dir)
        config = runs.load_config(run_dir)
        if arguments.epochs is not None:
            config = config.updated(epochs=arguments.epochs)
        runs.ensure_run_may_train(run_dir, resume=arguments.resume)
        if arguments.epochs is not None:
            from ferlib.atomic import atomic_write_json

            atomic_write_json(run_dir / folder.CONFIG_FILE, config.to_dict())
    else:
        config = TrainConfig.from_file(arguments.config) if arguments.config else TrainConfig()
        changes = {}
        if arguments.epochs is not None:
            changes["epochs"] = arguments.epochs
        if arguments.data:
            changes["data"] = str(Path(arguments.data).expanduser().resolve())
        if arguments.initial_model:
            changes["initial_model"] = arguments.initial_model
        if arguments.classes:
            changes["classes"] = arguments.classes
        config = config.updated(**changes)
        if not config.data:
            raise FerError("Expected --data PATH (or 'data' in the config); received none")
        run_dir = runs.create_checked_run(config, arguments.runs_dir)
        if arguments.name or arguments.tag or arguments.note:
            from ferlib.jobs.folder import write_label

            write_label(run_dir, name=arguments.name, tags=arguments.tag, note=arguments.note)
    print(run_dir, flush=True)
    if cluster and arguments.workers != 1:  # this machine's workers, beside this process (the chief)
        distributed.start_local_workers(cluster, run_dir, arguments.data, arguments.resume)
        distributed.watch_local_workers(cluster, run_dir)
    verbose = 0 if arguments.quiet else 2
    status = run_training(run_dir, arguments.data, resume=arguments.resume, verbose=verbose, cluster=cluster)
    if cluster:
        distributed.wait_for_local_workers(cluster)
    workers = f" workers={cluster.size}" if cluster else ""
    print(f"status={status.get('state')} run={run_dir}{workers}", flush=True)
    return 0 if status.get("state") in ("finished", "stopped") else 1


def _label(arguments: argparse.Namespace) -> int:
    from ferlib.jobs.folder import write_label

    label = write_label(arguments.job_dir, name=arguments.name, tags=arguments.tag, note=arguments.note)
    print(f"name={label.name!r} tags={','.join(label.tags)} note={label.note!r}")
    return 0


def _snapshot(arguments: argparse.Namespace) -> int:
    from ferlib.training.snapshot import write_snapshot

    summary = write_snapshot(arguments.run_dir, arguments.output)
    best = "none" if summary.best_val_accuracy is None else f"{summary.best_val_accuracy:.4f}"
    print(
        f"snapshot={summary.path} run={summary.run_id} epochs={summary.epochs_completed}/{summary.epochs} "
        f"steps={summary.optimizer_steps} best={best} size_mib={summary.size_bytes / 2**20:.1f}"
    )
    return 0


def _evaluate(arguments: argparse.Namespace) -> int:
    import numpy as np

    from ferlib.atomic import atomic_write_json
    from ferlib.data.datasets import ProgressPrinter, load_dataset
    from ferlib.evaluation.metrics import evaluate_model, tta_mode
    from ferlib.nets.modelio import class_set_of, load_model

    tta = tta_mode(arguments.tta)  # a wrong mode or model is named before the data is loaded
    model, card = load_model(arguments.model)
    classes = class_set_of(card, arguments.model or "the shipped model")
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
    metrics = evaluate_model(model, images, labels, tta=tta, class_names=classes.names)
    metrics.update({"split": arguments.split, "data": str(arguments.data), "model": str(arguments.model or "default")})
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
    print(f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} n={metrics['n']}")
    return 0


def _predict(arguments: argparse.Namespace) -> int:
    from ferlib.live.video import is_video_path

    _check_output_paths(arguments)
    videos = [path for path in arguments.images if is_video_path(path)]
    if videos:
        if len(arguments.images) > 1:
            raise FerError(f"Expected photos or a single video; received {len(arguments.images)} files with a video")
        if arguments.json or arguments.annotated_dir:
            raise FerError("Expected --csv or --video-out with a video; received --json or --annotated-dir")
        return _predict_video(arguments, videos[0])
    if arguments.csv or arguments.video_out:
        raise FerError("Expected a video file with --csv or --video-out; received only photos")
    return _predict_photos(arguments)


def _check_output_paths(arguments: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that cannot be written: a file where a folder goes, or the reverse."""
    for option, value in (("--json", arguments.json), ("--csv", arguments.csv), ("--video-out", arguments.video_out)):
        if value and Path(value).is_dir():
            raise FerError(f"Expected a file path for {option}; received {value!r}, which is a folder")
    if arguments.video_out and not Path(arguments.video_out).suffix:
        raise FerError(f"Expected --video-out with a video suffix such as .mp4; received {arguments.video_out!r}")
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
    from ferlib.live.detection import make_detector
    from ferlib.live.pipeline import EmotionPipeline, annotate
    from ferlib.nets.classifier import make_classifier

    pipeline = EmotionPipeline(make_detector(arguments.detector), make_classifier(arguments.model))
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


def _ship(arguments: argparse.Namespace) -> int:
    from ferlib.evaluation.metrics import metric_key
    from ferlib.nets.modelio import default_model_path
    from ferlib.training.ship import ship_model

    target = Path(arguments.output) if arguments.output else default_model_path()
    card = ship_model(arguments.run_dir, arguments.data, target, notes=arguments.note, checkpoint=arguments.checkpoint)
    metrics = card["metrics"]
    tflite = target.with_suffix(".tflite")
    print(f"shipped {target} ({card['file_size_mb']} MB) and {tflite} ({card['tflite_size_mb']} MB)")
    print(
        f"parameters={card['parameters']} flops_per_face={card['flops_per_face']} "
        f"tflite_agreement={card['tflite_top1_agreement']:.4f}"
    )
    print(
        f"accuracy={metrics[metric_key('accuracy', 'none')]:.4f} "
        f"macro_f1={metrics[metric_key('macro_f1', 'none')]:.4f} "
        f"accuracy_tta={metrics[metric_key('accuracy', 'flip')]:.4f} "
        f"accuracy_tta_shifts={metrics[metric_key('accuracy', 'shifts')]:.4f} n={metrics['n']}"
    )
    return 0


def _average(arguments: argparse.Namespace) -> int:
    from ferlib.evaluation.metrics import metric_key
    from ferlib.jobs.runs import AVERAGE_MODEL, epoch_span
    from ferlib.training.averaging import average_run

    card = average_run(arguments.run_dir, arguments.data, arguments.from_epoch, progress=print)
    print(f"saved {Path(arguments.run_dir) / AVERAGE_MODEL}: the average of {epoch_span(card['averaged_epochs'])}")
    for name, metrics in (
        ("average", card["metrics"]),
        (f"best (epoch {card['best_checkpoint']['epoch']})", card["best_checkpoint"]),
    ):
        if metric_key("accuracy", "none") in metrics:
            print(
                f"{name}: accuracy={metrics[metric_key('accuracy', 'none')]:.4f} "
                f"macro_f1={metrics[metric_key('macro_f1', 'none')]:.4f} "
                f"accuracy_tta={metrics[metric_key('accuracy', 'flip')]:.4f}"
            )
    return 0


def _tune(arguments: argparse.Namespace) -> int:
    folder.lower_priority()
    from ferlib.jobs import searches

    if arguments.join:
        return _join_search(arguments)
    if arguments.resume and arguments.search_dir:
        raise FerError("Expected either --resume SEARCH_DIR or --search-dir SEARCH_DIR; received both")
    resume = bool(arguments.resume)
    if arguments.resume:
        search_dir = searches.claim_for_resume(arguments.resume, arguments.runs_dir)
    elif arguments.search_dir:
        search_dir, resume = _handed_over_search(Path(arguments.search_dir))
    else:
        search_dir = _new_search(arguments)
    print(search_dir, flush=True)

    from ferlib.tuning.tuner import run_search

    status = run_search(search_dir, arguments.data, resume=resume, verbose=2 if arguments.verbose else 0)
    result = {key: status.get(key) for key in ("best_score", "baseline_score", "trials")}
    print(f"status={status.get('state')} search={search_dir}", flush=True)

    def shown(score: float | None) -> str:
        return f"{score:.4f}" if isinstance(score, (int, float)) else "none"

    workers = f" workers={status['workers']}" if status.get("workers") else ""
    print(
        f"best_score={shown(result['best_score'])} baseline={shown(result['baseline_score'])} "
        f"trials={result['trials']}{workers}"
    )
    return 0 if status.get("state") in ("finished", "stopped") else 1


def _join_search(arguments: argparse.Namespace) -> int:
    """`tune --search-dir DIR --join HOST:PORT`: one worker of a search whose chief runs elsewhere (or here)."""
    from ferlib.tuning.distributed import worker_id
    from ferlib.tuning.tuner import run_worker

    if not arguments.search_dir or arguments.resume:
        raise FerError(
            "Expected --join HOST:PORT with --search-dir SEARCH_DIR (the search's shared folder); received "
            "none, or --resume"
        )
    name = arguments.worker_id or worker_id(0)
    completed = run_worker(
        arguments.search_dir,
        arguments.join,
        name,
        threads=arguments.threads,
        data=arguments.data,
        verbose=2 if arguments.verbose else 0,
    )
    print(f"worker={name} trials={completed}")
    return 0


def _handed_over_search(search_dir: Path) -> tuple[Path, bool]:
    """A search folder a launcher created or claimed for this process ('created'); whether it is a resume."""
    from ferlib.jobs import searches

    searches.load_search_config(search_dir)
    status = folder.read_status(search_dir)
    if status.get("state") != "created":
        raise FerError(
            f"Expected a search folder just created or claimed for this process with --search-dir; received "
            f"{search_dir.name}, which is {status.get('state')}: continue a stopped search with --resume"
        )
    folder.ensure_handed_over(search_dir, status)
    return search_dir, bool(status.get("resumed"))


def _new_search(arguments: argparse.Namespace) -> Path:
    """Create a search folder from the command line's settings, refused while a run or a search is active."""
    import json

    from ferlib.jobs import searches
    from ferlib.training.config import TrainConfig
    from ferlib.tuning.search_space import default_space

    if not arguments.data:
        raise FerError("Expected --data PATH for a new search; received none")
    data = Path(arguments.data).expanduser().resolve()
    if not data.exists():
        raise FerError(f"Expected an existing dataset; received {arguments.data!r}, which does not exist")
    space = default_space()
    if arguments.space:
        try:
            space = json.loads(Path(arguments.space).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise FerError(
                f"Expected a readable JSON search space file; received {arguments.space!r} ({error})"
            ) from None
    config = search_space.SearchConfig(
        workers=arguments.workers,
        strategy=arguments.strategy,
        max_trials=arguments.max_trials,
        epochs=arguments.epochs,
        subset=arguments.subset,
        max_minutes=arguments.max_minutes,
        space=space,
        base=TrainConfig(architecture=arguments.architecture, data=str(data)),
    )
    searches_root = Path(arguments.dir) if arguments.dir else folder.default_searches_dir()
    runs_root = Path(arguments.runs_dir) if arguments.runs_dir else folder.default_runs_dir()
    with folder.launch_lock(runs_root.expanduser().resolve()):
        folder.ensure_no_active_job(runs_root, searches_dir=searches_root)
        search_dir = searches.create_search(config, searches_root)
        folder.write_status(search_dir, "created", pid=os.getpid())
    return search_dir


if __name__ == "__main__":
    sys.exit(main())
