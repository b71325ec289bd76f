"""``ravdess``: RAVDESS emotional speech/song audio (24 actors, 8 emotions, 48 kHz)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_choice,
    require_dir,
)
from keras_quaternion.datasets.registry import register

__all__ = ["EMOTIONS", "load_ravdess"]

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

LAYOUT = """\
RAVDESS/                      <- data_dir (Actor_XX folders here or one level below,
├── Actor_01/                    e.g. Audio_Speech_Actors_01-24/Actor_01/)
│   ├── 03-01-01-01-01-01-01.wav
│   │     modality-vocal channel-emotion-intensity-statement-repetition-actor
│   │     (03 audio-only; vocal 01 speech / 02 song; emotion 01..08)
│   └── ...
├── Actor_02/
└── ... Actor_24/"""

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$", re.IGNORECASE)
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$", re.IGNORECASE)


def _actors(value, option: str) -> tuple[int, ...]:
    if isinstance(value, int | str):
        value = (value,)
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Dataset 'ravdess': option {option} must be actor numbers 1..24, got {value!r}."
        ) from None
    bad = [a for a in out if not 1 <= a <= 24]
    if bad:
        raise ValueError(f"Dataset 'ravdess': option {option} has actors outside 1..24: {bad}.")
    return out


@register(
    "ravdess",
    description="RAVDESS emotional speech (or song): 8 emotions, 24 actors, 48 kHz.",
    layout=LAYOUT,
)
def load_ravdess(
    data_dir,
    *,
    vocal_channel: str = "speech",
    test_actors: Sequence[int] = (21, 22, 23, 24),
    validation_actors: Sequence[int] = (19, 20),
) -> AudioDataset:
    """Load RAVDESS audio with an actor-independent split; the label is the emotion.

    Defaults: test actors 21-24, validation actors 19-20, train actors 1-18 (odd actors are male,
    even female, so every split is gender-balanced). Emotion indices follow the file name field
    (01 neutral ... 08 surprised). Song files have no ``disgust`` / ``surprised``; the 8 classes
    are kept anyway so label indices never change.

    Args:
        data_dir: folder holding the ``Actor_XX`` folders (directly or one level below).
        vocal_channel: ``"speech"`` (1440 files), ``"song"`` (1012) or ``"both"``.
        test_actors: actor numbers (1..24) of the test split.
        validation_actors: actor numbers of the validation split (may be empty).

    Returns:
        :class:`AudioDataset`; ``meta``: ``actor``, ``gender``, ``vocal_channel``,
        ``intensity`` (``"normal"``/``"strong"``), ``statement``, ``repetition``.

    Raises:
        DatasetLayoutError: no ``Actor_XX`` folders with RAVDESS-named WAV files.
        ValueError: bad ``vocal_channel``, actor numbers outside 1..24, overlapping actor lists.

    Example:
        >>> ds = load_ravdess("data/RAVDESS", test_actors=[23, 24], validation_actors=[])
        ... # doctest: +SKIP
    """
    root = require_dir("ravdess", data_dir, LAYOUT)
    check_choice("ravdess", "vocal_channel", vocal_channel, ("speech", "song", "both"))
    test_a, val_a = _split_actors(test_actors, validation_actors)
    channels = {"speech": {1}, "song": {2}, "both": {1, 2}}[vocal_channel]
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    seen = 0
    for path, fields in _named_files(_actor_dirs(root)):
        seen += 1
        example = _example(path, fields, channels)
        if example is not None:
            actor = example.meta["actor"]
            split = "test" if actor in test_a else "validation" if actor in val_a else "train"
            splits[split].append(example)
    if seen == 0:
        raise DatasetLayoutError(
            "ravdess",
            root,
            "the Actor_XX folders hold no files named MM-VV-EE-II-SS-RR-AA.wav",
            LAYOUT,
        )
    if not any(splits.values()):
        raise DatasetLayoutError(
            "ravdess", root, f"no audio-only (03-...) {vocal_channel} files were found", LAYOUT
        )
    return AudioDataset(
        name="ravdess",
        class_names=list(EMOTIONS),
        multi_label=False,
        sample_rate_hint=48000,
        splits=splits,
        info={
            "data_dir": str(root),
            "protocol": f"actor-independent: test actors {list(test_a)}, validation actors "
            f"{list(val_a)}, train the others ({vocal_channel})",
            "options": {
                "vocal_channel": vocal_channel,
                "test_actors": list(test_a),
                "validation_actors": list(val_a),
            },
        },
    )


def _split_actors(test_actors, validation_actors) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The checked test and validation actor numbers (at least one test actor, no overlap)."""
    test_a = _actors(test_actors, "test_actors")
    val_a = _actors(validation_actors, "validation_actors")
    if not test_a:
        raise ValueError("Dataset 'ravdess': option test_actors must name at least one actor.")
    if set(test_a) & set(val_a):
        raise ValueError(
            f"Dataset 'ravdess': test_actors {list(test_a)} and validation_actors {list(val_a)} "
            "overlap."
        )
    return test_a, val_a


def _actor_dirs(root: Path) -> list[Path]:
    """The ``Actor_XX`` folders in ``root`` or one level below it (at least one)."""
    actor_dirs = sorted(
        [d for d in root.iterdir() if d.is_dir() and _ACTOR_DIR.match(d.name)]
        + [d for d in root.glob("*/Actor_*") if d.is_dir() and _ACTOR_DIR.match(d.name)]
    )
    if not actor_dirs:
        raise DatasetLayoutError("ravdess", root, "no 'Actor_XX' folders were found", LAYOUT)
    return actor_dirs


def _named_files(actor_dirs):
    """``(path, seven identifier fields)`` of each file named like RAVDESS's, folder by folder."""
    for d in actor_dirs:
        for p in sorted(d.iterdir()):
            m = _NAME.match(p.name)
            if m:
                yield p, tuple(int(g) for g in m.groups())


def _example(path: Path, fields: tuple[int, ...], channels: set[int]) -> Example | None:
    """The :class:`Example` of an audio-only file of the chosen vocal channels, else ``None``."""
    mod, voc, emo, inten, stmt, rep, actor = fields
    if mod != 3 or voc not in channels or not 1 <= emo <= 8:
        return None
    meta = {
        "actor": actor,
        "gender": "male" if actor % 2 else "female",
        "vocal_channel": "speech" if voc == 1 else "song",
        "intensity": "normal" if inten == 1 else "strong",
        "statement": stmt,
        "repetition": rep,
    }
    return Example(str(path), emo - 1, meta)
