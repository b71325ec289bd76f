"""Quaternion against real CNNs on real speech, at equal real width and at equal parameters.

Trains each model of :data:`MODELS` with the package's default recipe on FSDD's
speaker-independent split (train: jackson, nicolas, lucas, yweweler; validation: george; test:
theo, a speaker no model heard) for several seeds, and reports per model the test accuracy
(mean and sample standard deviation over the seeds, and each seed), the accuracy of the clean
training split, parameters, MACs per clip and the size of the int8 TFLite flatbuffer, plus the
differences that answer the question for each pair:

* **equal real width**: ``qcnn6`` and ``cnn6`` at width 0.25 have the same layer widths in real
  channels and about the same MACs; the quaternion model has a quarter of the parameters;
* **equal parameters**: ``qcnn6`` at width 0.25 and ``cnn6`` at width 0.125 have about the same
  parameters; the quaternion model has twice the width and four times the MACs;
* the same two comparisons for ``qcnn10`` / ``cnn10`` (two 3x3 convolutions per block).

Every model gets the same recipe (``kq-train``'s defaults, dropout included), so the
comparison is between models, not between training settings.

    python benchmarks/bench_qcnn_vs_cnn.py --data-dir ../shared/data/fsdd --out build/figures/qcnn_vs_cnn.md \\
        --plot docs/img/qcnn_vs_cnn_fsdd.png          # about 1.5 h on 2 CPU cores
    python benchmarks/bench_qcnn_vs_cnn.py --quick   # 1 seed, 2 epochs, 2 models: checks it runs

``--epochs N``, ``--no-spec-augment``, ``--weight-decay W``, ``--ema M`` and ``--gain-db G``
change the default recipe (runs then go to a folder of their own under ``--work-dir``):
``--gain-db 0`` is the recipe before the level study, ``--ema 0 --gain-db 0`` the one before the
weight-averaging study, ``--weight-decay 0 --ema 0 --gain-db 0`` the one before the weight-decay
study, ``--epochs 20 --no-spec-augment --weight-decay 0 --ema 0 --gain-db 0`` the one before the
speaker study (docs/training.md), with which the six-model table there was measured.

Besides the tables of scores and comparisons, it writes the test accuracy of each class (digit)
per model: on theo most errors are one or two digits. ``--levels`` adds each split's recording
level and every run's accuracy on the validation and test speakers made softer or louder by
-18 to +18 dB (``keras_quaternion.features.change_level``): the level study chose its default by
the validation rows.

``--protocol refit`` trains on all five non-test speakers instead (george too, no validation,
the recipe's last epoch kept), as one does once the recipe is chosen; theo stays the test:

    python benchmarks/bench_qcnn_vs_cnn.py --protocol refit --models qcnn6:0.25 \
        --json build/figures/speaker_refit.json --out build/figures/speaker_refit.md

Runs are ``train()`` folders under ``--work-dir`` (default ``build/qcnn_vs_cnn``, plus
``/refit`` for that protocol): a finished run is read back, not trained again, so the script
can be stopped and rerun, and ``--train-only`` processes with other ``--models`` or ``--seeds``
can train in parallel before one last run makes the tables, e.g. one process per seed:

    for s in 0 1 2; do python benchmarks/bench_qcnn_vs_cnn.py --train-only --threads 1 \
        --models qcnn6:0.25,cnn6:0.25,cnn6:0.125 --seeds $s & done; wait
    python benchmarks/bench_qcnn_vs_cnn.py --threads 1 --models qcnn6:0.25,cnn6:0.25,cnn6:0.125 \
        --json build/figures/qcnn_vs_cnn.json --out build/figures/qcnn_vs_cnn.md
"""  # noqa: E501

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fsdd"

#: ``(model, width)`` of every model trained.
MODELS = [
    ("qcnn6", 0.25),
    ("cnn6", 0.25),
    ("cnn6", 0.125),
    ("qcnn10", 0.25),
    ("cnn10", 0.25),
    ("cnn10", 0.125),
]

#: ``--protocol``: FSDD speaker-split loader options, and what they mean. ``select`` holds a
#: validation speaker out (it picks the epoch kept, and chose the default recipe); ``refit``
#: then trains on all five non-test speakers for the recipe's epochs and keeps the last one.
#: Both test on theo, whom no choice saw.
PROTOCOLS = {
    "select": (
        {"split": "speaker"},
        "train jackson, nicolas, lucas, yweweler; validation george picks the epoch kept",
    ),
    "refit": (
        {"split": "speaker", "validation_speakers": []},
        "train all five non-test speakers (george too), no validation, the last epoch kept",
    ),
}

#: ``(comparison, quaternion model, real model)``: what each pair of rows answers.
PAIRS = [
    ("equal real width", ("qcnn6", 0.25), ("cnn6", 0.25)),
    ("equal parameters", ("qcnn6", 0.25), ("cnn6", 0.125)),
    ("equal real width", ("qcnn10", 0.25), ("cnn10", 0.25)),
    ("equal parameters", ("qcnn10", 0.25), ("cnn10", 0.125)),
]


def _run_dir(work: Path, model: str, width: float, seed: int) -> Path:
    return work / f"{model}-w{width:g}-s{seed}"


def train_model(prepared, model: str, width: float, seed: int, work: Path, recipe: dict) -> dict:
    """Train one model and seed with the default recipe changed by ``recipe`` (``epochs``,
    ``spec_augment``, ``weight_decay``), or read its finished run."""
    from keras_quaternion.cli.train import DEFAULT_DROPOUT
    from keras_quaternion.training import train

    return train(
        model,
        prepared,
        out_dir=_run_dir(work, model, width, seed),
        width=width,
        model_options={"dropout": DEFAULT_DROPOUT},
        seed=seed,
        verbose=0,
        **recipe,
    )


def int8_export(prepared, folder: Path) -> dict:
    """int8 flatbuffers of a run's ``model.keras``: bytes and test accuracy of each strategy.

    ``expanded`` (every model: quaternion layers as real convolutions) and, for quaternion
    models, ``compact`` (one custom operator per quaternion layer holding a quarter of the
    weights; docs/deploy.md).
    """
    from keras_quaternion.export import evaluate_tflite, to_tflite
    from keras_quaternion.training import load_model

    model = load_model(folder / "model.keras")
    channels = model.input_shape[-1]
    strategies = ["expanded", "compact"] if channels == 4 else ["expanded"]
    out = {}
    for strategy in strategies:
        calibration = prepared.tf_dataset("train", 32, channels=channels, seed=0)
        flatbuffer = to_tflite(
            model,
            representative_data=calibration,
            max_calibration_samples=256,
            quaternion=strategy,
        )
        scored = evaluate_tflite(flatbuffer, prepared, "test")
        out[strategy] = {"bytes": len(flatbuffer), "accuracy": float(scored["accuracy"])}
    return out


def run_scores(prepared, folder: Path, levels: bool) -> tuple[list[float], dict]:
    """A run's ``model.keras``, loaded once: its test accuracy per class (:func:`class_accuracy`)
    and, with ``levels``, its accuracy per level on each of :func:`_level_splits`."""
    from keras_quaternion.training import load_model

    model = load_model(folder / "model.keras")
    splits = _level_splits(prepared) if levels else ()
    per_level = {split: level_accuracy(prepared, model, split) for split in splits}
    return class_accuracy(prepared, model), per_level


def class_accuracy(prepared, model) -> list[float]:
    """Test accuracy of each class (its recall) of ``model``."""
    from keras_quaternion.training.evaluation import predict

    y = np.asarray(prepared.labels["test"])
    predicted = np.asarray(predict(model, prepared, "test")).argmax(axis=-1)
    return [float((predicted[y == c] == c).mean()) for c in range(prepared.num_classes)]


#: Level changes (dB) at which :func:`level_accuracy` scores every run: the six FSDD speakers'
#: recordings differ in level by about 20 dB (theo is the softest, about 15 dB below the
#: training speakers' average).
LEVELS = (-18, -12, -6, 0, 6, 12, 18)


def level_accuracy(prepared, model, split: str) -> list[float]:
    """Accuracy of ``model`` on ``split`` with every clip made softer or louder by each of
    :data:`LEVELS` (``keras_quaternion.features.change_level``)."""
    from keras_quaternion.features import change_level
    from keras_quaternion.training import PreparedData
    from keras_quaternion.training.evaluation import predict

    x, y = prepared.arrays(split, channels=model.input_shape[-1])
    scores = []
    for level in LEVELS:
        moved = change_level(x, level).numpy()
        data = PreparedData.from_arrays(
            {s: (moved, y) for s in ("train", "validation", "test")},
            class_names=prepared.class_names,
        )
        predicted = np.asarray(predict(model, data, split)).argmax(axis=-1)
        scores.append(float((predicted == np.asarray(y)).mean()))
    return scores


def split_levels(prepared) -> dict[str, float]:
    """Each split's recording level: the mean over its clips of the clip's loudest log-mel
    cell (dB). Uses no labels."""
    return {
        split: float(np.mean(np.max(prepared.arrays(split, channels=1)[0], axis=(1, 2, 3))))
        for split in ("train", *_level_splits(prepared))
    }


def measure(
    prepared, seeds, work: Path, recipe: dict, models=MODELS, levels: bool = False
) -> list[dict]:
    """One record per model: its runs' scores, sizes and int8 results (seed 0's model); with
    ``levels``, each run's accuracy at every level of :data:`LEVELS` too."""
    from keras_quaternion.training.recipe import DEFAULT_EMA, DEFAULT_GAIN_DB, DEFAULT_WEIGHT_DECAY

    records = []
    for model, width in models:
        runs = [train_model(prepared, model, width, seed, work, recipe) for seed in seeds]
        scores = [run_scores(prepared, _run_dir(work, model, width, s), levels) for s in seeds]
        int8 = int8_export(prepared, _run_dir(work, model, width, seeds[0]))
        accs = [r["test"]["accuracy"] for r in runs]
        records.append(
            {
                "model": model,
                "width": width,
                "params": runs[0]["params"],
                "macs": runs[0]["macs"],
                "int8": int8,
                "float_accuracy_seed0": runs[0]["test"]["accuracy"],
                "test_accuracy": accs,
                "train_accuracy": [r["train"]["accuracy"] for r in runs],
                "last_epoch_train_accuracy": [_last_epoch_accuracy(r) for r in runs],
                "class_accuracy": [per_class for per_class, _ in scores],
                "class_names": list(prepared.class_names),
                "level_accuracy": {
                    split: [per_level[split] for _, per_level in scores]
                    for split in (_level_splits(prepared) if levels else ())
                },
                "split_level_db": split_levels(prepared) if levels else {},
                "best_epoch": [(r.get("validation") or {}).get("best_epoch") for r in runs],
                "epochs": runs[0]["epochs"],
                "spec_augment": recipe.get("spec_augment", True),
                "weight_decay": recipe.get("weight_decay", DEFAULT_WEIGHT_DECAY),
                "ema": recipe.get("ema", DEFAULT_EMA),
                "gain_db": recipe.get("gain_db", DEFAULT_GAIN_DB),
            }
        )
        print(_row(records[-1]), flush=True)
    return records


def _level_splits(prepared) -> list[str]:
    """The splits scored at every level: validation (where the protocol has one) and test."""
    return [s for s in ("validation", "test") if len(prepared.labels.get(s, ())) > 0]


def _last_epoch_accuracy(result: dict) -> float:
    """The training accuracy logged in the last epoch (batches with dropout, as trained)."""
    import csv

    with open(Path(result["out_dir"]) / "history.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["accuracy"])


def _mean_std(values) -> tuple[float, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def _smallest_int8(r: dict) -> dict:
    return min(r["int8"].values(), key=lambda e: e["bytes"])


def _row(r: dict) -> str:
    mean, std = _mean_std(r["test_accuracy"])
    seeds = ", ".join(f"{a:.3f}" for a in r["test_accuracy"])
    train_mean, _ = _mean_std(r["train_accuracy"])
    expanded = r["int8"]["expanded"]
    compact = r["int8"].get("compact")
    compact_text = "—" if compact is None else f"{compact['bytes'] / 1024:.1f} KiB"
    int8_accs = " / ".join(f"{e['accuracy']:.3f}" for e in r["int8"].values())
    return (
        f"| `{r['model']}` | {r['width']:g} | {r['params']:,} | {r['macs'] / 1e6:.1f} M | "
        f"{expanded['bytes'] / 1024:.1f} KiB | {compact_text} | **{mean:.3f} ± {std:.3f}** | "
        f"{seeds} | {train_mean:.3f} | {r['float_accuracy_seed0']:.3f} → {int8_accs} |"
    )


def _pair_row(name: str, q: dict, r: dict) -> str:
    qm, qs = _mean_std(q["test_accuracy"])
    rm, rs = _mean_std(r["test_accuracy"])
    spread = (qs**2 + rs**2) ** 0.5
    return (
        f"| {name} | `{q['model']}` x{q['width']:g} vs `{r['model']}` x{r['width']:g} | "
        f"{qm - rm:+.3f} (± {spread:.3f}) | {_welch_p(q['test_accuracy'], r['test_accuracy'])} | "
        f"{q['params'] / r['params']:.2f} | "
        f"{q['macs'] / r['macs']:.2f} | "
        f"{_smallest_int8(q)['bytes'] / _smallest_int8(r)['bytes']:.2f} |"
    )


def _welch_p(a: list[float], b: list[float]) -> str:
    """Welch's two-sided t-test p-value of two sets of per-seed scores (``—`` with < 2 each)."""
    if min(len(a), len(b)) < 2:
        return "—"
    from scipy import stats  # with the dev extras (librosa needs it)

    return f"{stats.ttest_ind(a, b, equal_var=False).pvalue:.2g}"


def tables(records: list[dict], seeds, note: str, protocol: str = "select") -> str:
    """The Markdown tables: one row per model, then one per comparison."""
    lines = [
        f"FSDD, speaker-independent split (test: theo, 500 clips; {PROTOCOLS[protocol][1]}), "
        f"seeds {list(seeds)}, {records[0]['epochs']} epochs, the default recipe"
        f"{'' if records[0].get('spec_augment', True) else ' without SpecAugment'}"
        f"{_recipe_text(records[0])}. {note}",
        "",
        "| model | width | params | MACs / clip | int8 flatbuffer (expanded) | int8 flatbuffer "
        "(compact) | test accuracy (mean ± sd) | per seed | train accuracy | seed 0: float → "
        "int8 expanded / compact |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[_row(r) for r in records],
    ]
    found = {(r["model"], r["width"]): r for r in records}
    pairs = [_pair_row(name, found[q], found[r]) for name, q, r in PAIRS if {q, r} <= set(found)]
    if pairs:
        lines += [
            "",
            "| comparison | models | test accuracy, quaternion − real (± combined sd) | p (Welch) "
            "| params ratio | MACs ratio | smallest int8 flatbuffer ratio |",
            "|---|---|---|---|---|---|---|",
            *pairs,
        ]
    return "\n".join(lines + _class_lines(records) + _level_lines(records)) + "\n"


def _class_lines(records: list[dict]) -> list[str]:
    """Test accuracy per class (mean over the seeds), one row per model: where the errors are."""
    if not all(r.get("class_accuracy") for r in records):
        return []  # records written before the per-class scores
    names = records[0]["class_names"]
    lines = [
        "",
        "Test accuracy per class (mean over the seeds; 50 clips each):",
        "",
        "| model | width | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for r in records:
        mean = np.mean(np.asarray(r["class_accuracy"]), axis=0)
        cells = " | ".join(f"{m:.2f}" for m in mean)
        lines.append(f"| `{r['model']}` | {r['width']:g} | {cells} |")
    return lines


def _level_lines(records: list[dict]) -> list[str]:
    """Accuracy at every level of :data:`LEVELS` (mean over the seeds), one row per model and
    split, with the seeds' mean over the levels: how much the recording level matters."""
    if not all(r.get("level_accuracy") for r in records):
        return []  # records written before the level scores
    speakers = {"validation": "george", "test": "theo"}
    lines = [
        "",
        *_split_level_line(records[0].get("split_level_db") or {}),
        "Accuracy with every clip made softer or louder (`change_level`; mean over the seeds; "
        "last column: each seed's mean over the levels):",
        "",
        "| model | width | split | " + " | ".join(f"{v:+d} dB" for v in LEVELS) + " | per seed |",
        "|---|---|---|" + "---|" * (len(LEVELS) + 1),
    ]
    for r in records:
        for split, per_seed in r["level_accuracy"].items():
            cells = " | ".join(f"{m:.3f}" for m in np.mean(np.asarray(per_seed), axis=0))
            seeds = ", ".join(f"{np.mean(s):.3f}" for s in per_seed)
            lines.append(
                f"| `{r['model']}` | {r['width']:g} | {split} ({speakers.get(split, split)}) | "
                f"{cells} | {seeds} |"
            )
    return lines


def _split_level_line(levels: dict[str, float]) -> list[str]:
    """One sentence with each split's recording level (:func:`split_levels`), if measured."""
    if not levels:
        return []
    names = {"train": "train", "validation": "validation (george)", "test": "test (theo)"}
    text = ", ".join(f"{names.get(k, k)} {v:+.1f} dB" for k, v in levels.items())
    return [f"Each split's level, the mean of each clip's loudest log-mel cell: {text}.", ""]


def plot(records: list[dict], path: Path) -> None:
    """Test accuracy (mean ± sd, and each seed) against parameters, one panel per family."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from keras_quaternion.files import atomic_path

    families = [f for f in ("cnn6", "cnn10") if any(r["model"].endswith(f) for r in records)]
    fig, axes = plt.subplots(1, len(families), figsize=(5.2 * len(families), 4.2), sharey=True)
    for ax, family in zip(list(np.atleast_1d(axes)), families):
        for prefix, color, dy in (("q", "tab:red", 8), ("", "tab:blue", -14)):
            rows = sorted(
                (r for r in records if r["model"] == prefix + family), key=lambda r: r["params"]
            )
            if rows:
                _plot_rows(ax, rows, color, dy)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_title(f"q{family} (red) vs {family} (blue)")
        ax.grid(True, alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy, unseen speaker (mean ± sd, seeds)")
    fig.suptitle("FSDD speaker split, same recipe, 3 seeds per model")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _plot_rows(ax, rows: list[dict], color: str, dy: int) -> None:
    stats = [_mean_std(r["test_accuracy"]) for r in rows]
    xs = [r["params"] for r in rows]
    ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o",
                color=color, capsize=4)  # fmt: skip
    for r, (m, _) in zip(rows, stats):
        ax.scatter([r["params"]] * len(r["test_accuracy"]), r["test_accuracy"], color=color,
                   s=14, alpha=0.35)  # fmt: skip
        ax.annotate(f"{r['model']} x{r['width']:g}", (r["params"], m), textcoords="offset points",
                    xytext=(6, dy), fontsize=8, color=color)  # fmt: skip


def _recipe(args) -> dict:
    """The changes to the default recipe that ``--epochs``, ``--no-spec-augment``,
    ``--weight-decay``, ``--ema`` and ``--gain-db`` ask for."""
    recipe = {}
    if args.epochs is not None:
        if args.epochs < 1:
            sys.exit(f"--epochs must be a positive number, got {args.epochs}.")
        recipe["epochs"] = args.epochs
    if args.no_spec_augment:
        recipe["spec_augment"] = False
    if args.weight_decay is not None:
        if args.weight_decay < 0:
            sys.exit(f"--weight-decay must be a number >= 0, got {args.weight_decay}.")
        recipe["weight_decay"] = args.weight_decay
    if args.ema is not None:
        if not 0 <= args.ema < 1:
            sys.exit(f"--ema must be a number in [0, 1), got {args.ema}.")
        recipe["ema"] = args.ema
    if args.gain_db is not None:
        if args.gain_db < 0:
            sys.exit(f"--gain-db must be a number >= 0, got {args.gain_db}.")
        recipe["gain_db"] = args.gain_db
    return recipe


def _recipe_text(record: dict) -> str:
    """What the runs' recipe had of weight decay, weight averaging and level changes (0 in
    older records)."""
    decay, ema, gain = (record.get(k, 0.0) for k in ("weight_decay", "ema", "gain_db"))
    parts = (("weight decay", f"weight decay {decay:g}", decay), ("weight averaging",
             f"ema {ema:g}", ema), ("level changes", f"level changes ±{gain:g} dB", gain))  # fmt: skip
    have = [text for _, text, value in parts if value]
    lack = [name for name, _, value in parts if not value]
    lacking = ", ".join(lack[:-1]) + " or " + lack[-1] if len(lack) > 1 else "".join(lack)
    return (f" ({', '.join(have)})" if have else "") + (f" without {lacking}" if lack else "")


def _chosen_models(text: str | None) -> list[tuple[str, float]]:
    """The rows of :data:`MODELS` named by ``--models`` (all without it); exits on others."""
    if text is None:
        return MODELS
    chosen = []
    for item in text.split(","):
        model, _, width = item.partition(":")
        try:
            row = (model, float(width))
        except ValueError:
            row = None
        if row not in MODELS:
            known = ",".join(f"{m}:{w:g}" for m, w in MODELS)
            sys.exit(f"--models: {item!r} is not one of {known}.")
        chosen.append(row)
    return chosen


def _parse(argv):
    """The command line, parsed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="The FSDD folder.")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "qcnn_vs_cnn")
    parser.add_argument("--cache-dir", type=Path, default=None, help="Feature cache folder.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--out", type=Path, default=None, help="Write the tables here.")
    parser.add_argument("--plot", type=Path, default=None, help="Write the plot here.")
    parser.add_argument("--json", type=Path, default=None, help="Write the raw records here.")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 2 models.")
    parser.add_argument(
        "--epochs", type=int, default=None, help="Other epochs than the default recipe's."
    )
    parser.add_argument(
        "--no-spec-augment",
        action="store_true",
        help="The default recipe without SpecAugment (with --epochs 20: the recipe before the "
        "speaker study, docs/training.md).",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="The default recipe with this decoupled weight decay instead of its own "
        "(docs/training.md, Weight decay); 0: none, plain Adam.",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=None,
        help="The default recipe with this moving-average momentum of the weights instead of "
        "its own (docs/training.md, Weight averaging); 0: none.",
    )
    parser.add_argument(
        "--gain-db",
        type=float,
        default=None,
        help="The default recipe with random level changes up to this many dB instead of its "
        "own (docs/training.md, Against level differences); 0: none.",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="Comma-separated MODEL:WIDTH rows of MODELS to run (default all), e.g. qcnn6:0.25 "
        "for the speaker-split target alone.",
    )
    parser.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default="select",
        help="select: validation speaker george picks the epoch kept (default); refit: train "
        "on all five non-test speakers, keep the last epoch.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TensorFlow intra-op threads per process (default: all cores). Runs are not "
        "bit-identical across thread counts, so the tables name it.",
    )
    parser.add_argument(
        "--levels",
        action="store_true",
        help="Also score every run with each clip made softer or louder (LEVELS, -18 to +18 dB), "
        "on the validation and test speakers: a table of how much the recording level matters.",
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="Train (or find) the runs and stop: no exports, no tables. Several such processes "
        "with other --models or --seeds and the same --work-dir share the work; a last run "
        "without it reads them back.",
    )
    return parser.parse_args(argv)


def _note(args) -> str:
    """The tables' "Measured ..." line, naming the command that reproduces them."""
    return (
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs), `python benchmarks/bench_qcnn_vs_cnn.py"
        + ("" if args.protocol == "select" else f" --protocol {args.protocol}")
        + ("" if args.models is None else f" --models {args.models}")
        + ("" if args.epochs is None else f" --epochs {args.epochs}")
        + (" --no-spec-augment" if args.no_spec_augment else "")
        + ("" if args.weight_decay is None else f" --weight-decay {args.weight_decay:g}")
        + ("" if args.ema is None else f" --ema {args.ema:g}")
        + ("" if args.gain_db is None else f" --gain-db {args.gain_db:g}")
        + ("" if args.threads is None else f" --threads {args.threads}")
        + (" --levels" if args.levels else "")
        + "`."
    )


def main(argv=None) -> int:
    args = _parse(argv)
    models = _chosen_models(args.models)
    if args.threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if not (args.data_dir / "recordings").is_dir():
        sys.exit(f"FSDD recordings not found under '{args.data_dir}'; pass --data-dir.")

    from keras_quaternion.files import atomic_write
    from keras_quaternion.training import prepare

    prepared = prepare(
        "fsdd",
        args.data_dir,
        cache_dir=args.cache_dir,
        dataset_options=PROTOCOLS[args.protocol][0],
        progress=False,
    )
    if args.protocol != "select":
        args.work_dir = args.work_dir / args.protocol
    seeds = [int(s) for s in args.seeds.split(",")]
    recipe = _recipe(args)
    if recipe:  # runs of another recipe go to their own folder
        args.work_dir = args.work_dir / "-".join(f"{k}{v}" for k, v in sorted(recipe.items()))
    if args.quick:
        seeds, models, recipe = seeds[:1], MODELS[:2], {**recipe, "epochs": 2}
        args.work_dir = args.work_dir / "quick"
    if args.train_only:
        for model, width in models:
            for seed in seeds:
                train_model(prepared, model, width, seed, args.work_dir, recipe)
        return 0
    records = measure(prepared, seeds, args.work_dir, recipe, models, levels=args.levels)
    note = _note(args)
    for record in records:
        record["protocol"] = args.protocol
    text = tables(records, seeds, note, args.protocol)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)
    if args.json:
        atomic_write(args.json, json.dumps(records, indent=1) + "\n", make_parents=True)
    if args.plot:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
