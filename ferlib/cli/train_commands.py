"""`train`, `label`, `snapshot`, `ship`, `average` and `ensemble`: a run from its start to the shipped model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferlib.cli.model_commands import weight_list
from ferlib.errors import FerError
from ferlib.jobs import folder, processes
from ferlib.nets.precision import PRECISIONS, precision_for_this_cpu

DEFAULT_TEACHER_WEIGHT = 0.5  # with --teacher: half of each face's target is its label, half the teachers' view


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model in a new run folder (or resume one)")
    train.add_argument("--data", help="dataset path (default: the config's 'data')")
    train.add_argument("--config", help="JSON file with TrainConfig settings")
    train.add_argument("--epochs", type=int, help="override the config's epochs")
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="override the config's precision; mixed_bfloat16 trains about 1.4x faster on CPUs with AVX-512 BF16 "
        "or AMX and many times slower on others (a resumed run continues at the same step in the new precision)",
    )
    train.add_argument(
        "--classes", help="the classes to tell apart, e.g. happy,sad (default: the config's, else all seven)"
    )
    train.add_argument(
        "--initial-model",
        help="start from this .keras model's weights (same architecture and sizes), fresh schedule",
    )
    train.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="MODEL",
        help="also learn from this .keras model's probabilities (knowledge distillation; repeatable; a new run)",
    )
    train.add_argument(
        "--teacher-weight",
        type=float,
        help=f"the share of each face's target the teachers' probabilities make (default {DEFAULT_TEACHER_WEIGHT})",
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
    train.set_defaults(handler=_train)

    label = commands.add_parser("label", help="name, tag or note a run or search (replaces its label)")
    label.add_argument("job_dir", metavar="FOLDER", help="a run or search folder")
    label.add_argument("--name", default="", help="its name")
    label.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    label.add_argument("--note", default="", help="a note")
    label.set_defaults(handler=_label)

    snapshot = commands.add_parser(
        "snapshot", help="write a run's portable snapshot: one file that `train --resume-from` continues anywhere"
    )
    snapshot.add_argument("--run-dir", required=True, help="a run folder with at least one finished epoch")
    snapshot.add_argument("--output", required=True, help="the snapshot file to write (e.g. run.snapshot.zip)")
    snapshot.set_defaults(handler=_snapshot)

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
    ship.set_defaults(handler=_ship)

    ensemble = commands.add_parser(
        "ensemble", help="combine models over the same classes into one model that averages them, shipped with a card"
    )
    ensemble.add_argument("models", nargs="*", metavar="MODEL", help="two or more .keras models over the same classes")
    ensemble.add_argument("--data", help="the dataset whose validation split the card reports")
    ensemble.add_argument("--output", help="target .keras path, e.g. models/fer_vgg_ensemble.keras")
    ensemble.add_argument(
        "--weights", type=weight_list, help="one weight per model, e.g. 0.6,0.4 (scaled to sum to 1; default: equal)"
    )
    ensemble.add_argument("--note", action="append", default=[], help="a sentence for the card (repeatable)")
    ensemble.add_argument(
        "--job-dir",
        help="instead of the above: run the ensemble job this folder describes (as the dashboard starts it)",
    )
    ensemble.set_defaults(handler=_ensemble)

    average = commands.add_parser(
        "average", help="average a run's epoch checkpoints (SWA) into average.keras, with batch norm recomputed"
    )
    average.add_argument("--run-dir", required=True, help="a run trained with keep_epoch_checkpoints")
    average.add_argument("--data", help="dataset path (default: the run config's 'data')")
    average.add_argument(
        "--from-epoch", type=int, help="average from this epoch to the run's last (default: every kept epoch)"
    )
    average.set_defaults(handler=_average)


def _train(arguments: argparse.Namespace) -> int:
    processes.lower_priority()  # training yields the CPU to the dashboard and the live camera
    from ferlib.training import distributed
    from ferlib.training.trainer import run_training, run_worker

    cluster = _cluster(arguments)
    if cluster and not cluster.is_chief:  # a worker: the chief owns the run folder and its checks
        if not arguments.run_dir:
            raise FerError("Expected --run-dir RUN (the chief's run folder) for a worker; received none")
        if (
            _overrides(arguments)
            or arguments.initial_model
            or arguments.teacher
            or arguments.teacher_weight is not None
        ):
            raise FerError(
                "Expected --epochs, --precision, --initial-model and --teacher on the chief only; received them for a "
                "worker, which trains the run's config as the chief wrote it"
            )
        run_worker(arguments.run_dir, cluster, arguments.data, resume=arguments.resume)
        print(f"worker={cluster.index} run={arguments.run_dir}", flush=True)
        return 0

    if arguments.resume_from:
        run_dir, resume = _restored_run(arguments), True
    elif arguments.resume or arguments.run_dir:
        run_dir, resume = _existing_run(arguments), arguments.resume
    else:
        run_dir, resume = _new_run(arguments), False
    print(run_dir, flush=True)
    if cluster and arguments.workers != 1:  # this machine's workers, beside this process (the chief)
        distributed.start_local_workers(cluster, run_dir, arguments.data, resume)
        distributed.watch_local_workers(cluster, run_dir)
    verbose = 0 if arguments.quiet else 2
    status = run_training(run_dir, arguments.data, resume=resume, verbose=verbose, cluster=cluster)
    if cluster:
        distributed.wait_for_local_workers(cluster)
    workers = f" workers={cluster.size}" if cluster else ""
    print(f"status={status.get('state')} run={run_dir}{workers}", flush=True)
    return 0 if status.get("state") in ("finished", "stopped") else 1


def _cluster(arguments: argparse.Namespace):
    """The tf.distribute cluster the options describe (this machine's workers, or machines), else None."""
    from ferlib.training import distributed

    if (arguments.cluster is None) != (arguments.worker_index is None):
        raise FerError("Expected --cluster and --worker-index together; received one of them")
    if arguments.cluster and arguments.workers != 1:
        raise FerError("Expected --workers (this machine's processes) or --cluster (machines); received both")
    if arguments.workers != 1:
        return distributed.local_cluster(arguments.workers)  # the count is checked before a run is made
    return distributed.parse_cluster(arguments.cluster, arguments.worker_index) if arguments.cluster else None


def _check_options_of_existing_run(arguments: argparse.Namespace) -> None:
    if arguments.name or arguments.tag or arguments.note:
        raise FerError(
            "Expected --name, --tag and --note only for a new run; received them for an existing one: "
            "use python -m ferlib label FOLDER"
        )
    if arguments.classes:
        raise FerError(
            "Expected --classes only for a new run; received it for an existing one, whose model has its own"
        )


def _restored_run(arguments: argparse.Namespace) -> Path:
    """The run folder recreated from `--resume-from SNAPSHOT`, its dataset and the epoch count checked first."""
    from ferlib.jobs import runs
    from ferlib.training.snapshot import read_snapshot, restore_snapshot

    _check_options_of_existing_run(arguments)
    new_run_only = arguments.initial_model or arguments.teacher or arguments.teacher_weight is not None
    if arguments.resume or arguments.run_dir or arguments.config or new_run_only:
        raise FerError(
            "Expected --resume-from SNAPSHOT alone (with --runs-dir, --data, --epochs, --precision); received it with "
            "--resume, --run-dir, --config, --initial-model, --teacher or --teacher-weight"
        )
    snapshot = read_snapshot(arguments.resume_from)
    note = _keep_precision_fast_here(arguments, snapshot.config.precision)
    config = snapshot.config.updated(**_overrides(arguments))  # checked before anything is restored
    data = arguments.data or config.data
    if not data or not Path(data).expanduser().exists():
        raise FerError(
            f"Expected the run's dataset on this machine; received {data!r}, which does not exist here: "
            "pass --data PATH"
        )
    root = Path(arguments.runs_dir) if arguments.runs_dir else folder.default_runs_dir()
    folder.ensure_no_active_job(root)  # one job at a time here too
    run_dir = restore_snapshot(snapshot, root, data=arguments.data)
    _write_overrides(run_dir, arguments)
    runs.ensure_run_may_train(run_dir, resume=True)
    _print_note(note)
    return run_dir


def _existing_run(arguments: argparse.Namespace) -> Path:
    """The run folder of `--run-dir` (a dashboard's new run, or one to `--resume`), checked to be trainable."""
    from ferlib.jobs import runs
    from ferlib.training import run_launch

    _check_options_of_existing_run(arguments)
    if arguments.initial_model or arguments.teacher or arguments.teacher_weight is not None:
        raise FerError(
            "Expected --initial-model and --teacher only for a new run; received them with --run-dir/--resume, "
            "whose run keeps the starting weights and teachers it was created with"
        )
    if not arguments.run_dir:
        raise FerError("Expected --run-dir RUN_FOLDER with --resume; received none")
    run_dir = Path(arguments.run_dir)
    config = run_launch.load_config(run_dir)
    note = _keep_precision_fast_here(arguments, config.precision) if arguments.resume else ""
    config.updated(**_overrides(arguments))  # a wrong setting is refused before any change
    runs.ensure_run_may_train(run_dir, resume=arguments.resume)
    _write_overrides(run_dir, arguments)
    _print_note(note)
    return run_dir


def _keep_precision_fast_here(arguments: argparse.Namespace, precision: str) -> str:
    """A run resumed without --precision continues in float32 if it trained in mixed bfloat16 and this CPU has no
    native bfloat16, where it would train many times slower (same step and weights; --precision keeps it). Not
    across machines (--cluster): the other machines' workers read the run's precision as they start. Returns
    the note to print once the resume is accepted ('' when nothing changes)."""
    here = precision_for_this_cpu(precision)
    if arguments.precision is not None or arguments.cluster or here == precision:
        return ""
    arguments.precision = here
    return (
        f"note: this run trained in {precision}, and this CPU has no native bfloat16: it continues in {here}, "
        f"which its config now says (--precision {precision} keeps or restores it)"
    )


def _print_note(note: str) -> None:
    if note:
        print(note, file=sys.stderr, flush=True)


def _overrides(arguments: argparse.Namespace) -> dict:
    """The settings an existing run may change when it continues: its epoch count and its precision."""
    changes = {"epochs": arguments.epochs, "precision": arguments.precision}
    return {name: value for name, value in changes.items() if value is not None}


def _write_overrides(run_dir: Path, arguments: argparse.Namespace) -> None:
    from ferlib.atomic import atomic_write_json
    from ferlib.training import run_launch

    if _overrides(arguments):
        updated = run_launch.load_config(run_dir).updated(**_overrides(arguments))
        atomic_write_json(run_dir / folder.CONFIG_FILE, updated.to_dict())


def _new_run(arguments: argparse.Namespace) -> Path:
    """A new run folder from the config file and the command line's settings, labelled if asked."""
    from ferlib.training import run_launch
    from ferlib.training.config import TrainConfig

    config = TrainConfig.from_file(arguments.config) if arguments.config else TrainConfig()
    changes = _overrides(arguments)
    if arguments.data:
        changes["data"] = str(Path(arguments.data).expanduser().resolve())
    if arguments.initial_model:
        changes["initial_model"] = arguments.initial_model
    if arguments.classes:
        changes["classes"] = arguments.classes
    if arguments.teacher:
        changes["teachers"] = arguments.teacher
        changes["teacher_weight"] = config.teacher_weight or DEFAULT_TEACHER_WEIGHT
    if arguments.teacher_weight is not None:
        changes["teacher_weight"] = arguments.teacher_weight
    config = config.updated(**changes)
    if not config.data:
        raise FerError("Expected --data PATH (or 'data' in the config); received none")
    run_dir = run_launch.create_checked_run(config, arguments.runs_dir)
    if arguments.name or arguments.tag or arguments.note:
        folder.write_label(run_dir, name=arguments.name, tags=arguments.tag, note=arguments.note)
    return run_dir


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


def _ship(arguments: argparse.Namespace) -> int:
    from ferlib.nets.modelio import default_model_path
    from ferlib.training.ship import ship_model

    target = Path(arguments.output) if arguments.output else default_model_path()
    card = ship_model(arguments.run_dir, arguments.data, target, notes=arguments.note, checkpoint=arguments.checkpoint)
    tflite = target.with_suffix(".tflite")
    print(f"shipped {target} ({card['file_size_mb']} MB) and {tflite} ({card['tflite_size_mb']} MB)")
    print(
        f"parameters={card['parameters']} flops_per_face={card['flops_per_face']} "
        f"tflite_agreement={card['tflite_top1_agreement']:.4f}"
    )
    print(_shipped_figures(card))
    return 0


def _shipped_figures(card: dict) -> str:
    """One line of a shipped card's validation figures: plain accuracy and macro-F1, then accuracy with each TTA
    mode it records (flip, its ten views, the zooms)."""
    from ferlib.evaluation.metrics import card_modes, metric_key

    metrics, modes = card["metrics"], card_modes(card["config"])
    figures = [f"accuracy={metrics[metric_key('accuracy', 'none')]:.4f}"]
    figures.append(f"macro_f1={metrics[metric_key('macro_f1', 'none')]:.4f}")
    figures.append(f"accuracy_tta={metrics[metric_key('accuracy', 'flip')]:.4f}")
    figures += [f"accuracy_tta_{mode}={metrics[metric_key('accuracy', mode)]:.4f}" for mode in modes]
    return " ".join([*figures, f"n={metrics['n']}"])


def _ensemble(arguments: argparse.Namespace) -> int:
    from ferlib.training.combine import ship_ensemble, ship_ensemble_job

    if arguments.job_dir:
        if arguments.models or arguments.data or arguments.output or arguments.weights or arguments.note:
            raise FerError("Expected --job-dir alone, since the job's folder names the models; received both")
        status = ship_ensemble_job(arguments.job_dir)
        print(f"ensemble job {Path(arguments.job_dir).name}: {status.get('state')}")
        return 0
    if not (arguments.data and arguments.output):
        given = "only --data" if arguments.data else "only --output" if arguments.output else "neither"
        raise FerError(f"Expected --data and --output (or --job-dir); received {given}")
    target = Path(arguments.output)
    card = ship_ensemble(arguments.models, arguments.data, target, arguments.weights, arguments.note)
    weights = " ".join(f"{member['model']}={member['weight']:.3f}" for member in card["config"]["members"])
    print(f"shipped {target} ({card['file_size_mb']} MB): {weights}")
    print(
        f"parameters={card['parameters']} flops_per_face={card['flops_per_face']} "
        f"int8_accuracy={card['int8_validation_accuracy']:.4f}"
    )
    print(_shipped_figures(card))
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
