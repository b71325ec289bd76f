"""``speech_commands``: Google Speech Commands v0.02 (35 words, 1 s clips, 16 kHz)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_choice,
    check_fraction,
    check_int,
    list_audio,
    require_dir,
)
from keras_quaternion.datasets.registry import register

__all__ = ["COMMAND_WORDS", "load_speech_commands"]

#: The ten command words of the 12-class task.
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"

LAYOUT = """\
speech_commands_v0.02/        <- data_dir
├── backward/
│   ├── 0165e0e8_nohash_0.wav  {speaker hash}_nohash_{n}.wav, 1 s, 16 kHz
│   └── ...
├── bed/ ... zero/            (35 word folders)
├── _background_noise_/       (long noise recordings; needed for task=12 silence)
│   ├── doing_the_dishes.wav
│   └── ...
├── validation_list.txt       (word/file.wav per line)
└── testing_list.txt"""

_SPLIT_REGION = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


def _read_list(root, name: str) -> set[str]:
    path = root / name
    if not path.is_file():
        raise DatasetLayoutError("speech_commands", root, f"'{name}' is missing", LAYOUT)
    lines = path.read_text(encoding="utf-8").splitlines()
    return {ln.strip().replace("\\", "/") for ln in lines if ln.strip()}


def _noise_files(root) -> list[tuple[str, float]]:
    import soundfile as sf

    folder = root / "_background_noise_"
    if not folder.is_dir():
        raise DatasetLayoutError(
            "speech_commands",
            root,
            "task=12 needs the '_background_noise_/' folder to cut _silence_ clips",
            LAYOUT,
        )
    out, bad = [], []
    for p in list_audio(folder, recursive=False):
        try:
            info = sf.info(str(p))
            seconds = info.frames / info.samplerate
        except Exception as err:  # unreadable header: report, use the others
            bad.append(f"{p.name} ({err})")
            continue
        if seconds > 0:
            out.append((str(p), seconds))
    if bad:
        warnings.warn(
            "speech_commands: skipped unreadable background noise file(s): " + "; ".join(bad),
            UserWarning,
            stacklevel=3,
        )
    if not out:
        raise DatasetLayoutError(
            "speech_commands", folder, "'_background_noise_/' has no readable audio files", LAYOUT
        )
    return out


def _silence_examples(
    noise: list[tuple[str, float]], split: str, count: int, rng: np.random.Generator, label: int
) -> list[Example]:
    """``count`` 1-s segments from this split's own region of every noise file (disjoint audio)."""
    lo, hi = _SPLIT_REGION[split]
    out = []
    for k in range(count):
        path, seconds = noise[k % len(noise)]
        start, stop = lo * seconds, hi * seconds
        length = min(1.0, stop - start)
        offset = start + rng.uniform(0.0, max(0.0, stop - start - length))
        out.append(
            Example(
                path,
                label,
                {"speaker": None, "background": path, "segment": k},
                offset=float(offset),
                duration=float(length),
            )
        )
    return out


def _class_names(root, words: list[str], task: int) -> list[str]:
    """Every word (task 35), or the command words, ``_unknown_`` and ``_silence_`` (task 12)."""
    if task == 35:
        return list(words)
    missing = [w for w in COMMAND_WORDS if w not in words]
    if missing:
        raise DatasetLayoutError(
            "speech_commands", root, f"task=12 needs the word folder(s) {missing}", LAYOUT
        )
    return [*COMMAND_WORDS, UNKNOWN, SILENCE]


def _word_examples(root, words: list[str], class_names: list[str]):
    """``(examples of the classes' words, examples of the other words)``, each per split, by the
    official list files."""
    validation = _read_list(root, "validation_list.txt")
    testing = _read_list(root, "testing_list.txt")
    index = {w: i for i, w in enumerate(class_names)}
    by_split: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    unknown: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for word in words:
        for p in list_audio(root / word, recursive=False):
            rel = f"{word}/{p.name}"
            split = "test" if rel in testing else "validation" if rel in validation else "train"
            meta = {"speaker": p.stem.split("_nohash_")[0], "word": word}
            if word in index:
                by_split[split].append(Example(str(p), index[word], meta))
            else:
                unknown[split].append(Example(str(p), index.get(UNKNOWN, -1), meta))
    if not any(by_split.values()):
        raise DatasetLayoutError("speech_commands", root, "the word folders hold no audio", LAYOUT)
    return by_split, unknown


def _add_unknown_and_silence(
    root, by_split, unknown, silence_fraction, unknown_fraction, seed: int, silence_label: int
) -> None:
    """Task 12: add to each split a seeded sample of unknown-word clips and silence segments
    cut from the background noise, both in proportion to its command-word clips."""
    noise = _noise_files(root)
    for i, split in enumerate(("train", "validation", "test")):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        n_known = len(by_split[split])
        pool = unknown[split]
        if unknown_fraction is not None:
            n_unknown = min(len(pool), math.ceil(unknown_fraction * n_known))
            pick = np.sort(rng.choice(len(pool), size=n_unknown, replace=False))
            pool = [pool[j] for j in pick]
        n_silence = math.ceil(silence_fraction * n_known)
        by_split[split] += pool
        by_split[split] += _silence_examples(noise, split, n_silence, rng, silence_label)


@register(
    "speech_commands",
    description="Speech Commands v0.02: 35 words (or 12 classes), 1 s clips at 16 kHz.",
    layout=LAYOUT,
)
def load_speech_commands(
    data_dir,
    *,
    task: int = 35,
    silence_fraction: float = 0.1,
    unknown_fraction: float | None = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load Speech Commands with the official ``validation_list.txt`` / ``testing_list.txt``.

    * ``task=35``: one class per word folder (35 in v0.02; v0.01 gives 30), sorted by name.
    * ``task=12``: the ten :data:`COMMAND_WORDS`, ``_unknown_`` (all other words) and
      ``_silence_``. As in TensorFlow's reference recipe, per split the number of silence clips is
      ``ceil(silence_fraction * n_command_words)`` and of unknown clips
      ``ceil(unknown_fraction * n_command_words)`` (seeded sample; ``unknown_fraction=None``
      keeps all). Silence clips are 1 s segments of the ``_background_noise_`` recordings at
      seeded offsets; train draws from the first 80 % of every recording, validation from the
      next 10 %, test from the last 10 %, so no noise audio is shared between splits. This
      approximates, but is not, the separately published v0.02 12-class test set.

    Args:
        data_dir: the extracted archive (word folders, list files, ``_background_noise_/``).
        task: ``35`` or ``12``.
        silence_fraction: silence clips per command-word clip (task 12), in [0, 1).
        unknown_fraction: unknown-word clips per command-word clip (task 12), in [0, 1), or
            ``None`` for all of them.
        seed: seed of the unknown sample and silence offsets.

    Returns:
        :class:`AudioDataset`; ``meta``: ``speaker`` (the hash before ``_nohash_``) and
        ``word``; silence examples carry ``background`` and are file segments (``offset``,
        ``duration``).

    Raises:
        DatasetLayoutError: missing list files, no word folders, missing command words or
            ``_background_noise_/`` for task 12.
        ValueError: bad ``task``, fractions or seed.

    Example:
        >>> ds = load_speech_commands("data/speech_commands_v0.02", task=12)  # doctest: +SKIP
    """
    root = require_dir("speech_commands", data_dir, LAYOUT)
    check_choice("speech_commands", "task", task, (35, 12))
    silence_fraction = check_fraction(
        "speech_commands", "silence_fraction", silence_fraction, allow_zero=True
    )
    if unknown_fraction is not None:
        unknown_fraction = check_fraction(
            "speech_commands", "unknown_fraction", unknown_fraction, allow_zero=True
        )
    seed = check_int("speech_commands", "seed", seed, 0)
    words = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
    )
    if not words:
        raise DatasetLayoutError("speech_commands", root, "no word folders were found", LAYOUT)
    class_names = _class_names(root, words, task)
    by_split, unknown = _word_examples(root, words, class_names)
    protocol = "official validation_list.txt / testing_list.txt"
    if task == 12:
        _add_unknown_and_silence(
            root, by_split, unknown, silence_fraction, unknown_fraction, seed, len(class_names) - 1
        )
        protocol += (
            f"; 12 classes with silence {silence_fraction:g} and unknown "
            f"{'all' if unknown_fraction is None else f'{unknown_fraction:g}'} per command clip "
            f"(seed {seed})"
        )
    else:
        protocol += f"; {len(words)} word classes"
    return AudioDataset(
        name="speech_commands",
        class_names=class_names,
        multi_label=False,
        sample_rate_hint=16000,
        splits=by_split,
        info={
            "data_dir": str(root),
            "protocol": protocol,
            "options": {
                "task": task,
                "silence_fraction": silence_fraction,
                "unknown_fraction": unknown_fraction,
                "seed": seed,
            },
        },
    )
