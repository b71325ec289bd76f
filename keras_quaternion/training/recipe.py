"""The training recipe: optimisation settings with their defaults, checked in one place.

:class:`Recipe` holds what :func:`keras_quaternion.training.train` and ``kq-train`` take
about *how* to train (epochs, batch, learning rate and its schedule, early stopping,
augmentation, seed); its defaults are the package's default recipe, chosen on FSDD's
speaker-independent validation split (docs/training.md, "The default recipe").

Example:
    >>> recipe = Recipe(epochs=10, lr=0.003)
    >>> recipe.schedule, recipe.warmup_epochs, recipe.early_stopping
    ('cosine', 1.0, None)
    >>> Recipe(early_stopping=0)
    Traceback (most recent call last):
    ...
    ValueError: early_stopping must be a positive number of epochs (patience) or None (off), got 0.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EMA",
    "DEFAULT_EPOCHS",
    "DEFAULT_FREQ_WARP",
    "DEFAULT_GAIN_DB",
    "DEFAULT_LABEL_SMOOTHING",
    "DEFAULT_LR",
    "DEFAULT_SPEC_AUGMENT",
    "DEFAULT_TIME_SHIFT",
    "DEFAULT_WARMUP_EPOCHS",
    "DEFAULT_WEIGHT_DECAY",
    "FINETUNE_LR",
    "MAX_EMA",
    "MAX_LABEL_SMOOTHING",
    "Recipe",
    "check_positive_int",
]

DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 5e-3
DEFAULT_WARMUP_EPOCHS = 1.0
DEFAULT_SPEC_AUGMENT = True
#: chosen on FSDD's speaker validation split played at other levels (docs/training.md,
#: "Against level differences")
DEFAULT_GAIN_DB = 18.0
DEFAULT_FREQ_WARP = 0.0
DEFAULT_TIME_SHIFT = 0.0
#: chosen on FSDD's speaker validation split (docs/training.md, "Weight decay")
DEFAULT_WEIGHT_DECAY = 0.3
DEFAULT_LABEL_SMOOTHING = 0.0
#: chosen on FSDD's speaker validation split (docs/training.md, "Weight averaging")
DEFAULT_EMA = 0.99
#: Largest ``label_smoothing`` (1 would make every target uniform) and ``ema`` momentum.
MAX_LABEL_SMOOTHING = 0.5
MAX_EMA = 0.9999
#: Largest ``freq_warp`` and ``time_shift`` (fractions of the mel axis and of the frames).
MAX_FREQ_WARP = 0.5
MAX_TIME_SHIFT = 0.5
#: Adam's peak learning rate for fine-tuning a pretrained model (PANNs' fine-tuning rate): the
#: default of ``kq-train --init`` and of a PANNs teacher's fine-tuning
FINETUNE_LR = 1e-4


def check_positive_int(value, name: str) -> int:
    """``value`` as an ``int`` when it is a positive integer; else a ``ValueError`` naming it.

    Example:
        >>> check_positive_int(3, "epochs")
        3
        >>> check_positive_int(2.5, "epochs")
        Traceback (most recent call last):
        ...
        ValueError: epochs must be a positive integer, got 2.5.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _fraction(value, name: str, most: float) -> float:
    """``value`` as a float when it is a number in ``[0, most]``; else a ``ValueError`` naming it.

    Example:
        >>> _fraction(0.15, "freq_warp", 0.5)
        0.15
        >>> _fraction(0.7, "freq_warp", 0.5)
        Traceback (most recent call last):
        ...
        ValueError: freq_warp must be a number in [0, 0.5] (0 = off), got 0.7.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (0 <= value <= most)  # also refuses NaN
    ):
        raise ValueError(f"{name} must be a number in [0, {most}] (0 = off), got {value!r}.")
    return float(value)


#: Learning-rate schedules ``--schedule`` accepts (built by
#: :func:`keras_quaternion.training.schedules.make_schedule`).
SCHEDULES = ("cosine", "constant", "plateau")
DEFAULT_SCHEDULE = "cosine"


def check_schedule(schedule, warmup_epochs, epochs) -> tuple[str, float]:
    """Check a schedule name and its warm-up; return them (the warm-up as a float).

    Args:
        schedule: one of :data:`SCHEDULES`.
        warmup_epochs: epochs of linear warm-up, a number ``>= 0`` (fractions allowed).
        epochs: the run's epochs; the warm-up may not be longer (as long: no decay is left).

    Raises:
        ValueError: an unknown name, a negative or non-numeric warm-up, or a warm-up longer than
            the run.

    Example:
        >>> check_schedule("cosine", 2, epochs=20)
        ('cosine', 2.0)
        >>> check_schedule("linear", 1, epochs=20)
        Traceback (most recent call last):
        ...
        ValueError: schedule='linear' is not a learning-rate schedule; choose one of 'cosine', 'constant', 'plateau'.
        >>> check_schedule("cosine", -1, epochs=20)
        Traceback (most recent call last):
        ...
        ValueError: warmup_epochs must be a number >= 0 (epochs of linear warm-up), got -1.
    """  # noqa: E501
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        allowed = ", ".join(repr(s) for s in SCHEDULES)
        raise ValueError(
            f"schedule={schedule!r} is not a learning-rate schedule; choose one of {allowed}."
        )
    if (
        isinstance(warmup_epochs, bool)
        or not isinstance(warmup_epochs, numbers.Real)
        or not math.isfinite(warmup_epochs)
        or warmup_epochs < 0
    ):
        raise ValueError(
            "warmup_epochs must be a number >= 0 (epochs of linear warm-up), got "
            f"{warmup_epochs!r}."
        )
    if warmup_epochs > epochs:
        raise ValueError(
            f"warmup_epochs={warmup_epochs!r} is longer than the run (epochs={epochs}); use at "
            "most as many warm-up epochs as epochs."
        )
    return schedule, float(warmup_epochs)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train: checked on creation, recorded in ``metrics.json`` and the checkpoint.

    Args:
        epochs: most epochs (a resumed or finished run continues up to this number; the cosine
            schedule decays over this many).
        batch_size: global batch size.
        lr: Adam's peak learning rate.
        schedule: ``"cosine"`` (warm-up, then cosine decay to 1 % of ``lr`` at the last
            epoch), ``"constant"`` (warm-up, then ``lr``) or ``"plateau"`` (warm-up, then
            ``lr`` halved after every 3 epochs without a better validation score); see
            :mod:`keras_quaternion.training.schedules`.
        warmup_epochs: epochs of linear warm-up from ``lr / warm-up steps`` to ``lr``
            (fractions allowed, 0: none, at most ``epochs``).
        early_stopping: stop after this many epochs without a better validation score
            (``None``: train every epoch).
        seed: seeds the weights, the shuffle order, dropout and the augmentation.
        spec_augment: SpecAugment-style masking of training batches (on by default).
        mixup: mixup Beta alpha for training batches (0 = off).
        gain_db: random level change of each training example, as if recorded louder or
            softer: its log-mel moves by a uniform offset in ``[-gain_db, gain_db]`` dB
            (:func:`keras_quaternion.features.change_level`; 0 = off).
        freq_warp: random frequency warping of each training example (like vocal-tract-length
            perturbation): its mel axis is stretched by a factor uniform in
            ``[1 - freq_warp, 1 + freq_warp]`` (0 = off; at most :data:`MAX_FREQ_WARP`).
        time_shift: random shift of each training example by up to this fraction of its
            frames, earlier or later (0 = off; at most :data:`MAX_TIME_SHIFT`).
        weight_decay: decoupled weight decay (AdamW): after each step every kernel shrinks by
            ``weight_decay`` times the step's learning rate (biases and batch-norm scales are
            not decayed; 0 = plain Adam).
        label_smoothing: the training targets mix the true label with the uniform
            distribution by this much: single-label targets become ``1 - s + s / classes``
            for the true class and ``s / classes`` for the others (multi-label: each target
            moves ``s / 2`` towards 0.5); 0 = off, at most :data:`MAX_LABEL_SMOOTHING`.
        ema: momentum of an exponential moving average of the weights (batch-norm statistics
            included), updated after every training step; validation, the kept model and
            ``model.keras`` use the average (0 = off; e.g. 0.99 averages over about the last
            100 steps; at most :data:`MAX_EMA`). The first steps use a smaller momentum,
            ``min(ema, (1 + step) / (10 + step))``, so that the random initial weights fade out.

    Raises:
        ValueError: a setting outside its range (the message names it and what is allowed).
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    schedule: str = DEFAULT_SCHEDULE
    warmup_epochs: float = DEFAULT_WARMUP_EPOCHS
    early_stopping: int | None = None
    seed: int = 0
    spec_augment: bool = DEFAULT_SPEC_AUGMENT
    mixup: float = 0.0
    gain_db: float = DEFAULT_GAIN_DB
    freq_warp: float = DEFAULT_FREQ_WARP
    time_shift: float = DEFAULT_TIME_SHIFT
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING
    ema: float = DEFAULT_EMA

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "epochs", check_positive_int(self.epochs, "epochs"))
        set_(self, "batch_size", check_positive_int(self.batch_size, "batch_size"))
        if not (isinstance(self.lr, numbers.Real) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")
        schedule, warmup = check_schedule(self.schedule, self.warmup_epochs, self.epochs)
        set_(self, "warmup_epochs", warmup)
        if self.early_stopping is not None:
            if (
                isinstance(self.early_stopping, bool)
                or not isinstance(self.early_stopping, int | np.integer)
                or self.early_stopping < 1
            ):
                raise ValueError(
                    "early_stopping must be a positive number of epochs (patience) or None "
                    f"(off), got {self.early_stopping!r}."
                )
            set_(self, "early_stopping", int(self.early_stopping))
        if not (isinstance(self.mixup, numbers.Real) and self.mixup >= 0):
            raise ValueError(f"mixup must be a number >= 0 (0 = off), got {self.mixup!r}.")
        if not (
            isinstance(self.gain_db, numbers.Real)
            and math.isfinite(self.gain_db)
            and self.gain_db >= 0
        ):
            raise ValueError(f"gain_db must be a number >= 0 (dB, 0 = off), got {self.gain_db!r}.")
        if not (
            isinstance(self.weight_decay, numbers.Real)
            and not isinstance(self.weight_decay, bool)
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0
        ):
            raise ValueError(
                "weight_decay must be a number >= 0 (decoupled, times the learning rate; 0 = "
                f"off), got {self.weight_decay!r}."
            )
        set_(self, "weight_decay", float(self.weight_decay))
        set_(self, "freq_warp", _fraction(self.freq_warp, "freq_warp", MAX_FREQ_WARP))
        set_(self, "time_shift", _fraction(self.time_shift, "time_shift", MAX_TIME_SHIFT))
        smoothing = _fraction(self.label_smoothing, "label_smoothing", MAX_LABEL_SMOOTHING)
        set_(self, "label_smoothing", smoothing)
        set_(self, "ema", _fraction(self.ema, "ema", MAX_EMA))
        set_(self, "lr", float(self.lr))
        set_(self, "mixup", float(self.mixup))
        set_(self, "gain_db", float(self.gain_db))
        set_(self, "seed", int(self.seed))
        set_(self, "spec_augment", bool(self.spec_augment))

    @classmethod
    def from_arguments(cls, arguments: dict) -> Recipe:
        """The recipe made of the entries of ``arguments`` named like its fields (e.g. a
        function's ``locals()``); the others are ignored, missing fields keep their defaults.

        Example:
            >>> Recipe.from_arguments({"epochs": 5, "out_dir": "runs"}).epochs
            5
        """
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in arguments.items() if name in names})

    def settings(self) -> dict:
        """The recipe as a JSON-ready dict (``metrics.json`` and the checkpoint's settings).

        ``epochs`` is recorded as ``max_epochs``: ``metrics.json``'s ``epochs`` counts the
        epochs trained, fewer when early stopping ends the run.

        Example:
            >>> settings = Recipe(epochs=5).settings()
            >>> settings["max_epochs"], settings["schedule"], "epochs" in settings
            (5, 'cosine', False)
        """
        settings = dataclasses.asdict(self)
        settings["max_epochs"] = settings.pop("epochs")
        return settings
