"""Resumable training loop with distribution strategies.

:func:`train` trains a registry model (by name) or any ``keras.Model`` on a
:class:`~keras_quaternion.training.pipeline.PreparedData`, optionally distilling from a teacher,
and writes to ``out_dir``:

* ``model.keras``: the model of the epoch with the best validation score;
* ``metrics.json``: ``{"dataset", "model", "params", "macs", "test": {"accuracy"} or {"mAP"},
  "epochs", "seconds", ...}``;
* ``history.csv``: one row per epoch (training logs, ``val_loss``, ``val_<score>``, seconds);
* ``training_curves.png`` and, for single-label data, ``confusion_matrix.png`` (test split);
* ``tb/``: TensorBoard logs (``tb/train``, ``tb/validation``);
* ``checkpoint/``: after every epoch, one ``.npz`` with the model variables, the optimizer state
  and the best weights, and ``checkpoint.json`` (epoch, history, best score, settings) pointing
  at it. Both are written to a temporary name and moved into place with ``os.replace``, the
  pointer last, so a run killed at any moment resumes from the last complete epoch.

Running the same call again resumes from the checkpoint ("Resuming from epoch N"); a finished run
is not trained again (its ``metrics.json`` is returned); ``resume=False`` starts over.

Distribution: ``strategy="mirrored"`` uses ``tf.distribute.MirroredStrategy`` over the visible
GPUs (or every logical CPU device when there is no GPU); ``"multiworker"`` uses
``tf.distribute.MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``. ``batch_size`` is
the global batch. Only the chief writes files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_quaternion.files import atomic_path, atomic_save_model, atomic_write
from keras_quaternion.training import metrics as kq_metrics
from keras_quaternion.training.pipeline import PreparedData

__all__ = [
    "STRATEGIES",
    "evaluate",
    "is_chief",
    "load_model",
    "make_strategy",
    "predict",
    "train",
]

#: Names accepted by :func:`make_strategy`.
STRATEGIES = ("default", "mirrored", "multiworker")

CHECKPOINT_VERSION = 1

# settings that must match to resume a run (epochs may grow: training continues)
_RESUME_KEYS = (
    "model",
    "width",
    "model_options",
    "dataset",
    "classes",
    "input_shape",
    "multi_label",
    "feature_config",
    "clip_seconds",
    "batch_size",
    "lr",
    "seed",
    "teacher",
    "temperature",
    "alpha",
    "spec_augment",
    "mixup",
    "params",
)


# ---------------------------------------------------------------------------- strategies


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
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as err:
        raise RuntimeError(
            f"Could not create MultiWorkerMirroredStrategy ({err}). It must be created before "
            "TensorFlow runs any operation in the process: call make_strategy('multiworker') "
            "first and pass the strategy object to train() (kq-train does this)."
        ) from err


def _strategy_name(strategy) -> str:
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


# ------------------------------------------------------------------------------- helpers


def _model_channels(model) -> int:
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[-1] not in (1, 4):
        raise ValueError(
            f"Model {model.name!r} has input shape {model.input_shape}; expected "
            "[batch, frames, mels, 1] (real model, log-mel) or [batch, frames, mels, 4] "
            "(quaternion model: log-mel, Δ, Δ², Δ³)."
        )
    return int(shape[-1])


def _check_model_fits(model, prepared: PreparedData, what: str = "model") -> int:
    channels = _model_channels(model)
    _, frames, mels, _ = tuple(model.input_shape)
    if mels is not None and mels != prepared.n_mels:
        raise ValueError(
            f"The {what} {model.name!r} expects {mels} mel bands but the data has "
            f"{prepared.n_mels}; prepare the data with n_mels={mels} (--n-mels {mels})."
        )
    if frames is not None and frames != prepared.frames:
        raise ValueError(
            f"The {what} {model.name!r} expects {frames} frames but the data has "
            f"{prepared.frames} ({prepared.clip_seconds:g} s at {prepared.sample_rate} Hz); use "
            "the clip length and sample rate it was trained with."
        )
    out = model.output_shape
    if isinstance(out, list) or out[-1] != prepared.num_classes:
        raise ValueError(
            f"The {what} {model.name!r} has output shape {out} but the data has "
            f"{prepared.num_classes} classes."
        )
    return channels


def _outputs_are_logits(model) -> bool:
    from keras_quaternion.distill import model_output_kind

    try:
        kind, _ = model_output_kind(model)
    except ValueError:
        return False
    return kind == "logits"


def load_model(path: str | os.PathLike):
    """Load a ``.keras`` model saved by this package (custom layers registered).

    The model is loaded without its compile state (``compile=False``).

    Args:
        path: the ``.keras`` file.

    Returns:
        The ``keras.Model``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a ``.keras`` file (wrong suffix, or a file that is not the zip archive
            ``model.save()`` writes), or it cannot be read as a Keras model.

    Example:
        >>> import keras
        >>> from keras_quaternion import QDense
        >>> x = keras.Input((8,))
        >>> keras.Model(x, QDense(2, name="qd")(x)).save("tiny.keras")
        >>> model = load_model("tiny.keras")
        >>> type(model.get_layer("qd")).__name__, model.output_shape
        ('QDense', (None, 8))
        >>> load_model("missing.keras")
        Traceback (most recent call last):
        ...
        FileNotFoundError: Model file 'missing.keras' does not exist.
    """
    import keras

    import keras_quaternion.layers  # noqa: F401  (registers the quaternion layers)

    try:
        import keras_quaternion.models  # noqa: F401  (registers the models' custom layers)
    except ImportError:  # pragma: no cover - models package not installed yet
        pass
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file '{path}' does not exist.")
    if path.suffix != ".keras":
        raise ValueError(
            f"Model file '{path}' is not a .keras file (got suffix {path.suffix!r}); save models "
            "with model.save('name.keras')."
        )
    _check_keras_archive(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:
        raise ValueError(f"Could not load '{path}' as a Keras model: {err}") from err


def _check_keras_archive(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a zip archive holding a Keras ``config.json``.

    Keras itself reports such a file as "File not found", although it exists.

    Example:
        >>> _ = Path("notes.keras").write_text("not a model")
        >>> _check_keras_archive(Path("notes.keras"))
        Traceback (most recent call last):
        ...
        ValueError: 'notes.keras' is not a Keras model file (a .keras file is a zip archive
        written by model.save(); this file is not a zip archive). Pass the .keras file ...
    """
    problem = ""
    if not zipfile.is_zipfile(path):
        problem = "this file is not a zip archive"
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    problem = "this zip archive has no config.json"
        except (zipfile.BadZipFile, OSError) as err:  # pragma: no cover - damaged archive
            problem = f"its zip directory cannot be read ({err})"
    if problem:
        raise ValueError(
            f"'{path}' is not a Keras model file (a .keras file is a zip archive written by "
            f"model.save(); {problem}). Pass the .keras file that model.save('name.keras') "
            "wrote, or save the model again."
        )


def predict(model, prepared: PreparedData, split: str, *, batch_size: int = 64, forward=None):
    """Predicted probabilities of a split, ``float32 [N, classes]``.

    Runs ``model(x, training=False)`` batch by batch (in the cross-replica context under a
    distribution strategy, so every worker can call it independently). Logit outputs are turned
    into probabilities (softmax, or sigmoid for multi-label data).

    Args:
        model: a ``keras.Model`` taking ``[B, frames, mels, 1 or 4]``.
        prepared: the data.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        batch_size: examples per forward pass.
        forward: optional compiled ``forward(x) -> outputs`` to reuse across calls.

    Returns:
        float32 ``[N, classes]`` probabilities (``N`` examples of ``split``).

    Raises:
        ValueError: the model does not fit the data (mels, frames, classes, channels), or an
            unknown split.

    Example:
        >>> import keras
        >>> x = np.zeros((6, 20, 16, 4), "float32")
        >>> data = PreparedData.from_arrays(
        ...     {"train": (x, np.arange(6) % 2), "validation": (x[:2], [0, 1]),
        ...      "test": (x[:3], [1, 0, 1])}, class_names=["a", "b"])
        >>> inputs = keras.Input((20, 16, 1))  # a real model: reads channel 0 (log-mel)
        >>> y = keras.layers.GlobalAveragePooling2D()(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(y))  # logits, turned into softmax
        >>> predict(model, data, "test").tolist()
        [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]
    """
    import tensorflow as tf

    channels = _check_model_fits(model, prepared)
    x, _ = prepared.arrays(split, channels=4)
    logits = _outputs_are_logits(model)
    if forward is None:
        forward = _make_forward(model)
    out = []
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start : start + batch_size], dtype=np.float32)
        if channels == 1:
            xb = np.ascontiguousarray(xb[..., :1])
        out.append(np.asarray(forward(tf.constant(xb))))
    if not out:
        return np.zeros((0, prepared.num_classes), np.float32)
    probs = np.concatenate(out).astype(np.float32)
    if logits:
        probs = (
            1.0 / (1.0 + np.exp(-probs))
            if prepared.multi_label
            else np.exp(probs - probs.max(-1, keepdims=True))
        )
        if not prepared.multi_label:
            probs /= probs.sum(-1, keepdims=True)
    return probs


def _make_forward(model):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def evaluate(model, prepared: PreparedData, split: str = "test", *, batch_size: int = 64) -> dict:
    """Score a model on a split with the package's metrics.

    Args:
        model: a ``keras.Model`` or the path of a ``.keras`` file.
        prepared: the data.
        split: which split.
        batch_size: examples per forward pass.

    Returns:
        ``{"dataset", "split", "examples", "loss", "accuracy"}`` (single-label) or
        ``{..., "mAP"}`` (multi-label).

    Raises:
        ValueError: empty split, or a model that does not fit the data.
        FileNotFoundError: a model path that does not exist.

    Example:
        >>> result = evaluate("runs/synthetic-qcnn6/model.keras", data)  # doctest: +SKIP
    """
    if isinstance(model, str | os.PathLike):
        model = load_model(model)
    y = prepared.labels[split]
    if len(y) == 0:
        raise ValueError(f"The {split} split of '{prepared.dataset}' is empty; nothing to score.")
    probs = predict(model, prepared, split, batch_size=batch_size)
    out = {"dataset": prepared.dataset, "split": split, "examples": int(len(y))}
    out["loss"] = kq_metrics.cross_entropy(y, probs, multi_label=prepared.multi_label)
    out.update(kq_metrics.score(y, probs, prepared.multi_label))
    return out


def _count(model, frames: int) -> tuple[int, int, int | None]:
    """(trainable params, non-trainable params, MACs per clip or None when not countable)."""
    trainable = int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
    non_trainable = int(sum(int(np.prod(v.shape)) for v in model.non_trainable_weights))
    try:
        from keras_quaternion.counting import count_macs

        macs = int(count_macs(model, frames=frames))
    except Exception as err:  # a layer the counter does not know: report it, do not fail
        print(
            f"Note: MACs not counted for {model.name!r} ({type(err).__name__}: {err}).",
            file=sys.stderr,
        )
        macs = None
    return trainable, non_trainable, macs


def _write_csv(rows: Sequence[dict], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    atomic_write(path, buf.getvalue())


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _json_float(value):
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class _Checkpointer:
    """Per-epoch checkpoint: ``checkpoint/ckpt-EEEE.npz`` + pointer ``checkpoint/checkpoint.json``."""

    def __init__(self, out_dir: Path):
        self.folder = out_dir / "checkpoint"
        self.pointer = self.folder / "checkpoint.json"

    def read(self) -> dict | None:
        if not self.pointer.is_file():
            return None
        try:
            state = json.loads(self.pointer.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The checkpoint pointer {self.pointer} is unreadable ({err}); delete the "
                "checkpoint/ folder or pass resume=False (--restart) to start over."
            ) from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"The checkpoint in {self.folder} has format version {state.get('version')}, this "
                f"code writes {CHECKPOINT_VERSION}; pass resume=False (--restart) to start over."
            )
        return state

    def arrays(self, state: dict) -> dict[str, np.ndarray]:
        path = self.folder / state["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The checkpoint file {path} is missing or unreadable ({err}); pass resume=False "
                "(--restart) to start over."
            ) from None

    def write(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{state['epoch']:04d}.npz"
        with atomic_path(self.folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        state = {**state, "file": name, "version": CHECKPOINT_VERSION}
        atomic_write(self.pointer, json.dumps(state, indent=1, default=_json_float))
        for old in self.folder.glob("ckpt-*.npz"):  # keep only the one the pointer names
            if old.name != name:
                old.unlink(missing_ok=True)

    def mark_finished(self, state: dict) -> None:
        state = {**state, "finished": True}
        atomic_write(self.pointer, json.dumps(state, indent=1, default=_json_float))


def _variable_list(net, trainer) -> tuple[list, list]:
    model_vars = list(net.weights)
    seen = {id(v) for v in model_vars}
    for v in net.variables:  # seed-generator states (dropout RNG) when exposed
        if id(v) not in seen:
            model_vars.append(v)
            seen.add(id(v))
    return model_vars, list(trainer.optimizer.variables)


def _describe(variables) -> list[list]:
    return [[getattr(v, "path", v.name), list(v.shape)] for v in variables]


def _restore(variables, arrays: dict, prefix: str, where: str) -> None:
    for i, v in enumerate(variables):
        key = f"{prefix}{i:05d}"
        if key not in arrays:
            raise ValueError(
                f"The checkpoint {where} has fewer {prefix!r} arrays than the model has "
                "variables; it was written by another model. Pass resume=False (--restart)."
            )
        value = arrays[key]
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(
                f"The checkpoint {where} does not match the model: variable "
                f"{getattr(v, 'path', v.name)} has shape {tuple(v.shape)}, checkpoint "
                f"{tuple(value.shape)}. Pass resume=False (--restart) or use another out_dir."
            )
        v.assign(value)


# --------------------------------------------------------------------------------- train


def _build_by_name(name, prepared: PreparedData, width, model_options=None):
    from keras_quaternion import models

    known = models.names()
    if name not in known:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(known)}.")
    kwargs = dict(
        classes=prepared.num_classes,
        n_mels=prepared.n_mels,
        frames=prepared.frames,
        multi_label=prepared.multi_label,
    )
    if width is not None:
        kwargs["width"] = width
    clash = sorted(set(model_options or {}) & set(kwargs))
    if clash:
        raise ValueError(
            f"model_options must not set {clash}; they come from the data and the width argument."
        )
    kwargs.update(model_options or {})
    return models.build(name, **kwargs)


def _build_before_fit(trainer, strategy, prepared: PreparedData, channels: int, one_hot: bool):
    """Build the trainer's compiled loss and metric state from a local batch.

    ``fit`` does this itself; the multi-worker loop (:func:`_run_epoch`) does not call ``fit``.
    """
    x, y = next(iter(prepared.tf_dataset("train", 2, channels=channels, one_hot=one_hot)))
    with strategy.scope():
        trainer._symbolic_build(data_batch=(x, y))


def _run_epoch(trainer, strategy, dataset, steps: int, cache: dict, progress: bool) -> dict:
    """One epoch of ``trainer.train_step`` under ``strategy.run`` (multi-worker training).

    Keras 3's ``fit`` cannot reduce its scalar logs under ``MultiWorkerMirroredStrategy``
    (tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input with 0 dimensions"),
    so multi-worker training runs the same ``train_step`` in this small loop. The metrics are
    sync-on-read variables: reading them afterwards sums them over all workers.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    if "step" not in cache:

        @tf.function
        def step(iterator):
            strategy.run(trainer.train_step, args=(next(iterator),))

        cache["step"] = step
    trainer.reset_metrics()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    for _ in tqdm(range(steps), desc="train", unit="step", disable=not progress, leave=False):
        cache["step"](iterator)
    return {k: float(v) for k, v in trainer.get_metrics_result().items()}


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _say(verbose: int, message: str) -> None:
    if verbose:
        print(message, flush=True)


def train(
    model,
    prepared: PreparedData,
    *,
    out_dir: str | os.PathLike,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    width: float | None = None,
    model_options: dict | None = None,
    seed: int = 0,
    teacher=None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    strategy="default",
    resume: bool = True,
    spec_augment: bool = False,
    mixup: float = 0.0,
    model_name: str | None = None,
    verbose: int = 1,
    extra_info: dict | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or fine-tune) a model and write its artefacts to ``out_dir``; resumable.

    Works the same for a registry model built from its name and for a given ``keras.Model``
    (e.g. a pruned model being fine-tuned, with or without a teacher), so every training in the
    package writes the same outputs.

    Args:
        model: a registry name (``"qcnn6"``, ``"cnn14"``, ... see
            :func:`keras_quaternion.models.names`) or a ``keras.Model`` taking
            ``[frames, mels, 1]`` (real) or ``[frames, mels, 4]`` (quaternion) features and
            ending in a softmax (sigmoid for multi-label data) or in logits.
        prepared: the data (:func:`keras_quaternion.training.prepare`).
        out_dir: output folder (created).
        epochs: total epochs (a resumed or finished run continues up to this number).
        batch_size: global batch size.
        lr: Adam learning rate.
        width: registry width multiplier (ignored for a ``keras.Model``).
        model_options: extra :func:`keras_quaternion.models.build` arguments for a registry
            name, e.g. ``{"dropout": 0.1}`` or ``{"bn": "quaternion"}``.
        seed: seeds Python, numpy, TensorFlow and Keras (``keras.utils.set_random_seed``), the
            shuffle order and the augmentation.
        teacher: ``keras.Model`` or ``.keras`` path: distil from it with
            :class:`keras_quaternion.distill.Distiller` (same input shape as the student).
        temperature: distillation temperature.
        alpha: distillation weight of the task loss.
        strategy: ``"default"``, ``"mirrored"``, ``"multiworker"`` or a ``tf.distribute``
            strategy (create multi-worker strategies with :func:`make_strategy` before any
            TensorFlow work).
        resume: continue from ``out_dir``'s checkpoint when there is one (``False``: start over,
            deleting it).
        spec_augment: SpecAugment-style masking of training batches.
        mixup: mixup Beta alpha for training batches (0 = off).
        model_name: name recorded in ``metrics.json`` (default: the registry name or
            ``model.name``).
        verbose: 0 silent, 1 progress bar + one line per epoch (bar only on a terminal), 2 one
            line per epoch.
        extra_info: extra JSON-serialisable entries for ``metrics.json`` (e.g. pruning settings).
        on_epoch_end: ``callback(epoch, row)`` after each epoch (1-based epoch, history row).

    Returns:
        The ``metrics.json`` content plus ``"out_dir"``; ``"resumed_from"`` (epochs already done
        when this call started) and ``"already_finished"`` tell what happened.

    Raises:
        TypeError: ``prepared`` is not a :class:`PreparedData`, or ``model`` is neither a
            registry name nor a ``keras.Model``.
        ValueError: bad arguments, unknown model name, a model that does not fit the data, or a
            checkpoint in ``out_dir`` written with different settings (the message lists them).
        FileNotFoundError: a teacher path that does not exist.

    Example:
        >>> data = prepare("synthetic", progress=False)                       # doctest: +SKIP
        >>> result = train("qcnn6", data, width=0.25, epochs=10, out_dir="runs/demo")  # doctest: +SKIP
        >>> result["test"]                                                    # doctest: +SKIP
        {'accuracy': 0.93}
    """
    import keras
    import tensorflow as tf

    if not isinstance(prepared, PreparedData):
        raise TypeError(
            f"train: prepared must be a PreparedData (from prepare()), got "
            f"{type(prepared).__name__}."
        )
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if not prepared.sizes()["train"]:
        raise ValueError(f"The train split of '{prepared.dataset}' is empty.")
    if isinstance(model, str):
        label = model_name or model
    elif isinstance(model, keras.Model):
        label = model_name or model.name
        width = None
        model_options = None
    else:
        raise TypeError(
            f"train: model must be a registry name or a keras.Model, got {type(model).__name__}."
        )
    if verbose == 1 and not sys.stdout.isatty():
        verbose = 2
    out_dir = Path(out_dir).expanduser()
    strategy = make_strategy(strategy)
    chief = is_chief(strategy)
    if chief:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = _Checkpointer(out_dir)
    score_key = kq_metrics.score_name(prepared.multi_label)
    keras.utils.set_random_seed(int(seed))

    teacher_label = None
    if teacher is not None:
        teacher_label = str(teacher) if isinstance(teacher, str | os.PathLike) else teacher.name

    with strategy.scope():
        if isinstance(model, str):
            net = _build_by_name(model, prepared, width, model_options)
        elif strategy is tf.distribute.get_strategy():
            net = model
        else:  # re-create the variables under the strategy
            net = keras.models.clone_model(model)
            net.set_weights(model.get_weights())
        channels = _check_model_fits(net, prepared)
        logits = _outputs_are_logits(net)
        if teacher is not None:
            from keras_quaternion.distill import Distiller

            teacher_model = (
                load_model(teacher) if isinstance(teacher, str | os.PathLike) else teacher
            )
            if strategy is not tf.distribute.get_strategy() and not isinstance(
                teacher, str | os.PathLike
            ):
                cloned = keras.models.clone_model(teacher_model)
                cloned.set_weights(teacher_model.get_weights())
                teacher_model = cloned
            _check_model_fits(teacher_model, prepared, what="teacher")
            trainer = Distiller(
                net,
                teacher_model,
                temperature=temperature,
                alpha=alpha,
                multi_label=prepared.multi_label,
            )
        else:
            trainer = net
        one_hot = mixup > 0 and not prepared.multi_label
        if prepared.multi_label:
            loss = keras.losses.BinaryCrossentropy(from_logits=logits)
            train_metrics = [
                keras.metrics.AUC(curve="PR", multi_label=True, from_logits=logits, name="pr_auc")
            ]
        elif one_hot:
            loss = keras.losses.CategoricalCrossentropy(from_logits=logits)
            train_metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
            train_metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        optimizer = keras.optimizers.Adam(learning_rate=float(lr))
        trainer.compile(optimizer=optimizer, loss=loss, metrics=train_metrics)
        trainer.optimizer.build(trainer.trainable_variables)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _build_before_fit(trainer, strategy, prepared, channels, one_hot)

    trainable, non_trainable, macs = _count(net, prepared.frames)
    settings = {
        "model": label,
        "width": width,
        "model_options": model_options or None,
        "dataset": prepared.dataset,
        "classes": prepared.num_classes,
        "input_shape": list(prepared.input_shape(channels)),
        "multi_label": prepared.multi_label,
        "feature_config": prepared.feature_config.to_dict(),
        "clip_seconds": prepared.clip_seconds,
        "batch_size": batch_size,
        "lr": float(lr),
        "seed": int(seed),
        "teacher": teacher_label,
        "temperature": float(temperature) if teacher is not None else None,
        "alpha": float(alpha) if teacher is not None else None,
        "spec_augment": bool(spec_augment),
        "mixup": float(mixup),
        "params": trainable,
    }

    model_vars, opt_vars = _variable_list(net, trainer)
    history: list[dict] = []
    best_score = None
    best_epoch = 0
    best_values: list[np.ndarray] | None = None
    seconds = 0.0
    start_epoch = 0
    state = ckpt.read() if resume else None
    if not resume and chief and ckpt.folder.exists():
        shutil.rmtree(ckpt.folder)
        for name in ("metrics.json", "history.csv", "model.keras"):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "tb", ignore_errors=True)
    if state is not None:
        saved = state.get("settings", {})
        diff = [k for k in _RESUME_KEYS if _canon(saved.get(k)) != _canon(settings.get(k))]
        if diff:
            listed = "; ".join(f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise ValueError(
                f"{out_dir} holds a run with different settings ({listed}). Use another out_dir, "
                "or resume=False (--restart) to overwrite it."
            )
        done = int(state["epoch"])
        metrics_path = out_dir / "metrics.json"
        if state.get("finished") and done >= epochs and metrics_path.is_file():
            result = json.loads(metrics_path.read_text(encoding="utf-8"))
            _say(
                verbose,
                f"{out_dir}: this run already finished ({done} epochs); nothing to do. "
                "Pass --restart (resume=False) to train again, or more --epochs to continue.",
            )
            result.update({"out_dir": str(out_dir), "already_finished": True, "resumed_from": done})
            return result
        arrays = ckpt.arrays(state)
        with strategy.scope():
            _restore(model_vars, arrays, "v", str(ckpt.folder))
            _restore(opt_vars, arrays, "o", str(ckpt.folder))
        if any(k.startswith("b") for k in arrays):
            best_values = [arrays[f"b{i:05d}"] for i in range(len(model_vars))]
        history = list(state["history"])
        best_score = state.get("best_score")
        best_epoch = int(state.get("best_epoch", 0))
        seconds = float(state.get("seconds", 0.0))
        start_epoch = done
        if done < epochs:
            _say(
                verbose,
                f"Resuming from epoch {done + 1} (checkpoint after epoch {done} of {epochs}).",
            )
        else:
            _say(verbose, f"Training already done ({done} epochs); finishing the evaluation.")

    forward = _make_forward(net)
    writers = None
    if chief:
        writers = {
            "train": tf.summary.create_file_writer(str(out_dir / "tb" / "train")),
            "validation": tf.summary.create_file_writer(str(out_dir / "tb" / "validation")),
        }
    y_val = prepared.labels["validation"]
    n_params = f"{trainable:,} trainable params"
    if start_epoch < epochs:
        _say(
            verbose,
            f"Training {label} ({n_params}, {channels}-channel input {prepared.input_shape(channels)})"
            f" on {prepared.dataset} ({prepared.sizes()}) for {epochs} epochs, "
            f"{strategy.num_replicas_in_sync} replica(s); writing to {out_dir}",
        )
    fit_verbose = 1 if verbose == 1 else 0
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    n_train = prepared.sizes()["train"]
    steps = n_train // batch_size if n_train >= batch_size else 1  # drop_remainder below
    step_cache: dict = {}
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        train_ds = prepared.tf_dataset(
            "train",
            batch_size,
            channels=channels,
            seed=seed,
            epoch=epoch,
            spec_augment=spec_augment,
            mixup=mixup,
            one_hot=one_hot,
            drop_remainder=True,
        )
        row: dict[str, Any] = {"epoch": epoch + 1}
        if multi_worker:
            row.update(_run_epoch(trainer, strategy, train_ds, steps, step_cache, fit_verbose == 1))
        else:
            fit = trainer.fit(
                train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=fit_verbose, shuffle=False
            )
            row.update({key: float(values[-1]) for key, values in fit.history.items()})
        if len(y_val):
            probs = predict(net, prepared, "validation", forward=forward)
            row["val_loss"] = kq_metrics.cross_entropy(y_val, probs, prepared.multi_label)
            row[f"val_{score_key}"] = kq_metrics.score(y_val, probs, prepared.multi_label)[
                score_key
            ]
            current = row[f"val_{score_key}"]
        else:  # no validation split: the last epoch is the best
            current = float(epoch)
        row["lr"] = float(keras.ops.convert_to_numpy(trainer.optimizer.learning_rate))
        row["seconds"] = round(time.time() - t0, 3)
        seconds += row["seconds"]
        history.append(row)
        improved = best_score is None or (math.isfinite(current) and current > best_score)
        if improved:
            best_score, best_epoch = float(current), epoch + 1
            best_values = [np.array(keras.ops.convert_to_numpy(v)) for v in model_vars]
        if chief:
            if improved:
                atomic_save_model(net, out_dir / "model.keras")
            arrays = {}
            for i, v in enumerate(model_vars):
                arrays[f"v{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v))
                arrays[f"b{i:05d}"] = best_values[i]
            for i, v in enumerate(opt_vars):
                arrays[f"o{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v))
            state = {
                "epoch": epoch + 1,
                "epochs": epochs,
                "history": history,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "score_name": score_key,
                "seconds": seconds,
                "settings": settings,
                "variables": _describe(model_vars),
                "finished": False,
            }
            ckpt.write(state, arrays)
            _write_csv(history, out_dir / "history.csv")
            for split, keys in (
                ("train", [k for k in row if not k.startswith("val_") and k != "epoch"]),
                ("validation", [k for k in row if k.startswith("val_")]),
            ):
                with writers[split].as_default(step=epoch + 1):
                    for key in keys:
                        _tb_scalar(key.removeprefix("val_"), row[key], epoch + 1)
                writers[split].flush()
        if verbose:
            shown = "  ".join(
                f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")
            )
            mark = "  *best" if improved else ""
            _say(verbose, f"epoch {epoch + 1}/{epochs}  {shown}  ({row['seconds']:.1f} s){mark}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    # ---- final evaluation with the best weights
    if best_values is not None:
        with strategy.scope():
            for v, value in zip(model_vars, best_values):
                v.assign(value)
    y_test = prepared.labels["test"]
    test_scores: dict[str, Any] = {}
    cm = None
    if len(y_test):
        probs = predict(net, prepared, "test", forward=forward)
        test_scores = kq_metrics.score(y_test, probs, prepared.multi_label)
        test_scores["loss"] = kq_metrics.cross_entropy(y_test, probs, prepared.multi_label)
        if not prepared.multi_label:
            cm = kq_metrics.confusion_matrix(y_test, probs, prepared.num_classes)
    result = {
        "dataset": prepared.dataset,
        "model": label,
        "params": trainable,
        "params_non_trainable": non_trainable,
        "macs": macs,
        "test": {k: _json_float(v) for k, v in test_scores.items()},
        "validation": (
            {score_key: _json_float(best_score), "best_epoch": best_epoch}
            if len(y_val)
            else {"best_epoch": best_epoch, "note": "no validation split: the last epoch is kept"}
        ),
        "epochs": len(history),
        "seconds": round(seconds, 3),
        "width": width,
        "model_options": model_options or None,
        "input_shape": list(prepared.input_shape(channels)),
        "classes": prepared.num_classes,
        "class_names": list(prepared.class_names),
        "examples": prepared.sizes(),
        "sample_rate": prepared.sample_rate,
        "clip_seconds": prepared.clip_seconds,
        "feature_config": prepared.feature_config.to_dict(),
        "dataset_options": (prepared.info or {}).get("options"),
        "batch_size": batch_size,
        "lr": float(lr),
        "seed": int(seed),
        "teacher": teacher_label,
        "spec_augment": bool(spec_augment),
        "mixup": float(mixup),
        "strategy": _strategy_name(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    if teacher is not None:
        result.update({"temperature": float(temperature), "alpha": float(alpha)})
    if extra_info:
        result.update(extra_info)
    if chief:
        if best_values is not None and not (out_dir / "model.keras").is_file():
            atomic_save_model(net, out_dir / "model.keras")
        atomic_write(
            out_dir / "metrics.json", json.dumps(result, indent=1, default=_json_float) + "\n"
        )
        from keras_quaternion.training.plots import plot_confusion_matrix, plot_training_curves

        title = f"{label} on {prepared.dataset}"
        plot_training_curves(
            history, out_dir / "training_curves.png", score_name=score_key, title=title
        )
        if cm is not None:
            acc = test_scores.get("accuracy", float("nan"))
            plot_confusion_matrix(
                cm,
                prepared.class_names,
                out_dir / "confusion_matrix.png",
                title=f"{title}: test accuracy {acc:.3f}",
            )
        if ckpt.pointer.is_file():
            ckpt.mark_finished(ckpt.read())
        for writer in (writers or {}).values():
            writer.close()
    result.update({"out_dir": str(out_dir), "already_finished": False, "resumed_from": start_epoch})
    return result


def _tb_scalar(tag: str, value: float, step: int) -> None:
    """Write one TensorBoard scalar (what ``tf.summary.scalar`` writes, without needing the
    ``tensorboard`` package installed to write it)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


def _canon(value):
    """Compare settings after a JSON round trip (tuples vs lists, ints vs floats)."""
    return json.loads(json.dumps(value, default=_json_float))
