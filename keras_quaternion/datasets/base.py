"""Core dataset types: :class:`Example`, :class:`HDF5Source`, :class:`AudioDataset`,
:class:`DatasetLayoutError` and the split helper :func:`stratified_holdout`."""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_quaternion.audio import AudioDecodeError, decode_many, fit_length, load_audio, resample

__all__ = [
    "SPLITS",
    "AudioDataset",
    "DatasetLayoutError",
    "DecodedSplit",
    "Example",
    "HDF5Source",
    "stratified_holdout",
]

#: The split names every dataset exposes (some may be empty for a user's own data).
SPLITS = ("train", "validation", "test")


class DatasetLayoutError(ValueError):
    """A dataset folder is missing or not laid out as the loader expects.

    The message names the dataset, the folder, what is wrong and shows the expected layout tree.

    Attributes:
        dataset: dataset name (e.g. ``"esc50"``).
        folder: the folder that was inspected (a string, or ``None`` when no folder was given).
        problem: what is wrong, in words.
        expected_layout: the expected tree, as text.

    Args:
        dataset: dataset name.
        folder: the inspected folder, or ``None`` when no ``data_dir`` was given.
        problem: what is wrong, in words.
        expected_layout: the expected tree, as text (leading/trailing newlines are stripped).

    Example:
        >>> err = DatasetLayoutError("esc50", "data/esc50", "the folder does not exist", "ESC-50/")
        >>> print(err)
        Dataset 'esc50': the folder does not exist (in 'data/esc50').
        Expected layout (point data_dir / --data-dir at the top folder):
        ESC-50/
        >>> isinstance(err, ValueError), err.folder
        (True, 'data/esc50')
    """

    def __init__(
        self, dataset: str, folder: str | os.PathLike | None, problem: str, expected_layout: str
    ):
        self.dataset = dataset
        self.folder = None if folder is None else str(folder)
        self.problem = problem
        self.expected_layout = expected_layout.strip("\n")
        where = "no data_dir was given" if folder is None else f"in '{self.folder}'"
        super().__init__(
            f"Dataset '{dataset}': {problem} ({where}).\n"
            f"Expected layout (point data_dir / --data-dir at the top folder):\n"
            f"{self.expected_layout}"
        )

    def __reduce__(self):
        return (type(self), (self.dataset, self.folder, self.problem, self.expected_layout))


@dataclass(frozen=True)
class HDF5Source:
    """One row of a waveform matrix inside an HDF5 file (PANNs-style packed AudioSet).

    Attributes:
        path: the ``.h5`` file.
        index: row in ``dataset``.
        dataset: name of the waveform dataset, ``[N, samples]`` int16 (scaled by 1/32768) or float.
        sample_rate: rate of the stored waveforms (PANNs: 32000).
        name: display name (e.g. the clip's ``audio_name``).

    Example:
        >>> src = HDF5Source("balanced_train.h5", 7, name="Y0abc.wav")
        >>> str(src), src.dataset, src.sample_rate
        ('balanced_train.h5[7] (Y0abc.wav)', 'waveform', 32000)
        >>> Example(src, label=np.zeros(527, np.float32)).name
        'balanced_train.h5[7] (Y0abc.wav)'
    """

    path: str
    index: int
    dataset: str = "waveform"
    sample_rate: int = 32000
    name: str = ""

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"{self.path}[{self.index}]{label}"


@dataclass(eq=False)
class Example:
    """One labelled audio example.

    Attributes:
        source: where the audio is: a file path (``str``), an in-memory waveform (``np.ndarray``
            ``[samples]``, float32 or integer PCM scaled by its full range such as int16 / 32768,
            with ``sample_rate`` set) or an :class:`HDF5Source`.
        label: class index (``int``) for single-label datasets, or a multi-hot ``np.ndarray``
            ``[num_classes]`` float32 for multi-label ones.
        meta: extra facts (speaker, fold, take, ...); loaders document their keys.
        sample_rate: rate of an in-memory ``source`` (required for arrays, ignored otherwise).
        offset: seconds to skip at the start of a file source.
        duration: seconds to read from a file source (``None``: to the end).

    Example:
        >>> ex = Example(source="dog.wav", label=3, meta={"fold": 1})
        >>> ex.name
        'dog.wav'
    """

    source: str | np.ndarray | HDF5Source
    label: int | np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    sample_rate: int | None = None
    offset: float = 0.0
    duration: float | None = None

    def __post_init__(self):
        if isinstance(self.source, os.PathLike):
            self.source = os.fspath(self.source)
        if isinstance(self.source, np.ndarray):
            if self.sample_rate is None:
                raise ValueError("Example: an in-memory waveform source needs sample_rate=<Hz>.")
            if self.source.ndim != 1:
                raise ValueError(
                    f"Example: an in-memory waveform must be 1-D [samples], got shape "
                    f"{self.source.shape}."
                )
        elif not isinstance(self.source, str | HDF5Source):
            raise TypeError(
                "Example.source must be a path, a 1-D np.ndarray or an HDF5Source, got "
                f"{type(self.source).__name__}."
            )

    @property
    def name(self) -> str:
        """A short display name: the file path, ``file[row]`` or the meta ``id``."""
        if isinstance(self.source, str):
            if self.offset or self.duration is not None:
                end = "" if self.duration is None else f"{self.offset + self.duration:g}"
                return f"{self.source}@{self.offset:g}-{end}s"
            return self.source
        if isinstance(self.source, HDF5Source):
            return str(self.source)
        return str(self.meta.get("id", f"<in-memory {self.source.shape[0]} samples>"))


class DecodedSplit(NamedTuple):
    """Result of :meth:`AudioDataset.decode`.

    Attributes:
        waveforms: float32 ``[N, samples]`` when ``clip_seconds`` was given, else a list of 1-D
            arrays.
        labels: int64 ``[N]`` (single-label) or float32 ``[N, num_classes]`` (multi-label).
        examples: the ``N`` examples that decoded, in order.
        skipped: ``[(name, reason), ...]`` for the examples that did not decode.

    Example:
        >>> ds = AudioDataset("tiny", ["a", "b"], False, 8000, {"train": [
        ...     Example(np.zeros(800, np.float32), 0, sample_rate=8000),
        ...     Example(np.ones(400, np.float32), 1, sample_rate=8000)]})
        >>> waves, labels, examples, skipped = ds.decode(
        ...     "train", sample_rate=8000, clip_seconds=0.1, progress=False)
        >>> waves.shape, labels.tolist(), len(examples), skipped
        ((2, 800), [0, 1], 2, [])
    """

    waveforms: np.ndarray | list[np.ndarray]
    labels: np.ndarray
    examples: list[Example]
    skipped: list[tuple[str, str]]


class _H5Pool:
    """Keeps HDF5 files open while decoding many rows; closes them on exit."""

    def __init__(self):
        self._files: dict[str, Any] = {}

    def get(self, path: str):
        f = self._files.get(path)
        if f is None:
            import h5py

            try:
                f = h5py.File(path, "r")
            except (OSError, FileNotFoundError) as err:
                raise AudioDecodeError(path, f"cannot open the HDF5 file ({err})") from err
            self._files[path] = f
        return f

    def close(self):
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_hdf5(src: HDF5Source, pool: _H5Pool) -> np.ndarray:
    f = pool.get(src.path)
    if src.dataset not in f:
        raise AudioDecodeError(src.path, f"it has no dataset '{src.dataset}'")
    dset = f[src.dataset]
    if dset.ndim != 2 or not 0 <= src.index < dset.shape[0]:
        raise AudioDecodeError(
            str(src), f"row {src.index} is outside dataset '{src.dataset}' of shape {dset.shape}"
        )
    row = pcm_to_float(dset[src.index])
    if not np.all(np.isfinite(row)):
        raise AudioDecodeError(str(src), "it contains NaN or infinite sample values")
    return row


def pcm_to_float(samples) -> np.ndarray:
    """Samples as float32: integer PCM is scaled by its full range (int16 by 1/32768).

    Args:
        samples: an array of samples, integer PCM or floating point (returned as float32).

    Returns:
        float32 array of the same shape.

    Example:
        >>> pcm_to_float(np.array([-32768, 16384], np.int16)).tolist()
        [-1.0, 0.5]
        >>> pcm_to_float(np.array([0.25], np.float64)).dtype
        dtype('float32')
    """
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        return samples.astype(np.float32) / np.float32(scale)
    return samples.astype(np.float32, copy=False)


@dataclass
class AudioDataset:
    """A labelled audio dataset with ``train`` / ``validation`` / ``test`` splits.

    Returned by :func:`keras_quaternion.datasets.load`; nothing is decoded until you ask
    (:meth:`waveform`, :meth:`decode`), except for in-memory (synthetic) data.

    Attributes:
        name: registry name (``"fsdd"``, ...).
        class_names: one name per class index.
        multi_label: ``True`` when labels are multi-hot vectors (AudioSet).
        sample_rate_hint: the native sample rate of the recordings when uniform, else ``None``.
        splits: ``{"train": [...], "validation": [...], "test": [...]}`` lists of :class:`Example`.
        info: how the dataset was loaded: ``data_dir``, ``protocol`` (the split rule, in words),
            ``options``.

    Example:
        >>> from keras_quaternion.datasets import load
        >>> ds = load("synthetic", samples_per_class=10, sample_rate=8000)
        >>> ds.num_classes, len(ds.splits["train"]), ds.counts()["test"]["tone"]
        (10, 80, 1)
        >>> batch = ds.decode("train", sample_rate=16000, clip_seconds=0.5, progress=False)
        >>> batch.waveforms.shape, batch.labels.shape
        ((80, 8000), (80,))
    """

    name: str
    class_names: list[str]
    multi_label: bool
    sample_rate_hint: int | None
    splits: dict[str, list[Example]]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for split in SPLITS:
            self.splits.setdefault(split, [])
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(
                f"AudioDataset '{self.name}': unknown split names {sorted(unknown)}; allowed {SPLITS}."
            )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def _split(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise ValueError(
                f"AudioDataset '{self.name}': unknown split {split!r}; choose one of {list(SPLITS)}."
            )
        return self.splits[split]

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split: int64 ``[N]``, or float32 multi-hot ``[N, num_classes]``.

        Raises:
            ValueError: unknown split name.
        """
        return self._stack_labels(self._split(split))

    def _stack_labels(self, examples: Sequence[Example]) -> np.ndarray:
        if self.multi_label:
            if not examples:
                return np.zeros((0, self.num_classes), np.float32)
            return np.stack([np.asarray(e.label, np.float32) for e in examples])
        return np.asarray([int(e.label) for e in examples], dtype=np.int64)

    def waveform(
        self,
        example: Example,
        sample_rate: int,
        clip_seconds: float | None = None,
        *,
        _pool: _H5Pool | None = None,
    ) -> np.ndarray:
        """Decode one example (file, in-memory array or HDF5 row) to mono float32.

        Args:
            example: an :class:`Example` of this dataset.
            sample_rate: output rate in Hz (resampled with soxr when it differs).
            clip_seconds: pad with zeros / crop from the start to this many seconds.

        Returns:
            float32 ``[samples]``.

        Raises:
            AudioDecodeError: the audio cannot be decoded (corrupt, empty, missing file ...).
            ValueError: bad ``sample_rate`` / ``clip_seconds``.
        """
        src = example.source
        if isinstance(src, str):
            return load_audio(
                src,
                sample_rate=sample_rate,
                clip_seconds=clip_seconds,
                offset=example.offset,
                duration=example.duration,
            )
        if isinstance(src, HDF5Source):
            if _pool is None:
                with _H5Pool() as pool:
                    wave = _read_hdf5(src, pool)
            else:
                wave = _read_hdf5(src, _pool)
            native = src.sample_rate
        else:
            wave = pcm_to_float(src)
            native = int(example.sample_rate)
        wave = resample(wave, native, sample_rate)
        if clip_seconds is not None:
            if not clip_seconds > 0:
                raise ValueError(f"clip_seconds must be > 0, got {clip_seconds!r}.")
            wave = fit_length(wave, int(round(clip_seconds * sample_rate)))
        return wave

    def decode(
        self,
        split: str,
        *,
        sample_rate: int,
        clip_seconds: float | None = None,
        progress: bool = True,
    ) -> DecodedSplit:
        """Decode a whole split into memory, skipping (and reporting) undecodable audio.

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            sample_rate: output rate in Hz.
            clip_seconds: when given, waveforms are padded/cropped and stacked into one array.
            progress: show a tqdm progress bar.

        Returns:
            :class:`DecodedSplit` ``(waveforms, labels, examples, skipped)``.

        Warns:
            UserWarning: once, naming the skipped files (first ten), when some were skipped.

        Raises:
            ValueError: unknown split, bad ``sample_rate`` / ``clip_seconds``.
        """
        examples = self._split(split)
        with _H5Pool() as pool:
            arrays, kept, skipped = decode_many(
                examples,
                sample_rate=sample_rate,
                clip_seconds=clip_seconds,
                progress=progress,
                decoder=lambda ex: self.waveform(ex, sample_rate, clip_seconds, _pool=pool),
                desc=f"{self.name}/{split}",
            )
        kept_examples = [examples[i] for i in kept]
        if clip_seconds is not None:
            n = int(round(clip_seconds * sample_rate))
            waves: np.ndarray | list[np.ndarray] = (
                np.stack(arrays) if arrays else np.zeros((0, n), np.float32)
            )
        else:
            waves = arrays
        return DecodedSplit(waves, self._stack_labels(kept_examples), kept_examples, skipped)

    def decode_chunks(
        self,
        examples: Sequence[Example],
        *,
        sample_rate: int,
        clip_seconds: float,
        chunk: int,
        on_each: Callable[[], None] | None = None,
    ):
        """Decode ``examples`` ``chunk`` at a time, for work that cannot hold them all at once.

        HDF5 files stay open across the chunks; undecodable examples are skipped without a
        warning (the caller reports the ``skipped`` it collects).

        Args:
            examples: :class:`Example` objects of this dataset.
            sample_rate: output rate in Hz.
            clip_seconds: every waveform is padded or cropped to this many seconds.
            chunk: examples per chunk (a positive integer).
            on_each: called after each example, decoded or not (a progress bar's update).

        Yields:
            ``(start, waves, kept, skipped)`` per chunk: the chunk's first index into
            ``examples``, its decoded waveforms, their indices within the chunk and
            ``[(name, reason), ...]`` for the examples skipped.

        Example:
            >>> tones = [Example(np.zeros(800, np.int16), 0, sample_rate=8000) for _ in range(5)]
            >>> ds = AudioDataset("tones", ["tone"], False, 8000, {"train": tones})
            >>> [(start, len(waves)) for start, waves, _, _ in ds.decode_chunks(
            ...     ds.splits["train"], sample_rate=8000, clip_seconds=0.1, chunk=2)]
            [(0, 2), (2, 2), (4, 1)]
        """

        def decoder(example, pool):
            try:
                return self.waveform(example, sample_rate, clip_seconds, _pool=pool)
            finally:
                if on_each is not None:
                    on_each()

        with _H5Pool() as pool, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for start in range(0, len(examples), chunk):
                waves, kept, skipped = decode_many(
                    examples[start : start + chunk],
                    sample_rate=sample_rate,
                    clip_seconds=clip_seconds,
                    progress=False,
                    decoder=lambda ex: decoder(ex, pool),  # noqa: B023 (used at once)
                )
                yield start, waves, kept, skipped

    def _has_class(self, example: Example, c: int) -> bool:
        if self.multi_label:
            return bool(np.asarray(example.label)[c] > 0)
        return int(example.label) == c

    def check_decoded_classes(
        self, split: str, kept: Sequence[int], skipped: Sequence[tuple[str, str]]
    ) -> None:
        """Raise when decoding left a class of ``split`` without a single example.

        A class whose files in ``split`` are all undecodable would otherwise train as a class
        with 0 examples, as silently as an empty class folder (which the loaders reject).

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            kept: indices into ``splits[split]`` of the examples that decoded.
            skipped: ``[(name, reason), ...]`` of those that did not (as ``decode_many``).

        Raises:
            DatasetLayoutError: some class had examples in ``split`` and none decoded; the
                message names each such class and its skipped files with the reasons.

        Example:
            >>> ds = AudioDataset("tiny", ["a", "b"], False, 8000, {"train": [
            ...     Example("a1.wav", 0), Example("b1.wav", 1), Example("b2.wav", 1)]})
            >>> ds.check_decoded_classes("train", [0, 1], [("b2.wav", "truncated")])  # 'b' kept
            >>> ds.check_decoded_classes("train", [0], [("b1.wav", "empty"), ("b2.wav", "bad")])
            Traceback (most recent call last):
            ...
            keras_quaternion.datasets.base.DatasetLayoutError: Dataset 'tiny': no train example of
            class 'b' could be decoded, so it would train with 0 examples; its skipped files:
            'b' (2 files: b1.wav (empty), b2.wav (bad)). Re-encode or replace ...
        """
        examples = self._split(split)
        decoded = set(kept)
        reasons = dict(skipped)
        root = self.info.get("data_dir")
        lost, files = [], []
        for c, class_name in enumerate(self.class_names):
            indices = [i for i, ex in enumerate(examples) if self._has_class(ex, c)]
            if indices and not decoded.intersection(indices):
                mine = [examples[i].name for i in indices]
                shown = ", ".join(
                    f"{_relative(n, root)} ({reasons.get(n, 'not decoded')})" for n in mine[:3]
                )
                more = f" and {len(mine) - 3} more" if len(mine) > 3 else ""
                lost.append(f"'{class_name}'")
                files.append(f"'{class_name}' ({len(mine)} files: {shown}{more})")
        if lost:
            raise DatasetLayoutError(
                self.name,
                root,
                f"no {split} example of class {', '.join(lost)} could be decoded, so it would "
                f"train with 0 examples; its skipped files: {'; '.join(files)}. Re-encode or "
                "replace these files (e.g. as 16-bit WAV), or remove the class folder",
                _layout_of(self.name),
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per class in each split: ``{split: {class_name: count}}``.

        For multi-label data a clip counts once for each of its positive classes.
        """
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            c: Counter[int] = Counter()
            for ex in self.splits[split]:
                if self.multi_label:
                    c.update(np.flatnonzero(np.asarray(ex.label) > 0).tolist())
                else:
                    c[int(ex.label)] += 1
            out[split] = {name: c.get(i, 0) for i, name in enumerate(self.class_names)}
        return out

    def describe(self, max_classes: int = 60) -> str:
        """A readable summary: protocol, sizes and a per-class count table.

        Args:
            max_classes: show at most this many class rows (AudioSet has 527).
        """
        counts = self.counts()
        kind = "multi-label" if self.multi_label else "single-label"
        rate = f"{self.sample_rate_hint} Hz" if self.sample_rate_hint else "mixed/unknown"
        lines = [
            f"{self.name}: {self.num_classes} classes ({kind}), native rate {rate}",
        ]
        if self.info.get("protocol"):
            lines.append(f"split protocol: {self.info['protocol']}")
        lines.append("examples: " + ", ".join(f"{s} {len(self.splits[s])}" for s in SPLITS))
        width = max([len("class")] + [len(n) for n in self.class_names[:max_classes]])
        lines.append(f"  {'class':<{width}}  " + "  ".join(f"{s:>10}" for s in SPLITS))
        for i, cname in enumerate(self.class_names):
            if i == max_classes:
                lines.append(f"  ... and {self.num_classes - max_classes} more classes")
                break
            lines.append(
                f"  {cname:<{width}}  " + "  ".join(f"{counts[s][cname]:>10}" for s in SPLITS)
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.splits[s])}" for s in SPLITS)
        return (
            f"AudioDataset(name={self.name!r}, num_classes={self.num_classes}, "
            f"multi_label={self.multi_label}, {sizes})"
        )


def _relative(name: str, root: str | None) -> str:
    """``name`` relative to the dataset folder ``root`` when it lies below it."""
    if root and name.startswith(os.path.join(root, "")):
        return name[len(os.path.join(root, "")) :]
    return name


def _layout_of(name: str) -> str:
    from keras_quaternion.datasets.registry import expected_layout

    try:
        return expected_layout(name)
    except ValueError:  # a dataset built in code, not registered
        return "(the dataset's own files)"


def _default_stratify(
    examples: Sequence[Example], fraction: float
) -> Callable[[Example], Hashable]:
    """Single-label: the label. Multi-hot: the example's rarest positive class among classes
    common enough to give at least one held-out example (``>= 1/fraction`` examples); clips with
    only rarer classes share one pool stratum (-1)."""
    if not any(isinstance(ex.label, np.ndarray) for ex in examples):
        return lambda ex: int(ex.label)
    freq = np.sum([np.asarray(ex.label) > 0 for ex in examples], axis=0)
    usable = freq >= int(np.ceil(1.0 / fraction - 1e-9))

    def rarest(ex: Example) -> Hashable:
        pos = np.flatnonzero((np.asarray(ex.label) > 0) & usable)
        return int(pos[np.argmin(freq[pos])]) if pos.size else -1

    return rarest


def stratified_holdout(
    examples: Sequence[Example],
    fraction: float,
    *,
    seed: int,
    stratify: Callable[[Example], Hashable] | None = None,
    group: Callable[[Example], Hashable] | None = None,
) -> tuple[list[Example], list[Example]]:
    """Deterministically hold out about ``fraction`` of ``examples``, stratified by class.

    Per class (stratum) the held-out count follows the class's share (largest remainder), and a
    class never loses all its examples. With ``group`` (e.g. speaker, source recording), whole
    groups move together so the two parts share no group; each group counts for its majority
    class, and the fraction is then approximate.

    Args:
        examples: the examples to split (order is irrelevant to the result's membership).
        fraction: share to hold out, 0 < fraction < 1.
        seed: random seed; the same seed gives the same split.
        stratify: ``key(example)`` defining the strata; default the label (for multi-hot labels,
            the example's rarest positive class among those with >= 1/fraction examples).
        group: ``key(example)`` of groups that must not be separated; default none.

    Returns:
        ``(kept, held)``, both in the input order.

    Raises:
        ValueError: ``fraction`` not in (0, 1).

    Example:
        >>> exs = [Example(f"{i}.wav", i % 2, {"speaker": i // 4}) for i in range(40)]
        >>> kept, held = stratified_holdout(exs, 0.2, seed=0, group=lambda e: e.meta["speaker"])
        >>> len(held), sorted({e.meta["speaker"] for e in held})
        (8, [4, 6])
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"stratified_holdout: fraction must be in (0, 1), got {fraction!r}.")
    stratify = stratify or _default_stratify(examples, float(fraction))
    n = len(examples)
    if n < 2:
        return list(examples), []

    members, strata = _group_strata(examples, stratify, group)
    rng = np.random.default_rng(seed)
    target = _held_targets(strata, members, float(fraction), n, rng)
    held_idx: set[int] = set()
    for s in sorted(strata, key=repr):
        held_idx.update(_take_groups(sorted(strata[s], key=repr), members, target[s], rng))
    kept = [ex for i, ex in enumerate(examples) if i not in held_idx]
    held = [ex for i, ex in enumerate(examples) if i in held_idx]
    return kept, held


def _group_strata(examples, stratify, group):
    """``(members, strata)``: ``{group: example indices}`` and ``{stratum: groups}``.

    Without ``group`` every example is its own group; a group's stratum is its majority one
    (ties: the smallest by ``repr``).
    """
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        members[("g", group(ex)) if group else ("i", i)].append(i)
    strata: dict[Hashable, list[Hashable]] = defaultdict(list)
    for gkey, idx in members.items():
        votes = Counter(stratify(examples[i]) for i in idx)
        top = max(votes.values())
        stratum = min((k for k, v in votes.items() if v == top), key=repr)
        strata[stratum].append(gkey)
    return members, strata


def _held_targets(strata, members, fraction: float, n: int, rng) -> dict:
    """Examples to hold out per stratum: largest remainder on ``round(fraction * n)``."""
    total = max(1, int(round(fraction * n)))
    sizes = {s: sum(len(members[g]) for g in gs) for s, gs in strata.items()}
    exact = {s: fraction * sizes[s] for s in strata}
    target = {s: int(np.floor(exact[s])) for s in strata}
    keys = sorted(strata, key=repr)
    tie = dict(zip(keys, rng.permutation(len(keys)).tolist()))  # seeded tie-break
    order = sorted(keys, key=lambda s: (-round(exact[s] - target[s], 9), tie[s]))
    for s in order[: max(0, total - sum(target.values()))]:
        target[s] += 1
    return target


def _take_groups(gkeys: list, members, target: int, rng) -> set[int]:
    """Example indices of a stratum's groups, taken in a seeded order up to about ``target``.

    A stratum of one group gives none (never hold out a whole stratum), and at least one group
    always stays; a group is skipped when it would overshoot more than it helps.
    """
    held: set[int] = set()
    if len(gkeys) < 2:
        return held
    got = taken = 0
    for p in rng.permutation(len(gkeys)):
        if got >= target or taken == len(gkeys) - 1:
            break
        size = len(members[gkeys[p]])
        if got + size > target and (got + size - target) > (target - got):
            continue  # this group would overshoot more than it helps
        held.update(members[gkeys[p]])
        got += size
        taken += 1
    return held


def require_dir(dataset: str, data_dir: str | os.PathLike | None, layout: str) -> Path:
    """Resolve ``data_dir`` or raise :class:`DatasetLayoutError` (None / missing / not a folder).

    Args:
        dataset: dataset name, for the error message.
        data_dir: the folder given by the user (``~`` is expanded), or ``None``.
        layout: the expected tree, shown in the error message.

    Returns:
        The resolved (absolute) folder.

    Raises:
        DatasetLayoutError: ``data_dir`` is ``None``, does not exist, or is a file.

    Example:
        >>> require_dir("mine", ".", "mine/").is_dir()
        True
        >>> try:
        ...     require_dir("mine", "no_such_folder", "mine/")
        ... except DatasetLayoutError as err:
        ...     print(err.problem)
        the folder does not exist
    """
    if data_dir is None:
        from keras_quaternion.datasets.sources import SOURCES

        fetch = f" (kq-data download {dataset} fetches them)" if dataset in SOURCES else ""
        raise DatasetLayoutError(
            dataset,
            None,
            f"this dataset needs data_dir (--data-dir) pointing at its files{fetch}",
            layout,
        )
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DatasetLayoutError(dataset, path, "the folder does not exist", layout)
    if not path.is_dir():
        raise DatasetLayoutError(dataset, path, "data_dir is a file, not a folder", layout)
    return path.resolve()


#: File extensions treated as audio when scanning folders.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".wave"}
)


def list_audio(folder: Path, recursive: bool = True) -> list[Path]:
    """Sorted audio files under ``folder`` (by extension, case-insensitive; hidden files skipped).

    Only the file name is checked (against :data:`AUDIO_EXTENSIONS`); nothing is decoded.

    Args:
        folder: the folder to scan.
        recursive: also scan sub-folders.

    Returns:
        Sorted paths of the audio files.

    Example:
        >>> for name in ["a/x.wav", "a/y.FLAC", "a/.hidden.wav", "a/notes.txt", "a/b/z.mp3"]:
        ...     Path(name).parent.mkdir(parents=True, exist_ok=True)
        ...     Path(name).touch()
        >>> [p.name for p in list_audio(Path("a"))]
        ['z.mp3', 'x.wav', 'y.FLAC']
        >>> [p.name for p in list_audio(Path("a"), recursive=False)]
        ['x.wav', 'y.FLAC']
    """
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = [
        p
        for p in it
        if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files)


def check_choice(dataset: str, option: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Raise ``ValueError`` naming the option unless ``value`` is one of ``allowed``.

    Args:
        dataset: dataset name, for the error message.
        option: option name, for the error message.
        value: the value given.
        allowed: the allowed values.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: ``value`` is not in ``allowed``.

    Example:
        >>> check_choice("ravdess", "modality", "speech", ["speech", "song"])
        'speech'
        >>> check_choice("ravdess", "modality", "both", ["speech", "song"])
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'ravdess': option modality='both' is not allowed; choose one of [...].
    """
    if value not in allowed:
        raise ValueError(
            f"Dataset '{dataset}': option {option}={value!r} is not allowed; choose one of "
            f"{list(allowed)}."
        )
    return value


def check_int(dataset: str, option: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Raise ``ValueError`` naming the option unless ``value`` is an int in ``[lo, hi]``.

    Args:
        dataset: dataset name, for the error message.
        option: option name, for the error message.
        value: the value given (a Python or NumPy integer; ``bool`` is refused).
        lo: smallest allowed value.
        hi: largest allowed value (``None``: no upper bound).

    Returns:
        ``value`` as a Python ``int``.

    Raises:
        ValueError: ``value`` is not an integer (or is a ``bool``), or is outside ``[lo, hi]``.

    Example:
        >>> check_int("esc50", "fold", np.int64(3), 1, 5)
        3
        >>> check_int("esc50", "fold", 6, 1, 5)
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'esc50': option fold=6 is out of range 1..5.
    """
    rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(
            f"Dataset '{dataset}': option {option} must be an integer in {rng}, got {value!r}."
        )
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"Dataset '{dataset}': option {option}={value} is out of range {rng}.")
    return int(value)


def check_fraction(dataset: str, option: str, value: Any, *, allow_zero: bool = False) -> float:
    """Raise ``ValueError`` naming the option unless ``value`` is in (0, 1) (or [0, 1)).

    Args:
        dataset: dataset name, for the error message.
        option: option name, for the error message.
        value: the value given (anything ``float()`` accepts).
        allow_zero: accept ``0`` too (the range becomes ``[0, 1)``).

    Returns:
        ``value`` as a ``float``.

    Raises:
        ValueError: ``value`` is not a number or is outside the range.

    Example:
        >>> check_fraction("fsdd", "validation_fraction", "0.25")
        0.25
        >>> check_fraction("fsdd", "validation_fraction", 0, allow_zero=True)
        0.0
        >>> check_fraction("fsdd", "validation_fraction", 1.0)
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'fsdd': option validation_fraction must be a fraction in (0, 1), ...
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    ok = (0.0 <= v < 1.0) if allow_zero else (0.0 < v < 1.0)
    if not ok:
        rng = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(
            f"Dataset '{dataset}': option {option} must be a fraction in {rng}, got {value!r}."
        )
    return v


def check_split_fractions(dataset: str, test_fraction, validation_fraction) -> tuple[float, float]:
    """The checked test and validation fractions of a seeded split: each in (0, 1), sum < 0.9.

    Example:
        >>> check_split_fractions("gtzan", 0.1, 0.1)
        (0.1, 0.1)
        >>> check_split_fractions("gtzan", 0.5, 0.4)
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'gtzan': test_fraction + validation_fraction must be < 0.9, got 0.5 + 0.4.
    """  # noqa: E501
    test_fraction = check_fraction(dataset, "test_fraction", test_fraction)
    validation_fraction = check_fraction(dataset, "validation_fraction", validation_fraction)
    if test_fraction + validation_fraction >= 0.9:
        raise ValueError(
            f"Dataset {dataset!r}: test_fraction + validation_fraction must be < 0.9, got "
            f"{test_fraction} + {validation_fraction}."
        )
    return test_fraction, validation_fraction


def read_csv_rows(
    dataset: str, path: Path, required: Sequence[str], layout: str, *, comment: str | None = None
) -> list[dict[str, str]]:
    """Read a CSV with a header into dicts, checking that ``required`` columns exist.

    Column names and values are stripped of surrounding spaces; a UTF-8 byte-order mark is
    ignored.

    Args:
        dataset: dataset name, for the error message.
        path: the CSV file.
        required: column names that must be present.
        layout: the expected tree, shown in the error message.
        comment: skip lines starting with this prefix (``None``: skip none).

    Returns:
        One ``{column: value}`` dict per data row, in file order.

    Raises:
        DatasetLayoutError: the file is missing, or lacks a required column.

    Example:
        >>> _ = Path("meta.csv").write_text("# a comment\\nfilename, class\\ndog.wav, dog\\n")
        >>> read_csv_rows("mine", Path("meta.csv"), ["filename", "class"], "meta.csv", comment="#")
        [{'filename': 'dog.wav', 'class': 'dog'}]
        >>> try:
        ...     read_csv_rows("mine", Path("meta.csv"), ["fold"], "meta.csv", comment="#")
        ... except DatasetLayoutError as err:
        ...     print(err.problem)
        'meta.csv' lacks the column(s) ['fold']; it has ['filename', 'class']
    """
    import csv

    if not path.is_file():
        raise DatasetLayoutError(
            dataset, path.parent, f"the metadata file '{path.name}' is missing", layout
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = (ln for ln in f if not (comment and ln.startswith(comment)))
        reader = csv.DictReader(lines, skipinitialspace=True)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise DatasetLayoutError(
                dataset,
                path.parent,
                f"'{path.name}' lacks the column(s) {missing}; it has {columns}",
                layout,
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    return rows
