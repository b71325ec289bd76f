"""``urbansound8k``: UrbanSound8K (10 urban sound classes, 8732 slices <= 4 s, 10 folds)."""

from __future__ import annotations

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_fraction,
    check_int,
    read_csv_rows,
    require_dir,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import register

__all__ = ["load_urbansound8k"]

LAYOUT = """\
UrbanSound8K/                 <- data_dir
├── audio/
│   ├── fold1/
│   │   ├── 101415-3-0-2.wav  {fsID}-{classID}-{occurrence}-{slice}.wav
│   │   └── ...
│   └── ... fold10/
└── metadata/
    └── UrbanSound8K.csv      columns: slice_file_name,fsID,start,end,salience,fold,classID,class"""

_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


@register(
    "urbansound8k",
    description="UrbanSound8K: 10 urban sound classes, 8732 slices up to 4 s, 10 folds.",
    layout=LAYOUT,
)
def load_urbansound8k(
    data_dir,
    *,
    fold: int = 1,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load UrbanSound8K with fold ``fold`` as the test set.

    The official protocol is 10-fold cross-validation over the predefined folds (do not
    reshuffle: slices of one recording share a fold). Validation is a seeded
    ``validation_fraction`` of the nine training folds, stratified by class and keeping slices of
    the same Freesound recording (``fsID``) together.

    Args:
        data_dir: the UrbanSound8K folder (holding ``audio/`` and ``metadata/``).
        fold: test fold, 1..10.
        validation_fraction: share of the training folds for validation, in (0, 1).
        seed: validation seed.

    Returns:
        :class:`AudioDataset`; class names ordered by ``classID``; ``meta``: ``fold``, ``fsID``,
        ``salience`` (1 foreground, 2 background), ``start``, ``end``. Sample rates vary per file
        (``sample_rate_hint`` is ``None``).

    Raises:
        DatasetLayoutError: missing ``audio/`` or the CSV, missing columns or bad values.
        ValueError: ``fold`` outside 1..10, bad fraction or seed.

    Example:
        >>> ds = load_urbansound8k("data/UrbanSound8K", fold=1)  # doctest: +SKIP
    """
    root = require_dir("urbansound8k", data_dir, LAYOUT)
    fold = check_int("urbansound8k", "fold", fold, 1, 10)
    validation_fraction = check_fraction("urbansound8k", "validation_fraction", validation_fraction)
    seed = check_int("urbansound8k", "seed", seed, 0)
    audio = root / "audio"
    if not audio.is_dir():
        raise DatasetLayoutError("urbansound8k", root, "there is no 'audio/' folder", LAYOUT)
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    parsed, classes = _parsed_rows(csv_path)
    ordered = sorted(classes)
    index = {c: i for i, c in enumerate(ordered)}
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for r, f, cid in parsed:
        ex = Example(str(audio / f"fold{f}" / r["slice_file_name"]), index[cid], _meta(r, f))
        splits["test" if f == fold else "train"].append(ex)
    if not splits["test"]:
        raise DatasetLayoutError(
            "urbansound8k", csv_path.parent, f"no rows of fold {fold} in the CSV", LAYOUT
        )
    train, val = stratified_holdout(
        splits["train"], validation_fraction, seed=seed, group=lambda e: e.meta["fsID"]
    )
    splits["train"], splits["validation"] = train, val
    return AudioDataset(
        name="urbansound8k",
        class_names=[classes[c] for c in ordered],
        multi_label=False,
        sample_rate_hint=None,
        splits=splits,
        info={
            "data_dir": str(root),
            "protocol": f"official folds: test fold {fold}; validation = seeded ({seed}) "
            f"{validation_fraction:g} of the other folds, grouped by fsID",
            "options": {"fold": fold, "seed": seed},
        },
    )


def _parsed_rows(csv_path):
    """``([(row, fold, classID)], {classID: class name})`` of the metadata CSV (not empty)."""
    rows = read_csv_rows("urbansound8k", csv_path, _COLUMNS, LAYOUT)
    if not rows:
        raise DatasetLayoutError("urbansound8k", csv_path.parent, "the CSV has no rows", LAYOUT)
    classes: dict[int, str] = {}
    parsed = []
    for r in rows:
        try:
            f, cid = int(r["fold"]), int(r["classID"])
        except ValueError:
            raise DatasetLayoutError(
                "urbansound8k",
                csv_path.parent,
                f"row for {r['slice_file_name']!r} has a non-integer fold or classID "
                f"({r['fold']!r}, {r['classID']!r})",
                LAYOUT,
            ) from None
        classes[cid] = r["class"]
        parsed.append((r, f, cid))
    return parsed, classes


def _meta(row: dict, fold: int) -> dict:
    """An example's ``meta``: its fold, Freesound recording, salience, start and end."""
    salience = row["salience"]
    return {
        "fold": fold,
        "fsID": row["fsID"],
        "salience": int(salience) if salience.isdigit() else salience,
        "start": row["start"],
        "end": row["end"],
    }
