"""Cached feature pipeline: dataset -> quaternion features on disk -> ``tf.data``.

:func:`prepare` decodes every split of a dataset once, computes the 4-component quaternion features
``[frames, mels, 4]`` = (log-mel, Δ, Δ², Δ³) of every clip once and stores them as ``.npy`` files
in a cache folder keyed by everything that determines them (dataset, its options and files, sample
rate, clip length, feature configuration). Later runs memory-map the cached arrays instead of
decoding audio again. :meth:`PreparedData.tf_dataset` turns a split into a shuffled, batched,
prefetched ``tf.data.Dataset`` with optional SpecAugment-style masking and mixup; real models
(input channels 1) get the log-mel component alone.

Cache layout (``cache_dir`` defaults to ``$KQ_CACHE_DIR`` or ``~/.cache/keras_quaternion``)::

    <cache_dir>/features/<dataset>/<key>/
        manifest.json                 # written last: its presence marks a complete cache
        train_features.npy            # float32 [N, frames, mels, 4]
        train_labels.npy              # int64 [N] or float32 multi-hot [N, classes]
        validation_*.npy, test_*.npy

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written cache behind, and concurrent
processes (e.g. the workers of a multi-worker job on one machine) can share a cache folder. The
temporary files of a killed run are removed by the next run that uses the same cache folder
(:func:`keras_quaternion.files.sweep_temp_files`), and a cache folder that cannot be written is
reported before any audio is decoded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_quaternion.features import FeatureConfig, change_level
from keras_quaternion.files import (
    atomic_path,
    atomic_write,
    publish,
    sweep_temp_files,
    temporary_file,
)
from keras_quaternion.training.recipe import MAX_FREQ_WARP, MAX_TIME_SHIFT

__all__ = [
    "CACHE_ENV",
    "DATASET_DEFAULTS",
    "PreparedData",
    "build_cache",
    "dataset_defaults",
    "default_cache_dir",
    "feature_config_for",
    "prepare",
]

#: Environment variable overriding the default cache folder.
CACHE_ENV = "KQ_CACHE_DIR"

#: Bump when the cache's content or layout changes for the same inputs.
PIPELINE_VERSION = 1
#: seconds a temporary file in the cache must be left unmodified before a sweep removes it
#: (besides its lock being free): the cache is shared by concurrent processes
CONCURRENT_TEMP_AGE = 2.0

#: Default ``(sample_rate, clip_seconds)`` per dataset; ``None`` clip = measured from the data.
DATASET_DEFAULTS: dict[str, tuple[int, float | None]] = {
    "synthetic": (16000, 1.0),
    "fsdd": (8000, 1.0),
    "speech_commands": (16000, 1.0),
    "esc50": (32000, 5.0),
    "gtzan": (32000, 30.0),
    "urbansound8k": (32000, 4.0),
    "ravdess": (32000, 4.0),
    "audioset": (32000, 10.0),
    "folder": (16000, None),
    "csv": (16000, None),
}

#: Longest clip chosen automatically when a dataset has no default clip length (seconds).
MAX_AUTO_CLIP_SECONDS = 30.0

#: Percentile of the clip durations that is the clip length when a dataset has no default.
AUTO_CLIP_PERCENTILE = 95

SPLITS = ("train", "validation", "test")


def default_cache_dir() -> Path:
    """The feature cache folder: ``$KQ_CACHE_DIR`` if set, else ``~/.cache/keras_quaternion``.

    Returns:
        The folder, with ``~`` expanded (it is not created here).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {CACHE_ENV: "~/kq_features"}):
        ...     default_cache_dir() == Path.home() / "kq_features"
        True
        >>> with mock.patch.dict(os.environ):
        ...     _ = os.environ.pop(CACHE_ENV, None)
        ...     default_cache_dir() == Path.home() / ".cache" / "keras_quaternion"
        True
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/keras_quaternion").expanduser()


def dataset_defaults(name: str) -> tuple[int, float | None]:
    """Default ``(sample_rate, clip_seconds)`` of a dataset.

    Known datasets use :data:`DATASET_DEFAULTS` (synthetic 16 kHz 1 s, fsdd 8 kHz 1 s,
    speech_commands 16 kHz 1 s, esc50 / gtzan / urbansound8k / ravdess 32 kHz at their native
    clip length 5 / 30 / 4 / 4 s, audioset 32 kHz 10 s). Others (``folder``, ``csv``, registered
    loaders) default to 16 kHz with ``clip_seconds=None``: :func:`prepare` then uses the 95th
    percentile of the clip durations (at most 30 s), so that a few long files do not lengthen
    every clip; it warns naming the longer clips, which are cropped.

    Args:
        name: a dataset name.

    Returns:
        ``(sample_rate, clip_seconds)``.

    Example:
        >>> dataset_defaults("fsdd")
        (8000, 1.0)
    """
    return DATASET_DEFAULTS.get(name, (16000, None))


def feature_config_for(sample_rate: int, n_mels: int = 64) -> FeatureConfig:
    """The default quaternion feature configuration for a sample rate.

    A 32 ms window rounded to the nearest power of two (``n_fft``), a 10 ms hop, ``fmin = 50`` Hz
    and ``fmax = min(14000, sample_rate / 2)``. At 32 kHz this is exactly PANNs' front end
    (``n_fft=1024, hop_length=320, fmin=50, fmax=14000``).

    Args:
        sample_rate: Hz, an integer in 1000..768000.
        n_mels: mel bands (>= 1).

    Returns:
        :class:`keras_quaternion.features.FeatureConfig`.

    Raises:
        ValueError: ``sample_rate`` or ``n_mels`` is not a positive integer in range.

    Example:
        >>> feature_config_for(32000) == FeatureConfig()
        True
        >>> cfg = feature_config_for(8000)
        >>> cfg.n_fft, cfg.hop_length, cfg.fmax
        (256, 80, 4000.0)
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}.")
    if not 1000 <= int(sample_rate) <= 768_000:
        raise ValueError(f"sample_rate must be in 1000..768000 Hz, got {sample_rate}.")
    if isinstance(n_mels, bool) or not isinstance(n_mels, int | np.integer) or n_mels < 1:
        raise ValueError(f"n_mels must be a positive integer, got {n_mels!r}.")
    sr = int(sample_rate)
    n_fft = 2 ** int(round(math.log2(0.032 * sr)))
    hop = max(1, int(round(0.010 * sr)))
    return FeatureConfig(
        sample_rate=sr,
        n_fft=n_fft,
        hop_length=hop,
        n_mels=int(n_mels),
        fmin=50.0,
        fmax=float(min(14000.0, sr / 2)),
    )


# --------------------------------------------------------------------------- PreparedData


@dataclasses.dataclass
class PreparedData:
    """Quaternion features and labels of every split, ready for training.

    Created by :func:`prepare` (from the on-disk cache, memory-mapped) or
    :meth:`from_arrays` (in-memory arrays, e.g. in tests).

    Attributes:
        dataset: dataset name.
        class_names: one name per class.
        multi_label: labels are multi-hot (scored by mAP) instead of class indices (accuracy).
        feature_config: the :class:`~keras_quaternion.features.FeatureConfig` used.
        clip_seconds: clip length every example was padded/cropped to.
        features: ``{split: float32 [N, frames, mels, 4]}`` (memory-mapped when cached).
        labels: ``{split: int64 [N]}`` or ``{split: float32 [N, classes]}``.
        cache_path: the cache folder, or ``None`` for in-memory data.
        info: provenance: ``options``, ``data_dir``, ``protocol``, ``skipped`` files per split.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((6, 20, 16, 4), "float32")
        >>> data = PreparedData.from_arrays(
        ...     {"train": (x, np.arange(6) % 2), "validation": (x[:2], [0, 1]),
        ...      "test": (x[:2], [1, 0])}, class_names=["a", "b"])
        >>> data.frames, data.n_mels, data.num_classes, data.input_shape(channels=1)
        (20, 16, 2, (20, 16, 1))
        >>> xb, yb = next(iter(data.tf_dataset("train", batch_size=4, channels=1)))
        >>> tuple(xb.shape), tuple(yb.shape)
        ((4, 20, 16, 1), (4,))
    """

    dataset: str
    class_names: list[str]
    multi_label: bool
    feature_config: FeatureConfig
    clip_seconds: float
    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    cache_path: Path | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for split in SPLITS:
            if split not in self.features or split not in self.labels:
                raise ValueError(
                    f"PreparedData '{self.dataset}': split {split!r} is missing; features and "
                    f"labels need all of {SPLITS} (a split may be empty)."
                )
        shapes = {s: tuple(self.features[s].shape[1:]) for s in SPLITS if len(self.features[s])}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"PreparedData '{self.dataset}': splits have different feature shapes {shapes}."
            )
        for split in SPLITS:
            f, y = self.features[split], self.labels[split]
            if f.ndim != 4 or f.shape[-1] not in (1, 4):
                raise ValueError(
                    f"PreparedData '{self.dataset}': {split} features must be [N, frames, mels, 4]"
                    f" (quaternion features) or [N, frames, mels, 1] (log-mel only), got shape "
                    f"{f.shape}."
                )
            if len(f) != len(y):
                raise ValueError(
                    f"PreparedData '{self.dataset}': {split} has {len(f)} feature rows but "
                    f"{len(y)} labels."
                )
            want_ndim = 2 if self.multi_label else 1
            if y.ndim != want_ndim or (self.multi_label and y.shape[1] != self.num_classes):
                kind = f"[N, {self.num_classes}] multi-hot" if self.multi_label else "[N] indices"
                raise ValueError(
                    f"PreparedData '{self.dataset}': {split} labels must be {kind}, got shape "
                    f"{y.shape}."
                )

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        splits: Mapping[str, tuple[Any, Any]],
        *,
        class_names: list[str],
        multi_label: bool = False,
        feature_config: FeatureConfig | None = None,
        clip_seconds: float = 1.0,
        dataset: str = "arrays",
    ) -> PreparedData:
        """Wrap in-memory features and labels (no cache, no decoding).

        Args:
            splits: ``{"train": (features, labels), "validation": ..., "test": ...}``; features
                ``[N, frames, mels, 4]``, labels ``[N]`` indices or ``[N, classes]`` multi-hot.
                Missing splits are empty.
            class_names: one name per class.
            multi_label: multi-hot labels.
            feature_config: the configuration the features were computed with (default:
                :func:`feature_config_for` at 16 kHz with the features' mel count).
            clip_seconds: clip length, informational.
            dataset: a name for messages and ``metrics.json``.

        Raises:
            ValueError: unknown split names or inconsistent shapes.
        """
        unknown = set(splits) - set(SPLITS)
        if unknown:
            raise ValueError(
                f"PreparedData.from_arrays: unknown split(s) {sorted(unknown)}; use {SPLITS}."
            )
        first = next((np.asarray(f) for f, _ in splits.values() if len(f)), None)
        if first is None:
            raise ValueError("PreparedData.from_arrays: every split is empty.")
        ldtype = np.float32 if multi_label else np.int64
        features, labels = {}, {}
        for split in SPLITS:
            if split in splits:
                f, y = splits[split]
                features[split] = np.asarray(f, dtype=np.float32)
                labels[split] = np.asarray(y, dtype=ldtype)
            else:
                features[split] = np.zeros((0, *first.shape[1:]), np.float32)
                shape = (0, len(class_names)) if multi_label else (0,)
                labels[split] = np.zeros(shape, ldtype)
        if feature_config is None:
            feature_config = feature_config_for(16000, n_mels=int(first.shape[2]))
        return cls(
            dataset=dataset,
            class_names=list(class_names),
            multi_label=bool(multi_label),
            feature_config=feature_config,
            clip_seconds=float(clip_seconds),
            features=features,
            labels=labels,
            cache_path=None,
            info={},
        )

    # -- shapes -------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def sample_rate(self) -> int:
        """Sample rate of the audio the features were computed from (Hz)."""
        return self.feature_config.sample_rate

    @property
    def frames(self) -> int:
        """Frames per clip."""
        return int(self._any_features().shape[1])

    @property
    def n_mels(self) -> int:
        """Mel bands."""
        return int(self._any_features().shape[2])

    def _any_features(self) -> np.ndarray:
        for split in SPLITS:
            if len(self.features[split]):
                return self.features[split]
        return self.features["train"]

    @property
    def stored_channels(self) -> int:
        """4 when the features hold (log-mel, Δ, Δ², Δ³); 1 for a log-mel-only cache
        (``cache_format="logmel16"``), whose quaternion models compute the deltas in the model
        (:class:`~keras_quaternion.layers.deltas.QuaternionDeltas`)."""
        return int(self._any_features().shape[-1])

    @property
    def log_mel_only(self) -> bool:
        """Whether the features are log-mel alone (models must compute Δ, Δ², Δ³ themselves)."""
        return self.stored_channels == 1

    def sizes(self) -> dict[str, int]:
        """Examples per split, e.g. ``{"train": 800, "validation": 100, "test": 100}``."""
        return {s: int(len(self.labels[s])) for s in SPLITS}

    def input_shape(self, channels: int = 4) -> tuple[int, int, int]:
        """``(frames, mels, channels)``: a model's input shape for this data.

        Raises:
            ValueError: ``channels`` is not 1 or 4.
        """
        _check_channels(channels)
        return (self.frames, self.n_mels, int(channels))

    def arrays(self, split: str, channels: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """``(features, labels)`` of a split as numpy; ``channels=1`` keeps the log-mel only.

        Raises:
            ValueError: unknown split or ``channels`` not 1 or 4.
        """
        self._check_split(split)
        _check_channels(channels)
        self._check_stored(channels)
        x = self.features[split]
        if channels == 1 and self.stored_channels == 4:
            x = x[..., :1]
        return x, self.labels[split]

    def _check_stored(self, channels: int) -> None:
        if channels == 4 and self.stored_channels == 1:
            raise ValueError(
                f"PreparedData '{self.dataset}' holds log-mel only (a 'logmel16' cache), not the "
                "4 quaternion channels: give the model [frames, mels, 1] input starting with "
                "QuaternionDeltas (kq-train and build_by_name do so for a quaternion model), or "
                "prepare the data with cache_format='float32' (--cache-format float32)."
            )

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(
                f"PreparedData '{self.dataset}': unknown split {split!r}; choose one of "
                f"{list(SPLITS)}."
            )

    # -- tf.data ------------------------------------------------------------------------------

    def tf_dataset(
        self,
        split: str,
        batch_size: int,
        channels: int = 4,
        shuffle: bool | None = None,
        seed: int = 0,
        spec_augment: bool = False,
        mixup: float = 0.0,
        *,
        one_hot: bool = False,
        epoch: int = 0,
        drop_remainder: bool = False,
        gain_db: float = 0.0,
        freq_warp: float = 0.0,
        time_shift: float = 0.0,
        worker: tuple[int, int] | None = None,
    ):
        """A batched ``tf.data.Dataset`` of ``(features, labels)`` for one split.

        Examples are gathered from the (memory-mapped) arrays batch by batch, so the split need not
        fit in memory. Augmentation is deterministic given ``seed`` and ``epoch``.

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            batch_size: examples per batch (the global batch under a distribution strategy).
            channels: ``4`` for quaternion models (log-mel, Δ, Δ², Δ³); ``1`` for real models
                (log-mel only).
            shuffle: shuffle the examples (default: ``True`` for ``"train"`` only).
            seed: seed of the shuffle order and the augmentation.
            spec_augment: SpecAugment-style masking: per example two time stripes (up to 6.4 % of
                the frames each, PANNs' 64 of 1001) and two mel stripes (up to 1/8 of the bands),
                filled with the example's mean of each component.
            mixup: mixup ``alpha`` (``0`` = off): each example is mixed with the example at the
                mirrored position of the batch, ``x = lam * x + (1 - lam) * x'`` with ``lam ~
                Beta(alpha, alpha)``, and the labels alike; labels become one-hot floats.
            one_hot: return single-label labels one-hot ``float32 [B, classes]`` (implied by
                ``mixup > 0``); the training loop uses it for every split when mixup is on.
            epoch: changes the shuffle order and augmentation draws per epoch.
            drop_remainder: drop the last partial batch.
            gain_db: random level changes (``0`` = off): each example's log-mel component
                (channel 0, in dB) moves by an offset drawn uniformly from
                ``[-gain_db, gain_db]``, as if recorded louder or softer: cells at the -100 dB
                floor (digital silence, padding) stay there and none drops below it; the
                deltas do not change with the level.
            freq_warp: random frequency warping (``0`` = off), like vocal-tract-length
                perturbation: each example's mel axis is stretched by a factor drawn uniformly
                from ``[1 - freq_warp, 1 + freq_warp]`` (about the lowest band, by linear
                interpolation; the four components alike), then cut back to ``n_mels`` bands,
                the highest band repeated where a compressed spectrum ends early.
            time_shift: random time shift (``0`` = off): each example moves by up to
                ``time_shift`` of its frames, earlier or later, the first or last frame
                repeated into the frames it leaves.
            worker: ``(index, count)`` of this worker under a multi-worker strategy: the
                dataset then holds this worker's share only (whole shards of a sharded cache,
                every ``count``-th example otherwise), repeats without end (the shares may
                differ by a shard; the caller counts the steps) and is not auto-sharded again.
                ``None`` or a count of 1: every example, once.

        Returns:
            ``tf.data.Dataset`` yielding ``float32 [B, frames, mels, channels]`` and labels
            ``int64 [B]`` (``float32 [B, classes]`` when one-hot or multi-label).

        Raises:
            ValueError: unknown split, empty split, bad ``batch_size`` / ``channels`` /
                ``mixup`` / ``gain_db`` / ``freq_warp`` / ``time_shift``.
        """
        import tensorflow as tf

        self._check_split(split)
        _check_channels(channels)
        self._check_stored(channels)
        _check_batch_size(batch_size)
        mixup, gain_db, freq_warp, time_shift = _check_augmentation(
            mixup, gain_db, freq_warp, time_shift
        )
        n = len(self.labels[split])
        if n == 0:
            raise ValueError(
                f"PreparedData '{self.dataset}': the {split} split is empty; nothing to iterate."
            )
        shuffle = (split == "train") if shuffle is None else bool(shuffle)
        one_hot = bool(one_hot or mixup > 0) and not self.multi_label
        epoch_seed = _mix_seed(seed, epoch)
        own = _worker_rows(self.features[split], n, worker)
        ds = _example_order(n, own, shuffle, epoch_seed)
        ds = ds.batch(int(batch_size), drop_remainder=bool(drop_remainder) and n >= batch_size)
        ds = ds.map(
            self._batch_loader(split, channels, one_hot),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        augment = _augmenter(
            self.frames, self.n_mels, epoch_seed, spec_augment, mixup, gain_db, freq_warp,
            time_shift,
        )  # fmt: skip
        if augment is not None:
            ds = ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        options = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy
        options.experimental_distribute.auto_shard_policy = (
            policy.DATA if own is None else policy.OFF  # sharded by worker above
        )
        options.deterministic = True
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    def _batch_loader(self, split: str, channels: int, one_hot: bool):
        """The ``tf.data`` map from a batch of example indices to ``(features, labels)``."""
        import tensorflow as tf

        x, y = self.features[split], self.labels[split]
        frames, mels, classes = self.frames, self.n_mels, self.num_classes
        label_dtype = tf.float32 if self.multi_label else tf.int64
        label_shape = (None, classes) if self.multi_label else (None,)

        def gather(idx):
            rows = np.asarray(x[idx], dtype=np.float32)
            if channels == 1 and rows.shape[-1] != 1:
                rows = np.ascontiguousarray(rows[..., :1])
            return rows, np.asarray(y[idx])

        def load(idx):
            xb, yb = tf.numpy_function(gather, [idx], (tf.float32, label_dtype), stateful=False)
            xb = tf.ensure_shape(xb, (None, frames, mels, channels))
            yb = tf.ensure_shape(yb, label_shape)
            if one_hot:
                yb = tf.one_hot(yb, classes, dtype=tf.float32)
            return xb, yb

        return load

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"PreparedData(dataset={self.dataset!r}, classes={self.num_classes}, "
            f"multi_label={self.multi_label}, frames={self.frames}, mels={self.n_mels}, "
            f"sample_rate={self.sample_rate}, {sizes})"
        )


def _worker_rows(x, n: int, worker) -> np.ndarray | None:
    """This worker's example rows, or ``None`` for all of them (no worker, or a single one)."""
    if worker is None:
        return None
    index, count = (int(v) for v in worker)
    if not 0 <= index < count:
        raise ValueError(f"worker must be (index, count) with 0 <= index < count, got {worker!r}.")
    if count == 1:
        return None
    if hasattr(x, "worker_rows"):  # a sharded cache: whole shard files per worker
        return x.worker_rows(index, count)
    return np.arange(index, n, count, dtype=np.int64)


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")


def _example_order(n: int, own, shuffle: bool, epoch_seed: int):
    """The ``tf.data`` dataset of example indices: all ``n`` once, or a worker's ``own`` rows
    repeated without end (the caller counts the steps)."""
    import tensorflow as tf

    if own is None:
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=epoch_seed, reshuffle_each_iteration=False)
        return ds
    ds = tf.data.Dataset.from_tensor_slices(own)
    if shuffle:
        ds = ds.shuffle(len(own), seed=epoch_seed, reshuffle_each_iteration=True)
    return ds.repeat()


def _augmenter(frames, mels, epoch_seed, spec_augment, mixup, gain_db, freq_warp, time_shift):
    """The ``tf.data`` map ``(batch_index, (x, y)) -> (x, y)`` applying the augmentations in a
    fixed order, each with its own key from the epoch's seed and the batch index; ``None``
    when all are off."""
    import tensorflow as tf

    if not (spec_augment or mixup > 0 or gain_db > 0 or freq_warp > 0 or time_shift > 0):
        return None
    width_t = max(1, int(round(frames * 64 / 1001)))
    width_f = max(1, mels // 8)
    max_shift = int(round(frames * time_shift))

    def augment(batch_index, batch):
        xb, yb = batch
        key = tf.stack([tf.constant(epoch_seed, tf.int64), batch_index])
        if freq_warp > 0:
            xb = _freq_warp(xb, key + 3571, freq_warp)
        if max_shift > 0:
            xb = _time_shift(xb, key + 6151, max_shift)
        if gain_db > 0:
            xb = _gain(xb, key + 4241, gain_db)
        if spec_augment:
            xb = _spec_augment(xb, key, width_t, width_f)
        if mixup > 0:
            xb, yb = _mixup(xb, yb, key + 7919, mixup)
        return xb, yb

    return augment


def _check_channels(channels) -> None:
    if channels not in (1, 4) or isinstance(channels, bool):
        raise ValueError(
            f"channels must be 4 (quaternion models: log-mel, Δ, Δ², Δ³) or 1 (real models: "
            f"log-mel only), got {channels!r}."
        )


def _check_augmentation(mixup, gain_db, freq_warp, time_shift) -> tuple[float, ...]:
    """The augmentation amounts as floats; a ``ValueError`` naming the first one out of range."""
    mixup, gain_db = float(mixup), float(gain_db)
    freq_warp, time_shift = float(freq_warp), float(time_shift)
    if not (math.isfinite(mixup) and mixup >= 0):
        raise ValueError(f"mixup (the Beta alpha) must be >= 0, got {mixup!r}.")
    if not (math.isfinite(gain_db) and gain_db >= 0):
        raise ValueError(f"gain_db (the largest level change, dB) must be >= 0, got {gain_db!r}.")
    if not (0 <= freq_warp <= MAX_FREQ_WARP):
        raise ValueError(
            f"freq_warp (the largest stretch of the mel axis, a fraction) must be in "
            f"[0, {MAX_FREQ_WARP}], got {freq_warp!r}."
        )
    if not (0 <= time_shift <= MAX_TIME_SHIFT):
        raise ValueError(
            f"time_shift (the largest shift, a fraction of the frames) must be in "
            f"[0, {MAX_TIME_SHIFT}], got {time_shift!r}."
        )
    return mixup, gain_db, freq_warp, time_shift


def _mix_seed(seed: int, epoch: int) -> int:
    return int((int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2**31 - 1))


def _stripes(key, batch, length: int, max_width: int, count: int):
    """Boolean ``[batch, length]``: ``count`` random stripes of width ``0..max_width-1``."""
    import tensorflow as tf

    widths = tf.random.stateless_uniform(
        (batch, count), seed=key, minval=0, maxval=max_width, dtype=tf.int32
    )
    starts_u = tf.random.stateless_uniform((batch, count), seed=key + 1)
    starts = tf.cast(starts_u * tf.cast(length - widths + 1, tf.float32), tf.int32)
    pos = tf.range(length)[tf.newaxis, tf.newaxis, :]
    inside = (pos >= starts[..., tf.newaxis]) & (pos < (starts + widths)[..., tf.newaxis])
    return tf.reduce_any(inside, axis=1)


def _spec_augment(xb, key, width_t: int, width_f: int):
    import tensorflow as tf

    batch = tf.shape(xb)[0]
    frames, mels = xb.shape[1], xb.shape[2]
    time_mask = _stripes(key, batch, frames, width_t, 2)[:, :, tf.newaxis, tf.newaxis]
    freq_mask = _stripes(key + 101, batch, mels, width_f, 2)[:, tf.newaxis, :, tf.newaxis]
    fill = tf.reduce_mean(xb, axis=[1, 2], keepdims=True)
    return tf.where(time_mask | freq_mask, fill, xb)


def _gain(xb, key, gain_db: float):
    """Each example recorded up to ``gain_db`` dB louder or softer (:func:`change_level`), by an
    offset drawn uniformly from ``[-gain_db, gain_db]``."""
    import tensorflow as tf

    offset = tf.random.stateless_uniform(
        (tf.shape(xb)[0], 1, 1, 1), seed=key, minval=-gain_db, maxval=gain_db
    )
    return change_level(xb, offset)


def _freq_warp(xb, key, warp: float):
    """Stretch each example's mel axis by a factor uniform in ``[1 - warp, 1 + warp]``.

    Output band ``j`` reads the input at ``j / factor`` (linear interpolation, positions past
    the highest band clamped to it), so a factor above 1 moves the spectrum up (its top is cut
    off) and below 1 moves it down (the highest band is repeated above it).
    """
    import tensorflow as tf

    batch, mels = tf.shape(xb)[0], xb.shape[2]
    factor = tf.random.stateless_uniform((batch, 1), seed=key, minval=1.0 - warp, maxval=1.0 + warp)
    where = tf.minimum(tf.range(mels, dtype=tf.float32)[tf.newaxis, :] / factor, mels - 1.0)
    low = tf.cast(tf.floor(where), tf.int32)
    high = tf.minimum(low + 1, mels - 1)
    frac = tf.reshape(where - tf.floor(where), (batch, 1, mels, 1))
    below = tf.gather(xb, low, axis=2, batch_dims=1)
    above = tf.gather(xb, high, axis=2, batch_dims=1)
    return below + frac * (above - below)


def _time_shift(xb, key, max_shift: int):
    """Move each example by a whole number of frames in ``[-max_shift, max_shift]``.

    The frames it leaves take the nearest frame's values (the first or the last).
    """
    import tensorflow as tf

    batch, frames = tf.shape(xb)[0], xb.shape[1]
    shift = tf.random.stateless_uniform(
        (batch, 1), seed=key, minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32
    )
    source = tf.clip_by_value(tf.range(frames)[tf.newaxis, :] - shift, 0, frames - 1)
    return tf.gather(xb, source, axis=1, batch_dims=1)


def _mixup(xb, yb, key, alpha: float):
    import tensorflow as tf

    batch = tf.shape(xb)[0]
    g1 = tf.random.stateless_gamma((batch,), seed=key, alpha=alpha)
    g2 = tf.random.stateless_gamma((batch,), seed=key + 1, alpha=alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    lam_x = tf.reshape(lam, (-1, 1, 1, 1))
    lam_y = tf.reshape(lam, (-1, 1))
    xb = lam_x * xb + (1.0 - lam_x) * tf.reverse(xb, axis=[0])
    yb = tf.cast(yb, tf.float32)
    yb = lam_y * yb + (1.0 - lam_y) * tf.reverse(yb, axis=[0])
    return xb, yb


# --------------------------------------------------------------------------------- prepare


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        seq = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_json_safe(v) for v in seq]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _sha(payload) -> str:
    text = json.dumps(_json_safe(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(ds) -> str:
    """Hash of every split's example list: names, labels and file sizes / modification times."""
    from keras_quaternion.datasets import HDF5Source

    h = hashlib.sha256()
    stats: dict[str, str] = {}

    def stat(path: str) -> str:
        if path not in stats:
            try:
                st = os.stat(path)
                stats[path] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stats[path] = "missing"
        return stats[path]

    for split in SPLITS:
        h.update(f"|{split}|".encode())
        for ex in ds.splits[split]:
            src = ex.source
            if isinstance(src, str):
                where = f"{src}@{ex.offset}:{ex.duration}:{stat(src)}"
            elif isinstance(src, HDF5Source):
                where = f"{src}:{src.dataset}:{src.sample_rate}:{stat(src.path)}"
            else:  # in-memory waveform
                where = f"{ex.name}:{ex.sample_rate}:{src.shape[0]}"
            label = ex.label
            if isinstance(label, np.ndarray):
                label = np.flatnonzero(label > 0).tolist()
            h.update(f"{where}#{label}\n".encode())
    return h.hexdigest()


def _clip_durations(ds) -> list[tuple[float, str]]:
    """``(seconds, name)`` of every clip whose length the file header (or array) tells."""
    import soundfile as sf

    out = []
    for split in SPLITS:
        for ex in ds.splits[split]:
            src = ex.source
            try:
                if isinstance(src, str):
                    if ex.duration is not None:
                        seconds = float(ex.duration)
                    else:
                        info = sf.info(src)
                        seconds = info.frames / float(info.samplerate) - ex.offset
                elif isinstance(src, np.ndarray):
                    seconds = src.shape[0] / float(ex.sample_rate)
                else:
                    continue
            except Exception:  # unreadable files are reported when decoding
                continue
            out.append((seconds, ex.name))
    return out


def _measure_clip_seconds(ds) -> float:
    """Default clip length: the 95th percentile of the clip durations, up to 30 s.

    A percentile, not the longest clip, so that one long file among short ones does not
    lengthen every clip (and the compute) many times over. ``numpy``'s ``"lower"`` method picks
    a duration that occurs in the data, rounded up to 0.1 s. Clips longer than the result are
    cropped; a warning names them, longest first.
    """
    durations = _clip_durations(ds)
    if not durations or max(d for d, _ in durations) <= 0:
        return 1.0
    typical = float(np.percentile([d for d, _ in durations], AUTO_CLIP_PERCENTILE, method="lower"))
    clip = min(max(math.ceil(typical * 10 - 1e-9) / 10.0, 0.1), MAX_AUTO_CLIP_SECONDS)
    longer = sorted(((d, n) for d, n in durations if d > clip + 1e-9), reverse=True)
    if longer:
        shown = "; ".join(f"{n} ({d:.1f} s)" for d, n in longer[:10])
        more = f" and {len(longer) - 10} more" if len(longer) > 10 else ""
        warnings.warn(
            f"Dataset '{ds.name}': clips are cropped to {clip:g} s, the "
            f"{AUTO_CLIP_PERCENTILE}th percentile of the {len(durations)} clip durations (at most "
            f"{MAX_AUTO_CLIP_SECONDS:g} s); {len(longer)} longer clip(s) are cropped: "
            f"{shown}{more}. Pass clip_seconds (--clip-seconds) to choose the length.",
            UserWarning,
            stacklevel=3,
        )
    return clip


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def _compute_split(ds, split, config: FeatureConfig, clip_seconds, folder: Path, progress: bool):
    """Decode + featurize one split in chunks straight into a .npy memmap.

    Returns ``(skipped, kept)``: ``[(name, reason), ...]`` of the undecodable examples and the
    indices into ``ds.splits[split]`` of the others.
    """
    from tqdm.auto import tqdm

    examples = ds.splits[split]
    n = len(examples)
    samples = int(round(clip_seconds * config.sample_rate))
    shape = (config.num_frames(samples), config.n_mels, 4)
    final = folder / f"{split}_features.npy"
    with temporary_file(final) as tmp:  # locked: a concurrent sweep leaves it alone
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *shape))
        bar = tqdm(
            total=n,
            desc=f"{ds.name}/{split} features",
            unit="clip",
            disable=not progress or n == 0,
        )
        with bar:
            skipped, kept_labels = _featurize_into(out, ds, examples, config, clip_seconds, bar)
        out.flush()
        del out
        _publish_rows(tmp, final, len(kept_labels), n)
    labels = ds._stack_labels([examples[i] for i in kept_labels])
    _save_npy(folder / f"{split}_labels.npy", labels)
    return skipped, kept_labels


def _featurize_into(out, ds, examples, config, clip_seconds, bar):
    """Decode and featurize ``examples`` in chunks into the rows of ``out``, in order.

    Undecodable examples are skipped (their rows stay at the end, unused). Returns ``(skipped,
    kept)``: ``[(name, reason), ...]`` and the indices into ``examples`` of the rows written.
    """
    from keras_quaternion.features import quaternion_features

    samples = int(round(clip_seconds * config.sample_rate))
    chunk = max(1, min(256, int(128e6 // (samples * 4 * 6))))
    skipped: list[tuple[str, str]] = []
    kept_rows: list[int] = []
    chunks = ds.decode_chunks(
        examples,
        sample_rate=config.sample_rate,
        clip_seconds=clip_seconds,
        chunk=chunk,
        on_each=lambda: bar.update(1),
    )
    for start, waves, kept, bad in chunks:  # skipped files are reported once later
        skipped.extend(bad)
        if waves:
            row = len(kept_rows)
            out[row : row + len(waves)] = quaternion_features(np.stack(waves), config).numpy()
            kept_rows.extend(start + k for k in kept)
    return skipped, kept_rows


def _publish_rows(tmp: Path, final: Path, rows: int, n: int) -> None:
    """Publish the memmap ``tmp`` as ``final``, cut to its first ``rows`` of ``n`` rows."""
    if rows < n:  # some files were skipped: rewrite the array without the empty tail
        full = np.load(tmp, mmap_mode="r")
        _save_npy(final, np.asarray(full[:rows]))
        del full
    else:
        publish(tmp, final)


def prepare(
    dataset,
    data_dir: str | os.PathLike | None = None,
    *,
    sample_rate: int | None = None,
    clip_seconds: float | None = None,
    n_mels: int = 64,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    feature_config: FeatureConfig | None = None,
    cache_format: str = "float32",
    shard_size: int | None = None,
    workers: int = 1,
) -> PreparedData:
    """Decode a dataset once, compute its quaternion features once, cache them, memory-map them.

    The cache key covers the dataset name, its options, its folder and file list (names, labels,
    sizes, modification times), the sample rate, the clip length and the feature configuration;
    changing any of them computes a new cache, and an unchanged call reads the cache without
    decoding any audio. Generated datasets (``synthetic``) are not even regenerated.

    Args:
        dataset: a registry name (``"synthetic"``, ``"fsdd"``, ...; see
            :func:`keras_quaternion.datasets.names`) or an already loaded
            :class:`~keras_quaternion.datasets.AudioDataset`.
        data_dir: the dataset's folder (not used by ``synthetic``).
        sample_rate: Hz; default per dataset (:func:`dataset_defaults`).
        clip_seconds: every clip is zero-padded / cropped to this length; default per dataset
            (``None`` defaults: the 95th percentile of the clip durations, at most 30 s).
        n_mels: mel bands of the default feature configuration (:func:`feature_config_for`).
        seed: passed to the loader's ``seed`` option (validation carve) unless
            ``dataset_options`` sets it.
        cache_dir: cache folder (default ``$KQ_CACHE_DIR`` or ``~/.cache/keras_quaternion``).
        dataset_options: loader options (``{"fold": 1}``, ``{"split": "speaker"}``, ...).
        progress: show tqdm progress bars while computing.
        feature_config: use this configuration instead of :func:`feature_config_for`; its
            ``sample_rate`` wins over ``sample_rate``.
        cache_format: ``"float32"`` (the default: one ``.npy`` per split of float32
            ``[N, frames, mels, 4]`` quaternion features) or ``"logmel16"`` (float16 log-mel
            only, in shards of ``shard_size`` clips, 8x smaller; quaternion models then compute
            Δ, Δ², Δ³ in the model, see :mod:`keras_quaternion.training.shards`).
        shard_size: clips per shard of a ``"logmel16"`` cache (default
            :data:`~keras_quaternion.training.shards.DEFAULT_SHARD_SIZE`); part of the cache key.
        workers: processes that build the missing shards of a ``"logmel16"`` cache.

    Returns:
        :class:`PreparedData` with memory-mapped features of every split (``[N, frames, mels,
        1]`` float16 log-mel for ``"logmel16"``).

    Raises:
        ValueError: unknown dataset or option, bad sample rate / clip length / mel count, a
            clip too short for the feature window, or a dataset whose train split ends up empty.
        TypeError: ``dataset`` is neither a name nor an ``AudioDataset``, or ``feature_config``
            is not a :class:`~keras_quaternion.features.FeatureConfig`.
        keras_quaternion.datasets.DatasetLayoutError: missing or wrongly laid out ``data_dir``,
            or a class none of whose training files could be decoded.
        keras_quaternion.outdir.NotWritableError: the features must be computed and the cache
            folder cannot be created or written (raised before any audio is decoded).

    Warns:
        UserWarning: once, naming the files that could not be decoded and were skipped; and,
            when ``clip_seconds`` defaults to a percentile of the durations, naming the longer
            clips that are cropped.

    Example:
        >>> data = prepare("synthetic", dataset_options={"samples_per_class": 10},
        ...                cache_dir="cache", progress=False)
        >>> data.sizes(), data.features["train"].shape
        ({'train': 80, 'validation': 10, 'test': 10}, (80, 101, 64, 4))
    """
    where = _locate(
        dataset,
        data_dir,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        n_mels=n_mels,
        seed=seed,
        cache_dir=cache_dir,
        dataset_options=dataset_options,
        feature_config=feature_config,
        cache_format=cache_format,
        shard_size=shard_size,
    )
    if where.cached is not None:
        return where.cached
    if not where.ds.splits["train"]:
        raise ValueError(f"Dataset '{where.name}': the train split is empty; nothing to train on.")
    if where.cache_format == "logmel16":
        from keras_quaternion.training import shards as kq_shards

        _make_cache_folder(where.folder, kq_shards.ABANDONED_TEMP_AGE)
        kq_shards.build_shards(
            where.ds, where.folder, where.plan(), workers=workers, progress=progress
        )
        return kq_shards.load_sharded(where.folder)
    return _build_float32(where, progress)


def _build_float32(where: _Located, progress: bool) -> PreparedData:
    """Compute every split into ``where.folder``, then write its manifest (last: it marks the
    cache complete) and read the cache back."""
    ds, folder = where.ds, where.folder
    _make_cache_folder(folder)
    started = time.time()
    skipped: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        skipped[split], kept = _compute_split(
            ds, split, where.config, where.clip_seconds, folder, progress
        )
        if split == "train":  # a class with no decodable example is as bad as an empty folder
            ds.check_decoded_classes(split, kept, skipped[split])
    _warn_skipped(where, skipped)
    manifest = {
        "pipeline": PIPELINE_VERSION,
        "dataset": where.name,
        "class_names": list(ds.class_names),
        "multi_label": bool(ds.multi_label),
        "feature_config": where.config.to_dict(),
        "clip_seconds": where.clip_seconds,
        "options": _json_safe(where.options),
        "data_dir": where.data_dir,
        "protocol": ds.info.get("protocol", ""),
        "skipped": {s: [list(item) for item in skipped[s]] for s in SPLITS},
        "seconds": round(time.time() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write(folder / "manifest.json", json.dumps(manifest, indent=1))
    sweep_temp_files(folder, min_age=CONCURRENT_TEMP_AGE)
    loaded = _load_cache(folder)
    if loaded is None:  # pragma: no cover - we just wrote it
        raise RuntimeError(f"The feature cache in {folder} could not be read back.")
    return loaded


def _warn_skipped(where: _Located, skipped: dict[str, list[tuple[str, str]]]) -> None:
    """One warning naming (up to ten of) the files that could not be decoded."""
    all_skipped = [item for split in SPLITS for item in skipped[split]]
    if not all_skipped:
        return
    total = sum(len(where.ds.splits[s]) for s in SPLITS)
    shown = "; ".join(f"{n_} ({r})" for n_, r in all_skipped[:10])
    more = f" and {len(all_skipped) - 10} more" if len(all_skipped) > 10 else ""
    warnings.warn(
        f"Dataset '{where.name}': skipped {len(all_skipped)} of {total} audio files that could "
        f"not be decoded: {shown}{more}. The list is kept in {where.folder / 'manifest.json'}.",
        UserWarning,
        stacklevel=4,
    )


@dataclasses.dataclass
class _Located:
    """Where a dataset's cache is (and, when it is not complete, what builds it)."""

    cached: PreparedData | None = None
    ds: Any = None
    name: str = ""
    folder: Path | None = None
    config: FeatureConfig | None = None
    options: dict | None = None
    data_dir: str | None = None
    clip_seconds: float = 0.0
    cache_format: str = "float32"
    shard_size: int = 0

    def plan(self) -> dict:
        """The shard plan of a ``"logmel16"`` cache."""
        from keras_quaternion.training.shards import make_plan

        extra = {"options": _json_safe(self.options), "data_dir": self.data_dir}
        return make_plan(self.ds, self.config, self.clip_seconds, self.shard_size, extra)


def _check_format(cache_format, shard_size) -> tuple[str, int]:
    from keras_quaternion.training.shards import CACHE_FORMATS, DEFAULT_SHARD_SIZE

    if cache_format not in CACHE_FORMATS:
        raise ValueError(
            f"cache_format must be one of {list(CACHE_FORMATS)}, got {cache_format!r}."
        )
    size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"shard_size must be a positive integer of clips, got {shard_size!r}.")
    return cache_format, int(size)


def _load_any(folder: Path, cache_format: str) -> PreparedData | None:
    """A complete cache of either format in ``folder``, or ``None``."""
    if cache_format == "float32":
        return _load_cache(folder)
    if not (folder / "manifest.json").is_file():
        return None
    from keras_quaternion.training.shards import ShardError, load_sharded

    try:
        return load_sharded(folder)
    except ShardError as err:
        warnings.warn(f"{err}\nRebuilding the damaged shards.", UserWarning, stacklevel=3)
        (folder / "manifest.json").unlink(missing_ok=True)
        return None


def _locate(
    dataset,
    data_dir,
    *,
    sample_rate,
    clip_seconds,
    n_mels,
    seed,
    cache_dir,
    dataset_options,
    feature_config,
    cache_format,
    shard_size,
) -> _Located:
    """Resolve a :func:`prepare` call: the dataset, its settings and its cache folder.

    The steps: name the dataset and its options (:func:`_dataset_options`), choose the
    features (:func:`_features`) and the clip length (:func:`_clip_length`), then look for the
    cache, first by the settings alone for a generated dataset (no need to generate it to find
    its cache), else by the loaded dataset's files (:func:`_cache_folder`).
    """
    name, generated, options = _dataset_options(dataset, dataset_options, seed)
    default_sr, default_clip = dataset_defaults(name)
    config = _features(feature_config, default_sr if sample_rate is None else sample_rate, n_mels)
    clip_seconds = _clip_length(default_clip if clip_seconds is None else clip_seconds)
    if generated:
        options = _generator_options(dataset, options, config, clip_seconds)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    resolved_dir = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    cache_format, shard_size = _check_format(cache_format, shard_size)
    base = _cache_key(name, options, resolved_dir, config, cache_format, shard_size)
    if generated and clip_seconds is not None:
        folder = root / "features" / name / _sha({**base, "clip": clip_seconds})[:20]
        cached = _load_any(folder, cache_format)
        if cached is not None:
            return _Located(cached=cached)
    ds = _load_dataset(dataset, name, data_dir, options, base)
    if clip_seconds is None:
        clip_seconds = _measure_clip_seconds(ds)
    _check_long_enough(clip_seconds, config)
    key = {**base, "clip": clip_seconds}
    if not generated:
        key["fingerprint"] = _fingerprint(ds)
    folder = root / "features" / name / _sha(key)[:20]
    cached = _load_any(folder, cache_format)
    if cached is not None:
        return _Located(cached=cached)
    return _Located(
        ds=ds,
        name=name,
        folder=folder,
        config=config,
        options=options,
        data_dir=resolved_dir,
        clip_seconds=clip_seconds,
        cache_format=cache_format,
        shard_size=shard_size,
    )


def _dataset_options(dataset, dataset_options, seed) -> tuple[str, bool, dict]:
    """``(name, generated, options)`` of a dataset name or :class:`AudioDataset`.

    A generated dataset that takes a ``seed`` gets :func:`prepare`'s unless its options set one.
    """
    from keras_quaternion import datasets as kq_datasets

    options = dict(dataset_options or {})
    if isinstance(dataset, kq_datasets.AudioDataset):
        return dataset.name, False, options
    if not isinstance(dataset, str):
        raise TypeError(
            f"prepare: dataset must be a dataset name (one of {kq_datasets.names()}) or an "
            f"AudioDataset, got {type(dataset).__name__}."
        )
    spec = kq_datasets.spec(dataset)  # ValueError listing known names
    if "seed" in spec.options and "seed" not in options:
        options["seed"] = int(seed)
    return dataset, not spec.needs_data_dir, options


def _generator_options(dataset: str, options: dict, config, clip_seconds) -> dict:
    """A generated dataset's full option set, made at the pipeline's rate and clip length.

    Nothing is resampled or cropped, and the defaults are part of the cache key.
    """
    from keras_quaternion import datasets as kq_datasets

    allowed = kq_datasets.spec(dataset).options
    options = dict(options)
    if "sample_rate" in allowed and "sample_rate" not in options:
        options["sample_rate"] = config.sample_rate
    if "clip_seconds" in allowed and "clip_seconds" not in options and clip_seconds:
        options["clip_seconds"] = clip_seconds
    return {**allowed, **options}


def _features(feature_config, sample_rate: int, n_mels: int) -> FeatureConfig:
    """The given :class:`FeatureConfig`, or the pipeline's for the rate and mel count."""
    if feature_config is None:
        return feature_config_for(sample_rate, n_mels)
    if not isinstance(feature_config, FeatureConfig):
        raise TypeError(
            f"prepare: feature_config must be a FeatureConfig, got {type(feature_config).__name__}."
        )
    return feature_config


def _clip_length(clip_seconds) -> float | None:
    """``clip_seconds`` as a positive float, or ``None`` (measured from the data later)."""
    if clip_seconds is None:
        return None
    try:
        value = float(clip_seconds)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"clip_seconds must be a positive number of seconds, got {value!r}.")
    return value


def _cache_key(name, options, data_dir, config, cache_format: str, shard_size: int) -> dict:
    """The settings a cache folder's name is a hash of (the clip length comes later)."""
    base = {
        "pipeline": PIPELINE_VERSION,
        "dataset": name,
        "options": options,
        "data_dir": data_dir,
        "features": config.cache_key(),
        "sample_rate": config.sample_rate,
    }
    if cache_format != "float32":  # the float32 cache keeps the keys it always had
        base.update(format=cache_format, shard_size=shard_size)
    return base


def _load_dataset(dataset, name: str, data_dir, options: dict, key: dict):
    """The :class:`AudioDataset`: loaded by name, or the given one (its ``info`` joins ``key``)."""
    from keras_quaternion import datasets as kq_datasets

    if isinstance(dataset, str):
        return kq_datasets.load(name, data_dir, **options)
    key["info"] = dataset.info
    return dataset


def _check_long_enough(clip_seconds: float, config: FeatureConfig) -> None:
    samples = int(round(clip_seconds * config.sample_rate))
    if samples < config.min_num_samples():
        raise ValueError(
            f"clip_seconds={clip_seconds:g} gives {samples} samples at {config.sample_rate} Hz, "
            f"fewer than the {config.min_num_samples()} the features need "
            f"({config.delta_width} frames for the delta window); use a longer clip."
        )


def build_cache(
    dataset,
    data_dir: str | os.PathLike | None = None,
    *,
    shards: str | None = None,
    workers: int = 1,
    shard_size: int | None = None,
    progress: bool = True,
    **kwargs,
) -> dict:
    """Build all or a range of the shards of a ``"logmel16"`` cache (``kq-data prepare``).

    Several machines sharing the cache folder can each build one range (``shards="0:40"``,
    ``"40:80"``...); whoever completes the last shard writes the manifest, and
    :func:`prepare` with the same arguments and ``cache_format="logmel16"`` then reads the cache.

    Args:
        dataset, data_dir: as :func:`prepare`.
        shards: ``"A:B"`` (shard numbers A to B-1 of the plan), ``"A"`` or ``None`` (all).
        workers: worker processes (each with one TensorFlow thread).
        shard_size: clips per shard (default
            :data:`~keras_quaternion.training.shards.DEFAULT_SHARD_SIZE`).
        progress: a progress bar over shards.
        **kwargs: the other :func:`prepare` arguments (``sample_rate``, ``clip_seconds``,
            ``n_mels``, ``seed``, ``cache_dir``, ``dataset_options``, ``feature_config``).

    Returns:
        ``{"folder", "shards" (total), "range", "built", "kept", "rebuilt", "results",
        "complete"}``.

    Example:
        >>> report = build_cache("synthetic", dataset_options={"samples_per_class": 4},
        ...                      shard_size=16, shards="0:2", cache_dir="cache", progress=False)
        >>> report["shards"], report["built"], report["complete"]
        (4, ['train-00000', 'train-00001'], False)
    """
    from keras_quaternion.training import shards as kq_shards

    where = _locate(
        dataset,
        data_dir,
        cache_format="logmel16",
        shard_size=shard_size,
        **{
            k: kwargs.get(k)
            for k in (
                "sample_rate",
                "clip_seconds",
                "cache_dir",
                "dataset_options",
                "feature_config",
            )
        },
        n_mels=kwargs.get("n_mels", 64),
        seed=kwargs.get("seed", 0),
    )
    if where.cached is not None:
        total = sum(len(p.parts) for p in where.cached.features.values())
        return {
            "folder": where.cached.cache_path,
            "shards": total,
            "range": kq_shards.parse_shard_range(shards, total),  # still check the range
            "built": [],
            "kept": [],
            "rebuilt": {},
            "results": [],
            "complete": True,
        }
    if not where.ds.splits["train"]:
        raise ValueError(f"Dataset '{where.name}': the train split is empty; nothing to train on.")
    _make_cache_folder(where.folder, kq_shards.ABANDONED_TEMP_AGE)
    plan = where.plan()
    chosen = kq_shards.parse_shard_range(shards, len(plan["shards"]))
    report = kq_shards.build_shards(
        where.ds, where.folder, plan, shard_range=chosen, workers=workers, progress=progress
    )
    return {"folder": where.folder, "shards": len(plan["shards"]), "range": chosen, **report}


def _make_cache_folder(folder: Path, min_age: float = CONCURRENT_TEMP_AGE) -> None:
    """Create the cache folder before featurising anything, or say in one line why not; clear
    the temporary files that killed runs left in it (unmodified for ``min_age`` seconds)."""
    from keras_quaternion.outdir import NotWritableError, check_writable

    hint = f"pass another cache_dir (kq-*: --cache-dir) or set ${CACHE_ENV}"
    check_writable(folder, "The feature cache folder", hint)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NotWritableError(
            f"The feature cache folder '{folder}' cannot be created ({err.strerror}); {hint}."
        ) from None
    sweep_temp_files(folder, min_age=min_age)


def _load_cache(folder: Path) -> PreparedData | None:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        features, labels = {}, {}
        for split in SPLITS:
            path = folder / f"{split}_features.npy"
            try:
                features[split] = np.load(path, mmap_mode="r")
            except ValueError:  # an empty split cannot be memory-mapped
                features[split] = np.load(path)
            labels[split] = np.load(folder / f"{split}_labels.npy")
        data = PreparedData(
            dataset=manifest["dataset"],
            class_names=list(manifest["class_names"]),
            multi_label=bool(manifest["multi_label"]),
            feature_config=FeatureConfig.from_dict(manifest["feature_config"]),
            clip_seconds=float(manifest["clip_seconds"]),
            features=features,
            labels=labels,
            cache_path=folder,
            info={
                k: manifest.get(k)
                for k in ("options", "data_dir", "protocol", "skipped", "created")
            },
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(
            f"The feature cache in {folder} is unreadable ({err}); computing it again.",
            UserWarning,
            stacklevel=3,
        )
        try:
            manifest_path.unlink()
        except OSError:
            pass
        return None
    return data
