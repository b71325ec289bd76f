"""int8 TFLite export of a small quaternion model trained on FSDD: the deployment targets.

1. Train a small QCNN6 on the Free Spoken Digit Dataset (real recordings, takes split) with
   :func:`keras_quaternion.training.train`.
2. Export it with :func:`keras_quaternion.export.export_model` (float32 and int8, verified on
   LiteRT and TFLite Micro, arena measured on TFLite Micro, LiteRT latency on this CPU).
3. Prune it at p = 0.5 (:func:`keras_quaternion.pruning.prune`, operator-norm, all
   convolutions), fine-tune, export again.
4. For reference, convert the real CNN6 with the same real widths (untrained: size only).
5. Export strategies (``--quaternion``): export the trained model again as ``compact`` (each
   quaternion layer one int8 custom operator holding a quarter of the weights), check it on the
   whole test split, and compare flatbuffer, arena, deployed MACs and TFLite Micro latency with
   ``expanded``; convert the full-size QCNN14 (random weights, 527 classes) both ways for sizes.
   TFLite Micro latencies and the compact arena need a TFLite Micro checkout (``KQ_TFLM_ROOT``,
   docs/deploy.md); without one those cells say so.

Targets checked: int8 accuracy within 1 point of float; int8 flatbuffer about 1/4 of float; int8
LiteRT latency below float; the pruned model fits a microcontroller with 256 KB of RAM (tensor
arena) and 1 MB of flash (flatbuffer); compact flatbuffer at most 0.35x the expanded one, its
arena at most 1.1x, identical int8 predictions on the test split, TFLite Micro latency at most
1.3x the expanded model's.

Usage::

    python benchmarks/bench_export.py --out docs/_bench_export.md   # ~15 min on 2 cores
    python benchmarks/bench_export.py --quick                        # smoke run, ~2 min

The FSDD recordings are read from ``../shared/data/fsdd`` relative to the repository root
(``--data-dir`` to override). Prints Markdown tables; ``--out`` writes them (atomically) and
``--json`` the raw reports.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_quaternion import models  # noqa: E402
from keras_quaternion.export import export_model, inspect_tflite, to_tflite  # noqa: E402
from keras_quaternion.files import atomic_write  # noqa: E402
from keras_quaternion.pruning import prune  # noqa: E402
from keras_quaternion.training import prepare  # noqa: E402
from keras_quaternion.training.loop import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fsdd"
MCU_RAM = 256 * 1024
MCU_FLASH = 1024 * 1024


def _kb(n):
    return f"{n / 1024:.1f} KiB"


def _pct(x):
    return f"{100 * x:.1f} %"


def run(args):
    data_dir = Path(args.data_dir)
    if not (data_dir / "recordings").is_dir():
        sys.exit(
            f"FSDD recordings not found under '{data_dir}' (expected {data_dir}/recordings); "
            f"pass --data-dir."
        )
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_export_"))
    prepared = prepare("fsdd", data_dir, n_mels=args.n_mels, progress=True)
    if args.quick:  # a few examples per split, a couple of epochs: checks the script runs
        keep = {
            s: np.arange(min(len(prepared.labels[s]), 60)) for s in ("train", "validation", "test")
        }
        from keras_quaternion.training import PreparedData

        prepared = PreparedData.from_arrays(
            {s: (prepared.features[s][i], prepared.labels[s][i]) for s, i in keep.items()},
            class_names=prepared.class_names,
            feature_config=prepared.feature_config,
            dataset="fsdd-quick",
        )
    print(prepared, flush=True)

    base = train(
        args.model,
        prepared,
        out_dir=work / "train",
        epochs=args.epochs,
        width=args.width,
        lr=args.lr,
        seed=args.seed,
        verbose=2,
    )
    from keras_quaternion.training.loop import load_model

    model = load_model(Path(base["out_dir"]) / "model.keras")
    report = export_model(model, work / "export", prepared=prepared, micro=True, progress=False)

    pruned, prune_report = prune(model, "operator-norm", 0.5, frames=prepared.frames)
    tuned = train(
        pruned,
        prepared,
        out_dir=work / "finetune",
        epochs=args.finetune_epochs,
        lr=args.lr / 2,
        seed=args.seed,
        model_name=f"{args.model}-pruned0.5",
        verbose=2,
    )
    pruned = load_model(Path(tuned["out_dir"]) / "model.keras")
    pruned_report = export_model(
        pruned, work / "export_pruned", prepared=prepared, micro=True, progress=False
    )

    # the real CNN6 with the same real channel widths: int8 size only (untrained)
    twin = models.build(
        args.model.lstrip("q"),
        classes=prepared.num_classes,
        n_mels=args.n_mels,
        frames=prepared.frames,
        width=args.width,
    )
    calib = np.random.default_rng(0).normal(size=(16, *twin.input_shape[1:])).astype("float32")
    twin_int8 = inspect_tflite(to_tflite(twin, representative_data=calib))

    strategies = compare_strategies(args, model, prepared, work, report)
    return prepared, report, pruned_report, prune_report, twin_int8, strategies


def _compact_identity(prepared, expanded_fb, compact_fb, runner):
    """How many test inputs give identical int8 outputs (whole model on TFLM, or layer by layer)."""
    from keras_quaternion.export.verify import io_spec, prepare_inputs, run_tflm
    from keras_quaternion.export.verify_compact import verify_layers

    x = prepare_inputs(io_spec(expanded_fb), prepared.arrays("test", channels=4)[0])
    if runner is not None:
        same = np.all(
            (runner.run(compact_fb, x) == run_tflm(expanded_fb, x)).reshape(len(x), -1), 1
        )
        return int(same.sum()), len(x), "whole model on TFLite Micro (checkout build)"
    verify_layers(expanded_fb, compact_fb, prepared.arrays("test", channels=4)[0])
    return len(x), len(x), "each compact operator, bit for bit, on LiteRT and TFLite Micro"


def _qcnn14_sizes(frames):
    from keras_quaternion.export.tflite import convert_model

    model = models.build("qcnn14", classes=527, n_mels=64, frames=frames)
    calib = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype("float32")
    conversion = convert_model(model, representative_data=calib, quaternion="compact", verify=False)
    return {
        "parameters": int(model.count_params()),
        "expanded": len(conversion.expanded_flatbuffer),
        "compact": len(conversion.flatbuffer),
        "kept": [x.layer for x in conversion.layers if not x.compact],
    }


def compare_strategies(args, model, prepared, work, expanded_report):
    """Export ``model`` as compact; sizes, arena, MACs, latency and identity against expanded."""
    from keras_quaternion.export.tflm_runner import tflm_runner

    compact_report = export_model(
        model, work / "export_compact", prepared=prepared, micro=True, progress=False,
        quaternion="compact", verify_samples=128,
    )  # fmt: skip
    expanded_fb = (work / "export" / "model_int8.tflite").read_bytes()
    compact_fb = (work / "export_compact" / "model_int8.tflite").read_bytes()
    runner = tflm_runner()
    latency = None
    if runner is not None:
        from keras_quaternion.export.verify import io_spec, prepare_inputs

        x = prepare_inputs(io_spec(expanded_fb), prepared.arrays("test", channels=4)[0][:32])
        latency = {
            "expanded": runner.latency(expanded_fb, x),
            "compact": runner.latency(compact_fb, x),
        }
    identical = _compact_identity(prepared, expanded_fb, compact_fb, runner)
    qcnn14 = None if args.quick else _qcnn14_sizes(prepared.frames)
    return {
        "expanded": expanded_report,
        "compact": compact_report,
        "tflm_latency": latency,
        "identical": identical,
        "qcnn14": qcnn14,
    }


def _strategy_rows(st):
    rows = []
    lat = st["tflm_latency"]
    for name in ("expanded", "compact"):
        rep = st[name]
        exp, arena = rep["export"], rep["arena"]
        tflm = f"{1e3 * lat[name]:.3f} ms" if lat else "needs KQ_TFLM_ROOT"
        rows.append(
            f"| {name} | {_kb(exp['flatbuffer_bytes'])} | {_kb(exp['weight_bytes'])} | "
            f"{_kb(arena['minimal'])} ({arena['measured_on']}) | {exp['macs']:,} | {tflm} | "
            f"{_pct(rep['accuracy']['tflite_int8'])} |"
        )
    return rows


def strategy_table(st):
    """The export-strategy table and its targets."""
    exp, cmp_ = st["expanded"], st["compact"]
    size = cmp_["export"]["flatbuffer_bytes"] / exp["export"]["flatbuffer_bytes"]
    arena = cmp_["arena"]["minimal"] / exp["arena"]["minimal"]
    same, total, how = st["identical"]
    lat = st["tflm_latency"]
    checks = [
        ("compact flatbuffer <= 0.35x expanded", size <= 0.35, f"{size:.3f}"),
        (
            "compact arena <= 1.1x expanded",
            arena <= 1.1,
            f"{arena:.3f} ({cmp_['arena']['measured_on']})",
        ),
        ("identical int8 predictions on the test split", same == total, f"{same}/{total}: {how}"),
    ]
    if lat:
        ratio = lat["compact"] / lat["expanded"]
        checks.append(
            ("TFLite Micro latency compact <= 1.3x expanded", ratio <= 1.3, f"{ratio:.2f}x")
        )
    else:
        checks.append(
            (
                "TFLite Micro latency compact <= 1.3x expanded",
                False,
                "not measured: set KQ_TFLM_ROOT",
            )
        )
    lines = [
        "| --quaternion | int8 .tflite | weights | arena (minimal) | deployed MACs | TFLite Micro latency | int8 accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *_strategy_rows(st),
    ]
    layers = cmp_["export"].get("quaternion_layers", [])
    lines += [
        "",
        "Compact layers (weight bytes expanded -> compact, corrections): "
        + "; ".join(
            f"{x['layer']} {x['weight_bytes'][0]:,} -> {x['weight_bytes'][1]:,}, {x['corrections']}"
            if x["compact"]
            else f"{x['layer']} kept expanded ({x['reason']})"
            for x in layers
        )
        + ".",
    ]
    if st["qcnn14"]:
        q = st["qcnn14"]
        lines += [
            "",
            f"Full-size QCNN14 (random weights, 527 classes, {q['parameters']:,} parameters), int8: "
            f"expanded {q['expanded'] / 2**20:.1f} MiB, compact {q['compact'] / 2**20:.1f} MiB "
            f"({q['compact'] / q['expanded']:.2f}x)"
            + (f"; kept expanded: {q['kept']}" if q["kept"] else "")
            + ".",
        ]
    lines += [
        "",
        "| target | met | measured |",
        "|---|---|---|",
        *[f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in checks],
    ]
    return lines


def tables(args, prepared, report, pruned_report, prune_report, twin_int8, strategies):
    rows = []
    for label, rep in (
        (f"{args.model} w={args.width}", report),
        ("same, pruned p=0.5 + fine-tuned", pruned_report),
    ):
        acc, exp, lat, ver = rep["accuracy"], rep["export"], rep["latency"], rep["verification"]
        ram, flash = rep["arena"]["recommended"], exp["flatbuffer_bytes"]
        rows.append(
            "| {} | {:,} | {:,} | {} | {} ({:.2f}x) | {} | {} / {} / {} ({:+.1f} pt) | {:.3f} / {:.3f} ms ({:.2f}x) | {}/{} | {} |".format(
                label,
                rep["model"]["parameters"],
                rep["model"]["macs"],
                _kb(exp["float_flatbuffer_bytes"]),
                _kb(flash),
                exp["size_ratio_to_float"],
                _kb(ram),
                _pct(acc["keras_float"]),
                _pct(acc["tflite_float"]),
                _pct(acc["tflite_int8"]),
                100 * (acc["tflite_int8"] - acc["keras_float"]),
                lat["float_ms"],
                lat["int8_ms"],
                lat["float_over_int8"],
                ver["identical_samples"],
                ver["samples"],
                "yes" if ram <= MCU_RAM and flash <= MCU_FLASH else "no",
            )
        )
    acc = report["accuracy"]
    pacc = pruned_report["accuracy"]
    checks = [
        (
            "int8 accuracy within 1 point of float (unpruned)",
            abs(acc["tflite_int8"] - acc["keras_float"]) <= 0.01,
            f"{100 * (acc['tflite_int8'] - acc['keras_float']):+.2f} pt",
        ),
        (
            "int8 accuracy within 1 point of float (pruned)",
            abs(pacc["tflite_int8"] - pacc["keras_float"]) <= 0.01,
            f"{100 * (pacc['tflite_int8'] - pacc['keras_float']):+.2f} pt",
        ),
        (
            "int8 flatbuffer about 1/4 of float",
            report["export"]["size_ratio_to_float"] <= 0.3,
            f"{report['export']['size_ratio_to_float']:.3f}",
        ),
        (
            "int8 LiteRT latency below float",
            report["latency"]["float_over_int8"] > 1,
            f"float/int8 = {report['latency']['float_over_int8']:.2f} with XNNPACK, "
            f"{report['latency']['float_over_int8_no_xnnpack']:.2f} without "
            f"({report['latency']['float_ms_no_xnnpack']:.3f} / "
            f"{report['latency']['int8_ms_no_xnnpack']:.3f} ms)",
        ),
        (
            "pruned model fits 256 KB RAM + 1 MB flash",
            pruned_report["arena"]["recommended"] <= MCU_RAM
            and pruned_report["export"]["flatbuffer_bytes"] <= MCU_FLASH,
            f"arena {_kb(pruned_report['arena']['recommended'])}, flatbuffer {_kb(pruned_report['export']['flatbuffer_bytes'])}",
        ),
    ]
    env = report["environment"]
    lines = [
        f"FSDD ({prepared.sizes()}), {prepared.frames} frames x {prepared.n_mels} mels x 4, "
        f"{args.epochs} epochs (+{args.finetune_epochs} fine-tuning after pruning), seed {args.seed}. "
        f"Machine: {env['machine']}; {datetime.date.today().isoformat()}; TensorFlow {env['tensorflow']}, "
        f"LiteRT {env['ai_edge_litert']}, TFLite Micro {env['tflite_micro']}.",
        "",
        "| model | params | MACs | float .tflite | int8 .tflite (int8/float) | arena (RAM) | accuracy: Keras / TFLite float / TFLite int8 | LiteRT latency float / int8 (speed-up) | TFLM == LiteRT | fits 256 KB / 1 MB |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---|",
        *rows,
        "",
        f"Pruning: {prune_report.summary()}.",
        f"Real CNN6 with the same real widths, int8: {_kb(twin_int8.size)} "
        f"(QCNN6 int8: {_kb(report['export']['flatbuffer_bytes'])}; the folded quaternion kernel is "
        f"materialised, so the flatbuffer is as large as the real twin's).",
        "",
        "| target | met | measured |",
        "|---|---|---|",
        *[f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in checks],
        "",
        "Export strategies (the unpruned model above):",
        "",
        *strategy_table(strategies),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="qcnn6")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--n-mels", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="Keep runs here (default: a temp dir).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 60 examples, 2 epochs.")
    parser.add_argument("--out", default=None, help="Write the Markdown tables here.")
    parser.add_argument("--json", default=None, help="Write both export reports here.")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.finetune_epochs = 2, 1
    results = run(args)
    text = tables(args, *results)
    print(text)
    if args.out:
        atomic_write(args.out, text)
    if args.json:
        atomic_write(
            args.json,
            json.dumps(
                {
                    "unpruned": results[1],
                    "pruned": results[2],
                    "compact": results[5]["compact"],
                    "python": platform.python_version(),
                },
                indent=2,
            )
            + "\n",
        )


if __name__ == "__main__":
    main()
