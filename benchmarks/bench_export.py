"""int8 TFLite export of a small quaternion model trained on FSDD: the deployment targets.

1. Train a small QCNN6 on the Free Spoken Digit Dataset (real recordings, takes split) with
   :func:`keras_quaternion.training.train`.
2. Export it with :func:`keras_quaternion.export.export_model` (float32 and int8, verified on
   LiteRT and TFLite Micro, arena measured on TFLite Micro, LiteRT latency on this CPU).
3. Prune it at p = 0.5 (:func:`keras_quaternion.pruning.prune`, operator-norm, all
   convolutions), fine-tune, export again.
4. Train the real CNN6 with the same real widths (same epochs) and export it: the real twin.
5. Export strategies (``--quaternion``): export the trained QCNN6 again as ``compact`` (each
   quaternion layer one int8 custom operator holding a quarter of the weights, checked on the
   whole test split) and as ``fast`` (each quaternion layer 8 real products between additions,
   builtin operators only; also with the products as one grouped ``CONV_2D``), and compare
   flatbuffer, arena, deployed MACs, LiteRT and TFLite Micro latency (all models on the same
   inputs, in this one run) and float / int8 accuracy with ``expanded`` and the real CNN6;
   convert the full-size QCNN14 (random weights, 527 classes) each way for sizes. TFLite Micro
   latencies and the compact arena need a TFLite Micro checkout (``KQ_TFLM_ROOT``,
   docs/deploy.md); without one those cells say so.

Targets checked: int8 accuracy within 1 point of float; int8 flatbuffer about 1/4 of float; int8
LiteRT latency below float; the pruned model fits a microcontroller with 256 KB of RAM (tensor
arena) and 1 MB of flash (flatbuffer); compact flatbuffer at most 0.35x the expanded one, its
arena at most 1.1x, identical int8 predictions on the test split, TFLite Micro latency at most
1.3x the expanded model's; fast flatbuffer and deployed MACs at most 0.55x the expanded ones,
its int8 accuracy within 1 point of float (its arena growth is reported).

Usage::

    python benchmarks/bench_export.py --out docs/_bench_export.md   # ~10 min on 2 cores
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
from keras_quaternion.export import export_model  # noqa: E402
from keras_quaternion.export.strategies import FastStrategy  # noqa: E402
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

    real_report = _real_twin(args, prepared, work)
    strategies = compare_strategies(args, model, prepared, work, report, real_report)
    return prepared, report, pruned_report, prune_report, real_report, strategies


def _real_twin(args, prepared, work):
    """Train the real CNN with the quaternion model's real widths and export it (expanded)."""
    from keras_quaternion.training.loop import load_model

    name = args.model[1:] if args.model.startswith("q") else args.model
    run = train(name, prepared, out_dir=work / "train_real", epochs=args.epochs,
                width=args.width, lr=args.lr, seed=args.seed, verbose=2)  # fmt: skip
    real = load_model(Path(run["out_dir"]) / "model.keras")
    return export_model(real, work / "export_real", prepared=prepared, micro=True, progress=False)


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
    compact = convert_model(model, representative_data=calib, quaternion="compact", verify=False)
    fast = convert_model(model, representative_data=calib, quaternion="fast", verify=False)
    return {
        "parameters": int(model.count_params()),
        "expanded": len(compact.expanded_flatbuffer),
        "compact": len(compact.flatbuffer),
        "fast": len(fast.flatbuffer),
        "kept": [x.layer for x in compact.layers if not x.compact],
    }


#: the exports compared with ``expanded``: (label, strategy)
VARIANTS = (("compact", "compact"), ("fast", "fast"), ("fast, grouped", FastStrategy(grouped=True)))


def _test_inputs(prepared, flatbuffer, n=32):
    """The first ``n`` test examples, quantised for ``flatbuffer``'s input (1 or 4 channels)."""
    from keras_quaternion.export.verify import io_spec, prepare_inputs

    spec = io_spec(flatbuffer)
    x = prepared.arrays("test", channels=int(spec.input_shape[-1]))[0][:n]
    return prepare_inputs(spec, x)


def _latencies(flatbuffers, prepared, runner, rounds=5):
    """Per model: TFLite Micro (checkout build, reference kernels) and LiteRT int8 latency.

    The models take turns in every round, so the load of the machine falls on all of them
    alike; each figure is the median over the rounds (seconds). LiteRT cannot run the compact
    custom operators (``None``).
    """
    from keras_quaternion.export.strategies.compact import is_compact
    from keras_quaternion.export.verify import litert_latency

    times = {name: {"tflm": [], "litert": [], "litert_builtin": []} for name in flatbuffers}
    for _ in range(rounds):
        for name, fb in flatbuffers.items():
            if runner is not None:
                x = _test_inputs(prepared, fb)
                times[name]["tflm"].append(runner.latency(fb, x, rounds=1))
            if not is_compact(fb):
                times[name]["litert"].append(litert_latency(fb, runs=50))
                times[name]["litert_builtin"].append(litert_latency(fb, runs=50, xnnpack=False))
    return {
        name: {k: float(np.median(v)) if v else None for k, v in kinds.items()}
        for name, kinds in times.items()
    }


def compare_strategies(args, model, prepared, work, expanded_report, real_report):
    """Export ``model`` with every strategy; sizes, arena, MACs, latency, accuracy, identity."""
    from keras_quaternion.export.tflm_runner import tflm_runner

    reports, folders = {"expanded": expanded_report}, {"expanded": work / "export"}
    for label, strategy in VARIANTS:
        folders[label] = work / f"export_{label.replace(', ', '_')}"
        reports[label] = export_model(
            model, folders[label], prepared=prepared, micro=True, progress=False,
            quaternion=strategy, verify_samples=128,
        )  # fmt: skip
    real = args.model[1:] if args.model.startswith("q") else args.model
    reports[real], folders[real] = real_report, work / "export_real"
    flatbuffers = {k: (f / "model_int8.tflite").read_bytes() for k, f in folders.items()}
    runner = tflm_runner()
    identical = _compact_identity(prepared, flatbuffers["expanded"], flatbuffers["compact"], runner)
    return {
        "reports": reports,
        "model": args.model,
        "real": real,
        "latency": _latencies(flatbuffers, prepared, runner, rounds=3 if args.quick else 5),
        "tflm": runner is not None,
        "flatbuffers": flatbuffers,
        "identical": identical,
        "qcnn14": None if args.quick else _qcnn14_sizes(prepared.frames),
    }


def _times(ms, ref):
    return f"{1e3 * ms:.3f} ms ({ms / ref:.2f}x)" if ms and ref else "n/a"


def _strategy_rows(st):
    rows, reps, lat = [], st["reports"], st["latency"]
    ref, ref_lat = reps["expanded"], lat["expanded"]
    for name, rep in reps.items():
        exp, arena, acc = rep["export"], rep["arena"], rep["accuracy"]
        label = f"{st['real']} (real), expanded" if name == st["real"] else f"{st['model']}, {name}"
        tflm = _times(lat[name]["tflm"], ref_lat["tflm"]) if st["tflm"] else "needs KQ_TFLM_ROOT"
        litert = (f"{_times(lat[name]['litert'], ref_lat['litert'])} / "
                  f"{_times(lat[name]['litert_builtin'], ref_lat['litert_builtin'])}")  # fmt: skip
        if lat[name]["litert"] is None:
            litert = "n/a (custom operators)"
        rows.append(
            f"| {label} | {_kb(exp['flatbuffer_bytes'])} "
            f"({exp['flatbuffer_bytes'] / ref['export']['flatbuffer_bytes']:.2f}x) | "
            f"{_kb(arena['minimal'])} ({arena['minimal'] / ref['arena']['minimal']:.2f}x) | "
            f"{exp['macs']:,} ({exp['macs'] / ref['export']['macs']:.2f}x) | {litert} | {tflm} | "
            f"{_pct(acc['keras_float'])} / {_pct(acc['tflite_int8'])} |"
        )
    return rows


def _layer_lines(reps):
    compact = reps["compact"]["export"].get("quaternion_layers", [])
    fast = reps["fast"]["export"].get("quaternion_layers", [])
    how = {None: "no batch norm", "folded": "batch norm folded into the products",
           "affine": "per-channel batch norm kept after it"}  # fmt: skip
    return [
        "Compact layers (weight bytes expanded -> compact, corrections): "
        + "; ".join(
            f"{x['layer']} {x['weight_bytes'][0]:,} -> {x['weight_bytes'][1]:,}, {x['corrections']}"
            if x["compact"]
            else f"{x['layer']} kept expanded ({x['reason']})"
            for x in compact
        )
        + ".",
        "",
        "Fast layers (real weights expanded -> fast): "
        + "; ".join(
            f"{x['layer']} {x['weights'][0]:,} -> {x['weights'][1]:,}, {how[x['batch_norm']]}"
            if x["fast"]
            else f"{x['layer']} kept expanded ({x['reason']})"
            for x in fast
        )
        + ".",
    ]


def _contents(flatbuffer):
    """Bytes of a flatbuffer: constants, quantisation parameters (a float32 scale and an int64
    zero point per value), the rest (tensor and operator tables, shapes, names); tensors and
    operators."""
    from keras_quaternion.export import flatbuffer as fbs
    from keras_quaternion.export import inspect_tflite

    info = inspect_tflite(flatbuffer)
    graph = fbs.read_model(flatbuffer).subgraphs[0]
    quant = sum(12 * len(t.quantization.scale) for t in graph.tensors
                if t.quantization is not None and t.quantization.scale is not None)  # fmt: skip
    rest = info.size - info.constant_bytes - quant
    return info.constant_bytes, quant, rest, len(info.tensors), len(info.operators)


def _contents_line(st):
    parts = []
    for name in ("expanded", "fast"):
        const, quant, rest, tensors, operators = _contents(st["flatbuffers"][name])
        parts.append(
            f"{name} {_kb(const)} constants, {_kb(quant)} quantisation parameters, {_kb(rest)} "
            f"tables, shapes and names ({tensors} tensors, {operators} operators)"
        )
    return "Flatbuffer contents: " + "; ".join(parts) + "."


def _strategy_checks(st):
    reps, lat = st["reports"], st["latency"]
    exp, cmp_, fast = reps["expanded"], reps["compact"], reps["fast"]

    def ratio(rep, *keys):
        a, b = rep, exp
        for key in keys:
            a, b = a[key], b[key]
        return a / b

    same, total, how = st["identical"]
    acc = fast["accuracy"]
    drop = 100 * (acc["tflite_int8"] - acc["keras_float"])
    checks = [
        ("compact flatbuffer <= 0.35x expanded", ratio(cmp_, "export", "flatbuffer_bytes") <= 0.35,
         f"{ratio(cmp_, 'export', 'flatbuffer_bytes'):.3f}"),
        ("compact arena <= 1.1x expanded", ratio(cmp_, "arena", "minimal") <= 1.1,
         f"{ratio(cmp_, 'arena', 'minimal'):.3f} ({cmp_['arena']['measured_on']})"),
        ("identical int8 predictions on the test split", same == total, f"{same}/{total}: {how}"),
        ("fast flatbuffer <= 0.55x expanded", ratio(fast, "export", "flatbuffer_bytes") <= 0.55,
         f"{ratio(fast, 'export', 'flatbuffer_bytes'):.3f} (weights "
         f"{ratio(fast, 'export', 'weight_bytes'):.3f})"),
        ("fast deployed MACs <= 0.55x expanded", ratio(fast, "export", "macs") <= 0.55,
         f"{ratio(fast, 'export', 'macs'):.3f}"),
        ("fast int8 accuracy within 1 point of float", abs(drop) <= 1.0, f"{drop:+.2f} pt"),
    ]  # fmt: skip
    if st["tflm"]:
        r = lat["compact"]["tflm"] / lat["expanded"]["tflm"]
        checks.insert(3, ("TFLite Micro latency compact <= 1.3x expanded", r <= 1.3, f"{r:.2f}x"))
    else:
        checks.insert(3, ("TFLite Micro latency compact <= 1.3x expanded", False,
                          "not measured: set KQ_TFLM_ROOT"))  # fmt: skip
    return checks


def strategy_table(st):
    """The export-strategy table, per-layer notes and targets."""
    lines = [
        "| model, --quaternion | int8 .tflite | arena (minimal) | deployed MACs | LiteRT int8 "
        "latency: XNNPACK / builtin kernels | TFLite Micro latency | accuracy: float / int8 |",
        "|---|---:|---:|---:|---:|---:|---|",
        *_strategy_rows(st),
        "",
        *_layer_lines(st["reports"]),
        "",
        _contents_line(st),
    ]
    if st["qcnn14"]:
        q = st["qcnn14"]
        lines += [
            "",
            f"Full-size QCNN14 (random weights, 527 classes, {q['parameters']:,} parameters), int8: "
            f"expanded {q['expanded'] / 2**20:.1f} MiB, compact {q['compact'] / 2**20:.1f} MiB "
            f"({q['compact'] / q['expanded']:.2f}x), fast {q['fast'] / 2**20:.1f} MiB "
            f"({q['fast'] / q['expanded']:.2f}x)"
            + (f"; kept expanded by compact: {q['kept']}" if q["kept"] else "")
            + ".",
        ]
    checks = _strategy_checks(st)
    lines += [
        "",
        "| target | met | measured |",
        "|---|---|---|",
        *[f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in checks],
    ]
    return lines


def tables(args, prepared, report, pruned_report, prune_report, real_report, strategies, load):
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
        f"LiteRT {env['ai_edge_litert']}, TFLite Micro {env['tflite_micro']}. Load average "
        f"(1 min, other jobs on the machine) at the start / end of the run: {load[0]:.2f} / "
        f"{load[1]:.2f}.",
        "",
        "| model | params | MACs | float .tflite | int8 .tflite (int8/float) | arena (RAM) | accuracy: Keras / TFLite float / TFLite int8 | LiteRT latency float / int8 (speed-up) | TFLM == LiteRT | fits 256 KB / 1 MB |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---|",
        *rows,
        "",
        f"Pruning: {prune_report.summary()}.",
        f"Real {strategies['real']} with the same real widths, trained the same way, int8 "
        f"(expanded): {_kb(real_report['export']['flatbuffer_bytes'])}, accuracy "
        f"{_pct(real_report['accuracy']['keras_float'])} float / "
        f"{_pct(real_report['accuracy']['tflite_int8'])} int8 ({args.model} int8 expanded: "
        f"{_kb(report['export']['flatbuffer_bytes'])}; the folded quaternion kernel is "
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
    parser.add_argument("--json", default=None, help="Write the export reports here.")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.finetune_epochs = 2, 1
    load = [os.getloadavg()[0]]
    results = run(args)
    load.append(os.getloadavg()[0])
    text = tables(args, *results, load)
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
                    "real": results[4],
                    "strategies": results[5]["reports"],
                    "latency": results[5]["latency"],
                    "python": platform.python_version(),
                },
                indent=2,
            )
            + "\n",
        )


if __name__ == "__main__":
    main()
