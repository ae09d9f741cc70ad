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
