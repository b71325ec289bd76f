"""One call from a trained Keras model to verified .tflite files, micro artifacts and a report.

:func:`export_model` is what ``kq-export`` runs:

1. convert to float32 and (by default) full-integer int8 TFLite (:func:`to_tflite`), calibrating
   on a seeded random subset of the training split;
2. verify the exported model on LiteRT and TFLite Micro (:func:`verify_tflite`);
3. measure the tensor arena on TFLite Micro (:func:`measure_arena`) and, with ``micro=True``,
   write ``model_data.h``/``.cc`` and ``model_ops.h`` (:func:`write_micro_artifacts`);

Steps 1-3 follow the export strategy named by ``quaternion=``
(:mod:`keras_quaternion.export.strategies`): how quaternion layers reach the flatbuffer, how it
is verified and how its arena is measured.
4. score float Keras, float TFLite and int8 TFLite on the test split with the training metrics;
5. time one inference on LiteRT (float and int8) on this CPU;
6. write ``export_report.json``.

Everything is written into a sibling staging folder that then replaces ``out_dir``'s previous
export in one step (:func:`keras_quaternion.files.staged_folder`): a reader, or a run killed at
any moment, finds the previous complete set or the new one, never a ``.tflite`` without its
verification report or one export's flatbuffer next to another's report.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np

from keras_quaternion.export.macs import deployed_macs
from keras_quaternion.export.micro import ARENA_MARGIN, write_micro_artifacts
from keras_quaternion.export.tflite import _strategy_for, convert_model, inspect_tflite
from keras_quaternion.export.tflite import calibration_samples as _samples
from keras_quaternion.export.verify import evaluate_tflite, litert_latency
from keras_quaternion.files import atomic_write, staged_folder

REPORT_NAME = "export_report.json"


#: the flatbuffer names an export writes (``--float``: the second)
TFLITE_NAMES = ("model_int8.tflite", "model_float.tflite")


def previous_export_files(out_dir) -> set[str]:
    """The files of the export already in ``out_dir``, which a new export replaces as a set.

    The report, the flatbuffer and micro files its ``export_report.json`` lists, and both
    flatbuffer names (an export that was killed before writing its report left one unverified).
    Other files in ``out_dir`` are kept.

    Args:
        out_dir: the export folder (it need not exist).

    Returns:
        A set of file names.

    Example:
        >>> sorted(previous_export_files("no-export-here"))
        ['export_report.json', 'model_float.tflite', 'model_int8.tflite']
    """
    names = {REPORT_NAME, *TFLITE_NAMES}
    try:
        old = json.loads((Path(out_dir) / REPORT_NAME).read_text(encoding="utf-8"))
        listed = [old["export"]["tflite"], *((old.get("micro") or {}).get("files") or ())]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return names
    return names | {os.path.basename(str(name)) for name in listed}


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


def _convert(model, int8, calib, calibration_samples, shape, quaternion):
    """The float flatbuffer (for the report) and the deployed one, as a Conversion.

    The float flatbuffer follows the strategy where it has a float form (``expanded``,
    ``fast``), else it is the expanded one.
    """
    strategy = _strategy_for(quaternion, int8)  # a float export of an int8-only one: an error
    floating = convert_model(model, int8=False, input_shape=shape,
                             quaternion="expanded" if strategy.int8_only else strategy)  # fmt: skip
    if not int8:
        return floating.flatbuffer, floating
    float_fb = floating.flatbuffer
    conversion = convert_model(
        model,
        representative_data=calib,
        max_calibration_samples=calibration_samples,
        input_shape=shape,
        verify=False,  # verified below on the scored split
        quaternion=quaternion,
    )
    return float_fb, conversion


def _verification_inputs(model, prepared, split, calib, representative_data, shape, n, seed):
    channels = int(model.inputs[0].shape[-1])
    if prepared is not None and len(prepared.labels[split]):
        return np.asarray(prepared.arrays(split, channels=channels)[0][:n])
    source = calib if calib is not None else representative_data
    if source is None:
        source = np.random.default_rng(seed).normal(size=(n, *shape))
    return np.asarray(source, np.float32)[:n]


def _accuracy(model, prepared, split, float_fb, conversion, int8, progress):
    if prepared is None:
        return None
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
        # a compact flatbuffer is scored through its expanded twin (verified identical outputs)
        scored = conversion.expanded_flatbuffer or conversion.flatbuffer
        accuracy["tflite_int8"] = evaluate_tflite(scored, prepared, split, progress=progress)[
            metric
        ]
    return accuracy


def _latency(float_fb, conversion, int8, runs):
    latency = {
        "runtime": "LiteRT default kernels (XNNPACK), 1 thread, median of timed runs",
        "runs": int(runs),
        "float_ms": 1e3 * litert_latency(float_fb, runs=runs),
    }
    if not int8:
        return latency
    timed = conversion.expanded_flatbuffer or conversion.flatbuffer
    if conversion.expanded_flatbuffer is not None:
        latency["int8_model"] = "expanded twin (LiteRT cannot run the compact custom operators)"
    latency["int8_ms"] = 1e3 * litert_latency(timed, runs=runs)
    latency["float_over_int8"] = latency["float_ms"] / latency["int8_ms"]
    # without XNNPACK: the float/int8 balance of kernels without wide float SIMD, as on an MCU
    latency["float_ms_no_xnnpack"] = 1e3 * litert_latency(float_fb, runs=runs, xnnpack=False)
    latency["int8_ms_no_xnnpack"] = 1e3 * litert_latency(timed, runs=runs, xnnpack=False)
    latency["float_over_int8_no_xnnpack"] = (
        latency["float_ms_no_xnnpack"] / latency["int8_ms_no_xnnpack"]
    )
    return latency


def _export_section(conversion, float_fb, int8, filename, calib):
    info = inspect_tflite(conversion.flatbuffer)
    float_info = inspect_tflite(float_fb)
    section = {
        "format": "int8" if int8 else "float32",
        "tflite": filename,
        "quaternion": conversion.strategy_used,
        "quaternion_requested": conversion.strategy,
        "flatbuffer_bytes": info.size,
        "float_flatbuffer_bytes": float_info.size,
        "size_ratio_to_float": info.size / float_info.size,
        "weight_bytes": info.constant_bytes,
        "macs": deployed_macs(conversion.flatbuffer),
        "input": _io(info.input),
        "output": _io(info.output),
        "operators": info.op_kinds,
        "operator_count": len(info.operators),
        "calibration_samples": None if calib is None else int(len(calib)),
    }
    if conversion.expanded_flatbuffer is not None:
        section["expanded_flatbuffer_bytes"] = len(conversion.expanded_flatbuffer)
        section["size_ratio_to_expanded"] = info.size / len(conversion.expanded_flatbuffer)
    if conversion.layers:
        section["quaternion_layers"] = [dataclasses.asdict(x) for x in conversion.layers]
    return section


def _calibration_set(model, prepared, representative_data, samples, seed, int8):
    """The int8 calibration inputs as one array, or ``None`` for a float export."""
    if not int8:
        return None
    calib = _calibration(model, prepared, representative_data, samples, seed)
    return np.concatenate(_samples(calib, samples))


def _micro_files(conversion, folder, name, arena, model_info):
    """The micro files and, for a model with known features, its labels and front-end header."""
    from keras_quaternion.export.bundle import FRONTEND_CONFIG, write_bundle_files

    art = write_micro_artifacts(conversion.flatbuffer, folder, name, arena=arena)
    section = {"files": list(art.files), "symbols": art.symbols}
    if model_info is None:
        section["bundle"] = "no class names or features known: no labels or front-end header"
        return section
    info, outputs = model_info
    try:
        section["files"] += write_bundle_files(folder, info, name, outputs)
    except ValueError as err:  # features the C front end cannot compute: labels only
        section["bundle"] = f"no {FRONTEND_CONFIG}: {err}"
    else:
        section["frontend_config_key"] = info.features().cache_key()
    return section


def _model_info(model, prepared, info):
    """``(ModelInfo, "logits" or "probabilities")`` of the exported model, or ``None``."""
    from keras_quaternion.model_info import ModelInfo
    from keras_quaternion.training.model_io import outputs_are_logits

    if info is None and prepared is not None:
        info = ModelInfo.from_prepared(prepared)
    if info is None:
        return None
    return info, "logits" if outputs_are_logits(model) else "probabilities"


def _environment():
    return {
        "date": datetime.date.today().isoformat(),
        "machine": _machine(),
        "python": platform.python_version(),
        **_versions(),
    }


def _model_section(model, shape):
    return {
        "name": model.name,
        "input_shape": list(model.inputs[0].shape[1:]),
        "output_shape": list(model.outputs[0].shape[1:]),
        "parameters": int(model.count_params()),
        "macs": _macs(model, shape),
    }


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
    quaternion="expanded",
    info=None,
):
    """Export ``model`` to ``out_dir``: .tflite, verification, arena, optional micro files, report.

    Args:
        model: a trained functional/Sequential Keras model with one fixed-shape input.
        out_dir: output folder (created). A previous export there (the files
            :func:`previous_export_files` names) is replaced as a whole, at the end; other
            files in it are kept.
        prepared: :class:`keras_quaternion.training.PreparedData`; its train split calibrates
            int8, its ``split`` is scored and its first ``verify_samples`` examples verify.
            Optional when ``representative_data`` is given (then nothing is scored).
        representative_data: calibration inputs instead of the train split.
        int8: export full-integer int8 (``model_int8.tflite``); ``False``: float32
            (``model_float.tflite``). The float model is always converted too, for the report.
        micro: also write ``<name>_data.h``, ``<name>_data.cc``, ``<name>_ops.h`` (and, for
            ``compact``, the C sources of the quaternion operator); for a model whose features
            are known (``info`` or ``prepared``), ``<name>_labels.h`` and
            ``kq_frontend_config.h`` too (:func:`~keras_quaternion.export.bundle.
            write_bundle_files`).
        calibration_samples: calibration set size (seeded random subset of the train split).
        split: split to score.
        name: C identifier for the micro files.
        verify_samples: inputs compared between LiteRT and TFLite Micro.
        strict: see :func:`verify_tflite`.
        latency_runs: timed LiteRT invocations per model.
        margin: arena margin.
        seed: calibration subset seed.
        progress: tqdm bars while scoring.
        quaternion: export strategy, ``"expanded"``, ``"compact"`` or ``"fast"`` (see
            :func:`~keras_quaternion.export.to_tflite` and docs/deploy.md); with ``fast`` the
            float flatbuffer is the fast one too.
        info: the model's :class:`~keras_quaternion.model_info.ModelInfo` (default: that of
            ``prepared``); recorded in the report's ``model_info`` (with ``"outputs"``:
            ``"logits"`` or ``"probabilities"``), where ``kq-predict`` finds it for the
            ``.tflite``.

    Returns:
        The report (also written to ``out_dir/export_report.json``).

    Raises:
        ValueError: no calibration data for int8, input shape not matching ``prepared``,
            ``calibration_samples`` < 1, an unknown ``quaternion`` strategy or ``compact`` with
            ``int8=False``.
        ExportError / VerificationError: see :func:`to_tflite`, :func:`verify_tflite`.

    Example:
        >>> report = export_model(model, "out", prepared=data, micro=True)  # doctest: +SKIP
        >>> accuracy, arena = report["accuracy"], report["arena"]  # doctest: +SKIP
        >>> accuracy["tflite_int8"], arena["recommended"]  # doctest: +SKIP
        (0.95, 30720)
    """
    if calibration_samples < 1:
        raise ValueError(f"calibration_samples must be >= 1, got {calibration_samples}.")
    strategy = _strategy_for(quaternion, int8)
    _check_inputs(model, prepared)
    model_info = _model_info(model, prepared, info)
    # built in a sibling folder, then swapped in whole: never a .tflite without its report,
    # never a mix of this export's files and an earlier one's
    with staged_folder(out_dir, replaces=previous_export_files(out_dir)) as stage:
        calib = _calibration_set(
            model, prepared, representative_data, calibration_samples, seed, int8
        )
        shape = _input_shape(model, prepared, calib, representative_data)
        float_fb, conversion = _convert(model, int8, calib, calibration_samples, shape, quaternion)
        filename = TFLITE_NAMES[0] if int8 else TFLITE_NAMES[1]
        atomic_write(os.path.join(stage, filename), conversion.flatbuffer)

        verify_x = _verification_inputs(
            model, prepared, split, calib, representative_data, shape, verify_samples, seed
        )
        verification = strategy.verify(conversion, verify_x, strict=strict)
        arena = strategy.measure_arena(conversion, margin=margin)

        report = {
            "model": _model_section(model, shape),
            "export": _export_section(conversion, float_fb, int8, filename, calib),
            "arena": dataclasses.asdict(arena),
            "memory": {"flash_bytes": len(conversion.flatbuffer), "ram_bytes": arena.recommended},
            "verification": dataclasses.asdict(verification),
            "accuracy": _accuracy(model, prepared, split, float_fb, conversion, int8, progress),
            "latency": _latency(float_fb, conversion, int8, latency_runs),
            "micro": _micro_files(conversion, stage, name, arena, model_info) if micro else None,
            "model_info": None
            if model_info is None
            else {**model_info[0].to_dict(), "outputs": model_info[1]},
            "environment": _environment(),
        }
        atomic_write(os.path.join(stage, REPORT_NAME), json.dumps(report, indent=2) + "\n")
    return report
