"""What the moving average of the weights (``--ema``) costs: time per update against a step.

For each model of ``--models`` (registry name and width, the FSDD input: 101 frames, 64 mel
bands, 10 classes) it builds the model as ``train()`` does (Adam, its loss), times
``--steps`` training steps on random batches of ``--batch-size``, then the same number of
:meth:`~keras_quaternion.training.averaging.WeightAverage.update` calls, alternating the two
``--repeats`` times and keeping each one's fastest, and reports both and their ratio, with the
bytes the twin model adds (its float variables). Measured in one process, so the ratio holds
on another machine even where the seconds do not.

    python benchmarks/bench_ema.py --out build/figures/bench_ema.md      # about 2 min
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAMES, MELS, CLASSES = 101, 64, 10


def _model(name: str, width: float):
    import keras

    from keras_quaternion.models import build

    net = build(name, classes=CLASSES, n_mels=MELS, frames=FRAMES, width=width)
    net.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    return net


def _fastest(function, steps: int, repeats: int) -> float:
    """Seconds per call of ``function(i)``: the fastest of ``repeats`` runs of ``steps`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            function(i)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def measure(name: str, width: float, batch: int, steps: int, repeats: int) -> dict:
    """Seconds per training step and per average update of one model, and the twin's bytes."""
    import numpy as np

    from keras_quaternion.training.averaging import WeightAverage

    net = _model(name, width)
    channels = net.input_shape[-1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, FRAMES, MELS, channels)).astype("float32")
    y = rng.integers(0, CLASSES, batch)
    net.train_on_batch(x, y)  # traced before timing
    average = WeightAverage(net, 0.99)
    average.update(0)
    step = _fastest(lambda i: net.train_on_batch(x, y), steps, repeats)
    update = _fastest(lambda i: average.update(i), steps, repeats)
    twin = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in average.net.weights)
    return {"model": f"`{name}` x{width:g}", "step": step, "update": update, "bytes": twin}


def table(rows: list[dict], batch: int, note: str) -> str:
    lines = [
        note,
        "",
        f"| model | training step (batch {batch}) | average update | update / step | "
        "twin model's variables |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['step'] * 1e3:.1f} ms | {r['update'] * 1e3:.2f} ms | "
            f"{r['update'] / r['step']:.3f} | {r['bytes'] / 1024:,.0f} KiB |"
        )
    return "\n".join(lines) + "\n"


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="qcnn6:0.25,cnn6:0.25,qcnn14:0.25")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="Write the table here.")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    rows = []
    for item in args.models.split(","):
        name, _, width = item.partition(":")
        rows.append(measure(name, float(width or 1.0), args.batch_size, args.steps, args.repeats))
    note = (
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs) by `python benchmarks/bench_ema.py` (fastest of "
        f"{args.repeats} x {args.steps} calls each)."
    )
    text = table(rows, args.batch_size, note)
    print(text)
    if args.out:
        from keras_quaternion.files import atomic_write

        atomic_write(args.out, text, make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
