"""Users' own data: ``folder`` (one sub-folder per class) and ``csv`` (path,label[,split])."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_choice,
    check_int,
    check_split_fractions,
    list_audio,
    read_csv_rows,
    require_dir,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import register

__all__ = ["load_csv", "load_folder"]

FOLDER_LAYOUT = """\
my_sounds/                    <- data_dir, either one folder per class:
├── dog/
│   ├── a.wav                 (any nesting below the class folder; wav/flac/ogg/mp3/...)
│   └── walk/b.flac
└── cat/
    └── ...
or split folders, each with one folder per class:
my_sounds/
├── train/{dog,cat}/...
├── validation/{dog,cat}/...  (or val/; optional: carved from train when absent)
└── test/{dog,cat}/..."""

CSV_LAYOUT = """\
labels.csv                    <- data_dir (the CSV file, or a folder holding exactly one .csv)
  path,label[,split]
  clips/dog_01.wav,dog,train  (relative paths are resolved against the CSV's folder)
  clips/cat_07.wav,cat,test   (split: train / validation (or val) / test; optional column)"""

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def _carve(examples, test_fraction, validation_fraction, seed, have_test, have_val):
    splits = {
        "train": examples["train"],
        "validation": examples["validation"],
        "test": examples["test"],
    }
    notes = []
    if not have_test:
        splits["train"], splits["test"] = stratified_holdout(
            splits["train"], test_fraction, seed=seed
        )
        notes.append(f"test = seeded {test_fraction:g}")
    if not have_val:
        frac = validation_fraction if have_test else validation_fraction / (1.0 - test_fraction)
        splits["train"], splits["validation"] = stratified_holdout(
            splits["train"], min(frac, 0.95), seed=seed + 1
        )
        notes.append(f"validation = seeded {validation_fraction:g}")
    return splits, notes


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))


@register(
    "folder",
    description="Your own clips, one sub-folder per class (optionally train/validation/test).",
    layout=FOLDER_LAYOUT,
)
def load_folder(
    data_dir,
    *,
    layout: str = "auto",
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load a folder with one sub-folder per class (class names = sorted folder names).

    With ``layout="splits"`` (auto-detected when ``train/`` exists next to ``test/``,
    ``validation/`` or ``val/``), the split folders are used as given; a missing ``validation/``
    is carved from train. With ``layout="classes"``, test and validation are seeded splits
    stratified by class (default 70/10/20 % train/validation/test).

    Args:
        data_dir: the top folder.
        layout: ``"auto"``, ``"classes"`` or ``"splits"``.
        test_fraction: share of each class for test when there is no ``test/`` folder.
        validation_fraction: share of each class for validation when there is no validation
            folder.
        seed: split seed.

    Returns:
        :class:`AudioDataset`; ``meta``: ``relpath`` (path below the class folder).

    Raises:
        DatasetLayoutError: no class folders, a class folder without audio, split folders with
            different class lists.
        ValueError: bad option.

    Example:
        >>> ds = load_folder("my_sounds", test_fraction=0.25)  # doctest: +SKIP
    """
    root = require_dir("folder", data_dir, FOLDER_LAYOUT)
    check_choice("folder", "layout", layout, ("auto", "classes", "splits"))
    test_fraction, validation_fraction = check_split_fractions(
        "folder", test_fraction, validation_fraction
    )
    seed = check_int("folder", "seed", seed, 0)
    layout, split_dirs = _split_dirs(root, layout)
    class_names, examples = _folder_examples(split_dirs)
    splits, notes = _carve(
        examples,
        test_fraction,
        validation_fraction,
        seed,
        have_test="test" in split_dirs,
        have_val="validation" in split_dirs,
    )
    return AudioDataset(
        name="folder",
        class_names=class_names,
        multi_label=False,
        sample_rate_hint=None,
        splits=splits,
        info={
            "data_dir": str(root),
            "protocol": f"layout {layout}"
            + ("; " + ", ".join(notes) if notes else "")
            + f" (seed {seed})",
            "options": {"layout": layout, "seed": seed},
        },
    )


def _split_dirs(root: Path, layout: str) -> tuple[str, dict[str, Path]]:
    """``(layout, {split: folder})``: ``"auto"`` resolved, ``val/`` read as ``validation``."""
    split_dirs: dict[str, Path] = {}
    for name in ("train", "validation", "val", "test"):
        if (root / name).is_dir():
            split_dirs.setdefault(_SPLIT_ALIASES[name], root / name)
    if layout == "auto":
        layout = "splits" if "train" in split_dirs and len(split_dirs) > 1 else "classes"
    if layout == "splits" and "train" not in split_dirs:
        raise DatasetLayoutError(
            "folder", root, "layout='splits' needs a 'train/' folder", FOLDER_LAYOUT
        )
    return layout, (split_dirs if layout == "splits" else {"train": root})


def _folder_examples(split_dirs: dict[str, Path]) -> tuple[list[str], dict[str, list[Example]]]:
    """The class names (the first split's class folders) and each split's examples."""
    class_names: list[str] | None = None
    examples: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for split, sdir in split_dirs.items():
        dirs = _class_dirs(sdir)
        if not dirs:
            raise DatasetLayoutError(
                "folder", sdir, "there are no class sub-folders", FOLDER_LAYOUT
            )
        names = [d.name for d in dirs]
        if class_names is None:
            class_names = names
        elif set(names) - set(class_names):
            raise DatasetLayoutError(
                "folder",
                sdir,
                f"split folder '{split}' has classes {sorted(set(names) - set(class_names))} "
                f"that 'train/' lacks",
                FOLDER_LAYOUT,
            )
        index = {c: i for i, c in enumerate(class_names)}
        for d in dirs:
            examples[split] += _class_examples(d, index[d.name], split)
    return list(class_names or []), examples


def _class_examples(folder: Path, label: int, split: str) -> list[Example]:
    """The audio files of one class folder (none is an error in ``train``)."""
    files = list_audio(folder)
    if not files and split == "train":
        raise DatasetLayoutError(
            "folder", folder, f"class folder '{folder.name}' has no audio files", FOLDER_LAYOUT
        )
    return [Example(str(p), label, {"relpath": p.relative_to(folder).as_posix()}) for p in files]


def _find_csv(data_dir) -> Path:
    if data_dir is not None and Path(data_dir).is_file():
        return Path(data_dir).resolve()
    root = require_dir("csv", data_dir, CSV_LAYOUT)
    cands = sorted(root.glob("*.csv"))
    if len(cands) != 1:
        found = [c.name for c in cands] or "none"
        raise DatasetLayoutError(
            "csv",
            root,
            f"expected exactly one .csv file in the folder (found: {found}); pass the CSV file "
            "itself as data_dir",
            CSV_LAYOUT,
        )
    return cands[0]


def _check_csv_options(test_fraction, validation_fraction, seed, multi_label, separator):
    """The checked ``(test_fraction, validation_fraction, seed)`` of :func:`load_csv`."""
    test_fraction, validation_fraction = check_split_fractions(
        "csv", test_fraction, validation_fraction
    )
    seed = check_int("csv", "seed", seed, 0)
    if not isinstance(multi_label, bool):
        raise ValueError(
            f"Dataset 'csv': option multi_label must be True or False, got {multi_label!r}."
        )
    if not isinstance(separator, str) or not separator or separator == ",":
        raise ValueError(
            f"Dataset 'csv': option label_separator must be a non-empty string other than ',', "
            f"got {separator!r}."
        )
    return test_fraction, validation_fraction, seed


def _row_labels(csv_path: Path, row: dict[str, str], n: int, multi_label, separator) -> list:
    """The label names of data row ``n`` (1-based)."""
    parts = row["label"].split(separator) if multi_label else [row["label"]]
    parts = [p.strip() for p in parts if p.strip()]
    if not parts:
        raise DatasetLayoutError(
            "csv", csv_path.parent, f"'{csv_path.name}' row {n} has an empty label", CSV_LAYOUT
        )
    return parts


def _csv_classes(classes, parsed: list[list[str]]) -> list[str]:
    """The class names: ``classes`` checked, or the sorted distinct labels."""
    if classes is None:
        return sorted({lab for labs in parsed for lab in labs})
    if isinstance(classes, str):
        raise ValueError("Dataset 'csv': option classes must be a list of names, not a string.")
    class_names = [str(c) for c in classes]
    if len(set(class_names)) != len(class_names) or not class_names:
        raise ValueError(f"Dataset 'csv': option classes must be distinct names, got {classes!r}.")
    return class_names


def _row_example(csv_path: Path, row, n: int, labs, class_names, multi_label):
    """``(split, Example)`` of data row ``n``: its split checked, its path made absolute
    (relative to the CSV's folder) and its labels as an index or a multi-hot vector."""
    index = {c: i for i, c in enumerate(class_names)}
    bad = [lab for lab in labs if lab not in index]
    if bad:
        raise DatasetLayoutError(
            "csv",
            csv_path.parent,
            f"'{csv_path.name}' row {n} has label(s) {bad} not in classes {class_names}",
            CSV_LAYOUT,
        )
    split_value = row.get("split", "").strip().lower() or "train"
    if split_value not in _SPLIT_ALIASES:
        raise DatasetLayoutError(
            "csv",
            csv_path.parent,
            f"'{csv_path.name}' row {n} has split {row.get('split')!r}; use train, validation "
            "(or val) or test",
            CSV_LAYOUT,
        )
    path = Path(row["path"]).expanduser()
    if not path.is_absolute():
        path = csv_path.parent / path
    if multi_label:
        label = np.zeros(len(class_names), bool)
        label[[index[lab] for lab in labs]] = True
    elif len(labs) != 1:
        raise DatasetLayoutError("csv", csv_path.parent, f"row {n} has several labels", CSV_LAYOUT)
    else:
        label = index[labs[0]]
    return _SPLIT_ALIASES[split_value], Example(str(path), label, {"row": n})


@register(
    "csv",
    description="Your own clips listed in a CSV: path,label[,split].",
    layout=CSV_LAYOUT,
)
def load_csv(
    data_dir,
    *,
    classes: Sequence[str] | None = None,
    multi_label: bool = False,
    label_separator: str = ";",
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load clips listed in a CSV with columns ``path``, ``label`` and optionally ``split``.

    Rows with a ``split`` (train / validation / val / test) go there; without the column (or
    without any validation/test rows), seeded splits stratified by label are carved from train.
    Files are not opened here: a missing or corrupt file is skipped and reported at decode time.

    Args:
        data_dir: the CSV file, or a folder holding exactly one ``.csv``.
        classes: class names in index order; default the sorted distinct labels.
        multi_label: labels are ``label_separator``-separated lists (multi-hot targets).
        label_separator: separator of multi-label lists.
        test_fraction: share for test when no row says ``test``.
        validation_fraction: share for validation when no row says ``validation``.
        seed: split seed.

    Returns:
        :class:`AudioDataset`; ``meta``: ``row`` (1-based data row number).

    Raises:
        DatasetLayoutError: no CSV, missing columns, empty label, unknown split value, label not
            in ``classes``.
        ValueError: bad option.

    Example:
        >>> ds = load_csv("labels.csv", classes=["cat", "dog"])  # doctest: +SKIP
    """
    csv_path = _find_csv(data_dir)
    test_fraction, validation_fraction, seed = _check_csv_options(
        test_fraction, validation_fraction, seed, multi_label, label_separator
    )
    rows = read_csv_rows("csv", csv_path, ("path", "label"), CSV_LAYOUT)
    if not rows:
        raise DatasetLayoutError(
            "csv", csv_path.parent, f"'{csv_path.name}' has no rows", CSV_LAYOUT
        )
    parsed = [
        _row_labels(csv_path, r, n, multi_label, label_separator)
        for n, r in enumerate(rows, start=1)
    ]
    class_names = _csv_classes(classes, parsed)
    examples: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for n, (row, labs) in enumerate(zip(rows, parsed), start=1):
        split_value, example = _row_example(csv_path, row, n, labs, class_names, multi_label)
        examples[split_value].append(example)
    splits, notes = _carve(
        examples,
        test_fraction,
        validation_fraction,
        seed,
        have_test=bool(examples["test"]),
        have_val=bool(examples["validation"]),
    )
    return AudioDataset(
        name="csv",
        class_names=class_names,
        multi_label=multi_label,
        sample_rate_hint=None,
        splits=splits,
        info={
            "data_dir": str(csv_path),
            "protocol": "split column"
            + ("; " + ", ".join(notes) if notes else "")
            + f" (seed {seed})",
            "options": {"multi_label": multi_label, "seed": seed},
        },
    )
