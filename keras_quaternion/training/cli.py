"""``kq-train`` and ``kq-eval`` (also ``kq train`` / ``kq eval``).

``kq-train`` with no arguments trains a small quaternion CNN (``qcnn6`` at width 0.25) on the
generated ``synthetic`` dataset in a few minutes on a laptop CPU. See ``docs/training.md``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from keras_quaternion.training.recipe import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_GAIN_DB,
    DEFAULT_LR,
    DEFAULT_SCHEDULE,
    DEFAULT_WARMUP_EPOCHS,
    SCHEDULES,
)

__all__ = [
    "DEFAULT_DROPOUT",
    "DEFAULT_MODEL",
    "DEFAULT_WIDTH",
    "claim_out",
    "eval_command",
    "parse_options",
    "train_command",
    "writes_files",
]

#: The model ``kq-train`` trains when ``--model`` is not given, its width and dropout rate
#: (registry models named with ``--model`` keep width 1.0 and PANNs' dropout unless told).
DEFAULT_MODEL = "qcnn6"
DEFAULT_WIDTH = 0.25
DEFAULT_DROPOUT = 0.1


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if "," in text:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def parse_options(pairs, fold=None, split=None) -> dict:
    """Turn ``--option key=value`` pairs (plus ``--fold`` / ``--split``) into loader options.

    Values are parsed as JSON when possible (``3``, ``0.1``, ``true``, ``["a","b"]``), else
    ``a,b`` becomes a list of strings and anything else stays a string.

    Args:
        pairs: the ``key=value`` strings (``-`` in keys becomes ``_``), or ``None``.
        fold: ``--fold``, stored as the ``fold`` option unless ``None``.
        split: ``--split``, stored as the ``split`` option unless ``None``.

    Returns:
        The loader options, a dict.

    Raises:
        click.BadParameter: a pair without ``=`` or with an empty key.

    Example:
        >>> parse_options(["validation_fraction=0.2", "test_speakers=theo,jackson"], fold=2)
        {'validation_fraction': 0.2, 'test_speakers': ['theo', 'jackson'], 'fold': 2}
    """
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise click.BadParameter(
                f"{pair!r} is not key=value (e.g. --option validation_fraction=0.2).",
                param_hint="--option",
            )
        options[key] = _parse_value(value.strip())
    if fold is not None:
        options["fold"] = fold
    if split is not None:
        options["split"] = split
    return options


#: options several commands share: (flags, click.option keywords); see :func:`shared_option`
SHARED_OPTIONS = {
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


def check_dataset_name(name: str) -> None:
    """Raise a usage error naming the known datasets when ``name`` is not one of them.

    Shared by every command that takes ``--dataset`` (kq-train, kq-eval, kq-prune, kq-export).

    Args:
        name: the ``--dataset`` value.

    Raises:
        click.UsageError: ``name`` is not in ``keras_quaternion.datasets.names()``.

    Example:
        >>> check_dataset_name("synthetic")  # known: returns None
    """
    from keras_quaternion import datasets

    if name not in datasets.names():
        raise click.UsageError(
            f"Unknown dataset {name!r}; known datasets: {', '.join(datasets.names())}."
        )


def prepare_dataset(
    dataset,
    data_dir,
    sample_rate,
    clip_seconds,
    n_mels,
    seed,
    cache_dir,
    options,
    feature_config=None,
    progress=True,
):
    """:func:`keras_quaternion.training.pipeline.prepare` for a command line.

    Layout and argument errors become ``click.ClickException`` (a one-line message and exit
    status 1, no traceback). The arguments are those of ``prepare``; ``options`` are the
    loader options from :func:`parse_options`.

    Args:
        dataset: a registry dataset name.
        data_dir: the dataset's folder (``None`` for ``synthetic``).
        sample_rate: Hz, or ``None`` for the dataset's default.
        clip_seconds: clip length, or ``None`` for the dataset's default.
        n_mels: mel bands, or ``None`` for ``prepare``'s default (64).
        seed: the loader's ``seed`` option unless ``options`` sets it.
        cache_dir: feature cache folder, or ``None`` for the default.
        options: loader options (``{"fold": 1}``, ...).
        feature_config: a :class:`~keras_quaternion.features.FeatureConfig` to use instead of
            the default one.
        progress: show progress bars.

    Returns:
        The :class:`~keras_quaternion.training.pipeline.PreparedData`.

    Raises:
        click.ClickException: the dataset folder is missing or not in the dataset's layout,
            or an argument is invalid (a ``ValueError`` or ``TypeError`` from ``prepare``).

    Example:
        >>> data = prepare_dataset("synthetic", None, 8000, 0.25, 32, 0, "cache",
        ...                        {"samples_per_class": 3}, progress=False)
        >>> data.sizes(), data.features["train"].shape
        ({'train': 10, 'validation': 10, 'test': 10}, (10, 26, 32, 4))
        >>> try:
        ...     prepare_dataset("synthetic", None, 8000, 0.25, 32, 0, "cache", {"bogus": 1})
        ... except click.ClickException as err:
        ...     print(err.message)
        Cannot prepare dataset 'synthetic': Dataset 'synthetic': unknown option(s) ['bogus']; ...
    """
    from keras_quaternion.datasets import DatasetLayoutError
    from keras_quaternion.outdir import NotWritableError
    from keras_quaternion.training.pipeline import prepare

    try:
        return prepare(
            dataset,
            data_dir,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            n_mels=n_mels,
            seed=seed,
            cache_dir=cache_dir,
            dataset_options=options,
            feature_config=feature_config,
            progress=progress,
        )
    except (DatasetLayoutError, NotWritableError) as err:
        raise click.ClickException(str(err)) from None
    except (ValueError, TypeError) as err:
        raise click.ClickException(f"Cannot prepare dataset '{dataset}': {err}") from None


def writes_files(strategy: str = "default", tf_config: str | None = None) -> bool:
    """Whether this process writes the command's files: all but non-chief multi-worker tasks.

    Read from ``TF_CONFIG`` without TensorFlow, as
    :func:`keras_quaternion.training.is_chief` decides once the strategy exists.

    Args:
        strategy: the ``--strategy`` value.
        tf_config: the ``TF_CONFIG`` JSON (default: the environment variable).

    Example:
        >>> config = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
        >>> writes_files("multiworker", config), writes_files("default", config)
        (False, True)
    """
    if strategy != "multiworker":
        return True
    try:
        config = json.loads(tf_config if tf_config is not None else os.environ["TF_CONFIG"])
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index") or 0)
    except (KeyError, ValueError, TypeError, AttributeError):
        return True  # make_strategy reports the bad TF_CONFIG
    return kind in (None, "chief") or (kind == "worker" and index == 0 and "chief" not in cluster)


def claim_out(out_dir: Path, strategy: str = "default") -> Path:
    """Hold ``--out`` for the running command until it ends, after checking it can be written.

    What every command that writes to ``--out`` does before any slow work (see
    :func:`keras_quaternion.outdir.claim`): a folder that cannot be written, or one that
    another ``kq-*`` process is writing, is a one-line error (exit status 1); the lock of a
    process that was killed is taken over (with a note on stderr), and the temporary files
    and staging folders such runs left are removed. Non-chief multi-worker tasks, which write
    nothing, claim nothing.

    Args:
        out_dir: the ``--out`` folder (created).
        strategy: the ``--strategy`` value, if the command has one.

    Returns:
        ``out_dir``.

    Raises:
        click.ClickException: not writable, or held by another process.

    Example:
        >>> @click.command()
        ... @click.option("--out", type=Path)
        ... def fit(out):
        ...     claim_out(out)
        ...     claim_out(out)  # as if a second command wanted it
        >>> from click.testing import CliRunner
        >>> print(CliRunner().invoke(fit, ["--out", "run"]).output[:40])
        Error: --out 'run' is in use by fit (pid
    """
    from keras_quaternion.outdir import FolderBusyError, NotWritableError, claim, describe_holder

    if not writes_files(strategy):
        return out_dir
    ctx = click.get_current_context()
    try:
        held = ctx.with_resource(claim(out_dir, ctx.command_path, "--out"))
    except (NotWritableError, FolderBusyError) as err:
        raise click.ClickException(str(err)) from None
    if held.previous.get("pid"):
        click.echo(
            f"Note: {describe_holder(held.previous)} ended without releasing --out "
            f"'{out_dir}'; took it over and removed what it left unfinished.",
            err=True,
        )
    return out_dir


def dataset_cli_options(func):
    """Options shared by kq-train and kq-eval that choose and featurize a dataset.

    A decorator adding ``--data-dir``, ``--sample-rate``, ``--clip-seconds``, ``--n-mels``,
    ``--fold``, ``--split`` (passed as ``split_protocol``), ``--option`` (repeatable, passed
    as the tuple ``options``) and ``--cache-dir`` to a click command.

    Args:
        func: the command function (before ``@click.command``).

    Returns:
        ``func`` with the options attached.

    Example:
        >>> from click.testing import CliRunner
        >>> @click.command()
        ... @dataset_cli_options
        ... def show(fold, split_protocol, options, **rest):
        ...     click.echo(f"fold={fold} split={split_protocol} options={options}")
        ...     click.echo(sorted(rest))
        >>> print(CliRunner().invoke(show, ["--fold", "2", "--option", "seed=1"]).output)
        fold=2 split=None options=('seed=1',)
        ['cache_dir', 'clip_seconds', 'data_dir', 'n_mels', 'sample_rate']
    """
    decorators = [
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
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


# ----------------------------------------------------------------------------------- train


@click.command(name="train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dataset",
    default="synthetic",
    show_default=True,
    help="Dataset name (kq-train --dataset list shows them).",
)
@click.option(
    "--model",
    default=None,
    help=f"Registry model name (default {DEFAULT_MODEL} at width {DEFAULT_WIDTH}).",
)
@click.option(
    "--width",
    type=click.FloatRange(0, 4, min_open=True),
    default=None,
    help=f"Width multiplier (default 1.0, or {DEFAULT_WIDTH} for the default model).",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help=f"One dropout rate for every Dropout layer (default PANNs' 0.2/0.1/0.5, or "
    f"{DEFAULT_DROPOUT} for the default model).",
)
@click.option(
    "--bn",
    type=click.Choice(["real", "quaternion", "whiten"]),
    default=None,
    help="Normalisation after each quaternion convolution (default real).",
)
@click.option("--epochs", type=click.IntRange(1, 100000), default=DEFAULT_EPOCHS, show_default=True)
@shared_option("batch_size", help="Global batch size (split across replicas).")
@shared_option("lr")
@shared_option("schedule")
@shared_option("warmup_epochs")
@shared_option("early_stopping")
@shared_option("seed")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default runs/<dataset>-<model>).",
)
@click.option(
    "--teacher",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A trained .keras model to distil from (same input as the student).",
)
@shared_option("temperature", help="Distillation temperature (with --teacher).")
@shared_option("alpha", help="Weight of the task loss in distillation (with --teacher).")
@shared_option("strategy")
@click.option("--spec-augment", is_flag=True, help="SpecAugment-style time/frequency masking.")
@click.option(
    "--mixup",
    type=click.FloatRange(0, None),
    default=0.0,
    show_default=True,
    help="Mixup Beta alpha (0 = off).",
)
@click.option(
    "--gain-db",
    type=click.FloatRange(0, 100),
    default=DEFAULT_GAIN_DB,
    show_default=True,
    help="Random level change of each training clip, uniform in ±this many dB (0 = off).",
)
@click.option(
    "--restart", is_flag=True, help="Discard the checkpoint in --out and train from scratch."
)
@shared_option("quiet")
@dataset_cli_options
def train_command(
    dataset,
    model,
    width,
    dropout,
    bn,
    epochs,
    batch_size,
    lr,
    schedule,
    warmup_epochs,
    early_stopping,
    seed,
    out_dir,
    teacher,
    temperature,
    alpha,
    strategy,
    spec_augment,
    mixup,
    gain_db,
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
    """Train a model on a dataset; rerun the same command to resume after an interruption.

    Writes model.keras (best on validation), metrics.json, history.csv, training_curves.png,
    confusion_matrix.png and TensorBoard logs (tb/) to --out. With no arguments: qcnn6 at width
    0.25 on the generated 'synthetic' dataset.
    """
    if dataset == "list":
        _list_datasets()
        return
    check_dataset_name(dataset)
    model, width, model_options = _model_choice(model, width, dropout, bn)
    out_dir = claim_out(out_dir or Path("runs") / f"{dataset}-{model}", strategy)
    _check_teacher(teacher)
    if warmup_epochs > epochs:
        raise click.BadParameter(
            f"{warmup_epochs:g} warm-up epochs is longer than the run (--epochs {epochs}).",
            param_hint="--warmup-epochs",
        )
    dataset_options = parse_options(options, fold, split_protocol)

    from keras_quaternion.training.loop import is_chief, make_strategy, train

    try:  # before any TensorFlow operation (multi-worker collectives are set up at start)
        strat = make_strategy(strategy)
    except (ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    prepared = prepare_dataset(
        dataset,
        data_dir,
        sample_rate,
        clip_seconds,
        n_mels or 64,
        seed,
        cache_dir,
        dataset_options,
        progress=not quiet,
    )
    try:
        result = train(
            model,
            prepared,
            out_dir=out_dir,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            early_stopping=early_stopping,
            width=width,
            model_options=model_options,
            seed=seed,
            teacher=teacher,
            temperature=temperature,
            alpha=alpha,
            strategy=strat,
            resume=not restart,
            spec_augment=spec_augment,
            mixup=mixup,
            gain_db=gain_db,
            verbose=0 if quiet else 1,
        )
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    role = "" if is_chief(strat) else " [non-chief worker: files written by the chief]"
    click.echo(summary_line(result, out_dir) + role)


def _list_datasets() -> None:
    from keras_quaternion import datasets

    for name in datasets.names():
        click.echo(f"{name:16s} {datasets.spec(name).description}")


def _model_choice(model, width, dropout, bn):
    """``(model, width, model_options)`` from --model, --width, --dropout and --bn.

    Without --model: the default model, width and dropout; a named model keeps width 1.0 and
    PANNs' dropout unless told otherwise.
    """
    from keras_quaternion import models

    if model is None:
        model = DEFAULT_MODEL
        width = DEFAULT_WIDTH if width is None else width
        dropout = DEFAULT_DROPOUT if dropout is None else dropout
    elif model not in models.names():
        raise click.UsageError(
            f"Unknown model {model!r}; known models: {', '.join(models.names())}."
        )
    model_options = {}
    if dropout is not None:
        model_options["dropout"] = dropout
    if bn is not None:
        model_options["bn"] = bn
    return model, 1.0 if width is None else width, model_options


def _check_teacher(teacher) -> None:
    if teacher is None:
        return
    if not teacher.is_file():
        raise click.BadParameter(f"'{teacher}' does not exist.", param_hint="--teacher")
    if teacher.suffix != ".keras":
        raise click.BadParameter(f"'{teacher}' is not a .keras model file.", param_hint="--teacher")


def summary_line(result: dict, out_dir) -> str:
    """kq-train's last line: the test score, the model, the data, the epochs and the folder.

    Example:
        >>> print(summary_line({"test": {"accuracy": 0.95}, "model": "qcnn6", "params": 73722,
        ...     "macs": 71.0e6, "dataset": "fsdd", "epochs": 12, "seconds": 95.2,
        ...     "stopped_early": True}, "runs/fsdd-qcnn6"))
        Test accuracy 0.9500 | qcnn6 (73,722 params, 71.0 M MACs/clip) | fsdd | 12 epochs (early stop), 95 s training | out: runs/fsdd-qcnn6
    """  # noqa: E501
    test = result.get("test", {})
    name = "mAP" if "mAP" in test else "accuracy"
    value = test.get(name)
    shown = "n/a (empty test split)" if value is None else f"{value:.4f}"
    macs = result.get("macs")
    macs_text = "" if macs is None else f", {macs / 1e6:.1f} M MACs/clip"
    stop = " (early stop)" if result.get("stopped_early") else ""
    return (
        f"Test {name} {shown} | {result['model']} ({result['params']:,} params{macs_text}) | "
        f"{result['dataset']} | {result['epochs']} epochs{stop}, {result['seconds']:.0f} s "
        f"training | out: {out_dir}"
    )


# ------------------------------------------------------------------------------------ eval


def run_info(model_path: Path) -> dict:
    """The ``metrics.json`` written next to ``model_path`` by kq-train, or ``{}`` if none.

    Commands that read a trained model use it to default the dataset, features and options to
    those the model was trained with.

    Args:
        model_path: path of the trained ``.keras`` model (a ``Path``).

    Returns:
        The parsed JSON, or ``{}`` when the file is missing or unreadable.

    Example:
        >>> run_info(Path("no-such-run/model.keras"))
        {}
    """
    info_path = model_path.parent / "metrics.json"
    if info_path.is_file():
        try:
            return json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def prepare_for_saved_model(
    model_path: Path,
    load_model,
    *,
    dataset,
    data_dir,
    sample_rate,
    clip_seconds,
    n_mels,
    fold,
    split_protocol,
    options,
    seed,
    cache_dir,
    missing_dataset=None,
    fallback_seed=0,
    progress=None,
):
    """Prepare the data a saved model is scored (or calibrated) on, as its training run did.

    Dataset, loader options, feature settings and clip length default to those recorded in the
    ``metrics.json`` next to ``model_path`` (see :func:`run_info`) when the dataset is the one
    the model was trained on; command-line values override them. Shared by kq-eval and
    kq-export.

    Args:
        model_path: the saved ``.keras`` or ``.tflite`` file.
        load_model: called with no arguments once the arguments are checked (so that a missing
            ``--dataset`` is reported before a slow model load); returns the Keras model, whose
            input gives the mel bands when nothing else does, or ``None`` for a ``.tflite`` file.
        dataset, data_dir, sample_rate, clip_seconds, n_mels, fold, split_protocol, options,
            seed, cache_dir: the command's dataset options (``None`` where not given).
        missing_dataset: the usage error shown when no dataset is given or recorded (default:
            "--dataset is required: there is no metrics.json next to MODEL ...").
        fallback_seed: the dataset seed when neither ``seed`` nor the recorded options give one.
        progress: show progress bars (default: when stderr is a terminal).

    Returns:
        ``(model, prepared)``: what ``load_model`` returned and the
        :class:`~keras_quaternion.training.pipeline.PreparedData`.

    Raises:
        click.UsageError: no ``--dataset`` and no ``metrics.json`` to read it from, or an
            unknown dataset.
        click.ClickException: the dataset cannot be prepared (see :func:`prepare_dataset`).

    Example:
        >>> prepare_for_saved_model(
        ...     Path("nowhere/model.keras"), lambda: None, dataset=None, data_dir=None,
        ...     sample_rate=None, clip_seconds=None, n_mels=None, fold=None,
        ...     split_protocol=None, options=(), seed=None, cache_dir=None)
        Traceback (most recent call last):
        ...
        click.exceptions.UsageError: --dataset is required: there is no metrics.json next to 'nowhere/model.keras' to read it from.
    """  # noqa: E501
    run = run_info(model_path)
    dataset = dataset or run.get("dataset")
    if not dataset:
        raise click.UsageError(
            missing_dataset
            or f"--dataset is required: there is no metrics.json next to '{model_path}' to "
            "read it from."
        )
    check_dataset_name(dataset)
    same_data = run.get("dataset") == dataset
    explicit = parse_options(options, fold, split_protocol)
    # the training run's loader options, overridden by the command line
    dataset_options = {**(run.get("dataset_options") or {}), **explicit} if same_data else explicit
    if seed is not None:
        dataset_options["seed"] = seed
    feature_config = None
    if same_data and run.get("feature_config") and sample_rate is None and n_mels is None:
        from keras_quaternion.features import FeatureConfig

        feature_config = FeatureConfig.from_dict(run["feature_config"])
        if clip_seconds is None:
            clip_seconds = run.get("clip_seconds")
    model = load_model()
    if model is not None and n_mels is None and feature_config is None:
        shape = model.input_shape
        n_mels = shape[2] if isinstance(shape, tuple) and len(shape) == 4 else None
    return model, prepare_dataset(
        dataset,
        data_dir,
        sample_rate,
        clip_seconds,
        n_mels or 64,
        dataset_options.get("seed", fallback_seed),
        cache_dir,
        dataset_options,
        feature_config=feature_config,
        progress=sys.stderr.isatty() if progress is None else progress,
    )


@click.command(name="eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dataset", default=None, help="Dataset name (default: the one in metrics.json next to MODEL)."
)
@click.option(
    "--subset",
    type=click.Choice(["test", "validation", "train"]),
    default="test",
    show_default=True,
    help="Which split to score.",
)
@shared_option("batch_size", default=64)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="Dataset seed (validation carve); default: the training run's.",
)
@dataset_cli_options
def eval_command(
    model_path,
    dataset,
    subset,
    batch_size,
    seed,
    data_dir,
    sample_rate,
    clip_seconds,
    n_mels,
    fold,
    split_protocol,
    options,
    cache_dir,
):
    """Score a saved .keras or .tflite MODEL on a dataset split; prints the metrics as JSON.

    The feature settings (sample rate, clip length, mel bands, dataset options) default to
    those recorded in the metrics.json next to MODEL (written by kq-train), so
    `kq-eval runs/x/model.keras --data-dir DIR` scores a run on the data it was trained on.
    """
    if not model_path.is_file():
        raise click.BadParameter(f"'{model_path}' does not exist.", param_hint="MODEL")
    suffix = model_path.suffix.lower()
    if suffix not in (".keras", ".tflite"):
        raise click.BadParameter(
            f"'{model_path}' is neither a .keras nor a .tflite file.", param_hint="MODEL"
        )
    from keras_quaternion.training.loop import evaluate, load_model

    def load():
        if suffix != ".keras":
            return None
        try:
            return load_model(model_path)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None

    model, prepared = prepare_for_saved_model(
        model_path,
        load,
        dataset=dataset,
        data_dir=data_dir,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        n_mels=n_mels,
        fold=fold,
        split_protocol=split_protocol,
        options=options,
        seed=seed,
        cache_dir=cache_dir,
    )
    try:
        if suffix == ".keras":
            result = evaluate(model, prepared, subset, batch_size=batch_size)
        else:
            try:
                from keras_quaternion.export import evaluate_tflite
            except ImportError as err:
                raise click.ClickException(
                    "Scoring a .tflite model needs keras_quaternion.export.evaluate_tflite, "
                    f"which is not available ({err})."
                ) from None
            result = {"dataset": prepared.dataset, "split": subset}
            result.update(evaluate_tflite(model_path, prepared, split=subset))
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from None
    result = {"model": str(model_path), **result}
    click.echo(json.dumps({k: _finite(v) for k, v in result.items()}, indent=1))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    train_command()
