"""QConv2D (standard and fast) against Conv2D of the same real widths and a naive Hamilton product.

One run times, on the same random input, the forward pass and the forward + backward pass of:

* ``Conv2D``: a real 3x3 convolution from ``C_in`` to ``C_out`` real channels;
* ``QConv2D``: the library's quaternion convolution with the same real widths (``C_in/4`` to
  ``C_out/4`` quaternion units), i.e. one real convolution with the assembled Hamilton kernel:
  the same MACs as ``Conv2D``, a quarter of the weights;
* ``QConv2D fast``: ``algorithm="fast"``, 8 real convolutions from ``C_in/4`` to ``C_out/4``
  channels on sums and differences of the input components (half the MACs);
* ``naive Hamilton``: the textbook form written here, 16 convolutions of each input component
  with each weight component, summed with the Hamilton signs (checked equal to ``QConv2D``).

``--formulations`` adds the other ways of running the fast algorithm on TensorFlow that were
tried (written here, checked equal to ``QConv2D``): one grouped convolution (``groups=8``) on
the 8 stacked input combinations; the 8 convolutions batched over the combination axis with
``tf.vectorized_map``; and im2col patches with one batched matmul ``(8, N, 9C) @ (8, 9C, F)``.
The library's ``QConv2D fast`` is the fastest of them: 8 separate convolutions.

``--sweep W1,W2,...`` adds a second table: ``QConv2D`` fast against standard from ``W`` to ``W``
real channels at CNN14-like sizes (the feature map halves in both axes each time the width
doubles past 64, as CNN14's blocks do), to show from which width the fast form pays off.

Measurements are interleaved (one repeat of each variant in turn) and the median is reported,
so a machine whose load changes during the run affects all variants alike.

Usage::

    python benchmarks/bench_layers.py                   # batch 8, 128x64, 128 -> 256 channels
    python benchmarks/bench_layers.py --c-in 256 --c-out 256 --formulations
    python benchmarks/bench_layers.py --repeats 10 --sweep 16,32,64,128,256,512 --out table.md

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
from keras_quaternion.layers.fast import fast_inputs, fast_kernels, fast_outputs  # noqa: E402

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


class FastFormulation(keras.layers.Layer):
    """The fast algorithm written another way (``kind``: grouped, vmap or im2col), same kernel."""

    def __init__(self, filters, kind, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kind = kind

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(4, 3, 3, input_shape[-1] // 4, self.filters)
        )

    def call(self, x):
        xs, ws = fast_inputs(x), fast_kernels(self.kernel)
        if self.kind == "grouped":  # one convolution, groups=8 (C_in = 8 * kernel's C)
            y = ops.conv(ops.concatenate(xs, axis=-1), ops.concatenate(ws, axis=-1), padding="same")
            return fast_outputs(ops.split(y, 8, axis=-1))
        if self.kind == "vmap":  # the 8 convolutions batched over the combination axis
            y = tf.vectorized_map(
                lambda pair: tf.nn.conv2d(pair[0], pair[1], 1, "SAME"),
                (tf.stack(xs), tf.stack(ws)),
            )
            return fast_outputs(tf.unstack(y))
        return fast_outputs(tf.unstack(self._im2col(xs, ws)))

    @staticmethod
    def _im2col(xs, ws):
        """3x3 patches of the 8 combinations, one batched matmul ``(8, N, 9C) @ (8, 9C, F)``."""
        b, h, w, c = xs[0].shape
        stacked = tf.concat(xs, axis=-1)  # (b, h, w, 8C)
        patches = tf.image.extract_patches(stacked, [1, 3, 3, 1], [1] * 4, [1] * 4, "SAME")
        patches = tf.reshape(patches, (b * h * w, 9, 8, c))
        patches = tf.reshape(tf.transpose(patches, (2, 0, 1, 3)), (8, b * h * w, 9 * c))
        y = tf.matmul(patches, tf.reshape(tf.stack(ws), (8, 9 * c, -1)))
        return tf.reshape(y, (8, b, h, w, -1))


FORMULATIONS = {
    "fast, grouped conv (groups=8)": "grouped",
    "fast, vectorized_map over the 8": "vmap",
    "fast, im2col + batched matmul": "im2col",
}


def _layers(c_in, c_out, formulations=False):
    layers = {
        "Conv2D": keras.layers.Conv2D(c_out, 3, padding="same", use_bias=False),
        "QConv2D": QConv2D(c_out // 4, 3, padding="same", use_bias=False),
        "QConv2D fast": QConv2D(c_out // 4, 3, padding="same", use_bias=False, algorithm="fast"),
        "naive Hamilton (16 convs)": NaiveQConv2D(c_out // 4, 3),
    }
    if formulations:
        for name, kind in FORMULATIONS.items():
            layers[name] = FastFormulation(c_out // 4, kind)
    return layers


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


def _share_kernel(layers, x):
    """Give every quaternion variant QConv2D's kernel; return the largest output difference."""
    for layer in layers.values():
        layer(x[:1])
    reference = layers["QConv2D"]
    want = np.asarray(reference(x[:1]))
    diff = 0.0
    for name, layer in layers.items():
        if name in ("Conv2D", "QConv2D"):
            continue
        layer.kernel.assign(reference.kernel)
        diff = max(diff, float(np.max(np.abs(np.asarray(layer(x[:1])) - want))))
    if diff > 1e-3 * max(1.0, float(np.max(np.abs(want)))):
        raise SystemExit(f"a Hamilton form differs from QConv2D by {diff}")
    return diff


def _time(layers, x, repeats, desc):
    """Interleaved medians: ``{name: (forward s, forward+backward s)}``."""
    steps = {name: _steps(layer, x) for name, layer in layers.items()}
    times = {(name, kind): [] for name in layers for kind in (0, 1)}
    for pair in steps.values():  # trace + warm up
        for fn in pair:
            _run_once(fn, x)
            _run_once(fn, x)
    for _ in tqdm(range(repeats), desc=desc):
        for name, pair in steps.items():
            for kind, fn in enumerate(pair):
                times[(name, kind)].append(_run_once(fn, x))
    return {
        name: (statistics.median(times[(name, 0)]), statistics.median(times[(name, 1)]))
        for name in layers
    }


def _input(batch, height, width, channels, seed):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(size=(batch, height, width, channels)).astype("float32"))


def run(batch, height, width, c_in, c_out, repeats, seed=0, formulations=False):
    """Time every variant; returns rows ``(name, params, forward s, fwd+bwd s)`` and the check."""
    if c_in % 4 or c_out % 4:
        raise SystemExit(f"channels must be multiples of 4, got {c_in} -> {c_out}")
    x = _input(batch, height, width, c_in, seed)
    layers = _layers(c_in, c_out, formulations)
    diff = _share_kernel(layers, x)
    medians = _time(layers, x, repeats, "repeats")
    rows = [(name, layer.count_params(), *medians[name]) for name, layer in layers.items()]
    return rows, diff


def sweep_shape(channels, height, width):
    """CNN14-like map for a width: full size up to 64 channels, halved per doubling above."""
    scale = max(1, channels // 64)
    return max(2, height // scale), max(2, width // scale)


def run_sweep(batch, height, width, widths, repeats, seed=0):
    """Fast against standard QConv2D from ``w`` to ``w`` channels; rows ``(w, h, w', times)``."""
    rows = []
    for channels in widths:
        if channels % 4:
            raise SystemExit(f"--sweep widths must be multiples of 4, got {channels}")
        h, w = sweep_shape(channels, height, width)
        x = _input(batch, h, w, channels, seed)
        layers = {
            name: QConv2D(channels // 4, 3, padding="same", use_bias=False, algorithm=name)
            for name in ("standard", "fast")
        }
        layers["QConv2D"] = layers.pop("standard")  # the reference _share_kernel checks against
        _share_kernel(layers, x)
        medians = _time(layers, x, repeats, f"{channels} channels")
        rows.append((channels, h, w, medians["QConv2D"], medians["fast"]))
    return rows


def table(rows, args, diff):
    base = {r[0]: r for r in rows}["Conv2D"]
    lines = [
        f"Input ({args.batch}, {args.height}, {args.width}, {args.c_in}) -> {args.c_out} real "
        f"channels, 3x3 'same', no bias; median of {args.repeats} interleaved repeats; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU core(s). Speed = Conv2D time / this time (>1 is faster). "
        f"Other Hamilton forms == QConv2D to {diff:.1e}.",
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


def sweep_table(rows, args):
    lines = [
        f'`QConv2D(algorithm="fast")` against `algorithm="standard"`, W -> W real channels, '
        f"3x3 'same', batch {args.batch}, CNN14-like maps ({args.height}x{args.width} up to 64 "
        f"channels, halved in both axes per doubling above); median of {args.repeats} "
        "interleaved repeats. Speed-up = standard time / fast time (>1: fast is faster).",
        "",
        "| real channels W | quaternion units | map | standard fwd (ms) | fast fwd (ms) "
        "| speed-up | standard fwd+bwd (ms) | fast fwd+bwd (ms) | speed-up |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for channels, h, w, (s_f, s_b), (f_f, f_b) in rows:
        lines.append(
            f"| {channels} | {channels // 4} | {h}x{w} | {s_f * 1e3:.1f} | {f_f * 1e3:.1f} "
            f"| {s_f / f_f:.2f}x | {s_b * 1e3:.1f} | {f_b * 1e3:.1f} | {s_b / f_b:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def _widths(text):
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        widths = []
    if not widths or any(w < 4 or w % 4 for w in widths):
        raise argparse.ArgumentTypeError(
            f"--sweep takes comma-separated real channel counts, multiples of 4 (e.g. "
            f"16,64,256); got {text!r}"
        )
    return widths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=128, help="frames")
    parser.add_argument("--width", type=int, default=64, help="mel bins")
    parser.add_argument("--c-in", type=int, default=128, help="real input channels")
    parser.add_argument("--c-out", type=int, default=256, help="real output channels")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--formulations",
        action="store_true",
        help="also time the other formulations of the fast algorithm (grouped, batched, im2col)",
    )
    parser.add_argument(
        "--sweep",
        type=_widths,
        help="W1,W2,...: also compare fast and standard QConv2D from W to W real channels",
    )
    parser.add_argument("--out", help="also write the table(s) to this file")
    args = parser.parse_args(argv)
    rows, diff = run(
        args.batch,
        args.height,
        args.width,
        args.c_in,
        args.c_out,
        args.repeats,
        formulations=args.formulations,
    )
    text = table(rows, args, diff)
    if args.sweep:
        sweep = run_sweep(args.batch, args.height, args.width, args.sweep, args.repeats)
        text += "\n" + sweep_table(sweep, args)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)


if __name__ == "__main__":
    main()
