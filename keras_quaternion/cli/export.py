"""``kq-export`` (also ``kq export``): a trained .keras model -> verified int8 TFLite (+ micro files).

Example::

    kq-export runs/qcnn/model.keras --dataset fsdd --data-dir data/fsdd --out export/ --micro

writes ``export/model_int8.tflite`` (``--float``: ``model_float.tflite``), with ``--micro``
``model_data.h``, ``model_data.cc`` and ``model_ops.h``, and ``export/export_report.json``.

The dataset and feature options are those of ``kq-train``/``kq-eval`` (same flags, same
defaults read from the ``metrics.json`` that ``kq-train`` writes next to the model), so the
model is calibrated and scored on the features it was trained on.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click

from keras_quaternion.cli.options import CONTEXT, dataset_options, shared_option
from keras_quaternion.export.strategies import STRATEGY_NAMES
from keras_quaternion.outdir import claim_out

__all__ = ["export_command"]


def _fmt(value):
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


@click.command(name="export", context_settings=CONTEXT)
@click.argument(
    "model_path", metavar="MODEL.keras", type=click.Path(dir_okay=False, path_type=Path)
)
@shared_option("out", help="Output folder (created).")
@click.option(
    "--dataset", default=None, help="Dataset name (default: the one in metrics.json next to MODEL)."
)
@click.option("--float", "float_only", is_flag=True, help="Export float32 instead of int8.")
@click.option(
    "--micro",
    is_flag=True,
    help="Also write model_data.h/.cc, model_ops.h, model_labels.h (class names) and "
    "kq_frontend_config.h (the C front end configured for the model's features).",
)
@click.option(
    "--app",
    "app_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --micro (implied): also write a self-contained keyword-spotting app folder: model "
    "files, C front end, app sources and a Makefile (make host; make run WAV=clip.wav "
    "TFLM_ROOT=...). A new or empty folder, or an app written before (replaced).",
)
@click.option(
    "--quaternion",
    type=click.Choice(STRATEGY_NAMES),
    default="expanded",
    show_default=True,
    help="How quaternion layers reach the device: 'expanded' as the real layers they compute "
    "(builtin operators only); 'compact' as one int8 custom operator each holding a quarter of "
    "the weights (its C kernel and TFLite Micro registration come with --micro); 'fast' as 8 "
    "real products between additions (builtin operators only, half the weights and "
    "multiply-accumulates, a larger tensor arena). See docs/deploy.md.",
)
@click.option(
    "--calibration-samples",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Training examples (seeded random subset) used to calibrate int8 quantization.",
)
@click.option("--name", default="model", show_default=True, help="C name of the micro files.")
@click.option(
    "--subset",
    type=click.Choice(["test", "validation", "train"]),
    default="test",
    show_default=True,
    help="Split to score and to draw verification inputs from.",
)
@click.option(
    "--verify-samples",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inputs compared between LiteRT and TFLite Micro.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Require bit-identical int8 outputs (reject even the proved FULLY_CONNECTED rounding "
    "difference, see docs/deploy.md).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="Dataset seed (validation carve); default: the training run's.",
)
@dataset_options
def export_command(
    model_path,
    out_dir,
    float_only,
    micro,
    app_dir,
    quaternion,
    calibration_samples,
    name,
    subset,
    verify_samples,
    strict,
    seed,
    data,
):
    """Export MODEL.keras to TFLite (int8 by default), verified on TFLite Micro.

    Writes OUT/model_int8.tflite (or model_float.tflite with --float), the micro artifacts with
    --micro, and OUT/export_report.json (sizes, arena, operators, parameters, MACs, accuracy of
    float Keras / float TFLite / int8 TFLite, LiteRT latency).
    """
    from keras_quaternion.export.pipeline import export_model
    from keras_quaternion.export.tflite import ExportError

    _check_arguments(model_path, quaternion, float_only, name)
    _check_app(app_dir, float_only, out_dir)
    micro = micro or app_dir is not None
    claim_out(out_dir)
    from keras_quaternion.training.loop import load_model

    def load():
        try:
            return load_model(model_path)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None

    progress = sys.stderr.isatty()
    model, prepared = data.prepare_for_saved_model(
        model_path,
        load,
        seed=seed,
        missing_dataset=f"--dataset is required: int8 export calibrates on its train split and "
        f"the report scores its {subset} split, and there is no metrics.json next to "
        f"'{model_path}' to read it from.",
    )
    try:
        report = export_model(
            model,
            out_dir,
            prepared=prepared,
            int8=not float_only,
            micro=micro,
            calibration_samples=calibration_samples,
            split=subset,
            name=name,
            verify_samples=verify_samples,
            strict=strict,
            progress=progress,
            quaternion=quaternion,
            info=_export_info(model_path, prepared),
        )
    except (ValueError, TypeError, ExportError) as err:
        raise click.ClickException(str(err)) from None

    _print_summary(report, out_dir)
    if app_dir is not None:
        _write_app(app_dir, out_dir, report, prepared, name)


def _check_app(app_dir, float_only: bool, out_dir: Path) -> None:
    """What kq-export checks about --app before any slow work."""
    if app_dir is None:
        return
    from keras_quaternion.export.bundle import check_app_dir

    if float_only:
        raise click.BadParameter(
            "the app runs int8 models only (it quantizes its input); drop --float.",
            param_hint="--app",
        )
    if app_dir.resolve() == out_dir.resolve():
        raise click.BadParameter(
            f"'{app_dir}' is the --out folder; give the app a folder of its own.",
            param_hint="--app",
        )
    try:
        check_app_dir(app_dir)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--app") from None


def _export_info(model_path: Path, prepared):
    """The model's stored info when it describes the data exported with, else the data's."""
    from keras_quaternion.model_info import ModelInfo, read_info

    try:
        stored = read_info(model_path)
    except ValueError:
        stored = None
    if (
        stored is not None
        and stored.features() == prepared.feature_config
        and len(stored.class_names) == prepared.num_classes
    ):
        return stored
    return ModelInfo.from_prepared(prepared)


def _write_app(app_dir: Path, out_dir: Path, report: dict, prepared, name: str) -> None:
    """Write --app DIR from the export in OUT and say so."""
    from keras_quaternion.export.bundle import write_app
    from keras_quaternion.model_info import ModelInfo

    info = ModelInfo.from_dict(report["model_info"]) if report.get("model_info") else None
    try:
        write_app(app_dir, out_dir, report, info or ModelInfo.from_prepared(prepared), name)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"app: {app_dir} (make -C {app_dir} host; make -C {app_dir} run WAV=clip.wav "
        "TFLM_ROOT=/path/to/tflite-micro)"
    )


def _check_arguments(model_path: Path, quaternion: str, float_only: bool, name: str) -> None:
    """What kq-export checks before it claims --out or loads the model."""
    from keras_quaternion.export.micro import micro_symbols

    if quaternion == "compact" and float_only:
        raise click.BadParameter(
            "'compact' exists for int8 models only; drop --float or use --quaternion expanded.",
            param_hint="--quaternion",
        )
    if not model_path.is_file():
        raise click.BadParameter(f"'{model_path}' does not exist.", param_hint="MODEL.keras")
    if model_path.suffix.lower() != ".keras":
        raise click.BadParameter(
            f"'{model_path}' is not a .keras file; export a model saved by kq-train or "
            f"model.save('name.keras').",
            param_hint="MODEL.keras",
        )
    try:
        micro_symbols(name)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--name") from None


def _print_summary(report, out_dir):
    """What kq-export tells the user after writing OUT."""
    from keras_quaternion.export.pipeline import REPORT_NAME

    exp, arena, acc = report["export"], report["arena"], report["accuracy"] or {}
    click.echo(f"wrote {os.path.join(out_dir, exp['tflite'])}: {exp['flatbuffer_bytes']} bytes")
    if "expanded_flatbuffer_bytes" in exp:
        kept = [x["layer"] for x in exp["quaternion_layers"] if not x["compact"]]
        click.echo(
            f"quaternion: compact, {exp['size_ratio_to_expanded']:.2f}x the expanded flatbuffer "
            f"({exp['expanded_flatbuffer_bytes']} bytes)"
            + (f"; kept expanded: {', '.join(map(str, kept))}" if kept else "")
        )
    if exp["quaternion"] == "fast":
        _print_fast(exp["quaternion_layers"])
    click.echo(f"operators: {', '.join(exp['operators'])}")
    click.echo(
        f"tensor arena: {arena['recommended']} bytes (measured {arena['minimal']}, "
        f"+{arena['margin']:.0%}, rounded up to 1 KiB)"
    )
    ver = report["verification"]
    if ver.get("quaternion_layers"):
        click.echo(
            f"compact operators: {len(ver['quaternion_layers'])} checked bit for bit; "
            f"{ver['runtime']}"
        )
    click.echo(
        f"TFLite Micro vs LiteRT: {ver['identical_samples']}/{ver['samples']} identical, max diff "
        f"{ver['max_abs_diff']:g}, top-1 agreement {ver['top1_agreement']:.3f}"
    )
    if acc:
        parts = [
            f"{key} {_fmt(acc[key])}"
            for key in ("keras_float", "tflite_float", "tflite_int8")
            if key in acc
        ]
        click.echo(f"{acc['metric']} on {acc['split']}: " + ", ".join(parts))
    lat = report["latency"]
    line = f"LiteRT latency: float {lat['float_ms']:.3f} ms"
    if "int8_ms" in lat:
        line += f", int8 {lat['int8_ms']:.3f} ms"
    click.echo(line)
    if report["micro"]:
        click.echo(f"micro files: {', '.join(report['micro']['files'])}")
    click.echo(f"report: {os.path.join(out_dir, REPORT_NAME)}")


def _print_fast(layers):
    """The ``fast`` strategy's line: layers made fast, norms kept as affine, layers kept."""
    fast = [x for x in layers if x["fast"]]
    affine = [x["layer"] for x in fast if x["batch_norm"] == "affine"]
    kept = [x["layer"] for x in layers if not x["fast"]]
    weights = sum(x["weights"][1] for x in fast) / max(1, sum(x["weights"][0] for x in fast))
    click.echo(
        f"quaternion: fast, {len(fast)} layer(s) as 8 products ({weights:.2f}x the expanded "
        f"weights)"
        + (f"; per-channel batch norm kept after: {', '.join(affine)}" if affine else "")
        + (f"; kept expanded: {', '.join(kept)}" if kept else "")
    )
