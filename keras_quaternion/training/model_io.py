"""Models in training: loading ``.keras`` files, building registry models for the data,
checking that a model fits the data, and counting its parameters and MACs."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from keras_quaternion.training.pipeline import PreparedData

__all__ = [
    "build_by_name",
    "check_model_fits",
    "count_model",
    "load_model",
    "model_channels",
    "outputs_are_logits",
]


def model_channels(model) -> int:
    """Input channels of a model: 1 (real: log-mel) or 4 (quaternion features).

    Raises:
        ValueError: the input is not ``[batch, frames, mels, 1 or 4]``.

    Example:
        >>> import keras
        >>> x = keras.Input((20, 16, 4))
        >>> model_channels(keras.Model(x, keras.layers.GlobalAveragePooling2D()(x)))
        4
    """
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[-1] not in (1, 4):
        raise ValueError(
            f"Model {model.name!r} has input shape {model.input_shape}; expected "
            "[batch, frames, mels, 1] (real model, log-mel) or [batch, frames, mels, 4] "
            "(quaternion model: log-mel, Δ, Δ², Δ³)."
        )
    return int(shape[-1])


def check_model_fits(model, prepared: PreparedData, what: str = "model") -> int:
    """Check that ``model`` takes ``prepared``'s features and predicts its classes.

    Args:
        model: a ``keras.Model``.
        prepared: the data.
        what: how the messages name the model (``"model"``, ``"teacher"``).

    Returns:
        The model's input channels (1 or 4).

    Raises:
        ValueError: other mel bands, frames, classes or channels than the data's.

    Example:
        >>> import keras
        >>> x = np.zeros((4, 20, 16, 4), "float32")
        >>> data = PreparedData.from_arrays(
        ...     {"train": (x, [0, 1, 0, 1]), "validation": (x, [0, 1, 0, 1]),
        ...      "test": (x, [0, 1, 0, 1])}, class_names=["a", "b"])
        >>> inputs = keras.Input((20, 16, 4))
        >>> h = keras.layers.GlobalAveragePooling2D()(inputs)
        >>> check_model_fits(keras.Model(inputs, keras.layers.Dense(2)(h)), data)
        4
        >>> check_model_fits(keras.Model(inputs, keras.layers.Dense(3)(h), name="m3"), data)
        Traceback (most recent call last):
        ...
        ValueError: The model 'm3' has output shape (None, 3) but the data has 2 classes.
    """
    channels = model_channels(model)
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


def outputs_are_logits(model) -> bool:
    """Whether the model ends in logits (no softmax or sigmoid on its output layer).

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> outputs_are_logits(keras.Model(x, keras.layers.Dense(2)(x)))
        True
        >>> outputs_are_logits(keras.Model(x, keras.layers.Dense(2, activation="softmax")(x)))
        False
    """
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


def build_by_name(name, prepared: PreparedData, width, model_options=None):
    """Build the registry model ``name`` for ``prepared``'s mel bands, frames and classes.

    Args:
        name: a registry name (:func:`keras_quaternion.models.names`).
        prepared: the data (classes, ``n_mels``, frames, multi-label).
        width: width multiplier, or ``None`` for the registry's default.
        model_options: more :func:`keras_quaternion.models.build` arguments
            (``{"dropout": 0.1}``); not those that come from the data or ``width``.

    Raises:
        ValueError: unknown name, or ``model_options`` setting what the data sets.

    Example:
        >>> x = np.zeros((4, 32, 16, 4), "float32")
        >>> data = PreparedData.from_arrays(
        ...     {"train": (x, [0, 1, 0, 1]), "validation": (x, [0, 1, 0, 1]),
        ...      "test": (x, [0, 1, 0, 1])}, class_names=["a", "b"])
        >>> build_by_name("qcnn6", data, 0.0625, {"dropout": 0.1}).output_shape
        (None, 2)
        >>> build_by_name("qcnn6", data, 0.0625, {"classes": 3})
        Traceback (most recent call last):
        ...
        ValueError: model_options must not set ['classes']; they come from the data and the width argument.
    """  # noqa: E501
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
    if prepared.log_mel_only and models.describe(name).input_channels == 4:
        kwargs["deltas"] = prepared.feature_config.delta_width  # Δ, Δ², Δ³ in the model
    clash = sorted(set(model_options or {}) & set(kwargs))
    if clash:
        raise ValueError(
            f"model_options must not set {clash}; they come from the data and the width argument."
        )
    kwargs.update(model_options or {})
    return models.build(name, **kwargs)


def count_model(model, frames: int) -> tuple[int, int, int | None]:
    """``(trainable params, non-trainable params, MACs per clip)``; MACs ``None`` when a layer
    is not countable (a note on stderr says why).

    Example:
        >>> import keras
        >>> x = keras.Input((10, 8, 1))
        >>> h = keras.layers.GlobalAveragePooling2D()(x)
        >>> count_model(keras.Model(x, keras.layers.Dense(3)(h)), frames=10)
        (6, 0, 3)
    """
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
