"""The live pipeline: tracking, smoothing, adaptive detection, overlay, the thread-safe session, ICE settings, video."""

import threading
import time

import cv2
import numpy as np
import pytest

from ferlib.classes import EMOTIONS, NUM_CLASSES
from ferlib.live.analyzer import LIVE_DETECTOR_OPTIONS, UNCERTAIN_COLOR_BGR, LiveAnalyzer, LiveSettings, annotate_live
from ferlib.live.detection import FaceBox, make_detector
from ferlib.live.ice import ice_servers
from ferlib.live.pipeline import FacePrediction
from ferlib.live.session import LiveSession, ModelVariant, model_variants
from ferlib.live.tracking import FaceTracker, box_iou
from ferlib.live.video import (
    CSV_COLUMNS,
    VideoWriter,
    analyze_video,
    is_video_path,
    read_video_frames,
    upright,
    video_info,
    write_records_csv,
    write_y4m,
)
from ferlib.nets.classifier import make_classifier


@pytest.fixture(scope="module")
def astronaut_face() -> np.ndarray:
    """scikit-image's astronaut (a smiling face) as a 480x480 BGR image."""
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))


def astronaut_frame(face: np.ndarray, shift: int = 0) -> np.ndarray:
    """A 640x480 frame with the astronaut `shift` pixels right of centre."""
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80 + shift : 560 + shift] = face
    return frame


def two_face_frame(face: np.ndarray) -> np.ndarray:
    half = cv2.resize(face, (320, 320))
    frame = np.full((360, 680, 3), 30, np.uint8)
    frame[20:340, 10:330] = half
    frame[20:340, 350:670] = half
    return frame


def webcam_haar():
    """The Haar detector as the live page builds it (for LiveSettings' downscaled detection)."""
    return make_detector("haar", **LIVE_DETECTOR_OPTIONS["haar"])


@pytest.fixture(scope="module")
def tiny_classifier(tiny_model_path):
    return make_classifier(tiny_model_path)


class ScriptedClassifier:
    """Returns the given probability rows in turn, one per call (for every face of the call)."""

    def __init__(self, rows: list[np.ndarray]) -> None:
        self.rows = rows
        self.calls = 0

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        row = self.rows[self.calls % len(self.rows)]
        self.calls += 1
        return np.repeat(row[None], len(faces), axis=0)


class FixedDetector:
    """Always finds the same boxes, optionally slowly (to exercise the adaptive interval)."""

    def __init__(self, boxes: list[FaceBox], delay: float = 0.0) -> None:
        self.boxes = boxes
        self.delay = delay
        self.calls = 0

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        time.sleep(self.delay)
        return list(self.boxes)


def one_hot(label: str, strength: float = 0.7) -> np.ndarray:
    row = np.full(NUM_CLASSES, (1 - strength) / (NUM_CLASSES - 1), np.float32)
    row[EMOTIONS.index(label)] = strength
    return row


# --- tracking -----------------------------------------------------------------------------------------------------


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_tracker_keeps_ids_confirms_new_faces_and_drops_lost_ones():
    tracker = FaceTracker(window=3, max_missed=1, min_hits=2)
    assert tracker.update([(100, 100, 50, 50)]) == []  # first sighting: not confirmed yet
    first = tracker.update([(104, 102, 50, 50)])
    assert [track.face_id for track in first] == [1]
    # a fast move (no overlap) still matches by centre distance; a far-away box is a new face
    moved = tracker.update([(130, 100, 50, 50), (400, 300, 60, 60)])
    assert [track.face_id for track in moved] == [1]
    assert [track.face_id for track in tracker.update([(132, 100, 50, 50), (402, 300, 60, 60)])] == [1, 2]
    tracker.update([(402, 300, 60, 60)])  # face 1 missed once: kept
    assert {track.face_id for track in tracker.tracks} == {1, 2}
    tracker.update([(402, 300, 60, 60)])  # missed twice: dropped
    assert {track.face_id for track in tracker.tracks} == {2}
    tracker.update([(5, 5, 40, 40)])  # a one-off detection is dropped at its first miss
    tracker.update([(402, 300, 60, 60)])
    assert {track.face_id for track in tracker.tracks} == {2}


def test_smoothing_averages_the_last_window_of_probabilities():
    tracker = FaceTracker(window=3)
    (track,) = tracker.update([(0, 0, 10, 10)])
    for value in (0.1, 0.2, 0.3, 0.6):
        track.add_probabilities(np.full(NUM_CLASSES, value))
    assert np.allclose(track.smoothed(), (0.2 + 0.3 + 0.6) / 3)
    tracker.set_window(1)
    assert np.allclose(track.smoothed(), 0.6)
    with pytest.raises(ValueError, match=r"^Expected a smoothing window"):
        tracker.set_window(0)


# --- the live analyzer --------------------------------------------------------------------------------------------


def test_a_real_face_keeps_its_id_and_is_followed_between_detections(astronaut_face, tiny_classifier):
    settings = LiveSettings(detection_interval=4, max_detection_interval=4, adaptive=False)
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier, settings)
    results = [analyzer.analyze(astronaut_frame(astronaut_face, shift)) for shift in range(0, 48, 3)]
    # A new face is detected again on the next frame, shown from its second detection on, then followed.
    assert [result.detected for result in results[:6]] == [True, True, False, False, False, True]
    assert results[0].faces == [] and [face.face_id for face in results[0].tentative] == [1]
    shown = [result for result in results if result.faces]
    assert len(shown) >= len(results) - 4
    assert {face.face_id for result in shown for face in result.faces} == {1}
    xs = [result.faces[0].box[0] for result in shown]
    assert xs[-1] - xs[0] >= 25  # the box moved with the face (it moved 45 px), also on tracking-only frames
    for result in shown:
        (face,) = result.faces
        assert face.label in EMOTIONS and 0 <= face.confidence <= 1
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        x, y, width, height = face.box
        assert 180 <= x + width / 2 <= 420 and 40 <= y + height / 2 <= 200  # on the astronaut's face


def test_several_faces_get_distinct_stable_ids(astronaut_face, tiny_classifier):
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier, LiveSettings(adaptive=False))
    frame = two_face_frame(astronaut_face)
    results = [analyzer.process(frame)[1] for _ in range(4)]
    for result in results[1:]:
        assert [face.face_id for face in result.faces] == [1, 2]
        left, right = (face.box for face in result.faces)
        assert left[0] < 340 <= right[0]


def test_no_face_passes_the_frame_through_with_a_note(tiny_classifier):
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier)
    wall = np.full((480, 640, 3), 200, np.uint8)
    annotated, result = analyzer.process(wall)
    assert result.faces == [] and annotated.shape == wall.shape and annotated.dtype == np.uint8
    assert np.array_equal(annotated[:400], wall[:400])  # untouched but for the note at the bottom
    assert not np.array_equal(annotated, wall)
    assert set(result.timings_ms) == {"detection", "classification", "overlay", "total"}


@pytest.mark.parametrize(
    "image",
    [
        np.full((333, 517), 90, np.uint8),  # gray
        np.full((333, 517, 1), 90, np.uint8),  # gray with a channel axis
        np.full((241, 319, 4), 90, np.uint8),  # BGRA, odd sizes
        np.full((7, 5, 3), 90, np.uint8),  # smaller than any face
        np.full((100, 120, 3), 0.5, np.float32),  # float pixels
        np.full((64, 48, 3), 40000, np.uint16),  # 16-bit
    ],
    ids=["gray", "gray-1", "bgra-odd", "tiny", "float", "uint16"],
)
def test_any_frame_shape_and_type_comes_back_as_bgr(image, tiny_classifier):
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier)
    for _ in range(3):
        annotated, result = analyzer.process(image)
    assert annotated.shape == (*image.shape[:2], 3) and annotated.dtype == np.uint8
    assert result.width == image.shape[1] and result.height == image.shape[0]


def test_grayscale_real_frame_finds_the_face(astronaut_face, tiny_classifier):
    gray = cv2.cvtColor(astronaut_frame(astronaut_face), cv2.COLOR_BGR2GRAY)
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier, LiveSettings(min_hits=1))
    annotated, result = analyzer.process(gray)
    assert len(result.faces) == 1 and annotated.shape == (480, 640, 3)


def test_smoothing_stops_labels_flickering():
    frame = np.zeros((200, 200, 3), np.uint8)
    detector = FixedDetector([FaceBox(50, 50, 80, 80)])
    flicker = [one_hot("happy", 0.6), one_hot("sad", 0.4)]  # happy, then a weaker sad, alternately

    def labels(window: int) -> list[str]:
        settings = LiveSettings(smoothing_window=window, min_hits=1, adaptive=False)
        analyzer = LiveAnalyzer(detector, ScriptedClassifier(flicker), settings)
        return [analyzer.analyze(frame).faces[0].label for _ in range(8)]

    assert set(labels(1)) == {"happy", "sad"}
    assert set(labels(4)) == {"happy"}


def test_falling_behind_stretches_the_detection_interval():
    frame = np.zeros((200, 200, 3), np.uint8)
    slow = FixedDetector([FaceBox(50, 50, 80, 80)], delay=0.06)  # 60 ms > the 33 ms budget of 30 fps
    classifier = ScriptedClassifier([one_hot("happy")])
    analyzer = LiveAnalyzer(slow, classifier, LiveSettings(max_detection_interval=5, min_hits=1))
    for _ in range(20):
        analyzer.process(frame)
    assert analyzer.detection_interval > 1 and slow.calls < 20
    fixed = LiveAnalyzer(FixedDetector(slow.boxes, delay=0.06), classifier, LiveSettings(adaptive=False, min_hits=1))
    for _ in range(5):
        fixed.process(frame)
    assert fixed.detection_interval == 1 and fixed.detector.calls == 5


def test_settings_are_validated():
    with pytest.raises(ValueError, match=r"^Expected an overlay style among full, label, box; received 'fancy'$"):
        LiveSettings(overlay_style="fancy")
    with pytest.raises(ValueError, match=r"^Expected a confidence threshold in"):
        LiveSettings(confidence_threshold=1.5)
    with pytest.raises(ValueError, match=r"^Expected 1 <= detection_interval"):
        LiveSettings(detection_interval=9, max_detection_interval=8)


def test_overlay_styles_and_uncertain_faces():
    frame = np.zeros((300, 400, 3), np.uint8)
    face = FacePrediction(
        (100, 100, 100, 100),
        "happy",
        0.4,
        {name: float(one_hot("happy", 0.4)[i]) for i, name in enumerate(EMOTIONS)},
        3,
    )
    full = annotate_live(frame, [face], LiveSettings(overlay_style="full"))
    box_only = annotate_live(frame, [face], LiveSettings(overlay_style="box"))
    assert full[100:200, 205:300].any() and not box_only[100:200, 205:300].any()  # the bars beside the box
    assert not box_only[60:98, 100:200].any() and full[60:98, 100:200].any()  # the label above it
    uncertain = annotate_live(frame, [face], LiveSettings(confidence_threshold=0.5))
    assert tuple(uncertain[150, 100]) == UNCERTAIN_COLOR_BGR  # the box's left edge, grey
    assert tuple(full[150, 100]) != UNCERTAIN_COLOR_BGR


# --- the session shared by the video thread and the page ----------------------------------------------------------


def test_model_variants_are_listed_fastest_first(tmp_path):
    model = tmp_path / "fer_vgg.keras"
    model.write_bytes(b"k")
    assert [variant.backend for variant in model_variants(model)] == ["keras"]
    (tmp_path / "fer_vgg.tflite").write_bytes(b"f")
    (tmp_path / "fer_vgg.int8.tflite").write_bytes(b"i")
    variants = model_variants(model)
    assert [variant.path.name for variant in variants] == ["fer_vgg.int8.tflite", "fer_vgg.tflite", "fer_vgg.keras"]
    assert variants[0].label == "fer_vgg · TFLite int8 (fastest)"


def test_session_returns_every_frame_at_once_and_analyses_the_newest(astronaut_face, tiny_model_path):
    session = LiveSession(timeline_every_seconds=0)
    frame = astronaut_frame(astronaut_face)
    assert session.process_frame(frame).shape == frame.shape  # before configure: passes through with a note
    session.configure("haar", ModelVariant("tiny", tiny_model_path, "keras"), LiveSettings(adaptive=False))
    for _ in range(3):
        session.process_frame(frame)
        assert session.settle()
    snapshot = session.snapshot()
    assert snapshot.frames == 3 and [face.face_id for face in snapshot.faces] == [1]
    assert [point.face_id for point in snapshot.timeline] == [1, 1]  # shown from the second frame on
    annotated = session.process_frame(frame)
    assert snapshot.fps > 0 and session.snapshot().frame is annotated and not np.array_equal(annotated, frame)
    assert session.snapshot().returned_fps > 0 and session.snapshot().callback_ms > 0

    # While a frame is analysed, new frames are returned at once (with the latest faces) and only the newest waits.
    release = threading.Event()
    analyzer = session._analyzer
    original = analyzer.analyze
    seen = []

    def slow(image):
        seen.append(int(image[0, 0, 0]))
        release.wait(10)
        return original(image)

    analyzer.analyze = slow
    for value in range(1, 6):
        marked = frame.copy()
        marked[0, 0] = value
        started = time.perf_counter()
        returned = session.process_frame(marked)
        assert time.perf_counter() - started < 1.0 and returned.shape == frame.shape
        if value == 1:
            while not seen:
                time.sleep(0.01)
    release.set()
    assert session.settle()
    assert seen == [1, 5]  # frames 2-4 were replaced in the slot by newer ones, never queued
    session.configure("haar", ModelVariant("tiny", tiny_model_path, "keras"), LiveSettings(smoothing_window=2))
    session.reset()
    assert session.snapshot().frames == 0 and session.snapshot().timeline == []
    session.close()


def test_a_shared_classifier_is_used_and_a_new_one_starts_new_results(astronaut_face, tiny_model_path):
    """The page passes one cached classifier to every session; a reloaded model must not merge its faces."""
    session = LiveSession(timeline_every_seconds=0)
    frame = astronaut_frame(astronaut_face)
    variant = ModelVariant("tiny", tiny_model_path, "keras")
    shared = make_classifier(tiny_model_path, backend="keras")
    session.configure("haar", variant, LiveSettings(adaptive=False), classifier=shared)
    assert session._analyzer.classifier is shared
    for _ in range(2):
        session.process_frame(frame)
        session.settle()
    session.configure("haar", variant, LiveSettings(adaptive=False, smoothing_window=3), classifier=shared)
    assert session.snapshot().frames == 2  # same classifier: settings only, results kept
    reloaded = make_classifier(tiny_model_path, backend="keras")
    session.configure("haar", variant, LiveSettings(adaptive=False), classifier=reloaded)
    assert session._analyzer.classifier is reloaded
    assert session.snapshot().frames == 0 and session.snapshot().timeline == []
    for _ in range(3):
        session.process_frame(frame)
        session.settle()
    assert session.snapshot().frames == 3 and [face.face_id for face in session.snapshot().faces] == [1]

    # A model change while a frame is analysed: that frame, or its failure, belongs to the old results.
    analyzer = session._analyzer
    original = analyzer.analyze
    replacement = make_classifier(tiny_model_path, backend="keras")

    def change_midway(image):
        session.configure("haar", variant, LiveSettings(adaptive=False), classifier=replacement)
        return original(image)

    analyzer.analyze = change_midway
    session.process_frame(frame)
    session.settle()
    assert session.snapshot().frames == 0

    def change_then_fail(image):
        session.configure("haar", variant, LiveSettings(adaptive=False), classifier=shared)
        raise RuntimeError("the old interpreter failed")

    session._analyzer.analyze = change_then_fail
    session.process_frame(frame)
    session.settle()
    assert session.snapshot().error is None and session._analyzer.classifier is shared
    session.close()


def test_page_changes_reach_the_tracks_only_through_the_analysis_thread(astronaut_face, tiny_model_path):
    """The page thread once trimmed track histories while the video thread averaged them ('deque mutated')."""
    session = LiveSession(timeline_every_seconds=0)
    frame = astronaut_frame(astronaut_face)
    variant = ModelVariant("tiny", tiny_model_path, "keras")
    session.configure("haar", variant, LiveSettings(adaptive=False, smoothing_window=8))
    for _ in range(3):
        session.process_frame(frame)
        session.settle()
    analyzer = session._analyzer
    track = analyzer.tracker.tracks[0]
    kept = len(track.history)
    assert kept >= 2
    session.configure("haar", variant, LiveSettings(adaptive=False, smoothing_window=1))
    session.reset()
    assert analyzer.settings.smoothing_window == 8 and len(track.history) == kept  # untouched by the page thread
    assert session.snapshot().frames == 0
    session.process_frame(frame)
    session.settle()
    assert session._analyzer is analyzer and analyzer.settings.smoothing_window == 1
    assert [t.face_id for t in analyzer.tracker.tracks] == [1] and analyzer.tracker.tracks[0] is not track
    session.close()


def test_no_page_change_is_lost_and_no_stale_frame_counts_after_a_reset(astronaut_face, tiny_model_path):
    session = LiveSession(timeline_every_seconds=0)
    frame = astronaut_frame(astronaut_face)
    variant = ModelVariant("tiny", tiny_model_path, "keras")
    session.configure("haar", variant, LiveSettings(adaptive=False, smoothing_window=8))
    session.process_frame(frame)
    session.settle()
    analyzer = session._analyzer
    original = analyzer.analyze
    release = threading.Event()

    def slow(image):  # a frame in progress when the user moves a slider
        release.wait(10)
        return original(image)

    analyzer.analyze = slow
    session.process_frame(frame)
    session.configure("haar", variant, LiveSettings(adaptive=False, smoothing_window=3, overlay_style="box"))
    assert session._overlay.overlay_style == "box"  # the callback draws with the new settings at once...
    release.set()
    session.settle()
    analyzer.analyze = original
    session.process_frame(frame)
    session.settle()
    assert analyzer.settings.smoothing_window == 3  # ...and the analysis takes them before its next frame

    def reset_midway(image):  # START pressed again while this frame is analysed
        session.reset()
        return original(image)

    analyzer.analyze = reset_midway
    session.process_frame(frame)
    session.settle()
    assert session.snapshot().frames == 0  # the old stream's frame is not counted in the new one
    analyzer.analyze = original
    session.process_frame(frame)
    session.settle()
    assert session.snapshot().frames == 1
    session.close()


def test_an_analyzer_error_keeps_the_video_playing_and_is_reported(astronaut_face, tiny_model_path, monkeypatch):
    session = LiveSession()
    frame = astronaut_frame(astronaut_face)
    session.configure("haar", ModelVariant("tiny", tiny_model_path, "keras"), LiveSettings(adaptive=False))
    original = session._analyzer.analyze

    def broken(image):
        raise RuntimeError("interpreter exploded")

    monkeypatch.setattr(session._analyzer, "analyze", broken)
    for _ in range(2):
        assert session.process_frame(frame).shape == frame.shape  # the video goes on
        session.settle()
    assert session.snapshot().error == "RuntimeError: interpreter exploded" and session.snapshot().frames == 0
    monkeypatch.setattr(session._analyzer, "analyze", original)
    session.process_frame(frame)
    session.settle()
    assert session.snapshot().error is None and session.snapshot().frames == 1
    session.close()


def test_the_analysis_thread_ends_when_the_stream_goes_quiet(astronaut_face, tiny_model_path, monkeypatch):
    import ferlib.live.session

    monkeypatch.setattr(ferlib.live.session, "IDLE_SECONDS", 0.2)
    session = LiveSession()
    session.configure("haar", ModelVariant("tiny", tiny_model_path, "keras"), LiveSettings(adaptive=False))
    session.process_frame(astronaut_frame(astronaut_face))
    thread = session._thread
    assert thread is not None and session.settle()
    thread.join(5)
    assert not thread.is_alive() and session._thread is None
    session.process_frame(astronaut_frame(astronaut_face))  # a new frame starts a new one
    assert session.settle() and session.snapshot().frames == 2
    session.close()


def test_the_detector_searches_a_smaller_image_while_the_analysis_falls_behind(astronaut_face, tiny_classifier):
    settings = LiveSettings(detection_interval=1, max_detection_interval=2, target_fps=10_000)  # any frame is late
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier, settings)
    sides = []
    for _ in range(12):
        result = analyzer.analyze(astronaut_frame(astronaut_face))
        analyzer.adapt(result)
        sides.append(result.detection_side)
    assert analyzer.detection_interval == 2 and sides[0] == 320 and min(sides) == 160  # interval first, then size
    analyzer.update_settings(settings.updated(target_fps=0.001))  # now every frame is early
    for _ in range(30):
        analyzer.adapt(analyzer.analyze(astronaut_frame(astronaut_face)))
    assert analyzer.detection_side == 320 and analyzer.detection_interval == 1


# --- ICE servers --------------------------------------------------------------------------------------------------


def test_ice_servers_default_to_none_and_come_from_secrets_or_environment():
    assert ice_servers({}, {}) == []
    turn = {"TURN_URL": "turn:turn.example.org:3478", "TURN_USERNAME": "user", "TURN_CREDENTIAL": "secret"}
    assert ice_servers({}, turn) == [
        {"urls": ["turn:turn.example.org:3478"], "username": "user", "credential": "secret"}
    ]
    listed = {"ICE_SERVERS": [{"urls": "turn:a.example:443", "username": "u", "credential": "c"}]}
    assert ice_servers(listed, turn) == listed["ICE_SERVERS"]  # secrets first
    assert ice_servers({}, {"ICE_SERVERS": '[{"urls": ["stun:s.example:3478"]}]'}) == [
        {"urls": ["stun:s.example:3478"]}
    ]
    with pytest.raises(ValueError, match=r"^Expected ICE_SERVERS as a JSON list") as refused:
        ice_servers({}, {"ICE_SERVERS": '[{"urls": "turn:a.example", "credential": "s3cret"'})
    assert "s3cret" not in str(refused.value)  # the message reaches the page: it must not show the credential
    with pytest.raises(ValueError, match=r"^Expected ICE_SERVERS as a list of objects with 'urls'") as refused:
        ice_servers({"ICE_SERVERS": [{"url": "turn:a.example", "credential": "s3cret"}]}, {})
    assert "s3cret" not in str(refused.value)
    # secrets.toml lists: TURN_URL may be an array; each server's URLs, username and credential are checked here,
    # where a message can say what is wrong, not in the browser, where a bad server fails silently.
    assert ice_servers({"TURN_URL": ["turn:a.example:3478", "turns:a.example:443"], "TURN_USERNAME": "u"}, {}) == [
        {"urls": ["turn:a.example:3478", "turns:a.example:443"], "username": "u"}
    ]
    assert ice_servers({"TURN_URL": [" turn:a.example:3478", ""]}, {}) == [{"urls": ["turn:a.example:3478"]}]
    for servers, expected in (
        ([{"urls": []}], r"^Expected ICE server 1's 'urls' as a URL or a non-empty list of URLs; received an empty"),
        (
            [{"urls": "stun:s.example"}, {"urls": 3478}],
            r"^Expected ICE server 2's 'urls' .*received a value of type int$",
        ),
        (
            [{"urls": ["turn:a.example", 12345]}],
            r"^Expected ICE server 1's URL 2 as text; received a value of type int$",
        ),
        ([{"urls": "user:12345@a.example"}], r"^Expected ICE server 1's URL 1 to start with stun:, turn: or turns:"),
        ([{"urls": {"url": "turn:a", "credential": "12345"}}], r"^Expected ICE server 1's 'urls' .*type dict$"),
        ([{"urls": "turn:a.example", "credential": 12345}], r"^Expected ICE server 1's 'credential' as text; received"),
    ):
        with pytest.raises(ValueError, match=expected) as refused:
            ice_servers({"ICE_SERVERS": servers}, {})
        assert "12345" not in str(refused.value)  # never echoed: the message is shown on the page
    with pytest.raises(
        ValueError, match=r"^Expected ICE server 1's URL 1 to start with .*received a URL that does not$"
    ):
        ice_servers({"TURN_URL": ["a.example:3478"]}, {})


# --- video files --------------------------------------------------------------------------------------------------


def test_y4m_and_mp4_clips_round_trip(tmp_path, astronaut_face):
    frames = [astronaut_frame(astronaut_face, shift) for shift in range(0, 24, 4)]
    clip = write_y4m(tmp_path / "clip.y4m", frames, fps=10)
    decoded = list(read_video_frames(clip))
    assert [index for index, _, _ in decoded] == list(range(6))
    assert decoded[1][1] == pytest.approx(0.1) and decoded[0][2].shape == (480, 640, 3)
    assert np.abs(decoded[0][2].astype(int) - frames[0]).mean() < 6
    with VideoWriter(tmp_path / "odd.mp4", 10, 101, 75) as writer:  # odd sizes are cropped to even
        for _ in range(3):
            writer.write(np.full((75, 101, 3), 128, np.uint8))
    assert [frame.shape for _, _, frame in read_video_frames(tmp_path / "odd.mp4")] == [(74, 100, 3)] * 3
    assert is_video_path("a.MP4") and is_video_path("b.y4m") and not is_video_path("c.jpg")
    with pytest.raises(ValueError, match=r"^Expected a video file; received .*, which does not exist$"):
        list(read_video_frames(tmp_path / "broken.mp4"))
    tmp_path.joinpath("broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"^Expected a readable video file"):
        list(read_video_frames(tmp_path / "broken.mp4"))


def test_a_phone_clip_with_a_display_rotation_is_read_upright(tmp_path):
    """Phones store portrait clips as landscape frames plus a rotation; players (and now ferlib) turn them."""
    import av

    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counterclockwise, as FFmpeg's display matrix counts
        coded = np.zeros((32, 64, 3), np.uint8)
        coded[:8, :8] = 255  # a mark in the coded frame's top-left corner
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(coded, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = [frame for _, _, frame in read_video_frames(path)]
    assert [frame.shape for frame in frames] == [(64, 32, 3)] * 2
    assert frames[0][56:, :8].mean() > 200 and frames[0][:8, :8].mean() < 50  # turned counterclockwise
    assert (video_info(path).width, video_info(path).height) == (32, 64)
    marked = np.zeros((2, 3), np.uint8)
    marked[0, 0] = 1
    assert upright(marked, -90)[0, -1] == 1 and upright(marked, 180)[-1, -1] == 1 and upright(marked, 0) is marked


def test_analyze_video_rows_ids_and_annotated_clip(tmp_path, astronaut_face, tiny_classifier):
    frames = [astronaut_frame(astronaut_face, shift) for shift in range(0, 40, 4)]
    clip = write_y4m(tmp_path / "clip.y4m", frames, fps=10)
    seen = []
    analyzer = LiveAnalyzer(webcam_haar(), tiny_classifier, LiveSettings(adaptive=False))
    analysis = analyze_video(
        clip, analyzer, video_out=tmp_path / "out.mp4", progress=lambda done, total: seen.append((done, total))
    )
    assert analysis.frames == 10 and analysis.faces == 1 and analysis.fps > 0
    assert seen[-1] == (10, 10)
    assert [record.frame for record in analysis.records] == list(range(10))  # frame 0's row kept until confirmed
    assert {record.face_id for record in analysis.records} == {1}
    assert len(list(read_video_frames(tmp_path / "out.mp4"))) == 10
    import io

    buffer = io.StringIO()
    write_records_csv(analysis.records, buffer)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 11
    assert lines[1].startswith("0,0.0,1,") and lines[2].startswith("1,0.1,1,")


def test_mtcnn_detector_finds_the_astronaut(astronaut_face):
    pytest.importorskip("mtcnn")
    detector = make_detector("mtcnn")
    frame = astronaut_frame(astronaut_face)
    (box,) = detector(frame)
    assert 180 <= box.x + box.width / 2 <= 420 and 40 <= box.y + box.height / 2 <= 200 and box.score >= 0.9
    assert detector(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))  # gray input works too
    assert detector(np.full((240, 320, 3), 200, np.uint8)) == []


def test_webrtc_loads_after_tensorflow_without_crashing():
    import subprocess
    import sys

    from conftest import REPO_ROOT

    code = (
        "import tensorflow\n"
        "from ferlib.live.webrtc import preload_srtp\n"
        "preload_srtp()\n"
        "import streamlit_webrtc\n"
        "print('loaded')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "loaded", result.stderr[-2000:]


class ScriptedDetector:
    """Returns the boxes listed for each call in turn (the frames it is called on), then none."""

    def __init__(self, per_call: list[list[FaceBox]]) -> None:
        self.per_call = list(per_call)
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        return self.per_call.pop(0) if self.per_call else []


def test_a_face_seen_too_briefly_to_be_confirmed_never_gets_a_row(tmp_path, astronaut_face, tiny_classifier):
    frames = [astronaut_frame(astronaut_face, 0) for _ in range(8)]
    clip = write_y4m(tmp_path / "clip.y4m", frames, fps=10)
    person, glitch = FaceBox(200, 100, 120, 120), FaceBox(10, 10, 60, 60)
    detector = ScriptedDetector([[person, glitch], [person, glitch], [person], [person], [person], [person]])
    settings = LiveSettings(adaptive=False, detection_interval=1, min_hits=3, detection_max_side=640)
    analysis = analyze_video(clip, LiveAnalyzer(detector, tiny_classifier, settings))
    assert analysis.face_ids == [1]  # the glitch (id 2) was seen twice, never confirmed, and left no row
    assert [record.frame for record in analysis.records] == list(range(8))  # followed after the last detection


def test_a_truncated_clip_keeps_the_frames_it_read_and_says_where_it_stopped(tmp_path, astronaut_face, tiny_classifier):
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 10, 640, 480) as writer:
        for shift in range(0, 60, 2):
            writer.write(astronaut_frame(astronaut_face, shift))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:-3000])  # the last few frames (the first, a key frame, is most of the file)
    analysis = analyze_video(cut, LiveAnalyzer(webcam_haar(), tiny_classifier, LiveSettings(adaptive=False)))
    assert 0 < analysis.frames < 30 and analysis.stopped_early is not None
    assert analysis.stopped_early.startswith(f"the video ended after frame {analysis.frames} of the 30")
