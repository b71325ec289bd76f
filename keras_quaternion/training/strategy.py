"""Distribution strategies by name, and which process writes files.

``"default"`` is the current strategy (one device); ``"mirrored"`` is
``tf.distribute.MirroredStrategy`` over the visible GPUs (or every logical CPU device when there
is no GPU); ``"multiworker"`` is ``tf.distribute.MultiWorkerMirroredStrategy`` configured from
``TF_CONFIG``. Only the chief (:func:`is_chief`) writes files.
"""

from __future__ import annotations

import json
import os

__all__ = ["STRATEGIES", "is_chief", "make_strategy", "strategy_name", "worker_of"]

#: Names accepted by :func:`make_strategy`.
STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(strategy="default"):
    """Create a ``tf.distribute`` strategy by name.

    Args:
        strategy: ``"default"`` (the current/default strategy: one device), ``"mirrored"``
            (synchronous data parallelism over the visible GPUs, or over every logical CPU
            device when there is no GPU) or ``"multiworker"`` (synchronous data parallelism over
            the machines listed in the ``TF_CONFIG`` environment variable). A
            ``tf.distribute.Strategy`` instance is returned as is.

    Returns:
        ``tf.distribute.Strategy``.

    Raises:
        ValueError: unknown name, or ``"multiworker"`` without a valid ``TF_CONFIG``.
        RuntimeError: ``"multiworker"`` requested after TensorFlow already ran operations in
            this process (create the strategy first, before :func:`prepare`).

    Example:
        >>> make_strategy("default").num_replicas_in_sync
        1
    """
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    _check_tf_config()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as err:
        raise RuntimeError(
            f"Could not create MultiWorkerMirroredStrategy ({err}). It must be created before "
            "TensorFlow runs any operation in the process: call make_strategy('multiworker') "
            "first and pass the strategy object to train() (kq-train does this)."
        ) from err


def _check_tf_config() -> None:
    """Raise ``ValueError`` unless ``TF_CONFIG`` describes a cluster of workers and this task."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "strategy 'multiworker' needs the TF_CONFIG environment variable describing the "
            'cluster and this task, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (see docs/training.md).'
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"TF_CONFIG is not valid for strategy 'multiworker' ({type(err).__name__}: {err}); it "
            'must be JSON with "cluster": {"worker": [...]} and "task": {"type", "index"}.'
        ) from None
    if not isinstance(workers, list) or not workers:
        raise ValueError("TF_CONFIG: cluster.worker must be a non-empty list of host:port.")


def strategy_name(strategy) -> str:
    """The name :func:`make_strategy` knows ``strategy`` by (else its class name).

    Example:
        >>> strategy_name(make_strategy("default"))
        'default'
    """
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if strategy is tf.distribute.get_strategy():
        return "default"
    return type(strategy).__name__


def is_chief(strategy) -> bool:
    """Whether this process writes files: always, except on non-chief multi-worker tasks.

    The chief is the task of type ``"chief"``, or worker 0 when the cluster has no chief.

    Args:
        strategy: a ``tf.distribute.Strategy`` (anything with a ``cluster_resolver``
            attribute is read; without one the process is the chief).

    Returns:
        ``bool``.

    Example:
        >>> import tensorflow as tf
        >>> from types import SimpleNamespace
        >>> is_chief(make_strategy("default"))
        True
        >>> cluster = tf.train.ClusterSpec({"worker": ["host1:2222", "host2:2222"]})
        >>> def worker(i):  # stands in for a MultiWorkerMirroredStrategy on worker i
        ...     resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        ...         cluster, task_type="worker", task_id=i)
        ...     return SimpleNamespace(cluster_resolver=resolver)
        >>> is_chief(worker(0)), is_chief(worker(1))
        (True, False)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and int(task_id or 0) == 0 and "chief" not in cluster


def worker_of(strategy) -> tuple[int, int]:
    """``(index, count)`` of this process among the workers that read input.

    The workers of a ``MultiWorkerMirroredStrategy`` cluster (a ``"chief"`` task counts as
    worker 0, the ``"worker"`` tasks follow it); ``(0, 1)`` for every other strategy. The
    training loop gives it to
    :meth:`~keras_quaternion.training.pipeline.PreparedData.tf_dataset`, which then reads this
    worker's shards only.

    Args:
        strategy: a ``tf.distribute.Strategy`` (anything with a ``cluster_resolver``
            attribute is read).

    Returns:
        ``(index, count)`` with ``0 <= index < count``.

    Example:
        >>> import tensorflow as tf
        >>> from types import SimpleNamespace
        >>> worker_of(make_strategy("default"))
        (0, 1)
        >>> cluster = tf.train.ClusterSpec({"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]})
        >>> resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        ...     cluster, task_type="worker", task_id=1)
        >>> worker_of(SimpleNamespace(cluster_resolver=resolver))
        (2, 3)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return 0, 1
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief", []))
    count = chiefs + len(cluster.get("worker", []))
    if resolver.task_type == "chief":
        return 0, max(1, count)
    if resolver.task_type != "worker":  # an evaluator or parameter server reads no input
        return 0, 1
    return chiefs + int(resolver.task_id or 0), max(1, count)
