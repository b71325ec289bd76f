"""``kq-train`` (also ``kq train``): train a registry model on a dataset.

``kq-train`` with no arguments trains a small quaternion CNN (``qcnn6`` at width 0.25) on the
generated ``synthetic`` dataset in a few minutes on a laptop CPU. See ``docs/training.md``.
"""

from __future__ import annotations

from pathlib import Path

import click

from keras_quaternion.cli.options import CONTEXT, dataset_options, shared_option
from keras_quaternion.cli.output import summary_line
from keras_quaternion.cli.panns import FINETUNE_LR, PannsPlan
from keras_quaternion.outdir import claim_out
from keras_quaternion.training.dataset_options import check_dataset_name
from keras_quaternion.training.recipe import (
    DEFAULT_EPOCHS,
    DEFAULT_FREQ_WARP,
    DEFAULT_SPEC_AUGMENT,
    DEFAULT_TIME_SHIFT,
    MAX_FREQ_WARP,
    MAX_TIME_SHIFT,
)

__all__ = ["DEFAULT_DROPOUT", "DEFAULT_MODEL", "DEFAULT_WIDTH", "train_command"]

#: The model ``kq-train`` trains when ``--model`` is not given, its width and dropout rate
#: (registry models named with ``--model`` keep width 1.0 and PANNs' dropout unless told).
DEFAULT_MODEL = "qcnn6"
DEFAULT_WIDTH = 0.25
DEFAULT_DROPOUT = 0.1


@click.command(name="train", context_settings=CONTEXT)
@click.option(
    "--dataset",
    default="synthetic",
    show_default=True,
    help="Dataset name (kq-train --dataset list shows them).",
)
@click.option(
    "--model",
    default=None,
    help=f"Registry model name (default {DEFAULT_MODEL} at width {DEFAULT_WIDTH}).",
)
@click.option(
    "--width",
    type=click.FloatRange(0, 4, min_open=True),
    default=None,
    help=f"Width multiplier (default 1.0, or {DEFAULT_WIDTH} for the default model).",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help=f"One dropout rate for every Dropout layer (default PANNs' 0.2/0.1/0.5, or "
    f"{DEFAULT_DROPOUT} for the default model).",
)
@click.option(
    "--bn",
    type=click.Choice(["real", "quaternion", "whiten"]),
    default=None,
    help="Normalisation after each quaternion convolution (default real).",
)
@click.option("--epochs", type=click.IntRange(1, 100000), default=DEFAULT_EPOCHS, show_default=True)
@shared_option("batch_size", help="Global batch size (split across replicas).")
@shared_option("lr")
@shared_option("schedule")
@shared_option("warmup_epochs")
@shared_option("early_stopping")
@shared_option("seed")
@shared_option(
    "out", required=False, default=None, help="Output folder (default runs/<dataset>-<model>)."
)
@click.option(
    "--teacher",
    default=None,
    metavar="PATH|panns:PATH",
    help="A trained .keras model to distil from (the student's input, or a real teacher fed "
    "the log-mel channel of a quaternion student's features), or panns:PATH, a PANNs "
    "checkpoint fine-tuned first (--teacher-epochs). See docs/transfer.md.",
)
@shared_option("temperature", help="Distillation temperature (with --teacher).")
@shared_option("alpha", help="Weight of the task loss in distillation (with --teacher).")
@click.option(
    "--teacher-epochs",
    type=click.IntRange(1, 100000),
    default=None,
    help="With --teacher panns:PATH: epochs of fine-tuning the teacher (new output layer for "
    "the dataset's classes) before distillation, in OUT/teacher.",
)
@click.option(
    "--teacher-lr",
    type=click.FloatRange(0, 10, min_open=True),
    default=FINETUNE_LR,
    show_default=True,
    help="Peak learning rate of the PANNs teacher's fine-tuning.",
)
@click.option(
    "--init",
    default=None,
    metavar="panns:PATH",
    help="Start --model (cnn6, cnn10, cnn14, resnet22 or resnet38) from a PANNs AudioSet "
    "checkpoint, with a new output layer; features become PANNs' (32 kHz, 64 mel bands) and "
    f"--lr defaults to {FINETUNE_LR:g}. See docs/transfer.md.",
)
@click.option(
    "--freeze-epochs",
    type=click.IntRange(0, 100000),
    default=0,
    show_default=True,
    help="Epochs that train only the new output layer of a PANNs model (--init, or the "
    "teacher's fine-tuning with --teacher panns:PATH) before the whole model.",
)
@shared_option("strategy")
@click.option(
    "--spec-augment/--no-spec-augment",
    default=DEFAULT_SPEC_AUGMENT,
    show_default=True,
    help="SpecAugment-style time/frequency masking of training clips.",
)
@click.option(
    "--mixup",
    type=click.FloatRange(0, None),
    default=0.0,
    show_default=True,
    help="Mixup Beta alpha (0 = off).",
)
@shared_option("gain_db")
@click.option(
    "--freq-warp",
    type=click.FloatRange(0, MAX_FREQ_WARP),
    default=DEFAULT_FREQ_WARP,
    show_default=True,
    help="Random frequency warping of each training clip (like vocal-tract-length "
    "perturbation): its mel axis stretched by a factor in 1 ± this (0 = off).",
)
@click.option(
    "--time-shift",
    type=click.FloatRange(0, MAX_TIME_SHIFT),
    default=DEFAULT_TIME_SHIFT,
    show_default=True,
    help="Random shift of each training clip by up to this fraction of its frames (0 = off).",
)
@shared_option("weight_decay")
@shared_option("label_smoothing")
@shared_option("ema")
@click.option(
    "--restart", is_flag=True, help="Discard the checkpoint in --out and train from scratch."
)
@shared_option("quiet")
@dataset_options
def train_command(
    model,
    width,
    dropout,
    bn,
    epochs,
    batch_size,
    lr,
    schedule,
    warmup_epochs,
    early_stopping,
    seed,
    out_dir,
    teacher,
    temperature,
    alpha,
    teacher_epochs,
    teacher_lr,
    init,
    freeze_epochs,
    strategy,
    restart,
    quiet,
    data,
    **regularisation,  # --spec-augment ... --ema: train()'s arguments of the same names
):
    """Train a model on a dataset; rerun the same command to resume after an interruption.

    Writes model.keras (best on validation), metrics.json, history.csv, training_curves.png,
    confusion_matrix.png and TensorBoard logs (tb/) to --out. With no arguments: qcnn6 at width
    0.25 on the generated 'synthetic' dataset.
    """
    if data.dataset == "list":
        _list_datasets()
        return
    check_dataset_name(data.dataset)
    panns = PannsPlan.of(model, width, init, teacher, data)
    model, width, model_options = _model_choice(model, width, dropout, bn)
    width = None if panns.init is not None and panns.width is None else width
    out_dir = claim_out(out_dir or Path("runs") / f"{data.dataset}-{model}", strategy)
    if panns.teacher is None:
        _check_teacher(teacher)
    transfer = panns.train_options(
        model, epochs=epochs, freeze_epochs=freeze_epochs, teacher_epochs=teacher_epochs
    )
    lr = panns.learning_rate(lr)
    if warmup_epochs > epochs:
        raise click.BadParameter(
            f"{warmup_epochs:g} warm-up epochs is longer than the run (--epochs {epochs}).",
            param_hint="--warmup-epochs",
        )
    loader_options = data.loader_options()

    from keras_quaternion.training.loop import is_chief, make_strategy

    try:  # before any TensorFlow operation (multi-worker collectives are set up at start)
        strat = make_strategy(strategy)
    except (ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    prepared = data.prepare(
        seed,
        loader_options=loader_options,
        feature_config=panns.feature_config(),
        progress=not quiet,
    )
    result = _train(
        model,
        prepared,
        out_dir=out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        early_stopping=early_stopping,
        width=width,
        model_options=model_options,
        seed=seed,
        teacher=teacher,
        temperature=temperature,
        alpha=alpha,
        teacher_lr=teacher_lr,
        **transfer,
        strategy=strat,
        resume=not restart,
        **regularisation,
        verbose=0 if quiet else 1,
    )
    role = "" if is_chief(strat) else " [non-chief worker: files written by the chief]"
    click.echo(summary_line(result, out_dir) + role)


def _train(model, prepared, **settings) -> dict:
    """:func:`keras_quaternion.training.train`, its argument errors as one-line errors."""
    from keras_quaternion.training.loop import train

    try:
        return train(model, prepared, **settings)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None


def _list_datasets() -> None:
    from keras_quaternion import datasets

    for name in datasets.names():
        click.echo(f"{name:16s} {datasets.spec(name).description}")


def _model_choice(model, width, dropout, bn):
    """``(model, width, model_options)`` from --model, --width, --dropout and --bn.

    Without --model: the default model, width and dropout; a named model keeps width 1.0 and
    PANNs' dropout unless told otherwise.
    """
    from keras_quaternion import models

    if model is None:
        model = DEFAULT_MODEL
        width = DEFAULT_WIDTH if width is None else width
        dropout = DEFAULT_DROPOUT if dropout is None else dropout
    elif model not in models.names():
        raise click.UsageError(
            f"Unknown model {model!r}; known models: {', '.join(models.names())}."
        )
    model_options = {}
    if dropout is not None:
        model_options["dropout"] = dropout
    if bn is not None:
        model_options["bn"] = bn
    return model, 1.0 if width is None else width, model_options


def _check_teacher(teacher) -> None:
    if teacher is None:
        return
    teacher = Path(teacher)
    if not teacher.is_file():
        raise click.BadParameter(f"'{teacher}' does not exist.", param_hint="--teacher")
    if teacher.suffix != ".keras":
        raise click.BadParameter(f"'{teacher}' is not a .keras model file.", param_hint="--teacher")
