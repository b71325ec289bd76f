"""``tfds:NAME``: any TensorFlow Datasets builder with an audio feature and a class label.

TensorFlow Datasets (TFDS, the optional ``tensorflow-datasets`` package: ``pip install
'keras-quaternion[tfds]'``) downloads, checks against its own recorded checksums and prepares
its datasets with ``download_and_prepare``; this module turns a prepared builder into an
:class:`~keras_quaternion.datasets.AudioDataset`, so ``load("tfds:gtzan")``,
``prepare("tfds:spoken_digit", ...)`` and ``kq-train --dataset tfds:crema_d`` go through the
same feature pipeline, cache, splits and metrics as the file loaders.

Each split is read once, in TFDS's file order, into memory (integer PCM stays int16, two bytes a
sample); decoding then resamples every clip to the pipeline's rate. A builder's own splits are
used where it has them; a missing validation or test split is carved from train, seeded and
stratified by class. ``tfds:NAME`` may carry TFDS's own ``NAME/CONFIG:VERSION`` form.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_quaternion.datasets.base import (
    AudioDataset,
    Example,
    check_int,
    check_split_fractions,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import TFDS_PREFIX, DatasetSpec

__all__ = ["TFDSError", "TFDSMissingError", "load_tfds", "prepare_tfds", "tfds_spec"]

LAYOUT = """\
tensorflow_datasets/          <- data_dir (optional: default $TFDS_DATA_DIR or ~/tensorflow_datasets)
├── downloads/                (archives fetched and checked by TFDS)
└── NAME/[CONFIG/]VERSION/    (prepared records, written by TFDS's download_and_prepare)"""

#: split names a builder may use for its validation split, in order of preference
VALIDATION_NAMES = ("validation", "valid", "dev", "val")


class TFDSError(ValueError):
    """A TFDS builder cannot be used: unknown, without an audio feature or class label, not
    prepared, failed to download, or a bad split / option. The message names the builder, what
    is wrong and the fix.

    Example:
        >>> isinstance(TFDSError("Dataset 'tfds:x': ..."), ValueError)
        True
    """


class TFDSMissingError(TFDSError, ImportError):
    """The optional ``tensorflow-datasets`` package is not installed (an ``ImportError`` and a
    :class:`TFDSError`, so command lines print it as a one-line message).

    Example:
        >>> isinstance(TFDSMissingError("pip install 'keras-quaternion[tfds]'"), ImportError)
        True
    """


def import_tfds(name: str = "tfds:NAME"):
    """Import ``tensorflow_datasets``, or raise :class:`TFDSMissingError` saying how to get it.

    Args:
        name: the dataset that needs it, for the message.

    Returns:
        The ``tensorflow_datasets`` module.

    Raises:
        TFDSMissingError: the package is not installed.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise TFDSMissingError(
            f"Dataset '{name}' needs the optional package tensorflow-datasets, which is not "
            f"installed ({err}); install it with pip install 'keras-quaternion[tfds]' (or pip "
            "install tensorflow-datasets)."
        ) from err
    return tfds


def tfds_spec(name: str) -> DatasetSpec:
    """The :class:`~keras_quaternion.datasets.DatasetSpec` of ``tfds:NAME`` (TFDS not imported).

    Args:
        name: ``"tfds:NAME"``, NAME a TFDS builder (``gtzan``, ``nsynth/gansynth_subset``, ...).

    Returns:
        A spec whose loader is :func:`load_tfds` bound to the builder name.

    Raises:
        ValueError: ``name`` does not start with ``tfds:`` or names no builder.

    Example:
        >>> s = tfds_spec("tfds:gtzan")
        >>> s.name, s.needs_data_dir, s.options["train_split"]
        ('tfds:gtzan', True, 'train')
    """
    builder = name[len(TFDS_PREFIX) :] if isinstance(name, str) else ""
    if not isinstance(name, str) or not name.startswith(TFDS_PREFIX) or not builder.strip():
        raise ValueError(
            f"A TFDS dataset is named 'tfds:NAME' with NAME a TensorFlow Datasets builder "
            f"(e.g. 'tfds:gtzan'), got {name!r}."
        )
    return DatasetSpec(
        name=name,
        loader=functools.partial(load_tfds, builder.strip()),
        description=f"TensorFlow Datasets builder '{builder.strip()}' (downloaded and checked "
        "by TFDS).",
        layout=LAYOUT,
        needs_data_dir=True,
    )


# ------------------------------------------------------------------------------ the builder


def _builder(tfds, name: str, builder_name: str, config, data_dir):
    """``tfds.builder(...)``, with a clear error for an unknown builder or config."""
    kwargs = {"data_dir": None if data_dir is None else str(data_dir)}
    if config is not None:
        kwargs["config"] = config
    try:
        return tfds.builder(builder_name, **kwargs)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(builder_name.split("/")[0], known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TFDSError(
            f"Dataset '{name}': TensorFlow Datasets has no builder '{builder_name}'; {hint}"
            "tfds.list_builders() lists them (audio ones: gtzan, spoken_digit, "
            "speech_commands, crema_d, nsynth, ...)."
        ) from None
    except (ValueError, KeyError, AssertionError) as err:  # unknown config or version
        raise TFDSError(
            f"Dataset '{name}': TensorFlow Datasets cannot make builder '{builder_name}' "
            f"(config={config!r}): {err}"
        ) from None


def _flatten(tfds, features, prefix=()) -> dict[tuple[str, ...], Any]:
    """``{path: feature}`` of a (nested) FeaturesDict."""
    out = {}
    for key, feature in features.items():
        path = (*prefix, key)
        if isinstance(feature, tfds.features.FeaturesDict):
            out.update(_flatten(tfds, feature, path))
        else:
            out[path] = feature
    return out


def _label_kind(tfds, feature) -> str | None:
    """``"single"`` (ClassLabel), ``"multi"`` (Sequence of ClassLabel) or ``None``."""
    if isinstance(feature, tfds.features.ClassLabel):
        return "single"
    inner = getattr(feature, "feature", None)
    if isinstance(feature, tfds.features.Sequence) and isinstance(inner, tfds.features.ClassLabel):
        return "multi"
    return None


def _choose(name, what, option, candidates: list[str], chosen, preferred, listing) -> str:
    """Pick one feature path: the option, the preferred name, or the only candidate."""
    if chosen is not None:
        if chosen not in candidates:
            raise TFDSError(
                f"Dataset '{name}': option {option}={chosen!r} is not {what} of the builder; "
                f"its {what} features: {candidates or 'none'} (all features: {listing})."
            )
        return chosen
    if not candidates:
        raise TFDSError(
            f"Dataset '{name}': the builder has no {what} feature (its features: {listing}); "
            "only builders with an Audio feature and a ClassLabel (or a Sequence of ClassLabel) "
            "can be used."
        )
    if preferred in candidates:
        return preferred
    if len(candidates) > 1:
        raise TFDSError(
            f"Dataset '{name}': the builder has several {what} features: {candidates}; choose "
            f"one with {option}=... (--option {option}={candidates[0]})."
        )
    return candidates[0]


def pick_features(tfds, name: str, features, audio_key=None, label_key=None):
    """The builder's audio and label features.

    Args:
        tfds: the ``tensorflow_datasets`` module.
        name: the dataset name, for messages.
        features: the builder's ``info.features``.
        audio_key: the audio feature's path (``a/b`` for nested ones), or ``None`` to find it.
        label_key: the label feature's path, or ``None`` (prefers ``label``).

    Returns:
        ``(audio_path, audio_feature, label_path, label_feature, multi_label)``; paths are tuples.

    Raises:
        TFDSError: no audio or label feature, several and none chosen, or a bad choice.
    """
    flat = _flatten(tfds, features)
    listing = ", ".join(f"{'/'.join(p)} ({type(f).__name__})" for p, f in flat.items())
    audio = ["/".join(p) for p, f in flat.items() if isinstance(f, tfds.features.Audio)]
    labels = ["/".join(p) for p, f in flat.items() if _label_kind(tfds, f)]
    a = _choose(name, "audio", "audio_key", audio, audio_key, "audio", listing)
    lab = _choose(name, "class label", "label_key", labels, label_key, "label", listing)
    apath, lpath = tuple(a.split("/")), tuple(lab.split("/"))
    if apath not in flat:  # a top-level key that itself holds '/' (e.g. 'audio/filename')
        apath = (a,)
    if lpath not in flat:
        lpath = (lab,)
    lfeat = flat[lpath]
    return apath, flat[apath], lpath, lfeat, _label_kind(tfds, lfeat) == "multi"


def _prepare_builder(builder, name: str, download: bool) -> None:
    """Run TFDS's ``download_and_prepare``, or check the data is already prepared."""
    if not download:
        if not builder.is_prepared():
            raise TFDSError(
                f"Dataset '{name}': the builder is not prepared in '{builder.data_dir}' and "
                "download=False; drop the option (or run kq-data download "
                f"{name}) to let TensorFlow Datasets download it, or point data_dir / "
                "--data-dir at the TFDS folder that holds it."
            )
        return
    try:
        builder.download_and_prepare()
    except Exception as err:  # network, disk, checksum: TFDS raises many types
        raise TFDSError(
            f"Dataset '{name}': TensorFlow Datasets could not download and prepare it into "
            f"'{builder.data_dir}' ({type(err).__name__}: {err}). Check the network connection "
            "and the free disk space there, or point data_dir / --data-dir at a TFDS folder "
            "where it is already prepared."
        ) from err


def prepare_tfds(name: str, data_dir=None, *, config=None, audio_key=None, label_key=None):
    """Check that a builder is usable, then let TFDS download and prepare it (``kq-data``).

    Args:
        name: ``"tfds:NAME"``.
        data_dir: the TFDS data folder (``None``: TFDS's usual one).
        config: the builder config, if any.
        audio_key: the audio feature, when the builder has several.
        label_key: the class-label feature, when the builder has several.

    Returns:
        The folder holding the prepared data.

    Raises:
        TFDSMissingError: tensorflow-datasets is not installed.
        TFDSError: unknown builder, no audio or label feature, or a failed download.

    Example:
        >>> prepare_tfds("tfds:spoken_digit", "tfds_data")  # doctest: +SKIP
    """
    builder_name = tfds_spec(name).name[len(TFDS_PREFIX) :]
    tfds = import_tfds(name)
    builder = _builder(tfds, name, builder_name, config, data_dir)
    pick_features(tfds, name, builder.info.features, audio_key, label_key)
    _prepare_builder(builder, name, True)
    return builder.data_dir


# ------------------------------------------------------------------------------- the splits


def resolve_splits(name: str, available: Sequence[str], train, validation, test) -> dict:
    """TFDS split names for ``train`` / ``validation`` / ``test`` (``None``: carve from train).

    Args:
        name: the dataset name, for messages.
        available: the builder's split names (empty when TFDS does not know them yet).
        train: the train split (a TFDS split string such as ``"train"`` or ``"train[:80%]"``).
        validation: the validation split, or ``None`` for the builder's own one if it has one.
        test: the test split, or ``None`` for the builder's ``test`` split if it has one.

    Returns:
        ``{"train": str, "validation": str | None, "test": str | None}``.

    Raises:
        TFDSError: a split option is not a non-empty string, or names a split the builder lacks.

    Example:
        >>> resolve_splits("tfds:crema_d", ["train", "validation", "test"], "train", None, None)
        {'train': 'train', 'validation': 'validation', 'test': 'test'}
        >>> resolve_splits("tfds:gtzan", ["train"], "train", None, None)
        {'train': 'train', 'validation': None, 'test': None}
    """
    chosen = {"train": train, "validation": validation, "test": test}
    for role, split in chosen.items():
        if split is not None and (not isinstance(split, str) or not split.strip()):
            raise TFDSError(
                f"Dataset '{name}': option {role}_split must be a TFDS split name such as "
                f"'{role}' or 'train[:80%]', got {split!r}."
            )
        base = split.split("[")[0].split("+")[0].strip() if split else ""
        if split is not None and available and base not in available:
            raise TFDSError(
                f"Dataset '{name}': option {role}_split={split!r} names no split of the builder; "
                f"its splits: {sorted(available)}."
            )
    if validation is None:
        chosen["validation"] = next((s for s in VALIDATION_NAMES if s in available), None)
    if test is None:
        chosen["test"] = "test" if "test" in available else None
    return chosen


def compact_waveform(wave) -> np.ndarray:
    """A decoded TFDS clip as a compact mono array: int16 PCM when it fits, else float32.

    Integer samples within the 16-bit range stay int16 (scaled by 1/32768 when decoded); wider
    integers become float32 scaled by 1/2**31; floats stay float32. Channels (last axis) are
    averaged.

    Args:
        wave: ``[samples]`` or ``[samples, channels]``.

    Returns:
        1-D int16 or float32 array.

    Example:
        >>> compact_waveform(np.array([0, 1000, -1000], np.int64)).dtype
        dtype('int16')
        >>> compact_waveform(np.array([[0.5, 0.0], [0.25, 0.25]], np.float32)).tolist()
        [0.25, 0.25]
    """
    a = np.asarray(wave)
    integer = np.issubdtype(a.dtype, np.integer)
    if a.ndim == 2:
        a = a.astype(np.float64).mean(axis=1)
        a = np.round(a) if integer else a
    a = a.reshape(-1)
    if not integer:
        return a.astype(np.float32, copy=False)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if -32768 <= lo and hi <= 32767:
        return a.astype(np.int16)
    return (a.astype(np.float64) / 2.0**31).astype(np.float32)


def _get(example: dict, path: tuple[str, ...]):
    for key in path:
        example = example[key]
    return example


def _meta_of(example: dict, skip: set[str]) -> dict[str, Any]:
    """Top-level scalar features (speaker ids, file names ...) as plain Python values."""
    meta = {}
    for key, value in example.items():
        if key in skip or isinstance(value, dict):
            continue
        value = np.asarray(value)
        if value.ndim == 0:
            item = value.item()
            meta[key] = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
    return meta


def _label(name, value, num_classes: int, multi: bool, where: str):
    """An int class index, or a float32 multi-hot vector, checked against the class count."""
    idx = np.asarray(value, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise TFDSError(
            f"Dataset '{name}': {where} has label {idx.tolist()} outside 0..{num_classes - 1} "
            "(a split without labels?); choose another split with the *_split options."
        )
    if not multi:
        return int(idx[0])
    hot = np.zeros(num_classes, np.float32)
    hot[idx] = 1.0
    return hot


def read_split(tfds, builder, name: str, split: str, features: tuple, sample_rate: int, budget):
    """Read one TFDS split into :class:`Example` objects (in-memory compact waveforms).

    Args:
        tfds: the ``tensorflow_datasets`` module.
        builder: the prepared builder.
        name: the dataset name, for messages.
        split: the TFDS split string.
        features: ``(audio_path, label_path, num_classes, multi_label)``.
        sample_rate: native rate of the clips.
        budget: a one-item list of bytes still allowed in memory (decremented).

    Returns:
        The examples, in TFDS's order; ``meta`` holds ``id`` (``builder:version/split[i]``),
        ``tfds_split``, ``index`` and the builder's top-level scalar features.

    Raises:
        TFDSError: a split TFDS cannot read, a label outside the classes, or over the budget.
    """
    apath, lpath, num_classes, multi = features
    try:
        ds = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    except Exception as err:  # unknown or badly sliced split
        raise TFDSError(f"Dataset '{name}': TFDS cannot read split {split!r}: {err}") from None
    out, stem = [], f"{builder.name}:{builder.version}/{split}"
    for i, ex in enumerate(ds):
        wave = compact_waveform(_get(ex, apath))
        budget[0] -= wave.nbytes
        if budget[0] < 0:
            raise TFDSError(
                f"Dataset '{name}': split {split!r} needs more memory than max_memory_gb allows "
                f"(stopped at example {i}); raise max_memory_gb or read part of it, e.g. "
                f"--option train_split='{split.split('[')[0]}[:25%]'."
            )
        label = _label(name, _get(ex, lpath), num_classes, multi, f"example {i} of {split!r}")
        meta = {"id": f"{stem}[{i}]", "tfds_split": split, "index": i}
        for key, value in _meta_of(ex, {apath[0], lpath[0]}).items():
            meta[f"tfds_{key}" if key in meta else key] = value
        out.append(Example(wave, label, meta, sample_rate=sample_rate))
    return out


def _carve(splits: dict, chosen: dict, validation_fraction: float, test_fraction: float, seed):
    """Carve the missing test / validation splits from train (seeded, stratified by class)."""
    carved = []
    if chosen["test"] is None:
        splits["train"], splits["test"] = stratified_holdout(
            splits["train"], test_fraction, seed=seed
        )
        carved.append(f"test = seeded ({seed}) {test_fraction:g} of train")
    if chosen["validation"] is None:
        share = validation_fraction / (1.0 - (test_fraction if chosen["test"] is None else 0.0))
        splits["train"], splits["validation"] = stratified_holdout(
            splits["train"], share, seed=seed + 1
        )
        whole = "the data" if chosen["test"] is None else "train"
        carved.append(f"validation = seeded ({seed + 1}) {validation_fraction:g} of {whole}")
    return carved


def _check_options(name, validation_fraction, test_fraction, seed, sample_rate, max_memory_gb):
    """Validate the numeric options; returns them converted."""
    test_fraction, validation_fraction = check_split_fractions(
        name, test_fraction, validation_fraction
    )
    seed = check_int(name, "seed", seed, 0)
    if sample_rate is not None:
        sample_rate = check_int(name, "sample_rate", sample_rate, 1000, 768_000)
    try:
        budget = float(max_memory_gb)
    except (TypeError, ValueError):
        budget = float("nan")
    if not budget > 0:
        raise ValueError(
            f"Dataset '{name}': option max_memory_gb must be a positive number, got "
            f"{max_memory_gb!r}."
        )
    return validation_fraction, test_fraction, seed, sample_rate, budget


def _native_rate(name: str, audio_feature, sample_rate) -> int:
    """The clips' rate: the option wins, else the builder's Audio feature must state it."""
    if sample_rate is not None:
        return int(sample_rate)
    rate = getattr(audio_feature, "sample_rate", None)
    if not rate:
        raise TFDSError(
            f"Dataset '{name}': the builder's Audio feature does not state its sample rate; "
            "pass it with sample_rate=<Hz> (--option sample_rate=16000)."
        )
    return int(rate)


def load_tfds(
    builder_name: str,
    data_dir=None,
    *,
    config: str | None = None,
    train_split: str = "train",
    validation_split: str | None = None,
    test_split: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    audio_key: str | None = None,
    label_key: str | None = None,
    sample_rate: int | None = None,
    download: bool = True,
    max_memory_gb: float = 8.0,
    seed: int = 0,
) -> AudioDataset:
    """Load a TensorFlow Datasets builder as an :class:`AudioDataset` (``load("tfds:NAME")``).

    TFDS downloads and checks the data (``download_and_prepare``) into ``data_dir`` or its usual
    folder; the builder's splits are used where it has them (validation: ``validation``,
    ``valid``, ``dev`` or ``val``; test: ``test``), and a missing one is carved from train,
    seeded and stratified by class.

    Args:
        builder_name: the TFDS builder (``"gtzan"``; TFDS's ``"name/config:version"`` works).
        data_dir: the TFDS data folder (``None``: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
        config: the builder config (e.g. ``"gansynth_subset"`` for ``nsynth``).
        train_split: TFDS split string for train (slices such as ``"train[:10%]"`` work).
        validation_split: TFDS split for validation (``None``: the builder's own, else carved).
        test_split: TFDS split for test (``None``: the builder's ``test``, else carved).
        validation_fraction: share carved for validation when the builder has none.
        test_fraction: share carved for test when the builder has none.
        audio_key: the audio feature (``None``: the only one, or ``audio``).
        label_key: the class-label feature, ``a/b`` for nested ones (``None``: ``label``, or
            the only one). A ``Sequence(ClassLabel)`` gives multi-hot labels.
        sample_rate: the clips' rate when the builder's Audio feature does not state it.
        download: let TFDS download and prepare the data when it is not there yet.
        max_memory_gb: stop with an error before the in-memory clips exceed this.
        seed: seed of the carved splits.

    Returns:
        :class:`AudioDataset` named ``tfds:NAME``; class names from the ClassLabel;
        ``sample_rate_hint`` the native rate; ``meta``: ``id``, ``tfds_split``, ``index`` and the
        builder's top-level scalar features (e.g. ``speaker_id``).

    Raises:
        TFDSMissingError: tensorflow-datasets is not installed.
        TFDSError: unknown builder or config, no audio or label feature, a failed download, an
            unknown split, or the memory limit reached.
        ValueError: a bad option value.

    Example:
        >>> ds = load_tfds("spoken_digit", validation_fraction=0.2)  # doctest: +SKIP
    """
    name = f"{TFDS_PREFIX}{builder_name}"
    vf, tf_, seed, sample_rate, budget = _check_options(
        name, validation_fraction, test_fraction, seed, sample_rate, max_memory_gb
    )
    tfds = import_tfds(name)
    builder = _builder(tfds, name, builder_name, config, data_dir)
    apath, afeat, lpath, lfeat, multi = pick_features(
        tfds, name, builder.info.features, audio_key, label_key
    )
    rate = _native_rate(name, afeat, sample_rate)
    classes = list(lfeat.feature.names if multi else lfeat.names)
    _prepare_builder(builder, name, bool(download))
    chosen = resolve_splits(
        name, list(builder.info.splits), train_split, validation_split, test_split
    )
    left = [budget * 1e9]
    feats = (apath, lpath, len(classes), multi)
    splits = {
        role: read_split(tfds, builder, name, split, feats, rate, left) if split else []
        for role, split in chosen.items()
    }
    carved = _carve(splits, chosen, vf, tf_, seed)
    given = [f"{r} = TFDS {s!r}" for r, s in chosen.items() if s]
    options = {
        "config": config,
        "train_split": train_split,
        "validation_split": validation_split,
        "test_split": test_split,
        "audio_key": "/".join(apath),
        "label_key": "/".join(lpath),
        "seed": seed,
    }
    return AudioDataset(
        name=name,
        class_names=classes,
        multi_label=multi,
        sample_rate_hint=rate,
        splits=splits,
        info={
            "data_dir": str(builder.data_dir),
            "protocol": "; ".join(given + carved),
            "options": options,
            "tfds": {"builder": builder.name, "version": str(builder.version), "splits": chosen},
        },
    )
