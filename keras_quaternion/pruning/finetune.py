"""Prune a trained model, save it with its report, and optionally fine-tune it (with KD).

:func:`prune_and_finetune` is what ``kq-prune`` runs (see ``docs/compression.md``), in named
steps: check the arguments (:func:`_check_arguments`), prune and save the report
(:func:`_prune_and_report`), then either save the pruned model or fine-tune it
(:func:`_finetune`, scoring the model before and after pruning first).
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_quaternion.files import atomic_save_model
from keras_quaternion.model_info import ModelInfo, describe_model
from keras_quaternion.pruning.scores import METHODS

__all__ = ["MODEL_FILE", "PRUNED_FILE", "prune_and_finetune"]

#: File names written by :func:`prune_and_finetune` (and kq-prune).
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
    model_name=None,
    resume=True,
    verbose=1,
    info=None,
    **train_options,
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
        **train_options: fine-tuning settings, passed to
            :func:`keras_quaternion.training.train` with its defaults (``batch_size``, ``lr``,
            ``schedule``, ``weight_decay``, ``spec_augment``, ``temperature``, ``alpha``,
            ``strategy``, ...); not the ones this function sets itself.
        model_name: name recorded in ``metrics.json`` (default ``<model>-<method>-p<ratio>``).
        resume: resume an interrupted fine-tuning in ``out_dir``.
        verbose: 0 silent, 1 or 2 progress (passed to the training loop).
        info: the :class:`~keras_quaternion.model_info.ModelInfo` stored inside the written
            models; default: ``prepared``'s, else the one ``model`` carries when it is a path.

    Returns:
        dict with ``"report"`` (the PruningReport), ``"model"`` (the final ``keras.Model``;
        ``None`` on a non-chief worker, which writes no files), ``"model_path"`` and, after
        fine-tuning, ``"metrics"`` (``metrics.json``'s content), ``"before_finetune"`` and
        ``"unpruned"`` (test scores right after pruning, and of the input model).

    Raises:
        ValueError: unknown method, ratio outside ``[0, 1)``, unknown layer names, a layer that
            cannot be pruned, ``kd`` or ``finetune_epochs > 0`` without data, a model that does
            not fit the data.
        FileNotFoundError: a model path that does not exist.
        TypeError: a ``train_options`` key that :func:`~keras_quaternion.training.train` does
            not take, or one this function sets itself (``epochs``, ``seed``, ``teacher`` ...).

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
    model, info = _model_and_info(model, prepared, info)
    _check_arguments(method, finetune_epochs, kd, prepared)
    _check_train_options(train_options)
    pruned, report, out_dir = _prune_and_report(
        model, method, ratio, out_dir, prepared, skip, layers, residual, seed
    )
    if not finetune_epochs:
        path = atomic_save_model(pruned, out_dir / MODEL_FILE, info=info)
        return {"report": report, "model_path": path, "model": pruned}
    settings = dict(
        train_options,
        prepared=prepared,
        epochs=finetune_epochs,
        seed=seed,
        teacher=model if kd else None,
        resume=resume,
        model_name=model_name or f"{model.name}-{method}-p{ratio:g}",
        verbose=verbose,
    )
    pruning = _pruning_info(method, ratio, report, residual, skip, seed, kd)
    return {"report": report, **_finetune(model, pruned, out_dir, pruning, settings)}


def _model_and_info(model, prepared, info):
    """``(keras.Model, ModelInfo or None)``: the model (loaded from a path) and what the
    pruned model file carries: ``info``, else ``prepared``'s, else the file's own."""
    from keras_quaternion.training.loop import load_model

    if isinstance(model, str | os.PathLike):
        info = info or (describe_model(model) if prepared is None else None)
        model = load_model(model)
    if info is None and prepared is not None:
        info = ModelInfo.from_prepared(prepared)
    return model, info


#: train() arguments prune_and_finetune sets itself (not accepted in ``train_options``)
_SET_HERE = {"model", "prepared", "out_dir", "epochs", "seed", "teacher", "resume", "model_name",
             "verbose", "extra_info"}  # fmt: skip


def _check_train_options(options: dict) -> None:
    """A ``TypeError`` naming the ``train_options`` that :func:`train` does not take here."""
    import inspect

    from keras_quaternion.training.loop import train

    allowed = set(inspect.signature(train).parameters) - _SET_HERE
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(
            f"prune_and_finetune() got unknown fine-tuning options {unknown}; it passes these "
            f"to train(): {', '.join(sorted(allowed))}."
        )


def _check_arguments(method, finetune_epochs, kd, prepared) -> None:
    """The arguments :func:`~keras_quaternion.pruning.prune` does not check itself."""
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


def _prune_and_report(model, method, ratio, out_dir, prepared, skip, layers, residual, seed):
    """Prune ``model``; save the report in ``out_dir`` (created). ``(pruned, report, out_dir)``.

    The frames the MACs are counted for are the data's, else the model's input length.
    """
    from keras_quaternion.pruning.core import prune

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
    return pruned, report, out_dir


def _pruning_info(method, ratio, report, residual, skip, seed, kd) -> dict:
    """The ``"pruning"`` entry of the fine-tuned run's ``metrics.json`` (scores added later)."""
    return {
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
    }


def _finetune(model, pruned, out_dir, pruning_info, settings) -> dict:
    """Save ``pruned``, score both models on the test split, then fine-tune ``pruned``.

    Args:
        model: the unpruned model.
        pruned: the pruned model.
        out_dir: the output folder (a ``Path``).
        pruning_info: :func:`_pruning_info`.
        settings: ``prepared`` and the keyword arguments of
            :func:`keras_quaternion.training.train`.

    Returns:
        ``model`` (the fine-tuned model; ``None`` on a non-chief worker), ``model_path``,
        ``metrics``, ``before_finetune`` and ``unpruned``.
    """
    from keras_quaternion.training.loop import evaluate, load_model, train

    prepared = settings.pop("prepared")
    atomic_save_model(pruned, out_dir / PRUNED_FILE, info=ModelInfo.from_prepared(prepared))
    has_test = bool(prepared.sizes()["test"])
    unpruned = _scores(evaluate(model, prepared, "test") if has_test else {})
    before = _scores(evaluate(pruned, prepared, "test") if has_test else {})
    info = {**pruning_info, "test_unpruned": unpruned, "test_before_finetune": before}
    metrics = train(pruned, prepared, out_dir=out_dir, extra_info={"pruning": info}, **settings)
    # only the chief worker writes files under a multi-worker strategy
    final = load_model(out_dir / MODEL_FILE) if (out_dir / MODEL_FILE).is_file() else None
    return {
        "model": final,
        "model_path": out_dir / MODEL_FILE,
        "metrics": metrics,
        "before_finetune": before,
        "unpruned": unpruned,
    }


def _scores(evaluation):
    return {k: v for k, v in evaluation.items() if k in ("accuracy", "mAP", "loss")}
