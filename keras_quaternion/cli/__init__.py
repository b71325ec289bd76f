"""The command line: ``kq`` (group), ``kq-train``, ``kq-eval``, ``kq-prune``, ``kq-distill``,
``kq-export``, ``kq-predict`` and ``kq-data``.

One module per command group, each only parsing the command line and calling the library:

* :mod:`.train`: ``kq-train``; :mod:`.evaluate`: ``kq-eval``; :mod:`.prune`: ``kq-prune``;
  :mod:`.distill`: ``kq-distill``; :mod:`.export`: ``kq-export``; :mod:`.predict`:
  ``kq-predict``; :mod:`.data`: ``kq-data``;
* :mod:`.options`: the options several commands share, and :func:`.options.dataset_options`,
  which bundles the dataset options into one
  :class:`~keras_quaternion.training.dataset_options.DatasetOptions`;
* :mod:`.output`: the summary lines the commands print.

This module only wires them together, importing each command's module only when that command
runs. In these processes the package loads lazily (:mod:`keras_quaternion._startup`): ``--help``
and ``--version`` answer without importing TensorFlow, and TensorFlow's C++ start-up notes are
kept out of the output once a command does import it.
"""

from __future__ import annotations

import importlib

import click

from keras_quaternion import __version__
from keras_quaternion._startup import quiet_tensorflow

__all__ = [
    "COMMANDS",
    "data_main",
    "distill_main",
    "eval_main",
    "export_main",
    "main",
    "predict_main",
    "prune_main",
    "train_main",
]

#: command name -> (module, attribute) of its click command
COMMANDS = {
    "train": ("keras_quaternion.cli.train", "train_command"),
    "eval": ("keras_quaternion.cli.evaluate", "eval_command"),
    "prune": ("keras_quaternion.cli.prune", "prune_command"),
    "distill": ("keras_quaternion.cli.distill", "distill_command"),
    "export": ("keras_quaternion.cli.export", "export_command"),
    "predict": ("keras_quaternion.cli.predict", "predict_command"),
}

_HELP = {
    "train": "Train a registry model on a dataset (default: a small QCNN on synthetic audio).",
    "eval": "Score a saved .keras or .tflite model on a dataset's test split.",
    "prune": "Structured filter pruning of a trained model, then optional fine-tuning.",
    "distill": "Train a student from scratch with knowledge distillation.",
    "export": "Export a model to int8/float TFLite, verified on TFLite Micro.",
    "predict": "Print a trained model's top classes for audio files.",
}


def _load(name):
    module, attr = COMMANDS[name]
    command = getattr(importlib.import_module(module), attr)
    if not any(param.name == "version" for param in command.params):
        click.version_option(__version__, prog_name=f"kq-{name}")(command)
    return command


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in COMMANDS:
            return None
        return _load(cmd_name)

    def main(self, *args, **kwargs):
        quiet_tensorflow()
        return super().main(*args, **kwargs)

    def format_commands(self, ctx, formatter):
        rows = [(name, _HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="kq")
def main():
    """keras-quaternion: build, train, compress and deploy quaternion audio classifiers."""


def _standalone(name):
    def run():
        quiet_tensorflow()
        return _load(name)(prog_name=f"kq-{name}")

    run.__name__ = f"{name}_main"
    run.__doc__ = f"Entry point of ``kq-{name}``."
    return run


train_main = _standalone("train")
eval_main = _standalone("eval")
prune_main = _standalone("prune")
distill_main = _standalone("distill")
export_main = _standalone("export")
predict_main = _standalone("predict")


def data_main():
    """Entry point of ``kq-data`` (:mod:`keras_quaternion.cli.data`)."""
    from keras_quaternion.cli.data import data_group

    return data_group()
