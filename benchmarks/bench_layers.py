"""QConv2D against Conv2D of the same real widths and a naive 16-convolution Hamilton product.

One run times, on the same random input, the forward pass and the forward + backward pass of:

* ``Conv2D``: a real 3x3 convolution from ``C_in`` to ``C_out`` real channels;
* ``QConv2D``: the library's quaternion convolution with the same real widths (``C_in/4`` to
  ``C_out/4`` quaternion units), i.e. one real convolution with the assembled Hamilton kernel:
  the same MACs as ``Conv2D``, a quarter of the weights;
* ``naive Hamilton``: the textbook form written here, 16 convolutions of each input component
  with each weight component, summed with the Hamilton signs (checked equal to ``QConv2D``).

Measurements are interleaved (one repeat of each variant in turn) and the median is reported,
so a machine whose load changes during the run affects all variants alike.

Usage::

    python benchmarks/bench_layers.py                   # batch 8, 128x64, 128 -> 256 channels
    python benchmarks/bench_layers.py --repeats 20 --out table.md

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
from keras import ops  # noqa: E402
from tqdm import tqdm  # noqa: E402

from keras_quaternion import QConv2D  # noqa: E402
from keras_quaternion.files import atomic_write  # noqa: E402

# Hamilton product W ⊗ x: output component -> [(weight component, input component, sign)]
NAIVE_TERMS = (
    ((0, 0, 1), (1, 1, -1), (2, 2, -1), (3, 3, -1)),  # r = a p - b q - c r - d s
    ((0, 1, 1), (1, 0, 1), (2, 3, 1), (3, 2, -1)),  # i = a q + b p + c s - d r
    ((0, 2, 1), (1, 3, -1), (2, 0, 1), (3, 1, 1)),  # j = a r - b s + c p + d q
    ((0, 3, 1), (1, 2, 1), (2, 1, -1), (3, 0, 1)),  # k = a s + b r - c q + d p
)


class NaiveQConv2D(keras.layers.Layer):
    """Quaternion convolution as 16 real convolutions (the form QConv2D avoids).

    Holds the same ``(4, kh, kw, C, F)`` kernel as :class:`QConv2D`, splits the input into its
    ``[r | i | j | k]`` blocks and convolves every input component with every weight component.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size

    def build(self, input_shape):
        units = input_shape[-1] // 4
        self.kernel = self.add_weight(
            name="kernel",
            shape=(4, self.kernel_size, self.kernel_size, units, self.filters),
            initializer="glorot_uniform",
        )

    def call(self, x):
        parts = ops.split(x, 4, axis=-1)
        outputs = []
        for terms in NAIVE_TERMS:
            total = None
            for w, c, sign in terms:
                y = ops.conv(parts[c], self.kernel[w], padding="same")
                y = y if sign > 0 else ops.negative(y)
                total = y if total is None else total + y
            outputs.append(total)
        return ops.concatenate(outputs, axis=-1)


def _layers(c_in, c_out):
    conv = keras.layers.Conv2D(c_out, 3, padding="same", use_bias=False)
    qconv = QConv2D(c_out // 4, 3, padding="same", use_bias=False)
    naive = NaiveQConv2D(c_out // 4, 3)
    return {"Conv2D": conv, "QConv2D": qconv, "naive Hamilton (16 convs)": naive}


def _steps(layer, x):
    forward = tf.function(lambda inp: layer(inp), jit_compile=False)

    @tf.function(jit_compile=False)
    def forward_backward(inp):
        with tf.GradientTape() as tape:
            tape.watch(inp)
            loss = tf.reduce_sum(tf.square(layer(inp)))
        return tape.gradient(loss, [inp, *layer.trainable_variables])

    return forward, forward_backward


def _run_once(fn, x):
    start = time.perf_counter()
    out = fn(x)
    for t in tf.nest.flatten(out):
        t.numpy()  # wait for the result
    return time.perf_counter() - start


def run(batch, height, width, c_in, c_out, repeats, seed=0):
    """Time every variant; returns rows ``(name, params, forward s, fwd+bwd s)``."""
    if c_in % 4 or c_out % 4:
        raise SystemExit(f"channels must be multiples of 4, got {c_in} -> {c_out}")
    x = tf.constant(
        np.random.default_rng(seed).normal(size=(batch, height, width, c_in)).astype("float32")
    )
    layers = _layers(c_in, c_out)
    for layer in layers.values():
        layer(x[:1])
    qconv = layers["QConv2D"]
    naive = layers["naive Hamilton (16 convs)"]
    naive.kernel.assign(qconv.kernel)
    diff = float(np.max(np.abs(np.asarray(naive(x[:1])) - np.asarray(qconv(x[:1])))))
    if diff > 1e-3:
        raise SystemExit(f"naive Hamilton form differs from QConv2D by {diff}")
    steps = {name: _steps(layer, x) for name, layer in layers.items()}
    times = {(name, kind): [] for name in layers for kind in (0, 1)}
    for pair in steps.values():  # trace + warm up
        for fn in pair:
            _run_once(fn, x)
            _run_once(fn, x)
    for _ in tqdm(range(repeats), desc="repeats"):
        for name, pair in steps.items():
            for kind, fn in enumerate(pair):
                times[(name, kind)].append(_run_once(fn, x))
    rows = []
    for name, layer in layers.items():
        rows.append(
            (
                name,
                layer.count_params(),
                statistics.median(times[(name, 0)]),
                statistics.median(times[(name, 1)]),
            )
        )
    return rows, diff


def table(rows, args, diff):
    base = {r[0]: r for r in rows}["Conv2D"]
    lines = [
        f"Input ({args.batch}, {args.height}, {args.width}, {args.c_in}) -> {args.c_out} real "
        f"channels, 3x3 'same', no bias; median of {args.repeats} interleaved repeats; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU core(s). Speed = Conv2D time / this time (>1 is faster). "
        f"Naive form == QConv2D to {diff:.1e}.",
        "",
        "| layer | weights | forward (ms) | speed vs Conv2D | forward+backward (ms) "
        "| speed vs Conv2D |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, params, fwd, bwd in rows:
        lines.append(
            f"| {name} | {params:,} | {fwd * 1e3:.1f} | {base[2] / fwd:.2f}x | "
            f"{bwd * 1e3:.1f} | {base[3] / bwd:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=128, help="frames")
    parser.add_argument("--width", type=int, default=64, help="mel bins")
    parser.add_argument("--c-in", type=int, default=128, help="real input channels")
    parser.add_argument("--c-out", type=int, default=256, help="real output channels")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    rows, diff = run(args.batch, args.height, args.width, args.c_in, args.c_out, args.repeats)
    text = table(rows, args, diff)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)


if __name__ == "__main__":
    main()
