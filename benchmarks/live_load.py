"""The live camera under CPU load: frames returned and analysed per second, time in the callback, memory.

A "camera" thread hands 640x480 frames of the astronaut to `LiveSession.process_frame` at the camera's rate, as
streamlit-webrtc's callback does, and encodes each returned frame to VP8 as the connection does, for a
while; beside it run 0, 1, 2 and 4 busy processes (a Python loop each, at
normal priority, as a second app server or a test suite would be). Whatever else runs on the machine (a training
run, say) stays as it is. Printed per load: frames returned per second (the video the browser gets), frames
analysed per second, the callback's mean and 95th-percentile time, the analysis time of a frame, the detector's
image size at the end, and the process's resident memory before and after.

    python benchmarks/live_load.py [--seconds 30] [--fps 15] [--loads 0,1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPO_ROOT, astronaut_frames


def resident_megabytes() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Encoder:
    """VP8 at 640x480, as the WebRTC connection encodes every frame it sends (PyAV's libvpx)."""

    def __init__(self, fps: float) -> None:
        import av

        self.av = av
        self.codec = av.CodecContext.create("libvpx", "w")
        self.codec.width, self.codec.height, self.codec.pix_fmt = 640, 480, "yuv420p"
        self.codec.bit_rate, self.codec.framerate = 1_000_000, round(fps)
        self.codec.options = {"deadline": "realtime", "cpu-used": "8"}

    def encode(self, frame) -> None:
        self.codec.encode(self.av.VideoFrame.from_ndarray(frame, format="bgr24"))


def run_camera(session, frames, fps: float, seconds: float) -> dict[str, list[float]]:
    """Feed frames at `fps` for `seconds` and encode what comes back; times in ms and once-a-second samples."""
    samples = {"callback": [], "encode": [], "analysed": [], "analysis": []}
    encoder = Encoder(fps)
    period, started = 1.0 / fps, time.perf_counter()
    next_sample, index = started + 1.0, 0
    while (now := time.perf_counter()) - started < seconds:
        before = time.perf_counter()
        returned = session.process_frame(frames[index % len(frames)])
        between = time.perf_counter()
        encoder.encode(returned)
        samples["callback"].append(1000 * (between - before))
        samples["encode"].append(1000 * (time.perf_counter() - between))
        index += 1
        if now >= next_sample:
            snapshot = session.snapshot()
            samples["analysed"].append(snapshot.fps)
            samples["analysis"].append(snapshot.ms_per_frame)
            next_sample += 1.0
        time.sleep(max(0.0, started + index * period - time.perf_counter()))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each load runs (default 30)")
    parser.add_argument("--fps", type=float, default=15.0, help="the camera's frame rate (default 15)")
    parser.add_argument("--loads", default="0,1,2,4", help="numbers of busy processes to try (default 0,1,2,4)")
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "fer_vgg.keras"))
    arguments = parser.parse_args()
    from ferlib.live.analyzer import LiveSettings
    from ferlib.live.session import LiveSession, model_variants

    variant = model_variants(arguments.model)[0]
    frames = astronaut_frames(90)
    print(f"camera {arguments.fps:g} fps, 640x480, {arguments.seconds:g} s per load; model {variant.path.name}")
    header = f"{'busy':>5}{'returned fps':>14}{'analysed fps':>14}{'callback ms':>13}{'p95 ms':>8}{'encode ms':>11}"
    print(header + f"{'analysis ms':>13}{'detector px':>13}{'RSS MB':>15}")
    for load in [int(part) for part in arguments.loads.split(",")]:
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        try:
            session = LiveSession()
            session.configure("haar", variant, LiveSettings())
            before = resident_megabytes()
            started = time.perf_counter()
            samples = run_camera(session, frames, arguments.fps, arguments.seconds)
            returned = len(samples["callback"]) / (time.perf_counter() - started)
            snapshot = session.snapshot()
            session.close()
            after = resident_megabytes()
        finally:
            for process in busy:
                process.kill()
                process.wait()
        p95 = statistics.quantiles(samples["callback"], n=20)[-1]
        analysed, analysis = statistics.fmean(samples["analysed"] or [0]), statistics.fmean(samples["analysis"] or [0])
        print(
            f"{load:>5}{returned:>14.1f}{analysed:>14.1f}{statistics.fmean(samples['callback']):>13.2f}{p95:>8.2f}"
            f"{statistics.fmean(samples['encode']):>11.2f}{analysis:>13.1f}{snapshot.detection_side:>13}"
            f"{f'{before:.0f} -> {after:.0f}':>15}"
        )
        threading.Event().wait(1)


if __name__ == "__main__":
    main()
