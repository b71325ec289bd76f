"""An exponential moving average of a model's weights, kept in a twin model (``--ema``).

:class:`WeightAverage` clones the model being trained; after every training step each float
variable of the twin (weights and batch-norm statistics) moves towards the model's:
``average = m * average + (1 - m) * value``, with the momentum ``m = min(ema, (1 + step) /
(10 + step))`` (``step``: the optimizer's iterations), so that the first steps' random weights
fade out quickly. The training loop validates and keeps the twin; the model itself trains on
unchanged. The twin's variables go into the checkpoint with the optimizer's, so a resumed run
continues the same average.

Example:
    >>> import keras, numpy as np
    >>> x = keras.Input((2,))
    >>> net = keras.Model(x, keras.layers.Dense(1, kernel_initializer="ones")(x))
    >>> average = WeightAverage(net, 0.9)
    >>> _ = net.layers[1].kernel.assign(np.zeros((2, 1)))
    >>> average.update(step=1000)  # momentum 0.9: 90 % of the old average (ones), 10 % zeros
    >>> [round(float(w), 3) for w in keras.ops.convert_to_numpy(average.net.layers[1].kernel).ravel()]
    [0.9, 0.9]
"""

from __future__ import annotations

import keras
import numpy as np

from keras_quaternion.training.checkpoint import model_variables

__all__ = ["AverageWeights", "WeightAverage", "momentum_at"]


def momentum_at(ema: float, step) -> float:
    """The averaging momentum after ``step`` training steps: ``min(ema, (1 + step) / (10 + step))``.

    Example:
        >>> momentum_at(0.99, 0), momentum_at(0.99, 90), momentum_at(0.99, 10_000)
        (0.1, 0.91, 0.99)
    """
    return min(float(ema), (1.0 + float(step)) / (10.0 + float(step)))


class WeightAverage:
    """The moving average of ``net``'s float variables, held in a clone of ``net``.

    Create it under the strategy's scope (the twin's variables are then mirrored like the
    model's). ``variables`` lists the twin's variables in the order of ``net.weights`` followed
    by its other variables (:func:`~keras_quaternion.training.checkpoint.model_variables`, the
    checkpoint's order), so that they can be saved with the checkpoint and copied into ``net`` by position.

    Args:
        net: the model being trained (any Keras model that ``keras.models.clone_model``
            can rebuild from its config).
        ema: the momentum, in ``(0, 1)``.

    Raises:
        ValueError: the model does not rebuild from its config (``clone_model`` fails or gives
            other variables); the message says to train with ``ema=0``.
    """

    def __init__(self, net, ema: float):
        self.ema = float(ema)
        self.net = _twin(net)
        self.variables = model_variables(self.net)
        sources = model_variables(net)
        self.net.set_weights(net.get_weights())
        pairs = [(a, v) for a, v in zip(self.variables, sources) if _is_float(v)]
        self._pairs = pairs
        self._update = _update_function(pairs)

    def update(self, step) -> None:
        """Move the average towards the model's current values (after training step ``step``)."""
        self._update(np.float32(momentum_at(self.ema, step)))

    def reset(self) -> None:
        """Make the average equal to the model (a fresh run's start)."""
        for average, value in self._pairs:
            average.assign(value)


def _twin(net):
    """A clone of ``net`` with the same variables; a ``ValueError`` saying what to do if the
    model does not rebuild from its config."""
    error = None
    try:
        twin = _clone(net)
    except (NotImplementedError, TypeError, ValueError) as err:
        twin, error = None, err
    shapes = [tuple(v.shape) for v in model_variables(net)]
    if twin is None or shapes != [tuple(v.shape) for v in model_variables(twin)]:
        why = "" if error is None else f" ({type(error).__name__}: {_first_line(error)})"
        raise ValueError(
            f"ema: model '{net.name}' does not rebuild from its config (keras.models.clone_model "
            f"fails or gives other variables{why}), so its weights cannot be averaged in a twin; "
            "train it with ema=0 (--ema 0), or give its layers a get_config() that rebuilds them."
        ) from error
    return twin


def _first_line(error: Exception) -> str:
    """The first non-empty line of an exception's message (Keras' can run to a page)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def _clone(net):
    """``net`` rebuilt from its config (new variables), its input layers keeping their names
    (``clone_model`` would name them after their tensors)."""
    inputs = [layer for layer in net.layers if isinstance(layer, keras.layers.InputLayer)]
    if not inputs or len(inputs) != len(getattr(net, "inputs", None) or []):
        return keras.models.clone_model(net)
    tensors = [keras.Input(batch_shape=i.batch_shape, dtype=i.dtype, name=i.name) for i in inputs]
    return keras.models.clone_model(net, input_tensors=tensors[0] if len(tensors) == 1 else tensors)


def _is_float(variable) -> bool:
    return "float" in str(getattr(variable.dtype, "name", variable.dtype))


def _update_function(pairs):
    """One compiled step that moves every average towards its variable."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def update(momentum):
        for average, value in pairs:
            m = tf.cast(momentum, average.dtype)
            average.assign(m * average + (1 - m) * tf.convert_to_tensor(value))

    return update


class AverageWeights(keras.callbacks.Callback):
    """Update a :class:`WeightAverage` after every training batch.

    Args:
        average: the :class:`WeightAverage`.
        optimizer: the optimizer whose ``iterations`` count the steps (restored on resume).
        fresh: whether the run starts from its first epoch (then the average starts as a copy
            of the model; a resumed run has it from the checkpoint).
    """

    def __init__(self, average: WeightAverage, optimizer, *, fresh: bool):
        super().__init__()
        self.average, self.optimizer, self.fresh = average, optimizer, fresh

    def on_train_begin(self, logs=None):
        if self.fresh:
            self.average.reset()

    def on_train_batch_end(self, batch, logs=None):
        self.average.update(keras.ops.convert_to_numpy(self.optimizer.iterations))
