"""Live: emotions on the webcam in real time (WebRTC), and on photos, camera snapshots and video files."""

import os
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import streamlit as st

from ferlib.classes import EMOTION_COLORS, EMOTION_ICONS, EMOTIONS
from ferlib.data.preprocess import decode_image
from ferlib.errors import FerError
from ferlib.live.analyzer import OVERLAY_STYLES, LiveSettings, annotate_live
from ferlib.live.detection import DETECTORS
from ferlib.live.ice import ice_servers
from ferlib.live.session import LiveSession, ModelVariant, TimelinePoint, build_analyzer, model_variants
from ferlib.live.video import CSV_COLUMNS
from ferlib.live.webrtc import preload_srtp
from ferlib.nets.modelio import MODELS_DIR, default_model_path
from pages.common import (
    NO_FACE_HINT,
    analyze_photo,
    bgr_to_rgb,
    load_classifier,
    model_available,
    require_app,
    show_error,
)

require_app("pages/live.py")

DETECTOR_LABELS = {
    "haar": "OpenCV Haar cascade (fast)",
    "mtcnn": "MTCNN (more accurate, slower)",
}
STALLED_SECONDS = 2.0  # no frame for this long while playing: the camera or the connection stalled
VIDEO_TYPES = ["mp4", "mov", "avi", "mkv", "webm", "m4v", "y4m", "mpg", "mpeg"]


def encode_png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("Expected an image OpenCV can encode as PNG; received one it cannot")
    return encoded.tobytes()


def configured_ice_servers() -> list[dict]:
    """ICE servers from st.secrets or the environment; [] (direct connections only) when none are configured."""
    secrets = {}
    if st.secrets.load_if_toml_exists():
        secrets = st.secrets.to_dict()
    return ice_servers(secrets, os.environ)


def available_models() -> list[Path]:
    """The default model first, then any other .keras model in models/."""
    default = default_model_path()
    others = sorted(path for path in MODELS_DIR.glob("*.keras") if path.resolve() != default.resolve())
    return [default, *others]


def shared_classifier(variant: ModelVariant):
    """The variant's classifier, loaded once and shared by every session and path of this page (classifiers are
    thread-safe: a TFLite interpreter runs under a lock, so sessions take turns at about 1 ms per face)."""
    return load_classifier(str(variant.path), backend=variant.backend, num_threads=1)


def face_table(faces) -> pd.DataFrame:
    rows = []
    for face in faces:
        x, y, width, height = face.box
        rows.append(
            {
                "face": face.face_id,
                "emotion": f"{EMOTION_ICONS[face.label]} {face.label}",
                "confidence": face.confidence,
                "box (x, y, w, h)": f"{x}, {y}, {width}, {height}",
                **{name: face.probabilities[name] for name in EMOTIONS},
            }
        )
    return pd.DataFrame(rows)


def show_photo_result(
    image: np.ndarray, photo: bytes, detector: str, variant: ModelVariant, settings: LiveSettings, key: str
):
    """Annotate every face of one photo (`image`, decoded from `photo`), list them in a table, offer the annotated
    photo for download."""
    try:
        analysis = analyze_photo(image, photo, str(variant.path), detector, variant.backend, num_threads=1)
    except Exception as error:  # ValueError, an interpreter's RuntimeError, cv2.error: a message, not a traceback
        show_error("The model could not be run.", error)
        return
    for number, face in enumerate(analysis.faces, start=1):
        face.face_id = number
    annotated = annotate_live(image, analysis.faces, settings)
    st.image(bgr_to_rgb(annotated), caption=f"{len(analysis.faces)} face(s) found", width="stretch")
    if not analysis.faces:
        st.warning(NO_FACE_HINT)
        return
    percent = st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1)
    st.dataframe(
        face_table(analysis.faces),
        hide_index=True,
        width="stretch",
        column_config={"confidence": percent, **{name: percent for name in EMOTIONS}},
    )
    st.download_button(
        "Download the annotated photo",
        encode_png(annotated),
        file_name="emotions.png",
        mime="image/png",
        key=f"{key}-download",
        on_click="ignore",
        icon=":material/download:",
    )


def timeline_figure(points: list[TimelinePoint], height: int = 260):
    """Each face's smoothed emotion over the last minute, one line per face, markers in the emotion colours."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for face_id in sorted({point.face_id for point in points}):
        mine = [point for point in points if point.face_id == face_id]
        figure.add_trace(
            go.Scatter(
                x=[point.seconds for point in mine],
                y=[point.label for point in mine],
                mode="lines+markers",
                line=dict(shape="hv", width=1, color="#bbbbbb"),
                marker=dict(color=[EMOTION_COLORS[point.label] for point in mine], size=7),
                name=f"face {face_id}",
                customdata=[point.confidence for point in mine],
                hovertemplate="%{y} %{customdata:.0%} at %{x:.1f} s",
            )
        )
    figure.update_layout(
        height=height,
        margin=dict(l=0, r=10, t=10, b=0),
        xaxis=dict(title="seconds"),
        yaxis=dict(categoryorder="array", categoryarray=list(EMOTIONS), type="category", range=[-0.5, 6.5]),
        showlegend=len({point.face_id for point in points}) > 1,
    )
    return figure


def video_timeline_figure(table: pd.DataFrame, height: int = 300):
    import plotly.graph_objects as go

    figure = go.Figure()
    for face_id, rows in table.groupby("face_id"):
        figure.add_trace(
            go.Scatter(
                x=rows["time_s"],
                y=rows["label"],
                mode="lines+markers",
                line=dict(shape="hv", width=1, color="#bbbbbb"),
                marker=dict(color=[EMOTION_COLORS[label] for label in rows["label"]], size=6),
                name=f"face {face_id}",
            )
        )
    figure.update_layout(
        height=height,
        margin=dict(l=0, r=10, t=10, b=0),
        xaxis=dict(title="seconds"),
        yaxis=dict(categoryorder="array", categoryarray=list(EMOTIONS), type="category", range=[-0.5, 6.5]),
    )
    return figure


st.title("🎥 Live")
st.caption(
    "Emotions in real time on your webcam, or on a photo, a camera snapshot or a video file. Faces are followed "
    "from frame to frame and their probabilities averaged over the last frames, so labels do not flicker."
)

models = [path for path in available_models() if model_available(path)]
if not models:
    st.info(
        "No trained model is installed yet. Train one on the **Training** page or with "
        "`python -m ferlib train --data PATH`, then ship it with `python -m ferlib ship`.",
        icon=":material/model_training:",
    )
    st.stop()

with st.sidebar:
    st.subheader("Live settings")
    detector_name = st.selectbox(
        "Face detector",
        [name for name in DETECTOR_LABELS if name in DETECTORS],
        format_func=DETECTOR_LABELS.get,
        help="Haar is fast and fine for frontal, well-lit faces; MTCNN also finds turned, tilted or dim faces.",
    )
    model_path = st.selectbox("Model", models, format_func=lambda path: path.name)
    variants = model_variants(model_path)
    variant = st.selectbox(
        "Model format",
        variants,
        format_func=lambda variant: variant.label.split(" · ", 1)[-1],
        help="The same model, exported: int8 TFLite is the fastest, Keras the reference.",
    )
    confidence_threshold = st.slider(
        "Confidence threshold",
        0.0,
        1.0,
        0.0,
        0.05,
        help="Faces whose top emotion is less likely than this are drawn grey with a question mark.",
    )
    smoothing_window = st.slider(
        "Smoothing window (frames)", 1, 30, 8, help="Probabilities averaged per face; 1 shows every frame's own."
    )
    overlay_style = st.radio("Overlay", list(OVERLAY_STYLES), format_func=OVERLAY_STYLES.get)

settings = LiveSettings(
    confidence_threshold=confidence_threshold, smoothing_window=smoothing_window, overlay_style=overlay_style
)

camera_tab, photo_tab, snapshot_tab, video_tab = st.tabs(
    [
        ":material/videocam: Live camera",
        ":material/image: Photo",
        ":material/photo_camera: Snapshot",
        ":material/movie: Video file",
    ]
)

with camera_tab:
    preload_srtp()  # before streamlit_webrtc: another page may have imported TensorFlow (see ferlib.live.webrtc)
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    session: LiveSession = st.session_state.setdefault("live_session", LiveSession())
    try:
        with st.spinner("Loading the detector and the model…"):
            session.configure(detector_name, variant, settings, classifier=shared_classifier(variant))
    except FerError as error:
        show_error("The live pipeline could not be started.", error)
    else:  # the other tabs still render when the camera pipeline cannot start

        def video_frame_callback(frame: av.VideoFrame) -> av.VideoFrame:
            """Runs in streamlit-webrtc's worker thread: convert, hand the frame to ferlib, convert back.

            No st.* here."""
            return av.VideoFrame.from_ndarray(session.process_frame(frame.to_ndarray(format="bgr24")), format="bgr24")

        try:
            servers = configured_ice_servers()
        except FerError as error:
            show_error("The ICE server configuration could not be read; using direct connections only.", error)
            servers = []

        video_column, result_column = st.columns([3, 2], gap="large")
        with video_column:
            context = webrtc_streamer(
                key="fer-live",
                mode=WebRtcMode.SENDRECV,
                rtc_configuration={"iceServers": servers},
                video_frame_callback=video_frame_callback,
                media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
                async_processing=True,
            )
            playing = bool(context.state.playing)
            if playing and not st.session_state.get("live_was_playing"):
                session.reset()
            st.session_state["live_was_playing"] = playing
            st.caption(
                "Press **START** and allow the camera. Frames go to this server only"
                + (
                    " through the configured TURN/STUN servers."
                    if servers
                    else " (direct connection; no STUN or TURN)."
                )
            )

            def snapshot_png() -> bytes:
                frame = session.snapshot().frame
                if frame is None:
                    frame = annotate_live(np.zeros((240, 320, 3), np.uint8), [], settings, no_face_note=False)
                return encode_png(frame)

            st.download_button(
                "Download a snapshot",
                snapshot_png,
                file_name="live-snapshot.png",
                mime="image/png",
                on_click="ignore",
                icon=":material/photo_camera:",
                help="The latest annotated video frame, taken when you click.",
            )

        with result_column:

            @st.fragment(run_every=0.5 if playing else None)
            def live_results() -> None:
                """The current emotion of each face, a rolling timeline and the speed, refreshed while playing."""
                snapshot = session.snapshot()
                st.subheader("Now")
                seconds = snapshot.seconds_since_update or 0.0  # since the last frame analysed
                if snapshot.error:
                    st.warning(f"The last frame could not be analysed, so it is shown as it came: {snapshot.error}")
                elif not snapshot.frames:
                    st.caption("Waiting for the first frame…" if playing else "Waiting for the video: press START.")
                elif not playing or seconds > STALLED_SECONDS:  # the faces below are the last seen, not current
                    st.caption(
                        f"The video stopped {seconds:.0f} s ago; these are the last faces it showed."
                        if not playing
                        else f"No frame has been analysed for {seconds:.0f} s; these are the last faces seen."
                    )
                elif not snapshot.faces:
                    st.caption("No face in view.")
                for face in snapshot.faces:
                    uncertain = face.confidence < settings.confidence_threshold
                    note = " (uncertain)" if uncertain else ""
                    emotion = f"{EMOTION_ICONS[face.label]} **{face.label}** {face.confidence:.0%}{note}"
                    st.markdown(f"**Face {face.face_id}**: {emotion}")
                st.subheader("Timeline")
                if snapshot.timeline:
                    st.plotly_chart(timeline_figure(snapshot.timeline), key="live-timeline")
                else:
                    st.caption("The last minute of emotions appears here.")
                if snapshot.frames:
                    st.caption(
                        f"{snapshot.fps:.0f} fps processed · {snapshot.ms_per_frame:.1f} ms per frame · "
                        f"detector every {snapshot.detection_interval} frame(s)"
                    )

            live_results()

with photo_tab:
    upload = st.file_uploader(
        "A photo with one or more faces", type=["jpg", "jpeg", "png", "bmp", "webp"], key="live-photo-upload"
    )
    if upload is not None:
        try:
            image = decode_image(upload.getvalue())
        except FerError as error:
            show_error("This file could not be read as an image.", error)
        else:
            show_photo_result(image, upload.getvalue(), detector_name, variant, settings, key="photo")

with snapshot_tab:
    picture = st.camera_input("Take a picture", key="live-camera-input")
    if picture is not None:
        try:
            image = decode_image(picture.getvalue())
        except FerError as error:
            show_error("The camera picture could not be read.", error)
        else:
            show_photo_result(image, picture.getvalue(), detector_name, variant, settings, key="snapshot")

with video_tab:
    clip = st.file_uploader("A video clip", type=VIDEO_TYPES, key="live-video-upload")
    if clip is not None and st.button("Analyse the video", type="primary", icon=":material/play_arrow:"):
        from ferlib.live.video import analyze_video

        suffix = Path(clip.name).suffix.lower() or ".mp4"
        with tempfile.TemporaryDirectory() as directory:
            source = Path(directory) / f"upload{suffix}"
            source.write_bytes(clip.getvalue())
            target = Path(directory) / "annotated.mp4"
            bar = st.progress(0.0, text="Analysing…")

            def report(done: int, total: int) -> None:
                if done == 1 or done % 10 == 0 or done == total:
                    bar.progress(min(1.0, done / max(total, 1)), text=f"Frame {done} of ~{total}")

            try:
                analyzer = build_analyzer(
                    detector_name,
                    variant,
                    settings.updated(adaptive=False, detection_interval=1, detection_max_side=640),
                    webcam=False,
                    classifier=shared_classifier(variant),
                )
                analysis = analyze_video(source, analyzer, video_out=target, progress=report)
            except Exception as error:  # ValueError, a decoder's or encoder's own errors: a message, not a traceback
                bar.empty()
                show_error("The video could not be analysed.", error)
            else:
                bar.progress(1.0, text=f"Done: {analysis.frames} frames at {analysis.fps:.1f} frames per second")
                st.session_state["live_video_result"] = {
                    "name": Path(clip.name).stem,
                    "rows": analysis.rows(),
                    "frames": analysis.frames,
                    "faces": analysis.faces,
                    "fps": analysis.fps,
                    "video": target.read_bytes() if target.exists() else b"",
                }
    result = st.session_state.get("live_video_result")
    if result is not None:
        table = pd.DataFrame(result["rows"], columns=list(CSV_COLUMNS))
        first, second, third = st.columns(3)
        first.metric("Frames", result["frames"])
        second.metric("Faces", result["faces"], help="Distinct faces followed through the clip.")
        third.metric("Processing speed", f"{result['fps']:.1f} fps")
        if table.empty:
            st.warning("No face was found in this clip.")
        else:
            st.plotly_chart(video_timeline_figure(table), key="video-timeline")
            st.dataframe(table, hide_index=True, width="stretch", height=300)
        download_csv, download_video = st.columns(2)
        download_csv.download_button(
            "Download the CSV",
            table.to_csv(index=False).encode(),
            file_name=f"{result['name']}-emotions.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/table:",
        )
        if result["video"]:
            download_video.download_button(
                "Download the annotated video",
                result["video"],
                file_name=f"{result['name']}-annotated.mp4",
                mime="video/mp4",
                on_click="ignore",
                icon=":material/movie:",
            )
            st.video(result["video"], format="video/mp4")
