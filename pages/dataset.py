"""Dataset: choose or add a dataset, then explore its counts, samples, pixel statistics and data quality."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ferlib.classes import EMOTION_ICONS, EMOTIONS
from ferlib.data import kaggle, quality
from ferlib.data.archive import DEFAULT_MAX_ZIP_BYTES, MEGABYTE, read_source_files, save_dataset_zip
from ferlib.data.augment import AugmentationConfig, augment_images
from ferlib.data.datasets import SPLITS, Dataset
from ferlib.data.preprocess import decode_image, to_bgr_uint8
from ferlib.data.sources import dataset_sources, dataset_version, upload_directory
from ferlib.errors import FerError
from pages.components import access, charts, common
from pages.components.common import attempt, dataset_label, load_dataset, metric_row, require_app, show_no_dataset_hint
from pages.components.photo import bgr_to_rgb

require_app("pages/dataset.py")

SOURCE_KEY, UPLOAD_KEY, MESSAGE_KEY = "dataset_source", "dataset_upload", "dataset_message"
THUMBNAIL_WIDTH = 72
SPLIT_HELP = "Which images to use: one split of the dataset, or all of them together."
KAGGLE_HELP = "To download FER-2013 here, save your Kaggle API token (kaggle.com: *Settings → API → Create New "
KAGGLE_HELP += "Token*) as `~/.kaggle/kaggle.json` (`chmod 600`) or set `KAGGLE_USERNAME` and `KAGGLE_KEY`."


def store(failure: str, save, source_name: str) -> None:
    """Run an upload's or download's `save` in a button's callback: select what it stored, keep what happened."""
    try:
        with st.spinner("Checking and storing the dataset (downloading FER-2013 from Kaggle takes a minute)…"):
            saved = save()
    except (FerError, OSError) as error:  # OSError: a read-only or full data folder
        st.session_state[MESSAGE_KEY] = ("error", f"{failure}: {error}")
        return
    st.session_state[SOURCE_KEY] = str(saved.path)
    verb = "was already stored as" if saved.already_present else "was checked and saved as"
    st.session_state[MESSAGE_KEY] = ("success", f"{source_name}: it {verb} {saved.path} ({saved.check.layout} layout).")


def add_dataset_section(expanded: bool) -> None:
    """The last upload's or download's outcome, then the expander to add another dataset (closed to visitors of a
    public demo)."""
    if message := st.session_state.pop(MESSAGE_KEY, None):
        getattr(st, message[0])(message[1])
    with st.expander("Add a dataset", expanded=expanded, icon=":material/add:"):
        if locked := access.locked():
            st.info(locked, icon=":material/lock:")
        upload_tab, kaggle_tab = st.tabs(["Upload a .zip", "Download from Kaggle"])
        help_text = "Kaggle's FER-2013 zip, a zip of <class>/* images or of fer2013.csv: checked (size, safe paths, "
        help_text += f"known layout) and stored once (the same bytes are never stored twice) in {upload_directory()}."
        options = dict(key=UPLOAD_KEY, max_upload_size=DEFAULT_MAX_ZIP_BYTES // MEGABYTE, disabled=bool(locked))
        upload = upload_tab.file_uploader("A dataset .zip", ["zip"], help=help_text, **options)
        saved = lambda: save_dataset_zip(upload, upload.name, upload_directory())  # noqa: E731
        options = dict(
            on_click=store, args=("The zip was not saved", saved, upload and upload.name), icon=":material/upload:"
        )
        upload_tab.button("Check and save", help="Then pick it above.", disabled=bool(locked) or not upload, **options)
        if not kaggle.credentials_present():
            kaggle_tab.info(KAGGLE_HELP + " Then `pip install kaggle`.", icon=":material/key:")
        elif not kaggle.package_present():
            message = "Kaggle credentials were found, but the `kaggle` package is not installed: `pip install kaggle`"
            kaggle_tab.info(f"{message} (it is optional), then reload this page.", icon=":material/download:")
        else:
            help_text = f"Into {upload_directory()}. Accept the dataset's rules on kaggle.com first if Kaggle asks."
            arguments = (
                "The Kaggle download failed",
                lambda: kaggle.download(upload_directory()),
                f"{kaggle.FER2013} downloaded",
            )
            options = dict(on_click=store, args=arguments, icon=":material/cloud_download:", disabled=bool(locked))
            kaggle_tab.button(f"Download {kaggle.FER2013}", help=help_text, **options)


@st.cache_data(show_spinner="Checking data quality…", max_entries=4)
def cached_quality_report(path: str, version: tuple[int, int], blank_threshold: float) -> quality.QualityReport:
    return quality.quality_report(load_dataset(path, version), blank_threshold=blank_threshold)


@st.cache_data(show_spinner="Computing pixel statistics…", max_entries=8)
def cached_pixel_statistics(path: str, version: tuple[int, int], split: str, bins: int):
    images, labels = load_dataset(path, version).subset(split)
    return quality.mean_faces(images, labels), quality.intensity_histograms(images, labels, bins=bins)


@st.cache_data(show_spinner="Preparing samples (raw, preprocessed and augmented)…", max_entries=8)
def cached_samples(path: str, version: tuple[int, int], split: str, per_class: int, seed: int) -> dict[str, list]:
    """Per class: the images as stored in the source, then the same faces preprocessed and augmented."""
    dataset = load_dataset(path, version)
    indices = np.flatnonzero(dataset.split_mask(split))
    chosen = [indices[members] for members in quality.sample_per_class(dataset.labels[indices], per_class, seed)]
    flat, ends = np.concatenate(chosen), np.cumsum([group.size for group in chosen]).tolist()
    augmented = list(augment_images(dataset.images[flat], AugmentationConfig(), seed=seed)) if flat.size else []
    raw, groups = raw_images(dataset, path, flat), list(zip([0, *ends[:-1]], ends, strict=True))
    grouped = {"raw": raw, "preprocessed": list(dataset.images[flat]), "augmented": augmented}
    return {name: [images[a:b] for a, b in groups] for name, images in grouped.items()}


def raw_images(dataset: Dataset, path: str, indices: np.ndarray) -> list[np.ndarray]:
    """The images as stored in the source (RGB or gray uint8); a CSV's pixels are its only form."""
    if dataset.report.layout == "csv" or not indices.size:
        return list(dataset.images[indices])
    shown = []
    for index, content in zip(indices, read_source_files(path, [str(dataset.paths[i]) for i in indices]), strict=True):
        try:
            shown.append(bgr_to_rgb(to_bgr_uint8(decode_image(content))))
        except FerError:  # unreadable in the source: the decoded face stands in
            shown.append(dataset.images[index])
    return shown


def overview(dataset: Dataset) -> None:
    """Images per split, unreadable files, and the load report."""
    counts, report = dataset.counts(), dataset.report
    split_help = "By file-name prefix (Training_, PublicTest_, PrivateTest_) or CSV Usage; else test/, 10% of train."
    splits = [(split.capitalize(), f"{sum(counts[split].values()):,}", split_help) for split in SPLITS]
    skipped = ("Unreadable files", len(report.bad_files), "Corrupt, empty or non-image files that were skipped.")
    metric_row([("Images", f"{len(dataset):,}", "Every decoded face, all splits together."), *splits, skipped])
    with st.expander("Load report", icon=":material/description:"):
        st.write(f"Source: `{report.source}` · layout: **{report.layout}**")
        for note in report.notes:
            st.info(note)
        if report.bad_files:
            bad = pd.DataFrame([{"file": bad.path, "reason": bad.reason} for bad in report.bad_files])
            st.dataframe(bad, hide_index=True, width="stretch")
        if not report.notes:
            st.caption("Nothing to report: every split and class has images and every file was readable.")


def counts_tab(dataset: Dataset, path: str) -> None:
    frame = pd.DataFrame(dataset.counts()).loc[list(EMOTIONS)]  # classes by splits
    frame["all"] = frame.sum(axis=1)
    frame["share"] = frame["all"] / max(1, int(frame["all"].sum()))
    st.plotly_chart(charts.class_counts(frame), width="stretch", key="class-chart")  # split totals: see above
    if len(present := frame.loc[frame["all"] > 0, "all"]) > 1 and present.max() > 1.1 * present.min():
        ratio = f"{present.idxmax()} has {present.max() / present.min():.1f}× the images of {present.idxmin()}"
        st.caption(f"Class imbalance: {ratio}; consider class weighting when training.")
    share = st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1)
    st.dataframe(frame, width="stretch", column_config={"share": share})


def split_choice(dataset: Dataset, column, key: str) -> str:
    return column.selectbox("Split", ["all", *dataset.splits_with_faces()], key=key, help=SPLIT_HELP)


def samples_tab(dataset: Dataset, path: str) -> None:
    """Random faces per class as stored, as every model sees them, and augmented as in training."""
    split_column, count_column, seed_column = st.columns(3)
    split = split_choice(dataset, split_column, "samples-split")
    per_class = count_column.slider("Samples per class", 1, 16, 8, key="samples-count")
    seed = seed_column.number_input("Seed", 0, value=0, key="samples-seed", help="Change it to see other faces.")
    samples = cached_samples(path, dataset_version(path), split, int(per_class), int(seed))
    config = {name.replace("_", " "): value for name, value in vars(AugmentationConfig()).items() if value}
    summary = ", ".join(name if value is True else f"{name} {value:g}" for name, value in config.items()) or "none"
    notes = {"raw": "The files as stored in the source, before any processing (caption: width×height)."}
    notes["preprocessed"] = "What every model sees: any image turned into a 48×48 grayscale face."
    notes["augmented"] = f"The same faces through the default training augmentation ({summary}): new ones each epoch."
    sizes = [[f"{image.shape[1]}×{image.shape[0]}" for image in group] for group in samples["raw"]]
    for tab, (kind, note) in zip(st.tabs(["Raw", "Preprocessed", "Augmented (training)"]), notes.items(), strict=True):
        tab.caption(note)
        for label, name in enumerate(EMOTIONS):  # a row per class: its name, then its faces
            name_column, images_column = tab.columns([1, 7])
            name_column.markdown(f"{EMOTION_ICONS[name]} **{name}**")
            if images := samples[kind][label]:
                images_column.image(images, caption=sizes[label] if kind == "raw" else None, width=THUMBNAIL_WIDTH)
            else:
                images_column.caption("No images of this class here.")


def pixels_tab(dataset: Dataset, path: str) -> None:
    """Pixel intensity distributions and the mean face of each class (or its difference from the overall mean)."""
    split_column, bins_column = st.columns(2)
    split = split_choice(dataset, split_column, "pixels-split")
    bins = bins_column.select_slider("Histogram bins", [16, 32, 64, 128, 256], 32, key="pixels-bins")
    faces, histograms = cached_pixel_statistics(path, dataset_version(path), split, int(bins))
    centres, densities = (histograms.bin_edges[:-1] + histograms.bin_edges[1:]) / 2, histograms.densities()
    names = [(label, name) for label, name in enumerate(histograms.class_names) if any(histograms.counts[label])]
    lines = {name: densities[label] for label, name in names}
    st.plotly_chart(charts.intensity_histogram(centres, lines), width="stretch", key="histogram-chart")
    st.subheader("Mean face per class")
    help_text = "Brighter than gray: the class is brighter there than the average face. Shows where classes differ."
    difference = st.toggle("Show the difference from the overall mean face", key="pixels-difference", help=help_text)
    if not (shown := [label for label, count in enumerate(faces.counts) if count]):
        st.info("This split has no images.")
        return
    images = [np.clip(np.rint(face), 0, 255).astype(np.uint8) for face in faces.faces]
    if difference:  # gray where a class looks like every face
        overall = np.tensordot(faces.counts / max(1, int(faces.counts.sum())), faces.faces, axes=1)
        deltas = [face - overall if count else 0 * face for face, count in zip(faces.faces, faces.counts, strict=True)]
        scale = max(1e-6, max(float(np.abs(delta).max()) for delta in deltas))
        images = [np.clip(np.rint(128 + 127 * delta / scale), 0, 255).astype(np.uint8) for delta in deltas]
    captions = [f"{EMOTION_ICONS[EMOTIONS[label]]} {EMOTIONS[label]} ({faces.counts[label]:,})" for label in shown]
    st.image([images[label] for label in shown], caption=captions, width=2 * THUMBNAIL_WIDTH)


def quality_tab(dataset: Dataset, path: str) -> None:
    """Duplicates (leaking between splits or not) and near-blank images; unreadable files are in the load report."""
    help_text = "Images whose pixels vary less than this are reported as near-blank (flat gray, black or white)."
    label, default = "Near-blank threshold (pixel standard deviation)", quality.BLANK_STD_THRESHOLD
    threshold = st.number_input(label, 0.0, 64.0, default, 1.0, key="quality-threshold", help=help_text)
    report, pairs = cached_quality_report(path, dataset_version(path), float(threshold)), "Byte-identical image pairs"
    figures = [("Cross-split duplicate pairs", report.cross_split_pairs, f"{pairs} in different splits: leakage.")]
    figures += [("Within-split duplicate pairs", report.within_split_pairs, f"{pairs} in one split: counted twice.")]
    figures += [("Conflicting labels", report.conflicting_label_pairs, f"{pairs} labelled with different emotions.")]
    metric_row([*figures, ("Near-blank images", len(report.blank_paths), "Images with almost no pixel variation.")])
    if report.cross_split_pairs:
        leak = "a model is evaluated on faces it trained on, so its scores read high: drop one copy of each first"
        st.warning(
            f"{report.cross_split_pairs} identical pairs sit in different splits: {leak}.", icon=":material/warning:"
        )
    st.subheader("Duplicates")
    if not report.duplicate_groups:
        st.success("No two images are identical.", icon=":material/check_circle:")
    else:
        counts = [{"splits": key, "pairs": count} for key, count in report.pair_counts.items() if count]
        st.dataframe(pd.DataFrame(counts), hide_index=True, width="content")
        shown = sorted(report.duplicate_groups, key=lambda group: not group.crosses_splits)[:8]
        st.caption("Some identical groups (cross-split ones first): the image, then where its copies are.")
        captions = [", ".join(sorted(set(group.splits))) + f" · {len(group.indices)}×" for group in shown]
        st.image([dataset.images[group.indices[0]] for group in shown], caption=captions, width=THUMBNAIL_WIDTH)
        listed = "" if not report.pairs_truncated else f" (the first {len(report.duplicate_pairs):,}; counts are exact)"
        st.caption(f"Every identical pair{listed}:")
        st.dataframe(common.readable_table([vars(pair) for pair in report.duplicate_pairs], {}), hide_index=True)
    st.subheader("Near-blank images")
    if report.blank_indices:
        names = [Path(path).name for path in report.blank_paths[:16]]
        st.image([dataset.images[index] for index in report.blank_indices[:16]], caption=names, width=THUMBNAIL_WIDTH)
        st.dataframe(pd.DataFrame({"path": report.blank_paths}), hide_index=True, width="stretch", height=200)
    else:
        st.caption(f"No near-blank images (pixel standard deviation below {report.blank_threshold:g}).")


st.title("Dataset")
st.caption("Pick or add a dataset; check its balance, its faces as stored, preprocessed and augmented, its duplicates.")
if options := [str(source) for source in dataset_sources()]:
    if st.session_state.get(SOURCE_KEY) not in options:
        st.session_state[SOURCE_KEY] = options[0]
    source = st.selectbox("Dataset", options, key=SOURCE_KEY, format_func=dataset_label, help="From the data folders.")
else:
    source = show_no_dataset_hint("reload this page, or add one below: upload a .zip or download it from Kaggle")
add_dataset_section(expanded=source is None)
failure = "This dataset could not be loaded; choose another or add one above."
dataset = attempt(failure, lambda: load_dataset(source)) if source else None
if dataset is not None and len(dataset) == 0:
    st.warning("This dataset holds no readable images; choose another or add one above.")
elif dataset is not None:
    overview(dataset)
    tabs = st.tabs(["Counts", "Samples", "Pixels", "Quality"])
    for tab, render in zip(tabs, [counts_tab, samples_tab, pixels_tab, quality_tab], strict=True):
        with tab:
            attempt("Part of this page could not be computed.", partial(render, dataset, source))
