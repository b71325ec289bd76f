"""``kq-distill`` (also ``kq distill``): train a student from scratch with knowledge distillation.

The student is a registry model; the teacher a trained ``.keras`` model with the same input.
The dataset and feature options default to those recorded in the ``metrics.json`` next to the
teacher. See ``docs/compression.md``.
"""

from __future__ import annotations

from pathlib import Path

import click

from keras_quaternion.cli.options import (
    CONTEXT,
    dataset_options,
    load_model_argument,
    shared_option,
)
from keras_quaternion.cli.output import score_text
from keras_quaternion.outdir import claim_out

__all__ = ["distill_command"]


@click.command(name="distill", context_settings=CONTEXT)
@click.option(
    "--teacher",
    "teacher_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Trained teacher model (.keras).",
)
@click.option("--student", required=True, help="Registry model name of the student (e.g. qcnn6).")
@click.option(
    "--width",
    type=click.FloatRange(0, 4, min_open=True),
    default=1.0,
    show_default=True,
    help="Width multiplier of the student.",
)
@click.option(
    "--dataset",
    default=None,
    help="Dataset (default: the one in metrics.json next to the teacher).",
)
@shared_option("out")
@click.option("--epochs", type=click.IntRange(1, 100000), default=20, show_default=True)
@shared_option("temperature")
@shared_option(
    "alpha",
    help="Weight of the task loss (1 - alpha weighs the teacher-matching loss).",
)
@shared_option("batch_size")
@shared_option("lr")
@shared_option("weight_decay")
@shared_option("label_smoothing")
@shared_option("ema")
@shared_option("gain_db")
@shared_option("seed")
@shared_option("strategy")
@click.option("--restart", is_flag=True, help="Discard a checkpoint in --out.")
@shared_option("quiet")
@dataset_options
def distill_command(
    teacher_path,
    student,
    width,
    out_dir,
    epochs,
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
    """Train the registry model --student from scratch with knowledge distillation from
    --teacher; writes kq-train's outputs (model.keras, metrics.json, ...) to --out."""
    claim_out(out_dir, strategy)
    teacher = _load_teacher(teacher_path, student)
    _, prepared = data.prepare_for_saved_model(
        teacher_path,
        lambda: teacher,
        missing_dataset="Give --dataset (and --data-dir): there is no metrics.json next to "
        f"'{teacher_path}' to read the dataset from.",
        fallback_seed=seed,
        progress=not quiet,
    )
    from keras_quaternion.training.loop import train

    try:
        result = train(
            student,
            prepared,
            out_dir=out_dir,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            label_smoothing=label_smoothing,
            ema=ema,
            gain_db=gain_db,
            width=width,
            seed=seed,
            teacher=str(teacher_path),
            temperature=temperature,
            alpha=alpha,
            strategy=strategy,
            resume=not restart,
            model_name=f"{student}-kd",
            verbose=0 if quiet else 1,
            extra_info={
                "distillation": {"teacher": str(teacher_path), "student": student, "width": width}
            },
        )
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    name, value = score_text(result)
    click.echo(
        f"Test {name} {value} | {student} x{width:g} ({result['params']:,} params) distilled "
        f"from {teacher_path} (T={temperature:g}, alpha={alpha:g}) | {result['epochs']} epochs, "
        f"{result['seconds']:.0f} s | out: {out_dir}"
    )


def _load_teacher(teacher_path: Path, student: str):
    """The teacher model, after checking --student is a registry model that can learn from it
    (the same input, or a real teacher fed the log-mel channel of a quaternion student's)."""
    from keras_quaternion import models

    if student not in models.names():
        raise click.BadParameter(
            f"unknown model {student!r}; known models: {', '.join(models.names())}.",
            param_hint="--student",
        )
    teacher = load_model_argument(teacher_path, "--teacher")
    teacher_channels = teacher.input_shape[-1] if isinstance(teacher.input_shape, tuple) else None
    student_channels = models.describe(student).input_channels
    if (teacher_channels, student_channels) == (4, 1):  # a real teacher reads the log-mel
        raise click.UsageError(
            f"The teacher '{teacher_path}' takes the 4-channel quaternion features but "
            f"{student} only their log-mel channel; distil into a quaternion model (or "
            "mccnn14), or from a real (log-mel) teacher."
        )
    return teacher
