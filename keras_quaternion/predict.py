"""Run a trained model on one's own recordings: what ``kq-predict`` does.

:func:`load_predictor` opens a ``.keras`` model (its features and class names come from the
model itself, :mod:`keras_quaternion.model_info`, else from the ``metrics.json`` beside it) or
a ``.tflite`` from ``kq-export`` (from the ``export_report.json`` beside it).
:func:`predict_file` decodes a file (any format :func:`keras_quaternion.audio.load_audio`
reads), resamples it to the model's rate, cuts it into clips of the training length, computes
the model's features and scores each clip:

* a recording no longer than a clip is zero-padded at the end, as in training: one window;
* a longer one is scored per window of the clip length, every ``hop_seconds`` (default: half a
  clip), the last one zero-padded; the summary is the mean of the windows' scores.

Scores are probabilities: the model's softmax (or sigmoid, multi-label) outputs, or those
functions applied to a model that ends in logits.

Example:
    >>> import keras, numpy as np, soundfile as sf
    >>> from keras_quaternion.features import FeatureConfig
    >>> from keras_quaternion.files import atomic_save_model
    >>> from keras_quaternion.model_info import ModelInfo
    >>> config = FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmax=4000.0)
    >>> info = ModelInfo(config, clip_seconds=0.5, class_names=("low", "high"))
    >>> x = keras.Input((51, 16, 4))
    >>> h = keras.layers.GlobalAveragePooling2D()(x)
    >>> net = keras.Model(x, keras.layers.Dense(2, activation="softmax")(h))
    >>> _ = atomic_save_model(net, "tiny.keras", info=info)
    >>> sf.write("tone.wav", 0.1 * np.sin(np.arange(12000) * 0.3), 8000)   # 1.5 s
    >>> result = predict_file(load_predictor("tiny.keras"), "tone.wav", top_k=2)
    >>> result["label"] in ("low", "high"), len(result["top"]), len(result["windows"])
    (True, 2, 5)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from keras_quaternion.model_info import EXPORT_REPORT, ModelInfo

__all__ = [
    "Predictor",
    "load_predictor",
    "predict_file",
    "predict_files",
    "window_starts",
]

#: model suffixes :func:`load_predictor` opens
MODEL_SUFFIXES = (".keras", ".tflite")


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A model ready to score audio: the model, its :class:`ModelInfo` and how to run it.

    Attributes:
        path: the model file.
        kind: ``"keras"`` or ``"tflite"``.
        info: features, clip length and class names.
        channels: input channels (4: quaternion features; 1: log-mel only).
        logits: the model ends in logits (softmax / sigmoid applied here).
        model: the ``keras.Model`` (``kind == "keras"``), or the flatbuffer bytes.
        runtime: for a ``.tflite``: ``"litert"``, ``"tflm"`` (TFLite Micro's Python
            interpreter) or ``"tflm-source"`` (a compact export's custom operators: TFLite Micro
            built from the ``KQ_TFLM_ROOT`` checkout, as on the device).
    """

    path: Path
    kind: str
    info: ModelInfo
    channels: int
    logits: bool
    model: Any
    runtime: str = "litert"

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, classes]`` for features ``[N, frames, mels, 4]``."""
        x = np.asarray(features, np.float32)[..., : self.channels]
        if self.kind == "keras":
            raw = np.asarray(self.model.predict(x, verbose=0, batch_size=32), np.float64)
        elif self.runtime == "tflm-source":
            raw = _run_on_tflm_checkout(self.model, x)
        else:
            from keras_quaternion.export.verify import predict_tflite

            raw = np.asarray(predict_tflite(self.model, x, runtime=self.runtime), np.float64)
        raw = raw.reshape(len(x), -1)
        if not self.logits:
            return raw
        if self.info.multi_label:
            return 1.0 / (1.0 + np.exp(-raw))
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def _check_classes(path, info: ModelInfo, classes: int) -> None:
    if classes != info.num_classes:
        raise ValueError(
            f"'{path}' has {classes} outputs but its recorded class names are "
            f"{info.num_classes} ({', '.join(info.class_names[:5])}...); pass matching --labels."
        )


#: what :func:`load_predictor`'s ``fields`` may set
FIELDS = ("dataset", "sample_rate", "clip_seconds", "n_mels", "class_names")


def _resolve_info(path, stored: ModelInfo | None, fields: dict, mels, classes) -> ModelInfo:
    """``stored`` with ``fields`` applied, or an info built from ``fields`` alone.

    Without stored info, the rate and clip length come from ``fields`` (or the dataset's
    defaults), the mel bands from the model's input, the class names from ``fields`` (or
    ``"0"``, ``"1"``, ...).
    """
    from keras_quaternion.model_info import ModelInfoMissingError
    from keras_quaternion.training.pipeline import dataset_defaults, feature_config_for

    fields = {k: v for k, v in fields.items() if v is not None}
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"Unknown model info fields {unknown}; known: {', '.join(FIELDS)}.")
    if stored is None and not fields:
        raise ModelInfoMissingError(_missing_message(path))
    rate, seconds = dataset_defaults(fields.get("dataset", ""))
    if stored is not None:
        rate, seconds = stored.sample_rate, stored.clip_seconds
        mels = stored.feature_config.n_mels
    rate = fields.get("sample_rate", rate)
    seconds = fields.get("clip_seconds", seconds)
    if seconds is None:
        raise ModelInfoMissingError(_missing_message(path))
    config = stored.feature_config if stored is not None else None
    if config is None or "sample_rate" in fields or "n_mels" in fields:
        config = feature_config_for(int(rate), int(fields.get("n_mels", mels or 64)))
    names = fields.get("class_names") or (
        stored.class_names if stored is not None else [str(i) for i in range(classes)]
    )
    return ModelInfo(
        config,
        seconds,
        tuple(names),
        multi_label=stored.multi_label if stored is not None else False,
        dataset=fields.get("dataset", stored.dataset if stored is not None else None),
    )


def _missing_message(path) -> str:
    suffix = Path(path).suffix.lower()
    beside = "export_report.json" if suffix == ".tflite" else "metrics.json"
    return (
        f"'{path}' carries no feature settings and there is no {beside} beside it to read them "
        "from: give --dataset NAME (its sample rate and clip length), or --sample-rate and "
        "--clip-seconds (and --n-mels, --labels)."
    )


def _keras_predictor(path: Path, fields: dict) -> Predictor:
    from keras_quaternion.model_info import model_info
    from keras_quaternion.training.model_io import load_model, model_channels, outputs_are_logits

    stored = model_info(path)
    if stored is None and not fields:
        _resolve_info(path, None, {}, None, 0)  # the clear error, before a slow load
    model = load_model(path)
    shape, classes = model.input_shape, int(model.output_shape[-1])
    mels = shape[2] if isinstance(shape, tuple) and len(shape) == 4 else None
    info = _resolve_info(path, stored, fields, mels, classes)
    _check_classes(path, info, classes)
    return Predictor(path, "keras", info, model_channels(model), outputs_are_logits(model), model)


def _tflite_predictor(path: Path, fields: dict, runtime: str) -> Predictor:
    from keras_quaternion.export.tflite import inspect_tflite
    from keras_quaternion.model_info import tflite_model_info

    stored = tflite_model_info(path)
    data = path.read_bytes()
    spec = inspect_tflite(data)
    custom = [k for k in spec.op_kinds if k.startswith("CUSTOM:")]
    if custom:
        from keras_quaternion.export.tflm_runner import tflm_runner

        if tflm_runner() is None:
            raise ValueError(
                f"'{path}' holds custom operators ({', '.join(custom)}: a 'compact' export) that "
                "neither LiteRT nor TFLite Micro's Python package can run: set KQ_TFLM_ROOT to a "
                "built TFLite Micro checkout (docs/deploy.md), or predict with the .keras model "
                "or an 'expanded' or 'fast' export of it."
            )
        runtime = "tflm-source"
    classes = int(np.prod(spec.output.shape[1:]))
    mels = int(spec.input.shape[2]) if len(spec.input.shape) == 4 else None
    info = _resolve_info(path, stored, fields, mels, classes)
    _check_classes(path, info, classes)
    return Predictor(path, "tflite", info, int(spec.input.shape[-1]), _report_logits(path), data,
                     runtime)  # fmt: skip


def _report_logits(path: Path) -> bool:
    """Whether the export report beside ``path`` says the model ends in logits."""
    try:
        report = json.loads((path.parent / EXPORT_REPORT).read_text(encoding="utf-8"))
        return report["model_info"].get("outputs") == "logits"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def load_predictor(
    path: str | os.PathLike, *, fields: dict | None = None, runtime: str = "litert"
) -> Predictor:
    """Open a ``.keras`` or ``.tflite`` model for :func:`predict_file`.

    Args:
        path: the model file.
        fields: settings that replace the stored ones, or stand in for them when the model has
            none: ``dataset`` (its default rate and clip length), ``sample_rate``,
            ``clip_seconds``, ``n_mels``, ``class_names`` (:data:`FIELDS`; ``None`` values are
            ignored). The stored ones: a ``.keras`` archive's info or the ``metrics.json``
            beside it; for a ``.tflite``, the ``export_report.json`` beside it.
        runtime: for a ``.tflite``: ``"litert"`` (LiteRT) or ``"tflm"`` (TFLite Micro).

    Returns:
        A :class:`Predictor`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: another suffix, an unknown ``runtime`` or field, a model whose outputs do
            not match its class names, or a compact ``.tflite`` on LiteRT.
        keras_quaternion.model_info.ModelInfoMissingError: no settings stored and none given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file '{path}' does not exist.")
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(f"'{path}' is neither a .keras nor a .tflite model (got {suffix!r}).")
    if runtime not in ("litert", "tflm"):
        raise ValueError(f"runtime must be 'litert' or 'tflm', got {runtime!r}.")
    if suffix == ".keras":
        return _keras_predictor(path, dict(fields or {}))
    return _tflite_predictor(path, dict(fields or {}), runtime)


def window_starts(num_samples: int, clip: int, hop: int) -> list[int]:
    """Start samples of the windows scored for a recording of ``num_samples`` samples.

    One window when the recording fits a clip; else every ``hop`` samples until a window
    reaches the end (the last one zero-padded).

    Example:
        >>> window_starts(3000, 4000, 2000), window_starts(9000, 4000, 2000)
        ([0], [0, 2000, 4000, 6000])
    """
    if num_samples <= clip:
        return [0]
    count = 1 + math.ceil((num_samples - clip) / hop)
    return [i * hop for i in range(count)]


def _windows(wave: np.ndarray, clip: int, hop: int) -> tuple[np.ndarray, list[int]]:
    from keras_quaternion.audio import fit_length

    starts = window_starts(len(wave), clip, hop)
    return np.stack([fit_length(wave[s : s + clip], clip) for s in starts]), starts


def _top(scores: np.ndarray, names, k: int) -> list[dict]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        {"label": names[i], "index": int(i), "score": round(float(scores[i]), 6)} for i in order
    ]


def predict_file(
    predictor: Predictor,
    path: str | os.PathLike,
    *,
    top_k: int = 3,
    hop_seconds: float | None = None,
) -> dict:
    """Score one audio file.

    Args:
        predictor: from :func:`load_predictor`.
        path: the audio file.
        top_k: how many classes to list (at most the number of classes).
        hop_seconds: step between windows of a long recording (default: half a clip).

    Returns:
        ``{"file", "label", "score", "top": [{"label", "index", "score"}, ...], "seconds",
        "windows"}``: the top class of the summary, its score, the ``top_k`` best classes, the
        recording's length, and per window ``{"start", "label", "score"}`` (seconds).

    Raises:
        keras_quaternion.audio.AudioDecodeError: the file cannot be decoded.
        ValueError: ``top_k`` < 1 or ``hop_seconds`` <= 0.
    """
    from keras_quaternion.audio import load_audio
    from keras_quaternion.features import quaternion_features

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}.")
    info = predictor.info
    if hop_seconds is not None and not hop_seconds > 0:
        raise ValueError(f"hop_seconds must be > 0, got {hop_seconds!r}.")
    hop = max(1, round((hop_seconds or info.clip_seconds / 2) * info.sample_rate))
    wave = load_audio(path, sample_rate=info.sample_rate)
    clips, starts = _windows(wave, info.clip_samples, hop)
    scores = predictor.scores(quaternion_features(clips, info.feature_config).numpy())
    summary = scores.mean(axis=0)
    top = _top(summary, info.class_names, min(top_k, info.num_classes))
    windows = [
        {"start": round(s / info.sample_rate, 4), **_top(row, info.class_names, 1)[0]}
        for s, row in zip(starts, scores)
    ]
    return {
        "file": os.fspath(path),
        "label": top[0]["label"],
        "score": top[0]["score"],
        "top": top,
        "seconds": round(len(wave) / info.sample_rate, 4),
        "windows": windows,
    }


def predict_files(predictor: Predictor, paths, **options):
    """:func:`predict_file` for each path, in order: ``(path, result or None, error or None)``.

    A file that cannot be decoded yields its :class:`~keras_quaternion.audio.AudioDecodeError`
    (or the ``ValueError`` of a file too short for the features) instead of stopping the others.
    """
    from keras_quaternion.audio import AudioDecodeError

    for path in paths:
        try:
            yield path, predict_file(predictor, path, **options), None
        except (AudioDecodeError, ValueError) as err:
            yield path, None, err


def _run_on_tflm_checkout(flatbuffer: bytes, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of a compact flatbuffer on TFLite Micro built from ``KQ_TFLM_ROOT``."""
    from keras_quaternion.export.tflm_runner import tflm_runner
    from keras_quaternion.export.verify import dequantize, io_spec, prepare_inputs

    spec = io_spec(flatbuffer)
    raw = tflm_runner().run(flatbuffer, prepare_inputs(spec, x))
    if spec.output_scale is None:
        return np.asarray(raw, np.float64)
    return np.asarray(dequantize(raw, spec.output_scale, spec.output_zero_point), np.float64)
