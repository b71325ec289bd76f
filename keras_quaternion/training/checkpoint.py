"""The resumable state of a run: per-epoch checkpoints and the variables they hold.

After every epoch :class:`Checkpointer` writes ``checkpoint/ckpt-EEEE.npz`` (model variables
``v*``, best weights ``b*``, optimizer variables ``o*``: the step counter that drives the
learning-rate schedule included) and then ``checkpoint/checkpoint.json`` (epoch, history, best
score, the run's settings) pointing at it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_quaternion.files import atomic_path, atomic_write
from keras_quaternion.training.records import json_float

__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpointer",
    "describe_variables",
    "restore",
    "variable_list",
]

CHECKPOINT_VERSION = 1


class Checkpointer:
    """Per-epoch checkpoint: ``checkpoint/ckpt-EEEE.npz`` + pointer ``checkpoint/checkpoint.json``.

    The arrays file is written first, then the pointer naming it, each to a temporary name moved
    into place, so a process killed at any moment leaves the last complete epoch readable.

    Example:
        >>> ckpt = Checkpointer(Path("run"))
        >>> ckpt.read() is None  # nothing written yet
        True
        >>> ckpt.write({"epoch": 1, "history": []}, {"v00000": np.ones(2)})
        >>> state = ckpt.read()
        >>> state["file"], ckpt.arrays(state)["v00000"].tolist()
        ('ckpt-0001.npz', [1.0, 1.0])
    """

    def __init__(self, out_dir: Path):
        self.folder = out_dir / "checkpoint"
        self.pointer = self.folder / "checkpoint.json"

    def read(self) -> dict | None:
        if not self.pointer.is_file():
            return None
        try:
            state = json.loads(self.pointer.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The checkpoint pointer {self.pointer} is unreadable ({err}); delete the "
                "checkpoint/ folder or pass resume=False (--restart) to start over."
            ) from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"The checkpoint in {self.folder} has format version {state.get('version')}, this "
                f"code writes {CHECKPOINT_VERSION}; pass resume=False (--restart) to start over."
            )
        return state

    def arrays(self, state: dict) -> dict[str, np.ndarray]:
        path = self.folder / state["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The checkpoint file {path} is missing or unreadable ({err}); pass resume=False "
                "(--restart) to start over."
            ) from None

    def write(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{state['epoch']:04d}.npz"
        with atomic_path(self.folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        state = {**state, "file": name, "version": CHECKPOINT_VERSION}
        atomic_write(self.pointer, json.dumps(state, indent=1, default=json_float))
        for old in self.folder.glob("ckpt-*.npz"):  # keep only the one the pointer names
            if old.name != name:
                old.unlink(missing_ok=True)

    def mark_finished(self, state: dict) -> None:
        state = {**state, "finished": True}
        atomic_write(self.pointer, json.dumps(state, indent=1, default=json_float))


def variable_list(net, trainer) -> tuple[list, list]:
    """``(model variables, optimizer variables)``: what a checkpoint saves and restores.

    The model's weights come first, then its other variables (the dropout seed generators'
    states, when Keras exposes them), so that a resumed run draws the same dropout masks.

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> net = keras.Model(x, keras.layers.Dense(2)(x))
        >>> net.compile(optimizer="adam", loss="mse")
        >>> net.optimizer.build(net.trainable_variables)
        >>> model_vars, opt_vars = variable_list(net, net)
        >>> len(model_vars), [v.path.split("/")[-1] for v in opt_vars][:2]
        (2, ['iteration', 'learning_rate'])
    """
    return model_variables(net), list(trainer.optimizer.variables)


def model_variables(net) -> list:
    """``net.weights``, then its other variables (the dropout seed generators' states, when
    Keras exposes them): the order in which checkpoints save a model's variables.

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> [v.path for v in model_variables(keras.Model(x, keras.layers.Dense(2, name="d")(x)))]
        ['d/kernel', 'd/bias']
    """
    out = list(net.weights)
    seen = {id(v) for v in out}
    out += [v for v in net.variables if id(v) not in seen]
    return out


def describe_variables(variables) -> list[list]:
    """``[[path, shape], ...]`` of the variables, recorded in the checkpoint.

    Example:
        >>> import keras
        >>> describe_variables([keras.Variable(np.zeros((2, 3)), name="kernel")])
        [['kernel', [2, 3]]]
    """
    return [[getattr(v, "path", v.name), list(v.shape)] for v in variables]


def restore(variables, arrays: dict, prefix: str, where: str) -> None:
    """Assign ``arrays[f"{prefix}{i:05d}"]`` to the i-th variable, checking shapes.

    Raises:
        ValueError: an array is missing or has another shape (another model wrote it).

    Example:
        >>> import keras
        >>> v = keras.Variable(np.zeros(2))
        >>> restore([v], {"v00000": np.ones(2)}, "v", "run/checkpoint")
        >>> keras.ops.convert_to_numpy(v).tolist()
        [1.0, 1.0]
    """
    for i, v in enumerate(variables):
        key = f"{prefix}{i:05d}"
        if key not in arrays:
            raise ValueError(
                f"The checkpoint {where} has fewer {prefix!r} arrays than the model has "
                "variables; it was written by another model. Pass resume=False (--restart)."
            )
        value = arrays[key]
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(
                f"The checkpoint {where} does not match the model: variable "
                f"{getattr(v, 'path', v.name)} has shape {tuple(v.shape)}, checkpoint "
                f"{tuple(value.shape)}. Pass resume=False (--restart) or use another out_dir."
            )
        v.assign(value)
