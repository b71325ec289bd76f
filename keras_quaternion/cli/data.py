"""``kq-data``: download datasets into the layout their loaders read.

    kq-data list                          what can be downloaded, and how each download is checked
    kq-data download esc50 [--to DIR]     fetch, verify, unpack into DIR/ESC-50 (resumable)
    kq-data download tfds:gtzan [--to D]  let TensorFlow Datasets download and prepare a builder

The command imports neither TensorFlow nor Keras (the package's top level skips them under
``kq-data``), except ``download tfds:NAME``, which needs TensorFlow Datasets. Its entry point is
:func:`keras_quaternion.cli.data_main`.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["data_group", "download_command", "list_command"]


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
