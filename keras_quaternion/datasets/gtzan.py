"""``gtzan``: GTZAN music genre collection (10 genres x 100 clips of 30 s, 22.05 kHz)."""

from __future__ import annotations

from pathlib import Path

from keras_quaternion.datasets.base import (
    AudioDataset,
    DatasetLayoutError,
    Example,
    check_int,
    check_split_fractions,
    list_audio,
    require_dir,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import register

__all__ = ["GENRES", "load_gtzan"]

GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

LAYOUT = """\
gtzan/                        <- data_dir (any one of these forms)
├── genres_original/          (Kaggle copy)   or  genres/ (original .au copy)  or  nothing
│   ├── blues/
│   │   ├── blues.00000.wav   (.wav or .au)
│   │   └── ...
│   ├── classical/
│   └── ... (10 genres: blues classical country disco hiphop jazz metal pop reggae rock)"""


def _find_genre_root(root: Path) -> Path | None:
    for cand in (
        root / "genres_original",
        root / "genres",
        root / "Data" / "genres_original",
        root,
    ):
        if cand.is_dir() and any((cand / g).is_dir() for g in GENRES):
            return cand
    return None


@register(
    "gtzan",
    description="GTZAN music genres: 10 genres x 100 clips of 30 s.",
    layout=LAYOUT,
)
def load_gtzan(
    data_dir,
    *,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> AudioDataset:
    """Load GTZAN from ``data_dir``.

    GTZAN has no official split. This loader uses a seeded random split stratified by genre:
    ``test_fraction`` of each genre for test, ``validation_fraction`` for validation, the rest
    train (default 80/10/10 clips per genre). Known faults of the collection (repeated clips,
    artist overlap between splits, the unreadable ``jazz.00054.wav`` of the Kaggle copy) are not
    filtered; undecodable files are skipped and reported when decoding. Results are therefore
    optimistic compared with artist-filtered protocols.

    Args:
        data_dir: the GTZAN folder (holding ``genres_original/``, ``genres/`` or the genre
            folders themselves).
        test_fraction: share of each genre for test, in (0, 1).
        validation_fraction: share of each genre for validation, in (0, 1).
        seed: split seed.

    Returns:
        :class:`AudioDataset` with the 10 genres in alphabetical order; ``meta``: ``track``
        (the file stem, e.g. ``"jazz.00054"``).

    Raises:
        DatasetLayoutError: no genre folders, or genre folders without audio.
        ValueError: fractions outside (0, 1) or summing to >= 0.9.

    Example:
        >>> ds = load_gtzan("data/gtzan", seed=1)  # doctest: +SKIP
    """
    root = require_dir("gtzan", data_dir, LAYOUT)
    test_fraction, validation_fraction = check_split_fractions(
        "gtzan", test_fraction, validation_fraction
    )
    seed = check_int("gtzan", "seed", seed, 0)
    genre_root = _find_genre_root(root)
    if genre_root is None:
        raise DatasetLayoutError(
            "gtzan", root, f"no genre folders ({', '.join(GENRES)}) were found", LAYOUT
        )
    missing = [g for g in GENRES if not (genre_root / g).is_dir()]
    if missing:
        raise DatasetLayoutError(
            "gtzan", genre_root, f"the genre folder(s) {missing} are missing", LAYOUT
        )
    examples = []
    for label, genre in enumerate(GENRES):
        files = list_audio(genre_root / genre)
        if not files:
            raise DatasetLayoutError(
                "gtzan", genre_root / genre, f"genre folder '{genre}' has no audio files", LAYOUT
            )
        examples += [Example(str(p), label, {"track": p.stem}) for p in files]
    rest, test = stratified_holdout(examples, test_fraction, seed=seed)
    train, val = stratified_holdout(
        rest, validation_fraction / (1.0 - test_fraction), seed=seed + 1
    )
    return AudioDataset(
        name="gtzan",
        class_names=list(GENRES),
        multi_label=False,
        sample_rate_hint=22050,
        splits={"train": train, "validation": val, "test": test},
        info={
            "data_dir": str(genre_root),
            "protocol": f"seeded ({seed}) random split stratified by genre: "
            f"{test_fraction:g} test, {validation_fraction:g} validation (no fault filtering)",
            "options": {
                "test_fraction": test_fraction,
                "validation_fraction": validation_fraction,
                "seed": seed,
            },
        },
    )
