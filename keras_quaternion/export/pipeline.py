"""One call from a trained Keras model to verified .tflite files, micro artifacts and a report.

:func:`export_model` is what ``kq-export`` runs:

1. convert to float32 and (by default) full-integer int8 TFLite (:func:`to_tflite`), calibrating
   on a seeded random subset of the training split;
2. verify the exported model on LiteRT and TFLite Micro (:func:`verify_tflite`);
3. measure the tensor arena on TFLite Micro (:func:`measure_arena`) and, with ``micro=True``,
   write ``model_data.h``/``.cc`` and ``model_ops.h`` (:func:`write_micro_artifacts`);
4. score float Keras, float TFLite and int8 TFLite on the test split with the training metrics;
5. time one inference on LiteRT (float and int8) on this CPU;
6. write ``export_report.json`` atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform

import numpy as np

from keras_quaternion.export.micro import (
    ARENA_MARGIN,
    measure_arena,
    write_micro_artifacts,
)
from keras_quaternion.export.tflite import calibration_samples as _samples
from keras_quaternion.export.tflite import inspect_tflite, to_tflite
from keras_quaternion.export.verify import evaluate_tflite, litert_latency, verify_tflite
from keras_quaternion.files import atomic_write

REPORT_NAME = "export_report.json"


def _versions():
    import importlib

    out = {}
    for module in ("tensorflow", "keras", "ai_edge_litert", "tflite_micro", "keras_quaternion"):
        try:
            out[module] = str(importlib.import_module(module).__version__)
        except (ImportError, AttributeError):
            out[module] = None
    return out


def _machine():
    cores = os.cpu_count()
    return f"{platform.machine()} CPU, {cores} cores, {platform.system()} (no GPU used)"


def _macs(model, shape):
    from keras_quaternion.counting import count_macs

    frames = shape[0] if model.inputs[0].shape[1] is None else None
    return int(count_macs(model, frames=frames))


def _calibration(model, prepared, representative_data, samples, seed):
    if representative_data is not None:
        return representative_data
    if prepared is None:
        raise ValueError(
            "export_model: int8 export needs calibration data: pass prepared= (its train split "
            "is used) or representative_data=."
        )
    channels = int(model.inputs[0].shape[-1])
    x, _ = prepared.arrays("train", channels=channels)
    if len(x) == 0:
        raise ValueError(f"export_model: the train split of '{prepared.dataset}' is empty.")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x), size=min(samples, len(x)), replace=False))
    return np.asarray(x[pick], dtype=np.float32)


def _check_inputs(model, prepared):
    shape = tuple(model.inputs[0].shape[1:])
    if prepared is None:
        return
    want = (prepared.frames, prepared.n_mels)
    if (
        len(shape) != 3
        or shape[-1] not in (1, 4)
        or any(d is not None and d != w for d, w in zip(shape[:2], want))
    ):
        raise ValueError(
            f"Model '{model.name}' takes inputs {shape} but '{prepared.dataset}' features are "
            f"({prepared.frames}, {prepared.n_mels}, 1 or 4); export with the dataset options "
            f"the model was trained with (clip length, mel bands)."
        )


def _io(tensor):
    return {
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def _input_shape(model, prepared, calib, representative_data):
    """The model's input shape with unknown dimensions fixed from the data."""
    shape = list(model.inputs[0].shape[1:])
    if prepared is not None:
        known = [prepared.frames, prepared.n_mels, shape[-1]]
    elif calib is not None:
        known = list(calib.shape[1:])
    elif representative_data is not None:
        known = list(np.asarray(_samples(representative_data, 1)[0]).shape[1:])
    else:
        known = shape
    if len(known) != len(shape):
        known = shape
    return tuple(k if d is None else d for d, k in zip(shape, known))


def export_model(
    model,
    out_dir,
    *,
    prepared=None,
    representative_data=None,
    int8=True,
    micro=False,
    calibration_samples=500,
    split="test",
    name="model",
    verify_samples=128,
    strict=False,
    latency_runs=100,
    margin=ARENA_MARGIN,
    seed=0,
    progress=True,
):
    """Export ``model`` to ``out_dir``: .tflite, verification, arena, optional micro files, report.

    Args:
        model: a trained functional/Sequential Keras model with one fixed-shape input.
        out_dir: output folder (created).
        prepared: :class:`keras_quaternion.training.PreparedData`; its train split calibrates
            int8, its ``split`` is scored and its first ``verify_samples`` examples verify.
            Optional when ``representative_data`` is given (then nothing is scored).
        representative_data: calibration inputs instead of the train split.
        int8: export full-integer int8 (``model_int8.tflite``); ``False``: float32
            (``model_float.tflite``). The float model is always converted too, for the report.
        micro: also write ``<name>_data.h``, ``<name>_data.cc``, ``<name>_ops.h``.
        calibration_samples: calibration set size (seeded random subset of the train split).
        split: split to score.
        name: C identifier for the micro files.
        verify_samples: inputs compared between LiteRT and TFLite Micro.
        strict: see :func:`verify_tflite`.
        latency_runs: timed LiteRT invocations per model.
        margin: arena margin.
        seed: calibration subset seed.
        progress: tqdm bars while scoring.

    Returns:
        The report (also written to ``out_dir/export_report.json``).

    Raises:
        ValueError: no calibration data for int8, input shape not matching ``prepared``,
            ``calibration_samples`` < 1.
        ExportError / VerificationError: see :func:`to_tflite`, :func:`verify_tflite`.

    Example:
        >>> report = export_model(model, "out", prepared=data, micro=True)  # doctest: +SKIP
        >>> report["accuracy"]["tflite_int8"], report["arena"]["recommended"]  # doctest: +SKIP
        (0.95, 30720)
    """
    if calibration_samples < 1:
        raise ValueError(f"calibration_samples must be >= 1, got {calibration_samples}.")
    _check_inputs(model, prepared)
    os.makedirs(out_dir, exist_ok=True)

    calib = None
    if int8:
        calib = _calibration(model, prepared, representative_data, calibration_samples, seed)
        calib = np.concatenate(_samples(calib, calibration_samples))
    shape = _input_shape(model, prepared, calib, representative_data)
    float_fb = to_tflite(model, int8=False, input_shape=shape)
    if int8:
        main_fb = to_tflite(
            model,
            representative_data=calib,
            max_calibration_samples=calibration_samples,
            input_shape=shape,
            verify=False,  # verified below on the scored split
        )
    else:
        main_fb = float_fb
    filename = "model_int8.tflite" if int8 else "model_float.tflite"
    atomic_write(os.path.join(out_dir, filename), main_fb)

    channels = int(model.inputs[0].shape[-1])
    if prepared is not None and len(prepared.labels[split]):
        verify_x = np.asarray(prepared.arrays(split, channels=channels)[0][:verify_samples])
    else:
        source = calib if calib is not None else representative_data
        if source is None:
            rng = np.random.default_rng(seed)
            source = rng.normal(size=(verify_samples, *shape))
        verify_x = np.asarray(source, np.float32)[:verify_samples]
    verification = verify_tflite(main_fb, verify_x, strict=strict)
    arena = measure_arena(main_fb, margin=margin)
    info = inspect_tflite(main_fb)
    float_info = inspect_tflite(float_fb)

    micro_files = None
    if micro:
        art = write_micro_artifacts(main_fb, out_dir, name, arena=arena)
        micro_files = {
            "files": [os.path.basename(p) for p in (art.data_h, art.data_cc, art.ops_h)],
            "symbols": art.symbols,
        }

    accuracy = None
    if prepared is not None:
        from keras_quaternion.training.loop import evaluate
        from keras_quaternion.training.metrics import score_name

        metric = score_name(prepared.multi_label)
        keras_result = evaluate(model, prepared, split)
        accuracy = {
            "metric": metric,
            "split": split,
            "examples": keras_result["examples"],
            "keras_float": keras_result[metric],
            "tflite_float": evaluate_tflite(float_fb, prepared, split, progress=progress)[metric],
        }
        if int8:
            accuracy["tflite_int8"] = evaluate_tflite(main_fb, prepared, split, progress=progress)[
                metric
            ]

    latency = {
        "runtime": "LiteRT default kernels (XNNPACK), 1 thread, median of timed runs",
        "runs": int(latency_runs),
        "float_ms": 1e3 * litert_latency(float_fb, runs=latency_runs),
    }
    if int8:
        latency["int8_ms"] = 1e3 * litert_latency(main_fb, runs=latency_runs)
        latency["float_over_int8"] = latency["float_ms"] / latency["int8_ms"]
        # without XNNPACK: the float/int8 balance of kernels without wide float SIMD, as on an MCU
        latency["float_ms_no_xnnpack"] = 1e3 * litert_latency(
            float_fb, runs=latency_runs, xnnpack=False
        )
        latency["int8_ms_no_xnnpack"] = 1e3 * litert_latency(
            main_fb, runs=latency_runs, xnnpack=False
        )
        latency["float_over_int8_no_xnnpack"] = (
            latency["float_ms_no_xnnpack"] / latency["int8_ms_no_xnnpack"]
        )

    report = {
        "model": {
            "name": model.name,
            "input_shape": list(model.inputs[0].shape[1:]),
            "output_shape": list(model.outputs[0].shape[1:]),
            "parameters": int(model.count_params()),
            "macs": _macs(model, shape),
        },
        "export": {
            "format": "int8" if int8 else "float32",
            "tflite": filename,
            "flatbuffer_bytes": info.size,
            "float_flatbuffer_bytes": float_info.size,
            "size_ratio_to_float": info.size / float_info.size,
            "weight_bytes": info.constant_bytes,
            "input": _io(info.input),
            "output": _io(info.output),
            "operators": info.op_kinds,
            "operator_count": len(info.operators),
            "calibration_samples": None if calib is None else int(len(calib)),
        },
        "arena": dataclasses.asdict(arena),
        "memory": {"flash_bytes": info.size, "ram_bytes": arena.recommended},
        "verification": dataclasses.asdict(verification),
        "accuracy": accuracy,
        "latency": latency,
        "micro": micro_files,
        "environment": {
            "date": datetime.date.today().isoformat(),
            "machine": _machine(),
            "python": platform.python_version(),
            **_versions(),
        },
    }
    atomic_write(os.path.join(out_dir, REPORT_NAME), json.dumps(report, indent=2) + "\n")
    return report
