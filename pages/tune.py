"""Tune: a keras-tuner search in its own process, its trials against the untuned baseline, the best one trained."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.data.sources import dataset_sources
from ferlib.evaluation import catalog
from ferlib.jobs import folder, searches
from ferlib.nets.architectures import architecture_names
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_launch, search_space
from pages.components import access, charts, common, jobs, run_settings
from pages.components.common import attempt, human, percent, require_app

require_app("pages/tune.py")

STOP_HELP = "Stop after the current batch. Finished trials are kept; the one cut short runs again on resume."
RESUME_HELP = "Continue in a new process: keras-tuner reloads the finished trials."
SEARCH = jobs.JobKind(
    "tune", "search", "searches", searches.is_search, search_launch.resume_search, STOP_HELP, RESUME_HELP
)
STRATEGY_HELP = "random: values drawn independently. grid: every combination in order. bayesian: a Gaussian process "
STRATEGY_HELP += "proposes promising values. hyperband: many short trials, only the best continued to the epoch budget."
DEFAULTS = search_space.SearchConfig()
EPOCHS_HELP = (
    "Epochs each trial and the baseline train (Hyperband's maximum). FER-2013 networks barely learn in their first 500 "
    "steps of 64 faces: with fewer, every trial scores like always answering happy. 10 epochs on 20% of FER-2013's "
    "training faces are 900 steps."
)
BUDGET = [  # SearchConfig field, label, minimum, maximum, step, help
    ("max_trials", "Max trials", 1, 500, 1, "The search ends after this many trials (or earlier)."),
    ("epochs", "Epochs per trial", 1, 100, 1, EPOCHS_HELP),
    ("subset", "Training fraction", 0.05, 1.0, 0.05, "A stratified share of the training split every trial uses."),
    ("max_minutes", "Time limit (min)", 0, 10000, 1, "No new trial starts after this many minutes. 0: no limit."),
    ("workers", "Workers", 1, max(1, os.cpu_count() or 1), 1, "Trials trained at once here, each in its process."),
]
NOTES = {
    "stopped": "Stopped. **Resume** continues the search; a trial cut short is run again.",
    "interrupted": "The search process ended unfinished (killed, or the machine restarted). **Resume** continues it.",
}


def search_details(search_dir: Path, status: dict[str, Any]) -> None:
    """Status, scores, trials, charts, actions and log of one search, redrawn every few seconds while it runs."""
    state, locked = str(status.get("state")), access.locked()
    config = attempt("This search's settings cannot be read.", lambda: search_launch.load_search_config(search_dir))
    if config is None:
        return
    trials, best = searches.read_trials(search_dir), searches.read_best(search_dir) or {}
    baseline_record = searches.read_baseline(search_dir)
    baseline = (baseline_record or {}).get("score")
    budget = f"{config.max_trials} trials of {config.epochs} epoch(s) on {config.subset:.0%} of the training images"
    limit = f", at most {config.max_minutes:g} min" if config.max_minutes else ""
    reason = f"The search failed: {status.get('error', 'no reason was recorded')}. The log below has the details."
    notes = {**NOTES, "failed": reason, "finished": f"Finished: {status.get('reason', 'all trials done')}."}
    workers = f" · {config.workers} workers" if config.workers > 1 else ""
    description = f"{config.strategy} · {config.base.architecture}{workers} · up to {budget}{limit}"
    jobs.header(search_dir, status, description, notes)
    gain = searches.gain(best.get("score"), baseline)
    relative = f"{gain[1]:+.1%} relative" if gain and math.isfinite(gain[1]) else None
    common.metric_row(
        [
            ("Baseline", percent(baseline), "Validation accuracy of the untuned config on the same budget."),
            ("Best trial", percent(best.get("score")), "The best validation accuracy of a completed trial."),
            ("Gain over baseline", f"{gain[0] * 100:+.1f} pts" if gain else "–", "Accuracy points.", relative),
            ("Trials done", f"{sum(row.status == 'completed' for row in trials)} / {config.max_trials}", None),
        ]
    )
    if note := searches.untrained_baseline_note(baseline_record, config.epochs, config.subset):
        st.info(note, icon=":material/info:")
    if state in folder.ACTIVE_STATES:
        records = searches.read_search_progress(search_dir)
        trial = records[-1].get("trial") if records else None
        prefix = "Baseline · " if trial == searches.BASELINE_TRIAL else f"Trial {trial} · " if trial else ""
        jobs.progress_bar(records, status, waiting="Loading the data and building the baseline model…", prefix=prefix)
        if oracle := status.get("oracle"):
            st.caption("Add a worker on another machine that shares this folder and the dataset (docs/scaling.md):")
            st.code(
                f"python -m ferlib tune --search-dir {search_dir} --join {oracle} --data {config.base.data}", "bash"
            )
    trials_table(trials, list(config.space))
    completed = [(row.hyperparameters, row.score) for row in trials if row.status == "completed"]
    if completed := [(values, score) for values, score in completed if score is not None]:
        curve_column, values_column = st.columns([2, 3])
        figure = charts.best_so_far([score for _, score in completed], searches.best_so_far(trials), baseline)
        curve_column.plotly_chart(figure, key=f"tune-curve-{search_dir.name}", width="stretch")
        figure = charts.hyperparameter_scores(config.space, completed, baseline)
        values_column.plotly_chart(figure, key=f"tune-values-{search_dir.name}", width="stretch")
    else:
        st.caption("The best-so-far curve and each hyperparameter's scores appear after the first completed trial.")
    jobs.stop_resume_buttons(SEARCH, search_dir, state, locked or search_launch.resume_refusal(search_dir))
    train_best_section(search_dir, best, state, locked)


def train_best_section(search_dir: Path, best: dict[str, Any], state: str, locked: str | None) -> None:
    """Train the best trial's configuration on all the training data, optionally learning from other models."""
    st.markdown("**Train the best configuration**")
    if not best or state in folder.ACTIVE_STATES:
        st.caption("Once the search has ended, its best configuration can be trained in full here.")
        return
    values = ", ".join(f"{human(name)} {value}" for name, value in best.get("hyperparameters", {}).items())
    st.caption(f"Trial {best.get('trial')} ({percent(best.get('score'))}): {values}")
    classes = (best.get("config") or {}).get("classes")
    key = f"tune-full-{search_dir.name}"
    teachers = run_settings.teacher_controls(catalog.available_models(), classes, key=key)
    epochs_column, button_column = st.columns([1, 2], vertical_alignment="bottom")
    help_text = "The full run trains on all the training images (not the search's fraction) for this many epochs."
    options = dict(key=f"tune-full-epochs-{search_dir.name}", help=help_text)
    epochs = epochs_column.number_input("Epochs for the full run", 1, 500, TrainConfig().epochs, **options)
    options = dict(icon=":material/rocket_launch:", type="primary", disabled=bool(locked), help=locked)
    if not button_column.button("Train with the best hyperparameters", key=f"tune-best-{search_dir.name}", **options):
        return
    full = lambda: search_launch.full_training_config(search_dir, int(epochs)).updated(**teachers)  # noqa: E731
    if (config := attempt("The best configuration cannot be trained.", full)) is None:
        return
    if run_dir := attempt("The training run could not be started.", lambda: run_launch.start_run(config), OSError):
        jobs.started("training", run_dir, f"Started training run {run_dir.name}: watch it on Training.", "tune")


def trials_table(trials: list[searches.TrialRow], names: list[str]) -> None:
    """Every trial with its status, score, time, worker and values, in words and one number format."""
    st.markdown("**Trials**")
    workers = any(row.worker for row in trials)
    rows = [
        {"trial": row.trial, "status": row.status, "val_accuracy": row.score, "duration": row.duration_seconds}
        | {"epochs": row.epochs}
        | ({"worker": row.worker or "this machine"} if workers else {})
        | {name: row.hyperparameters.get(name, "baseline's") for name in names}
        for row in trials
    ]
    if rows:
        st.dataframe(common.readable_table(rows, {"val_accuracy": "Val. accuracy"}), hide_index=True)
    else:
        st.caption("Trials appear here as they start, after the baseline has trained.")


def new_search_section(blocked: str | None) -> None:
    """The search's settings; submitting starts it in its own process and the monitor switches to it."""
    st.subheader("New search")
    if blocked:
        st.warning(blocked, icon=":material/block:")
    if not (sources := dataset_sources()):
        common.show_no_dataset_hint()
    with st.form("tune_new_search", border=True):
        first, second, third, fourth = st.columns([3, 2, 2, 1])
        dataset = first.selectbox("Dataset", sources, format_func=common.dataset_label, key="tune_dataset")
        strategies, names = search_space.STRATEGIES, architecture_names()
        options = dict(index=strategies.index(DEFAULTS.strategy), key="tune_strategy", help=STRATEGY_HELP)
        strategy = second.selectbox("Strategy", strategies, **options)
        options = dict(key="tune_architecture", help="Its defaults are the baseline; compact_cnn is the fast choice.")
        architecture = third.selectbox("Architecture", names, names.index(DEFAULTS.base.architecture), **options)
        seed = fourth.number_input("Seed", 0, 2**31 - 1, 2013, key="tune_seed", help="Seeds weights, data, sampling.")
        settings = {}
        for column, (field, label, low, high, step, help_text) in zip(st.columns(5), BUDGET, strict=True):
            widget = column.slider if isinstance(step, float) else column.number_input
            default = type(step)(getattr(DEFAULTS, field))
            settings[field] = widget(label, low, high, default, step, key=f"tune_{field}", help=help_text)
        st.markdown("**Search space** (values to try; a single value fixes the setting, none keeps the baseline's)")
        columns, space = st.columns(2), {}
        for index, (name, spec) in enumerate(search_space.SPECS.items()):
            options = dict(key=f"tune_space_{name}", help=spec.help)
            if chosen := columns[index % 2].multiselect(human(name), spec.options, spec.default_choices, **options):
                space[name] = chosen
        options = dict(type="primary", icon=":material/rocket_launch:", disabled=bool(blocked) or not sources)
        submitted = st.form_submit_button("Start search", help="It runs in its own process, tab or no tab.", **options)
    data = str(Path(dataset).expanduser().resolve()) if dataset is not None else ""

    def configured() -> search_space.SearchConfig:
        base = TrainConfig(architecture=architecture, data=data, seed=int(seed))
        return search_space.SearchConfig(base=base, strategy=strategy, space=space, **settings)

    if not submitted or (config := attempt("These settings cannot be used.", configured)) is None:
        return
    if search_dir := attempt("The search could not be started.", lambda: search_launch.start_search(config), OSError):
        jobs.started("tune", search_dir, f"Started {search_dir.name}: it runs in its own process, tab or no tab.")


st.title("Tune")
st.caption("Search hyperparameters with keras-tuner, measure each trial against the untuned baseline, train the best.")
common.show_flash("tune")
searches_directory, locked = folder.default_searches_dir(), access.locked()
every_search = searches.list_searches(searches_directory)
jobs.monitor(SEARCH, searches_directory, every_search, search_details, locked)
new_search_section(locked or jobs.busy_message("for it to finish, then start a search", all_searches=every_search))
st.caption(f"Search folders live in `{searches_directory}`.")
