"""The experiments behind the default training recipe (docs/training.md, "The default recipe").

Trains ``qcnn6`` at width 0.25 on FSDD's speaker-independent split (train: jackson, nicolas,
lucas, yweweler; validation: george; test: theo) with one recipe per row of :data:`TRIALS`,
each a change to the recipe on ``main`` (:data:`BASE`) or to a later one, and writes a table of
what each gave on the **training** split (scored without augmentation, to show underfitting)
and the **validation** split, then a second table: validation accuracy when every validation
clip is made softer or louder (:data:`LEVELS`), for the trials of :data:`LEVEL_TRIALS`. The
test split is not shown: choosing on it would make the chosen recipe's test score optimistic.

    python benchmarks/tune_recipe.py --data-dir ../shared/data/fsdd --out build/tune \\
        --table build/figures/tune_recipe.md                 # about an hour on 2 CPU cores
    python benchmarks/tune_recipe.py --data-dir ../shared/data/fsdd --only cosine,cos-lr5e-3
    python benchmarks/tune_recipe.py --data-dir ../shared/data/fsdd --group speaker \\
        --table build/figures/tune_speaker.md            # about 1.5 h on 2 CPU cores

``--group speaker`` runs :data:`SPEAKER_TRIALS` instead: augmentations and feature
normalisations against speaker variation, tried after :data:`TRIALS`; ``--group decay`` runs
:data:`DECAY_TRIALS`, decoupled weight decay on top of the recipe they chose (about 1.5 h; 0.3
became the default, 60 epochs with it did not pass the rule); ``--group average`` runs
:data:`AVERAGE_TRIALS`, a moving average of the weights on top of that (about 30 min; 0.99
became the default).

Each run is a ``train()`` output folder under ``--out``; a finished run is read back, not
trained again, so the script can be stopped and rerun.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The recipe on ``main`` before this study: constant Adam 1e-3, batch 32, dropout 0.1, 20 epochs.
BASE = {
    "epochs": 20,
    "batch_size": 32,
    "lr": 1e-3,
    "schedule": "constant",
    "warmup_epochs": 0,
    "dropout": 0.1,
    "spec_augment": False,
    "mixup": 0.0,
    "gain_db": 0.0,
    "freq_warp": 0.0,
    "time_shift": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "ema": 0.0,
}
COSINE3 = {"schedule": "cosine", "warmup_epochs": 1, "lr": 3e-3}
COSINE5 = {**COSINE3, "lr": 5e-3}
COSINE10 = {**COSINE3, "lr": 1e-2}

#: ``(name, what changed, settings on top of BASE)``, in the order they were tried.
TRIALS = [
    ("main", "the recipe on main (constant 1e-3)", {}),
    ("cosine", "warm-up 1 epoch + cosine decay", {"schedule": "cosine", "warmup_epochs": 1}),
    ("cos-lr3e-3", "cosine, peak lr 3e-3", COSINE3),
    ("cos-lr3e-3-sa", "cosine 3e-3 + SpecAugment", {**COSINE3, "spec_augment": True}),
    (
        "cos-lr3e-3-sa-mix",
        "cosine 3e-3 + SpecAugment + mixup 0.2",
        {**COSINE3, "spec_augment": True, "mixup": 0.2},
    ),
    ("cos-lr3e-3-mix", "cosine 3e-3 + mixup 0.2", {**COSINE3, "mixup": 0.2}),
    ("cos-lr1e-2", "cosine, peak lr 1e-2", COSINE10),
    ("cos-lr3e-3-bs64", "cosine 3e-3, batch 64", {**COSINE3, "batch_size": 64}),
    ("cos-lr1e-2-drop0.2", "cosine 1e-2, dropout 0.2", {**COSINE10, "dropout": 0.2}),
    ("cos-lr1e-2-drop0", "cosine 1e-2, no dropout", {**COSINE10, "dropout": 0.0}),
    ("cos-lr3e-2", "cosine, peak lr 3e-2", {**COSINE10, "lr": 3e-2}),
    ("cos-lr1e-2-seed1", "cosine 1e-2, seed 1 (noise check)", {**COSINE10, "seed": 1}),
    ("cos-lr3e-3-seed1", "cosine 3e-3, seed 1", {**COSINE3, "seed": 1}),
    ("cos-lr5e-3", "cosine, peak lr 5e-3 (**chosen**)", COSINE5),
    ("cos-lr5e-3-seed1", "cosine 5e-3, seed 1", {**COSINE5, "seed": 1}),
    ("cos-lr5e-3-gain12", "cosine 5e-3 + level changes ±12 dB", {**COSINE5, "gain_db": 12.0}),
    (
        "cos-lr5e-3-gain12-seed1",
        "cosine 5e-3 + level changes ±12 dB, seed 1",
        {**COSINE5, "gain_db": 12.0, "seed": 1},
    ),
]

#: Trials against speaker variation (``--group speaker``), each a change to the recipe chosen
#: by :data:`TRIALS` (``cos-lr5e-3``, re-measured first), with two seeds.
SPEAKER_TRIALS = [
    ("before", "the recipe chosen above (cosine 5e-3, 20 epochs)", COSINE5),
    ("before-seed1", "the recipe chosen above, seed 1", {**COSINE5, "seed": 1}),
    ("fw0.15", "frequency warping ±15 %", {**COSINE5, "freq_warp": 0.15}),
    ("fw0.15-seed1", "frequency warping ±15 %, seed 1", {**COSINE5, "freq_warp": 0.15, "seed": 1}),
    ("fw0.05", "frequency warping ±5 %", {**COSINE5, "freq_warp": 0.05}),
    ("fw0.05-seed1", "frequency warping ±5 %, seed 1", {**COSINE5, "freq_warp": 0.05, "seed": 1}),
    ("ts0.1", "time shift ±10 %", {**COSINE5, "time_shift": 0.1}),
    ("ts0.1-seed1", "time shift ±10 %, seed 1", {**COSINE5, "time_shift": 0.1, "seed": 1}),
    (
        "level-norm",
        "each clip's level normalised (features)",
        {**COSINE5, "utterance_norm": "level"},
    ),
    (
        "level-norm-seed1",
        "each clip's level normalised (features), seed 1",
        {**COSINE5, "utterance_norm": "level", "seed": 1},
    ),
    ("band-norm", "each clip's mel bands mean-normalised", {**COSINE5, "utterance_norm": "band"}),
    (
        "band-norm-seed1",
        "each clip's mel bands mean-normalised, seed 1",
        {**COSINE5, "utterance_norm": "band", "seed": 1},
    ),
    (
        "sa-ep40",
        "SpecAugment, 40 epochs (**chosen**)",
        {**COSINE5, "spec_augment": True, "epochs": 40},
    ),
    (
        "sa-ep40-seed1",
        "SpecAugment, 40 epochs, seed 1",
        {**COSINE5, "spec_augment": True, "epochs": 40, "seed": 1},
    ),
]

#: The default recipe the speaker study chose (cosine 5e-3, SpecAugment, 40 epochs), before
#: the decay study added weight decay 0.3 to it.
DEFAULT40 = {**COSINE5, "spec_augment": True, "epochs": 40}

#: Decoupled weight decay (AdamW) on top of :data:`DEFAULT40` (``--group decay``): that default
#: re-measured first, each with two seeds, the same rule as :data:`SPEAKER_TRIALS`.
DECAY_TRIALS = [
    ("default", "the default before this study (SpecAugment, 40 epochs)", DEFAULT40),
    ("default-seed1", "the default before this study, seed 1", {**DEFAULT40, "seed": 1}),
    ("wd0.1", "weight decay 0.1", {**DEFAULT40, "weight_decay": 0.1}),
    ("wd0.1-seed1", "weight decay 0.1, seed 1", {**DEFAULT40, "weight_decay": 0.1, "seed": 1}),
    ("wd0.3", "weight decay 0.3 (**chosen**)", {**DEFAULT40, "weight_decay": 0.3}),
    ("wd0.3-seed1", "weight decay 0.3, seed 1", {**DEFAULT40, "weight_decay": 0.3, "seed": 1}),
    # tried after 0.3 was chosen: its best epochs came late (31, 37 of 40)
    (
        "wd0.3-ep60",
        "weight decay 0.3, 60 epochs",
        {**DEFAULT40, "weight_decay": 0.3, "epochs": 60},
    ),
    (
        "wd0.3-ep60-seed1",
        "weight decay 0.3, 60 epochs, seed 1",
        {**DEFAULT40, "weight_decay": 0.3, "epochs": 60, "seed": 1},
    ),
]

#: Today's default recipe: :data:`DEFAULT40` with the weight decay the decay study chose.
DEFAULT = {**DEFAULT40, "weight_decay": 0.3}

#: A moving average of the weights on top of :data:`DEFAULT` (``--group average``), the same
#: rule, then label smoothing on top of the average; the default's rows are the decay study's
#: finished runs (same folders), read back.
AVERAGE_TRIALS = [
    ("wd0.3", "the default (weight decay 0.3)", DEFAULT),
    ("wd0.3-seed1", "the default, seed 1", {**DEFAULT, "seed": 1}),
    (
        "ema0.99",
        "moving average of the weights, momentum 0.99 (**chosen**)",
        {**DEFAULT, "ema": 0.99},
    ),
    (
        "ema0.99-seed1",
        "moving average of the weights, momentum 0.99, seed 1",
        {**DEFAULT, "ema": 0.99, "seed": 1},
    ),
    # on top of the average, once it was chosen
    (
        "ema0.99-ls0.1",
        "moving average 0.99 + label smoothing 0.1",
        {**DEFAULT, "ema": 0.99, "label_smoothing": 0.1},
    ),
    (
        "ema0.99-ls0.1-seed1",
        "moving average 0.99 + label smoothing 0.1, seed 1",
        {**DEFAULT, "ema": 0.99, "label_smoothing": 0.1, "seed": 1},
    ),
]

#: Level changes (dB) applied to every validation clip for the second table.
LEVELS = (-12, -6, 0, 6, 12)
LEVEL_TRIALS = ("cos-lr5e-3", "cos-lr5e-3-seed1", "cos-lr5e-3-gain12", "cos-lr5e-3-gain12-seed1")


#: dB below each clip's loudest cell where ``utterance_norm`` clamps the log-mel
TOP_DB = 80.0


def normalised(prepared, how: str):
    """Every split with each clip's log-mel component normalised on its own (an experiment).

    ``"level"``: minus the clip's loudest value, clamped at ``-TOP_DB`` (librosa's
    ``power_to_db(ref=np.max, top_db=80)``): the clip's level no longer matters. ``"band"``:
    besides, each mel band minus its mean over the clip's frames that are not padding (cepstral
    mean normalisation in the mel domain). The deltas are kept.
    """
    import numpy as np

    from keras_quaternion.training import PreparedData

    splits = {}
    for split in ("train", "validation", "test"):
        x, y = prepared.arrays(split)
        x = np.array(x)
        logmel = x[..., 0]
        floor = logmel.min()
        if how == "band":
            active = logmel.max(axis=2, keepdims=True) > floor  # frames that are not padding
            count = np.maximum(active.sum(axis=1, keepdims=True), 1)
            mean = np.where(active, logmel, 0).sum(axis=1, keepdims=True) / count
            logmel = np.where(active, logmel - mean, logmel - mean.max(axis=2, keepdims=True))
        top = logmel.max(axis=(1, 2), keepdims=True)
        x[..., 0] = np.maximum(logmel - top, -TOP_DB)
        splits[split] = (x, y)
    return PreparedData.from_arrays(
        splits,
        class_names=prepared.class_names,
        feature_config=prepared.feature_config,
        clip_seconds=prepared.clip_seconds,
        dataset=f"{prepared.dataset}-{how}-normalised",
    )


def run_trial(name: str, changes: dict, prepared, out: Path, seed: int) -> dict:
    """Train one trial (or read its finished run) and return its ``metrics.json``."""
    from keras_quaternion.training import train

    settings = {**BASE, **changes}
    dropout = settings.pop("dropout")
    seed = settings.pop("seed", seed)
    norm = settings.pop("utterance_norm", None)
    if norm is not None:
        prepared = normalised(prepared, norm)
    return train(
        "qcnn6",
        prepared,
        out_dir=out / name,
        width=0.25,
        model_options={"dropout": dropout},
        seed=seed,
        verbose=0,
        **settings,
    )


def _row(name: str, what: str, metrics: dict, history: list[dict]) -> str:
    last = history[-1] if history else {}
    return (
        f"| `{name}` | {what} | {metrics['train']['accuracy']:.3f} | "
        f"{metrics['validation']['accuracy']:.3f} (epoch {metrics['validation']['best_epoch']}) | "
        f"{float(last.get('val_accuracy', 'nan')):.3f} | {metrics['seconds']:.0f} s |"
    )


def table(results: list[tuple[str, str, dict, list]]) -> str:
    """The Markdown table of the trials."""
    lines = [
        "| trial | change | train accuracy | best validation accuracy | last-epoch validation "
        "| training |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_row(*item) for item in results]
    return "\n".join(lines) + "\n"


def level_table(prepared, out: Path) -> str:
    """Validation accuracy of :data:`LEVEL_TRIALS` with every clip moved by each level."""
    import numpy as np

    from keras_quaternion.training import PreparedData, load_model
    from keras_quaternion.training.evaluation import predict
    from keras_quaternion.training.metrics import accuracy

    x, y = prepared.arrays("validation")
    head = " | ".join(f"{level:+d} dB" for level in LEVELS)
    lines = [f"| trial | {head} | mean |", "|---|" + "---|" * (len(LEVELS) + 1)]
    for name in LEVEL_TRIALS:
        model = load_model(out / name / "model.keras")
        accs = []
        for level in LEVELS:
            moved = np.array(x)
            # the log-mel component, in dB, padding included: the measure of the first study,
            # kept as measured; features.change_level keeps the -100 dB floor (level study)
            moved[..., 0] += level
            data = PreparedData.from_arrays(
                {s: (moved, y) for s in ("train", "validation", "test")},
                class_names=prepared.class_names,
            )
            accs.append(accuracy(y, predict(model, data, "validation")))
        cells = " | ".join(f"{a:.3f}" for a in accs)
        lines.append(f"| `{name}` | {cells} | {sum(accs) / len(accs):.3f} |")
    return "\n".join(lines) + "\n"


def _history(folder: Path) -> list[dict]:
    with open(folder / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def plot_validation(results: list[tuple[str, str, dict, list]], path: Path, title: str) -> None:
    """Validation accuracy per epoch of every trial, one line each (seed 1 dashed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {}
    for name, _, _, history in results:
        base = name.removesuffix("-seed1")
        color = colors.setdefault(base, f"C{len(colors)}")
        epochs = [int(row["epoch"]) for row in history]
        scores = [float(row["val_accuracy"]) for row in history]
        style = "--" if name.endswith("-seed1") else "-"
        ax.plot(epochs, scores, style, color=color, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (george)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="The FSDD folder.")
    parser.add_argument("--out", type=Path, default=Path("build/tune"), help="Run folders.")
    parser.add_argument("--cache-dir", type=Path, default=None, help="Feature cache folder.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--group",
        choices=sorted(GROUPS),
        default="recipe",
        help="recipe: the trials behind the default recipe (TRIALS); speaker: the trials against "
        "speaker variation on top of it (SPEAKER_TRIALS); decay: weight decay on top of today's "
        "default (DECAY_TRIALS); average: weight averaging on top of the default after that "
        "(AVERAGE_TRIALS).",
    )
    parser.add_argument("--only", default=None, help="Comma-separated trial names to run.")
    parser.add_argument("--table", type=Path, default=None, help="Write the tables here.")
    parser.add_argument(
        "--plot", type=Path, default=None, help="Plot the trials' validation curves here (PNG)."
    )
    return parser.parse_args(argv)


#: ``--group`` names and their trial lists.
GROUPS = {
    "recipe": TRIALS,
    "speaker": SPEAKER_TRIALS,
    "decay": DECAY_TRIALS,
    "average": AVERAGE_TRIALS,
}


def main(argv=None) -> int:
    args = _parse(argv)
    from keras_quaternion.files import atomic_write
    from keras_quaternion.training import prepare

    prepared = prepare(
        "fsdd",
        args.data_dir,
        cache_dir=args.cache_dir,
        dataset_options={"split": "speaker"},
        progress=False,
    )
    chosen = set(args.only.split(",")) if args.only else None
    results = []
    for name, what, changes in GROUPS[args.group]:
        if chosen is not None and name not in chosen:
            continue
        metrics = run_trial(name, changes, prepared, args.out, args.seed)
        results.append((name, what, metrics, _history(args.out / name)))
        print(_row(*results[-1]), flush=True)
    command = "python benchmarks/tune_recipe.py" + (
        f" --group {args.group}" if args.group != "recipe" else ""
    )
    note = (
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs, shared: the seconds vary with the load) by `{command}`.\n\n"
    )
    text = note + table(results)
    if args.group == "recipe" and (chosen is None or set(LEVEL_TRIALS) <= chosen):
        text += "\nValidation accuracy with every validation clip made softer or louder:\n\n"
        text += level_table(prepared, args.out)
    if args.table:
        atomic_write(args.table, text, make_parents=True)
    if args.plot:
        plot_validation(results, args.plot, f"qcnn6 x0.25, FSDD speaker split: {args.group}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
