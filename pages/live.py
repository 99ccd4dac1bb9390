"""Live: emotions on the webcam in real time (WebRTC), and on photos, camera snapshots and video files."""

import os
import tempfile
from pathlib import Path

import av
import pandas as pd
import streamlit as st

from ferlib.classes import EMOTIONS, class_label
from ferlib.data.sources import upload_directory
from ferlib.errors import FerError
from ferlib.evaluation import catalog
from ferlib.jobs import folder
from ferlib.live.analyzer import OVERLAY_STYLES, LiveSettings
from ferlib.live.detection import DETECTORS
from ferlib.live.ice import ice_servers
from ferlib.live.own_faces import save_face
from ferlib.live.session import LiveSession, ModelVariant, build_analyzer, model_variants
from ferlib.live.video import CSV_COLUMNS, FAST, FAST_DETECTOR_OPTIONS, analyze_video
from ferlib.live.webrtc import preload_srtp
from pages.components import access, charts, common
from pages.components.common import attempt, format_duration, load_classifier, metric_row, model_menu, require_app
from pages.components.photo import PHOTO_TYPES, encode_png, photo_analysis

require_app("pages/live.py")

DETECTOR_LABELS = {"haar": "OpenCV Haar cascade (fast)", "mtcnn": "MTCNN (more accurate, slower)"}
STALLED_SECONDS = 2.0  # no frame for this long while playing: the camera or the connection stalled
MY_FACES = "my-faces"  # your own labelled faces, a dataset in the first data folder
MY_FACES_HELP = (
    "Each face saved becomes a training face of this emotion, or (one in five) a test face kept out of training."
)
VIDEO_TYPES = ["mp4", "mov", "avi", "mkv", "webm", "m4v", "y4m", "mpg", "mpeg"]


def camera_tab(session: LiveSession, detector: str, variant: ModelVariant, settings: LiveSettings, classifier) -> None:
    """The webcam through WebRTC: each frame analysed in streamlit-webrtc's worker thread, results beside it."""
    preload_srtp()  # before streamlit_webrtc: another page may have imported TensorFlow (see ferlib.live.webrtc)
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    failure = "The live pipeline could not be started."
    if not attempt(failure, lambda: session.configure(detector, variant, settings, classifier=classifier)):
        return
    secrets = st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    failure = "The ICE server configuration could not be read; using direct connections only."
    servers = attempt(failure, lambda: ice_servers(secrets, os.environ)) or []

    def processed(frame: av.VideoFrame) -> av.VideoFrame:  # in streamlit-webrtc's worker thread: no st.* here
        return av.VideoFrame.from_ndarray(session.process_frame(frame.to_ndarray(format="bgr24")), format="bgr24")

    video_column, result_column = st.columns([3, 2], gap="large")
    with video_column:
        video = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}
        options = dict(rtc_configuration={"iceServers": servers}, media_stream_constraints=video, async_processing=True)
        context = webrtc_streamer(key="fer-live", mode=WebRtcMode.SENDRECV, video_frame_callback=processed, **options)
        playing = bool(context.state.playing)
        if playing and not st.session_state.get("live_was_playing"):
            session.reset()
        st.session_state["live_was_playing"] = playing
        route = "through the configured TURN/STUN servers" if servers else "(direct connection; no STUN or TURN)"
        st.caption(f"Press **START** and allow the camera. Frames go to this server only {route}.")
    with result_column:  # refreshed while the video plays, and slower after it stopped (its "stopped … ago")
        refresh = 0.5 if playing else (2.0 if session.snapshot().frames else None)
        st.fragment(run_every=refresh)(live_results)(session, settings, playing, classifier.class_names)


def live_results(session: LiveSession, settings: LiveSettings, playing: bool, classes: tuple[str, ...]) -> None:
    """The current emotion of each face, a rolling timeline and the speed, refreshed while the video plays."""
    snapshot = session.snapshot()
    st.subheader("Now")
    seconds = snapshot.seconds_since_update or 0.0  # since the last frame analysed
    if snapshot.error:
        st.warning(f"The last frame could not be analysed, so it is shown as it came: {snapshot.error}")
    elif not snapshot.frames:
        st.caption("Waiting for the first frame…" if playing else "Waiting for the video: press START.")
    elif not playing:  # the faces below are the last seen, not current
        st.caption(f"The video stopped {format_duration(seconds)} ago; these are the last faces it showed.")
    elif seconds > STALLED_SECONDS:
        st.caption(f"No frame has been analysed for {seconds:.0f} s; these are the last faces seen.")
    elif not snapshot.faces:
        st.caption("No face in view.")
    for face in snapshot.faces:
        note = " (uncertain)" if face.confidence < settings.confidence_threshold else ""
        emotion = f"{class_label(face.label)} **{face.confidence:.0%}**{note}"
        st.markdown(f"**Face {face.face_id}**: {emotion}")
    st.subheader("Timeline")
    if snapshot.timeline:
        rows = [(point.face_id, point.seconds, point.label, point.confidence) for point in snapshot.timeline]
        st.plotly_chart(charts.timeline(rows, classes=classes), key="live-timeline")
    else:
        st.caption("The last minute of emotions appears here.")
    if snapshot.frames:
        video = f"{snapshot.returned_fps:.0f} fps to your browser · {snapshot.fps:.0f} analysed"
        speed = f"{snapshot.ms_per_frame:.0f} ms per analysis · detector every {snapshot.detection_interval} frame(s)"
        st.caption(f"{video} · {speed}", help="When the server is busy fewer frames are analysed, never fewer shown.")
    frame, tip = snapshot.frame, "The latest frame, as drawn." if snapshot.frame is not None else "Press START first."
    options = dict(mime="image/png", on_click="ignore", icon=":material/photo_camera:", disabled=frame is None)
    st.download_button("Download a snapshot", lambda: encode_png(frame), "live-snapshot.png", help=tip, **options)


def save_to_my_faces(photo: bytes, detector: str) -> None:
    """Your own faces: the snapshot's face, labelled with the emotion you showed, added to data/my-faces, a dataset
    the Training page fine-tunes a shipped model on (and the Metrics page scores models on)."""
    if locked := access.locked():
        return st.caption(locked)
    target, columns = upload_directory() / MY_FACES, st.columns([2, 1], vertical_alignment="bottom")
    options = dict(index=None, format_func=class_label, key="live_my_face_class", help=MY_FACES_HELP)
    emotion = columns[0].selectbox(
        "The emotion you showed", EMOTIONS, placeholder="Choose it to save the face…", **options
    )
    if not columns[1].button("Save to my faces", icon=":material/add_a_photo:", disabled=emotion is None):
        return None
    if attempt("The face could not be saved.", lambda: save_face(photo, emotion, target, detector=detector), OSError):
        count = sum(1 for _ in target.rglob("*.png"))
        then = (
            "On **Training**, choose the dataset my-faces, start from a shipped model and tick the classes you saved."
        )
        faces = f"{count} face{'' if count == 1 else 's'}"
        st.success(f"Saved as {emotion}: {faces} in `{target}`. {then}", icon=":material/check_circle:")


def video_tab(detector: str, variant: ModelVariant, settings: LiveSettings, classifier) -> None:
    """A video file analysed frame by frame: the faces' emotions over time, as a chart, a CSV and an annotated clip."""
    clip = st.file_uploader("A video clip", type=VIDEO_TYPES, key="live-video-upload")
    if clip is not None and st.button("Analyse the video", type="primary", icon=":material/play_arrow:"):
        with tempfile.TemporaryDirectory() as directory:
            source, target = Path(directory) / f"clip{Path(clip.name).suffix.lower()}", Path(directory) / "out.mp4"
            source.write_bytes(clip.getvalue())
            bar = st.progress(0.0, text="Analysing…")

            def report(done: int, total: int) -> None:
                if done == 1 or done % 10 == 0 or done == total:
                    bar.progress(min(1.0, done / max(total, 1)), text=f"Frame {done} of ~{total}")

            def analysed():
                shown = dict(confidence_threshold=settings.confidence_threshold, overlay_style=settings.overlay_style)
                file_settings = FAST.updated(smoothing_window=settings.smoothing_window, **shown)  # as `predict` does
                options = dict(classifier=classifier, detector_options=FAST_DETECTOR_OPTIONS.get(detector, {}))
                analyzer = build_analyzer(detector, variant, file_settings, **options)
                try:
                    return analyze_video(source, analyzer, video_out=target, progress=report)
                except FerError as error:  # named as the user knows it, not by this server's temporary path
                    raise FerError(str(error).replace(str(source), clip.name)) from None

            if analysis := attempt("The video could not be analysed.", analysed):
                bar.progress(1.0, text=f"Done: {analysis.frames} frames at {analysis.fps:.1f} frames per second")
                video = target.read_bytes() if target.exists() else b""
                result = dict(name=Path(clip.name).stem, rows=analysis.rows(), frames=analysis.frames, video=video)
                result["classes"] = classifier.class_names
                st.session_state["live_video_result"] = {**result, "faces": analysis.faces, "fps": analysis.fps}
            else:
                bar.empty()
    if (result := st.session_state.get("live_video_result")) is None:
        return
    table = pd.DataFrame(result["rows"], columns=list(CSV_COLUMNS))
    faces = ("Faces", result["faces"], "Distinct faces followed through the clip.")
    metric_row([("Frames", result["frames"], None), faces, ("Processing speed", f"{result['fps']:.1f} fps", None)])
    if table.empty:
        st.warning("No face was found in this clip.")
    else:  # every face in every frame: in the CSV
        rows = table[["face_id", "time_s", "label", "confidence"]].itertuples(index=False)
        st.plotly_chart(charts.timeline(rows, 300, result["classes"]), key="video-timeline")
    csv_column, video_column = st.columns(2)
    data, name, video = table.to_csv(index=False).encode(), result["name"], result["video"]
    csv_column.download_button("Download the CSV", data, f"{name}-emotions.csv", "text/csv", on_click="ignore")
    if video:
        video_column.download_button("Download the annotated video", video, f"{name}-annotated.mp4", on_click="ignore")
        st.video(video, format="video/mp4")


st.title("🎥 Live")
st.caption("Emotions on your webcam in real time, or on a photo, a snapshot or a video file, smoothed per face.")
models = [entry for entry in catalog.available_models(folder.default_runs_dir()) if entry.model_path.exists()]
if not models:
    common.show_no_model_hint()
    st.stop()
with st.sidebar:
    st.subheader("Live settings")
    help_text = "Haar is fast and fine for frontal, well-lit faces; MTCNN also finds turned, tilted or dim faces."
    detectors = [name for name in DETECTOR_LABELS if name in DETECTORS]
    detector = st.selectbox("Face detector", detectors, format_func=DETECTOR_LABELS.get, help=help_text)
    model = model_menu(models, "live_model", "Shipped models first, then the best checkpoints of your runs.")
    help_text = "The same model, exported: int8 TFLite is the fastest, Keras the reference."
    options = dict(format_func=lambda variant: variant.label.split(" · ", 1)[-1], help=help_text)
    variant = st.selectbox("Model format", model_variants(model.model_path), **options)
    threshold = st.slider(
        "Confidence threshold", 0.0, 1.0, 0.0, 0.05, help="Less likely faces are drawn grey, with a ?."
    )
    window = st.slider("Smoothing window (frames)", 1, 30, 8, help="Probabilities averaged per face; 1: each frame's.")
    style = st.radio("Overlay", list(OVERLAY_STYLES), format_func=OVERLAY_STYLES.get)
live_settings = LiveSettings(confidence_threshold=threshold, smoothing_window=window, overlay_style=style)
# One classifier per model format, shared by every session and tab (thread-safe: a TFLite interpreter runs under a
# lock, so sessions take turns at about 1 ms per face).
loaded = lambda: load_classifier(str(variant.path), variant.backend, num_threads=1)  # noqa: E731
if not (shared := attempt("The model could not be loaded.", loaded)):
    st.stop()
tabs = [":material/videocam: Live camera", ":material/image: Photo", ":material/photo_camera: Snapshot"]
tabs = st.tabs([*tabs, ":material/movie: Video file"])
with tabs[0]:
    camera_tab(st.session_state.setdefault("live_session", LiveSession()), detector, variant, live_settings, shared)
analysis = dict(detector=detector, backend=variant.backend, num_threads=1, settings=live_settings)
with tabs[1]:
    if upload := st.file_uploader("A photo with one or more faces", type=PHOTO_TYPES, key="live-photo-upload"):
        photo_analysis(upload.getvalue(), str(variant.path), key="photo", **analysis)
with tabs[2]:
    if picture := st.camera_input("Take a picture", key="live-camera-input"):
        photo_analysis(picture.getvalue(), str(variant.path), key="snapshot", **analysis)
        save_to_my_faces(picture.getvalue(), detector)
with tabs[3]:
    video_tab(detector, variant, live_settings, shared)
