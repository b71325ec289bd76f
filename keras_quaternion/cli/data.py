"""``kq-data``: download datasets into the layout their loaders read.

    kq-data list                          what can be downloaded, and how each download is checked
    kq-data download esc50 [--to DIR]     fetch, verify, unpack into DIR/ESC-50 (resumable)
    kq-data download tfds:gtzan [--to D]  let TensorFlow Datasets download and prepare a builder
    kq-data prepare fsdd --data-dir DIR --cache-format logmel16 --workers 2 [--shards A:B]
                                          build the feature cache (all or a range of shards)

The command imports neither TensorFlow nor Keras (the package's top level skips them under
``kq-data``), except ``download tfds:NAME``, which needs TensorFlow Datasets, and ``prepare``,
which computes features. Its entry point is
:func:`keras_quaternion.cli.data_main`.
"""

from __future__ import annotations

from pathlib import Path

import click

from keras_quaternion.cli.options import dataset_options

__all__ = ["data_group", "download_command", "list_command", "prepare_command"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-quaternion")
def data_group():
    """Download datasets for keras-quaternion, checked and laid out for their loaders."""


@data_group.command("list")
def list_command():
    """List the downloadable datasets, their archives and how each is checked.

    Example:
        >>> from click.testing import CliRunner
        >>> print(CliRunner().invoke(list_command).output.splitlines()[0])
        esc50 -> ESC-50/  (CC BY-NC 3.0 (the ESC-10 subset: CC BY); 2000 WAV clips, ...)
    """
    from keras_quaternion.datasets.download import describe
    from keras_quaternion.datasets.sources import SOURCES

    for name in sorted(SOURCES):
        click.echo(describe(SOURCES[name]))
    click.echo(
        "tfds:NAME -> the TFDS data folder  (any TensorFlow Datasets builder with an audio "
        "feature and a class label; downloaded and checked by TFDS; needs tensorflow-datasets)"
    )


def _download_tfds(name, to, config, quiet):
    from keras_quaternion.datasets.tfds import prepare_tfds

    folder = prepare_tfds(name, to, config=config)
    where = f" --data-dir {to}" if to is not None else ""
    config_hint = f" --option config={config}" if config else ""
    if not quiet:
        click.echo(f"{name} is prepared in '{folder}'.")
    click.echo(f"Train on it with: kq-train --dataset {name}{where}{config_hint}")


@data_group.command("download")
@click.argument("name")
@click.option(
    "--to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download folder (default $KQ_DATA_DIR or ~/kq_datasets; for tfds:NAME, the TFDS "
    "data folder, default $TFDS_DATA_DIR or ~/tensorflow_datasets).",
)
@click.option("--keep-archives", is_flag=True, help="Keep the archives in DIR/downloads/.")
@click.option("--config", default=None, help="Builder config (tfds:NAME only).")
@click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(1, 3600), default=60.0, show_default=True, help="Seconds."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def download_command(name, to, keep_archives, config, retries, timeout, quiet):
    """Download dataset NAME, verify it and unpack it into its loader's layout.

    NAME is a file dataset (kq-data list) or tfds:NAME. An interrupted transfer resumes when run
    again; nothing is left under a final name after a failure.

    Example:
        >>> from click.testing import CliRunner
        >>> result = CliRunner().invoke(download_command, ["audioset"])
        >>> result.exit_code, result.output.split(";")[0]
        (1, "Error: Dataset 'audioset' has no public archive to download (its clips are YouTube videos)")
    """
    from keras_quaternion.datasets.download import DownloadError, download_dataset
    from keras_quaternion.datasets.registry import is_tfds_name

    try:
        if is_tfds_name(name):
            _download_tfds(name, to, config, quiet)
            return
        if config is not None:
            raise click.BadParameter(
                "only tfds:NAME datasets take a config.", param_hint="--config"
            )
        folder = download_dataset(
            name,
            to,
            keep_archives=keep_archives,
            retries=retries,
            timeout=timeout,
            progress=not quiet,
        )
    except (ValueError, DownloadError) as err:
        raise click.ClickException(str(err)) from None
    if not quiet:
        click.echo(f"{name} is ready in '{folder}'.")
    click.echo(f"Train on it with: kq-train --dataset {name} --data-dir {folder}")


@data_group.command("prepare")
@click.argument("dataset")
@click.option(
    "--shards",
    default=None,
    metavar="A:B",
    help="Build only the shards numbered A to B-1 (A: to the end; one number: that shard) of a "
    "logmel16 cache, e.g. one range per machine sharing --cache-dir. Default: all.",
)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@dataset_options
def prepare_command(shards, seed, quiet, data):
    """Compute the feature cache of DATASET before training (kq-train reads it).

    With --cache-format logmel16 the cache is float16 log-mel in shards of --shard-size clips,
    built by --workers processes; --shards A:B builds one range of them (run one range per
    machine), and running the command again rebuilds the shards an interrupted worker left
    and builds what is missing. Use the same dataset options with kq-train.

    Example:
        >>> from click.testing import CliRunner
        >>> args = ["synthetic", "--option", "samples_per_class=3", "--clip-seconds", "0.25",
        ...         "--cache-format", "logmel16", "--shard-size", "8", "--shards", "0:1",
        ...         "--cache-dir", "cache", "--quiet"]
        >>> print(CliRunner().invoke(prepare_command, args).output)
        Shards 0:1 of 6 in '...': built 1 (8 clips, ...), 0 already complete.
        The cache is not complete yet: build the other shards (kq-data prepare ... --shards A:B on each machine, or without --shards).
        <BLANKLINE>
    """  # noqa: E501
    from keras_quaternion.datasets import DatasetLayoutError
    from keras_quaternion.outdir import NotWritableError
    from keras_quaternion.training.dataset_options import check_dataset_name, download_data_dir
    from keras_quaternion.training.pipeline import build_cache
    from keras_quaternion.training.shards import CacheDiskFullError, ShardError, describe_build

    check_dataset_name(data.dataset)
    if data.cache_format in (None, "float32"):
        if shards is not None or data.workers > 1:
            raise click.UsageError(
                "--shards and --workers build a sharded cache: add --cache-format logmel16."
            )
        data.prepare(seed, progress=not quiet)
        click.echo(f"The float32 feature cache of {data.dataset} is ready.")
        return
    data_dir = data.data_dir
    if data.download:
        data_dir = download_data_dir(data.dataset, data_dir, progress=not quiet)
    try:
        report = build_cache(
            data.dataset,
            data_dir,
            shards=shards,
            workers=data.workers,
            shard_size=data.shard_size,
            progress=not quiet,
            sample_rate=data.sample_rate,
            clip_seconds=data.clip_seconds,
            n_mels=data.n_mels or 64,
            seed=seed,
            cache_dir=data.cache_dir,
            dataset_options=data.loader_options(),
        )
    except (DatasetLayoutError, NotWritableError, CacheDiskFullError, ShardError) as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:
        raise click.ClickException(f"Cannot prepare dataset '{data.dataset}': {err}") from None
    click.echo(describe_build(report))
