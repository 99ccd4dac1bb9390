"""`tune`: a keras-tuner search created, resumed, handed over by the dashboard, or joined as a worker."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ferlib.errors import FerError
from ferlib.jobs import folder, processes
from ferlib.tuning import search_space


def add_commands(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser("tune", help="search hyperparameters with keras-tuner (and train the untuned baseline)")
    tune.add_argument("--data", help="dataset path (required for a new search)")
    defaults = search_space.SearchConfig()
    tune.add_argument("--strategy", choices=search_space.STRATEGIES, default=defaults.strategy)
    tune.add_argument(
        "--max-trials",
        type=int,
        default=defaults.max_trials,
        help=f"at most this many trials (default {defaults.max_trials})",
    )
    tune.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help=f"epochs per trial, and Hyperband's maximum (default {defaults.epochs})",
    )
    tune.add_argument(
        "--subset",
        type=float,
        default=defaults.subset,
        help=f"fraction of the training split to use (default {defaults.subset})",
    )
    tune.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock limit; 0 for none (default)")
    architecture = defaults.base.architecture
    tune.add_argument("--architecture", default=architecture, help=f"the architecture to tune (default {architecture})")
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
    tune.set_defaults(handler=_tune)


def _tune(arguments: argparse.Namespace) -> int:
    processes.lower_priority()
    from ferlib.tuning import search_launch

    if arguments.join:
        return _join_search(arguments)
    if arguments.resume and arguments.search_dir:
        raise FerError("Expected either --resume SEARCH_DIR or --search-dir SEARCH_DIR; received both")
    resume = bool(arguments.resume)
    if arguments.resume:
        search_dir = search_launch.claim_for_resume(arguments.resume, arguments.runs_dir, arguments.data)
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
    from ferlib.tuning import search_launch

    search_launch.load_search_config(search_dir)
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

    from ferlib.training.config import TrainConfig
    from ferlib.tuning import search_launch
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
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
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
        search_dir = search_launch.create_search(config, searches_root)
        folder.write_status(search_dir, "created", pid=os.getpid())
    return search_dir
