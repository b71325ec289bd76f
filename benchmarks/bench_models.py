"""Training-step and inference time of quaternion registry models against their real twins.

For each pair (default: ``qcnn14`` vs ``cnn14`` at full width, and ``qcnn6`` vs ``cnn6`` at
width 0.25), one run measures on the CPU, at one batch size and clip length:

* inference: ``model(x, training=False)`` in a ``tf.function``;
* training step: forward, loss, backward and an Adam update (``model.train_on_batch``);

interleaving the two models of a pair repeat by repeat (so load changes hit both), and prints
the medians and the ratios quaternion / real (> 1: the quaternion model is slower).

Usage::

    python benchmarks/bench_models.py                        # ~3-5 minutes on 2 cores
    python benchmarks/bench_models.py --batch 4 --frames 101 --repeats 3 --out table.md

Prints a Markdown table; ``--out FILE`` also writes it to FILE (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from keras_quaternion import models  # noqa: E402
from keras_quaternion.counting import count_macs, count_params  # noqa: E402
from keras_quaternion.files import atomic_write  # noqa: E402

DEFAULT_PAIRS = (("qcnn14", "cnn14", 1.0), ("qcnn6", "cnn6", 0.25))


def _prepare(name, width, batch, frames, n_mels, classes, seed):
    keras.utils.set_random_seed(seed)
    model = models.build(name, classes=classes, n_mels=n_mels, width=width)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    channels = models.describe(name).input_channels
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, frames, n_mels, channels)).astype("float32"))
    y = tf.constant(rng.integers(0, classes, size=(batch,)))
    infer = tf.function(lambda inp: model(inp, training=False), jit_compile=False)

    def infer_once():
        start = time.perf_counter()
        infer(x).numpy()
        return time.perf_counter() - start

    def train_once():
        start = time.perf_counter()
        model.train_on_batch(x, y)
        return time.perf_counter() - start

    for _ in range(2):  # trace + warm up
        infer_once()
        train_once()
    return model, infer_once, train_once


def run(pairs, batch, frames, repeats, n_mels=64, classes=527, seed=0):
    """Returns rows ``(quat, real, width, q stats, r stats)`` with stats dicts."""
    rows = []
    for quat, real, width in pairs:
        entries = {}
        for name in (quat, real):
            model, infer_once, train_once = _prepare(
                name, width, batch, frames, n_mels, classes, seed
            )
            entries[name] = {
                "params": count_params(model)[0],
                "macs": count_macs(model, frames=frames),
                "infer": infer_once,
                "train": train_once,
                "infer_s": [],
                "train_s": [],
            }
        for _ in tqdm(range(repeats), desc=f"{quat} vs {real}"):
            for name in (quat, real):
                entries[name]["infer_s"].append(entries[name]["infer"]())
                entries[name]["train_s"].append(entries[name]["train"]())
        stats = {
            name: {
                "params": e["params"],
                "macs": e["macs"],
                "infer": statistics.median(e["infer_s"]),
                "train": statistics.median(e["train_s"]),
            }
            for name, e in entries.items()
        }
        rows.append((quat, real, width, stats[quat], stats[real]))
        keras.backend.clear_session()
    return rows


def table(rows, args):
    lines = [
        f"Batch {args.batch}, {args.frames} frames x 64 mel bins, 527 classes; median of "
        f"{args.repeats} interleaved repeats; training step = forward + backward + Adam update "
        f"(`train_on_batch`); TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPU core(s). Ratio = quaternion / real time "
        "(< 1.10 meets the issue's target).",
        "",
        "| model | width | trainable params | MACs / example | inference (ms) | "
        "training step (ms) | inference ratio | training ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for quat, real, width, q, r in rows:
        for name, s in ((real, r), (quat, q)):
            ratio_i = f"{q['infer'] / r['infer']:.2f}" if name == quat else ""
            ratio_t = f"{q['train'] / r['train']:.2f}" if name == quat else ""
            lines.append(
                f"| {name} | {width:g} | {s['params']:,} | {s['macs'] / 1e9:.2f} G | "
                f"{s['infer'] * 1e3:.0f} | {s['train'] * 1e3:.0f} | {ratio_i} | {ratio_t} |"
            )
    return "\n".join(lines) + "\n"


def _pair(text):
    try:
        quat, real, width = text.split(":")
        return quat, real, float(width)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--pair takes QUAT:REAL:WIDTH, e.g. qcnn6:cnn6:0.25; got {text!r}"
        ) from exc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1001, help="clip length in frames (10 s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pair",
        type=_pair,
        action="append",
        help="QUAT:REAL:WIDTH (repeatable); default qcnn14:cnn14:1 and qcnn6:cnn6:0.25",
    )
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    pairs = args.pair or DEFAULT_PAIRS
    for quat, real, _ in pairs:
        for name in (quat, real):
            if name not in models.names():
                parser.error(f"unknown model {name!r}; known: {', '.join(models.names())}")
    text = table(run(pairs, args.batch, args.frames, args.repeats), args)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)


if __name__ == "__main__":
    main()
