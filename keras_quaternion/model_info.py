"""A model that knows its features: the settings it was trained with, stored in its ``.keras`` file.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``);
every model this package writes (``kq-train``, ``kq-prune``, ``kq-distill``,
:func:`keras_quaternion.training.train`) also holds a member :data:`INFO_MEMBER`: a small JSON
object, the :class:`ModelInfo`, with

* ``feature_config``: the :class:`~keras_quaternion.features.FeatureConfig` of its input
  features (its ``sample_rate`` is the rate audio is resampled to) and its ``cache_key``;
* ``clip_seconds``: the clip length every training example was padded or cropped to;
* ``class_names``: one name per output, in output order; ``multi_label``;
* ``dataset`` and ``dataset_options``: where it was trained (provenance, and the defaults of
  ``kq-eval``/``kq-export``/``kq-prune``).

Keras ignores the extra member, so ``keras.models.load_model`` reads the file as before.
:func:`load_model_with_info` returns the model and its :class:`ModelInfo`; for a model saved
before the info was stored, :func:`model_info` falls back to the ``metrics.json`` that
``kq-train`` wrote beside it.

Example:
    >>> import keras
    >>> from keras_quaternion.features import FeatureConfig
    >>> from keras_quaternion.files import atomic_save_model
    >>> info = ModelInfo(FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80,
    ...                  n_mels=16, fmax=4000.0), clip_seconds=0.5, class_names=("no", "yes"))
    >>> x = keras.Input((51, 16, 4))
    >>> net = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    >>> path = atomic_save_model(net, "tiny.keras", info=info)
    >>> model, stored = load_model_with_info(path)
    >>> stored.class_names, stored.sample_rate, stored.clip_samples
    (('no', 'yes'), 8000, 4000)
    >>> keras.models.load_model(path).output_shape   # Keras reads it as before
    (None, 2)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "INFO_MEMBER",
    "ModelInfo",
    "ModelInfoMissingError",
    "add_info_to_archive",
    "load_model_with_info",
    "model_info",
    "read_model_info",
    "store_model_info",
    "tflite_model_info",
]

#: the export report a ``.tflite`` from kq-export finds its info in (its ``model_info`` section)
EXPORT_REPORT = "export_report.json"

#: the archive member holding the info
INFO_MEMBER = "keras_quaternion.json"
#: version of the info's layout (readers refuse a newer one)
FORMAT_VERSION = 1


class ModelInfoMissingError(ValueError):
    """A model carries no feature settings and none were found beside it.

    Example:
        >>> issubclass(ModelInfoMissingError, ValueError)
        True
    """


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model needs to be used on audio: its features, clip length and class names.

    Attributes:
        feature_config: the :class:`~keras_quaternion.features.FeatureConfig` of its input.
        clip_seconds: training clip length (s).
        class_names: one name per output, in output order.
        multi_label: outputs are independent (sigmoid, mAP) rather than one class (softmax).
        dataset: the dataset it was trained on (``None``: unknown).
        dataset_options: that dataset's loader options (``None``: unknown).

    Example:
        >>> from keras_quaternion.features import FeatureConfig
        >>> info = ModelInfo(FeatureConfig(), 1.0, ("a", "b"), dataset="folder")
        >>> ModelInfo.from_dict(info.to_dict()) == info, info.num_classes
        (True, 2)
    """

    feature_config: Any
    clip_seconds: float
    class_names: tuple[str, ...]
    multi_label: bool = False
    dataset: str | None = None
    dataset_options: dict | None = None

    def __post_init__(self):
        from keras_quaternion.features import FeatureConfig

        if not isinstance(self.feature_config, FeatureConfig):
            raise TypeError(
                "ModelInfo.feature_config must be a keras_quaternion.features.FeatureConfig, got "
                f"{type(self.feature_config).__name__}."
            )
        seconds = self.clip_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError(f"ModelInfo.clip_seconds must be a number > 0, got {seconds!r}.")
        names = tuple(str(name) for name in self.class_names)
        if not names:
            raise ValueError("ModelInfo.class_names must name at least one class, got none.")
        object.__setattr__(self, "clip_seconds", float(seconds))
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "multi_label", bool(self.multi_label))

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) audio is resampled to: the feature config's."""
        return self.feature_config.sample_rate

    @property
    def clip_samples(self) -> int:
        """Samples per clip: ``round(clip_seconds * sample_rate)``."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def num_classes(self) -> int:
        """Number of classes (outputs)."""
        return len(self.class_names)

    @property
    def feature_key(self) -> str:
        """``feature_config.cache_key()``: the key the C front-end header carries too."""
        return self.feature_config.cache_key()

    def to_dict(self) -> dict:
        """The JSON object stored in the archive (with the format version and feature key)."""
        return {
            "format_version": FORMAT_VERSION,
            "feature_config": self.feature_config.to_dict(),
            "feature_key": self.feature_key,
            "sample_rate": self.sample_rate,
            "clip_seconds": self.clip_seconds,
            "class_names": list(self.class_names),
            "multi_label": self.multi_label,
            "dataset": self.dataset,
            "dataset_options": self.dataset_options,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "model info") -> ModelInfo:
        """Read :meth:`to_dict`'s object (or a ``metrics.json`` / export report section).

        Raises:
            ValueError: a newer format version, a missing key, or invalid values (the message
                names ``where``).
        """
        from keras_quaternion.features import FeatureConfig

        if not isinstance(data, dict):
            raise ValueError(f"The {where} is not a JSON object (got {type(data).__name__}).")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"The {where} has format version {version!r}; this keras-quaternion reads "
                f"versions up to {FORMAT_VERSION}: upgrade keras-quaternion."
            )
        missing = [k for k in ("feature_config", "clip_seconds", "class_names") if not data.get(k)]
        if missing:
            raise ValueError(f"The {where} lacks {', '.join(missing)}.")
        try:
            return cls(
                feature_config=FeatureConfig.from_dict(dict(data["feature_config"])),
                clip_seconds=data["clip_seconds"],
                class_names=tuple(data["class_names"]),
                multi_label=bool(data.get("multi_label", False)),
                dataset=data.get("dataset"),
                dataset_options=data.get("dataset_options"),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"The {where} is invalid: {err}") from None

    @classmethod
    def from_prepared(cls, prepared) -> ModelInfo:
        """The info of a model trained on ``prepared`` (a ``PreparedData``)."""
        return cls(
            feature_config=prepared.feature_config,
            clip_seconds=prepared.clip_seconds,
            class_names=tuple(prepared.class_names),
            multi_label=prepared.multi_label,
            dataset=prepared.dataset,
            dataset_options=(prepared.info or {}).get("options"),
        )


def add_info_to_archive(path: str | os.PathLike, info: ModelInfo) -> None:
    """Write ``info`` into the ``.keras`` zip ``path`` in place, replacing an older copy.

    For a file being written (a temporary file that is renamed once complete); use
    :func:`store_model_info` for a finished model file.
    """
    text = json.dumps(info.to_dict(), indent=1, sort_keys=True) + "\n"
    with zipfile.ZipFile(path) as archive:
        present = INFO_MEMBER in archive.namelist()
    if present:  # zip members cannot be replaced in place: copy the others
        _rewrite_without_info(Path(path))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(INFO_MEMBER, text)


def _rewrite_without_info(path: Path) -> None:
    copy = path.with_name(path.name + ".strip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            if item.filename != INFO_MEMBER:
                target.writestr(item, source.read(item.filename))
    os.replace(copy, path)


def store_model_info(path: str | os.PathLike, info: ModelInfo) -> Path:
    """Store ``info`` in an existing ``.keras`` file, atomically (e.g. a model saved earlier).

    Args:
        path: the ``.keras`` file.
        info: the :class:`ModelInfo`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a ``.keras`` zip archive.
    """
    from keras_quaternion.files import atomic_path
    from keras_quaternion.training.model_io import _check_keras_archive

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file '{path}' does not exist.")
    _check_keras_archive(path)
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        add_info_to_archive(tmp, info)
    return path


def read_model_info(path: str | os.PathLike) -> ModelInfo | None:
    """The :class:`ModelInfo` stored in a ``.keras`` file, or ``None`` when it has none.

    Raises:
        ValueError: the stored info is unreadable or of a newer format (the message names the
            file).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_MEMBER not in archive.namelist():
                return None
            text = archive.read(INFO_MEMBER).decode("utf-8")
    except (OSError, zipfile.BadZipFile):
        return None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"The model info in '{path}' ({INFO_MEMBER}) is not JSON: {err}") from None
    return ModelInfo.from_dict(data, where=f"model info in '{path}'")


def _run_info(path: Path) -> dict:
    info_path = path.parent / "metrics.json"
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_info(path: str | os.PathLike, *, required: bool = False) -> ModelInfo | None:
    """A saved model's :class:`ModelInfo`: stored in the file, else from ``metrics.json`` beside it.

    Args:
        path: a ``.keras`` file.
        required: raise :class:`ModelInfoMissingError` instead of returning ``None``.

    Returns:
        The info, or ``None`` (the model was saved without it and has no ``metrics.json``).

    Raises:
        ModelInfoMissingError: ``required`` and no info found.
        ValueError: the stored info or ``metrics.json`` is invalid.

    Example:
        >>> model_info("nowhere/model.keras") is None
        True
    """
    path = Path(path)
    info = read_model_info(path) if path.is_file() else None
    if info is None:
        run = _run_info(path)
        if run.get("feature_config") and run.get("class_names"):
            where = f"metrics.json beside '{path}'"
            info = ModelInfo.from_dict({**run, "format_version": 1}, where=where)
    if info is None and required:
        raise ModelInfoMissingError(
            f"'{path}' carries no feature settings (saved before keras-quaternion stored them, or "
            "not by keras-quaternion) and there is no metrics.json beside it: give the features "
            "on the command line (--dataset NAME, or --sample-rate and --clip-seconds, and "
            "--labels), or store them with keras_quaternion.model_info.store_model_info."
        )
    return info


def load_model_with_info(path: str | os.PathLike, *, required: bool = False):
    """Load a ``.keras`` model and its :class:`ModelInfo` (:func:`model_info`).

    Args:
        path: the ``.keras`` file.
        required: raise :class:`ModelInfoMissingError` when no info is found.

    Returns:
        ``(model, info)``; ``info`` is ``None`` when none is found and not ``required``.

    Raises:
        FileNotFoundError, ValueError: as :func:`keras_quaternion.training.load_model`.
        ModelInfoMissingError: ``required`` and no info found.
    """
    from keras_quaternion.training.model_io import load_model

    model = load_model(path)
    return model, model_info(path, required=required)


def tflite_model_info(path: str | os.PathLike, *, required: bool = False) -> ModelInfo | None:
    """The :class:`ModelInfo` of a ``.tflite`` from kq-export: its export report's ``model_info``.

    Args:
        path: the ``.tflite`` file; ``export_report.json`` beside it is read.
        required: raise :class:`ModelInfoMissingError` instead of returning ``None``.

    Returns:
        The info, or ``None`` (no report beside it, or a report of an export before the info
        was recorded).

    Raises:
        ModelInfoMissingError: ``required`` and no info found.
        ValueError: the report's ``model_info`` is invalid.

    Example:
        >>> tflite_model_info("nowhere/model_int8.tflite") is None
        True
    """
    path = Path(path)
    report = path.parent / EXPORT_REPORT
    try:
        data = json.loads(report.read_text(encoding="utf-8")).get("model_info")
    except (OSError, ValueError, AttributeError):
        data = None
    if data:
        return ModelInfo.from_dict(data, where=f"model_info of '{report}'")
    if required:
        raise ModelInfoMissingError(
            f"'{path}' has no export_report.json with a model_info section beside it (export it "
            "again with kq-export, which records the features and class names there): give the "
            "features on the command line (--dataset NAME, or --sample-rate and --clip-seconds, "
            "and --labels)."
        )
    return None
