"""What a trained model needs to be used: its features, clip length and class names.

A ``model.keras`` written by ``kq-train``, ``kq-prune`` or ``kq-distill`` carries a
:class:`ModelInfo` inside its archive (the member ``keras_quaternion.json``, next to Keras's own
``config.json``), so a model file that travels alone can still be fed the features it was
trained on and can name its classes. ``keras.models.load_model`` ignores the extra member.

Where the information comes from (:func:`describe_model`), first found wins:

1. ``.keras``: the archive's ``keras_quaternion.json``;
2. ``.keras`` saved before models carried it: the ``metrics.json`` of the run beside it;
3. ``.tflite``: the ``export_report.json`` that ``kq-export`` wrote beside it (or, failing
   that, the ``metrics.json`` beside it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "INFO_MEMBER",
    "ModelInfo",
    "ModelInfoError",
    "describe_model",
    "read_info",
    "write_info",
]

#: the archive member holding the information in a ``.keras`` file
INFO_MEMBER = "keras_quaternion.json"
#: version of the stored format
FORMAT = 1


class ModelInfoError(ValueError):
    """A model's features or classes cannot be found, or its stored information is damaged."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The data a model was trained on, as far as using the model needs it.

    Attributes:
        feature_config: :meth:`FeatureConfig.to_dict` of the features (a plain dict).
        clip_seconds: the clip length every training example was padded or cropped to.
        class_names: one name per output.
        multi_label: sigmoid outputs (tags) instead of one class per clip.
        dataset: the dataset's registry name (``None`` if unknown).
        dataset_options: the loader options of the training run (split protocol, seed, ...).

    Example:
        >>> info = ModelInfo({"sample_rate": 8000, "n_mels": 64}, 1.0, ["0", "1"])
        >>> info.sample_rate, ModelInfo.from_dict(info.to_dict()) == info
        (8000, True)
    """

    feature_config: dict
    clip_seconds: float
    class_names: tuple
    multi_label: bool = False
    dataset: str | None = None
    dataset_options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "clip_seconds", float(self.clip_seconds))

    @property
    def sample_rate(self) -> int:
        """The features' sample rate in Hz."""
        return int(self.feature_config["sample_rate"])

    def features(self):
        """The :class:`~keras_quaternion.features.FeatureConfig` (imports TensorFlow)."""
        from keras_quaternion.features import FeatureConfig

        return FeatureConfig.from_dict(self.feature_config)

    def to_dict(self) -> dict:
        """Plain JSON data, with the keys ``metrics.json`` uses for the same things."""
        return {
            "format": FORMAT,
            "feature_config": dict(self.feature_config),
            "sample_rate": self.sample_rate,
            "clip_seconds": self.clip_seconds,
            "class_names": list(self.class_names),
            "multi_label": bool(self.multi_label),
            "dataset": self.dataset,
            "dataset_options": dict(self.dataset_options),
        }

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "the model information") -> ModelInfo:
        """Rebuild from :meth:`to_dict` output (or a ``metrics.json``/export report holding the keys).

        Raises:
            ModelInfoError: a needed key is missing, naming ``source``.
        """
        missing = [k for k in ("feature_config", "clip_seconds", "class_names") if not data.get(k)]
        if missing:
            raise ModelInfoError(f"{source} lacks {', '.join(missing)}.")
        return cls(
            feature_config=dict(data["feature_config"]),
            clip_seconds=data["clip_seconds"],
            class_names=data["class_names"],
            multi_label=bool(data.get("multi_label", False)),
            dataset=data.get("dataset"),
            dataset_options=dict(data.get("dataset_options") or {}),
        )

    @classmethod
    def from_prepared(cls, prepared) -> ModelInfo:
        """The information of a model trained on a :class:`~keras_quaternion.training.PreparedData`."""
        return cls(
            feature_config=prepared.feature_config.to_dict(),
            clip_seconds=prepared.clip_seconds,
            class_names=list(prepared.class_names),
            multi_label=bool(prepared.multi_label),
            dataset=prepared.dataset,
            dataset_options=dict((prepared.info or {}).get("options") or {}),
        )


def write_info(path: str | os.PathLike, info: ModelInfo) -> None:
    """Add (or replace) ``info`` in the ``.keras`` archive at ``path``.

    Write into a temporary file before publishing it (as
    :func:`keras_quaternion.files.atomic_save_model` does): the archive is rewritten in place.

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> keras.Model(x, keras.layers.Dense(2)(x)).save("tiny.keras")
        >>> write_info("tiny.keras", ModelInfo({"sample_rate": 16000}, 1.0, ["no", "yes"]))
        >>> read_info("tiny.keras").class_names
        ('no', 'yes')
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [(m, archive.read(m)) for m in archive.infolist() if m.filename != INFO_MEMBER]
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            archive.writestr(member, data)
        text = json.dumps(info.to_dict(), indent=1, sort_keys=True)
        archive.writestr(INFO_MEMBER, text + "\n", compress_type=zipfile.ZIP_DEFLATED)


def read_info(path: str | os.PathLike) -> ModelInfo | None:
    """The :class:`ModelInfo` stored in a ``.keras`` archive, or ``None`` if it holds none.

    Raises:
        ModelInfoError: the stored information is not valid JSON or lacks a needed key.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_MEMBER not in archive.namelist():
                return None
            raw = archive.read(INFO_MEMBER)
    except (zipfile.BadZipFile, OSError):
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ModelInfoError(f"'{path}': its {INFO_MEMBER} is not valid JSON ({err}).") from None
    return ModelInfo.from_dict(data, source=f"'{path}' ({INFO_MEMBER})")


def _json_beside(path: Path, name: str) -> dict[str, Any]:
    beside = path.parent / name
    if not beside.is_file():
        return {}
    try:
        data = json.loads(beside.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_model(path: str | os.PathLike) -> ModelInfo | None:
    """The :class:`ModelInfo` of a ``.keras`` or ``.tflite`` model file, wherever it is kept.

    See the module documentation for the order of the sources.

    Returns:
        The information, or ``None`` when no source has it.

    Raises:
        ModelInfoError: a source exists but is damaged or incomplete.

    Example:
        >>> describe_model("no-such-run/model.keras") is None
        True
    """
    path = Path(path)
    if path.suffix == ".keras":
        stored = read_info(path) if path.is_file() else None
        if stored is not None:
            return stored
        sources = ("metrics.json",)
    else:
        sources = ("export_report.json", "metrics.json")
    for name in sources:
        data = _json_beside(path, name)
        data = data.get("model_info") or data  # kq-export's report keeps it in a section
        if data.get("feature_config") and data.get("class_names"):
            return ModelInfo.from_dict(data, source=f"'{path.parent / name}'")
    return None


def load_with_info(path: str | os.PathLike):
    """Load a ``.keras`` model and what it needs to be used: ``(model, ModelInfo or None)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a Keras model file (see :func:`keras_quaternion.training.load_model`).
        ModelInfoError: the stored information is damaged.

    Example:
        >>> import keras
        >>> from keras_quaternion.files import atomic_save_model
        >>> x = keras.Input((3,))
        >>> info = ModelInfo({"sample_rate": 8000}, 0.6, ["yes", "no"], dataset="mine")
        >>> _ = atomic_save_model(keras.Model(x, keras.layers.Dense(2)(x)), "m.keras", info=info)
        >>> model, stored = load_with_info("m.keras")
        >>> stored.class_names, stored.clip_seconds, model.output_shape
        (('yes', 'no'), 0.6, (None, 2))
    """
    from keras_quaternion.training.model_io import load_model

    model = load_model(path)
    return model, describe_model(path)
