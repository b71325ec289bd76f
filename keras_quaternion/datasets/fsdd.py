"""``fsdd``: Free Spoken Digit Dataset (spoken digits 0-9, 8 kHz)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_choice,
    check_fraction,
    check_int,
    require_dir,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import register

__all__ = ["load_fsdd"]

LAYOUT = """\
fsdd/                         <- data_dir
├── recordings/
│   ├── 0_george_0.wav        {digit}_{speaker}_{take}.wav, 8 kHz mono
│   ├── 0_george_1.wav
│   └── ...
└── speakers.json             (optional: gender/accent per speaker)"""

_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$", re.IGNORECASE)


def _as_tuple(value, option: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        return tuple(str(v) for v in value)
    except TypeError:
        raise ValueError(
            f"Dataset 'fsdd': option {option} must be a speaker name or a list of names, got "
            f"{value!r}."
        ) from None


@register(
    "fsdd",
    description="Free Spoken Digit Dataset: 10 digits, 6 speakers, 3000 clips at 8 kHz.",
    layout=LAYOUT,
)
def load_fsdd(
    data_dir,
    *,
    split: str = "takes",
    test_speakers: Sequence[str] | str = ("theo",),
    validation_speakers: Sequence[str] | str = ("george",),
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load FSDD from ``data_dir`` (the folder holding ``recordings/``).

    Split protocols:

    * ``split="takes"`` (conventional): takes 0-4 of every digit and speaker are the test set
      (300 of 3000 files); validation is a seeded 10 % of the rest, stratified by digit and
      speaker (270 files), train the remaining 2430.
    * ``split="speaker"`` (speaker-independent): all files of ``test_speakers`` are the test set,
      all of ``validation_speakers`` the validation set, the other speakers train. Defaults: test
      ``theo`` (USA accent), validation ``george`` (Greek accent); train keeps jackson (USA),
      nicolas (Belgian French), lucas and yweweler (German).

    Args:
        data_dir: the FSDD folder (or its ``recordings/`` folder itself).
        split: ``"takes"`` or ``"speaker"``.
        test_speakers: speakers held out for test (``split="speaker"``).
        validation_speakers: speakers held out for validation (``split="speaker"``); may be empty.
        validation_fraction: share of train used for validation (``split="takes"``), in (0, 1).
        seed: seed of the validation carve (``split="takes"``).

    Returns:
        :class:`AudioDataset`, classes ``"0"`` .. ``"9"``; ``meta``: ``speaker``, ``take``
        (and ``gender``/``accent`` when ``speakers.json`` is present).

    Raises:
        DatasetLayoutError: no ``recordings/`` folder with ``{digit}_{speaker}_{take}.wav`` files.
        ValueError: bad option (unknown split, unknown speaker, overlapping speaker lists ...).

    Example:
        >>> ds = load_fsdd("../shared/data/fsdd")  # doctest: +SKIP
        >>> len(ds.splits["test"])  # doctest: +SKIP
        300
    """
    root = require_dir("fsdd", data_dir, LAYOUT)
    check_choice("fsdd", "split", split, ("takes", "speaker"))
    seed = check_int("fsdd", "seed", seed, 0)
    validation_fraction = check_fraction("fsdd", "validation_fraction", validation_fraction)
    rec, root = _recordings(root)
    examples = _examples(rec, _speakers_info(root))
    found = sorted({e.meta["speaker"] for e in examples})
    if split == "takes":
        splits, protocol = _takes_split(examples, float(validation_fraction), seed)
    else:
        test_s = _as_tuple(test_speakers, "test_speakers")
        val_s = _as_tuple(validation_speakers, "validation_speakers")
        _check_speakers(test_s, val_s, found, rec)
        splits = {
            "train": [e for e in examples if e.meta["speaker"] not in test_s + val_s],
            "validation": [e for e in examples if e.meta["speaker"] in val_s],
            "test": [e for e in examples if e.meta["speaker"] in test_s],
        }
        protocol = f"speaker-independent: test {list(test_s)}, validation {list(val_s)}"
    return AudioDataset(
        name="fsdd",
        class_names=[str(d) for d in range(10)],
        multi_label=False,
        sample_rate_hint=8000,
        splits=splits,
        info={
            "data_dir": str(root),
            "protocol": protocol,
            "speakers": found,
            "options": {"split": split, "seed": seed},
        },
    )


def _recordings(root):
    """``(recordings folder, dataset root)``; ``root`` may be the recordings folder itself."""
    rec = root / "recordings"
    if not rec.is_dir():
        if any(_NAME.match(p.name) for p in root.glob("*.wav")):
            return root, root.parent  # data_dir points at recordings/ itself
        raise DatasetLayoutError("fsdd", root, "there is no 'recordings/' folder", LAYOUT)
    return rec, root


def _speakers_info(root) -> dict:
    """``speakers.json`` (gender and accent per speaker), or ``{}`` when absent or broken."""
    if not (root / "speakers.json").is_file():
        return {}
    try:
        info = json.loads((root / "speakers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # optional file; a broken copy only loses gender/accent meta
    return info if isinstance(info, dict) else {}


def _examples(rec, speakers_info: dict) -> list[Example]:
    """One :class:`Example` per ``{digit}_{speaker}_{take}.wav``, sorted by file name."""
    files = sorted(p for p in rec.iterdir() if _NAME.match(p.name))
    if not files:
        raise DatasetLayoutError(
            "fsdd", rec, "no files named {digit}_{speaker}_{take}.wav in 'recordings/'", LAYOUT
        )
    examples = []
    for p in files:
        digit, speaker, take = _NAME.match(p.name).groups()
        speaker = speaker.lower()
        meta = {"speaker": speaker, "take": int(take)}
        extra = speakers_info.get(speaker, {})
        meta.update({k: extra[k] for k in ("gender", "accent") if k in extra})
        examples.append(Example(str(p), int(digit), meta))
    return examples


def _takes_split(examples, validation_fraction: float, seed: int):
    """The conventional split and its protocol text: takes 0-4 test, a seeded holdout of the
    rest (stratified by digit and speaker) validation."""
    test = [e for e in examples if e.meta["take"] <= 4]
    rest = [e for e in examples if e.meta["take"] > 4]
    train, val = stratified_holdout(
        rest,
        validation_fraction,
        seed=seed,
        stratify=lambda e: (e.label, e.meta["speaker"]),
    )
    protocol = (
        f"conventional: takes 0-4 test; validation = seeded ({seed}) "
        f"{validation_fraction:g} of the rest, stratified by digit and speaker"
    )
    return {"train": train, "validation": val, "test": test}, protocol


def _check_speakers(test_s, val_s, found, rec) -> None:
    """Known speakers, at least one for test, none in two splits and some left to train on."""
    for option, chosen in (("test_speakers", test_s), ("validation_speakers", val_s)):
        bad = [s for s in chosen if s not in found]
        if bad:
            raise ValueError(
                f"Dataset 'fsdd': option {option} names unknown speaker(s) {bad}; speakers in "
                f"'{rec}': {found}."
            )
    if not test_s:
        raise ValueError("Dataset 'fsdd': option test_speakers must name at least one speaker.")
    if set(test_s) & set(val_s):
        raise ValueError(
            f"Dataset 'fsdd': test_speakers {list(test_s)} and validation_speakers "
            f"{list(val_s)} overlap; a speaker can only be in one split."
        )
    if not set(found) - set(test_s) - set(val_s):
        raise ValueError(
            "Dataset 'fsdd': test_speakers and validation_speakers leave no speaker for "
            f"training (speakers: {found})."
        )
