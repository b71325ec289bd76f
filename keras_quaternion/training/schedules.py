"""Learning-rate schedules: linear warm-up, then cosine decay, a constant rate, or a rate halved
when the validation score stops improving.

Every schedule is a function of the optimizer's step counter (``optimizer.iterations``), which
each checkpoint saves with the other optimizer variables, so a resumed run continues the schedule
exactly where it stopped; it is evaluated inside the training step, so it works the same under
every ``tf.distribute`` strategy. The plateau schedule's reductions are a function of the
validation scores so far (:func:`plateau_scale`), recomputed from the run's history on resume.

* ``"cosine"`` (default): ``lr * min(1, (step + 1) / warmup_steps)`` during the warm-up, then
  ``lr * (f + (1 - f) * (1 + cos(pi * t)) / 2)`` with ``t`` going from 0 to 1 over the remaining
  steps of the run and ``f = FINAL_FRACTION``.
* ``"constant"``: the warm-up, then ``lr``.
* ``"plateau"``: the warm-up, then ``lr`` times ``PLATEAU_FACTOR`` for every ``PLATEAU_PATIENCE``
  epochs without a better validation score, down to ``FINAL_FRACTION * lr``.

Example:
    >>> schedule = make_schedule("cosine", 0.01, warmup_epochs=1, epochs=4, steps_per_epoch=10)
    >>> [round(float(schedule(step)), 5) for step in (0, 9, 10, 25, 39)]
    [0.001, 0.01, 0.01, 0.00478, 0.0001]
"""

from __future__ import annotations

import math

import keras

from keras_quaternion.training.recipe import DEFAULT_SCHEDULE, SCHEDULES, check_schedule

__all__ = [
    "DEFAULT_SCHEDULE",
    "FINAL_FRACTION",
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "SCHEDULES",
    "WarmupSchedule",
    "check_schedule",
    "make_schedule",
    "plateau_scale",
]

#: The cosine schedule ends at this fraction of the peak rate; the plateau schedule stops there.
FINAL_FRACTION = 0.01
#: The plateau schedule multiplies the rate by this ...
PLATEAU_FACTOR = 0.5
#: ... after this many epochs without a better validation score.
PLATEAU_PATIENCE = 3


@keras.saving.register_keras_serializable(package="keras_quaternion")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then cosine decay or a constant rate, times ``scale``.

    Args:
        peak: the rate after the warm-up.
        warmup_steps: steps of linear warm-up (0: none).
        total_steps: the run's steps; the cosine decay reaches ``final_fraction * peak`` there
            and stays there.
        decay: ``"cosine"`` or ``"constant"``.
        final_fraction: the end of the cosine decay, as a fraction of ``peak``.
        scale: ``None``, or a variable multiplying the rate (the plateau schedule's reductions;
            created by :func:`make_schedule`).

    Example:
        >>> warm = WarmupSchedule(1.0, warmup_steps=4, total_steps=8, decay="constant")
        >>> [float(warm(step)) for step in range(6)]
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        peak,
        warmup_steps,
        total_steps,
        decay="cosine",
        final_fraction=FINAL_FRACTION,
        scale=None,
    ):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.final_fraction = float(final_fraction)
        self.scale = scale

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.peak, "float32")
        if self.warmup_steps > 0:
            rate = rate * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        if self.decay == "cosine":
            span = float(max(1, self.total_steps - self.warmup_steps - 1))  # floor: last step
            t = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
            f = self.final_fraction
            rate = rate * (f + (1.0 - f) * 0.5 * (1.0 + ops.cos(math.pi * t)))
        if self.scale is not None:
            rate = rate * ops.cast(self.scale, "float32")
        return rate

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "final_fraction": self.final_fraction,
        }


def make_schedule(name, lr, *, warmup_epochs, epochs, steps_per_epoch) -> WarmupSchedule:
    """The learning-rate schedule ``name`` for a run of ``epochs * steps_per_epoch`` steps.

    Call it under the distribution strategy's scope: the plateau schedule creates its ``scale``
    variable (1.0 until :func:`plateau_scale` lowers it).

    Args:
        name: ``"cosine"``, ``"constant"`` or ``"plateau"`` (:data:`SCHEDULES`).
        lr: the peak rate (reached after the warm-up).
        warmup_epochs: epochs of linear warm-up (fractions allowed).
        epochs: the run's epochs: the cosine decay ends with the last one.
        steps_per_epoch: optimizer steps per epoch.

    Returns:
        A :class:`WarmupSchedule` for ``keras.optimizers.Adam(learning_rate=...)``.

    Raises:
        ValueError: see :func:`check_schedule`.

    Example:
        >>> plateau = make_schedule("plateau", 0.1, warmup_epochs=0, epochs=5, steps_per_epoch=3)
        >>> _ = plateau.scale.assign(0.5)
        >>> round(float(plateau(7)), 4)
        0.05
    """
    name, warmup_epochs = check_schedule(name, warmup_epochs, epochs)
    scale = None
    if name == "plateau":
        scale = keras.Variable(1.0, dtype="float32", trainable=False, name="lr_scale")
    return WarmupSchedule(
        lr,
        warmup_steps=int(round(warmup_epochs * steps_per_epoch)),
        total_steps=epochs * steps_per_epoch,
        decay="cosine" if name == "cosine" else "constant",
        scale=scale,
    )


def plateau_scale(scores, *, patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR) -> float:
    """The plateau schedule's multiplier after the epochs whose validation scores are given.

    The rate is multiplied by ``factor`` whenever ``patience`` epochs in a row bring no score
    higher than the best so far (the count restarts after each reduction), and never goes below
    :data:`FINAL_FRACTION`. A function of the scores alone, so a resumed run recomputes it.

    Args:
        scores: validation scores, one per epoch, in order (higher is better).
        patience: epochs without improvement before a reduction.
        factor: the multiplier of each reduction, in ``(0, 1)``.

    Returns:
        The multiplier, ``1.0`` down to ``FINAL_FRACTION``.

    Example:
        >>> plateau_scale([0.5, 0.6, 0.6, 0.6, 0.6, 0.7], patience=3)
        0.5
        >>> plateau_scale([0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], patience=3)
        0.25
    """
    scale, best, waited = 1.0, -math.inf, 0
    for score in scores:
        if score > best:
            best, waited = score, 0
            continue
        waited += 1
        if waited >= patience:
            scale, waited = max(FINAL_FRACTION, scale * factor), 0
    return scale
