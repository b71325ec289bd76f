"""The default training recipe against its targets, on FSDD (conventional "takes" split).

1. ``kq-train``'s defaults (``qcnn6`` at width 0.25, dropout 0.1, the default recipe and
   epochs) on FSDD: test accuracy, and whether the best validation epoch comes before the last
   (the run converged).
2. A model of at most 50 k parameters (``qcnn6`` at width 0.1875) with the same recipe: test
   accuracy, and its int8 exports (``expanded`` and ``compact``) against it.
3. Pruning the model of 1 at p = 0.5 (operator norm, every convolution) and fine-tuning it with
   ``kq-prune``'s defaults (:func:`keras_quaternion.pruning.prune_and_finetune`) for
   ``--finetune-epochs``: its accuracy against the unpruned model's, and its int8 export against
   it.

With ``--speaker-json`` (the ``--json`` of ``benchmarks/bench_qcnn_vs_cnn.py``) the table adds
the targets measured on the speaker-independent split (``qcnn6`` at width 0.25, three seeds):
test accuracy and training accuracy.

    python benchmarks/bench_recipe.py --data-dir ../shared/data/fsdd --out build/figures/recipe.md \\
        --speaker-json build/figures/qcnn_vs_cnn.json      # about 25 min on 2 CPU cores

Runs are ``train()`` folders under ``--work-dir`` (default ``build/recipe``), read back when
finished, so the script can be stopped and rerun.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fsdd"
SMALL_WIDTH = 0.1875  # qcnn6: 41,958 parameters
PRUNE_METHOD, PRUNE_RATIO = "operator-norm", 0.5
#: Fine-tuning peak rates tried besides the default (kq-prune's default was 5e-4 on main).
FINETUNE_LRS = (5e-4, 2e-3)


def train_default(prepared, folder: Path, width: float) -> dict:
    """``kq-train``'s default model, dropout, recipe and epochs at ``width``."""
    from keras_quaternion.cli.train import DEFAULT_DROPOUT, DEFAULT_MODEL
    from keras_quaternion.training import train

    return train(
        DEFAULT_MODEL,
        prepared,
        out_dir=folder,
        width=width,
        model_options={"dropout": DEFAULT_DROPOUT},
        verbose=0,
    )


def int8_accuracy(model, prepared) -> dict:
    """Test accuracy of the int8 flatbuffers (``expanded``, ``compact``) of ``model``."""
    from keras_quaternion.export import evaluate_tflite, to_tflite

    out = {}
    for strategy in ("expanded", "compact"):
        calibration = prepared.tf_dataset("train", 32, channels=4, seed=0)
        flatbuffer = to_tflite(
            model, representative_data=calibration, max_calibration_samples=256,
            quaternion=strategy,
        )  # fmt: skip
        scored = evaluate_tflite(flatbuffer, prepared, "test")
        out[strategy] = {"bytes": len(flatbuffer), "accuracy": float(scored["accuracy"])}
    return out


def prune_default(prepared, model_path: Path, folder: Path, epochs: int, **kwargs) -> dict:
    """Prune the model at ``model_path`` and fine-tune it with kq-prune's defaults (or
    ``kwargs``, e.g. another ``lr``)."""
    from keras_quaternion.pruning import prune_and_finetune

    return prune_and_finetune(
        model_path,
        PRUNE_METHOD,
        PRUNE_RATIO,
        out_dir=folder,
        prepared=prepared,
        finetune_epochs=epochs,
        verbose=0,
        **kwargs,
    )


def finetune_trials(prepared, work: Path, epochs: int) -> list[dict]:
    """Fine-tuning at the peak rates of :data:`FINETUNE_LRS`: validation and training scores
    (how kq-prune's default rate was chosen; the test split is not looked at)."""
    rows = []
    for lr in FINETUNE_LRS:
        result = prune_default(
            prepared, work / "default" / "model.keras", work / f"finetune-lr{lr:g}", epochs, lr=lr
        )
        m = result["metrics"]
        rows.append({"lr": lr, "validation": m["validation"], "train": m["train"]["accuracy"]})
    return rows


def measure(prepared, work: Path, finetune_epochs: int) -> dict:
    from keras_quaternion.cli.train import DEFAULT_WIDTH
    from keras_quaternion.training import load_model

    default = train_default(prepared, work / "default", DEFAULT_WIDTH)
    small = train_default(prepared, work / "small", SMALL_WIDTH)
    small_int8 = int8_accuracy(load_model(work / "small" / "model.keras"), prepared)
    pruned = prune_default(prepared, work / "default" / "model.keras", work / "pruned",
                           finetune_epochs)  # fmt: skip
    pruned_int8 = int8_accuracy(pruned["model"], prepared)
    trials = finetune_trials(prepared, work, finetune_epochs)
    return {
        "finetune_trials": trials,
        "default": default,
        "small": small,
        "small_int8": small_int8,
        "pruned": pruned["metrics"],
        "pruned_before_finetune": pruned["before_finetune"],
        "pruned_int8": pruned_int8,
        "finetune_epochs": finetune_epochs,
    }


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _int8_text(float_acc: float, int8: dict) -> tuple[str, bool]:
    drops = {k: float_acc - v["accuracy"] for k, v in int8.items()}
    text = ", ".join(f"{k} {v['accuracy']:.3f} ({-drops[k] * 100:+.1f} pt, "
                     f"{v['bytes'] / 1024:.0f} KiB)" for k, v in int8.items())  # fmt: skip
    return text, all(d <= 0.01 for d in drops.values())


#: How each ``bench_qcnn_vs_cnn.py --protocol`` trains, for the targets table.
PROTOCOL_TEXT = {
    "select": "train 4 speakers, validation george picks the epoch",
    "refit": "then retrained on all 5 non-test speakers, last epoch",
}


#: Parts of the default recipe a speaker record may have been measured without (its key, name).
_RECIPE_PARTS = (
    ("weight_decay", "weight decay"),
    ("ema", "weight averaging"),
    ("gain_db", "level changes"),
)


def _listed(names: list[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _speaker_rows(path: Path) -> list[str]:
    """The speaker-split rows of one ``bench_qcnn_vs_cnn.py --json`` file."""
    records = json.loads(path.read_text(encoding="utf-8"))
    r = next(r for r in records if r["model"] == "qcnn6" and r["width"] == 0.25)
    protocol = r.get("protocol", "select")
    acc, train_acc = r["test_accuracy"], r["train_accuracy"]
    last = r["last_epoch_train_accuracy"]
    sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
    seeds = ", ".join(f"{a:.3f}" for a in acc)
    kept = "best validation" if protocol == "select" else "last-epoch"
    missing = [name for key, name in _RECIPE_PARTS if not r.get(key)]  # older records: 0
    recipe = "default recipe" + (f" without {_listed(missing)}" if missing else "")
    return [
        f"| FSDD speaker split ({PROTOCOL_TEXT[protocol]}), `qcnn6` x0.25, {recipe} "
        f"({len(acc)} seeds) | test ≥ 0.90 | {statistics.fmean(acc):.3f} ± {sd:.3f} ({seeds}) | "
        f"{_met(min(acc) >= 0.90)} |",
        f"| ... no underfitting | training accuracy ≥ 0.95 | last epoch "
        f"{', '.join(f'{a:.3f}' for a in last)}; the kept ({kept}) model on the clean "
        f"training split {', '.join(f'{a:.3f}' for a in train_acc)} | {_met(min(last) >= 0.95)} |",
    ]


def table(m: dict, speaker_json: list[Path] | None, note: str) -> str:
    d, s, p = m["default"], m["small"], m["pruned"]
    d_acc, s_acc, p_acc = d["test"]["accuracy"], s["test"]["accuracy"], p["test"]["accuracy"]
    best, epochs = d["validation"]["best_epoch"], d["epochs"]
    small_text, small_ok = _int8_text(s_acc, m["small_int8"])
    pruned_text, pruned_ok = _int8_text(p_acc, m["pruned_int8"])
    before = m["pruned_before_finetune"]["accuracy"]
    rows = [
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        f"| default `kq-train` on FSDD (takes), `qcnn6` x0.25 ({d['params']:,} params) | test ≥ 0.98"
        f" | {d_acc:.3f} | {_met(d_acc >= 0.98)} |",
        f"| ... converged | best epoch before the last | best validation epoch {best} of {epochs} "
        f"(validation {d['validation']['accuracy']:.3f}) | {_met(best < epochs)} |",
        f"| ≤ 50 k parameters: `qcnn6` x{SMALL_WIDTH:g} ({s['params']:,} params) | test ≥ 0.97 | "
        f"{s_acc:.3f} | {_met(s_acc >= 0.97 and s['params'] <= 50_000)} |",
        f"| ... exported int8 | within 1 point | {small_text} | {_met(small_ok)} |",
        f"| pruned p = {PRUNE_RATIO:g} ({PRUNE_METHOD}, {p['params']:,} params) + "
        f"{m['finetune_epochs']} epochs of default fine-tuning | within 1 point of {d_acc:.3f} | "
        f"{p_acc:.3f} (right after pruning {before:.3f}) | {_met(p_acc >= d_acc - 0.01)} |",
        f"| ... exported int8 | within 1 point | {pruned_text} | {_met(pruned_ok)} |",
    ]
    for path in speaker_json or ():
        if path.is_file():
            rows += _speaker_rows(path)
    return f"{note}\n\n" + "\n".join(rows) + "\n\n" + _trials_table(m) + "\n"


def _trials_table(m: dict) -> str:
    """Fine-tuning peak rates, by validation: the trials and the default."""
    default = m["pruned"]
    rows = [(t["lr"], t["validation"], t["train"]) for t in m["finetune_trials"]]
    rows.append((default["lr"], default["validation"], default["train"]["accuracy"]))
    lines = [
        f"Fine-tuning the pruned model for {m['finetune_epochs']} epochs at other peak rates "
        "(validation split; the last row is kq-prune's default):",
        "",
        "| peak rate | best validation accuracy | training accuracy |",
        "|---|---|---|",
    ]
    for lr, validation, train_acc in sorted(rows, key=lambda r: r[0]):
        lines.append(
            f"| {lr:g} | {validation['accuracy']:.3f} (epoch {validation['best_epoch']}) | "
            f"{train_acc:.3f} |"
        )
    return "\n".join(lines)


def _parse(argv):
    """The command line, parsed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="The FSDD folder.")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "recipe")
    parser.add_argument("--cache-dir", type=Path, default=None, help="Feature cache folder.")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument(
        "--speaker-json",
        type=Path,
        action="append",
        default=None,
        help="A --json of bench_qcnn_vs_cnn.py (once per --protocol): adds the speaker-split rows.",
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the table here.")
    parser.add_argument("--json", type=Path, default=None, help="Write the raw results here.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (default: all cores). Under one setting a run repeats "
        "bit for bit; another setting sums in another order and gives slightly other numbers.",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if not (args.data_dir / "recordings").is_dir():
        sys.exit(f"FSDD recordings not found under '{args.data_dir}'; pass --data-dir.")

    from keras_quaternion.files import atomic_write
    from keras_quaternion.training import prepare

    prepared = prepare("fsdd", args.data_dir, cache_dir=args.cache_dir, progress=False)
    results = measure(prepared, args.work_dir, args.finetune_epochs)
    note = (
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs) by `python benchmarks/bench_recipe.py"
        + ("" if args.threads is None else f" --threads {args.threads}")
        + "` (FSDD takes split: "
        "test 300 clips, validation 270, train 2,430; 8 kHz, 1 s clips)."
    )
    text = table(results, args.speaker_json, note)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)
    if args.json:
        raw = json.dumps(results, indent=1, default=str) + "\n"
        atomic_write(args.json, raw, make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
