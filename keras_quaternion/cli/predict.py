"""``kq-predict`` (also ``kq predict``): run a trained model on audio files.

``kq-predict MODEL AUDIO...`` prints, per file, the top classes with their scores
(:mod:`keras_quaternion.predict`); with ``--json`` one JSON object per file and line. The
features, clip length and class names come with the model (a ``.keras`` file from kq-train,
kq-prune or kq-distill, or the ``metrics.json`` beside an older one; a ``.tflite`` from
kq-export reads the ``export_report.json`` beside it); the options below stand in for them.

A file that cannot be decoded is reported by name and the others are still scored; the exit
status is then 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_quaternion.cli.options import CONTEXT

__all__ = ["predict_command"]


@click.command(name="predict", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.argument(
    "audio", metavar="AUDIO...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--top-k", type=click.IntRange(1, 1000), default=3, show_default=True, help="Classes listed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line.")
@click.option(
    "--hop-seconds",
    type=click.FloatRange(0, 600, min_open=True),
    default=None,
    help="Step between the windows of a recording longer than the model's clip (default: "
    "half a clip).",
)
@click.option(
    "--runtime",
    type=click.Choice(["litert", "tflm"]),
    default="litert",
    show_default=True,
    help="Interpreter of a .tflite MODEL: LiteRT, or TFLite Micro (as on the device).",
)
@click.option(
    "--dataset",
    default=None,
    help="For a model that carries no features: the dataset whose sample rate and clip "
    "length it was trained with.",
)
@click.option("--sample-rate", type=click.IntRange(1000, 768000), default=None, help="Hz.")
@click.option("--clip-seconds", type=click.FloatRange(0, 600, min_open=True), default=None)
@click.option("--n-mels", type=click.IntRange(8, 512), default=None)
@click.option(
    "--labels",
    default=None,
    metavar="A,B,...",
    help="Class names in output order (comma-separated), instead of the recorded ones.",
)
def predict_command(model_path, audio, top_k, as_json, hop_seconds, runtime, **fields):
    """Print the top classes of each AUDIO file (any format kq-train reads) under MODEL.

    MODEL is a .keras model or a .tflite from kq-export. Recordings longer than the model's
    clip are scored per window, with their mean as the summary. Exit status 1 when a file
    could not be decoded (the others are still scored).
    """
    fields = _fields(**fields)
    from keras_quaternion.model_info import ModelInfoMissingError
    from keras_quaternion.predict import load_predictor, predict_files

    if not model_path.is_file():
        raise click.BadParameter(f"'{model_path}' does not exist.", param_hint="MODEL")
    try:
        predictor = load_predictor(model_path, fields=fields, runtime=runtime)
    except ModelInfoMissingError as err:
        raise click.UsageError(str(err)) from None
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    failed = 0
    options = dict(top_k=top_k, hop_seconds=hop_seconds)
    for path, result, error in predict_files(predictor, [str(p) for p in audio], **options):
        if error is not None:
            failed += 1
            _report_failure(path, error, as_json)
        else:
            click.echo(json.dumps(result) if as_json else _text(result))
    if failed:
        click.echo(f"kq-predict: {failed} of {len(audio)} file(s) could not be scored.", err=True)
        raise SystemExit(1)


def _fields(dataset, sample_rate, clip_seconds, n_mels, labels) -> dict:
    """The model settings given on the command line (``None``: not given)."""
    names = None
    if labels is not None:
        names = [name.strip() for name in labels.split(",")]
        if not all(names):
            raise click.BadParameter(
                f"{labels!r} has an empty class name; give names separated by commas.",
                param_hint="--labels",
            )
    if dataset is not None:
        from keras_quaternion.training.dataset_options import check_dataset_name

        check_dataset_name(dataset)
    return dict(
        dataset=dataset,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        n_mels=n_mels,
        class_names=names,
    )


def _report_failure(path: str, error: Exception, as_json: bool) -> None:
    """One line on stderr (and, with --json, an object with ``"error"`` on stdout)."""
    if as_json:
        click.echo(json.dumps({"file": path, "label": None, "error": str(error)}))
    click.echo(f"kq-predict: {path}: {error}", err=True)


def _text(result: dict) -> str:
    """``FILE: LABEL (0.93), other (0.04), ...`` plus a line per window of a long recording."""
    top = ", ".join(f"{t['label']} ({t['score']:.3f})" for t in result["top"])
    lines = [f"{result['file']}: {top}"]
    if len(result["windows"]) > 1:
        lines += [
            f"  {w['start']:8.2f} s  {w['label']} ({w['score']:.3f})" for w in result["windows"]
        ]
    return "\n".join(lines)
