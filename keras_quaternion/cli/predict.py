"""``kq-predict`` (also ``kq predict``): run a trained model on audio files.

The model's features, clip length and class names come from the model itself
(:func:`~keras_quaternion.model_info.describe_model`); the options below only stand in for a
model that records none. The work is :class:`keras_quaternion.predict.Predictor`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_quaternion.cli.options import CONTEXT

__all__ = ["predict_command"]


@click.command(name="predict", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("audio", metavar="AUDIO...", nargs=-1, required=True)
@click.option(
    "--top-k",
    type=click.IntRange(1, None),
    default=3,
    show_default=True,
    help="How many classes to print per file.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per file and line: file, label, scores, seconds, windows.",
)
@click.option(
    "--hop-seconds",
    type=click.FloatRange(0, None, min_open=True),
    default=None,
    help="Window hop for recordings longer than a clip (default: the clip length).",
)
@click.option(
    "--windows",
    "show_windows",
    is_flag=True,
    help="Also print each window's label (recordings longer than a clip).",
)
@click.option(
    "--dataset",
    default=None,
    help="Only for a model that records no features: take this dataset's defaults.",
)
@click.option(
    "--sample-rate",
    type=click.IntRange(1000, 768000),
    default=None,
    help="Only for a model that records no features: its sample rate (Hz).",
)
@click.option(
    "--n-mels",
    type=click.IntRange(1, None),
    default=None,
    help="Only for a model that records no features: its mel bands (default 64).",
)
@click.option(
    "--clip-seconds",
    type=click.FloatRange(0, None, min_open=True),
    default=None,
    help="Only for a model that records no features: its clip length (s).",
)
@click.option(
    "--labels",
    default=None,
    help="Only for a model that records no class names: comma-separated names.",
)
def predict_command(model_path, audio, top_k, as_json, hop_seconds, show_windows, **fallback):
    """Print the top classes of a .keras or .tflite MODEL for each AUDIO file.

    Each file is decoded at the model's sample rate and scored per window of the model's clip
    length; the file's scores are the windows' mean. Files that cannot be decoded are reported
    by name, the others are still scored, and the exit status is then 1.
    """  # noqa: D301
    predictor = _predictor(model_path, top_k, hop_seconds, fallback)
    failed = 0
    for name in audio:
        result = predictor.predict_file(name)
        failed += result.error is not None
        if as_json:
            click.echo(json.dumps(result.to_json()))
        else:
            _print_text(result, show_windows)
    if failed:
        click.echo(f"kq-predict: {failed} of {len(audio)} files could not be decoded.", err=True)
        raise SystemExit(1)


def _predictor(model_path, top_k, hop_seconds, fallback):
    """The :class:`~keras_quaternion.predict.Predictor`, or a usage error naming what is missing."""
    if not model_path.is_file():
        raise click.UsageError(f"Model file '{model_path}' does not exist.")
    if model_path.suffix not in (".keras", ".tflite"):
        raise click.UsageError(f"'{model_path}' is neither a .keras nor a .tflite model file.")
    from keras_quaternion.model_info import ModelInfoError, describe_model
    from keras_quaternion.predict import Predictor, info_from_options, model_classes

    try:
        info = describe_model(model_path)
        if info is None or any(v is not None for v in fallback.values()):
            info = _fallback_info(model_path, info, fallback, info_from_options, model_classes)
        return Predictor.from_file(model_path, info, top_k=top_k, hop_seconds=hop_seconds)
    except ModelInfoError as err:
        raise click.UsageError(str(err)) from None
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None


def _fallback_info(model_path, info, fallback, info_from_options, model_classes):
    """The model's information completed or replaced by the command-line options."""
    labels = [n.strip() for n in fallback["labels"].split(",")] if fallback["labels"] else None
    if info is not None and not any(
        fallback[k] for k in ("dataset", "sample_rate", "n_mels", "clip_seconds")
    ):
        return type(info).from_dict({**info.to_dict(), "class_names": labels})  # only --labels
    if info is None and not any(fallback.values()):
        info_from_options()  # raises the usage error that names the options
    result = info_from_options(
        fallback["dataset"],
        fallback["sample_rate"],
        fallback["n_mels"],
        fallback["clip_seconds"],
        labels or (info.class_names if info else None),
        classes=model_classes(model_path),
    )
    if len(result.class_names) != model_classes(model_path):
        raise click.UsageError(
            f"--labels gives {len(result.class_names)} names but '{model_path}' has "
            f"{model_classes(model_path)} outputs."
        )
    return result


def _print_text(result, show_windows):
    """``FILE: LABEL (p)  [second (p), third (p)]``, then the windows if asked."""
    if result.error is not None:
        click.echo(f"{result.file}: error: {result.error}", err=True)
        return
    (label, score), rest = result.top[0], result.top[1:]
    others = ", ".join(f"{n} ({p:.3f})" for n, p in rest)
    windows = f", {len(result.windows)} windows" if len(result.windows) > 1 else ""
    click.echo(
        f"{result.file}: {label} ({score:.3f})" + (f"  [{others}]" if others else "") + windows
    )
    if show_windows and len(result.windows) > 1:
        for w in result.windows:
            click.echo(f"  {w['start']:8.2f}-{w['end']:.2f} s: {w['label']} ({w['score']:.3f})")
