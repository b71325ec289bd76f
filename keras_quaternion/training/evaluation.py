"""Scoring a model on a split: predicted probabilities (:func:`predict`) and the package's
metrics on them (:func:`evaluate`)."""

from __future__ import annotations

import os

import numpy as np

from keras_quaternion.training import metrics as kq_metrics
from keras_quaternion.training.model_io import check_model_fits, load_model, outputs_are_logits
from keras_quaternion.training.pipeline import PreparedData

__all__ = ["evaluate", "make_forward", "predict"]


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

    channels = check_model_fits(model, prepared)
    x, _ = prepared.arrays(split, channels=channels)
    logits = outputs_are_logits(model)
    if forward is None:
        forward = make_forward(model)
    out = []
    for start in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
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


def make_forward(model):
    """A compiled inference function ``forward(x) = model(x, training=False)``.

    Example:
        >>> import keras, tensorflow as tf
        >>> x = keras.Input((3,))
        >>> forward = make_forward(keras.Model(x, 2 * x))
        >>> forward(tf.ones((1, 3))).numpy().tolist()
        [[2.0, 2.0, 2.0]]
    """
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
