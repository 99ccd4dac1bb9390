"""`info` and `faces`: what a dataset holds, and a dataset made from your own labelled photos."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="counts per split and class, and the load report")
    info.add_argument("--data", required=True, help="Kaggle folder/.zip, fer2013.csv, or a <class>/* folder")
    info.set_defaults(handler=_info)

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
    faces.set_defaults(handler=_faces)


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
