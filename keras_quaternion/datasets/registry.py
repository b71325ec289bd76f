"""Dataset registry: ``names()``, ``load(name, data_dir, **options)``, ``register``.

Besides the registered loaders, ``tfds:NAME`` names any TensorFlow Datasets builder
(:mod:`keras_quaternion.datasets.tfds`); it is resolved when asked for, not listed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

from keras_quaternion.datasets.base import AudioDataset

__all__ = [
    "TFDS_PREFIX",
    "DatasetSpec",
    "expected_layout",
    "is_tfds_name",
    "load",
    "names",
    "register",
    "spec",
]

#: prefix of the dataset names served by TensorFlow Datasets (``tfds:gtzan``)
TFDS_PREFIX = "tfds:"


def is_tfds_name(name) -> bool:
    """Whether ``name`` has the form ``tfds:NAME`` (the builder itself is checked on load).

    Example:
        >>> is_tfds_name("tfds:gtzan"), is_tfds_name("gtzan"), is_tfds_name("tfds:")
        (True, False, False)
    """
    return isinstance(name, str) and name.startswith(TFDS_PREFIX) and bool(name[5:].strip())


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset loader.

    Attributes:
        name: registry name.
        loader: ``loader(data_dir, **options) -> AudioDataset``; options are keyword-only.
        description: one line.
        layout: the expected on-disk tree (empty for generated data).
        needs_data_dir: ``False`` for generated datasets (``synthetic``).

    Example:
        >>> s = spec("esc50")
        >>> s.needs_data_dir, s.options
        (True, {'fold': 1, 'esc10': False, 'validation_fraction': 0.1, 'seed': 0})
        >>> spec("synthetic").needs_data_dir
        False
    """

    name: str
    loader: Callable[..., AudioDataset]
    description: str
    layout: str
    needs_data_dir: bool = True

    @property
    def options(self) -> dict[str, object]:
        """The loader's options and their defaults."""
        sig = inspect.signature(self.loader)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_REGISTRY: dict[str, DatasetSpec] = {}


def register(name: str, *, description: str, layout: str = "", needs_data_dir: bool = True):
    """Decorator registering ``loader(data_dir, *, option=default, ...) -> AudioDataset``.

    Args:
        name: registry name (lower case, no spaces).
        description: one line shown by tools.
        layout: the expected folder tree (shown in :class:`DatasetLayoutError` messages and docs).
        needs_data_dir: whether the loader reads files.

    Raises:
        ValueError: ``name`` already registered, or not a lower-case identifier.

    Example:
        >>> @register("mine", description="My clips", layout="mine/\\n  a/ b/")  # doctest: +SKIP
        ... def load_mine(data_dir, *, seed=0):
        ...     ...
    """
    if not name or name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"register: dataset name must be a lower-case identifier, got {name!r}.")

    def deco(loader: Callable[..., AudioDataset]) -> Callable[..., AudioDataset]:
        if name in _REGISTRY:
            raise ValueError(f"register: a dataset named {name!r} is already registered.")
        _REGISTRY[name] = DatasetSpec(name, loader, description, layout, needs_data_dir)
        return loader

    return deco


class _Names(list):
    """A sorted list of registered names whose ``in`` also accepts ``tfds:NAME``."""

    def __contains__(self, name) -> bool:
        return super().__contains__(name) or is_tfds_name(name)


def names() -> list[str]:
    """Sorted names of all registered datasets.

    ``tfds:NAME`` (any TensorFlow Datasets builder) is not listed, but ``in names()`` accepts
    it, so that tools which check a name against this list take it.

    Example:
        >>> "synthetic" in names(), "tfds:gtzan" in names(), "tfds:gtzan" in list(names())
        (True, True, False)
    """
    return _Names(sorted(_REGISTRY))


def spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a dataset.

    Args:
        name: a registered dataset name (see :func:`names`), or ``tfds:NAME`` for a TensorFlow
            Datasets builder.

    Returns:
        The dataset's :class:`DatasetSpec`.

    Raises:
        ValueError: unknown name (the message lists the known names).

    Example:
        >>> spec("fsdd").description
        'Free Spoken Digit Dataset: 10 digits, 6 speakers, 3000 clips at 8 kHz.'
        >>> spec("nope")
        Traceback (most recent call last):
        ...
        ValueError: Unknown dataset 'nope'; known datasets: audioset, csv, esc50, ...
    """
    if is_tfds_name(name):
        from keras_quaternion.datasets.tfds import tfds_spec

        return tfds_spec(name)
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; known datasets: {', '.join(names())}, or "
            "tfds:NAME for a TensorFlow Datasets builder."
        )
    return _REGISTRY[name]


def expected_layout(name: str) -> str:
    """The expected on-disk layout tree of a dataset (empty for generated ones).

    Args:
        name: a registered dataset name (see :func:`names`).

    Returns:
        The layout tree, as text.

    Raises:
        ValueError: unknown name.

    Example:
        >>> print(expected_layout("esc50").splitlines()[0])
        ESC-50/                       <- data_dir
        >>> expected_layout("synthetic")
        ''
    """
    return spec(name).layout


def load(name: str, data_dir: str | os.PathLike | None = None, **options) -> AudioDataset:
    """Load a dataset by name.

    Args:
        name: one of :func:`names` (``"synthetic"``, ``"fsdd"``, ``"esc50"``, ...).
        data_dir: the dataset's top folder (see ``docs/datasets.md`` for each layout); not used
            by ``synthetic``.
        **options: loader options (``fold=``, ``seed=``, ``split=`` ...; see each loader).

    Returns:
        :class:`AudioDataset` with ``train`` / ``validation`` / ``test`` splits.

    Raises:
        ValueError: unknown dataset name, unknown option, or a bad option value (each message
            names the option and what is allowed).
        DatasetLayoutError: ``data_dir`` missing, not a folder, or not laid out as expected.

    Example:
        >>> ds = load("synthetic", samples_per_class=20, seed=1)
        >>> ds.num_classes
        10
    """
    s = spec(name)
    allowed = s.options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
        raise ValueError(
            f"Dataset '{name}': unknown option(s) {unknown}; allowed options (defaults): {listed}."
        )
    if not s.needs_data_dir and data_dir is not None:
        raise ValueError(
            f"Dataset '{name}' is generated in code and takes no data_dir (got {str(data_dir)!r}); "
            "leave data_dir unset."
        )
    return s.loader(data_dir, **options)
