"""Pruning cost and payoff on full-size models, in one run.

1. Cost: dependency-graph, scoring and rebuild time of ``prune`` on full-size QCNN14 and
   QResNet38 (527 classes, 64 mel bins), for every scoring method at p = 0.5 on all layers.
2. Payoff: inference time of the pruned model over the unpruned one at p = 0.5 (all layers),
   next to the MACs ratio, on one 10 s clip (1001 frames) per call.
3. The authors' plan (``layers="paper"``) at p = 0.5: parameters and MACs.

Usage::

    python benchmarks/bench_pruning.py                 # full run (a few minutes on 2 cores)
    python benchmarks/bench_pruning.py --frames 201 --repeats 3 --models qcnn14

Prints Markdown tables; ``--out FILE`` also writes them to FILE (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from keras_quaternion import models  # noqa: E402
from keras_quaternion.files import atomic_write  # noqa: E402
from keras_quaternion.pruning import (  # noqa: E402
    METHODS,
    prune,
)


def _infer_seconds(model_a, model_b, frames, n_mels, channels, repeats):
    """Best-of-``repeats`` seconds per call of two models, timed alternately.

    Alternating the two models and keeping each one's fastest call makes the ratio robust to
    other load on a shared machine.
    """
    data = tf.constant(
        np.random.default_rng(0).normal(size=(1, frames, n_mels, channels)).astype("float32")
    )
    steps = [tf.function(lambda x, m=m: m(x, training=False)) for m in (model_a, model_b)]
    for step in steps:  # trace + warm up
        step(data).numpy()
        step(data).numpy()
    best = [float("inf"), float("inf")]
    for _ in tqdm(range(repeats), desc="timing", leave=False):
        for n, step in enumerate(steps):
            start = time.perf_counter()
            step(data).numpy()
            best[n] = min(best[n], time.perf_counter() - start)
    return best


def run(names, frames, repeats, classes=527, n_mels=64):
    cost_rows, speed_rows, paper_rows = [], [], []
    for name in names:
        model = models.build(name, classes=classes, n_mels=n_mels)
        channels = model.input_shape[-1]
        for method in tqdm(METHODS, desc=f"{name}: methods", leave=False):
            start = time.perf_counter()
            pruned, report = prune(model, method, 0.5, frames=frames)
            total = time.perf_counter() - start
            t = report.seconds
            cost_rows.append((name, method, t["graph"], t["scoring"], t["rebuild"], total))
        # pruned/unpruned speed at p = 0.5 on all convolutions (the last method's model: the
        # architecture, hence the speed, is the same for every method)
        t_full, t_small = _infer_seconds(model, pruned, frames, n_mels, channels, repeats)
        speed_rows.append(
            (
                name,
                report.params_before[0],
                report.params_after[0],
                report.macs_before,
                report.macs_after,
                t_full,
                t_small,
            )
        )
        _, paper = prune(model, "operator-norm", 0.5, layers="paper", frames=frames)
        paper_rows.append(
            (name, paper.params_before[0], paper.params_after[0], paper.macs_before,
             paper.macs_after)
        )  # fmt: skip
        tf.keras.backend.clear_session()
    return cost_rows, speed_rows, paper_rows


def tables(cost_rows, speed_rows, paper_rows, frames, repeats):
    out = [
        "Pruning cost at p = 0.5, all convolutions (seconds; the total adds counting parameters "
        "and MACs before and after for the report):",
        "",
        "| model | method | dependency graph | scoring | rebuild | prune() total |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, method, tg, ts, tr, tp in cost_rows:
        out.append(f"| {name} | {method} | {tg:.2f} | {ts:.2f} | {tr:.2f} | {tp:.2f} |")
    out += [
        "",
        f"Inference on one clip of {frames} frames (batch 1, best of {repeats} alternating calls), "
        "p = 0.5 on all convolutions:",
        "",
        "| model | params before | params after | GMACs before | GMACs after | MACs ratio "
        "| seconds before | seconds after | time ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, pb, pa, mb, ma, tb, ta in speed_rows:
        out.append(
            f"| {name} | {pb / 1e6:.2f} M | {pa / 1e6:.2f} M | {mb / 1e9:.2f} | {ma / 1e9:.2f} "
            f"| {ma / mb:.3f} | {tb:.3f} | {ta:.3f} | {ta / tb:.3f} |"
        )
    out += [
        "",
        f'The authors\' plan (`layers="paper"`), p = 0.5, MACs at {frames} frames:',
        "",
        "| model | params before | params after | GMACs before | GMACs after |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, pb, pa, mb, ma in paper_rows:
        out.append(
            f"| {name} | {pb / 1e6:.2f} M | {pa / 1e6:.2f} M | {mb / 1e9:.2f} | {ma / 1e9:.2f} |"
        )
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU, no GPU"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    out += ["", f"Machine: {machine}; TensorFlow {tf.__version__}; load average {load}."]
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["qcnn14", "qresnet38"])
    parser.add_argument("--frames", type=int, default=1001, help="input frames (1001 = 10 s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per model")
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.frames < 32 or args.repeats < 1:
        parser.error("--frames must be >= 32 and --repeats >= 1")
    unknown = sorted(set(args.models) - set(models.names()))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(models.names())}")
    text = tables(*run(args.models, args.frames, args.repeats), args.frames, args.repeats)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
