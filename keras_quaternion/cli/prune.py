"""``kq-prune`` (also ``kq prune``): structured filter pruning, then optional fine-tuning.

``kq-prune MODEL.keras --method l1 --ratio 0.5 --out DIR`` removes whole filters and writes the
smaller model and the pruning report (:func:`keras_quaternion.pruning.prune_and_finetune`); with
``--finetune-epochs N`` it then fine-tunes it with the package's training loop, and with ``--kd``
it fine-tunes with the unpruned model as teacher (the paper's Prune+KD). The feature settings
default to those recorded in the ``metrics.json`` that ``kq-train`` wrote next to the model, so
fine-tuning sees the data the model was trained on. See ``docs/compression.md``.
"""

from __future__ import annotations

from pathlib import Path

import click

from keras_quaternion.cli.options import (
    CONTEXT,
    check_model_file,
    dataset_options,
    load_model_argument,
    shared_option,
)
from keras_quaternion.cli.output import score_text
from keras_quaternion.outdir import claim_out
from keras_quaternion.training.dataset_options import run_info

__all__ = ["METHODS", "prune_command"]

#: Pruning methods offered by ``--method`` (keras_quaternion.pruning.METHODS, spelt out here so
#: that ``kq-prune --help`` does not import TensorFlow; tests/test_compress_cli.py checks they agree).
METHODS = ("operator-norm", "operator-norm-unsigned", "l1", "geometric-median", "random")

#: The file kq-prune writes the final model to (keras_quaternion.pruning.finetune.MODEL_FILE).
MODEL_FILE = "model.keras"


@click.command(name="prune", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="operator-norm",
    show_default=True,
    help="Filter importance score (see docs/pruning.md).",
)
@click.option(
    "--ratio",
    type=float,
    default=0.5,
    show_default=True,
    help="Fraction of filters removed from each pruned layer, in [0, 1).",
)
@click.option("--skip", multiple=True, metavar="LAYER", help="Layer never to prune (repeatable).")
@click.option(
    "--layers",
    default="all",
    show_default=True,
    help="'all' (every convolution), 'paper' (the authors' plan for (Q)CNN14 / "
    "(Q)ResNet38) or comma-separated layer names.",
)
@click.option(
    "--residual",
    type=click.Choice(["group", "skip"]),
    default="group",
    show_default=True,
    help="Prune residual-joined filters together, or leave them.",
)
@shared_option("out")
@click.option(
    "--dataset",
    default=None,
    help="Dataset for fine-tuning (default: the one in metrics.json next to MODEL).",
)
@click.option(
    "--finetune-epochs",
    type=click.IntRange(0, 100000),
    default=0,
    show_default=True,
    help="Fine-tune the pruned model for this many epochs (0: prune only).",
)
@click.option("--kd", is_flag=True, help="Fine-tune with the unpruned MODEL as teacher (Prune+KD).")
@shared_option("temperature", help="Distillation temperature (with --kd).")
@shared_option("alpha", help="Weight of the task loss in distillation (with --kd).")
@shared_option("batch_size")
@shared_option("lr", help="Adam's peak learning rate for fine-tuning (kq-train's default recipe).")
@shared_option("weight_decay")
@shared_option("label_smoothing")
@shared_option("ema")
@shared_option("gain_db")
@shared_option("seed", help="Seed of the 'random' method and of fine-tuning.")
@shared_option("strategy")
@click.option("--restart", is_flag=True, help="Discard a fine-tuning checkpoint in --out.")
@shared_option("quiet")
@dataset_options
def prune_command(
    model_path,
    method,
    ratio,
    skip,
    layers,
    residual,
    out_dir,
    finetune_epochs,
    kd,
    temperature,
    alpha,
    batch_size,
    lr,
    weight_decay,
    label_smoothing,
    ema,
    gain_db,
    seed,
    strategy,
    restart,
    quiet,
    data,
):
    """Prune whole (quaternion) filters of a trained MODEL (.keras) and rebuild it smaller.

    Writes model.keras, pruning_report.json and pruning_report.md to --out; with
    --finetune-epochs N also fine-tunes (with --kd: distilling from the unpruned MODEL) and
    writes metrics.json (kq-train's schema), history.csv and plots; pruned.keras then holds the
    model right after pruning. Rerun the same command to resume an interrupted fine-tuning.
    """
    _check_arguments(model_path, ratio, kd, finetune_epochs, out_dir)
    claim_out(out_dir, strategy)
    model = load_model_argument(model_path, "MODEL")
    prepared = None
    if finetune_epochs:
        _, prepared = data.prepare_for_saved_model(
            model_path,
            lambda: model,
            missing_dataset="--finetune-epochs needs data: give --dataset (and --data-dir); "
            f"there is no metrics.json next to '{model_path}' to read the dataset from.",
            fallback_seed=seed,
            progress=not quiet,
        )
    from keras_quaternion.model_info import describe_model
    from keras_quaternion.pruning import prune_and_finetune

    try:
        result = prune_and_finetune(
            model,
            method,
            ratio,
            out_dir=out_dir,
            prepared=prepared,
            finetune_epochs=finetune_epochs,
            kd=kd,
            skip=skip,
            layers=layers,
            residual=residual,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            label_smoothing=label_smoothing,
            ema=ema,
            gain_db=gain_db,
            temperature=temperature,
            alpha=alpha,
            strategy=strategy,
            model_name=f"{run_info(model_path).get('model') or model.name}-{method}-p{ratio:g}"
            + ("-kd" if kd else ""),
            resume=not restart,
            verbose=0 if quiet else 1,
            info=None if prepared is not None else describe_model(model_path),
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from None
    _print_result(result, kd, out_dir)


def _check_arguments(model_path, ratio, kd, finetune_epochs, out_dir) -> None:
    """What kq-prune checks before it claims --out or loads MODEL."""
    check_model_file(model_path, "MODEL")
    if not 0.0 <= ratio < 1.0:
        raise click.BadParameter(
            f"{ratio!r} is outside [0, 1): it is the fraction of filters removed per layer.",
            param_hint="--ratio",
        )
    if kd and finetune_epochs == 0:
        raise click.UsageError("--kd distils during fine-tuning; add --finetune-epochs N (N > 0).")
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"'{out_dir}' exists and is not a folder.", param_hint="--out")
    if (out_dir / MODEL_FILE).resolve() == model_path.resolve():
        raise click.BadParameter(
            f"--out '{out_dir}' would overwrite the input model '{model_path}'; choose another "
            "folder.",
            param_hint="--out",
        )


def _print_result(result: dict, kd: bool, out_dir: Path) -> None:
    """kq-prune's summary: the pruning report, then the scores or the file written."""
    click.echo(result["report"].summary())
    if "metrics" in result:
        name, value = score_text(result["metrics"])
        before = result["before_finetune"].get(name)
        unpruned = result["unpruned"].get(name)
        click.echo(
            f"Test {name}: unpruned {unpruned:.4f}, pruned {before:.4f}, fine-tuned {value} "
            f"({result['metrics']['epochs']} epochs{', KD' if kd else ''}, "
            f"{result['metrics']['seconds']:.0f} s) | out: {out_dir}"
        )
    else:
        click.echo(f"Wrote {out_dir / MODEL_FILE} and the pruning report.")
