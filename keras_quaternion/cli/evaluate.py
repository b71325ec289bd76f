"""``kq-eval`` (also ``kq eval``): score a saved ``.keras`` or ``.tflite`` model on a split.

The dataset and feature options default to those recorded in the ``metrics.json`` next to the
model (:meth:`~keras_quaternion.training.dataset_options.DatasetOptions.prepare_for_saved_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_quaternion.cli.options import CONTEXT, dataset_options, shared_option
from keras_quaternion.cli.output import finite

__all__ = ["eval_command"]


@click.command(name="eval", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dataset", default=None, help="Dataset name (default: the one in metrics.json next to MODEL)."
)
@click.option(
    "--subset",
    type=click.Choice(["test", "validation", "train"]),
    default="test",
    show_default=True,
    help="Which split to score.",
)
@shared_option("batch_size", default=64)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="Dataset seed (validation carve); default: the training run's.",
)
@dataset_options
def eval_command(model_path, subset, batch_size, seed, data):
    """Score a saved .keras or .tflite MODEL on a dataset split; prints the metrics as JSON.

    The feature settings (sample rate, clip length, mel bands, dataset options) default to
    those recorded in the metrics.json next to MODEL (written by kq-train), so
    `kq-eval runs/x/model.keras --data-dir DIR` scores a run on the data it was trained on.
    """
    suffix = _check_model_path(model_path)
    from keras_quaternion.training.loop import evaluate, load_model

    def load():
        if suffix != ".keras":
            return None
        try:
            return load_model(model_path)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None

    model, prepared = data.prepare_for_saved_model(model_path, load, seed=seed)
    try:
        if suffix == ".keras":
            result = evaluate(model, prepared, subset, batch_size=batch_size)
        else:
            result = _evaluate_tflite(model_path, prepared, subset)
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from None
    result = {"model": str(model_path), **result}
    click.echo(json.dumps({k: finite(v) for k, v in result.items()}, indent=1))


def _check_model_path(model_path: Path) -> str:
    """The lower-case suffix of MODEL, an existing ``.keras`` or ``.tflite`` file."""
    if not model_path.is_file():
        raise click.BadParameter(f"'{model_path}' does not exist.", param_hint="MODEL")
    suffix = model_path.suffix.lower()
    if suffix not in (".keras", ".tflite"):
        raise click.BadParameter(
            f"'{model_path}' is neither a .keras nor a .tflite file.", param_hint="MODEL"
        )
    return suffix


def _evaluate_tflite(model_path: Path, prepared, subset: str) -> dict:
    """The scores of a ``.tflite`` model on ``subset`` (with the dataset and split named)."""
    try:
        from keras_quaternion.export import evaluate_tflite
    except ImportError as err:
        raise click.ClickException(
            "Scoring a .tflite model needs keras_quaternion.export.evaluate_tflite, "
            f"which is not available ({err})."
        ) from None
    result = {"dataset": prepared.dataset, "split": subset}
    result.update(evaluate_tflite(model_path, prepared, split=subset))
    return result
