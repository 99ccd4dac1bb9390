"""One training run across several processes with tf.distribute's MultiWorkerMirroredStrategy.

Every worker holds a copy of the model and trains on its share of each batch (the config's batch is the global
batch, so the learning rate needs no scaling); gradients are averaged across workers after every step. The chief
(worker 0) alone writes the run folder: status, progress, history, checkpoints. The workers agree on a stop every
few batches (an all-reduce of their stop flags), so that they all leave the same step together.

`python -m ferlib train … --workers N` runs the chief here and N-1 workers beside it; on other machines,
`train --run-dir RUN --worker-index I --cluster HOST:PORT,…` joins (the run folder and dataset on shared storage).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferlib.errors import FerError
from ferlib.jobs import folder
from ferlib.jobs.network import free_port, parse_address

TF_CONFIG = "TF_CONFIG"
WORKERS_DIR = "workers"  # each local worker's console output, workers/worker-<index>.log
AGREE_EVERY = 10  # batches between the workers' agreement on a stop


@dataclass
class Cluster:
    """The workers' addresses (the chief's first) and this process's index among them."""

    addresses: list[str]
    index: int = 0
    processes: list[subprocess.Popen] = field(default_factory=list)  # the local workers the chief started

    @property
    def size(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def parse_cluster(text: str, index: int) -> Cluster:
    """'HOST:PORT,HOST:PORT' and this worker's index in it, refused with one line when it is not that."""
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    for address in addresses:
        parse_address(address, "each worker's address")
    if len(addresses) < 2 or len(set(addresses)) != len(addresses):
        raise FerError(f"Expected two or more distinct worker addresses HOST:PORT,HOST:PORT; received {text!r}")
    if not 0 <= index < len(addresses):
        raise FerError(f"Expected a worker index from 0 to {len(addresses) - 1}; received {index}")
    return Cluster(addresses, index)


def local_cluster(workers: int) -> Cluster:
    """A cluster of `workers` processes on this machine, this one the chief."""
    if not 2 <= workers <= 64:
        raise FerError(f"Expected --workers from 2 to 64 for a distributed run; received {workers}")
    return Cluster([f"localhost:{free_port()}" for _ in range(workers)], 0)


def start_local_workers(cluster: Cluster, run_dir: Path, data: str | None, resume: bool = False) -> None:
    """Start workers 1… of a local cluster, each `train --worker-index I` at a lower priority, logging to
    workers/worker-I.log in the run folder."""
    logs = run_dir / WORKERS_DIR
    logs.mkdir(exist_ok=True)
    for index in range(1, cluster.size):
        command = [sys.executable, "-m", "ferlib", "train", "--run-dir", str(run_dir), "--quiet"]
        command += ["--worker-index", str(index), "--cluster", ",".join(cluster.addresses)]
        command += ["--data", data] if data else []
        command += ["--resume"] if resume else []
        with open(logs / f"worker-{index}.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        cluster.processes.append(process)


def dead_worker(cluster: Cluster, seconds: float = 0.0) -> str | None:
    """What ended a local worker that exited with an error (waiting up to `seconds` for one to be seen), or None."""
    deadline = time.time() + seconds
    while True:
        for index, process in enumerate(cluster.processes, start=1):
            code = process.poll()
            if code not in (None, 0):
                return f"worker {index} exited with code {code} (see {WORKERS_DIR}/worker-{index}.log)"
        if time.time() >= deadline:
            return None
        time.sleep(0.2)


def watch_local_workers(cluster: Cluster, run_dir: Path, poll_seconds: float = 2.0) -> None:
    """While the chief trains: a local worker that dies would leave it waiting for its share of a step forever, so
    the chief records the failure and ends (Resume continues from the last checkpoint)."""

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if error := dead_worker(cluster):
                print(f"error: {error}; ending the chief", file=sys.stderr, flush=True)
                folder.write_status(run_dir, "failed", error=error)
                os._exit(1)
            if all(process.poll() == 0 for process in cluster.processes):
                return

    threading.Thread(target=watch, name="worker-watch", daemon=True).start()


def wait_for_local_workers(cluster: Cluster, seconds: float = 120) -> None:
    """After the chief's training: let its local workers leave fit and exit (killed after `seconds`)."""
    deadline = time.time() + seconds
    for process in cluster.processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()


def strategy_for(cluster: Cluster) -> Any:
    """The MultiWorkerMirroredStrategy of this process's place in the cluster (made before any other TF work)."""
    import tensorflow as tf

    os.environ[TF_CONFIG] = json.dumps(
        {"cluster": {"worker": cluster.addresses}, "task": {"type": "worker", "index": cluster.index}}
    )
    return tf.distribute.MultiWorkerMirroredStrategy()


def prepare_model_for_fit(model: Any, strategy: Any, images: Any, labels: Any) -> None:
    """Build the model's, metrics' and loss's state inside the strategy from two real faces, so that `fit` does not.

    Keras 3 (3.15 with TensorFlow 2.21) builds them in `fit` by reducing the first distributed batch, which fails
    under MultiWorkerMirroredStrategy, and averages each step's metrics along an axis scalars lack
    (keras-team/keras#20585). Both are worked around here: the state is built first, and `_reduce_metrics_fix`
    averages scalars across workers.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=(images[:2], labels[:2]))
    model._maybe_symbolic_build = lambda *args, **kwargs: None  # already built above
    _reduce_metrics_fix()


def _reduce_metrics_fix() -> None:
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "ferlib_fixed", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):

            def mean(value):
                return strategy.reduce("MEAN", value, axis=None) if trainer._is_per_replica_instance(value) else value

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.ferlib_fixed = True
    trainer.reduce_per_replica = reduce_per_replica


class AgreedStop:
    """A stop every worker sees at the same step: each worker's own signal (the chief's stop request or SIGTERM,
    any worker's SIGTERM), combined by an all-reduce every AGREE_EVERY batches."""

    def __init__(self, own: folder.StopSignal, strategy: Any) -> None:
        self.own = own
        self.strategy = strategy
        self.triggered = False

    def should_stop(self) -> bool:
        return self.triggered

    def agree(self) -> bool:
        import tensorflow as tf

        wanted = 1.0 if self.own.should_stop() else 0.0
        votes = self.strategy.run(lambda: tf.constant(wanted))
        self.triggered = float(self.strategy.reduce("SUM", votes, axis=None)) > 0
        return self.triggered


def agreement_callback(stop: AgreedStop) -> Any:
    """A Keras callback that asks the workers to agree on a stop every AGREE_EVERY batches and ends training there."""
    import keras

    class AgreeOnStop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if (batch + 1) % AGREE_EVERY == 0 and stop.agree():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if stop.agree():  # also between epochs: a short epoch may end before its first agreement
                self.model.stop_training = True

    return AgreeOnStop()
