"""Searches across processes and machines: keras-tuner's chief (the oracle, a gRPC service) and its workers.

keras-tuner picks its role from three environment variables: KERASTUNER_TUNER_ID ("chief", or a worker's own id),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT. The search's own process is the chief: it trains the baseline,
then serves the oracle and supervises its local workers, each a `python -m ferlib tune --join HOST:PORT` process
with its share of the cores. A worker that dies is started again under the same id, and the oracle hands it the trial
it was running, so the trial is retried, not lost. Workers on other machines join the same way; the search folder
(and the dataset) must then be on storage every machine sees.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ferlib.errors import FerError
from ferlib.jobs import folder

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
CHIEF = "chief"
WORKERS_DIR = "workers"  # each local worker's console output, workers/<id>.log
MAX_RESTARTS = 3  # a worker that keeps dying is not started a fourth time
STOP_GRACE_SECONDS = 60  # workers stop after their batch; one still running after this is killed
BACKUP_SECONDS = 10  # how often the chief backs up the oracle's project


def set_role(tuner_id: str, host: str, port: int) -> None:
    """Make this process keras-tuner's chief or one of its workers (read when a tuner is built)."""
    os.environ.update({TUNER_ID: tuner_id, ORACLE_IP: host, ORACLE_PORT: str(port)})


def worker_id(index: int) -> str:
    """The id of this machine's `index`-th worker: stable across restarts, unique across machines."""
    return f"{socket.gethostname()}-{index}"


def threads_per_worker(workers: int) -> int:
    """Each of `workers` local workers' share of this process's cores (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))


@dataclass
class LocalWorker:
    """One worker process this chief started, and how often it had to be started again."""

    tuner_id: str
    process: subprocess.Popen | None = None
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)


class Chief:
    """Serves the oracle (keras-tuner's chief `search`, in a thread) and keeps the local workers running."""

    def __init__(
        self,
        search_dir: Path,
        workers: int,
        port: int,
        data: str | None,
        record: Callable[[dict], None],
        should_stop: Callable[[], bool],
        back_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.search_dir = search_dir
        self.port = port
        self.data = data
        self.record = record
        self.should_stop = should_stop
        self.back_up = back_up
        self.threads = threads_per_worker(workers)
        self.workers = [LocalWorker(worker_id(index)) for index in range(workers)]
        (search_dir / WORKERS_DIR).mkdir(exist_ok=True)

    def start(self, worker: LocalWorker) -> None:
        arguments = ["tune", "--search-dir", str(self.search_dir), "--join", f"127.0.0.1:{self.port}"]
        arguments += ["--worker-id", worker.tuner_id, "--threads", str(self.threads)]
        if self.data:
            arguments += ["--data", self.data]
        with open(self.search_dir / WORKERS_DIR / f"{worker.tuner_id}.log", "ab") as log:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "ferlib", *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={key: value for key, value in os.environ.items() if not key.startswith("KERASTUNER_")},
            )

    def run(self, serve: Callable[[], None], poll_seconds: float = 1.0) -> str:
        """Serve the oracle and supervise the workers until the oracle has handed out every trial and every worker
        (local, or joined from elsewhere) has finished, or a stop is requested; "finished" or "stopped".

        A local worker that exits with an error is started again (same id) up to MAX_RESTARTS times. The oracle's
        project is backed up as it goes (the chief writes it; `repair_project` restores it after a crash).
        """
        failures: list[BaseException] = []

        def serving() -> None:
            try:
                serve()
            except BaseException as error:  # reported by the supervising loop below, not lost in this thread
                failures.append(error)

        server = threading.Thread(target=serving, name="oracle", daemon=True)
        server.start()
        for worker in self.workers:
            self.start(worker)
            self.record({"event": "worker_start", "worker": worker.tuner_id, "threads": self.threads})
        last_backup = time.monotonic()
        while True:
            time.sleep(poll_seconds)
            if time.monotonic() - last_backup >= BACKUP_SECONDS:
                self.back_up()
                last_backup = time.monotonic()
            if failures:
                self.stop_workers()
                error = failures[0]
                raise FerError(f"Expected the oracle to serve the workers; received {type(error).__name__}: {error}")
            if self.should_stop():
                self.stop_workers()
                return "stopped"
            running = 0
            for worker in self.workers:
                code = worker.process.poll() if worker.process else 0
                if code is None:
                    running += 1
                elif code != 0 and worker.restarts < MAX_RESTARTS and server.is_alive():
                    worker.exit_codes.append(code)
                    worker.restarts += 1
                    self.record({"event": "worker_restart", "worker": worker.tuner_id, "exit_code": code})
                    self.start(worker)
                    running += 1
            failed = [worker.tuner_id for worker in self.workers if worker.process and worker.process.returncode]
            if running == 0 and failed and server.is_alive():
                raise FerError(
                    f"Expected the search's workers to finish its trials; received {', '.join(failed)} failing "
                    f"{MAX_RESTARTS + 1} times (see {WORKERS_DIR}/ in the search folder)"
                )
            if running == 0 and not server.is_alive():  # every trial handed out and reported, joined workers too
                self.back_up()
                return "finished"

    def stop_workers(self) -> None:
        """Workers see the stop request themselves; SIGTERM any still running, then kill what outlives the grace."""
        for worker in self.workers:
            if worker.process and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.time() + STOP_GRACE_SECONDS
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def ensure_joinable(search_dir: Path) -> None:
    """A worker joins a search whose chief is running (it does not own the folder's status)."""
    state = folder.read_status(search_dir).get("state")
    if state not in folder.ACTIVE_STATES:
        raise FerError(
            f"Expected a running search to join; received {search_dir.name}, which is {state}: start or resume it "
            "with --workers first"
        )
