"""Training on more than one device or machine with TensorFlow's own engine, ``tf.distribute``.

``make_strategy("mirrored")`` copies the network onto every local GPU (or the CPU) and
all-reduces the gradients; ``make_strategy("multi_worker")`` does the same across processes or
machines described by ``TF_CONFIG`` (one JSON per process: the cluster's worker addresses and
this process's index). Pass the strategy to :func:`mtrec_study.training.trainer.train`, or run
``python -m mtrec_study train --strategy multi_worker`` once per machine.

Each worker reads its own share of every global batch (``batch_size`` is the global batch), the
gradients are summed across workers, and the logged losses are accumulated over every worker's
rows, so every worker stops early at the same epoch with the same weights. A two-tower network's
in-batch softmax (catalogues too large for the full softmax) then draws each replica's negatives
from its own share of the batch, a smaller pool than one process would use.

Keras 3 cannot ``predict`` with a network built in a multi-worker scope: save it on worker 0 and
predict from the ``.keras`` file in an ordinary process.

Create the strategy before anything else touches TensorFlow: a multi-worker strategy configures
the runtime's collective operations, which TensorFlow allows only at start-up. The README's
"More than one machine" section shows a launch; ``tests/unit/test_distribute.py`` runs two
workers on localhost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`).

    Raises:
        ValueError: For an unknown name, or ``multi_worker`` without a valid ``TF_CONFIG``.

    Used by mtrec_study.cli.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")


def check_tf_config(text: str | None) -> dict:
    """Parse and check ``TF_CONFIG`` for a multi-worker run; return it as a dict.

    Raises:
        ValueError: Naming what is missing or wrong: no ``TF_CONFIG``, bad JSON, no
            ``cluster.worker`` list of ``host:port`` addresses, or a ``task`` that is not one of them.

    Used by mtrec_study.training.distribute.
    """
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    if not text:
        raise ValueError(f"the multi_worker strategy needs TF_CONFIG set in each process, for example {example}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}); for example {example}") from None
    cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
    other = sorted(set(cluster) - {"worker"}) if isinstance(cluster, dict) else []
    if other:
        raise ValueError(f"TF_CONFIG's cluster may hold only 'worker' addresses (MultiWorkerMirroredStrategy's "
                         f"workers are peers), got also {other}")
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if not isinstance(workers, list) or not workers or not all(
            isinstance(w, str) and w.rpartition(":")[2].isdigit() for w in workers):
        raise ValueError(f"TF_CONFIG's cluster.worker must be a list of 'host:port' addresses, got {workers!r}")
    task = config.get("task", {})
    if task.get("type") != "worker" or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(workers):
        raise ValueError(f"TF_CONFIG's task must be {{'type': 'worker', 'index': 0..{len(workers) - 1}}}, got {task!r}")
    return config


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether ``strategy`` spans more than one process (a multi-worker cluster of two or more).

    Used by mtrec_study.training.distribute, mtrec_study.training.trainer.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    return resolver is not None and len(resolver.cluster_spec().as_dict().get("worker", [])) > 1


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the outputs: always, except worker 1, 2 ... of a multi-worker run.

    Used by mtrec_study.cli.
    """
    if not is_multi_worker(strategy):
        return True
    return strategy.cluster_resolver.task_id == 0


def _free_ports(n: int) -> list[int]:
    """``n`` loopback ports that are free now (the workers bind them a moment later)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_local_workers(n: int, train_args: list[str], out_dir: str | Path, timeout: float = 300.0) -> list[dict]:
    """Train one network with ``n`` worker processes on this machine (loopback ports only).

    Each worker runs ``python -m mtrec_study train <train_args> --strategy multi_worker`` with its
    own ``TF_CONFIG`` and ``--output-dir <out_dir>/worker<i>`` (only worker 0 writes there); its
    output goes to ``<out_dir>/worker<i>.log``. Every worker is stopped when ``timeout`` seconds
    have passed for all of them together.

    Args:
        n: Worker processes (1 gives one process under the multi-worker strategy).
        train_args: The ``train`` command's options, without ``--strategy`` or ``--output-dir``.
        out_dir: Where the logs and worker 0's outputs go.
        timeout: Seconds for all workers together.

    Returns:
        Per worker: ``returncode`` (None if it was stopped at the deadline), ``log`` (its output)
        and ``seconds`` (wall time from the first launch until it ended, to about 0.2 s).

    Introduced in notebooks/10_scaling.ipynb.
    """
    import subprocess
    import sys
    import time

    from mtrec_study.config import PROJECT_ROOT

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(n)
    procs, logs = [], []
    start = time.monotonic()
    ended: list[float | None] = [None] * n
    try:
        for index in range(n):
            config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                      "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"}
            logs.append(open(out_dir / f"worker{index}.log", "w"))  # a file, so no worker blocks on a full pipe
            procs.append(subprocess.Popen([sys.executable, "-m", "mtrec_study", "train", *train_args, "--strategy",
                                           "multi_worker", "--output-dir", str(out_dir / f"worker{index}")],
                                          cwd=PROJECT_ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT,
                                          text=True))
        while any(e is None for e in ended) and time.monotonic() - start < timeout:
            for index, proc in enumerate(procs):
                if ended[index] is None and proc.poll() is not None:
                    ended[index] = time.monotonic() - start
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for log in logs:
            log.close()
    return [{"returncode": proc.returncode if ended[i] is not None else None,
             "log": (out_dir / f"worker{i}.log").read_text(), "seconds": ended[i]} for i, proc in enumerate(procs)]
