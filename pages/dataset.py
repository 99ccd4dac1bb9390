"""Dataset: choose or add a dataset, then explore its counts, samples, pixel statistics and data quality."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ferlib.classes import EMOTION_COLORS, EMOTION_ICONS, EMOTIONS
from ferlib.data.archive import DEFAULT_MAX_ZIP_BYTES, MEGABYTE, read_source_files, save_dataset_zip
from ferlib.data.datasets import SPLITS, Dataset
from ferlib.data.preprocess import decode_image, to_uint8
from ferlib.data.quality import (
    BLANK_STD_THRESHOLD,
    IntensityHistograms,
    MeanFaces,
    QualityReport,
    intensity_histograms,
    mean_faces,
    quality_report,
    sample_per_class,
)
from ferlib.errors import FerError
from pages.common import (
    bgr_to_rgb,
    data_directories,
    dataset_sources,
    dataset_version,
    load_dataset_cached,
    require_app,
    show_error,
    upload_directory,
)

require_app("pages/dataset.py")

KAGGLE_DATASET = "msambare/fer2013"
SOURCE_KEY = "dataset_source"
UPLOAD_KEY = "dataset_upload"
MESSAGE_KEY = "dataset_message"
THUMBNAIL_WIDTH = 72
SPLIT_PATTERNS = {"train": "", "validation": "/", "test": "x"}
SPLIT_HELP = "Which images to use: one split of the dataset, or all of them together."


# ---------------------------------------------------------------------------------------------
# Adding a dataset: upload or Kaggle download (both run as button callbacks, before the page re-renders)


def kaggle_credentials_present() -> bool:
    """Whether the Kaggle API could authenticate: KAGGLE_USERNAME + KAGGLE_KEY, or a kaggle.json file."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_directory = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()
    return (config_directory / "kaggle.json").is_file()


def kaggle_package_present() -> bool:
    """Whether the optional `kaggle` package is installed, found without importing it (importing authenticates)."""
    return importlib.util.find_spec("kaggle") is not None


def remember_message(kind: str, text: str) -> None:
    """Keep a callback's outcome so the next render shows it where the person clicked."""
    st.session_state[MESSAGE_KEY] = (kind, text)


def save_upload() -> None:
    """Check the uploaded zip, store it in the upload directory and select it."""
    upload = st.session_state.get(UPLOAD_KEY)
    if upload is None:
        remember_message("warning", "Choose a .zip file first.")
        return
    try:
        saved = save_dataset_zip(upload, upload.name, upload_directory())
    except FerError as error:
        remember_message("error", f"The zip was not saved: {error}")
        return
    except OSError as error:
        remember_message("error", f"The zip could not be written to {upload_directory()}: {error}")
        return
    st.session_state[SOURCE_KEY] = str(saved.path)
    verb = "was already stored as" if saved.already_present else "was checked and saved as"
    remember_message("success", f"{upload.name} ({saved.check.layout} layout) {verb} {saved.path}.")


def download_from_kaggle() -> None:
    """Download FER-2013 with the kaggle package into the upload directory, check it and select it."""
    directory = upload_directory()
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
        name = f"{KAGGLE_DATASET.split('/')[1]}.zip"
        # Into a temporary folder first, then stored like an upload: checked, and never over another file.
        with (
            tempfile.TemporaryDirectory(prefix="kaggle-") as download,
            st.spinner(f"Downloading {KAGGLE_DATASET} from Kaggle (about 60 MB)…"),
        ):
            api.dataset_download_files(KAGGLE_DATASET, path=download, unzip=False, quiet=True, force=True)
            saved = save_dataset_zip(Path(download) / name, name, directory)
        path = saved.path
    except FerError as error:
        remember_message("error", f"The download is not a usable dataset: {error}")
        return
    except Exception as error:  # network, HTTP 401/403 and package errors: explained, never a traceback
        remember_message("error", f"The Kaggle download failed ({type(error).__name__}: {error}).")
        return
    st.session_state[SOURCE_KEY] = str(path)
    where = f"was already stored as {path}" if saved.already_present else f"was checked and saved as {path}"
    remember_message("success", f"{KAGGLE_DATASET} downloaded: it {where}.")


def render_upload() -> None:
    st.file_uploader(
        "A dataset .zip",
        type=["zip"],
        key=UPLOAD_KEY,
        max_upload_size=DEFAULT_MAX_ZIP_BYTES // MEGABYTE,
        help="Kaggle's FER-2013 download (train/<class>/*.jpg, test/<class>/*.jpg), a zip of <class>/* images, "
        "or a zip holding fer2013.csv. It is checked (size, safe paths, known layout) and stored, not extracted, in "
        f"{upload_directory()}.",
    )
    st.button(
        "Check and save",
        on_click=save_upload,
        icon=":material/upload:",
        help="Check the zip and store it in the data folder, then select it above.",
    )


def render_kaggle() -> None:
    if not kaggle_credentials_present():
        st.info(
            "To download FER-2013 from Kaggle here, add your Kaggle API credentials: on kaggle.com open "
            "*Settings → API → Create New Token*, save the downloaded `kaggle.json` as `~/.kaggle/kaggle.json` "
            "(readable only by you: `chmod 600 ~/.kaggle/kaggle.json`), or set the environment variables "
            "`KAGGLE_USERNAME` and `KAGGLE_KEY`. You also need the package: `pip install kaggle`. Then reload "
            "this page.",
            icon=":material/key:",
        )
        return
    if not kaggle_package_present():
        st.info(
            "Kaggle credentials were found, but the `kaggle` package is not installed. Install it with "
            "`pip install kaggle` (it is optional, so not in requirements.txt), then reload this page.",
            icon=":material/download:",
        )
        return
    st.button(
        f"Download {KAGGLE_DATASET}",
        on_click=download_from_kaggle,
        icon=":material/cloud_download:",
        help=f"Downloads Kaggle's FER-2013 (about 60 MB) into {upload_directory()} with your Kaggle credentials. "
        "Accept the dataset's rules on kaggle.com first if Kaggle asks you to.",
    )


def render_add_dataset(expanded: bool) -> None:
    """The last upload's or download's outcome, then the expander to add another dataset."""
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message is not None:
        kind, text = message
        getattr(st, kind)(text)
    with st.expander("Add a dataset", expanded=expanded, icon=":material/add:"):
        upload_tab, kaggle_tab = st.tabs(["Upload a .zip", "Download from Kaggle"])
        with upload_tab:
            render_upload()
        with kaggle_tab:
            render_kaggle()


def choose_source(sources: list[Path]) -> str | None:
    """The selected dataset path, or None (with what to do next) when there is none."""
    if not sources:
        directories = " or ".join(f"`{directory}`" for directory in data_directories())
        st.info(
            f"No dataset found. Put Kaggle's FER-2013 zip (or a folder, or fer2013.csv) in {directories}, set "
            "`FERLIB_DATA_DIR` to the folder that holds it, or add one below: upload a .zip or download it from "
            "Kaggle.",
            icon=":material/dataset:",
        )
        return None
    options = [str(source) for source in sources]
    if st.session_state.get(SOURCE_KEY) not in options:
        st.session_state[SOURCE_KEY] = options[0]
    return st.selectbox(
        "Dataset",
        options,
        key=SOURCE_KEY,
        format_func=lambda option: f"{Path(option).name}  ({Path(option).parent})",
        help="Datasets found in the data folders ($FERLIB_DATA_DIR, else data/ and ../shared/data): .zip and .csv "
        "files and folders. The first load decodes every image; later loads come from a cache.",
    )


# ---------------------------------------------------------------------------------------------
# Heavy work, cached per dataset (path and version) and settings


@st.cache_data(show_spinner="Checking data quality…", max_entries=4)
def cached_quality_report(path: str, version: tuple[int, int], blank_threshold: float) -> QualityReport:
    """Duplicates, near-blank and unreadable files of a dataset: about a second on FER-2013, so cached."""
    return quality_report(load_dataset_cached(path, version), blank_threshold=blank_threshold)


@st.cache_data(show_spinner="Computing pixel statistics…", max_entries=8)
def cached_pixel_statistics(
    path: str, version: tuple[int, int], split: str, bins: int
) -> tuple[MeanFaces, IntensityHistograms]:
    """Mean faces and intensity histograms of one split, per class."""
    dataset = load_dataset_cached(path, version)
    images, labels = dataset.subset(split)
    return mean_faces(images, labels), intensity_histograms(images, labels, bins=bins)


@st.cache_data(show_spinner="Preparing samples (raw, preprocessed and augmented)…", max_entries=8)
def cached_samples(path: str, version: tuple[int, int], split: str, per_class: int, seed: int) -> dict[str, list]:
    """Per class: the raw images as stored in the source, then the same faces preprocessed and augmented."""
    from ferlib.data.augment import AugmentationConfig, augment_images

    dataset = load_dataset_cached(path, version)
    indices = np.flatnonzero(dataset.split_mask(split))
    chosen = [indices[members] for members in sample_per_class(dataset.labels[indices], per_class, seed)]
    flat = np.concatenate(chosen)
    sizes = [group.size for group in chosen]
    augmented = list(augment_images(dataset.images[flat], AugmentationConfig(), seed=seed)) if flat.size else []
    return {
        "raw": regroup(raw_images(dataset, path, flat), sizes),
        "preprocessed": [list(dataset.images[group]) for group in chosen],
        "augmented": regroup(augmented, sizes),
    }


def regroup(items: list, sizes: list[int]) -> list[list]:
    """Cut a flat list back into consecutive groups of the given sizes."""
    groups, start = [], 0
    for size in sizes:
        groups.append(items[start : start + size])
        start += size
    return groups


def raw_images(dataset: Dataset, path: str, indices: np.ndarray) -> list[np.ndarray]:
    """The images as stored in the source, for display (RGB or gray uint8); a CSV's pixels are its only form."""
    if dataset.report.layout == "csv" or not indices.size:
        return list(dataset.images[indices])
    contents = read_source_files(path, [str(dataset.paths[index]) for index in indices])
    shown = []
    for index, content in zip(indices, contents, strict=True):
        try:
            shown.append(display_ready(decode_image(content)))
        except FerError:
            shown.append(dataset.images[index])
    return shown


def display_ready(image: np.ndarray) -> np.ndarray:
    """An OpenCV image (gray, BGR or BGRA, any depth) as uint8 gray or RGB for st.image."""
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return bgr_to_rgb(image)


# ---------------------------------------------------------------------------------------------
# Sections


def render_overview(dataset: Dataset) -> None:
    counts = dataset.counts()
    columns = st.columns(5)
    columns[0].metric("Images", f"{len(dataset):,}", help="Every decoded face, all splits together.")
    for column, split in zip(columns[1:4], SPLITS, strict=True):
        column.metric(
            split.capitalize(),
            f"{sum(counts[split].values()):,}",
            help=f"Images in the {split} split (file-name prefixes Training_/PublicTest_/PrivateTest_ or the CSV's "
            "Usage decide; without them test/ is test and validation is a seeded 10% of train).",
        )
    columns[4].metric(
        "Unreadable files",
        len(dataset.report.bad_files),
        help="Corrupt, empty or non-image files that were skipped; listed in the load report and the quality tab.",
    )
    with st.expander("Load report", icon=":material/description:"):
        st.write(f"Source: `{dataset.report.source}` · layout: **{dataset.report.layout}**")
        if dataset.report.from_cache:
            st.caption("Served from ferlib's decoded cache.")
        for note in dataset.report.notes:
            st.info(note)
        if dataset.report.bad_files:
            st.dataframe(
                pd.DataFrame([{"file": bad.path, "reason": bad.reason} for bad in dataset.report.bad_files]),
                hide_index=True,
                width="stretch",
            )
        if not dataset.report.notes:
            st.caption("Nothing to report: every split and class has images and every file was readable.")


def counts_frame(dataset: Dataset) -> pd.DataFrame:
    """Images per class (rows, canonical order) and split (columns), with totals."""
    frame = pd.DataFrame(dataset.counts()).loc[list(EMOTIONS)]
    frame["all"] = frame.sum(axis=1)
    frame["share"] = frame["all"] / max(1, int(frame["all"].sum()))
    return frame


def split_chart(frame: pd.DataFrame) -> go.Figure:
    """Images per split, stacked by class in the emotion colours."""
    figure = go.Figure(
        [
            go.Bar(name=name, x=list(SPLITS), y=[frame.loc[name, split] for split in SPLITS], marker_color=color)
            for name, color in EMOTION_COLORS.items()
        ]
    )
    figure.update_layout(barmode="stack", height=340, margin=dict(l=0, r=0, t=30, b=0), title="Images per split")
    return figure


def class_chart(frame: pd.DataFrame) -> go.Figure:
    """Images per class, one bar per split (told apart by hatching), in the emotion colours."""
    colors = [EMOTION_COLORS[name] for name in EMOTIONS]
    labels = [f"{EMOTION_ICONS[name]} {name}" for name in EMOTIONS]
    figure = go.Figure(
        [
            go.Bar(
                name=split,
                x=labels,
                y=frame[split].tolist(),
                marker=dict(color=colors, pattern_shape=SPLIT_PATTERNS[split], line=dict(color="#333", width=0.5)),
            )
            for split in SPLITS
            if frame[split].sum()
        ]
    )
    figure.update_layout(barmode="group", height=340, margin=dict(l=0, r=0, t=30, b=0), title="Images per class")
    return figure


def render_counts(dataset: Dataset) -> None:
    frame = counts_frame(dataset)
    left, right = st.columns(2)
    left.plotly_chart(split_chart(frame), width="stretch", key="split-chart")
    right.plotly_chart(class_chart(frame), width="stretch", key="class-chart")
    present = frame.loc[frame["all"] > 0, "all"]
    if len(present) > 1:
        st.caption(
            f"Class imbalance: {present.idxmax()} has {present.max() / present.min():.1f}× the images of "
            f"{present.idxmin()}; consider class weighting when training."
        )
    st.dataframe(
        frame,
        width="stretch",
        column_config={"share": st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1)},
    )


def split_options(dataset: Dataset) -> list[str]:
    counts = dataset.counts()
    return ["all", *(split for split in SPLITS if sum(counts[split].values()))]


def render_grid(images_per_class: list[list[np.ndarray]], captions_per_class: list[list[str]] | None = None) -> None:
    """One row per class: its name, then its images."""
    for label, name in enumerate(EMOTIONS):
        name_column, images_column = st.columns([1, 7])
        name_column.markdown(f"{EMOTION_ICONS[name]} **{name}**")
        images = images_per_class[label]
        if not images:
            images_column.caption("No images of this class here.")
            continue
        captions = captions_per_class[label] if captions_per_class else None
        images_column.image(images, caption=captions, width=THUMBNAIL_WIDTH)


def render_samples(dataset: Dataset, path: str) -> None:
    split_column, count_column, seed_column = st.columns(3)
    split = split_column.selectbox("Split", split_options(dataset), key="samples-split", help=SPLIT_HELP)
    per_class = count_column.slider(
        "Samples per class", 1, 16, 8, key="samples-count", help="How many random images to show for each class."
    )
    seed = seed_column.number_input(
        "Seed",
        min_value=0,
        value=0,
        step=1,
        key="samples-seed",
        help="Picks the random sample and the random augmentation; change it to see other images.",
    )
    samples = cached_samples(path, dataset_version(path), split, int(per_class), int(seed))
    raw_tab, preprocessed_tab, augmented_tab = st.tabs(["Raw", "Preprocessed", "Augmented (training)"])
    with raw_tab:
        st.caption("The files as stored in the source, before any processing (caption: width×height).")
        sizes = [[f"{image.shape[1]}×{image.shape[0]}" for image in group] for group in samples["raw"]]
        render_grid(samples["raw"], sizes)
    with preprocessed_tab:
        st.caption("What every model sees: `preprocess_face` turns any image into 48×48 uint8 grayscale.")
        render_grid(samples["preprocessed"])
    with augmented_tab:
        st.caption(
            f"The same faces through the default training augmentation ({augmentation_summary()}): each epoch sees "
            "a new random variant."
        )
        render_grid(samples["augmented"])


def augmentation_summary() -> str:
    """The default AugmentationConfig in words, e.g. 'horizontal flip, ±10° rotation, 10% zoom, 10% shift'."""
    from ferlib.data.augment import AugmentationConfig

    config = AugmentationConfig()
    parts = [
        "horizontal flip" if config.horizontal_flip else "",
        f"±{config.rotate_degrees:g}° rotation" if config.rotate_degrees else "",
        f"{config.zoom:.0%} zoom" if config.zoom else "",
        f"{config.translate:.0%} shift" if config.translate else "",
        f"{config.contrast:.0%} contrast" if config.contrast else "",
        f"random erasing with probability {config.erasing:g}" if config.erasing else "",
    ]
    return ", ".join(part for part in parts if part) or "none"


def histogram_chart(histograms: IntensityHistograms) -> go.Figure:
    centres = (histograms.bin_edges[:-1] + histograms.bin_edges[1:]) / 2
    densities = histograms.densities()
    figure = go.Figure(
        [
            go.Scatter(x=centres, y=densities[label], mode="lines", name=name, line=dict(color=EMOTION_COLORS[name]))
            for label, name in enumerate(histograms.class_names)
            if histograms.counts[label].sum()
        ]
    )
    figure.update_layout(
        height=340,
        margin=dict(l=0, r=0, t=30, b=0),
        title="Pixel intensities per class",
        xaxis_title="pixel value (0 = black, 255 = white)",
        yaxis=dict(title="share of the class's pixels", tickformat=".1%"),
    )
    return figure


def face_images(faces: MeanFaces, difference: bool) -> list[np.ndarray]:
    """Mean faces as uint8 images; as differences from the overall mean (gray = same) when asked."""
    if not difference:
        return [np.clip(np.rint(face), 0, 255).astype(np.uint8) for face in faces.faces]
    total = max(1, int(faces.counts.sum()))
    overall = np.tensordot(faces.counts / total, faces.faces, axes=1)
    deltas = [
        face - overall if count else np.zeros_like(overall)
        for face, count in zip(faces.faces, faces.counts, strict=True)
    ]
    scale = max(1e-6, max(float(np.abs(delta).max()) for delta in deltas))
    return [np.clip(np.rint(128 + 127 * delta / scale), 0, 255).astype(np.uint8) for delta in deltas]


def render_pixels(dataset: Dataset, path: str) -> None:
    split_column, bins_column = st.columns(2)
    split = split_column.selectbox("Split", split_options(dataset), key="pixels-split", help=SPLIT_HELP)
    bins = bins_column.select_slider(
        "Histogram bins",
        options=[16, 32, 64, 128, 256],
        value=32,
        key="pixels-bins",
        help="How finely the 0-255 pixel range is divided; more bins show more detail and more noise.",
    )
    faces, histograms = cached_pixel_statistics(path, dataset_version(path), split, int(bins))
    st.plotly_chart(histogram_chart(histograms), width="stretch", key="histogram-chart")
    st.subheader("Mean face per class")
    difference = st.toggle(
        "Show the difference from the overall mean face",
        key="pixels-difference",
        help="Brighter than gray: the class is brighter there than the average face; darker: darker. This shows "
        "where classes differ, e.g. the mouth for happy and surprise.",
    )
    present = [label for label, count in enumerate(faces.counts) if count]
    if not present:
        st.info("This split has no images.")
        return
    images = face_images(faces, difference)
    captions = [f"{EMOTION_ICONS[EMOTIONS[label]]} {EMOTIONS[label]} ({faces.counts[label]:,})" for label in present]
    st.image([images[label] for label in present], caption=captions, width=2 * THUMBNAIL_WIDTH)


def render_quality(dataset: Dataset, path: str) -> None:
    threshold = st.number_input(
        "Near-blank threshold (pixel standard deviation)",
        min_value=0.0,
        max_value=64.0,
        value=BLANK_STD_THRESHOLD,
        step=1.0,
        key="quality-threshold",
        help="Images whose pixels vary less than this are reported as near-blank (flat gray, black or white).",
    )
    report = cached_quality_report(path, dataset_version(path), float(threshold))
    render_quality_metrics(report)
    if report.cross_split_pairs:
        st.warning(
            f"{report.cross_split_pairs} identical image pair(s) sit in different splits: a model is evaluated on "
            "faces it trained on, so validation and test scores read high. Drop one copy of each before trusting "
            "the numbers.",
            icon=":material/warning:",
        )
    render_duplicates(dataset, report)
    render_blank_and_unreadable(dataset, report)


def render_quality_metrics(report: QualityReport) -> None:
    columns = st.columns(5)
    columns[0].metric(
        "Cross-split duplicate pairs",
        report.cross_split_pairs,
        help="Pairs of byte-identical 48×48 images in different splits (train/validation/test): leakage.",
    )
    columns[1].metric(
        "Within-split duplicate pairs",
        report.within_split_pairs,
        help="Pairs of identical images inside one split: they weigh those faces twice.",
    )
    columns[2].metric(
        "Conflicting labels",
        report.conflicting_label_pairs,
        help="Identical image pairs labelled with different emotions.",
    )
    columns[3].metric("Near-blank images", len(report.blank_paths), help="Images with almost no pixel variation.")
    columns[4].metric("Unreadable files", len(report.unreadable), help="Files skipped because they could not be read.")


def render_duplicates(dataset: Dataset, report: QualityReport) -> None:
    st.subheader("Duplicates")
    if not report.duplicate_groups:
        st.success("No two images are identical.", icon=":material/check_circle:")
        return
    pair_counts = pd.DataFrame(
        [{"splits": key, "pairs": count} for key, count in report.pair_counts.items() if count],
    )
    st.dataframe(pair_counts, hide_index=True, width="content")
    shown = sorted(report.duplicate_groups, key=lambda group: not group.crosses_splits)[:8]
    st.caption("Some identical groups (cross-split ones first): the image, then where its copies are.")
    st.image(
        [dataset.images[group.indices[0]] for group in shown],
        caption=[", ".join(sorted(set(group.splits))) + f" · {len(group.indices)}×" for group in shown],
        width=THUMBNAIL_WIDTH,
    )
    pairs = pd.DataFrame([vars(pair) for pair in report.duplicate_pairs])
    if report.pairs_truncated:
        st.caption(f"The first {len(pairs):,} pairs are listed; the counts above include all of them.")
    st.dataframe(pairs, hide_index=True, width="stretch", height=260)


def render_blank_and_unreadable(dataset: Dataset, report: QualityReport) -> None:
    st.subheader("Near-blank and unreadable files")
    if report.blank_indices:
        st.image(
            [dataset.images[index] for index in report.blank_indices[:16]],
            caption=[Path(path).name for path in report.blank_paths[:16]],
            width=THUMBNAIL_WIDTH,
        )
        st.dataframe(pd.DataFrame({"path": report.blank_paths}), hide_index=True, width="stretch", height=200)
    else:
        st.caption(f"No near-blank images (pixel standard deviation below {report.blank_threshold:g}).")
    if report.unreadable:
        st.dataframe(pd.DataFrame([vars(bad) for bad in report.unreadable]), hide_index=True, width="stretch")
    else:
        st.caption("Every file could be read.")


# ---------------------------------------------------------------------------------------------
# Page


def main() -> None:
    st.title("Dataset")
    st.caption(
        "Pick a dataset (or add one), then check its balance, look at its faces before and after preprocessing "
        "and augmentation, and find duplicates that leak between splits."
    )
    sources = dataset_sources()
    path = choose_source(sources)
    render_add_dataset(expanded=path is None)
    if path is None:
        return
    try:
        dataset = load_dataset_cached(path)
    except FerError as error:
        show_error("This dataset could not be loaded; choose another or add one above.", error)
        return
    if len(dataset) == 0:
        st.warning("This dataset holds no readable images; choose another or add one above.")
        return
    render_overview(dataset)
    counts_tab, samples_tab, pixels_tab, quality_tab = st.tabs(["Counts", "Samples", "Pixels", "Quality"])
    try:
        with counts_tab:
            render_counts(dataset)
        with samples_tab:
            render_samples(dataset, path)
        with pixels_tab:
            render_pixels(dataset, path)
        with quality_tab:
            render_quality(dataset, path)
    except FerError as error:
        show_error("Part of this page could not be computed.", error)


main()
