"""The resumable training loop: :func:`train`.

:func:`train` trains a registry model (by name) or any ``keras.Model`` on a
:class:`~keras_quaternion.training.pipeline.PreparedData`, optionally distilling from a teacher,
and writes to ``out_dir``:

* ``model.keras``: the model of the epoch with the best validation score;
* ``metrics.json``: ``{"dataset", "model", "params", "macs", "test": {"accuracy"} or {"mAP"},
  "epochs", "seconds", ...}`` (:func:`~keras_quaternion.training.records.run_results`);
* ``history.csv``: one row per epoch (training logs, ``val_loss``, ``val_<score>``, ``lr``,
  seconds);
* ``training_curves.png`` and, for single-label data, ``confusion_matrix.png`` (test split);
* ``tb/``: TensorBoard logs (``tb/train``, ``tb/validation``);
* ``checkpoint/``: the resumable state after every epoch (:mod:`.checkpoint`), so a run killed
  at any moment resumes from the last complete epoch.

A run is five steps, each a function of this module: :func:`_prepare_run` (build the model,
its optimizer and learning-rate schedule, the settings), :func:`_resume` (restore the
checkpoint, or return a finished run's result), :func:`_run_epochs` (the epoch loop, which
drives the callbacks of :mod:`.callbacks`), :func:`_choose_best` (the best epoch's weights) and
:func:`_write_outputs`.

Running the same call again resumes from the checkpoint ("Resuming from epoch N"); a finished run
is not trained again (its ``metrics.json`` is returned); ``resume=False`` starts over.

Distribution: ``strategy="mirrored"`` or ``"multiworker"`` (:mod:`.strategy`); ``batch_size``
is the global batch. Only the chief writes files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_quaternion.files import atomic_save_model, atomic_write
from keras_quaternion.model_info import ModelInfo
from keras_quaternion.training import metrics as kq_metrics
from keras_quaternion.training.averaging import AverageWeights, WeightAverage
from keras_quaternion.training.callbacks import (
    BatchRelay,
    EarlyStopping,
    EpochFunction,
    FreezeBody,
    KeepBest,
    PlateauSchedule,
    PrintEpoch,
    RunState,
    SaveCheckpoint,
    WriteLogs,
    check_callbacks,
)
from keras_quaternion.training.checkpoint import (
    Checkpointer,
    describe_variables,
    restore,
    variable_list,
)
from keras_quaternion.training.evaluation import evaluate, make_forward, predict
from keras_quaternion.training.model_io import (
    build_by_name,
    check_model_fits,
    count_model,
    load_model,
    outputs_are_logits,
)
from keras_quaternion.training.pipeline import PreparedData
from keras_quaternion.training.recipe import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EMA,
    DEFAULT_EPOCHS,
    DEFAULT_FREQ_WARP,
    DEFAULT_GAIN_DB,
    DEFAULT_LABEL_SMOOTHING,
    DEFAULT_LR,
    DEFAULT_SPEC_AUGMENT,
    DEFAULT_TIME_SHIFT,
    DEFAULT_WARMUP_EPOCHS,
    DEFAULT_WEIGHT_DECAY,
    Recipe,
)
from keras_quaternion.training.records import (
    json_float,
    run_results,
    run_settings,
    settings_diff,
)
from keras_quaternion.training.schedules import DEFAULT_SCHEDULE, make_schedule
from keras_quaternion.training.strategy import (
    STRATEGIES,
    is_chief,
    make_strategy,
    strategy_name,
    worker_of,
)
from keras_quaternion.training.transfer import (
    FINETUNE_LR,
    PannsSource,
    check_teacher_features,
    finetune_panns_teacher,
    output_layer,
    pretrained_panns,
)

__all__ = [
    "STRATEGIES",
    "evaluate",
    "is_chief",
    "load_model",
    "make_strategy",
    "predict",
    "train",
]


def train(
    model,
    prepared: PreparedData,
    *,
    out_dir: str | os.PathLike,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    schedule: str = DEFAULT_SCHEDULE,
    warmup_epochs: float = DEFAULT_WARMUP_EPOCHS,
    early_stopping: int | None = None,
    width: float | None = None,
    model_options: dict | None = None,
    seed: int = 0,
    teacher=None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    init=None,
    freeze_epochs: int = 0,
    teacher_epochs: int | None = None,
    teacher_freeze_epochs: int = 0,
    teacher_lr: float = FINETUNE_LR,
    strategy="default",
    resume: bool = True,
    spec_augment: bool = DEFAULT_SPEC_AUGMENT,
    mixup: float = 0.0,
    gain_db: float = DEFAULT_GAIN_DB,
    freq_warp: float = DEFAULT_FREQ_WARP,
    time_shift: float = DEFAULT_TIME_SHIFT,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    ema: float = DEFAULT_EMA,
    model_name: str | None = None,
    verbose: int = 1,
    extra_info: dict | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    callbacks: list | None = None,
) -> dict:
    """Train (or fine-tune) a model and write its artefacts to ``out_dir``; resumable.

    Works the same for a registry model built from its name and for a given ``keras.Model``
    (e.g. a pruned model being fine-tuned, with or without a teacher), so every training in the
    package writes the same outputs.

    Args:
        model: a registry name (``"qcnn6"``, ``"cnn14"``, ... see
            :func:`keras_quaternion.models.names`) or a ``keras.Model`` taking
            ``[frames, mels, 1]`` (real) or ``[frames, mels, 4]`` (quaternion) features and
            ending in a softmax (sigmoid for multi-label data) or in logits.
        prepared: the data (:func:`keras_quaternion.training.prepare`).
        out_dir: output folder (created).
        epochs, batch_size, lr, schedule, warmup_epochs, early_stopping: the optimisation
            settings of the recipe, checked and documented by
            :class:`~keras_quaternion.training.recipe.Recipe` (the defaults are the package's
            default recipe; ``early_stopping`` and the plateau schedule need a validation split).
        spec_augment, mixup, gain_db, freq_warp, time_shift, weight_decay, label_smoothing, ema:
            its augmentation, regularisation and weight averaging, also
            :class:`~keras_quaternion.training.recipe.Recipe` fields.
        width: registry width multiplier (ignored for a ``keras.Model``).
        model_options: extra :func:`keras_quaternion.models.build` arguments for a registry
            name, e.g. ``{"dropout": 0.1}`` or ``{"bn": "quaternion"}``.
        seed: seeds Python, numpy, TensorFlow and Keras (``keras.utils.set_random_seed``), the
            shuffle order and the augmentation; for a ``keras.Model`` passed in, also the
            states of its random layers (dropout), which were drawn when it was built or
            loaded: fine-tuning the same model twice with one seed gives the same run.
        teacher: ``keras.Model`` or ``.keras`` path: distil from it with
            :class:`keras_quaternion.distill.Distiller` (the same input shape as the student,
            or a real 1-channel teacher, which gets the log-mel channel of a quaternion
            student's features); or ``"panns:PATH"``: a PANNs checkpoint, first fine-tuned on
            the data for ``teacher_epochs`` epochs in ``out_dir/teacher``
            (:func:`~keras_quaternion.training.transfer.finetune_panns_teacher`).
        temperature: distillation temperature.
        alpha: distillation weight of the task loss.
        init: ``"panns:PATH"``: start ``model`` (a PANNs architecture name, ``"cnn6"`` ...
            ``"resnet38"``) from that PANNs checkpoint, with a new output layer for the data's
            classes (:func:`~keras_quaternion.training.transfer.pretrained_panns`); the data
            must be prepared with ``FeatureConfig.panns()``.
        freeze_epochs: train only the output layer during the first this many epochs (the
            body frozen, its batch norm on its moving statistics), then everything.
        teacher_epochs: with ``teacher="panns:PATH"``: epochs of fine-tuning the teacher
            (its 527-class AudioSet head does not predict the data's classes); required there.
        teacher_freeze_epochs: of those, how many train the teacher's new head alone.
        teacher_lr: the teacher's fine-tuning peak learning rate.
        strategy: ``"default"``, ``"mirrored"``, ``"multiworker"`` or a ``tf.distribute``
            strategy (create multi-worker strategies with :func:`make_strategy` before any
            TensorFlow work).
        resume: continue from ``out_dir``'s checkpoint when there is one (``False``: start over,
            deleting it).
        model_name: name recorded in ``metrics.json`` (default: the registry name or
            ``model.name``).
        verbose: 0 silent, 1 progress bar + one line per epoch (bar only on a terminal), 2 one
            line per epoch.
        extra_info: extra JSON-serialisable entries for ``metrics.json`` (e.g. pruning settings).
        on_epoch_end: ``function(epoch, row)`` after each epoch (1-based epoch, history row).
        callbacks: ``keras.callbacks.Callback`` objects, called with the run's epoch numbers
            (0-based, continuing after a resume) and logs (the history row: ``loss``,
            ``val_loss``, ``val_accuracy`` or ``val_mAP``, ``lr``, ...); ``self.model`` is the
            model being trained (the :class:`~keras_quaternion.distill.Distiller` with a
            teacher). Setting ``self.model.stop_training = True`` ends the run after that epoch.
            Their own state is not checkpointed: after a resume they start afresh.

    Returns:
        The ``metrics.json`` content plus ``"out_dir"``; ``"resumed_from"`` (epochs already done
        when this call started) and ``"already_finished"`` tell what happened.

    Raises:
        TypeError: ``prepared`` is not a :class:`PreparedData`, ``model`` is neither a
            registry name nor a ``keras.Model``, or a callback is not a Keras callback.
        ValueError: bad arguments (the message names the argument and what is allowed),
            unknown model name, a model that does not fit the data, early stopping or the
            plateau schedule without a validation split, or a checkpoint in ``out_dir``
            written with different settings (the message lists them).
        FileNotFoundError: a teacher path or PANNs checkpoint that does not exist.
        keras_quaternion.models.CheckpointError: a ``panns:`` file that is not a PANNs
            checkpoint of the architecture (the message names the key and expected shape).

    Example:
        >>> data = prepare("synthetic", progress=False)                       # doctest: +SKIP
        >>> result = train("qcnn6", data, width=0.25, epochs=10, out_dir="runs/demo")  # doctest: +SKIP
        >>> result["test"]                                                    # doctest: +SKIP
        {'accuracy': 0.93}
    """
    recipe = Recipe.from_arguments(locals())  # the arguments named like Recipe's fields
    extra = check_callbacks(callbacks)
    _check_data(prepared, recipe)
    transfer = _Transfer.of(model, init, freeze_epochs, recipe)
    teacher = _Teacher.of(teacher, temperature, alpha)
    if teacher is not None and teacher.panns is not None:
        teacher = _panns_teacher(
            teacher,
            prepared,
            recipe,
            out_dir=out_dir,
            epochs=teacher_epochs,
            freeze_epochs=teacher_freeze_epochs,
            lr=teacher_lr,
            strategy=strategy,
            resume=resume,
            verbose=verbose,
        )
    run = _prepare_run(
        model,
        prepared,
        recipe,
        out_dir=out_dir,
        width=width,
        model_options=model_options,
        teacher=teacher,
        transfer=transfer,
        strategy=strategy,
        model_name=model_name,
        verbose=verbose,
    )
    state = _resume(run, resume)
    if isinstance(state, dict):  # a finished run: its metrics.json
        return state
    resumed_from = state.epoch
    _run_epochs(run, state, _callbacks(run, state, extra, on_epoch_end))
    _choose_best(run, state)
    result = _write_outputs(run, state, extra_info)
    return {
        **result,
        "out_dir": str(run.out_dir),
        "already_finished": False,
        "resumed_from": resumed_from,
    }


# ------------------------------------------------------------------------- prepare the run


@dataclasses.dataclass(frozen=True)
class _Teacher:
    """Distillation settings: a teacher model or ``.keras`` path, temperature and alpha.

    ``panns`` is the checkpoint of a ``"panns:PATH"`` teacher (``model`` is then its
    fine-tuned model, once :func:`_panns_teacher` made it); ``extra`` more settings to record.
    """

    model: Any
    temperature: float
    alpha: float
    panns: PannsSource | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, teacher, temperature, alpha):
        if teacher is None:
            return None
        panns = PannsSource.parse(teacher)
        return cls(teacher, float(temperature), float(alpha), panns=panns)

    @property
    def label(self) -> str:
        if self.panns is not None:
            return self.panns.label
        model = self.model
        return str(model) if isinstance(model, str | os.PathLike) else model.name

    def settings(self) -> dict:
        return {
            "teacher": self.label,
            "temperature": self.temperature,
            "alpha": self.alpha,
            **self.extra,
        }


@dataclasses.dataclass(frozen=True)
class _Transfer:
    """Where the weights start (``init``) and how many epochs train the head alone."""

    init: PannsSource | None
    freeze_epochs: int

    @classmethod
    def of(cls, model, init, freeze_epochs, recipe):
        """Checked settings; ``None`` when neither is used."""
        if isinstance(freeze_epochs, bool) or not isinstance(freeze_epochs, int):
            raise ValueError(f"freeze_epochs must be an integer >= 0, got {freeze_epochs!r}.")
        if not 0 <= freeze_epochs <= recipe.epochs:
            raise ValueError(
                f"freeze_epochs={freeze_epochs} must be in 0..epochs={recipe.epochs} (epochs "
                "that train the output layer alone, before the whole model)."
            )
        source = None if init is None else PannsSource.parse(init)
        if init is not None and source is None:
            raise ValueError(
                f"init={init!r}: only PANNs checkpoints can start a model; write init='panns:PATH'."
            )
        if source is not None and not isinstance(model, str):
            raise TypeError(
                f"init='panns:...' builds a registry model: pass its name (cnn6 ... resnet38) "
                f"as model, not a {type(model).__name__}."
            )
        if source is None and not freeze_epochs:
            return None
        return cls(source, int(freeze_epochs))

    def settings(self) -> dict:
        return {
            "init": None if self.init is None else self.init.label,
            "freeze_epochs": self.freeze_epochs or None,
        }


def _panns_teacher(teacher: _Teacher, prepared, recipe, *, out_dir, epochs, **options):
    """``teacher`` with its PANNs checkpoint fine-tuned on ``prepared`` (``out_dir/teacher``)."""
    if epochs is None or isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(
            f"teacher='panns:...' predicts PANNs' 527 AudioSet classes, not the "
            f"{prepared.num_classes} classes of '{prepared.dataset}': pass teacher_epochs >= 1 "
            "(kq-train --teacher-epochs N) to fine-tune it on the data first, or distil from "
            f"a .keras teacher fine-tuned with init='panns:...' (got teacher_epochs={epochs!r})."
        )
    if not 0 <= options["freeze_epochs"] <= epochs:
        raise ValueError(
            f"teacher_freeze_epochs={options['freeze_epochs']!r} must be in 0..teacher_epochs="
            f"{epochs} (epochs that train the teacher's new head alone)."
        )
    model, arch, _ = finetune_panns_teacher(
        teacher.panns,
        prepared,
        out_dir=Path(out_dir).expanduser() / "teacher",
        epochs=epochs,
        batch_size=recipe.batch_size,
        warmup_epochs=min(recipe.warmup_epochs, epochs),
        seed=recipe.seed,
        spec_augment=recipe.spec_augment,
        mixup=recipe.mixup,
        gain_db=recipe.gain_db,
        **options,
    )
    extra = {
        "teacher_model": arch,
        "teacher_epochs": epochs,
        "teacher_freeze_epochs": options["freeze_epochs"] or None,
        "teacher_lr": options["lr"],
    }
    return dataclasses.replace(teacher, model=model, extra=extra)


@dataclasses.dataclass
class _Run:
    """Everything one run works with, built by :func:`_prepare_run`."""

    out_dir: Path
    prepared: PreparedData
    recipe: Recipe
    strategy: Any
    chief: bool
    net: Any
    trainer: Any
    channels: int
    one_hot: bool
    schedule: Any
    settings: dict
    counts: dict
    verbose: int
    steps: int
    model_vars: list
    opt_vars: list
    freeze_epochs: int = 0
    average: WeightAverage | None = None  # the moving average of the weights (recipe.ema)
    forward: Any = None
    eval_forward: Any = None  # the forward pass of eval_net
    step_cache: dict = dataclasses.field(default_factory=dict)  # the multi-worker step function

    @property
    def checkpointer(self) -> Checkpointer:
        return Checkpointer(self.out_dir)

    @property
    def eval_net(self):
        """The model that is validated and kept: the weight average, or the model itself."""
        return self.net if self.average is None else self.average.net

    @property
    def eval_vars(self) -> list:
        """``eval_net``'s variables in the order of ``model_vars``."""
        return self.model_vars if self.average is None else self.average.variables

    @property
    def has_validation(self) -> bool:
        return bool(self.prepared.sizes()["validation"])

    @property
    def score_name(self) -> str:
        return kq_metrics.score_name(self.prepared.multi_label)

    def say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)


def _check_data(prepared, recipe: Recipe) -> None:
    """The data can be trained on with this recipe (a train split; validation when needed)."""
    if not isinstance(prepared, PreparedData):
        raise TypeError(
            f"train: prepared must be a PreparedData (from prepare()), got "
            f"{type(prepared).__name__}."
        )
    sizes = prepared.sizes()
    if not sizes["train"]:
        raise ValueError(f"The train split of '{prepared.dataset}' is empty.")
    if not sizes["validation"]:
        needs = []
        if recipe.early_stopping is not None:
            needs.append(f"early_stopping={recipe.early_stopping}")
        if recipe.schedule == "plateau":
            needs.append("schedule='plateau'")
        if needs:
            raise ValueError(
                f"{' and '.join(needs)} watch the validation score, but the validation split "
                f"of '{prepared.dataset}' is empty; use schedule='cosine' or 'constant' without "
                "early stopping, or data with a validation split."
            )


def _prepare_run(
    model,
    prepared,
    recipe,
    *,
    out_dir,
    width,
    model_options,
    teacher,
    transfer,
    strategy,
    model_name,
    verbose,
) -> _Run:
    """Build the model (and distiller), its optimizer and schedule, and the run's settings."""
    import keras

    label, width, model_options = _model_label(model, model_name, width, model_options)
    if verbose == 1 and not sys.stdout.isatty():
        verbose = 2
    out_dir, strategy, chief = _open_out_dir(out_dir, strategy)
    keras.utils.set_random_seed(recipe.seed)
    steps = max(1, prepared.sizes()["train"] // recipe.batch_size)  # batches drop the remainder
    with strategy.scope():
        net = _build_net(model, prepared, strategy, width, model_options, transfer)
        if not isinstance(model, str) and (transfer is None or transfer.init is None):
            reseed_random_layers(net, recipe.seed)
        channels = check_model_fits(net, prepared)
        trainer = _build_trainer(net, teacher, prepared, strategy)
        schedule, one_hot = _compile(trainer, recipe, steps, prepared, outputs_are_logits(net))
        average = WeightAverage(net, recipe.ema) if recipe.ema else None
    _build_for_multiworker(trainer, strategy, prepared, channels, one_hot)
    trainable, non_trainable, macs = count_model(net, prepared.frames)
    model_settings = {
        "model": label,
        "width": width,
        "model_options": model_options or None,
        "input_shape": list(prepared.input_shape(channels)),
        "params": trainable,
    }
    model_vars, opt_vars = variable_list(net, trainer)
    if average is not None:  # checkpointed with the optimizer's state
        opt_vars += average.variables
    return _Run(
        out_dir=out_dir,
        prepared=prepared,
        recipe=recipe,
        strategy=strategy,
        chief=chief,
        net=net,
        trainer=trainer,
        channels=channels,
        one_hot=one_hot,
        schedule=schedule,
        settings=run_settings(
            model=model_settings,
            data=prepared,
            recipe=recipe,
            teacher=teacher.settings() if teacher is not None else None,
            transfer=transfer.settings() if transfer is not None else None,
        ),
        counts={"params_non_trainable": non_trainable, "macs": macs},
        verbose=verbose,
        steps=steps,
        model_vars=model_vars,
        opt_vars=opt_vars,
        freeze_epochs=transfer.freeze_epochs if transfer is not None else 0,
        average=average,
    )


def _open_out_dir(out_dir, strategy):
    """``(out_dir, strategy, chief)``; the chief creates ``out_dir``."""
    out_dir = Path(out_dir).expanduser()
    strategy = make_strategy(strategy)
    chief = is_chief(strategy)
    if chief:
        out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, strategy, chief


def _model_label(model, model_name, width, model_options):
    """``(label, width, model_options)``: a ``keras.Model`` has no width or build options."""
    import keras

    if isinstance(model, str):
        return model_name or model, width, model_options
    if isinstance(model, keras.Model):
        return model_name or model.name, None, None
    raise TypeError(
        f"train: model must be a registry name or a keras.Model, got {type(model).__name__}."
    )


def _build_net(model, prepared, strategy, width, model_options, transfer):
    """The model to train, with its variables created under ``strategy``."""
    import keras
    import tensorflow as tf

    if transfer is not None and transfer.init is not None:
        return pretrained_panns(
            transfer.init, model, prepared, width=width, model_options=model_options
        )
    if isinstance(model, str):
        return build_by_name(model, prepared, width, model_options)
    if strategy is tf.distribute.get_strategy():
        return model
    net = keras.models.clone_model(model)  # re-create the variables under the strategy
    net.set_weights(model.get_weights())
    return net


def reseed_random_layers(model, seed: int) -> int:
    """Give every random layer of ``model`` (dropout, ...) a generator state drawn from ``seed``.

    Keras draws those states from the process's random state when a layer is built (or a model
    loaded), so a model made outside :func:`train` would drop other units on every call of the
    same script. Returns how many generators were reseeded.

    Example:
        >>> import keras
        >>> x = keras.Input((4,))
        >>> net = keras.Model(x, keras.layers.Dropout(0.5)(keras.layers.Dense(2)(x)))
        >>> reseed_random_layers(net, 0), net.layers[-1].seed_generator.state.numpy().tolist()
        (1, [1826701614, 0])
    """
    import keras
    import numpy as np

    generators = [
        g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", ())
    ]
    states = np.random.default_rng(seed).integers(1, 2**31 - 1, size=len(generators))
    for generator, state in zip(generators, states, strict=True):
        dtype = generator.state.dtype
        generator.state.assign(keras.ops.convert_to_tensor([int(state), 0], dtype=dtype))
    return len(generators)


def _build_trainer(net, teacher, prepared, strategy):
    """``net`` itself, or a :class:`~keras_quaternion.distill.Distiller` around it."""
    import keras
    import tensorflow as tf

    if teacher is None:
        return net
    from keras_quaternion.distill import Distiller

    given = teacher.model
    from_file = isinstance(given, str | os.PathLike)
    if from_file:
        check_teacher_features(given, prepared)
    teacher_model = load_model(given) if from_file else given
    if strategy is not tf.distribute.get_strategy() and not from_file:
        cloned = keras.models.clone_model(teacher_model)
        cloned.set_weights(teacher_model.get_weights())
        teacher_model = cloned
    channels = check_model_fits(teacher_model, prepared, what="teacher")
    student_channels = check_model_fits(net, prepared)
    if (channels, student_channels) == (4, 1):
        raise ValueError(
            f"The teacher {teacher_model.name!r} takes the 4-channel quaternion features but "
            f"the student {net.name!r} only their log-mel channel; distil into a quaternion "
            "student, or from a real (log-mel) teacher."
        )
    return Distiller(
        net,
        teacher_model,
        temperature=teacher.temperature,
        alpha=teacher.alpha,
        multi_label=prepared.multi_label,
    )


def _compile(trainer, recipe, steps, prepared, logits: bool):
    """Compile with Adam (AdamW with weight decay) on the recipe's schedule, the loss and metric.

    Returns ``(schedule, one_hot)``: the learning-rate schedule and whether the training labels
    are one-hot (mixup or label smoothing on single-label data).
    """
    import keras

    schedule = make_schedule(
        recipe.schedule,
        recipe.lr,
        warmup_epochs=recipe.warmup_epochs,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
    )
    smoothing = recipe.label_smoothing
    one_hot = (recipe.mixup > 0 or smoothing > 0) and not prepared.multi_label
    if prepared.multi_label:
        loss = keras.losses.BinaryCrossentropy(from_logits=logits, label_smoothing=smoothing)
        metric = keras.metrics.AUC(curve="PR", multi_label=True, from_logits=logits, name="pr_auc")
    elif one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    trainer.compile(optimizer=_optimizer(schedule, recipe), loss=loss, metrics=[metric])
    if recipe.weight_decay:  # kernels only: not biases, (quaternion) batch-norm parameters
        others = [v for v in trainer.trainable_variables if not v.name.endswith("kernel")]
        trainer.optimizer.exclude_from_weight_decay(var_list=others)
    trainer.optimizer.build(trainer.trainable_variables)
    return schedule, one_hot


def _optimizer(schedule, recipe):
    """Adam on ``schedule``; with the recipe's weight decay, decoupled (AdamW)."""
    import keras

    if recipe.weight_decay:
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(learning_rate=schedule)


def _build_for_multiworker(trainer, strategy, prepared, channels, one_hot) -> None:
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from keras_quaternion.training.multiworker import build_before_fit

        build_before_fit(trainer, strategy, prepared, channels, one_hot)


# ---------------------------------------------------------------------------------- resume


def _resume(run: _Run, resume: bool):
    """The run's state: fresh, or restored from the checkpoint in ``out_dir``.

    Returns the finished run's result (a dict) instead when there is nothing left to do.
    """
    ckpt = run.checkpointer
    if not resume:
        if run.chief and ckpt.folder.exists():
            _delete_outputs(run.out_dir, ckpt)
        return RunState(run.score_name)
    saved = ckpt.read()
    if saved is None:
        return RunState(run.score_name)
    diff = settings_diff(saved.get("settings", {}), run.settings)
    if diff:
        raise ValueError(
            f"{run.out_dir} holds a run with different settings ({'; '.join(diff)}). Give the "
            "settings it started with to resume it, use another out_dir, or resume=False "
            "(--restart) to overwrite it."
        )
    state = _saved_state(run, saved)
    left = _epochs_left(run, state)
    metrics_path = run.out_dir / "metrics.json"
    if not left and saved.get("finished") and metrics_path.is_file():
        how = "Pass --restart (resume=False) to train again"
        how += "." if state.stopped_early else ", or more --epochs to continue."
        stopped = ", stopped early" if state.stopped_early else ""
        run.say(f"{run.out_dir}: this run already finished ({state.epoch} epochs{stopped}); "
                f"nothing to do. {how}")  # fmt: skip
        result = json.loads(metrics_path.read_text(encoding="utf-8"))
        return {
            **result,
            "out_dir": str(run.out_dir),
            "already_finished": True,
            "resumed_from": state.epoch,
        }
    _restore_variables(run, saved, state)
    if left:
        run.say(
            f"Resuming from epoch {state.epoch + 1} (checkpoint after epoch {state.epoch} of "
            f"{run.recipe.epochs})."
        )
    else:
        run.say(f"Training already done ({state.epoch} epochs); finishing the evaluation.")
    return state


def _delete_outputs(out_dir: Path, ckpt: Checkpointer) -> None:
    shutil.rmtree(ckpt.folder)
    for name in ("metrics.json", "history.csv", "model.keras"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "tb", ignore_errors=True)


def _saved_state(run: _Run, saved: dict) -> RunState:
    """The :class:`RunState` recorded in the checkpoint pointer (its arrays not read yet)."""
    return RunState(
        run.score_name,
        history=list(saved["history"]),
        best_score=saved.get("best_score"),
        best_epoch=int(saved.get("best_epoch", 0)),
        seconds=float(saved.get("seconds", 0.0)),
        stopped_early=bool(saved.get("stopped_early", False)),
    )


def _restore_variables(run: _Run, saved: dict, state: RunState) -> None:
    """Put the checkpoint's variables back into the model and optimizer, and the best
    epoch's weights into ``state``."""
    ckpt = run.checkpointer
    arrays = ckpt.arrays(saved)
    with run.strategy.scope():
        restore(run.model_vars, arrays, "v", str(ckpt.folder))
        restore(run.opt_vars, arrays, "o", str(ckpt.folder))
    if any(k.startswith("b") for k in arrays):
        state.best_values = [arrays[f"b{i:05d}"] for i in range(len(run.model_vars))]


def _epochs_left(run: _Run, state: RunState) -> int:
    """Epochs still to train: none after an early stop, or once ``epochs`` are done."""
    if state.stopped_early or EarlyStopping.due(state, run.recipe.early_stopping):
        return 0
    return max(0, run.recipe.epochs - state.epoch)


# ------------------------------------------------------------------------------ the epochs


def _callbacks(run: _Run, state: RunState, extra: list, on_epoch_end):
    """The run's callback list: its own steps around the caller's callbacks (see
    :mod:`keras_quaternion.training.callbacks` for the order)."""
    import keras

    out = run.out_dir
    items = [] if not run.freeze_epochs else [_freeze_body(run)]
    if run.average is not None:
        fresh = state.epoch == 0
        items.append(AverageWeights(run.average, run.trainer.optimizer, fresh=fresh))
    items += [
        KeepBest(
            state,
            run.eval_net,
            run.eval_vars,
            has_validation=run.has_validation,
            path=out / "model.keras" if run.chief else None,
            info=ModelInfo.from_prepared(run.prepared),
        ),
        *extra,
    ]
    if run.recipe.schedule == "plateau":
        items.append(PlateauSchedule(state, run.schedule))
    if run.recipe.early_stopping is not None:
        items.append(EarlyStopping(state, run.recipe.early_stopping))
    if run.chief:
        header = {
            "epochs": run.recipe.epochs,
            "settings": run.settings,
            "variables": describe_variables(run.model_vars),
        }
        items += [
            SaveCheckpoint(state, run.checkpointer, run.model_vars, run.opt_vars, header),
            WriteLogs(state, out),
        ]
    if run.verbose:
        items.append(PrintEpoch(state, run.recipe.epochs))
    if on_epoch_end is not None:
        items.append(EpochFunction(state, on_epoch_end))
    return keras.callbacks.CallbackList(
        items, model=run.trainer, epochs=run.recipe.epochs, steps=run.steps, verbose=0
    )


def _freeze_body(run: _Run) -> FreezeBody:
    """The callback that trains the output layer alone for the first ``freeze_epochs``."""

    def reset():  # trace the training step again: it reads the trainable variables once
        run.trainer.train_function = None
        run.step_cache.clear()

    return FreezeBody(run.net, output_layer(run.net), run.freeze_epochs, reset)


def _run_epochs(run: _Run, state: RunState, callbacks) -> None:
    """Train epoch after epoch until ``epochs`` or a stop; each epoch ends with the callbacks."""
    run.forward = make_forward(run.net)
    run.eval_forward = run.forward if run.average is None else make_forward(run.eval_net)
    if _epochs_left(run, state) == 0:
        return
    data = run.prepared
    channels = f"{run.channels}-channel input {data.input_shape(run.channels)}"
    start = f" from {run.settings['init']}" if run.settings.get("init") else ""
    frozen = run.freeze_epochs
    head = f"; the first {frozen} train the output layer alone" if frozen else ""
    run.say(
        f"Training {run.settings['model']}{start} ({run.settings['params']:,} trainable params, "
        f"{channels}) on {data.dataset} ({data.sizes()}) for {run.recipe.epochs} epochs{head}, "
        f"{run.strategy.num_replicas_in_sync} replica(s); writing to {run.out_dir}"
    )
    run.trainer.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(state.epoch, run.recipe.epochs):
        start = time.time()
        callbacks.on_epoch_begin(epoch)
        row = {"epoch": epoch + 1, **_train_epoch(run, epoch, callbacks), **_validate(run)}
        row["lr"] = _current_lr(run.trainer.optimizer)
        row["seconds"] = round(time.time() - start, 3)
        state.add(row)
        callbacks.on_epoch_end(epoch, dict(row))
        if run.trainer.stop_training:
            break
    callbacks.on_train_end()


def _train_epoch(run: _Run, epoch: int, callbacks) -> dict:
    """One pass over the (shuffled, augmented) training split; returns the training logs."""
    import tensorflow as tf

    recipe = run.recipe
    multiworker = isinstance(run.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    dataset = run.prepared.tf_dataset(
        "train",
        recipe.batch_size,
        channels=run.channels,
        seed=recipe.seed,
        epoch=epoch,
        spec_augment=recipe.spec_augment,
        mixup=recipe.mixup,
        one_hot=run.one_hot,
        drop_remainder=True,
        gain_db=recipe.gain_db,
        freq_warp=recipe.freq_warp,
        time_shift=recipe.time_shift,
        worker=worker_of(run.strategy) if multiworker else None,  # this worker's shards
    )
    progress = run.verbose == 1
    if multiworker:
        from keras_quaternion.training.multiworker import run_epoch

        return run_epoch(
            run.trainer, run.strategy, dataset, run.steps, run.step_cache, progress, callbacks
        )
    fit = run.trainer.fit(
        dataset,
        epochs=epoch + 1,
        initial_epoch=epoch,
        verbose=1 if progress else 0,
        shuffle=False,
        callbacks=[BatchRelay(callbacks)],
    )
    return {key: float(values[-1]) for key, values in fit.history.items()}


def _validate(run: _Run) -> dict:
    """``{"val_loss", "val_<score>"}`` of ``run.eval_net`` on the validation split (``{}``
    without one)."""
    if not run.has_validation:
        return {}
    data = run.prepared
    y = data.labels["validation"]
    probs = predict(run.eval_net, data, "validation", forward=run.eval_forward)
    return {
        "val_loss": kq_metrics.cross_entropy(y, probs, data.multi_label),
        f"val_{run.score_name}": kq_metrics.score(y, probs, data.multi_label)[run.score_name],
    }


def _current_lr(optimizer) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


# ---------------------------------------------------------------------- the best and outputs


def _choose_best(run: _Run, state: RunState) -> None:
    """Give the model the weights of the epoch with the best validation score."""
    if state.best_values is None:
        return
    with run.strategy.scope():
        for variable, value in zip(run.model_vars, state.best_values):
            variable.assign(value)


def _score(run: _Run, split: str):
    """``(scores, confusion matrix or None)`` of the model as it is now on ``split``.

    The scores are ``{"accuracy" or "mAP", "loss"}``, or ``{}`` for an empty split.
    """
    data = run.prepared
    y = data.labels[split]
    if not len(y):
        return {}, None
    probs = predict(run.net, data, split, forward=run.forward or make_forward(run.net))
    scores = kq_metrics.score(y, probs, data.multi_label)
    scores["loss"] = kq_metrics.cross_entropy(y, probs, data.multi_label)
    cm = None if data.multi_label else kq_metrics.confusion_matrix(y, probs, data.num_classes)
    return scores, cm


def _write_outputs(run: _Run, state: RunState, extra_info) -> dict:
    """Score the test and training splits and write ``metrics.json`` and the plots (the chief
    only). The training split is scored as it is, without augmentation, to show underfitting."""
    test, cm = _score(run, "test")
    fit, _ = _score(run, "train")
    progress = {
        "epochs": state.epoch,
        "seconds": state.seconds,
        "best_epoch": state.best_epoch,
        "best_score": state.best_score,
        "score_name": run.score_name,
        "stopped_early": state.stopped_early,
    }
    extra = {
        **run.counts,
        "strategy": strategy_name(run.strategy),
        "replicas": int(run.strategy.num_replicas_in_sync),
        **(extra_info or {}),
    }
    result = run_results(
        run.settings, data=run.prepared, progress=progress, test=test, train=fit, extra=extra
    )
    if not run.chief:
        return result
    out = run.out_dir
    if state.best_values is not None and not (out / "model.keras").is_file():
        atomic_save_model(run.net, out / "model.keras", info=ModelInfo.from_prepared(run.prepared))
    atomic_write(out / "metrics.json", json.dumps(result, indent=1, default=json_float) + "\n")
    _plot(run, state, test, cm)
    ckpt = run.checkpointer
    if ckpt.pointer.is_file():
        ckpt.mark_finished(ckpt.read())
    return result


def _plot(run: _Run, state: RunState, test: dict, cm) -> None:
    from keras_quaternion.training.plots import plot_confusion_matrix, plot_training_curves

    title = f"{run.settings['model']} on {run.prepared.dataset}"
    path = run.out_dir / "training_curves.png"
    plot_training_curves(state.history, path, score_name=run.score_name, title=title)
    if cm is not None:
        acc = test.get("accuracy", float("nan"))
        plot_confusion_matrix(
            cm,
            run.prepared.class_names,
            run.out_dir / "confusion_matrix.png",
            title=f"{title}: test accuracy {acc:.3f}",
        )
