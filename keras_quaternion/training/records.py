"""What a run records: its settings (checked on resume) and its results (``metrics.json``),
each built in one place, plus the JSON and CSV helpers that write them.

* :func:`run_settings`: the model, the data and the :class:`~keras_quaternion.training.recipe.
  Recipe`; saved in every checkpoint; resuming with other values of :data:`RESUME_KEYS` is
  refused (:func:`settings_diff`).
* :func:`run_results`: the settings plus the scores, sizes, timings and versions;
  ``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_quaternion.files import atomic_write

__all__ = [
    "RESUME_KEYS",
    "canon",
    "json_float",
    "run_results",
    "run_settings",
    "settings_diff",
    "write_csv",
]

#: settings that must match to resume a run (epochs and early stopping may change: training
#: continues up to the new number, or stops by the new patience)
RESUME_KEYS = (
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
    "schedule",
    "warmup_epochs",
    "seed",
    "teacher",
    "temperature",
    "alpha",
    "teacher_model",
    "teacher_epochs",
    "teacher_freeze_epochs",
    "teacher_lr",
    "init",
    "freeze_epochs",
    "spec_augment",
    "mixup",
    "gain_db",
    "freq_warp",
    "time_shift",
    "weight_decay",
    "label_smoothing",
    "ema",
    "params",
)

#: values of :data:`RESUME_KEYS` added later, assumed for a checkpoint saved without them
RESUME_DEFAULTS = {
    "freq_warp": 0.0,
    "time_shift": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "ema": 0.0,
}


_TEACHER_KEYS = (
    "teacher",
    "temperature",
    "alpha",
    "teacher_model",
    "teacher_epochs",
    "teacher_freeze_epochs",
    "teacher_lr",
)


def json_float(value):
    """A JSON-safe number: numpy floats as ``float``, NaN and infinities as ``None``.

    Example:
        >>> json_float(np.float32(0.5)), json_float(float("nan")), json_float("x")
        (0.5, None, 'x')
    """
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def canon(value):
    """``value`` after a JSON round trip (tuples as lists), to compare saved and new settings.

    Example:
        >>> canon({"shape": (1, 2)}) == canon({"shape": [1, 2]})
        True
    """
    return json.loads(json.dumps(value, default=json_float))


def run_settings(*, model, data, recipe, teacher, transfer=None) -> dict:
    """The settings of a run: what was trained, on what, and how.

    Args:
        model: ``{"model", "width", "model_options", "input_shape", "params"}``.
        data: the :class:`~keras_quaternion.training.pipeline.PreparedData`.
        recipe: the :class:`~keras_quaternion.training.recipe.Recipe`.
        teacher: ``None``, or ``{"teacher", "temperature", "alpha"}`` (distillation), with
            ``{"teacher_model", "teacher_epochs", "teacher_freeze_epochs", "teacher_lr"}`` for
            a PANNs teacher fine-tuned in the run.
        transfer: ``None``, or ``{"init", "freeze_epochs"}`` (a pretrained start, a frozen
            body). What a run does not use is recorded as ``None``.

    Returns:
        A JSON-ready dict holding every key of :data:`RESUME_KEYS`.

    Example:
        >>> from keras_quaternion.training import PreparedData
        >>> from keras_quaternion.training.recipe import Recipe
        >>> x = np.zeros((2, 20, 16, 4), "float32")
        >>> data = PreparedData.from_arrays({s: (x, [0, 1]) for s in
        ...     ("train", "validation", "test")}, class_names=["a", "b"])
        >>> model = {"model": "toy", "width": None, "model_options": None,
        ...          "input_shape": [20, 16, 4], "params": 10}
        >>> s = run_settings(model=model, data=data, recipe=Recipe(), teacher=None)
        >>> s["schedule"], s["teacher"], set(RESUME_KEYS) <= set(s)
        ('cosine', None, True)
    """
    teacher = {**dict.fromkeys(_TEACHER_KEYS), **(teacher or {})}
    transfer = {"init": None, "freeze_epochs": None, **(transfer or {})}
    return {
        **model,
        "dataset": data.dataset,
        "classes": data.num_classes,
        "multi_label": data.multi_label,
        "feature_config": data.feature_config.to_dict(),
        "clip_seconds": data.clip_seconds,
        "cache_format": data.info.get("cache_format", "float32"),
        **recipe.settings(),
        **teacher,
        **transfer,
    }


def settings_diff(saved: dict, settings: dict) -> list[str]:
    """The :data:`RESUME_KEYS` whose values differ, as ``"key: old -> new"``.

    A key of :data:`RESUME_DEFAULTS` missing on either side (a checkpoint written before the
    setting existed) counts as its default.

    Example:
        >>> settings_diff({"lr": 0.001, "schedule": "cosine"}, {"lr": 0.001, "schedule": "plateau"})
        ["schedule: 'cosine' -> 'plateau'"]
    """
    saved, settings = {**RESUME_DEFAULTS, **saved}, {**RESUME_DEFAULTS, **settings}
    return [
        f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}"
        for k in RESUME_KEYS
        if canon(saved.get(k)) != canon(settings.get(k))
    ]


def run_results(settings, *, data, progress, test, train, extra) -> dict:
    """``metrics.json``: the settings plus what the run measured.

    Args:
        settings: :func:`run_settings`.
        data: the :class:`~keras_quaternion.training.pipeline.PreparedData`.
        progress: ``{"epochs", "seconds", "best_epoch", "best_score", "score_name",
            "stopped_early"}``.
        test: the test scores (``{"accuracy" or "mAP", "loss"}``; empty without a test split).
        train: the same scores on the training split (no augmentation, the kept model).
        extra: ``{"params_non_trainable", "macs", "strategy", "replicas"}`` and any entries
            given to ``train(extra_info=...)``.

    Returns:
        The JSON-ready dict; the first keys are ``dataset``, ``model``, ``params``, ``macs``,
        ``test``, ``validation``, ``epochs``, ``seconds``.
    """
    import keras
    import tensorflow as tf

    if data.sizes()["validation"]:
        name = progress["score_name"]
        validation = {
            name: json_float(progress["best_score"]),
            "best_epoch": progress["best_epoch"],
        }
    else:
        validation = {
            "best_epoch": progress["best_epoch"],
            "note": "no validation split: the last epoch is kept",
        }
    return {
        "dataset": data.dataset,
        "model": settings["model"],
        "params": settings["params"],
        "params_non_trainable": extra.get("params_non_trainable"),
        "macs": extra.get("macs"),
        "test": {k: json_float(v) for k, v in test.items()},
        "validation": validation,
        "train": {k: json_float(v) for k, v in train.items()},
        "epochs": progress["epochs"],
        "stopped_early": progress["stopped_early"],
        "seconds": round(progress["seconds"], 3),
        **settings,
        "class_names": list(data.class_names),
        "examples": data.sizes(),
        "sample_rate": data.sample_rate,
        "dataset_options": (data.info or {}).get("options"),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        **{k: v for k, v in extra.items() if k not in ("params_non_trainable", "macs")},
    }


def write_csv(rows: Sequence[dict], path: Path) -> None:
    """Write dict rows as CSV atomically; columns in order of first appearance, floats ``.6g``.

    Example:
        >>> write_csv([{"epoch": 1, "loss": 0.123456789}, {"epoch": 2, "lr": 0.5}], Path("h.csv"))
        >>> print(Path("h.csv").read_text())
        epoch,loss,lr
        1,0.123457,
        2,,0.5
        <BLANKLINE>
    """
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
