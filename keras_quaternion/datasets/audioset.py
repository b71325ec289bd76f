"""``audioset``: AudioSet (527 classes, multi-label, 10 s clips), from PANNs HDF5 packs or clips."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from keras_quaternion.datasets.base import (
    AUDIO_EXTENSIONS,
    AudioDataset,
    DatasetLayoutError,
    Example,
    HDF5Source,
    check_choice,
    check_fraction,
    check_int,
    read_csv_rows,
    require_dir,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import register

__all__ = ["load_audioset"]

LAYOUT = """\
(a) PANNs-style packed HDF5 (waveform int16 [N, 320000] at 32 kHz, target bool [N, 527],
    audio_name [N]):
audioset/                     <- data_dir
├── class_labels_indices.csv  columns: index,mid,display_name (here or in metadata/)
└── hdf5s/waveforms/
    ├── balanced_train_segments.h5
    ├── eval_segments.h5
    └── unbalanced_train/unbalanced_train_part00.h5 ...   (only for train="full")

(b) downloaded clips + the official segment CSVs:
audioset/                     <- data_dir
├── class_labels_indices.csv
├── balanced_train_segments.csv   ('#' header lines, then YTID, start_seconds,
├── eval_segments.csv              end_seconds, "positive_labels")
├── unbalanced_train_segments.csv (only for train="full")
└── audio/
    ├── balanced_train_segments/Y<YTID>.wav   (or <YTID>.wav; wav/flac/ogg/mp3/m4a)
    ├── eval_segments/Y<YTID>.wav
    └── unbalanced_train_segments/...          (only for train="full")"""

_SETS = {
    "balanced": "balanced_train_segments",
    "eval": "eval_segments",
    "unbalanced": "unbalanced_train_segments",
}


def _class_labels(root: Path) -> tuple[list[str], list[str]]:
    for cand in (root / "class_labels_indices.csv", root / "metadata" / "class_labels_indices.csv"):
        if cand.is_file():
            rows = read_csv_rows("audioset", cand, ("index", "mid", "display_name"), LAYOUT)
            try:
                rows.sort(key=lambda r: int(r["index"]))
                ok = [int(r["index"]) for r in rows] == list(range(len(rows)))
            except ValueError:
                ok = False
            if not rows or not ok:
                raise DatasetLayoutError(
                    "audioset",
                    cand.parent,
                    "'class_labels_indices.csv' must list indices 0..N-1 exactly once",
                    LAYOUT,
                )
            return [r["mid"] for r in rows], [r["display_name"] for r in rows]
    raise DatasetLayoutError(
        "audioset",
        root,
        "'class_labels_indices.csv' is missing (looked here and in metadata/)",
        LAYOUT,
    )


def _hdf5_dir(root: Path) -> Path | None:
    for cand in (root / "hdf5s" / "waveforms", root / "waveforms", root):
        if (cand / "balanced_train_segments.h5").is_file() or (cand / "eval_segments.h5").is_file():
            return cand
    return None


def _hdf5_examples(path: Path, num_classes: int, default_rate: int) -> list[Example]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("audio_name", "waveform", "target") if k not in f]
            if missing:
                raise DatasetLayoutError(
                    "audioset", path.parent, f"'{path.name}' lacks the dataset(s) {missing}", LAYOUT
                )
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["audio_name"][()]]
            target = np.asarray(f["target"][()]).astype(bool)
            wshape = f["waveform"].shape
            rate = int(f.attrs.get("sample_rate", default_rate))
    except OSError as err:
        raise DatasetLayoutError(
            "audioset", path.parent, f"'{path.name}' is not a readable HDF5 file ({err})", LAYOUT
        ) from err
    n = len(names)
    if target.shape != (n, num_classes) or len(wshape) != 2 or wshape[0] != n:
        raise DatasetLayoutError(
            "audioset",
            path.parent,
            f"'{path.name}' has inconsistent shapes: audio_name [{n}], waveform {wshape}, target "
            f"{target.shape} (expected target [{n}, {num_classes}])",
            LAYOUT,
        )
    out = []
    for i, name in enumerate(names):
        src = HDF5Source(str(path), i, "waveform", rate, name)
        out.append(Example(src, target[i], {"audio_name": name, "file": path.name}))
    return out


def _read_segments(path: Path, mid_index: dict[str, int], num_classes: int):
    if not path.is_file():
        raise DatasetLayoutError("audioset", path.parent, f"'{path.name}' is missing", LAYOUT)
    rows, unknown = [], set()
    with open(path, newline="", encoding="utf-8") as f:
        lines = (ln for ln in f if ln.strip() and not ln.lstrip().startswith("#"))
        for rec in csv.reader(lines, skipinitialspace=True):
            if len(rec) < 4:
                raise DatasetLayoutError(
                    "audioset",
                    path.parent,
                    f"'{path.name}' has a line with {len(rec)} fields, expected 4 "
                    f"(YTID, start_seconds, end_seconds, positive_labels): {rec}",
                    LAYOUT,
                )
            label = np.zeros(num_classes, bool)
            for mid in rec[3].split(","):
                mid = mid.strip()
                if mid in mid_index:
                    label[mid_index[mid]] = True
                elif mid:
                    unknown.add(mid)
            rows.append((rec[0].strip(), rec[1].strip(), rec[2].strip(), label))
    if unknown:
        warnings.warn(
            f"audioset: '{path.name}' uses {len(unknown)} label id(s) not in "
            f"class_labels_indices.csv (ignored): {sorted(unknown)[:10]}",
            UserWarning,
            stacklevel=3,
        )
    return rows


def _clip_examples(root: Path, set_name: str, mid_index, num_classes) -> list[Example]:
    rows = _read_segments(root / f"{set_name}.csv", mid_index, num_classes)
    folder = root / "audio" / set_name
    if not folder.is_dir():
        raise DatasetLayoutError(
            "audioset", root, f"there is no 'audio/{set_name}/' folder", LAYOUT
        )
    files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS}
    out, absent = [], 0
    for ytid, start, end, label in rows:
        p = files.get("Y" + ytid) or files.get(ytid)
        if p is None:
            absent += 1
            continue
        out.append(Example(str(p), label, {"ytid": ytid, "start": start, "end": end}))
    if absent:
        warnings.warn(
            f"audioset: {absent} of {len(rows)} segments of '{set_name}.csv' have no clip in "
            f"'{folder}' (usual for AudioSet: videos disappear); they are left out.",
            UserWarning,
            stacklevel=3,
        )
    if not out:
        raise DatasetLayoutError(
            "audioset",
            folder,
            f"none of the {len(rows)} segments of '{set_name}.csv' has a clip "
            "named Y<YTID>.<ext> or <YTID>.<ext>",
            LAYOUT,
        )
    return out


@register(
    "audioset",
    description="AudioSet: 527 classes, multi-label, 10 s clips (PANNs HDF5 packs or clips).",
    layout=LAYOUT,
)
def load_audioset(
    data_dir,
    *,
    layout: str = "auto",
    train: str = "balanced",
    validation_fraction: float = 0.1,
    sample_rate: int = 32000,
    seed: int = 0,
) -> AudioDataset:
    """Load AudioSet: train = balanced train (or balanced + unbalanced), test = eval segments.

    Labels are multi-hot (bool ``[527]``); score with mAP. Validation is a seeded
    ``validation_fraction`` of train, stratified by each clip's rarest label (there is no
    official validation set).

    Args:
        data_dir: the AudioSet folder (see the two layouts in ``docs/datasets.md``).
        layout: ``"auto"`` (HDF5 when ``balanced_train_segments.h5``/``eval_segments.h5`` exist,
            else clips), ``"hdf5"`` or ``"clips"``.
        train: ``"balanced"`` (~20k clips) or ``"full"`` (+ ~2M unbalanced clips; labels alone
            take ~1 GB of memory).
        validation_fraction: share of train held out for validation, in (0, 1).
        sample_rate: rate of HDF5 waveforms when the file has no ``sample_rate`` attribute.
        seed: validation seed.

    Returns:
        :class:`AudioDataset` with ``multi_label=True``; sources are :class:`HDF5Source` rows
        (layout a) or file paths (layout b); ``meta``: ``audio_name`` / ``ytid``, ``start``,
        ``end``.

    Raises:
        DatasetLayoutError: missing class list, HDF5 files, CSVs or clip folders; bad HDF5
            shapes.
        ValueError: bad option.

    Example:
        >>> ds = load_audioset("data/audioset")  # doctest: +SKIP
        >>> ds.labels("test").shape  # doctest: +SKIP
        (20371, 527)
    """
    root = require_dir("audioset", data_dir, LAYOUT)
    check_choice("audioset", "layout", layout, ("auto", "hdf5", "clips"))
    check_choice("audioset", "train", train, ("balanced", "full"))
    validation_fraction = check_fraction("audioset", "validation_fraction", validation_fraction)
    sample_rate = check_int("audioset", "sample_rate", sample_rate, 1000, 768000)
    seed = check_int("audioset", "seed", seed, 0)
    mids, display = _class_labels(root)
    mid_index = {m: i for i, m in enumerate(mids)}
    h5dir = _hdf5_dir(root)
    if layout == "auto":
        layout = "hdf5" if h5dir is not None else "clips"
    if layout == "hdf5":
        train_ex, test_ex = _hdf5_splits(root, h5dir, train, len(mids), sample_rate)
        rate_hint = train_ex[0].source.sample_rate if train_ex else sample_rate
    else:
        train_ex = _clip_examples(root, _SETS["balanced"], mid_index, len(mids))
        if train == "full":
            train_ex += _clip_examples(root, _SETS["unbalanced"], mid_index, len(mids))
        test_ex = _clip_examples(root, _SETS["eval"], mid_index, len(mids))
        rate_hint = None
    train_ex, val_ex = stratified_holdout(train_ex, validation_fraction, seed=seed)
    return AudioDataset(
        name="audioset",
        class_names=display,
        multi_label=True,
        sample_rate_hint=rate_hint,
        splits={"train": train_ex, "validation": val_ex, "test": test_ex},
        info={
            "data_dir": str(root),
            "layout": layout,
            "mids": mids,
            "protocol": f"{train} train segments / eval segments as test; validation = seeded "
            f"({seed}) {validation_fraction:g} of train, stratified by rarest label",
            "options": {"layout": layout, "train": train, "seed": seed},
        },
    )


def _hdf5_splits(root, h5dir, train: str, classes: int, sample_rate: int):
    """``(train examples, test examples)`` of the HDF5 layout (``h5dir``; ``None``: missing)."""
    if h5dir is None:
        raise DatasetLayoutError(
            "audioset", root, "no balanced_train_segments.h5 / eval_segments.h5 found", LAYOUT
        )
    sets = {}
    for key in ("balanced", "eval"):
        path = h5dir / f"{_SETS[key]}.h5"
        if not path.is_file():
            raise DatasetLayoutError("audioset", h5dir, f"'{path.name}' is missing", LAYOUT)
        sets[key] = _hdf5_examples(path, classes, sample_rate)
    train_ex = sets["balanced"]
    if train == "full":
        parts = sorted(h5dir.glob("unbalanced_train*.h5")) + sorted(
            (h5dir / "unbalanced_train").glob("*.h5")
        )
        if not parts:
            raise DatasetLayoutError(
                "audioset", h5dir, "train='full' needs unbalanced_train*.h5 files", LAYOUT
            )
        for p in parts:
            train_ex = train_ex + _hdf5_examples(p, classes, sample_rate)
    return train_ex, sets["eval"]
