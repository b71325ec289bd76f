"""``kq-train --init panns:PATH`` / ``--teacher panns:PATH``: the checks and settings they need.

:class:`PannsPlan` turns the command line into :func:`keras_quaternion.training.train`'s
``init``, ``freeze_epochs``, ``teacher_epochs`` and ``teacher_freeze_epochs``, PANNs' feature
configuration and the fine-tuning learning rate, and stops with a usage error before any slow
work when they do not fit together (see ``docs/transfer.md``). Importing this module imports
no TensorFlow (``kq-train --help`` stays fast); the checkpoint is read when the plan is made.
"""

from __future__ import annotations

import dataclasses

import click

from keras_quaternion.training.recipe import FINETUNE_LR

__all__ = ["FINETUNE_LR", "PANNS_ARCHITECTURES", "PannsPlan"]

#: the registry's real models that PANNs checkpoints load into (``from_panns``'s ``model``)
PANNS_ARCHITECTURES = ("cnn6", "cnn10", "cnn14", "resnet22", "resnet38")
_PANNS_RATE, _PANNS_MELS = 32000, 64


def _source(value, option):
    """The :class:`~keras_quaternion.training.transfer.PannsSource` of ``panns:PATH``, its
    file read (a usage error naming ``option`` otherwise); ``None`` for another value."""
    from keras_quaternion.models import CheckpointError
    from keras_quaternion.training.transfer import PannsSource

    try:
        source = PannsSource.parse(value)
        if source is not None:
            source.state_dict()  # a missing file or not a PANNs checkpoint: stop now
    except (ValueError, FileNotFoundError) as err:
        kind = "" if isinstance(err, CheckpointError | FileNotFoundError) else "Bad value: "
        raise click.BadParameter(f"{kind}{err}", param_hint=option) from None
    return source


@dataclasses.dataclass(frozen=True)
class PannsPlan:
    """The PANNs part of a ``kq-train`` command (empty when neither option names one).

    Attributes:
        init: the ``--init`` checkpoint (a ``PannsSource``), or ``None``.
        teacher: the ``--teacher panns:`` checkpoint, or ``None``.
        width: ``--width`` as given (``None``: the checkpoint's).
    """

    init: object = None
    teacher: object = None
    width: float | None = None

    @classmethod
    def of(cls, model, width, init, teacher, data) -> PannsPlan:
        """Check ``--init``/``--teacher`` against ``--model``, ``--width`` and the data options.

        Raises:
            click.UsageError: ``--init`` without a PANNs architecture as ``--model``, or
                ``--sample-rate`` / ``--n-mels`` other than PANNs'.
            click.BadParameter: ``--init`` not ``panns:PATH``, a missing file, a file that is
                not a PANNs checkpoint, or a checkpoint that does not fit ``--model`` (the key
                and the expected shape).
        """
        if init is None and (teacher is None or not str(teacher).startswith("panns:")):
            return cls()
        plan = cls(_source(init, "--init"), _source(teacher, "--teacher"), width)
        if init is not None and plan.init is None:
            raise click.BadParameter(
                f"{init!r} is not panns:PATH; --init starts a model from a PANNs checkpoint "
                "(e.g. --init panns:Cnn14_mAP=0.431.pth).",
                param_hint="--init",
            )
        plan._check_model(model)
        plan._check_teacher()
        plan._check_features(data)
        return plan

    def _check_teacher(self) -> None:
        if self.teacher is None:
            return
        from keras_quaternion.training.transfer import panns_architecture

        try:  # the architecture is told from the keys: one PANNs trained
            panns_architecture(self.teacher.state_dict())
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--teacher") from None

    def _check_model(self, model) -> None:
        if self.init is None:
            return
        if model not in PANNS_ARCHITECTURES:
            choices = ", ".join(PANNS_ARCHITECTURES)
            given = "no --model" if model is None else f"--model {model}"
            raise click.UsageError(
                f"--init panns:PATH loads PANNs' real architectures ({choices}); {given} is not "
                "one of them. Name the checkpoint's architecture with --model; a quaternion "
                "model learns from a PANNs checkpoint by distillation (--teacher panns:PATH)."
            )
        from keras_quaternion.models import from_panns

        try:  # the architecture's shapes, checked before the data is prepared
            from_panns({"model": self.init.state_dict()}, model=model)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--init") from None

    def _check_features(self, data) -> None:
        uses = "--init" if self.init is not None else "--teacher panns:PATH"
        for option, given, panns in (
            ("--sample-rate", data.sample_rate, _PANNS_RATE),
            ("--n-mels", data.n_mels, _PANNS_MELS),
        ):
            if given is not None and given != panns:
                raise click.UsageError(
                    f"{uses} uses the features PANNs was trained on ({_PANNS_RATE} Hz, "
                    f"{_PANNS_MELS} mel bands; clips are resampled): {option} {given} conflicts "
                    f"with PANNs' {panns}. Leave {option} out."
                )

    def train_options(self, model, *, epochs, freeze_epochs, teacher_epochs) -> dict:
        """``train()``'s transfer arguments, checked against ``--epochs``.

        Raises:
            click.UsageError: ``--freeze-epochs`` or ``--teacher-epochs`` without a PANNs
                checkpoint to use them, or ``--teacher panns:`` without ``--teacher-epochs``.
            click.BadParameter: more frozen epochs than epochs.
        """
        if freeze_epochs and self.init is None and self.teacher is None:
            raise click.UsageError(
                "--freeze-epochs trains a new output layer alone: it needs --init panns:PATH or "
                "--teacher panns:PATH."
            )
        if teacher_epochs is not None and self.teacher is None:
            raise click.UsageError("--teacher-epochs fine-tunes a --teacher panns:PATH.")
        options = {}
        if self.init is not None:
            _check_frozen(freeze_epochs, epochs, "--epochs")
            options.update(init=self.init, freeze_epochs=freeze_epochs)
        if self.teacher is not None:
            if teacher_epochs is None:
                raise click.UsageError(
                    "--teacher panns:PATH predicts PANNs' 527 AudioSet classes, not the "
                    "dataset's: add --teacher-epochs N to fine-tune it on the dataset first (or "
                    "pass a .keras teacher fine-tuned with --init)."
                )
            _check_frozen(freeze_epochs, teacher_epochs, "--teacher-epochs")
            options.update(teacher_epochs=teacher_epochs, teacher_freeze_epochs=freeze_epochs)
        return options

    def learning_rate(self, lr: float) -> float:
        """``--lr``, or :data:`FINETUNE_LR` for ``--init`` when ``--lr`` was not given."""
        ctx = click.get_current_context(silent=True)
        given = ctx is not None and ctx.get_parameter_source("lr") not in (
            click.core.ParameterSource.DEFAULT,
            None,
        )
        if self.init is None or given:
            return lr
        click.echo(f"Note: --init fine-tunes at --lr {FINETUNE_LR:g} (give --lr to change it).")
        return FINETUNE_LR

    def feature_config(self):
        """``FeatureConfig.panns()`` when a PANNs checkpoint is used, else ``None``."""
        if self.init is None and self.teacher is None:
            return None
        from keras_quaternion.features import FeatureConfig

        return FeatureConfig.panns()


def _check_frozen(freeze_epochs, epochs, option) -> None:
    if freeze_epochs > epochs:
        raise click.BadParameter(
            f"{freeze_epochs} frozen epochs is more than {option} {epochs}.",
            param_hint="--freeze-epochs",
        )
