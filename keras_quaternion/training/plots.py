"""Training plots: loss / score curves per epoch and the confusion matrix (PNG, written atomically).

Example:
    >>> rows = [{"epoch": 1, "loss": 2.0, "val_loss": 2.1, "accuracy": 0.3, "val_accuracy": 0.25},
    ...         {"epoch": 2, "loss": 1.2, "val_loss": 1.4, "accuracy": 0.6, "val_accuracy": 0.55}]
    >>> plot_training_curves(rows, "curves.png", score_name="accuracy")
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["yes", "no"], "confusion.png")
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_quaternion.files import atomic_write

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    plt = _figure()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def _series(rows: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            xs.append(float(row["epoch"]))
            ys.append(value)
    return xs, ys


def plot_training_curves(
    rows: Sequence[dict], path: str | os.PathLike, *, score_name: str = "accuracy", title: str = ""
) -> None:
    """Plot loss (left) and score (right) per epoch for training and validation.

    Args:
        rows: the history, one dict per epoch with ``epoch`` and any of ``loss``, ``val_loss``,
            ``<score_name>``, ``val_<score_name>`` (missing or non-finite values are skipped).
        path: output ``.png``.
        score_name: ``"accuracy"`` or ``"mAP"`` (the validation column is ``val_<score_name>``).
        title: figure title.

    Raises:
        ValueError: ``rows`` is empty or has no ``epoch`` field.

    Example:
        >>> rows = [
        ...     {"epoch": 1, "loss": 2.0, "val_loss": 2.1, "accuracy": 0.3},  # gaps are skipped
        ...     {"epoch": 2, "loss": 1.2, "val_loss": 1.4, "accuracy": 0.6, "val_accuracy": 0.5},
        ... ]
        >>> plot_training_curves(rows, "plots/curves.png", score_name="accuracy")
        >>> Path("plots/curves.png").read_bytes()[1:4]  # a PNG file
        b'PNG'
        >>> plot_training_curves([], "empty.png")
        Traceback (most recent call last):
        ...
        ValueError: plot_training_curves: rows must be a non-empty list of dicts with 'epoch'.
    """
    if not rows or any("epoch" not in r for r in rows):
        raise ValueError(
            "plot_training_curves: rows must be a non-empty list of dicts with 'epoch'."
        )
    plt = _figure()
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label, style in (("loss", "train", "-o"), ("val_loss", "validation", "-s")):
        xs, ys = _series(rows, key)
        if xs:
            ax_loss.plot(xs, ys, style, label=label, markersize=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    train_key = score_name if any(score_name in r for r in rows) else "pr_auc"
    for key, label, style in (
        (train_key, f"train ({train_key})", "-o"),
        (f"val_{score_name}", f"validation ({score_name})", "-s"),
    ):
        xs, ys = _series(rows, key)
        if xs:
            ax_score.plot(xs, ys, style, label=label, markersize=3)
    ax_score.set_xlabel("epoch")
    ax_score.set_ylabel(score_name)
    ax_score.grid(alpha=0.3)
    ax_score.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_confusion_matrix(
    matrix, class_names: Sequence[str], path: str | os.PathLike, *, title: str = ""
) -> None:
    """Plot a confusion matrix (rows true, columns predicted), coloured by row-normalised rate.

    Cells show counts when there are at most 30 classes.

    Args:
        matrix: ``[C, C]`` counts.
        class_names: ``C`` names.
        path: output ``.png``.
        title: figure title.

    Raises:
        ValueError: ``matrix`` is not square or does not match ``class_names``.

    Example:
        >>> plot_confusion_matrix([[3, 1], [0, 4]], ["yes", "no"], "confusion.png")
        >>> Path("confusion.png").stat().st_size > 0
        True
        >>> plot_confusion_matrix([[3, 1], [0, 4]], ["yes", "no", "maybe"], "bad.png")
        Traceback (most recent call last):
        ...
        ValueError: plot_confusion_matrix: matrix of shape (2, 2) does not match 3 class names; ...
    """
    cm = np.asarray(matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(
            f"plot_confusion_matrix: matrix of shape {cm.shape} does not match "
            f"{len(class_names)} class names; it must be [classes, classes]."
        )
    plt = _figure()
    c = cm.shape[0]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(14.0, max(4.0, 0.45 * c + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(c)
    labels = [str(n) for n in class_names]
    if c <= 60:
        ax.set_xticks(ticks, labels, rotation=90 if c > 10 else 0)
        ax.set_yticks(ticks, labels)
    if c <= 30:
        for i in range(c):
            for j in range(c):
                if cm[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, f"{int(cm[i, j])}", ha="center", va="center", color=color, fontsize=8
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    _save(fig, path)
