"""``esc50``: ESC-50 environmental sounds (50 classes x 40 clips of 5 s, 44.1 kHz, 5 folds)."""

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

__all__ = ["load_esc50"]

LAYOUT = """\
ESC-50/                       <- data_dir
├── audio/
│   ├── 1-100032-A-0.wav      {fold}-{freesound id}-{take}-{target}.wav
│   └── ...
└── meta/
    └── esc50.csv             columns: filename,fold,target,category,esc10,src_file,take"""

_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def _int(value: str, what: str, csv_path) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetLayoutError(
            "esc50",
            csv_path.parent,
            f"'{csv_path.name}' has a non-integer {what} {value!r}",
            LAYOUT,
        ) from None


@register(
    "esc50",
    description="ESC-50 environmental sounds: 50 classes, 2000 clips of 5 s, 5 folds.",
    layout=LAYOUT,
)
def load_esc50(
    data_dir,
    *,
    fold: int = 1,
    esc10: bool = False,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load ESC-50 (or its ESC-10 subset) with fold ``fold`` as the test set.

    The official protocol is 5-fold cross-validation over the predefined folds (report the mean of
    the five test folds). Validation is a seeded ``validation_fraction`` of the four training
    folds, stratified by class and keeping clips cut from the same Freesound recording
    (``src_file``) together.

    Args:
        data_dir: the ESC-50 folder (holding ``audio/`` and ``meta/esc50.csv``).
        fold: test fold, 1..5.
        esc10: use the 10-class ESC-10 subset (rows with ``esc10 == True``).
        validation_fraction: share of the training folds for validation, in (0, 1).
        seed: validation seed.

    Returns:
        :class:`AudioDataset`; classes are the ``category`` names ordered by ``target``;
        ``meta``: ``fold``, ``src_file``, ``take``.

    Raises:
        DatasetLayoutError: missing ``audio/`` or ``meta/esc50.csv``, missing columns, bad values.
        ValueError: ``fold`` outside 1..5, bad fraction or seed.

    Example:
        >>> ds = load_esc50("data/ESC-50", fold=2, esc10=True)  # doctest: +SKIP
    """
    root = require_dir("esc50", data_dir, LAYOUT)
    fold = check_int("esc50", "fold", fold, 1, 5)
    validation_fraction = check_fraction("esc50", "validation_fraction", validation_fraction)
    seed = check_int("esc50", "seed", seed, 0)
    if not isinstance(esc10, bool):
        raise ValueError(f"Dataset 'esc50': option esc10 must be True or False, got {esc10!r}.")
    audio = root / "audio"
    if not audio.is_dir():
        raise DatasetLayoutError("esc50", root, "there is no 'audio/' folder", LAYOUT)
    csv_path = root / "meta" / "esc50.csv"
    rows = _rows(csv_path, esc10)
    targets = {_int(r["target"], "target", csv_path): r["category"] for r in rows}
    ordered = sorted(targets)
    index = {t: i for i, t in enumerate(ordered)}
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for r in rows:
        f = _int(r["fold"], "fold", csv_path)
        ex = Example(
            str(audio / r["filename"]),
            index[_int(r["target"], "target", csv_path)],
            {"fold": f, "src_file": r["src_file"], "take": r["take"]},
        )
        splits["test" if f == fold else "train"].append(ex)
    if not splits["test"]:
        raise DatasetLayoutError(
            "esc50", csv_path.parent, f"no rows of fold {fold} in 'esc50.csv'", LAYOUT
        )
    train, val = stratified_holdout(
        splits["train"], validation_fraction, seed=seed, group=lambda e: e.meta["src_file"]
    )
    splits["train"], splits["validation"] = train, val
    subset = "ESC-10" if esc10 else "ESC-50"
    return AudioDataset(
        name="esc50",
        class_names=[targets[t] for t in ordered],
        multi_label=False,
        sample_rate_hint=44100,
        splits=splits,
        info={
            "data_dir": str(root),
            "protocol": f"{subset} official folds: test fold {fold}; validation = seeded ({seed}) "
            f"{validation_fraction:g} of the other folds, grouped by src_file",
            "options": {"fold": fold, "esc10": esc10, "seed": seed},
        },
    )


def _rows(csv_path, esc10: bool) -> list[dict]:
    """The rows of ``esc50.csv`` (only ESC-10's with ``esc10``); none is an error."""
    rows = read_csv_rows("esc50", csv_path, _COLUMNS, LAYOUT)
    if not rows:
        raise DatasetLayoutError("esc50", csv_path.parent, "'esc50.csv' has no rows", LAYOUT)
    if esc10:
        rows = [r for r in rows if r["esc10"].strip().lower() in ("true", "1")]
        if not rows:
            raise DatasetLayoutError(
                "esc50", csv_path.parent, "no rows have esc10 == True in 'esc50.csv'", LAYOUT
            )
    return rows
