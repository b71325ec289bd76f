"""The dataset a command reads, as one object: :class:`DatasetOptions`, and preparing it.

Every ``kq-*`` command that reads data (kq-train, kq-eval, kq-prune, kq-distill, kq-export)
takes the same dataset options: ``--dataset``, ``--data-dir``, ``--sample-rate``,
``--clip-seconds``, ``--n-mels``, ``--fold``, ``--split``, ``--option KEY=VALUE`` and
``--cache-dir``. The command line builds one frozen :class:`DatasetOptions` from them
(:func:`keras_quaternion.cli.options.dataset_options`), and the commands prepare their data
with its methods:

* :meth:`DatasetOptions.prepare` — the features of a training run (kq-train);
* :meth:`DatasetOptions.prepare_for_saved_model` — the features a saved model was trained on,
  read from the ``metrics.json`` next to it (:func:`run_info`), overridden by what was given
  (kq-eval, kq-prune, kq-distill, kq-export).

Errors are those of a command line (``click.UsageError``: exit status 2;
``click.ClickException``: one line, exit status 1), as the commands report them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

__all__ = [
    "DatasetOptions",
    "check_dataset_name",
    "parse_options",
    "prepare_dataset",
    "run_info",
]

#: mel bands when neither the command line nor the model says
DEFAULT_N_MELS = 64


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


def run_info(model_path: Path) -> dict:
    """What is known of the run that trained ``model_path``, or ``{}`` if nothing.

    The ``metrics.json`` written next to the model by kq-train, overlaid with the
    :class:`~keras_quaternion.model_info.ModelInfo` the model carries (inside a ``.keras``
    archive, or in the ``export_report.json`` next to a ``.tflite``): dataset, loader options,
    features, clip length and class names. Commands that read a trained model use it to default
    the dataset, features and options to those the model was trained with.

    Args:
        model_path: path of the trained ``.keras`` (or exported ``.tflite``) model (a ``Path``).

    Returns:
        The merged record, or ``{}`` when there is none (a damaged record counts as none).

    Example:
        >>> run_info(Path("no-such-run/model.keras"))
        {}
    """
    from keras_quaternion.model_info import ModelInfoError, describe_model

    record = {}
    info_path = model_path.parent / "metrics.json"
    if info_path.is_file():
        try:
            record = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
    try:
        info = describe_model(model_path)
    except ModelInfoError:
        info = None
    if info is not None:
        stored = {k: v for k, v in info.to_dict().items() if v not in (None, {}) and k != "format"}
        record = {**record, **stored}
    return record


def _input_mels(model):
    """The mel bands of a Keras model's ``(batch, frames, mels, channels)`` input, else ``None``."""
    shape = model.input_shape
    return shape[2] if isinstance(shape, tuple) and len(shape) == 4 else None


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """The dataset options of a command, as one object (built once by the command line).

    Attributes:
        dataset: ``--dataset``, a registry name (``None``: the one the model was trained on).
        data_dir: ``--data-dir``, the dataset's folder.
        sample_rate: ``--sample-rate`` (Hz; ``None``: the dataset's default).
        clip_seconds: ``--clip-seconds`` (``None``: the dataset's default).
        n_mels: ``--n-mels`` (``None``: 64, or the model's input).
        fold: ``--fold``, the test fold (esc50, urbansound8k).
        split: ``--split``, the dataset's split protocol option.
        options: the ``--option KEY=VALUE`` strings, as given (a tuple).
        cache_dir: ``--cache-dir``, the feature cache folder.

    Example:
        >>> data = DatasetOptions("synthetic", fold=2, options=("seed=1",))
        >>> data.loader_options()
        {'seed': 1, 'fold': 2}
        >>> data.replace(dataset="fsdd").dataset
        'fsdd'
    """

    dataset: str | None = None
    data_dir: Path | None = None
    sample_rate: int | None = None
    clip_seconds: float | None = None
    n_mels: int | None = None
    fold: int | None = None
    split: str | None = None
    options: tuple[str, ...] = ()
    cache_dir: Path | None = None

    def replace(self, **changes) -> DatasetOptions:
        """A copy with some fields changed (the object itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def loader_options(self) -> dict:
        """The loader options: ``--option`` pairs plus ``--fold`` / ``--split`` (:func:`parse_options`)."""
        return parse_options(self.options, self.fold, self.split)

    def prepare(
        self,
        seed: int = 0,
        *,
        loader_options: dict | None = None,
        feature_config=None,
        progress: bool = True,
    ):
        """The features of a training run on this dataset (kq-train).

        Args:
            seed: the loader's seed (validation carve) unless an ``--option seed=`` sets it.
            loader_options: :meth:`loader_options`, if the caller parsed them already (a
                command checks its arguments before any slow work).
            feature_config: a :class:`~keras_quaternion.features.FeatureConfig` instead of the
                one ``--sample-rate`` and ``--n-mels`` give (``kq-train --init panns:...``).
            progress: show progress bars.

        Returns:
            The :class:`~keras_quaternion.training.pipeline.PreparedData`.

        Raises:
            click.UsageError: no or an unknown dataset name.
            click.BadParameter: an ``--option`` that is not ``key=value``.
            click.ClickException: the dataset cannot be prepared (:func:`prepare_dataset`).
        """
        if not self.dataset:
            raise click.UsageError("--dataset is required.")
        check_dataset_name(self.dataset)
        if loader_options is None:
            loader_options = self.loader_options()
        return self._prepare(loader_options, seed, feature_config=feature_config, progress=progress)

    def _prepare(self, loader_options, seed, *, feature_config=None, progress=True):
        return prepare_dataset(
            self.dataset,
            self.data_dir,
            self.sample_rate,
            self.clip_seconds,
            self.n_mels or DEFAULT_N_MELS,
            seed,
            self.cache_dir,
            loader_options,
            feature_config=feature_config,
            progress=progress,
        )

    def prepare_for_saved_model(
        self,
        model_path: Path,
        load_model,
        *,
        seed=None,
        missing_dataset=None,
        fallback_seed=0,
        progress=None,
    ):
        """Prepare the data a saved model is scored (or calibrated) on, as its training run did.

        Dataset, loader options, feature settings and clip length default to those recorded in
        the ``metrics.json`` next to ``model_path`` (see :func:`run_info`) when the dataset is
        the one the model was trained on; the fields given override them. Shared by kq-eval,
        kq-prune, kq-distill and kq-export.

        Args:
            model_path: the saved ``.keras`` or ``.tflite`` file.
            load_model: called with no arguments once the arguments are checked (so that a
                missing ``--dataset`` is reported before a slow model load); returns the Keras
                model, whose input gives the mel bands when nothing else does, or ``None`` for
                a ``.tflite`` file.
            seed: the dataset seed (``--seed``), overriding the recorded one; ``None``: keep it.
            missing_dataset: the usage error shown when no dataset is given or recorded
                (default: "--dataset is required: MODEL does not record the data it was trained on ...").
            fallback_seed: the dataset seed when neither ``seed`` nor the recorded options
                give one.
            progress: show progress bars (default: when stderr is a terminal).

        Returns:
            ``(model, prepared)``: what ``load_model`` returned and the
            :class:`~keras_quaternion.training.pipeline.PreparedData`.

        Raises:
            click.UsageError: no ``--dataset`` and no ``metrics.json`` to read it from, or an
                unknown dataset.
            click.ClickException: the dataset cannot be prepared (see :func:`prepare_dataset`).

        Example:
            >>> DatasetOptions().prepare_for_saved_model(Path("nowhere/model.keras"), lambda: None)
            Traceback (most recent call last):
            ...
            click.exceptions.UsageError: --dataset is required: 'nowhere/model.keras' does not record the data it was trained on, and there is no metrics.json next to it to read it from.
        """  # noqa: E501
        run = run_info(model_path)
        chosen = self.replace(dataset=self.dataset or run.get("dataset"))
        if not chosen.dataset:
            raise click.UsageError(
                missing_dataset
                or f"--dataset is required: '{model_path}' does not record the data it was "
                "trained on, and there is no metrics.json next to it to read it from."
            )
        check_dataset_name(chosen.dataset)
        same_data = run.get("dataset") == chosen.dataset
        loader_options = chosen._recorded_loader_options(run if same_data else {}, seed)
        chosen, feature_config = chosen._recorded_features(run if same_data else {})
        model = load_model()
        if model is not None and chosen.n_mels is None and feature_config is None:
            chosen = chosen.replace(n_mels=_input_mels(model))
        return model, chosen._prepare(
            loader_options,
            loader_options.get("seed", fallback_seed),
            feature_config=feature_config,
            progress=sys.stderr.isatty() if progress is None else progress,
        )

    def _recorded_loader_options(self, run: dict, seed) -> dict:
        """The training run's loader options, overridden by the given ones and ``seed``."""
        options = {**(run.get("dataset_options") or {}), **self.loader_options()}
        if seed is not None:
            options["seed"] = seed
        return options

    def _recorded_features(self, run: dict):
        """``(options, feature_config)``: the run's features unless a rate or bands are given.

        With the recorded feature configuration, the recorded clip length also applies unless
        ``--clip-seconds`` was given; otherwise the features follow the fields (and ``None``).
        """
        if not run.get("feature_config") or self.sample_rate is not None or self.n_mels is not None:
            return self, None
        from keras_quaternion.features import FeatureConfig

        feature_config = FeatureConfig.from_dict(run["feature_config"])
        if self.clip_seconds is None:
            return self.replace(clip_seconds=run.get("clip_seconds")), feature_config
        return self, feature_config
