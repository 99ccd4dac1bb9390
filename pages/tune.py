"""Tune: search hyperparameters with keras-tuner in a background process, watch the trials, train the best one.

Like the Training page, the page never trains in the Streamlit script: it writes a search folder and starts
`python -m ferlib tune` detached (`ferlib.jobs.searches.start_search`), then only reads the folder. Every search also
trains the untuned baseline config on the same budget, so the gain of the best trial is measured. One job (a
training run or a search) runs at a time on this machine.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ferlib.errors import FerError
from ferlib.jobs import folder, runs, searches
from ferlib.nets.architectures import architecture_names
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_space
from ferlib.tuning.search_space import SPECS, baseline_values
from pages.common import (
    dataset_sources,
    flash,
    format_duration,
    require_app,
    show_error,
    show_flash,
    show_monitor_message,
    show_no_dataset_hint,
    stop_resume_buttons,
)

require_app("pages/tune.py")

REFRESH_SECONDS = 2.0
LOG_LINES = 30
STRATEGY_HELP = {
    "random": "Random search: samples every hyperparameter independently. A robust default for small budgets.",
    "grid": "Grid search: tries the combinations in order, varying the last hyperparameter first; exhaustive only "
    "when the space is small.",
    "bayesian": "Bayesian optimisation: a Gaussian process learns which values score well from the trials so far "
    "and proposes the most promising next ones (the first trials are random).",
    "hyperband": "Hyperband: trains many configurations for a few epochs and continues only the best ones up to "
    "the epoch budget; spends the budget on promising trials.",
}
STATE_LABELS = {
    "created": ("starting", "blue", ":material/hourglass_top:"),
    "running": ("running", "blue", ":material/play_circle:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "failed": ("failed", "red", ":material/error:"),
    "stopped": ("stopped", "orange", ":material/stop_circle:"),
    "interrupted": ("interrupted", "orange", ":material/warning:"),
}


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, (state,))[0]


def percent(value: float | None) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


# --- watching a search --------------------------------------------------------------------------------------


def choose_watched_search(all_searches: list[searches.SearchSummary]) -> str:
    """The search shown: the one just started, else the user's choice, else the active or newest one."""
    search_ids = [search.search_id for search in all_searches]
    states = {search.search_id: search.state for search in all_searches}
    if "tune_watch_next" in st.session_state:
        st.session_state["tune_watched_search"] = st.session_state.pop("tune_watch_next")
    if st.session_state.get("tune_watched_search") not in search_ids:
        active = [search for search in all_searches if search.state in folder.ACTIVE_STATES]
        st.session_state["tune_watched_search"] = (active or all_searches)[0].search_id
    return st.selectbox(
        "Search",
        search_ids,
        key="tune_watched_search",
        format_func=lambda search_id: f"{search_id} · {state_label(states[search_id])}",
        help="Searches are read from their folders, so one started from the command line or another tab is found "
        "here too. The newest is listed first.",
    )


def watch_section(searches_dir: Path, all_searches: list[searches.SearchSummary], runs_dir: Path) -> None:
    st.subheader("Watch a search")
    if not all_searches:
        st.info(
            "No searches yet. Choose a strategy, the values to try and a budget under **New search** below and "
            "press **Start search**: it runs in its own process, first training the untuned baseline, then the "
            "trials. You can close this tab and come back.",
            icon=":material/tune:",
        )
        return
    search_id = choose_watched_search(all_searches)
    live = any(search.search_id == search_id and search.state in folder.ACTIVE_STATES for search in all_searches)
    monitor = st.fragment(run_every=REFRESH_SECONDS if live else None)(render_search)
    monitor(searches_dir / search_id, live, runs_dir)


def render_search(search_dir: Path, was_live: bool, runs_dir: Path) -> None:
    """Status, scores, trials table, charts and actions of one search; re-run every few seconds while it runs."""
    if not searches.is_search(search_dir):
        if was_live:
            st.rerun()  # stop polling: the whole page redraws without the vanished search
        st.info("This search's folder is gone. Pick another search above.", icon=":material/info:")
        return
    status = folder.read_status(search_dir)
    state = str(status.get("state"))
    if (state in folder.ACTIVE_STATES) != was_live:
        st.rerun()  # the search started or ended: refresh the whole page
    show_monitor_message("tune")
    try:
        config = searches.load_search_config(search_dir)
    except FerError as error:
        show_error("This search's config.json cannot be read.", error)
        return
    trials = searches.read_trials(search_dir)
    baseline = searches.read_baseline(search_dir)
    best = searches.read_best(search_dir)
    render_status(search_dir, status, config)
    render_scores(config, trials, baseline, best)
    render_current(search_dir, state, trials, baseline)
    render_trials_table(config, trials)
    render_charts(search_dir.name, config, trials, baseline)
    stop_resume_buttons(
        search_dir,
        state,
        scope="tune",
        noun="search",
        resume=searches.resume_search,
        stop_help="Ask the search process to stop after its current batch. Finished trials are kept; the trial in "
        "progress runs again when you resume.",
        resume_help="Continue the search in a new process: keras-tuner reloads the finished trials. Refused while "
        "another run or search is active.",
        resume_refusal=searches.resume_refusal(search_dir),
    )
    render_train_best(search_dir, state, best, runs_dir)
    with st.expander("Log"):
        st.code(folder.read_log_tail(search_dir, max_lines=LOG_LINES) or "(the log is empty so far)", language="text")


def describe_search(config: search_space.SearchConfig) -> str:
    limit = f", at most {config.max_minutes:g} min" if config.max_minutes else ""
    return (
        f"{config.strategy} · {config.base.architecture} · up to {config.max_trials} trials of {config.epochs} "
        f"epoch{'s' if config.epochs != 1 else ''} on {config.subset:.0%} of the training images{limit}"
    )


def render_status(search_dir: Path, status: dict[str, Any], config: search_space.SearchConfig) -> None:
    state = str(status.get("state"))
    title, badge = st.columns([5, 1], vertical_alignment="center")
    title.markdown(f"**{search_dir.name}**  \n{describe_search(config)}")
    label, color, icon = STATE_LABELS.get(state, (state, "gray", None))
    with badge:
        st.badge(label, color=color, icon=icon)
    if state == "failed":
        st.error(
            f"The search failed: {status.get('error', 'no reason was recorded')}. The log below has the details.",
            icon=":material/error:",
        )
    elif state == "finished":
        st.success(f"Finished: {status.get('reason', 'all trials done')}.", icon=":material/check_circle:")
    elif state == "stopped":
        st.info("Stopped. **Resume** continues the search; a trial cut short is run again.", icon=":material/info:")
    elif state == "interrupted":
        st.info(
            "The search process ended without finishing (it was killed or the machine restarted). **Resume** "
            "reloads the finished trials and runs the interrupted one again.",
            icon=":material/info:",
        )


def render_scores(
    config: search_space.SearchConfig,
    trials: list[searches.TrialRow],
    baseline: dict[str, Any] | None,
    best: dict[str, Any] | None,
) -> None:
    baseline_score = (baseline or {}).get("score")
    best_score = (best or {}).get("score")
    measured = searches.gain(best_score, baseline_score)
    completed = sum(row.status == "completed" for row in trials)
    first, second, third, fourth = st.columns(4)
    first.metric(
        "Baseline",
        percent(baseline_score),
        help="Validation accuracy of the untuned default config trained on the same budget (data fraction and "
        "epochs) as every trial.",
    )
    second.metric(
        "Best trial",
        percent(best_score),
        help="The best validation accuracy of any completed trial (its best epoch).",
    )
    third.metric(
        "Gain over baseline",
        f"{measured[0] * 100:+.1f} pts" if measured else "–",
        delta=f"{measured[1]:+.1%} relative" if measured and math.isfinite(measured[1]) else None,
        help="Best trial minus baseline, in accuracy points; below it the gain relative to the baseline's accuracy.",
    )
    fourth.metric("Trials done", f"{completed} / {config.max_trials}", help="Completed trials out of the maximum.")


def render_current(
    search_dir: Path, state: str, trials: list[searches.TrialRow], baseline: dict[str, Any] | None
) -> None:
    """The trial in progress (or the baseline) with its epoch and batch."""
    if state not in folder.ACTIVE_STATES:
        return
    records = searches.read_search_progress(search_dir)
    if not records:
        st.progress(0.0, text="Loading the data and building the baseline model…")
        return
    latest = records[-1]
    name = "the baseline" if latest.get("trial") == searches.BASELINE_TRIAL else f"trial {latest.get('trial')}"
    epochs = max(1, int(latest.get("epochs", 1) or 1))
    if latest.get("event") == "batch":
        epoch = int(latest.get("epoch", 1))
        fraction = (epoch - 1 + int(latest["batch"]) / max(1, int(latest["steps"]))) / epochs
        text = f"Training {name}: epoch {epoch}/{epochs}, batch {latest['batch']}/{latest['steps']}"
    else:
        fraction = int(latest.get("epoch", 0)) / epochs
        text = f"Training {name}: epoch {latest.get('epoch')}/{epochs} done"
    st.progress(min(1.0, max(0.0, fraction)), text=text)


def trials_frame(config: search_space.SearchConfig, trials: list[searches.TrialRow]) -> pd.DataFrame:
    names = list(config.space)
    rows = []
    for row in trials:
        values = {name: row.hyperparameters.get(name) for name in names}
        rows.append(
            {
                "Trial": row.trial,
                "Status": row.status,
                "Val. accuracy": row.score,
                "Duration": format_duration(row.duration_seconds),
                "Epochs": row.epochs,
                **values,
            }
        )
    return pd.DataFrame(rows, columns=["Trial", "Status", "Val. accuracy", "Duration", "Epochs", *names])


def render_trials_table(config: search_space.SearchConfig, trials: list[searches.TrialRow]) -> None:
    st.markdown("**Trials**")
    if not trials:
        st.caption("Trials appear here as they start, after the baseline has trained.")
        return
    st.dataframe(
        trials_frame(config, trials),
        hide_index=True,
        width="stretch",
        column_config={"Val. accuracy": st.column_config.NumberColumn(format="percent")},
    )


def best_so_far_figure(trials: list[searches.TrialRow], baseline_score: float | None) -> go.Figure:
    completed = [row for row in trials if row.status == "completed" and row.score is not None]
    curve = searches.best_so_far(trials)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[index for index, _ in enumerate(completed, start=1)],
            y=[row.score for row in completed],
            mode="markers",
            name="trial",
            text=[f"trial {row.trial}" for row in completed],
        )
    )
    figure.add_trace(
        go.Scatter(x=[x for x, _ in curve], y=[y for _, y in curve], mode="lines", name="best so far", line_shape="hv")
    )
    if baseline_score is not None:
        figure.add_hline(y=baseline_score, line_dash="dash", annotation_text="baseline", line_color="gray")
    figure.update_layout(
        title=dict(text="Best so far", font=dict(size=14)),
        height=320,
        margin=dict(l=0, r=10, t=35, b=0),
        legend=dict(orientation="h", y=-0.25),
        xaxis=dict(title="completed trial", dtick=1),
        yaxis=dict(title="validation accuracy", tickformat=".0%"),
    )
    return figure


def parallel_coordinates_figure(
    config: search_space.SearchConfig, trials: list[searches.TrialRow], baseline_score: float | None
) -> go.Figure:
    """One line per completed trial across the hyperparameters to the score (the baseline as a dashed reference)."""
    completed = [row for row in trials if row.status == "completed" and row.score is not None]
    baseline = baseline_values(config.base)
    dimensions = []
    for name, choices in config.space.items():
        values = [row.hyperparameters.get(name) for row in completed]
        if SPECS[name].kind is str:
            ordered = list(choices)
            dimensions.append(
                dict(
                    label=name,
                    values=[ordered.index(value) if value in ordered else -1 for value in values],
                    tickvals=list(range(len(ordered))),
                    ticktext=ordered,
                    range=[-0.2, len(ordered) - 0.8],
                )
            )
        else:
            low, high = min(choices), max(choices)
            span = (high - low) or max(abs(high), 1e-3)
            dimensions.append(dict(label=name, values=values, range=[low - 0.05 * span, high + 0.05 * span]))
    scores = [row.score for row in completed]
    floor = min([*scores, baseline_score] if baseline_score is not None else scores)
    dimensions.append(dict(label="val. accuracy", values=scores, range=[floor, max(scores)], tickformat=".0%"))
    figure = go.Figure(
        go.Parcoords(
            line=dict(color=scores, colorscale="Viridis", showscale=True, colorbar=dict(title="accuracy")),
            dimensions=dimensions,
        )
    )
    caption = ", ".join(f"{name}={baseline[name]}" for name in config.space if name in baseline)
    figure.update_layout(
        title=dict(text="Hyperparameters against score", font=dict(size=14)),
        height=320,
        margin=dict(l=60, r=40, t=60, b=20),
    )
    figure.add_annotation(
        text=f"baseline: {caption}", showarrow=False, xref="paper", yref="paper", x=0, y=-0.08, font=dict(size=10)
    )
    return figure


def render_charts(
    search_id: str, config: search_space.SearchConfig, trials: list[searches.TrialRow], baseline: dict[str, Any] | None
) -> None:
    completed = [row for row in trials if row.status == "completed" and row.score is not None]
    if not completed:
        st.caption("The best-so-far curve and the parallel-coordinates plot appear after the first completed trial.")
        return
    baseline_score = (baseline or {}).get("score")
    curve_column, parallel_column = st.columns([2, 3])
    curve_column.plotly_chart(
        best_so_far_figure(trials, baseline_score), key=f"tune-curve-{search_id}", width="stretch"
    )
    parallel_column.plotly_chart(
        parallel_coordinates_figure(config, trials, baseline_score), key=f"tune-parallel-{search_id}", width="stretch"
    )


def render_train_best(search_dir: Path, state: str, best: dict[str, Any] | None, runs_dir: Path) -> None:
    """The best trial's settings and one click to train them in full as a training run."""
    st.markdown("**Train the best configuration**")
    if not best:
        st.caption("Once a trial has completed, its best configuration can be trained in full here.")
        return
    values = ", ".join(f"{name}={value}" for name, value in best.get("hyperparameters", {}).items())
    st.caption(f"Trial {best.get('trial')} ({percent(best.get('score'))}): {values}")
    epochs_column, button_column = st.columns([1, 2], vertical_alignment="bottom")
    epochs = epochs_column.number_input(
        "Epochs for the full run",
        1,
        500,
        TrainConfig().epochs,
        key=f"tune-full-epochs-{search_dir.name}",
        help="The full run trains on all the training images (not the search's fraction) for this many epochs.",
    )
    active = state in folder.ACTIVE_STATES
    if button_column.button(
        "Train with the best hyperparameters",
        icon=":material/rocket_launch:",
        type="primary",
        disabled=active,
        key=f"tune-train-best-{search_dir.name}",
        help="Starts a training run (see the Training page) with the best trial's settings. Available once the "
        "search is no longer running, since one job runs at a time.",
    ):
        try:
            config = searches.full_training_config(search_dir, int(epochs))
            run_dir = runs.start_run(config, runs_dir)
        except (ValueError, OSError) as error:  # OSError: a read-only runs folder
            show_error("The training run could not be started.", error)
            return
        st.session_state["training_watch_next"] = run_dir.name
        flash(
            "tune", f"Started training run {run_dir.name}: watch it on the Training page.", ":material/rocket_launch:"
        )
        st.rerun()


# --- starting a search --------------------------------------------------------------------------------------


def budget_controls() -> dict[str, Any]:
    first, second, third, fourth = st.columns(4)
    max_trials = first.number_input(
        "Max trials",
        1,
        500,
        10,
        key="tune_max_trials",
        help="The search ends after this many trials (or earlier when a grid is exhausted or the time runs out).",
    )
    epochs = second.number_input(
        "Epochs per trial",
        1,
        100,
        3,
        key="tune_epochs",
        help="Epochs each trial (and the baseline) trains. Hyperband uses it as its maximum and trains many trials "
        "for fewer epochs.",
    )
    subset = third.slider(
        "Training fraction",
        0.05,
        1.0,
        0.2,
        0.05,
        key="tune_subset",
        help="A stratified share of the training split every trial uses: small fractions rank settings quickly.",
    )
    max_minutes = fourth.number_input(
        "Time limit (min)",
        0,
        10000,
        0,
        key="tune_max_minutes",
        help="No new trial starts after this many minutes (the running one finishes). 0: no limit.",
    )
    return {"max_trials": int(max_trials), "epochs": int(epochs), "subset": float(subset), "max_minutes": max_minutes}


def space_controls() -> dict[str, list[Any]]:
    """A multiselect of values to try per hyperparameter; one value fixes it, none leaves it at the baseline."""
    st.markdown("**Search space** (values to try; a single value fixes the setting, none keeps the baseline's)")
    space: dict[str, list[Any]] = {}
    columns = st.columns(2)
    for index, (name, spec) in enumerate(SPECS.items()):
        chosen = columns[index % 2].multiselect(
            name.replace("_", " ").capitalize(),
            list(spec.options),
            default=list(spec.default_choices),
            key=f"tune_space_{name}",
            help=spec.help,
        )
        if chosen:
            space[name] = chosen
    return space


def start_search(searches_dir: Path, runs_dir: Path, settings: dict[str, Any]) -> None:
    """Validate the settings, start the search in its own process and switch the monitor to it."""
    try:
        base = TrainConfig(
            architecture=settings.pop("architecture"), data=settings.pop("data"), seed=settings.pop("seed")
        )
        config = search_space.SearchConfig(base=base, **settings)
    except FerError as error:
        show_error("These settings cannot be used.", error)
        return
    try:
        search_dir = searches.start_search(config, searches_dir, runs_dir)
    except (ValueError, OSError) as error:  # OSError: a read-only runs folder
        show_error("The search could not be started.", error)
        return
    st.session_state["tune_watch_next"] = search_dir.name
    flash(
        "tune",
        f"Started {search_dir.name}. It runs in its own process; you can close this tab.",
        ":material/rocket_launch:",
    )
    st.rerun()


def new_search_section(searches_dir: Path, runs_dir: Path, busy: list[str]) -> None:
    st.subheader("New search")
    sources = dataset_sources()
    if busy:
        st.warning(
            f"{busy[0]} is active. This machine runs one job at a time: stop it or wait for it to finish, "
            "then start a search.",
            icon=":material/block:",
        )
    if not sources:
        show_no_dataset_hint()
    with st.form("tune_new_search", border=True):
        first, second, third, fourth = st.columns([3, 2, 2, 1])
        dataset = first.selectbox(
            "Dataset",
            sources,
            format_func=lambda path: f"{path.name}  ({path.parent})",
            key="tune_dataset",
            help="Trials score on the dataset's validation split (FER-2013's PublicTest).",
        )
        strategy = second.selectbox(
            "Strategy",
            search_space.STRATEGIES,
            index=search_space.STRATEGIES.index("bayesian"),
            key="tune_strategy",
            help=" ".join(STRATEGY_HELP.values()),
        )
        names = architecture_names()
        architecture = third.selectbox(
            "Architecture",
            names,
            index=names.index("compact_cnn"),
            key="tune_architecture",
            help="The architecture whose settings are tuned; its defaults (with SGD, learning rate 0.01 and the "
            "default augmentation) are the baseline. compact_cnn is the fast choice for searches.",
        )
        seed = fourth.number_input(
            "Seed", 0, 2**31 - 1, 2013, key="tune_seed", help="Seeds weights, data and sampling."
        )
        settings = budget_controls()
        space = space_controls()
        submitted = st.form_submit_button(
            "Start search",
            type="primary",
            icon=":material/rocket_launch:",
            disabled=bool(busy) or not sources,
            help="Creates a search folder and runs the baseline and the trials in a separate process.",
        )
    if submitted:
        settings.update(
            strategy=strategy,
            space=space,
            architecture=architecture,
            data=str(Path(dataset).expanduser().resolve()) if dataset is not None else "",
            seed=int(seed),
        )
        start_search(searches_dir, runs_dir, settings)


# --- the page -----------------------------------------------------------------------------------------------

st.title("Tune")
st.caption(
    "Search the architecture and optimisation settings with keras-tuner (random, grid, Bayesian or Hyperband), "
    "compare every trial with the untuned baseline trained on the same budget, then train the best one in full."
)
show_flash("tune")
searches_directory = folder.default_searches_dir()
runs_directory = folder.default_runs_dir()
every_search = searches.list_searches(searches_directory)
busy_jobs = [f"Search **{search.search_id}**" for search in every_search if search.state in folder.ACTIVE_STATES]
busy_jobs += [f"Training run **{run.run_id}**" for run in runs.active_runs(runs_directory)]
watch_section(searches_directory, every_search, runs_directory)
new_search_section(searches_directory, runs_directory, busy_jobs)
st.caption(f"Search folders live in `{searches_directory}`.")
