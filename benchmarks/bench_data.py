"""The sharded log-mel cache at AudioSet scale: bytes per clip, build and read rates.

Synthetic ten-second clips at 32 kHz (PANNs' front end: 1024-point FFT, hop 320, 64 mel bands,
1001 frames) are written as WAV files; a dataset of ``--clips`` examples cycles over them. The
script then measures

1. the ``"logmel16"`` cache (float16 log-mel, shards of ``--shard-size`` clips): bytes per clip,
   and clips per second to build it with 1 and with 2 worker processes (each worker one
   TensorFlow thread; the rate is counted from the first shard's start to the last shard's
   end, so the processes' start-up is left out, and the end-to-end time is shown too);
2. clips per second to read it through
   :meth:`~keras_quaternion.training.pipeline.PreparedData.tf_dataset` (shuffled batches of
   ``--batch-size``, float16 to float32, from a warm page cache);
3. examples per second that one ``qcnn6`` training step consumes at the same input size
   (``kq-train``'s default width 0.25, Δ, Δ², Δ³ computed in the model; the default strategy,
   both cores),

and extrapolates them to AudioSet's 2 million clips: disk, hours to build per node (this
2-core machine), hours per epoch to read and to train. The float32 quaternion cache (the
default format) is shown for comparison: its size per clip is exact (``frames x mels x 4
channels x 4 bytes``).

    python benchmarks/bench_data.py --out build/figures/bench_data.md     # about 10 min

The machine's load (``os.getloadavg``) is printed with the numbers: other processes on the
same cores lower the 2-worker rate first.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

AUDIOSET_CLIPS = 2_000_000
CLIP_SECONDS = 10.0
TARGET_KB = 150.0
TARGET_SPEEDUP = 1.6


def write_wavs(folder: Path, count: int, sample_rate: int) -> list[Path]:
    """``count`` distinct ten-second WAV files (int16 noise and tones)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_SECONDS * sample_rate)) / sample_rate
    paths = []
    for i in range(count):
        wave = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, np.clip(wave, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths


def synthetic_dataset(paths: list[Path], clips: int, sample_rate: int):
    """An :class:`AudioDataset` of ``clips`` examples (all in ``train``) cycling over ``paths``."""
    from keras_quaternion.datasets import AudioDataset, Example

    examples = [Example(str(paths[i % len(paths)]), i % 10) for i in range(clips)]
    return AudioDataset("bench", [f"c{k}" for k in range(10)], False, sample_rate,
                        {"train": examples})  # fmt: skip


def build(ds, cache_dir: Path, workers: int, shard_size: int) -> dict:
    """Build the logmel16 cache of ``ds`` with ``workers`` processes; rates and sizes."""
    from keras_quaternion.features import FeatureConfig
    from keras_quaternion.training import shards
    from keras_quaternion.training.pipeline import _Located, _make_cache_folder

    config = FeatureConfig.panns()
    folder = cache_dir / f"workers{workers}"
    _make_cache_folder(folder)
    where = _Located(ds=ds, name=ds.name, folder=folder, config=config, options={},
                     clip_seconds=CLIP_SECONDS, cache_format="logmel16", shard_size=shard_size)  # fmt: skip
    load = os.getloadavg()[0]
    began = time.time()
    report = shards.build_shards(ds, folder, where.plan(), workers=workers, processes=True,
                                 progress=False)  # fmt: skip
    wall = time.time() - began
    results = report["results"]
    work = max(r["end"] for r in results) - min(r["start"] for r in results)
    clips = sum(r["rows"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    manifest = json.loads((folder / "manifest.json").read_text())
    return {
        "workers": workers,
        "clips": clips,
        "shards": len(results),
        "seconds_work": work,
        "seconds_wall": wall,
        "clips_per_s": clips / work,
        "clips_per_s_wall": clips / wall,
        "cpu_ms_per_clip": 1000 * cpu / clips,
        "cpu_share": cpu / work,  # cores this build had, on average
        "bytes_per_clip": manifest["bytes"] / manifest["clips"],
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "folder": str(folder),
    }


def best_run(runs: list[dict]) -> dict:
    """The fastest build of several: the one the other processes on the machine slowed least."""
    return max(runs, key=lambda r: r["clips_per_s"])


def read_rate(folder: str, batch_size: int, epochs: int = 2) -> dict:
    """Clips per second through ``tf_dataset`` (shuffled, float32 batches), warm page cache."""
    from keras_quaternion.training.shards import load_sharded

    data = load_sharded(folder)
    n = 0
    for _ in data.tf_dataset("train", batch_size, channels=1).take(2):  # warm up
        pass
    began = time.time()
    for epoch in range(epochs):
        for xb, _ in data.tf_dataset("train", batch_size, channels=1, epoch=epoch):
            n += int(xb.shape[0])
    seconds = time.time() - began
    return {"clips": n, "seconds": seconds, "clips_per_s": n / seconds,
            "input_shape": list(data.input_shape(1))}  # fmt: skip


def _train_step_model(frames: int, mels: int, width: float, deltas: bool):
    import keras

    from keras_quaternion.models import build

    model = build("qcnn6", classes=527, n_mels=mels, frames=frames, width=width,
                  multi_label=True, deltas=9 if deltas else None)  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def step_rates(frames: int, mels: int, batch_size: int, steps: int, width: float) -> dict:
    """Examples per second of ``qcnn6`` training steps, with the deltas computed in the model
    (``"logmel16"``) and precomputed (``"float32"``): steps of the two alternate, and the
    median step time of each counts (the machine's load changes while they run)."""
    import statistics

    rng = np.random.default_rng(0)
    y = (rng.random((batch_size, 527)) < 0.01).astype(np.float32)
    runs = {}
    for name, deltas in (("logmel16", True), ("float32", False)):
        model = _train_step_model(frames, mels, width, deltas)
        shape = (batch_size, frames, mels, 1 if deltas else 4)
        x = rng.standard_normal(shape).astype(np.float32) * 10 - 40
        for _ in range(2):  # compile and warm up
            model.train_on_batch(x, y)
        runs[name] = (model, x, [])
    for _ in range(steps):
        for model, x, times in runs.values():
            began = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - began)
    out = {}
    for name, (model, _, times) in runs.items():
        step = statistics.median(times)
        out[name] = {"examples_per_s": batch_size / step, "seconds_per_step": step,
                     "width": width, "params": int(model.count_params())}  # fmt: skip
    return out


def _all_builds(result: dict) -> str:
    parts = []
    for workers, runs in sorted(result["all_builds"].items()):
        rates = ", ".join(
            f"{r['clips_per_s']:.0f} clips/s on {r['cpu_share']:.2f} cores" for r in runs
        )
        parts.append(f"{workers} worker{'s' if int(workers) > 1 else ''}: {rates}")
    return "; ".join(parts)


def from_json(path: Path) -> dict:
    """A result written by ``--json`` (to print its table again without measuring)."""
    result = json.loads(path.read_text(encoding="utf-8"))
    result["all_builds"] = {int(k): v for k, v in result["all_builds"].items()}
    result["build"] = {w: best_run(r) for w, r in result["all_builds"].items()}
    return result


def table(result: dict) -> str:
    """The Markdown table spliced into docs/training.md."""
    one, two = result["build"][1], result["build"][2]
    read, step, plain = result["read"], result["step"], result["step_float32"]
    per_clip = two["bytes_per_clip"]
    f32 = result["float32_bytes_per_clip"]
    speedup = two["clips_per_s"] / one["clips_per_s"]
    hours = lambda rate: AUDIOSET_CLIPS / rate / 3600  # noqa: E731
    rows = [
        ("Bytes per 10-s clip, float16 log-mel (`logmel16`)",
         f"{per_clip / 1000:.1f} KB", f"{per_clip * AUDIOSET_CLIPS / 1e12:.2f} TB",
         f"<= {TARGET_KB:.0f} KB: {'met' if per_clip / 1000 <= TARGET_KB else 'NOT met'}"),
        ("Bytes per 10-s clip, float32 quaternion features (`float32`)",
         f"{f32 / 1000:.1f} KB", f"{f32 * AUDIOSET_CLIPS / 1e12:.2f} TB",
         f"{f32 / per_clip:.1f}x the `logmel16` cache"),
        ("Build, 1 worker process", f"{one['clips_per_s']:.1f} clips/s",
         f"{hours(one['clips_per_s']):.1f} h per node",
         f"{one['cpu_ms_per_clip']:.1f} CPU-ms per clip, {one['cpu_share']:.2f} cores used; "
         f"end to end {one['clips_per_s_wall']:.1f} clips/s"),
        ("Build, 2 worker processes", f"{two['clips_per_s']:.1f} clips/s",
         f"{hours(two['clips_per_s']):.1f} h per node",
         f"{speedup:.2f}x 1 worker (target >= {TARGET_SPEEDUP}x: "
         f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}; on 2 free cores "
         f"{2 * one['cpu_ms_per_clip'] / two['cpu_ms_per_clip']:.2f}x from the CPU time per "
         "clip); "
         f"{two['cpu_ms_per_clip']:.1f} CPU-ms per clip, {two['cpu_share']:.2f} cores used; "
         f"end to end {two['clips_per_s_wall']:.1f} clips/s"),
        ("Read (`tf_dataset`, shuffled batches of "
         f"{result['batch_size']}, float32)", f"{read['clips_per_s']:.0f} clips/s",
         f"{hours(read['clips_per_s']):.2f} h per epoch per worker",
         f"{read['clips_per_s'] / step['examples_per_s']:.0f}x what a qcnn6 step consumes"),
        (f"qcnn6 training step (width {step['width']:g}, batch {result['batch_size']}, "
         "deltas in the model)", f"{step['examples_per_s']:.1f} examples/s",
         f"{hours(step['examples_per_s']):.0f} h per epoch per node",
         f"{step['seconds_per_step']:.2f} s per step (median)"),
        ("qcnn6 training step, deltas precomputed (`float32` cache)",
         f"{plain['examples_per_s']:.1f} examples/s",
         f"{hours(plain['examples_per_s']):.0f} h per epoch per node",
         f"{plain['seconds_per_step']:.2f} s per step (median)"),
    ]  # fmt: skip
    lines = [
        f"| Measure ({result['clips']} synthetic clips, {result['input']}) | This machine "
        f"| AudioSet ({AUDIOSET_CLIPS / 1e6:.0f} M clips) | Note |",
        "|---|---:|---:|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        f"Measured {result['date']} on {result['machine']}; builds alternated 1, 2, 1, 2, ... "
        f"workers ({result['repeats']} each; the fastest shown, load average "
        f"{one['load_before']:.1f} before it with 1 worker, {two['load_before']:.1f} with 2; "
        f"every build: {_all_builds(result)}). \"Cores used\" is the builders' CPU time over the build's "
        "time: while other sessions keep the cores busy, Linux shares the CPU between sessions "
        "(autogroups), so the cores a build gets follow the others' load more than its worker "
        "count, and the 2-worker ratio measures the scheduler as much as the builder; the CPU "
        "time per clip is what each worker costs, and 2 x (its value with 1 worker) / (its "
        "value with 2 workers) is the speed-up on two free cores. Shards of "
        f"{result['shard_size']} clips; build rates count from the first shard's start to the "
        "last shard's end (the workers' start-up, a few seconds once per run, left out); the "
        "read rate is from a warm page cache. Command: `python benchmarks/bench_data.py`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="builds with 1 and 2 workers")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="Markdown table")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--from-json", type=Path, default=None, help="print the table of a --json result again"
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        text = table(from_json(args.from_json))
        print(text)
        if args.out:
            from keras_quaternion.files import atomic_write

            atomic_write(args.out, text, make_parents=True)
        return 0

    from keras_quaternion.features import FeatureConfig
    from keras_quaternion.files import atomic_write

    config = FeatureConfig.panns()
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        ds = synthetic_dataset(write_wavs(work / "wav", 16, config.sample_rate), args.clips,
                               config.sample_rate)  # fmt: skip
        runs = {1: [], 2: []}
        for repeat in range(args.repeats):  # alternate, so both see the same load on average
            for w in (1, 2):
                b = build(ds, work / f"cache{repeat}", w, args.shard_size)
                runs[w].append(b)
                print(f"build, {w} worker(s): {b['clips_per_s']:.1f} clips/s, "
                      f"{b['cpu_share']:.2f} cores (load {b['load_before']:.1f})", flush=True)  # fmt: skip
        built = {w: best_run(r) for w, r in runs.items()}
        read = read_rate(built[2]["folder"], args.batch_size)
        print(f"read: {read['clips_per_s']:.0f} clips/s", flush=True)
    frames = config.num_frames(int(CLIP_SECONDS * config.sample_rate))
    rates = step_rates(frames, config.n_mels, args.batch_size, args.steps, args.width)
    step, plain = rates["logmel16"], rates["float32"]
    print(f"qcnn6 step: {step['examples_per_s']:.1f} examples/s with in-model deltas, "
          f"{plain['examples_per_s']:.1f} without", flush=True)  # fmt: skip
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "clips": args.clips,
        "shard_size": args.shard_size,
        "repeats": args.repeats,
        "all_builds": runs,
        "batch_size": args.batch_size,
        "input": f"{frames} frames x {config.n_mels} mels",
        "build": built,
        "read": read,
        "step": step,
        "step_float32": plain,
        "float32_bytes_per_clip": frames * config.n_mels * 4 * 4,
    }
    text = table(result)
    print(text)
    if args.out:
        atomic_write(args.out, text, make_parents=True)
    if args.json:
        atomic_write(args.json, json.dumps(result, indent=1, default=str), make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
