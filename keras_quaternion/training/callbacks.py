"""The run's state and the callbacks that act on it after every epoch.

:func:`~keras_quaternion.training.train` drives one ``keras.callbacks.CallbackList`` for the whole
run (``on_train_begin`` once, ``on_epoch_begin`` / ``on_epoch_end`` per epoch, the batch hooks
from inside each epoch, ``on_train_end`` once). Its own steps are callbacks of this module, in
this order, around the caller's ``keras.callbacks.Callback`` objects:

0. :class:`FreezeBody` (``freeze_epochs=N``): trains the output layer alone for N epochs;
1. :class:`KeepBest`: tracks the best validation score and its weights; saves ``model.keras``.
2. the caller's callbacks (``train(..., callbacks=[...])``, e.g. ``keras.callbacks.CSVLogger``);
3. :class:`PlateauSchedule` (``schedule="plateau"``): lowers the learning rate on a plateau;
4. :class:`EarlyStopping` (``early_stopping=N``): stops after N epochs without a better score;
5. :class:`SaveCheckpoint`: writes the resumable checkpoint (:mod:`.checkpoint`);
6. :class:`WriteLogs`: ``history.csv`` and the TensorBoard scalars;
7. :class:`PrintEpoch`: the one-line summary of the epoch.

Every callback reads and updates one :class:`RunState`, which the checkpoint saves, so that a
resumed run continues with the same best model, patience count and learning rate.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np

from keras_quaternion.files import atomic_save_model
from keras_quaternion.training.records import write_csv
from keras_quaternion.training.schedules import plateau_scale

__all__ = [
    "EarlyStopping",
    "FreezeBody",
    "KeepBest",
    "PlateauSchedule",
    "PrintEpoch",
    "RunState",
    "SaveCheckpoint",
    "WriteLogs",
    "check_callbacks",
]


@dataclasses.dataclass
class RunState:
    """What a run has done so far; saved in every checkpoint and restored on resume.

    Attributes:
        history: one row per epoch (training logs, ``val_loss``, ``val_<score>``, ``lr``,
            ``seconds``).
        score_name: ``"accuracy"`` or ``"mAP"``: the validation score that picks the best epoch.
        best_score: the best validation score so far (``None`` before the first epoch).
        best_epoch: its epoch (1-based; 0 before the first epoch).
        best_values: the model variables of that epoch.
        seconds: training time summed over all sessions.
        stopped_early: the run stopped before its last epoch (early stopping or a callback).
        improved: the last epoch was the best so far.

    Example:
        >>> state = RunState(score_name="accuracy")
        >>> state.add({"epoch": 1, "val_accuracy": 0.5, "seconds": 2.0})
        >>> state.epoch, state.seconds, state.score(state.history[-1], has_validation=True)
        (1, 2.0, 0.5)
    """

    score_name: str
    history: list = dataclasses.field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0
    best_values: list | None = None
    seconds: float = 0.0
    stopped_early: bool = False
    improved: bool = False

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.history)

    def add(self, row: dict) -> None:
        """Append an epoch's row and count its seconds."""
        self.history.append(row)
        self.seconds += float(row.get("seconds", 0.0))

    def score(self, row: dict, *, has_validation: bool) -> float:
        """The score that ranks an epoch: its validation score, or its number without one."""
        return float(row[f"val_{self.score_name}"]) if has_validation else float(row["epoch"])

    def record(self) -> dict:
        """The JSON part of the checkpoint (the arrays are saved beside it)."""
        return {
            "epoch": self.epoch,
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "score_name": self.score_name,
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
        }


def check_callbacks(callbacks) -> list:
    """The caller's callbacks as a list, each checked to be a ``keras.callbacks.Callback``.

    Args:
        callbacks: ``None`` or a list/tuple of ``keras.callbacks.Callback``.

    Raises:
        TypeError: not a list, or an item that is not a Keras callback (named by position).

    Example:
        >>> len(check_callbacks([keras.callbacks.TerminateOnNaN()]))
        1
        >>> check_callbacks([print])
        Traceback (most recent call last):
        ...
        TypeError: callbacks[0] is a builtin_function_or_method, not a keras.callbacks.Callback; pass Keras callback objects (e.g. keras.callbacks.CSVLogger('log.csv')), or use on_epoch_end= for a plain function.
    """  # noqa: E501
    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        raise TypeError(
            f"callbacks must be a list of keras.callbacks.Callback objects, got "
            f"{type(callbacks).__name__}."
        )
    for i, item in enumerate(callbacks):
        if not isinstance(item, keras.callbacks.Callback):
            raise TypeError(
                f"callbacks[{i}] is a {type(item).__name__}, not a keras.callbacks.Callback; pass "
                "Keras callback objects (e.g. keras.callbacks.CSVLogger('log.csv')), or use "
                "on_epoch_end= for a plain function."
            )
    return list(callbacks)


class FreezeBody(keras.callbacks.Callback):
    """Train only ``head`` (the new output layer) during the first ``freeze_epochs`` epochs.

    The phase is a function of the epoch number alone, so a run resumed at any epoch (before,
    at or after the boundary) trains the same variables as an uninterrupted one. While frozen,
    every other layer has ``trainable = False``: its weights get no update and its batch
    normalisation runs on (and keeps) its moving statistics. The optimizer was built for every
    variable, so the learning-rate schedule (driven by the optimizer's step counter) runs on
    through the boundary. The flags are set at the start of each epoch and put back at its end,
    so that the models saved after an epoch (``model.keras``) are not frozen; ``reset`` drops
    the trainer's compiled step whenever the phase it was traced in changes.

    Args:
        net: the model being trained.
        head: its output layer (:func:`keras_quaternion.training.transfer.output_layer`).
        freeze_epochs: epochs of head-only training (0: none).
        reset: called with no arguments when the compiled training step must be traced again.
    """

    def __init__(self, net, head, freeze_epochs: int, reset):
        super().__init__()
        self.net, self.head, self.freeze_epochs, self.reset = net, head, freeze_epochs, reset
        self.body = [layer for layer in net.layers if layer is not head]
        self.original = [layer.trainable for layer in self.body]
        self.traced = False  # the phase the compiled step was traced in (first: unfrozen)

    def frozen(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) trains the head alone."""
        return epoch < self.freeze_epochs

    def on_epoch_begin(self, epoch, logs=None):
        frozen = self.frozen(epoch)
        if frozen:
            for layer in self.body:
                layer.trainable = False
        if frozen != self.traced:
            self.reset()
            self.traced = frozen

    def on_epoch_end(self, epoch, logs=None):
        self.on_train_end()

    def on_train_end(self, logs=None):
        for layer, trainable in zip(self.body, self.original):
            layer.trainable = trainable


class KeepBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best validation score (ties: the earlier epoch).

    Without a validation split every epoch is "better" and the last one is kept. With
    ``path``, the chief saves the model there (atomically) each time the best changes.

    Args:
        state: the :class:`RunState`.
        net: the model being trained (not a :class:`~keras_quaternion.distill.Distiller`).
        variables: the model variables to copy (``checkpoint.variable_list``).
        has_validation: whether the data has a validation split.
        path: where to save the best model, or ``None`` (non-chief workers).
        info: the :class:`~keras_quaternion.model_info.ModelInfo` saved inside the model file.
    """

    def __init__(self, state, net, variables, *, has_validation, path=None, info=None):
        super().__init__()
        self.state, self.net, self.variables = state, net, variables
        self.has_validation, self.path, self.info = has_validation, path, info

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        current = state.score(state.history[-1], has_validation=self.has_validation)
        best = state.best_score
        state.improved = best is None or (math.isfinite(current) and current > best)
        if not state.improved:
            return
        state.best_score, state.best_epoch = current, epoch + 1
        state.best_values = [np.array(keras.ops.convert_to_numpy(v)) for v in self.variables]
        if self.path is not None:
            atomic_save_model(self.net, self.path, info=self.info)


class PlateauSchedule(keras.callbacks.Callback):
    """Set the plateau schedule's multiplier from the validation scores so far.

    A function of the history (:func:`~keras_quaternion.training.schedules.plateau_scale`), so
    ``on_train_begin`` restores it on resume.
    """

    def __init__(self, state, schedule):
        super().__init__()
        self.state, self.schedule = state, schedule

    def _apply(self):
        key = f"val_{self.state.score_name}"
        scores = [float(row[key]) for row in self.state.history]
        self.schedule.scale.assign(plateau_scale(scores))

    def on_train_begin(self, logs=None):
        self._apply()

    def on_epoch_end(self, epoch, logs=None):
        self._apply()


class EarlyStopping(keras.callbacks.Callback):
    """Stop after ``patience`` epochs in a row without a better validation score.

    The rule reads only :class:`RunState` (epochs done, best epoch), so it holds across resumes.

    Example:
        >>> state = RunState("accuracy", history=[{}] * 5, best_epoch=2)
        >>> EarlyStopping.due(state, patience=3), EarlyStopping.due(state, patience=4)
        (True, False)
    """

    def __init__(self, state, patience):
        super().__init__()
        self.state, self.patience = state, patience

    @staticmethod
    def due(state, patience) -> bool:
        """Whether the run should stop: ``patience`` epochs since the best one."""
        return patience is not None and state.epoch - state.best_epoch >= patience

    def on_epoch_end(self, epoch, logs=None):
        if self.due(self.state, self.patience):
            self.model.stop_training = True


class SaveCheckpoint(keras.callbacks.Callback):
    """Write the checkpoint after every epoch (the chief only): variables, optimizer, state.

    Args:
        state: the :class:`RunState`.
        checkpointer: a :class:`~keras_quaternion.training.checkpoint.Checkpointer`.
        model_vars, opt_vars: the variables to save (``checkpoint.variable_list``).
        header: the run's fixed entries (``settings``, ``epochs``, ``variables``).
    """

    def __init__(self, state, checkpointer, model_vars, opt_vars, header):
        super().__init__()
        self.state, self.checkpointer, self.header = state, checkpointer, header
        self.model_vars, self.opt_vars = model_vars, opt_vars

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.model, "stop_training", False) and epoch + 1 < self.header["epochs"]:
            self.state.stopped_early = True
        arrays = {}
        for i, v in enumerate(self.model_vars):
            arrays[f"v{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v))
            arrays[f"b{i:05d}"] = self.state.best_values[i]
        for i, v in enumerate(self.opt_vars):
            arrays[f"o{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v))
        record = {**self.header, **self.state.record(), "finished": False}
        self.checkpointer.write(record, arrays)


class WriteLogs(keras.callbacks.Callback):
    """``history.csv`` (rewritten after every epoch) and TensorBoard scalars under ``tb/``."""

    def __init__(self, state, out_dir: Path):
        super().__init__()
        self.state, self.out_dir = state, out_dir
        self.writers = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        tb = self.out_dir / "tb"
        self.writers = {
            split: tf.summary.create_file_writer(str(tb / split))
            for split in ("train", "validation")
        }

    def on_epoch_end(self, epoch, logs=None):
        row = self.state.history[-1]
        write_csv(self.state.history, self.out_dir / "history.csv")
        keys = {
            "train": [k for k in row if not k.startswith("val_") and k != "epoch"],
            "validation": [k for k in row if k.startswith("val_")],
        }
        for split, names in keys.items():
            with self.writers[split].as_default(step=epoch + 1):
                for key in names:
                    _tb_scalar(key.removeprefix("val_"), row[key], epoch + 1)
            self.writers[split].flush()

    def on_train_end(self, logs=None):
        for writer in (self.writers or {}).values():
            writer.close()


class PrintEpoch(keras.callbacks.Callback):
    """Print one line per epoch: its scores, seconds, and ``*best`` when it is the best on
    validation (without a validation split, the last epoch is kept and none is marked)."""

    def __init__(self, state, epochs):
        super().__init__()
        self.state, self.epochs = state, epochs

    def on_epoch_end(self, epoch, logs=None):
        row = self.state.history[-1]
        shown = "  ".join(
            f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")
        )
        validated = any(key.startswith("val_") for key in row)
        mark = "  *best" if self.state.improved and validated else ""
        stop = "  (early stop)" if getattr(self.model, "stop_training", False) else ""
        print(
            f"epoch {epoch + 1}/{self.epochs}  {shown}  lr {row['lr']:.2e}  "
            f"({row['seconds']:.1f} s){mark}{stop}",
            flush=True,
        )


class EpochFunction(keras.callbacks.Callback):
    """Call ``function(epoch, row)`` after each epoch (1-based epoch, the history row)."""

    def __init__(self, state, function):
        super().__init__()
        self.state, self.function = state, function

    def on_epoch_end(self, epoch, logs=None):
        self.function(epoch + 1, self.state.history[-1])


class BatchRelay(keras.callbacks.Callback):
    """Passed to each epoch's ``fit``: forwards its batch hooks to the run's callback list."""

    def __init__(self, callbacks):
        super().__init__()
        self.callbacks = callbacks

    def on_train_batch_begin(self, batch, logs=None):
        self.callbacks.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.callbacks.on_train_batch_end(batch, logs)


def _tb_scalar(tag: str, value: float, step: int) -> None:
    """Write one TensorBoard scalar (what ``tf.summary.scalar`` writes, without needing the
    ``tensorboard`` package installed to write it)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)
