"""Options several ``kq-*`` commands share, and the dataset options as one object.

* :data:`SHARED_OPTIONS` / :func:`shared_option`: an option spelt and checked the same way in
  every command (``--lr``, ``--batch-size``, ``--seed``, ...), with per-command defaults or help;
* :func:`dataset_options`: the decorator adding the dataset options (``--data-dir``,
  ``--sample-rate``, ``--clip-seconds``, ``--n-mels``, ``--fold``, ``--split``, ``--option``,
  ``--cache-dir``, ``--download``, ``--cache-format``, ``--shard-size``, ``--workers``) and
  passing them, with the command's ``--dataset``, as ONE
  :class:`~keras_quaternion.training.dataset_options.DatasetOptions` argument ``data``;
* :func:`check_model_file` / :func:`load_model_argument`: a ``.keras`` model given on the
  command line.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from keras_quaternion.training.dataset_options import DatasetOptions
from keras_quaternion.training.recipe import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EMA,
    DEFAULT_GAIN_DB,
    DEFAULT_LABEL_SMOOTHING,
    DEFAULT_LR,
    DEFAULT_SCHEDULE,
    DEFAULT_WARMUP_EPOCHS,
    DEFAULT_WEIGHT_DECAY,
    MAX_EMA,
    MAX_LABEL_SMOOTHING,
    SCHEDULES,
)

__all__ = [
    "CONTEXT",
    "SHARED_OPTIONS",
    "check_model_file",
    "dataset_options",
    "load_model_argument",
    "shared_option",
]

#: every command's context settings (``-h`` is ``--help``)
CONTEXT = {"help_option_names": ["-h", "--help"]}

#: options several commands share: (flags, click.option keywords); see :func:`shared_option`
SHARED_OPTIONS = {
    "out": (
        ("--out", "out_dir"),
        dict(
            type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder."
        ),
    ),
    "temperature": (
        ("--temperature",),
        dict(
            type=click.FloatRange(0, None, min_open=True),
            default=2.0,
            show_default=True,
            help="Distillation temperature.",
        ),
    ),
    "alpha": (
        ("--alpha",),
        dict(
            type=click.FloatRange(0, 1),
            default=0.5,
            show_default=True,
            help="Weight of the task loss in distillation (1 - alpha weighs matching the teacher).",
        ),
    ),
    "strategy": (
        ("--strategy",),
        dict(
            type=click.Choice(["default", "mirrored", "multiworker"]),
            default="default",
            show_default=True,
            help="tf.distribute strategy (multiworker reads TF_CONFIG).",
        ),
    ),
    "batch_size": (
        ("--batch-size",),
        dict(type=click.IntRange(1, 65536), default=DEFAULT_BATCH_SIZE, show_default=True),
    ),
    "lr": (
        ("--lr",),
        dict(
            type=click.FloatRange(0, 10, min_open=True),
            default=DEFAULT_LR,
            show_default=True,
            help="Adam's peak learning rate (reached after the warm-up).",
        ),
    ),
    "schedule": (
        ("--schedule",),
        dict(
            type=click.Choice(list(SCHEDULES)),
            default=DEFAULT_SCHEDULE,
            show_default=True,
            help="Learning-rate schedule after the warm-up: cosine decay to 1 % of --lr, "
            "constant, or halved after 3 epochs without a better validation score (plateau).",
        ),
    ),
    "warmup_epochs": (
        ("--warmup-epochs",),
        dict(
            type=click.FloatRange(0, None),
            default=DEFAULT_WARMUP_EPOCHS,
            show_default=True,
            help="Epochs of linear learning-rate warm-up (fractions allowed, 0: none).",
        ),
    ),
    "early_stopping": (
        ("--early-stopping",),
        dict(
            type=click.IntRange(1, None),
            default=None,
            metavar="N",
            help="Stop after N epochs without a better validation score (default: off).",
        ),
    ),
    "weight_decay": (
        ("--weight-decay",),
        dict(
            type=click.FloatRange(0, None),
            default=DEFAULT_WEIGHT_DECAY,
            show_default=True,
            help="Decoupled weight decay (AdamW): each step shrinks every kernel by this times "
            "the step's learning rate (0 = plain Adam).",
        ),
    ),
    "label_smoothing": (
        ("--label-smoothing",),
        dict(
            type=click.FloatRange(0, MAX_LABEL_SMOOTHING),
            default=DEFAULT_LABEL_SMOOTHING,
            show_default=True,
            help="Mix each training target with the uniform distribution by this much (0 = off).",
        ),
    ),
    "ema": (
        ("--ema",),
        dict(
            type=click.FloatRange(0, MAX_EMA),
            default=DEFAULT_EMA,
            show_default=True,
            metavar="MOMENTUM",
            help="Validate and keep an exponential moving average of the weights, updated "
            "after every step with this momentum (0 = off; 0.99: about the last 100 steps).",
        ),
    ),
    "gain_db": (
        ("--gain-db",),
        dict(
            type=click.FloatRange(0, 100),
            default=DEFAULT_GAIN_DB,
            show_default=True,
            help="Random level change of each training clip, uniform in ±this many dB, as if "
            "recorded louder or softer (0 = off).",
        ),
    ),
    "seed": (("--seed",), dict(type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)),
    "quiet": (("--quiet", "-q"), dict(is_flag=True, help="Only print the final summary.")),
}


def shared_option(name: str, **overrides):
    """A ``click.option`` from :data:`SHARED_OPTIONS`, with some keywords overridden.

    The commands (kq-train, kq-prune, kq-distill, ...) spell an option the same way and check
    it with the same range; only its default or help text may differ per command.

    Args:
        name: a key of :data:`SHARED_OPTIONS`.
        **overrides: ``click.option`` keywords replacing the shared ones (``default``, ``help``).

    Raises:
        KeyError: ``name`` is not a shared option.

    Example:
        >>> @click.command()
        ... @shared_option("lr", default=5e-4)
        ... def fit(lr):
        ...     click.echo(lr)
        >>> from click.testing import CliRunner
        >>> CliRunner().invoke(fit, ["--lr", "0.01"]).output.strip()
        '0.01'
        >>> "not in the range 0<x<=10" in CliRunner().invoke(fit, ["--lr", "-1"]).output
        True
    """
    if name not in SHARED_OPTIONS:
        raise KeyError(f"Unknown shared option {name!r}; known: {', '.join(SHARED_OPTIONS)}.")
    flags, attrs = SHARED_OPTIONS[name]
    return click.option(*flags, **{**attrs, **overrides})


#: the dataset options' click parameter names -> :class:`DatasetOptions` fields
_DATASET_FIELDS = {
    "dataset": "dataset",
    "data_dir": "data_dir",
    "sample_rate": "sample_rate",
    "clip_seconds": "clip_seconds",
    "n_mels": "n_mels",
    "fold": "fold",
    "split_protocol": "split",
    "options": "options",
    "cache_dir": "cache_dir",
    "download": "download",
    "cache_format": "cache_format",
    "shard_size": "shard_size",
    "workers": "workers",
}

#: the options :func:`dataset_options` adds (``--dataset`` is the command's own: its
#: default and help differ per command)
_DATASET_OPTIONS = [
    click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The dataset's folder (see docs/datasets.md).",
    ),
    click.option(
        "--sample-rate",
        type=click.IntRange(1000, 768000),
        default=None,
        help="Resample audio to this rate (Hz). Default: per dataset.",
    ),
    click.option(
        "--clip-seconds",
        type=click.FloatRange(0, 600, min_open=True),
        default=None,
        help="Pad/crop every clip to this length. Default: per dataset.",
    ),
    click.option(
        "--n-mels",
        type=click.IntRange(8, 512),
        default=None,
        help="Mel bands of the features (default 64).",
    ),
    click.option(
        "--fold",
        type=click.IntRange(1, 100),
        default=None,
        help="Test fold (esc50, urbansound8k).",
    ),
    click.option(
        "--split",
        "split_protocol",
        default=None,
        help="Split protocol option of the dataset (e.g. fsdd: takes|speaker).",
    ),
    click.option(
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any loader option, repeatable (e.g. --option validation_fraction=0.2).",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Feature cache folder (default $KQ_CACHE_DIR or ~/.cache/keras_quaternion).",
    ),
    click.option(
        "--download",
        is_flag=True,
        help="Download the dataset (verified, resumable; kq-data list) into --data-dir (or "
        "$KQ_DATA_DIR) when that folder does not hold it yet.",
    ),
    click.option(
        "--cache-format",
        type=click.Choice(["float32", "logmel16"]),
        default=None,
        help="Feature cache: float32 quaternion features (the default, or the format a saved "
        "model was trained on), or float16 log-mel in shards (8x smaller; quaternion models "
        "then compute the deltas in the model).",
    ),
    click.option(
        "--shard-size",
        type=click.IntRange(1, None),
        default=None,
        help="Clips per shard of a logmel16 cache (default 2048).",
    ),
    click.option(
        "--workers",
        type=click.IntRange(1, 256),
        default=1,
        show_default=True,
        help="Processes that build the missing shards of a logmel16 cache.",
    ),
]


def dataset_options(func):
    """Add the dataset options to a click command and pass them as one ``data`` argument.

    A decorator (the last one before the function) adding ``--data-dir``, ``--sample-rate``,
    ``--clip-seconds``, ``--n-mels``, ``--fold``, ``--split``, ``--option`` (repeatable),
    ``--cache-dir``, ``--download``, ``--cache-format``, ``--shard-size`` and ``--workers``.
    The command function receives, instead of these and of its own
    ``--dataset`` option (if it has one), a single keyword argument ``data``: the frozen
    :class:`~keras_quaternion.training.dataset_options.DatasetOptions`, whose methods prepare
    the data.

    Args:
        func: the command function (before ``@click.command``), taking ``data``.

    Returns:
        The function click calls, with the options attached.

    Example:
        >>> from click.testing import CliRunner
        >>> @click.command()
        ... @click.option("--dataset", default="synthetic")
        ... @dataset_options
        ... def show(data):
        ...     click.echo(f"{data.dataset} fold={data.fold} split={data.split} {data.options}")
        >>> print(CliRunner().invoke(show, ["--fold", "2", "--option", "seed=1"]).output)
        synthetic fold=2 split=None ('seed=1',)
    """

    @functools.wraps(func)
    def command(*args, **kwargs):
        fields = {
            field: kwargs.pop(param) for param, field in _DATASET_FIELDS.items() if param in kwargs
        }
        return func(*args, data=DatasetOptions(**fields), **kwargs)

    for deco in reversed(_DATASET_OPTIONS):
        command = deco(command)
    return command


def check_model_file(path: Path, hint: str) -> None:
    """A usage error unless ``path`` is an existing ``.keras`` file (``hint``: the parameter).

    Example:
        >>> check_model_file(Path("missing.keras"), "MODEL")
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: 'missing.keras' does not exist.
    """
    if not path.exists():
        raise click.BadParameter(f"'{path}' does not exist.", param_hint=hint)
    if path.is_dir() or path.suffix != ".keras":
        raise click.BadParameter(
            f"'{path}' is not a .keras model file (save models with model.save('x.keras')).",
            param_hint=hint,
        )


def load_model_argument(path: Path, hint: str):
    """The Keras model in ``path`` (checked by :func:`check_model_file`); errors name ``hint``."""
    from keras_quaternion.training.loop import load_model

    check_model_file(path, hint)
    try:
        return load_model(path)
    except (ValueError, FileNotFoundError) as err:
        raise click.BadParameter(str(err), param_hint=hint) from None
