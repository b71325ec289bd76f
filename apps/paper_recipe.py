"""The paper's compression experiment, end to end, at a scale this machine can run.

    python apps/paper_recipe.py              # synthetic, defaults: about 12 min on 2 CPU cores
    python apps/paper_recipe.py --dataset fsdd --data-dir ../shared/data/fsdd
    python apps/paper_recipe.py --dataset esc50 --data-dir ~/data/ESC-50 \\
        --model-family cnn14 --width 1 --layers paper --epochs 60 --finetune-epochs 10

For a real CNN and its quaternion twin of the same family (default ``cnn6`` / ``qcnn6`` at a
small width) it

1. trains both from scratch (the unpruned baselines);
2. prunes each at every ratio ``p`` (default 0.25, 0.5, 0.75) with every method (operator-norm,
   l1, geometric-median, random) and fine-tunes the pruned model with and without knowledge
   distillation from its unpruned baseline (Prune+FT, Prune+KD);
3. trains a student of exactly the pruned size from scratch (the pruned architecture with fresh
   weights) with distillation from the baseline (Scratch+KD; ``--scratch both`` adds it
   without distillation too);
4. exports every model to a full-integer int8 ``.tflite`` (``keras_quaternion.export.to_tflite``,
   checked for TFLite Micro operators) and scores that file as well (``--tflite
   per-architecture`` exports once per architecture, for the size column only: pruned models of
   one ratio share their architecture whatever the method or KD);

and writes to ``--out`` (default ``runs/paper_recipe/<dataset>``):

* ``results.csv`` / ``results.md``: one row per model: model, method, p, KD, test accuracy (mAP
  for multi-label data), accuracy right after pruning, int8 ``.tflite`` accuracy, trainable
  parameters, MACs per clip, int8 ``.tflite`` bytes, training/fine-tuning wall-clock seconds;
* ``accuracy_vs_macs.png``: accuracy against MACs, one panel per model, one colour per method;
* one folder per run, each with kq-train's outputs (``model.keras``, ``metrics.json``, ...).

Every run is resumable: running the same command again skips what is finished.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from keras_quaternion.files import atomic_write  # noqa: E402
from keras_quaternion.pruning.scores import METHODS  # noqa: E402

FULL_SCALE = ("audioset", "gtzan", "esc50", "ravdess")
COLUMNS = (
    "dataset",
    "model",
    "stage",
    "method",
    "p",
    "kd",
    "score_name",
    "score",
    "score_after_pruning",
    "int8_score",
    "params",
    "macs",
    "tflite_bytes",
    "tflite_kind",
    "seconds",
    "run_dir",
)
STAGES = {
    "base": "unpruned",
    "prune": "prune+FT",
    "prune-kd": "prune+KD",
    "scratch": "scratch",
    "scratch-kd": "scratch+KD",
}


# ---------------------------------------------------------------------------------- helpers


def _parse_list(text, what, allowed=None, cast=str):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise SystemExit(f"paper_recipe: {what} is empty.")
    out = []
    for item in items:
        try:
            value = cast(item)
        except ValueError:
            raise SystemExit(f"paper_recipe: {what} item {item!r} is not a number.") from None
        if allowed is not None and value not in allowed:
            raise SystemExit(
                f"paper_recipe: unknown {what} item {item!r}; allowed: {', '.join(allowed)}."
            )
        out.append(value)
    return out


def _check_ratios(ratios):
    for p in ratios:
        if not 0.0 < p < 1.0 or math.isnan(p):
            raise SystemExit(
                f"paper_recipe: ratio {p!r} is outside (0, 1); --ratios takes fractions of "
                "filters to remove, e.g. 0.25,0.5,0.75."
            )
    return ratios


def _channels(model):
    return int(model.input_shape[-1])


def _tflite(model, prepared, run_dir, calibration, with_score):
    """int8 .tflite size (and score) of a model; falls back to float32, then to nothing."""
    try:
        from keras_quaternion.export import to_tflite
    except ImportError as err:  # pragma: no cover - export is part of the package
        return None, f"unavailable ({err})", None
    path = Path(run_dir) / "model_int8.tflite"
    x = calibration[..., : _channels(model)]
    try:
        flat = to_tflite(model, representative_data=x, int8=True, check_micro=True)
        kind = "int8"
    except Exception as err:  # record why, keep going with a float32 file
        print(f"  int8 export failed for {run_dir}: {err}; trying float32", file=sys.stderr)
        try:
            flat = to_tflite(model, int8=False, check_micro=False)
            kind = "float32"
            path = Path(run_dir) / "model_float32.tflite"
        except Exception as err2:
            return None, f"failed ({type(err2).__name__})", None
    atomic_write(path, flat, make_parents=True)
    score = None
    if with_score and prepared.sizes()["test"]:
        from keras_quaternion.export import evaluate_tflite

        result = evaluate_tflite(flat, prepared, "test")
        score = result.get("mAP", result.get("accuracy"))
    return len(flat), kind, score


def _score(metrics):
    test = metrics.get("test") or {}
    return test.get("mAP", test.get("accuracy"))


# ----------------------------------------------------------------------------------- recipe


def run(args):
    """Run the recipe for parsed arguments; returns the result rows (list of dicts).

    The steps: check the arguments, prepare the data, list the jobs (a base model per family
    member, then per ratio each pruning method with and without KD, and the pruned
    architectures trained from scratch), run each (:class:`_Recipe`), writing the tables after
    every job, and plot.
    """
    from tqdm.auto import tqdm

    names, methods, ratios, options = _checked(args)
    out = Path(args.out or Path("runs") / "paper_recipe" / args.dataset).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if args.quiet else (lambda *a: tqdm.write(" ".join(map(str, a))))
    prepared = _prepare(args, options)
    say(f"data: {prepared!r}")
    recipe = _Recipe(args, prepared, out)
    rows = []
    jobs = _jobs(names, methods, ratios, args.scratch)
    bar = tqdm(jobs, desc="paper recipe", disable=args.quiet, unit="run")
    for stage, name, method, p, kd in bar:
        bar.set_postfix_str(f"{name} {stage} {method or ''} p={p:g}{' KD' if kd else ''}")
        t0 = time.time()
        rows.append(recipe.job(stage, name, method, p, kd))
        row = rows[-1]
        say(
            f"{name:8s} {row['stage']:10s} {method or '-':16s} p={p:<4g} {row['score_name']} "
            f"{_fmt(row['score'])} int8 {_fmt(row['int8_score'])} params {row['params']:,} "
            f"({time.time() - t0:.0f} s)"
        )
        write_table(rows, out, args)
    plot(rows, out / "accuracy_vs_macs.png", title=_title(prepared, args))
    say(f"wrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'accuracy_vs_macs.png'}")
    return rows


def _checked(args):
    """``(names, methods, ratios, dataset options)`` of the parsed arguments, checked."""
    from keras_quaternion import models
    from keras_quaternion.training.dataset_options import parse_options

    family = args.model_family
    names = [family, "q" + family]
    for name in names:
        if name not in models.names():
            raise SystemExit(
                f"paper_recipe: --model-family {family!r} has no model {name!r}; choose a family "
                f"with a quaternion twin: cnn6, cnn10, cnn14, resnet22, resnet38."
            )
    methods = _parse_list(args.methods, "--methods", METHODS)
    ratios = _check_ratios(_parse_list(args.ratios, "--ratios", cast=float))
    options = parse_options(args.option)
    if args.dataset == "synthetic" and "samples_per_class" not in options:
        options["samples_per_class"] = args.samples_per_class
    return names, methods, ratios, options


def _prepare(args, options):
    from keras_quaternion.training import prepare

    return prepare(
        args.dataset,
        args.data_dir,
        sample_rate=args.sample_rate,
        clip_seconds=args.clip_seconds,
        n_mels=args.n_mels,
        seed=args.seed,
        cache_dir=args.cache_dir,
        dataset_options=options,
        progress=not args.quiet,
    )


def _jobs(names, methods, ratios, scratch: str) -> list[tuple]:
    """``(stage, model, method, p, kd)`` in run order: each model's base comes first."""
    scratch_kinds = {"kd": [True], "both": [False, True], "none": []}[scratch]
    jobs = []
    for name in names:
        jobs.append(("base", name, None, 0.0, False))
        for p in ratios:
            for method in methods:
                for kd in (False, True):
                    jobs.append(("prune", name, method, p, kd))
            for kd in scratch_kinds:
                jobs.append(("scratch", name, None, p, kd))
    return jobs


class _Recipe:
    """Runs the recipe's jobs, keeping what later jobs need: the trained base models, the
    first pruned architecture per ``(model, p)`` and the exports already made."""

    def __init__(self, args, prepared, out: Path):
        import numpy as np

        self.args, self.prepared, self.out = args, prepared, out
        self.score_name = "mAP" if prepared.multi_label else "accuracy"
        self.common = dict(
            batch_size=args.batch_size,
            seed=args.seed,
            verbose=0,
            spec_augment=not args.no_spec_augment,
            **({} if args.weight_decay is None else {"weight_decay": args.weight_decay}),
            **({} if args.ema is None else {"ema": args.ema}),
            **({} if args.gain_db is None else {"gain_db": args.gain_db}),
        )
        x_train = prepared.features["train"]
        rng = np.random.default_rng(args.seed)
        size = min(args.calibration, len(x_train))
        pick = np.sort(rng.choice(len(x_train), size=size, replace=False))
        self.calibration = np.asarray(x_train[pick], dtype=np.float32)
        self.bases, self.pruned_arch, self.exported = {}, {}, {}

    def job(self, stage: str, name: str, method, p: float, kd: bool) -> dict:
        """Run one job; its result row."""
        if stage == "base":
            run_dir, metrics, model, after, key = self.base(name)
        elif stage == "prune":
            run_dir, metrics, model, after, key = self.prune(name, method, p, kd)
        else:
            run_dir, metrics, model, after, key = self.scratch(name, p, kd)
        size, kind, int8_score = self.export(model, run_dir, (name, p))
        return {
            "dataset": self.prepared.dataset,
            "model": name,
            "stage": STAGES[key],
            "method": method or "",
            "p": p,
            "kd": bool(kd),
            "score_name": self.score_name,
            "score": _score(metrics),
            "score_after_pruning": after,
            "int8_score": int8_score,
            "params": metrics.get("params"),
            "macs": metrics.get("macs"),
            "tflite_bytes": size,
            "tflite_kind": kind,
            "seconds": metrics.get("seconds"),
            "run_dir": str(run_dir.relative_to(self.out)),
        }

    def base(self, name: str):
        """Train the unpruned model."""
        from keras_quaternion.training import load_model, train

        args = self.args
        run_dir = self.out / name / "base"
        metrics = train(
            name,
            self.prepared,
            out_dir=run_dir,
            epochs=args.epochs,
            lr=args.lr,
            width=args.width,
            model_name=name,
            **self.common,
        )
        self.bases[name] = load_model(run_dir / "model.keras")
        return run_dir, metrics, self.bases[name], None, "base"

    def prune(self, name: str, method: str, p: float, kd: bool):
        """Prune the base model by ``method`` at ratio ``p`` and fine-tune (or distil) it."""
        from keras_quaternion.pruning import prune_and_finetune

        args = self.args
        run_dir = self.out / name / method / f"p{p:g}" / ("kd" if kd else "ft")
        result = prune_and_finetune(
            self.bases[name],
            method,
            p,
            out_dir=run_dir,
            prepared=self.prepared,
            finetune_epochs=args.finetune_epochs,
            kd=kd,
            layers=args.layers,
            lr=args.finetune_lr,
            temperature=args.temperature,
            alpha=args.alpha,
            model_name=f"{name}-{method}-p{p:g}" + ("-kd" if kd else ""),
            **self.common,
        )
        self.pruned_arch.setdefault((name, p), run_dir / "pruned.keras")
        after = result["before_finetune"].get(self.score_name)
        return run_dir, result["metrics"], result["model"], after, "prune-kd" if kd else "prune"

    def scratch(self, name: str, p: float, kd: bool):
        """The pruned architecture with fresh weights, trained from scratch (KD: from the base)."""
        import keras

        from keras_quaternion.training import load_model, train

        args = self.args
        run_dir = self.out / name / "scratch" / f"p{p:g}" / ("kd" if kd else "plain")
        arch = self.pruned_arch.get((name, p))
        if arch is None:
            raise SystemExit("paper_recipe: --methods must not be empty for scratch runs.")
        keras.utils.set_random_seed(args.seed)
        student = keras.models.clone_model(load_model(arch))  # new, freshly initialised
        metrics = train(
            student,
            self.prepared,
            out_dir=run_dir,
            epochs=args.epochs,
            lr=args.lr,
            teacher=self.bases[name] if kd else None,
            temperature=args.temperature,
            alpha=args.alpha,
            model_name=f"{name}-scratch-p{p:g}" + ("-kd" if kd else ""),
            **self.common,
        )
        model = load_model(run_dir / "model.keras")
        return run_dir, metrics, model, None, "scratch-kd" if kd else "scratch"

    def export(self, model, run_dir: Path, arch: tuple):
        """``(bytes, kind, int8 score)`` of the model's ``.tflite``, as ``--tflite`` asks:
        every model (scored), or once per architecture (size only)."""
        mode = self.args.tflite
        if mode == "every" or (mode == "per-architecture" and arch not in self.exported):
            size, kind, score = _tflite(
                model, self.prepared, run_dir, self.calibration, mode == "every"
            )
            self.exported[arch] = (size, kind)
            return size, kind, score
        if mode == "per-architecture":
            return (*self.exported[arch], None)
        return None, "skipped", None


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _title(prepared, args):
    return (
        f"{prepared.dataset}: {args.model_family} vs q{args.model_family} at width {args.width:g}"
    )


def write_table(rows, out, args=None):
    """Write ``results.csv`` and ``results.md`` (atomically) into ``out``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    atomic_write(Path(out) / "results.csv", buffer.getvalue().encode("utf-8"), make_parents=True)
    score_name = rows[0]["score_name"] if rows else "accuracy"
    head = (
        f"| model | stage | method | p | KD | {score_name} | after pruning | int8 {score_name} "
        "| params | MACs | int8 .tflite bytes | seconds |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        macs = "-" if r["macs"] is None else f"{r['macs'] / 1e6:.2f} M"
        size = "-" if r["tflite_bytes"] is None else f"{r['tflite_bytes']:,}"
        if r["tflite_kind"] not in ("int8", "skipped") and r["tflite_bytes"] is not None:
            size += f" ({r['tflite_kind']})"
        lines.append(
            f"| {r['model']} | {r['stage']} | {r['method'] or '-'} | {r['p']:g} | "
            f"{'yes' if r['kd'] else 'no'} | {_fmt(r['score'], 3)} | "
            f"{_fmt(r['score_after_pruning'], 3)} | {_fmt(r['int8_score'], 3)} | "
            f"{r['params']:,} | {macs} | {size} | {_fmt(r['seconds'], 1)} |"
        )
    text = "\n".join(lines) + "\n"
    if args is not None:
        text = f"Command: `{command_line(args)}`\n\n" + text
    atomic_write(Path(out) / "results.md", text.encode("utf-8"), make_parents=True)


def command_line(args):
    """The command that reproduces ``args`` (every option spelled out)."""
    parts = ["python apps/paper_recipe.py"]
    for key, value in sorted(vars(args).items()):
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                parts.append(flag)
        elif isinstance(value, list | tuple):
            parts += [f"{flag} {v}" for v in value]
        elif value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def plot(rows, path, title=""):
    """Accuracy against MACs: one panel per model, one colour per method, hollow = no KD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_names = list(dict.fromkeys(r["model"] for r in rows))
    if not model_names:
        raise ValueError("plot: no rows to draw.")
    score_name = rows[0]["score_name"]
    colours = dict(zip(METHODS, ("tab:blue", "tab:purple", "tab:orange", "tab:green", "tab:red")))
    fig, axes = plt.subplots(
        1, len(model_names), figsize=(5.2 * len(model_names), 4.2), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], model_names):
        mine = [r for r in rows if r["model"] == name and r["score"] is not None]
        for method in METHODS:
            for kd in (False, True):
                pts = sorted(
                    (r["macs"], r["score"])
                    for r in mine
                    if r["method"] == method and r["kd"] == kd and r["macs"]
                )
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    linestyle="-" if kd else "--",
                    color=colours[method],
                    markerfacecolor=colours[method] if kd else "white",
                    label=f"{method} ({'KD' if kd else 'FT'})",
                )
        for stage, marker, colour in (("scratch+KD", "D", "0.35"), ("scratch", "d", "0.65")):
            pts = sorted((r["macs"], r["score"]) for r in mine if r["stage"] == stage and r["macs"])
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker=marker, linestyle=":", color=colour, label=stage)
        base = [r for r in mine if r["stage"] == "unpruned" and r["macs"]]
        if base:
            ax.plot(
                [base[0]["macs"]],
                [base[0]["score"]],
                marker="*",
                markersize=14,
                color="black",
                linestyle="none",
                label="unpruned",
            )
        ax.set_xscale("log")
        ax.set_xlabel("MACs per clip")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"test {score_name}")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue(), make_parents=True)
    return path


# -------------------------------------------------------------------------------------- CLI


def parser():
    """The command-line parser (every option has a default that runs on two CPU cores)."""
    p = argparse.ArgumentParser(
        prog="paper_recipe.py",
        description="The paper's CNN-vs-QCNN pruning / distillation comparison, end to end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--dataset",
        default="synthetic",
        help=f"synthetic, fsdd, or a full-scale one ({', '.join(FULL_SCALE)}) with --data-dir",
    )
    p.add_argument("--data-dir", default=None, help="the dataset's folder")
    p.add_argument(
        "--model-family",
        default="cnn6",
        help="PANNs family: the real model and its 'q' twin (cnn6, cnn10, cnn14, "
        "resnet22, resnet38)",
    )
    p.add_argument("--width", type=float, default=0.25, help="width multiplier of both models")
    p.add_argument(
        "--layers",
        default="all",
        help="'all' or 'paper' (authors' plan for (Q)CNN14 / (Q)ResNet38)",
    )
    p.add_argument("--epochs", type=int, default=10, help="epochs of the from-scratch trainings")
    p.add_argument("--finetune-epochs", type=int, default=3, help="epochs of fine-tuning")
    p.add_argument("--ratios", default="0.25,0.5,0.75", help="pruning ratios p, comma-separated")
    p.add_argument("--methods", default=",".join(METHODS), help="pruning methods, comma-separated")
    p.add_argument(
        "--scratch",
        choices=("kd", "both", "none"),
        default="kd",
        help="students of the pruned size from scratch: with KD, with and without, or none",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate from scratch")
    p.add_argument("--finetune-lr", type=float, default=5e-4, help="Adam rate for fine-tuning")
    p.add_argument(
        "--no-spec-augment",
        action="store_true",
        help="train and fine-tune without SpecAugment (on in kq-train's default recipe, which "
        "has 40 epochs: a dozen leave small models underfitted with it)",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="decoupled weight decay (default: kq-train's default recipe's)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=None,
        help="momentum of the moving average of the weights that is validated and kept "
        "(default: kq-train's default recipe's; 0: off)",
    )
    p.add_argument(
        "--gain-db",
        type=float,
        default=None,
        help="random level change of each training clip, uniform in ±this many dB "
        "(default: kq-train's default recipe's; 0: off)",
    )
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    p.add_argument("--alpha", type=float, default=0.5, help="distillation: task-loss weight")
    p.add_argument("--n-mels", type=int, default=64, help="mel bands of the features")
    p.add_argument("--sample-rate", type=int, default=None, help="Hz (default: per dataset)")
    p.add_argument("--clip-seconds", type=float, default=None, help="default: per dataset")
    p.add_argument(
        "--samples-per-class", type=int, default=60, help="synthetic only: clips per class"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset loader option (repeatable)",
    )
    p.add_argument(
        "--calibration", type=int, default=64, help="training clips used to calibrate int8 export"
    )
    p.add_argument(
        "--tflite",
        choices=("every", "per-architecture", "none"),
        default="every",
        help="int8 .tflite export: of every model (and score it), once per architecture "
        "(model, p) for the size column only, or none",
    )
    p.add_argument("--cache-dir", default=None, help="feature cache folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/paper_recipe/DATASET)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv=None):
    """Parse ``argv``, run the recipe, return the rows."""
    args = parser().parse_args(argv)
    for name in ("epochs", "finetune_epochs", "batch_size", "calibration"):
        if getattr(args, name) < 1:
            raise SystemExit(f"paper_recipe: --{name.replace('_', '-')} must be >= 1.")
    if not 0 < args.width <= 4:
        raise SystemExit(f"paper_recipe: --width must be in (0, 4], got {args.width}.")
    if args.dataset in FULL_SCALE and args.data_dir is None:
        raise SystemExit(f"paper_recipe: --dataset {args.dataset} needs --data-dir.")
    if args.dataset in FULL_SCALE and args.model_family != "cnn14":
        print(
            f"note: the paper's full-scale comparison uses --model-family cnn14 (got "
            f"{args.model_family}).",
            file=sys.stderr,
        )
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"paper_recipe: {err}") from None


if __name__ == "__main__":
    rows = main()
    print(json.dumps({"rows": len(rows)}))
