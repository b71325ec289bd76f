"""Run a trained model on one's own recordings: decode, compute the model's features, score.

:class:`Predictor` wraps a ``.keras`` model or an exported ``.tflite`` file with the
:class:`~keras_quaternion.model_info.ModelInfo` it was trained with (sample rate, features, clip
length, class names). Each recording is decoded at the model's rate and cut into windows of the
training clip length (every ``hop_seconds``, by default one clip length: windows do not
overlap); each window is padded or cropped exactly as training clips were, featurised and
scored. A recording shorter than a clip is one window. The file's scores are the mean of its
windows' scores, and the windows are kept for a per-window view.

``.tflite`` files run on LiteRT; one using the ``compact`` export's custom quaternion operators
runs on the TFLite Micro build that ``KQ_TFLM_ROOT`` points at (LiteRT has no such operators).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from keras_quaternion.model_info import ModelInfo, ModelInfoError, describe_model

__all__ = ["FilePrediction", "Predictor", "ends_in_logits"]

#: a final partial window shorter than this fraction of a clip is dropped (unless it is the only one)
MIN_LAST_WINDOW = 0.25


@dataclasses.dataclass
class FilePrediction:
    """The scores of one recording.

    Attributes:
        file: the path as given.
        label: the top class (``None`` when the file failed).
        top: ``[(class name, score), ...]``, best first.
        windows: per window: ``{"start": s, "end": s, "label": name, "score": p}`` (seconds).
        seconds: the recording's duration.
        error: why the file could not be scored, else ``None``.
    """

    file: str
    label: str | None = None
    top: list = dataclasses.field(default_factory=list)
    windows: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict:
        """One JSON object: ``file``, ``label``, ``scores`` (top classes), ``windows``, ``error``."""
        data = {
            "file": self.file,
            "label": self.label,
            "scores": {name: round(float(p), 6) for name, p in self.top},
            "seconds": round(float(self.seconds), 3),
            "windows": self.windows,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows of a recording (see the module documentation).

    Example:
        >>> window_starts(85, 40, 40), window_starts(30, 40, 40), window_starts(90, 40, 40)
        ([0, 40], [0], [0, 40, 80])
    """
    starts = list(range(0, max(n_samples - window, 0) + 1, hop))
    tail = (starts[-1] + hop) if starts else 0
    if tail < n_samples and n_samples - tail >= MIN_LAST_WINDOW * window:
        starts.append(tail)
    return starts or [0]


class Predictor:
    """A model with the features it needs; :meth:`predict_file` scores a recording.

    Args:
        scorer: a function ``features [N, frames, mels, C] -> probabilities [N, classes]``.
        info: the model's :class:`~keras_quaternion.model_info.ModelInfo`.
        channels: the model's input channels (4: quaternion features; 1: log-mel).
        top_k: how many classes :class:`FilePrediction` lists.
        hop_seconds: window hop (default: the clip length).
    """

    def __init__(self, scorer, info: ModelInfo, channels: int, *, top_k=3, hop_seconds=None):
        if int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k!r}.")
        if hop_seconds is not None and not float(hop_seconds) > 0:
            raise ValueError(f"hop_seconds must be > 0, got {hop_seconds!r}.")
        self.scorer, self.info, self.channels = scorer, info, int(channels)
        self.top_k = int(top_k)
        self.hop_seconds = float(hop_seconds or info.clip_seconds)
        self._config = info.features()

    @classmethod
    def from_file(cls, path, info: ModelInfo | None = None, **kwargs) -> Predictor:
        """A predictor for a ``.keras`` or ``.tflite`` file.

        Args:
            path: the model file.
            info: overrides what the model records (:func:`describe_model`).
            **kwargs: ``top_k``, ``hop_seconds``.

        Raises:
            FileNotFoundError: no such file.
            ModelInfoError: the model records no features and ``info`` is not given.
            ValueError: not a ``.keras`` or ``.tflite`` file; a ``.tflite`` that cannot run here.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Model file '{path}' does not exist.")
        info = info or describe_model(path)
        if info is None:
            raise ModelInfoError(
                f"'{path}' does not record the features and classes it was trained with, and "
                "there is no metrics.json (or export_report.json) next to it: pass --dataset "
                "NAME (its default features) or --sample-rate/--n-mels/--clip-seconds, and "
                "--labels."
            )
        if path.suffix == ".keras":
            scorer, channels = _keras_scorer(path)
        elif path.suffix == ".tflite":
            scorer, channels = _tflite_scorer(path, info.multi_label)
        else:
            raise ValueError(f"'{path}' is neither a .keras nor a .tflite model file.")
        return cls(scorer, info, channels, **kwargs)

    def windows(self, waveform: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """``([windows, samples] float32, start samples)`` of a waveform at the model's rate."""
        from keras_quaternion.audio import fit_length

        window = int(round(self.info.clip_seconds * self._config.sample_rate))
        hop = max(1, int(round(self.hop_seconds * self._config.sample_rate)))
        starts = window_starts(len(waveform), window, hop)
        return np.stack([fit_length(waveform[s : s + window], window) for s in starts]), starts

    def scores(self, waveform: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Per-window probabilities ``[windows, classes]`` and the windows' start samples."""
        from keras_quaternion.features import quaternion_features

        clips, starts = self.windows(np.asarray(waveform, np.float32))
        features = np.asarray(quaternion_features(clips, self._config))[..., : self.channels]
        return np.asarray(self.scorer(features), np.float64), starts

    def predict_file(self, path) -> FilePrediction:
        """Score one recording; a file that cannot be decoded gives a prediction with ``error``."""
        from keras_quaternion.audio import AudioDecodeError, load_audio

        result = FilePrediction(file=str(path))
        try:
            waveform = load_audio(path, sample_rate=self._config.sample_rate)
        except AudioDecodeError as err:
            result.error = str(err)
            return result
        probs, starts = self.scores(waveform)
        rate = self._config.sample_rate
        names = self.info.class_names
        mean = probs.mean(axis=0)
        order = np.argsort(-mean, kind="stable")[: self.top_k]
        result.top = [(names[i], float(mean[i])) for i in order]
        result.label = names[int(order[0])]
        result.seconds = len(waveform) / rate
        clip = self.info.clip_seconds
        for start, row in zip(starts, probs, strict=True):
            best = int(np.argmax(row))
            result.windows.append(
                {
                    "start": round(start / rate, 3),
                    "end": round(min(start / rate + clip, result.seconds), 3),
                    "label": names[best],
                    "score": round(float(row[best]), 6),
                }
            )
        return result


def _keras_scorer(path):
    """``(features -> probabilities, input channels)`` of a ``.keras`` model."""
    import keras

    from keras_quaternion.training.model_io import load_model, model_channels, outputs_are_logits

    model = load_model(path)
    channels = model_channels(model)
    logits = outputs_are_logits(model)

    def score(features):
        out = np.asarray(model.predict_on_batch(features.astype(np.float32)))
        if logits:
            activation = (
                keras.activations.softmax if out.shape[-1] > 1 else keras.activations.sigmoid
            )
            out = np.asarray(activation(out))
        return out

    return score, channels


def _tflite_scorer(path, multi_label: bool = False):
    """``(features -> probabilities, input channels)`` of a ``.tflite`` file.

    A file whose output is not made by a softmax or logistic operator ends in logits: its
    outputs go through a softmax (a sigmoid for ``multi_label`` or a single output), as for a
    ``.keras`` model that ends in logits.
    """
    from keras_quaternion.export.tflite import inspect_tflite
    from keras_quaternion.export.verify import io_spec

    data = Path(path).read_bytes()
    spec = io_spec(data)
    info = inspect_tflite(data)
    raw = _tflite_runner(path, data, spec, info)
    if not ends_in_logits(info):
        return raw, int(spec.input_shape[-1])

    def score(features):
        out = np.asarray(raw(features), np.float64)
        if multi_label or out.shape[-1] == 1:
            return 1.0 / (1.0 + np.exp(-out))
        out = np.exp(out - out.max(axis=-1, keepdims=True))
        return out / out.sum(axis=-1, keepdims=True)

    return score, int(spec.input_shape[-1])


def _tflite_runner(path, data: bytes, spec, info):
    """``features -> outputs`` (dequantized) by LiteRT, or by TFLite Micro for the compact
    export's custom operators."""
    from keras_quaternion.export.verify import dequantize, predict_tflite, prepare_inputs

    custom = sorted(k for k in info.op_kinds if k.startswith("CUSTOM:"))
    if not custom:
        return lambda features: predict_tflite(data, features)
    from keras_quaternion.export.tflm_runner import tflm_runner

    runner = tflm_runner()
    if runner is None:
        raise ValueError(
            f"'{path}' uses the custom operators {', '.join(custom)} of the compact export, which "
            "LiteRT cannot run: set KQ_TFLM_ROOT to a built TFLite Micro checkout (see "
            "docs/deploy.md), or predict with the .keras model or an expanded/fast export."
        )

    def run(features):
        raw = runner.run(data, prepare_inputs(spec, features))
        if np.issubdtype(spec.output_dtype, np.integer):
            return dequantize(raw, spec.output_scale, spec.output_zero_point)
        return raw.astype(np.float32)

    return run


#: Operators that make probabilities; quantize/dequantize steps between one and the output
#: (an int8 file's float or int8 interface) are looked through.
_PROBABILITY_OPS = {"SOFTMAX", "LOGISTIC"}
_PASS_THROUGH_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE"}


def ends_in_logits(info) -> bool:
    """Whether a ``.tflite`` model's first output is not made by a softmax or logistic.

    Args:
        info: :func:`~keras_quaternion.export.tflite.inspect_tflite` of the file.

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> from keras_quaternion.export.tflite import inspect_tflite
        >>> x = keras.Input((3,))
        >>> logits = keras.Model(x, keras.layers.Dense(2)(x))
        >>> ends_in_logits(inspect_tflite(to_tflite(logits, int8=False)))
        True
        >>> probs = keras.Model(x, keras.layers.Dense(2, activation="softmax")(x))
        >>> ends_in_logits(inspect_tflite(to_tflite(probs, int8=False)))
        False
    """
    producer = {out: op for op in info.operators for out in op.outputs}
    tensor = info.outputs[0]
    while tensor in producer:
        op = producer[tensor]
        if op.name in _PROBABILITY_OPS:
            return False
        if op.name not in _PASS_THROUGH_OPS or not op.inputs:
            return True
        tensor = op.inputs[0]
    return True


def info_from_options(
    dataset=None, sample_rate=None, n_mels=None, clip_seconds=None, labels=None, classes=None
) -> ModelInfo:
    """A :class:`ModelInfo` for a model that records none, from command-line style options.

    ``dataset`` gives its default sample rate and clip length (and, for registered datasets
    with fixed classes, nothing more: pass ``labels``); explicit values override them.

    Raises:
        ModelInfoError: no sample rate or clip length can be worked out.

    Example:
        >>> info = info_from_options(sample_rate=8000, clip_seconds=1.0, labels=["a", "b"])
        >>> info.sample_rate, info.class_names
        (8000, ('a', 'b'))
    """
    from keras_quaternion.training.pipeline import dataset_defaults, feature_config_for

    rate, clip = dataset_defaults(dataset) if dataset else (None, None)
    rate, clip = sample_rate or rate, clip_seconds or clip
    if not rate or not clip:
        raise ModelInfoError(
            "The model records no features: give --dataset NAME, or both --sample-rate and "
            "--clip-seconds (and --n-mels if it is not 64)."
        )
    names = list(labels) if labels else [str(i) for i in range(int(classes or 0))]
    config = feature_config_for(int(rate), int(n_mels or 64))
    return ModelInfo(config.to_dict(), float(clip), names, dataset=dataset)


def model_classes(path: str | os.PathLike) -> int:
    """The number of outputs of a ``.keras`` or ``.tflite`` model (for default class names)."""
    path = Path(path)
    if path.suffix == ".tflite":
        from keras_quaternion.export.verify import io_spec

        return int(io_spec(path.read_bytes()).output_shape[-1])
    from keras_quaternion.training.model_io import load_model

    return int(load_model(path).output_shape[-1])
