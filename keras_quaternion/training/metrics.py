"""Scores for audio classifiers: accuracy, average precision / mAP, confusion matrix.

Everything here is plain numpy on predicted probabilities (or scores), so the same code scores a
Keras model, a float TFLite model and an int8 TFLite model.

* Single-label datasets are scored by **accuracy** (top-1).
* Multi-label datasets (AudioSet) are scored by **mAP**: the average precision of each class that
  has at least one positive example, averaged over those classes (macro average; the AudioSet
  convention used by PANNs). Average precision is the area under the precision-recall step curve,
  ``AP = sum_n (R_n - R_{n-1}) * P_n`` over the distinct score thresholds, with tied scores
  forming one threshold (the definition ``sklearn.metrics.average_precision_score`` uses).

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    >>> accuracy([0, 1, 1], probs)
    0.6666666666666666
    >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    0.8333333333333333
    >>> confusion_matrix([0, 1, 1], probs, num_classes=2).tolist()
    [[1, 0], [1, 1]]
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "average_precision",
    "confusion_matrix",
    "cross_entropy",
    "mean_average_precision",
    "score",
    "score_name",
]


def _as_2d_scores(y_prob, what: str) -> np.ndarray:
    arr = np.asarray(y_prob, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{what}: predictions must be a 2-D array [examples, classes] of probabilities or "
            f"scores, got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: predictions contain NaN or infinite values.")
    return arr


def _as_class_indices(y, what: str, num_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2:  # one-hot or soft labels -> argmax
        arr = np.argmax(arr, axis=-1)
    if arr.ndim != 1:
        raise ValueError(
            f"{what}: labels must be class indices [examples] or one-hot [examples, classes], "
            f"got shape {np.asarray(y).shape}."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{what}: class-index labels must be whole numbers.")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what}: class indices must be >= 0, got {int(arr.min())}.")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(
            f"{what}: class index {int(arr.max())} is out of range for {num_classes} classes."
        )
    return arr


def accuracy(y_true, y_prob) -> float:
    """Top-1 accuracy.

    Args:
        y_true: class indices ``[N]`` (or one-hot ``[N, C]``).
        y_prob: probabilities or scores ``[N, C]``, or predicted class indices ``[N]``.

    Returns:
        Fraction of examples whose highest-scoring class is the true class (``nan`` when
        ``N == 0``).

    Raises:
        ValueError: shapes do not match, or labels are not class indices.

    Example:
        >>> accuracy([2, 0], [[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
        1.0
    """
    truth = _as_class_indices(y_true, "accuracy")
    pred_arr = np.asarray(y_prob)
    pred = np.argmax(pred_arr, axis=-1) if pred_arr.ndim == 2 else pred_arr.astype(np.int64)
    if pred.shape != truth.shape:
        raise ValueError(
            f"accuracy: {truth.shape[0]} labels but predictions of shape {pred_arr.shape}."
        )
    if truth.size == 0:
        return float("nan")
    return float(np.mean(pred == truth))


def average_precision(y_true, y_score) -> float:
    """Average precision of one binary problem (area under the precision-recall step curve).

    ``AP = sum_n (R_n - R_{n-1}) * P_n`` over the distinct thresholds of ``y_score`` in decreasing
    order (tied scores form one threshold), with ``R`` the recall and ``P`` the precision at
    each threshold.

    Args:
        y_true: ``[N]`` binary targets (``0``/``1``, or booleans; values > 0.5 are positive).
        y_score: ``[N]`` scores, higher means more likely positive.

    Returns:
        AP in ``[0, 1]``; ``nan`` when there is no positive example (AP is undefined).

    Raises:
        ValueError: the two arrays differ in length or are not 1-D, or scores are not finite.

    Example:
        >>> average_precision([0, 1, 1], [0.1, 0.9, 0.8])
        1.0
    """
    truth = np.asarray(y_true, dtype=np.float64)
    scores = np.asarray(y_score, dtype=np.float64)
    if truth.ndim != 1 or scores.ndim != 1 or truth.shape != scores.shape:
        raise ValueError(
            f"average_precision: y_true and y_score must be 1-D of equal length, got shapes "
            f"{truth.shape} and {scores.shape}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("average_precision: y_score contains NaN or infinite values.")
    positive = truth > 0.5
    total_pos = int(positive.sum())
    if total_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    hits = positive[order].astype(np.float64)
    # the last index of each run of equal scores is one threshold
    last_of_run = np.flatnonzero(np.diff(sorted_scores)) if sorted_scores.size > 1 else []
    thresholds = np.r_[last_of_run, sorted_scores.size - 1].astype(np.int64)
    true_pos = np.cumsum(hits)[thresholds]
    predicted_pos = thresholds + 1.0
    precision = true_pos / predicted_pos
    recall = true_pos / total_pos
    recall_gain = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_gain * precision))


def mean_average_precision(y_true, y_score) -> tuple[float, np.ndarray]:
    """Macro mAP over the classes that have at least one positive example.

    Args:
        y_true: multi-hot targets ``[N, C]``.
        y_score: scores or probabilities ``[N, C]``.

    Returns:
        ``(mAP, per_class)``: the mean over classes with positives, and the ``[C]`` array of
        per-class AP (``nan`` for classes with no positive). ``mAP`` is ``nan`` when no class
        has a positive.

    Raises:
        ValueError: shapes differ or are not 2-D.

    Example:
        >>> m, per_class = mean_average_precision([[1, 0], [0, 0], [1, 0]],
        ...                                      [[0.9, 0.2], [0.1, 0.7], [0.8, 0.3]])
        >>> m, per_class.tolist()[1]
        (1.0, nan)
    """
    truth = np.asarray(y_true, dtype=np.float64)
    scores = _as_2d_scores(y_score, "mean_average_precision")
    if truth.shape != scores.shape:
        raise ValueError(
            f"mean_average_precision: labels of shape {truth.shape} but scores of shape "
            f"{scores.shape}; both must be [examples, classes]."
        )
    per_class = np.array(
        [average_precision(truth[:, c], scores[:, c]) for c in range(truth.shape[1])],
        dtype=np.float64,
    )
    valid = ~np.isnan(per_class)
    value = float(np.mean(per_class[valid])) if valid.any() else float("nan")
    return value, per_class


def confusion_matrix(y_true, y_prob, num_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Args:
        y_true: class indices ``[N]`` (or one-hot ``[N, C]``).
        y_prob: probabilities/scores ``[N, C]`` or predicted indices ``[N]``.
        num_classes: ``C``.

    Returns:
        int64 ``[C, C]`` counts.

    Raises:
        ValueError: an index outside ``0..C-1`` or mismatched lengths.

    Example:
        >>> confusion_matrix([0, 0, 1], [1, 0, 1], num_classes=2).tolist()
        [[1, 1], [0, 1]]
    """
    if int(num_classes) < 1:
        raise ValueError(f"confusion_matrix: num_classes must be >= 1, got {num_classes}.")
    truth = _as_class_indices(y_true, "confusion_matrix", num_classes)
    pred_arr = np.asarray(y_prob)
    pred = np.argmax(pred_arr, axis=-1) if pred_arr.ndim == 2 else pred_arr
    pred = _as_class_indices(pred, "confusion_matrix (predictions)", num_classes)
    if pred.shape != truth.shape:
        raise ValueError(
            f"confusion_matrix: {truth.shape[0]} labels but {pred.shape[0]} predictions."
        )
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (truth, pred), 1)
    return out


def cross_entropy(y_true, y_prob, multi_label: bool = False, eps: float = 1e-7) -> float:
    """Mean cross-entropy of probabilities (the training loss, for reporting).

    Args:
        y_true: class indices ``[N]`` or (soft) one-hot ``[N, C]`` for single-label; multi-hot
            ``[N, C]`` for multi-label.
        y_prob: probabilities ``[N, C]`` (softmax or sigmoid outputs).
        multi_label: binary cross-entropy averaged over classes instead of categorical.
        eps: probabilities are clipped to ``[eps, 1 - eps]``.

    Returns:
        The mean over examples (``nan`` for ``N == 0``).

    Raises:
        ValueError: ``y_prob`` is not 2-D or holds NaN/inf; targets whose shape does not match
            ``y_prob`` (one-hot or multi-hot); class indices that are negative, fractional or
            ``>= C``.

    Example:
        >>> round(cross_entropy([0], [[0.5, 0.5]]), 4)
        0.6931
        >>> round(cross_entropy([[1, 0]], [[0.9, 0.2]], multi_label=True), 4)
        0.1643
        >>> cross_entropy([2], [[0.5, 0.5]])
        Traceback (most recent call last):
        ...
        ValueError: cross_entropy: class index 2 is out of range for 2 classes.
    """
    probs = np.clip(_as_2d_scores(y_prob, "cross_entropy"), eps, 1.0 - eps)
    if probs.shape[0] == 0:
        return float("nan")
    truth = np.asarray(y_true, dtype=np.float64)
    if multi_label:
        if truth.shape != probs.shape:
            raise ValueError(
                f"cross_entropy: multi-label targets of shape {truth.shape} but probabilities "
                f"of shape {probs.shape}."
            )
        per = -(truth * np.log(probs) + (1 - truth) * np.log(1 - probs)).mean(axis=1)
        return float(per.mean())
    if truth.ndim == 1:
        idx = _as_class_indices(truth, "cross_entropy", probs.shape[1])
        return float(-np.log(probs[np.arange(idx.size), idx]).mean())
    if truth.shape != probs.shape:
        raise ValueError(
            f"cross_entropy: one-hot targets of shape {truth.shape} but probabilities of shape "
            f"{probs.shape}."
        )
    return float(-(truth * np.log(probs)).sum(axis=1).mean())


def score_name(multi_label: bool) -> str:
    """The headline metric's name: ``"mAP"`` for multi-label data, else ``"accuracy"``.

    Args:
        multi_label: whether the data is multi-label.

    Returns:
        ``"mAP"`` or ``"accuracy"``, the key of :func:`score`'s result.

    Example:
        >>> score_name(True), score_name(False)
        ('mAP', 'accuracy')
    """
    return "mAP" if multi_label else "accuracy"


def score(y_true, y_prob, multi_label: bool) -> dict[str, float]:
    """The headline score of a dataset: ``{"accuracy": ...}`` or ``{"mAP": ...}``.

    Args:
        y_true: class indices ``[N]`` (single-label) or multi-hot ``[N, C]`` (multi-label).
        y_prob: predicted probabilities ``[N, C]``.
        multi_label: which score to compute.

    Returns:
        A one-entry dict keyed by :func:`score_name`.

    Example:
        >>> score([1], [[0.2, 0.8]], multi_label=False)
        {'accuracy': 1.0}
    """
    if multi_label:
        value, _ = mean_average_precision(y_true, y_prob)
        return {"mAP": value}
    return {"accuracy": accuracy(y_true, y_prob)}
