"""The released operator-norm score against its order-independent variant, on the paper recipe.

The authors' operator-norm score signs each input channel's rank-1 direction by filter 0's
projection, so the same filters in another order can get other scores. For each seed this runs
the paper recipe (``apps/paper_recipe.py``: ``cnn6`` and ``qcnn6`` trained from scratch, pruned
at p = 0.5 with ``operator-norm`` and ``operator-norm-unsigned``, fine-tuned), then measures:

1. accuracy after pruning + fine-tuning for both scores, mean and standard deviation over seeds;
2. on the trained (unpruned) models, per layer: the fraction of filters whose keep/prune
   decision changes when the filters are put in a random order (mean over ``--permutations``
   orders) for both scores (the unsigned one must give 0), and how many decisions the two
   scores disagree on in the original order.

Usage::

    python benchmarks/bench_opnorm_order.py --data-dir ../shared/data/fsdd --out table.md
    python benchmarks/bench_opnorm_order.py --models MODEL.keras ...   # part 2 only

Prints Markdown tables; ``--out`` also writes them (atomically). Reruns reuse finished trainings
under ``--work-dir``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from keras_quaternion.files import atomic_write  # noqa: E402
from keras_quaternion.pruning import importance, layer_kernel, order_sensitivity  # noqa: E402

SIGNED, UNSIGNED = "operator-norm", "operator-norm-unsigned"


def scorable_layers(model):
    """The layers of ``model`` that have a prunable kernel, in model order."""
    found = []
    for layer in model.layers:
        try:
            layer_kernel(layer)
        except (ValueError, AttributeError, TypeError):
            continue
        found.append(layer)
    return found


def disagreement(layer, ratio):
    """Fraction of filters that the two scores put on different sides, in the original order."""
    scores = [importance(layer, m) for m in (SIGNED, UNSIGNED)]
    n = len(scores[0])
    n_pruned = int(np.floor(ratio * n + 0.5 + 1e-9))
    index = np.arange(n)
    pruned = [set(index[np.lexsort((index, s))][:n_pruned].tolist()) for s in scores]
    return len(pruned[0] - pruned[1]) / n


def measure(path, ratio, permutations, seed, label=None):
    """One row per scorable layer of the model at ``path``."""
    from keras_quaternion.training import load_model

    model = load_model(path)
    label = label or Path(path).parent.name or Path(path).stem
    rows = []
    for layer in scorable_layers(model):
        if layer is model.layers[-1]:
            continue  # the output layer's filters are the classes: never pruned
        rows.append(
            {
                "model": label,
                "layer": layer.name,
                "filters": int(layer_kernel(layer)[0].shape[-1]),
                "signed": order_sensitivity(
                    layer, SIGNED, ratio, permutations=permutations, seed=seed
                ),
                "unsigned": order_sensitivity(
                    layer, UNSIGNED, ratio, permutations=permutations, seed=seed
                ),
                "disagree": disagreement(layer, ratio),
            }
        )
    return rows


def order_table(rows, ratio, permutations):
    """Markdown: one line per layer, then each model's mean."""
    lines = [
        f"Order dependence at p = {ratio:g}, {permutations} random filter orders per layer. "
        "*Moved*: filters whose keep/prune decision changes when the filters are reordered "
        "(mean over the orders); *disagree*: filters the two scores put on different sides in "
        "the original order.",
        "",
        "| model | layer | filters | moved, `operator-norm` | moved, `operator-norm-unsigned` "
        "| disagree |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | `{r['layer']}` | {r['filters']} | {r['signed']:.1%} | "
            f"{r['unsigned']:.1%} | {r['disagree']:.1%} |"
        )
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in ("signed", "unsigned", "disagree")}
        lines.append(
            f"| **{model}** | mean of {len(mine)} layers | | **{mean['signed']:.1%}** | "
            f"**{mean['unsigned']:.1%}** | **{mean['disagree']:.1%}** |"
        )
    return "\n".join(lines) + "\n"


RECIPE = (
    "--dataset fsdd --width 0.125 --n-mels 32 "
    "--layers conv_block2_conv1,conv_block3_conv1,conv_block4_conv1 --epochs 12 "
    "--finetune-epochs 2 --batch-size 64 --lr 0.003 --finetune-lr 0.001 --ratios 0.5 "
    f"--methods {SIGNED},{UNSIGNED} --scratch none --tflite none --quiet"
)


def run_recipe(data_dir, work_dir, seed):
    """The paper recipe's rows for one seed (trainings already finished are reused)."""
    sys.path.insert(0, str(ROOT / "apps"))
    import paper_recipe

    argv = RECIPE.split() + ["--data-dir", str(data_dir), "--seed", str(seed)]
    argv += [
        "--out",
        str(Path(work_dir) / f"s{seed}"),
        "--cache-dir",
        str(Path(work_dir) / "cache"),
    ]
    return paper_recipe.main(argv)


def accuracy_table(rows_by_seed):
    """Markdown: accuracy after pruning + fine-tuning, mean ± sd over seeds, per model and score."""
    seeds = sorted(rows_by_seed)
    lines = [
        f"Paper recipe on FSDD, p = 0.5, seeds {', '.join(map(str, seeds))}: "
        f"`python apps/paper_recipe.py {RECIPE} --seed S`.",
        "",
        "| model | score | accuracy after pruning + fine-tuning (mean ± sd) | per seed | "
        "unpruned (mean) |",
        "|---|---|---|---|---|",
    ]
    models = dict.fromkeys(r["model"] for rows in rows_by_seed.values() for r in rows)
    for model in models:
        base = [
            r["score"]
            for s in seeds
            for r in rows_by_seed[s]
            if r["model"] == model and r["stage"] == "unpruned"
        ]
        for method in (SIGNED, UNSIGNED):
            got = [
                r["score"]
                for s in seeds
                for r in rows_by_seed[s]
                if r["model"] == model and r["method"] == method and not r["kd"]
            ]
            lines.append(
                f"| {model} | `{method}` | {np.mean(got):.3f} ± {np.std(got):.3f} | "
                f"{', '.join(f'{v:.3f}' for v in got)} | {np.mean(base):.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="FSDD's folder (runs the recipe)")
    p.add_argument("--work-dir", default="runs/opnorm_order", help="the recipe's runs")
    p.add_argument("--seeds", default="0,1,2", help="recipe seeds, comma-separated")
    p.add_argument("--models", nargs="+", default=[], help="trained .keras models (part 2 only)")
    p.add_argument("--ratio", type=float, default=0.5, help="pruning ratio p")
    p.add_argument("--permutations", type=int, default=20, help="random filter orders per layer")
    p.add_argument("--out", default=None, help="also write the tables to this file")
    args = p.parse_args(argv)
    if not args.models and args.data_dir is None:
        p.error("give --data-dir (FSDD, to run the recipe) or --models MODEL.keras ...")
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        p.error(f"no such model file: {', '.join(missing)} (train one with kq-train first)")
    text = (
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} by "
        "`python benchmarks/bench_opnorm_order.py`.\n\n"
    )
    models = [(m, None) for m in args.models]
    if args.data_dir is not None:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        rows = {seed: run_recipe(args.data_dir, args.work_dir, seed) for seed in seeds}
        text += accuracy_table(rows) + "\n"
        for name in ("cnn6", "qcnn6"):  # the seed-0 models trained from scratch
            path = Path(args.work_dir) / f"s{seeds[0]}" / name / "base" / "model.keras"
            models.append((path, f"{name} (seed {seeds[0]})"))
    rows = []
    for path, label in models:
        rows.extend(measure(path, args.ratio, args.permutations, 0, label))
    text += order_table(rows, args.ratio, args.permutations)
    print(text)
    if args.out:
        atomic_write(Path(args.out), text, make_parents=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
