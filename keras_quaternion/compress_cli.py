"""``kq-prune`` and ``kq-distill`` (also ``kq prune`` / ``kq distill``), and the library function
behind them, :func:`prune_and_finetune`.

``kq-prune MODEL.keras --method l1 --ratio 0.5 --out DIR`` removes whole filters with
:func:`keras_quaternion.pruning.prune` and writes the smaller model and the pruning report;
with ``--finetune-epochs N`` it then fine-tunes it with the package's training loop
(:func:`keras_quaternion.training.train`), and with ``--kd`` it fine-tunes with the unpruned model
as teacher (the paper's Prune+KD). ``kq-distill`` trains a registry model from scratch with a
teacher. The feature settings default to those recorded in the ``metrics.json`` that
``kq-train`` wrote next to the model, so fine-tuning sees the data the model was trained on.
See ``docs/compression.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from keras_quaternion.files import atomic_save_model
from keras_quaternion.training.cli import (
    claim_out,
    dataset_cli_options,
    prepare_for_saved_model,
    run_info,
    shared_option,
)
from keras_quaternion.training.recipe import DEFAULT_LR

__all__ = ["distill_command", "prune_and_finetune", "prune_command"]

#: Pruning methods offered by ``--method`` (the same as keras_quaternion.pruning.METHODS).
METHODS = ("operator-norm", "operator-norm-unsigned", "l1", "geometric-median", "random")

#: File names written by kq-prune.
MODEL_FILE = "model.keras"
PRUNED_FILE = "pruned.keras"


def _check_layers(layers):
    if isinstance(layers, str):
        text = layers.strip()
        if text in ("all", "paper"):
            return text
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise ValueError("layers must be 'all', 'paper' or comma-separated layer names.")
        return names
    return list(layers)


def prune_and_finetune(
    model,
    method,
    ratio,
    *,
    out_dir,
    prepared=None,
    finetune_epochs=0,
    kd=False,
    skip=(),
    layers="all",
    residual="group",
    seed=0,
    batch_size=32,
    lr=DEFAULT_LR,
    temperature=2.0,
    alpha=0.5,
    strategy="default",
    model_name=None,
    resume=True,
    verbose=1,
):
    """Prune a trained model, save it with its report, and optionally fine-tune it (with KD).

    Writes into ``out_dir``:

    * ``pruning_report.json`` / ``pruning_report.md`` (:class:`~keras_quaternion.pruning.
      PruningReport`);
    * without fine-tuning: ``model.keras``, the pruned model;
    * with fine-tuning: ``pruned.keras`` (right after pruning) and everything
      :func:`keras_quaternion.training.train` writes: ``model.keras`` (best fine-tuned
      epoch), ``metrics.json`` (kq-train's schema plus a ``"pruning"`` entry), ``history.csv``,
      plots and a resumable checkpoint. Calling again with the same arguments resumes or
      returns the finished result.

    Args:
        model: the trained ``keras.Model`` (functional) or the path of its ``.keras`` file.
        method: ``"operator-norm"``, ``"l1"``, ``"geometric-median"`` or ``"random"``.
        ratio: fraction of filters removed from each pruned layer, in ``[0, 1)``.
        out_dir: output folder (created).
        prepared: :class:`~keras_quaternion.training.PreparedData`; required when
            ``finetune_epochs > 0``.
        finetune_epochs: epochs of fine-tuning (0: prune only).
        kd: fine-tune with the unpruned model as teacher (:class:`~keras_quaternion.distill.
            Distiller`).
        skip, layers, residual, seed: passed to :func:`keras_quaternion.pruning.prune`
            (``layers``: ``"all"``, ``"paper"`` or a list / comma-separated string of names).
        batch_size, lr, temperature, alpha, strategy: fine-tuning settings (see
            :func:`keras_quaternion.training.train`).
        model_name: name recorded in ``metrics.json`` (default ``<model>-<method>-p<ratio>``).
        resume: resume an interrupted fine-tuning in ``out_dir``.
        verbose: 0 silent, 1 or 2 progress (passed to the training loop).

    Returns:
        dict with ``"report"`` (the PruningReport), ``"model"`` (the final ``keras.Model``;
        ``None`` on a non-chief worker, which writes no files),
        ``"model_path"`` and, after fine-tuning, ``"metrics"`` (``metrics.json``'s content),
        ``"before_finetune"`` (test scores right after pruning) and ``"unpruned"`` (test
        scores of the input model).

    Raises:
        ValueError: unknown method, ratio outside ``[0, 1)``, unknown layer names, a layer that
            cannot be pruned, ``kd`` or ``finetune_epochs > 0`` without data, a model that does
            not fit the data.
        FileNotFoundError: a model path that does not exist.

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((8, 8, 4))
        >>> y = QConv2D(4, 3, activation="relu", name="q1")(x)
        >>> y = keras.layers.GlobalAveragePooling2D()(y)
        >>> net = keras.Model(x, keras.layers.Dense(3, activation="softmax")(y))
        >>> result = prune_and_finetune(net, "l1", 0.5, out_dir="pruned", verbose=0)
        >>> result["model"].get_layer("q1").filters, sorted(os.listdir("pruned"))
        (2, ['model.keras', 'pruning_report.json', 'pruning_report.md'])
    """
    from keras_quaternion.pruning import prune
    from keras_quaternion.training.loop import evaluate, load_model

    if isinstance(model, str | os.PathLike):
        model = load_model(model)
    if method not in METHODS:
        raise ValueError(f"Unknown pruning method {method!r}; choose one of {', '.join(METHODS)}.")
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int):
        raise ValueError(f"finetune_epochs must be an integer >= 0, got {finetune_epochs!r}.")
    if finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be >= 0, got {finetune_epochs}.")
    if kd and finetune_epochs == 0:
        raise ValueError(
            "kd=True (--kd) distils while fine-tuning; give finetune_epochs > 0 "
            "(--finetune-epochs N) as well."
        )
    if finetune_epochs and prepared is None:
        raise ValueError(
            "Fine-tuning needs data: pass prepared= (kq-prune: --dataset/--data-dir, or a "
            "metrics.json from kq-train next to the model)."
        )
    frames = prepared.frames if prepared is not None else None
    if frames is None:
        shape = model.input_shape
        frames = shape[1] if isinstance(shape, tuple) and len(shape) == 4 else None
    pruned, report = prune(
        model,
        method,
        ratio,
        skip=tuple(skip),
        layers=_check_layers(layers),
        residual=residual,
        seed=seed,
        frames=frames,
    )
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    report.save(out_dir)
    result = {"report": report}
    if not finetune_epochs:
        result["model_path"] = atomic_save_model(pruned, out_dir / MODEL_FILE)
        result["model"] = pruned
        return result

    from keras_quaternion.training.loop import train

    atomic_save_model(pruned, out_dir / PRUNED_FILE)
    unpruned = evaluate(model, prepared, "test") if prepared.sizes()["test"] else {}
    before = evaluate(pruned, prepared, "test") if prepared.sizes()["test"] else {}
    label = model_name or f"{model.name}-{method}-p{ratio:g}"
    pruning_info = {
        "method": method,
        "ratio": float(ratio),
        "layers": report.layers,
        "residual": residual,
        "skip": list(skip),
        "seed": int(seed),
        "kd": bool(kd),
        "params_before": int(report.params_before[0]),
        "params_after": int(report.params_after[0]),
        "macs_before": report.macs_before,
        "macs_after": report.macs_after,
        "test_unpruned": _scores(unpruned),
        "test_before_finetune": _scores(before),
    }
    metrics = train(
        pruned,
        prepared,
        out_dir=out_dir,
        epochs=finetune_epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        teacher=model if kd else None,
        temperature=temperature,
        alpha=alpha,
        strategy=strategy,
        resume=resume,
        model_name=label,
        verbose=verbose,
        extra_info={"pruning": pruning_info},
    )
    # only the chief worker writes files under a multi-worker strategy
    final = load_model(out_dir / MODEL_FILE) if (out_dir / MODEL_FILE).is_file() else None
    result.update(
        model=final,
        model_path=out_dir / MODEL_FILE,
        metrics=metrics,
        before_finetune=_scores(before),
        unpruned=_scores(unpruned),
    )
    return result


def _scores(evaluation):
    return {k: v for k, v in evaluation.items() if k in ("accuracy", "mAP", "loss")}


# ------------------------------------------------------------------------------ data helpers


def _check_model_file(path, hint):
    if not path.exists():
        raise click.BadParameter(f"'{path}' does not exist.", param_hint=hint)
    if path.is_dir() or path.suffix != ".keras":
        raise click.BadParameter(
            f"'{path}' is not a .keras model file (save models with model.save('x.keras')).",
            param_hint=hint,
        )


def _load(path, hint):
    from keras_quaternion.training.loop import load_model

    _check_model_file(path, hint)
    try:
        return load_model(path)
    except (ValueError, FileNotFoundError) as err:
        raise click.BadParameter(str(err), param_hint=hint) from None


def _fmt_score(metrics):
    test = (metrics or {}).get("test", {})
    name = "mAP" if "mAP" in test else "accuracy"
    value = test.get(name)
    return name, ("n/a" if value is None else f"{value:.4f}")


# ---------------------------------------------------------------------------------- prune

_CTX = {"help_option_names": ["-h", "--help"]}


@click.command(name="prune", context_settings=_CTX)
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
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder.",
)
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
@shared_option("seed", help="Seed of the 'random' method and of fine-tuning.")
@shared_option("strategy")
@click.option("--restart", is_flag=True, help="Discard a fine-tuning checkpoint in --out.")
@shared_option("quiet")
@dataset_cli_options
def prune_command(
    model_path,
    method,
    ratio,
    skip,
    layers,
    residual,
    out_dir,
    dataset,
    finetune_epochs,
    kd,
    temperature,
    alpha,
    batch_size,
    lr,
    seed,
    strategy,
    restart,
    quiet,
    data_dir,
    sample_rate,
    clip_seconds,
    n_mels,
    fold,
    split_protocol,
    options,
    cache_dir,
):
    """Prune whole (quaternion) filters of a trained MODEL (.keras) and rebuild it smaller.

    Writes model.keras, pruning_report.json and pruning_report.md to --out; with
    --finetune-epochs N also fine-tunes (with --kd: distilling from the unpruned MODEL) and
    writes metrics.json (kq-train's schema), history.csv and plots; pruned.keras then holds the
    model right after pruning. Rerun the same command to resume an interrupted fine-tuning.
    """
    _check_model_file(model_path, "MODEL")
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
    claim_out(out_dir, strategy)
    model = _load(model_path, "MODEL")
    prepared = None
    if finetune_epochs:
        _, prepared = prepare_for_saved_model(
            model_path,
            lambda: model,
            dataset=dataset,
            data_dir=data_dir,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            n_mels=n_mels,
            fold=fold,
            split_protocol=split_protocol,
            options=options,
            seed=None,
            cache_dir=cache_dir,
            missing_dataset="--finetune-epochs needs data: give --dataset (and --data-dir); "
            f"there is no metrics.json next to '{model_path}' to read the dataset from.",
            fallback_seed=seed,
            progress=not quiet,
        )
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
            temperature=temperature,
            alpha=alpha,
            strategy=strategy,
            model_name=f"{run_info(model_path).get('model') or model.name}-{method}-p{ratio:g}"
            + ("-kd" if kd else ""),
            resume=not restart,
            verbose=0 if quiet else 1,
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(result["report"].summary())
    if "metrics" in result:
        name, value = _fmt_score(result["metrics"])
        before = result["before_finetune"].get(name)
        unpruned = result["unpruned"].get(name)
        click.echo(
            f"Test {name}: unpruned {unpruned:.4f}, pruned {before:.4f}, fine-tuned {value} "
            f"({result['metrics']['epochs']} epochs{', KD' if kd else ''}, "
            f"{result['metrics']['seconds']:.0f} s) | out: {out_dir}"
        )
    else:
        click.echo(f"Wrote {out_dir / MODEL_FILE} and the pruning report.")


# -------------------------------------------------------------------------------- distill


@click.command(name="distill", context_settings=_CTX)
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
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder.",
)
@click.option("--epochs", type=click.IntRange(1, 100000), default=20, show_default=True)
@shared_option("temperature")
@shared_option(
    "alpha",
    help="Weight of the task loss (1 - alpha weighs the teacher-matching loss).",
)
@shared_option("batch_size")
@shared_option("lr")
@shared_option("seed")
@shared_option("strategy")
@click.option("--restart", is_flag=True, help="Discard a checkpoint in --out.")
@shared_option("quiet")
@dataset_cli_options
def distill_command(
    teacher_path,
    student,
    width,
    dataset,
    out_dir,
    epochs,
    temperature,
    alpha,
    batch_size,
    lr,
    seed,
    strategy,
    restart,
    quiet,
    data_dir,
    sample_rate,
    clip_seconds,
    n_mels,
    fold,
    split_protocol,
    options,
    cache_dir,
):
    """Train the registry model --student from scratch with knowledge distillation from
    --teacher; writes kq-train's outputs (model.keras, metrics.json, ...) to --out."""
    claim_out(out_dir, strategy)
    from keras_quaternion import models

    if student not in models.names():
        raise click.BadParameter(
            f"unknown model {student!r}; known models: {', '.join(models.names())}.",
            param_hint="--student",
        )
    teacher = _load(teacher_path, "--teacher")
    teacher_channels = teacher.input_shape[-1] if isinstance(teacher.input_shape, tuple) else None
    student_channels = models.describe(student).input_channels
    if teacher_channels is not None and teacher_channels != student_channels:
        raise click.UsageError(
            f"The teacher '{teacher_path}' takes {teacher_channels}-channel features but "
            f"{student} takes {student_channels}; distil between models with the same input "
            "(real CNNs: log-mel, 1 channel; quaternion models and mccnn14: 4 channels)."
        )
    _, prepared = prepare_for_saved_model(
        teacher_path,
        lambda: teacher,
        dataset=dataset,
        data_dir=data_dir,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        n_mels=n_mels,
        fold=fold,
        split_protocol=split_protocol,
        options=options,
        seed=None,
        cache_dir=cache_dir,
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
    name, value = _fmt_score(result)
    click.echo(
        f"Test {name} {value} | {student} x{width:g} ({result['params']:,} params) distilled "
        f"from {teacher_path} (T={temperature:g}, alpha={alpha:g}) | {result['epochs']} epochs, "
        f"{result['seconds']:.0f} s | out: {out_dir}"
    )
