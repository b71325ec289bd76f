"""Transfer learning from PANNs' AudioSet checkpoints: ``train(init=...)`` and PANNs teachers.

* :func:`pretrained_panns`: the registry's real ``cnn6`` ... ``resnet38`` built for a dataset's
  classes, its body loaded from a PANNs checkpoint (:func:`keras_quaternion.models.from_panns`)
  and its output layer (``fc_audioset``) fresh. ``train(model, data, init="panns:PATH")``
  fine-tunes it; ``freeze_epochs`` trains the new head alone first
  (:class:`~keras_quaternion.training.callbacks.FreezeBody`).
* :func:`finetune_panns_teacher`: a PANNs checkpoint made into a teacher for the dataset (its
  527-class AudioSet head replaced and trained for a few epochs, in ``OUT/teacher``), for
  ``train(student, data, teacher="panns:PATH", teacher_epochs=N)``.

Both need the data prepared with PANNs' front end, ``FeatureConfig.panns()``
(:func:`check_panns_features`): ``kq-train`` prepares it so; the features' log-mel channel is
then exactly PANNs' input, and the run's recorded ``feature_config`` (``metrics.json``) is
PANNs'. See ``docs/transfer.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path

from keras_quaternion.features import FeatureConfig
from keras_quaternion.models.panns_weights import PANNS_MODELS, from_panns, panns_state_dict
from keras_quaternion.models.torch_checkpoint import CheckpointError
from keras_quaternion.training.recipe import FINETUNE_LR

__all__ = [
    "FINETUNE_LR",
    "PANNS_PREFIX",
    "PannsSource",
    "check_panns_features",
    "check_teacher_features",
    "finetune_panns_teacher",
    "output_layer",
    "panns_architecture",
    "pretrained_panns",
]

#: how a checkpoint is named where a model or a teacher is expected (``--init panns:PATH``)
PANNS_PREFIX = "panns:"


@dataclasses.dataclass(frozen=True)
class PannsSource:
    """A PANNs checkpoint named ``panns:PATH``.

    Example:
        >>> PannsSource.parse("panns:Cnn14_mAP=0.431.pth").path.name
        'Cnn14_mAP=0.431.pth'
        >>> PannsSource.parse("runs/x/model.keras") is None
        True
    """

    path: Path

    @classmethod
    def parse(cls, value) -> PannsSource | None:
        """``value`` as a :class:`PannsSource`, or ``None`` if it is not ``"panns:..."``.

        Raises:
            ValueError: ``"panns:"`` with no path after it.
        """
        if isinstance(value, PannsSource):
            return value
        if not isinstance(value, str) or not value.startswith(PANNS_PREFIX):
            return None
        path = value[len(PANNS_PREFIX) :].strip()
        if not path:
            raise ValueError(
                f"{value!r} names no checkpoint: write panns:PATH, e.g. "
                "panns:Cnn14_mAP=0.431.pth (a checkpoint downloaded from PANNs' record)."
            )
        return cls(Path(path).expanduser())

    @property
    def label(self) -> str:
        """``panns:<absolute path>``, as the run's settings record it."""
        return PANNS_PREFIX + str(self.path.resolve())

    def state_dict(self) -> dict:
        """The checkpoint's state dict.

        Raises:
            FileNotFoundError: no such file.
            CheckpointError: not a tensors-only PyTorch checkpoint holding a PANNs state dict.
        """
        if not self.path.is_file():
            raise FileNotFoundError(
                f"PANNs checkpoint '{self.path}' does not exist (panns:PATH names a .pth file "
                "downloaded from PANNs' record, e.g. Cnn14_mAP=0.431.pth)."
            )
        stat = self.path.stat()
        return _read_state(str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def _read_state(path: str, mtime_ns: int, size: int) -> dict:
    """The state dict of ``path``, read once while the file is unchanged (a command checks the
    checkpoint, tells its architecture and converts it: one read). Nobody modifies it."""
    return panns_state_dict(path)


def panns_architecture(state: dict) -> str:
    """The PANNs architecture a state dict holds, told from its keys.

    Args:
        state: a PANNs state dict (:func:`keras_quaternion.models.panns_weights.
            panns_state_dict`).

    Returns:
        ``"cnn6"``, ``"cnn10"``, ``"cnn14"``, ``"resnet22"`` or ``"resnet38"``.

    Raises:
        CheckpointError: the keys are those of none of them.

    Example:
        >>> panns_architecture({f"conv_block{i}.conv1.weight": 0 for i in range(1, 5)})
        'cnn6'
        >>> panns_architecture({"resnet.layer1.2.conv1.weight": 0})
        'resnet38'
    """
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"resnet\.layer1\.(\d+)\.", k))}
    convs = {int(m.group(1)) for k in state if (m := re.match(r"conv_block(\d+)\.", k))}
    if blocks:
        name = {2: "resnet22", 3: "resnet38"}.get(max(blocks) + 1)
    elif max(convs, default=0) == 6:
        name = "cnn14"
    elif max(convs, default=0) == 4:
        name = "cnn10" if "conv_block1.conv2.weight" in state else "cnn6"
    else:
        name = None
    if name is None:
        raise CheckpointError(
            "The checkpoint is none of PANNs' Cnn6, Cnn10, Cnn14, ResNet22, ResNet38 (its keys "
            f"have conv blocks {sorted(convs)} and ResNet layer1 blocks {sorted(blocks)})."
        )
    return name


def check_panns_features(prepared, what: str) -> None:
    """Raise unless ``prepared`` was featurised with ``FeatureConfig.panns()``.

    Args:
        prepared: the :class:`~keras_quaternion.training.pipeline.PreparedData`.
        what: what needs them, for the message (``"init='panns:...'"``).

    Raises:
        ValueError: other features (the message names the fields that differ).
    """
    want, have = FeatureConfig.panns().to_dict(), prepared.feature_config.to_dict()
    diff = [f"{k}={have.get(k)!r} (PANNs: {v!r})" for k, v in want.items() if have.get(k) != v]
    if diff:
        raise ValueError(
            f"{what} needs the features PANNs was trained on, FeatureConfig.panns(), but the "
            f"data has {', '.join(diff)}; prepare it with prepare(..., "
            "feature_config=FeatureConfig.panns()) (kq-train does so itself)."
        )


def check_teacher_features(path, prepared) -> None:
    """Raise when the ``.keras`` teacher at ``path`` was trained on other features.

    The teacher sees the log-mel channel of the student's features (or all of them), so both
    must come from one ``FeatureConfig``. The teacher's is read from the ``metrics.json`` its
    training run wrote beside it; without one nothing is checked (the input shapes still are).

    Raises:
        ValueError: the recorded feature configuration differs from ``prepared``'s.
    """
    import json

    info_path = Path(path).parent / "metrics.json"
    try:
        recorded = json.loads(info_path.read_text(encoding="utf-8")).get("feature_config")
    except (OSError, ValueError, AttributeError):
        return
    if not recorded:
        return
    want, have = FeatureConfig.from_dict(recorded).to_dict(), prepared.feature_config.to_dict()
    diff = [f"{k}={have.get(k)!r} (teacher: {v!r})" for k, v in want.items() if have.get(k) != v]
    if diff:
        raise ValueError(
            f"The teacher '{path}' was trained on other features than the data's "
            f"({', '.join(diff)}, per {info_path}); teacher and student read features computed "
            "from the same audio with one FeatureConfig: prepare the data with the teacher's "
            "(kq-train uses FeatureConfig.panns() for PANNs teachers)."
        )


def output_layer(model):
    """The layer that produces ``model``'s output (the classifier head).

    Raises:
        ValueError: several outputs, or an output layer without trainable weights.

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> output_layer(keras.Model(x, keras.layers.Dense(2, name="head")(x))).name
        'head'
    """
    outputs = getattr(model, "outputs", None) or []
    layer = outputs[0]._keras_history.operation if len(outputs) == 1 else None
    if layer is None or not layer.trainable_weights:
        raise ValueError(
            f"Model {model.name!r}: freezing the body needs one output layer with weights (a "
            "Dense classifier); this model's output is not one."
        )
    return layer


def _checkpoint_width(state: dict) -> float:
    first = state.get("conv_block1.conv1.weight")
    return 1.0 if first is None else first.shape[0] / 64


def pretrained_panns(source, model: str, prepared, *, width=None, model_options=None):
    """The registry's ``model`` for ``prepared``, its body from a PANNs checkpoint.

    Every layer but the output layer ``fc_audioset`` takes the checkpoint's weights (batch-norm
    statistics included); the output layer is the registry's fresh one for the data's classes
    (softmax, or sigmoid for multi-label data).

    Args:
        source: ``"panns:PATH"``, a :class:`PannsSource` or the checkpoint's path.
        model: the architecture the checkpoint holds: ``"cnn6"``, ``"cnn10"``, ``"cnn14"``,
            ``"resnet22"`` or ``"resnet38"``.
        prepared: the data (classes, frames; its features must be ``FeatureConfig.panns()``).
        width: ``None`` (the checkpoint's) or that same width.
        model_options: more :func:`keras_quaternion.models.build` arguments (``dropout``).

    Returns:
        The ``keras.Model``.

    Raises:
        ValueError: ``model`` is not a PANNs architecture, another ``width``, or other features.
        FileNotFoundError: no such checkpoint.
        CheckpointError: the file is not a PANNs checkpoint of ``model`` (the message names the
            key and the expected shape).
    """
    from keras_quaternion.training.model_io import build_by_name

    if model not in PANNS_MODELS:
        raise ValueError(
            f"init='panns:...' loads PANNs' real architectures ({', '.join(PANNS_MODELS)}); "
            f"model={model!r} is not one. A quaternion model learns from PANNs by distillation "
            "(teacher='panns:PATH')."
        )
    source = _as_source(source)
    check_panns_features(prepared, "init='panns:...'")
    state = source.state_dict()
    converted = from_panns({"model": state}, model=model)
    body_width = _checkpoint_width(state)
    if width is not None and abs(width - body_width) > 1e-9:
        raise ValueError(
            f"width={width:g} but the checkpoint '{source.path}' holds a {model} of width "
            f"{body_width:g}; leave the width out (--width) to use the checkpoint's."
        )
    net = build_by_name(model, prepared, body_width, model_options)
    head = output_layer(net)
    for layer in net.layers:
        if layer is not head and layer.weights:
            for variable, value in zip(layer.weights, converted.get_layer(layer.name).weights):
                variable.assign(value)
    return net


def _as_source(source) -> PannsSource:
    parsed = PannsSource.parse(source)
    if parsed is not None:
        return parsed
    if isinstance(source, str | os.PathLike):
        return PannsSource(Path(source).expanduser())
    raise TypeError(
        f"A PANNs checkpoint is named 'panns:PATH' or by its path, got {type(source).__name__}."
    )


def finetune_panns_teacher(source, prepared, *, out_dir, epochs, freeze_epochs=0, **recipe):
    """Make a PANNs checkpoint a teacher for ``prepared``: replace its AudioSet head and train.

    The checkpoint's architecture is told from its keys (:func:`panns_architecture`); the
    model is :func:`pretrained_panns` (a fresh output layer for the data's classes), trained
    with :func:`~keras_quaternion.training.train` for ``epochs`` epochs into ``out_dir``
    (resumable like any run; a finished one is not trained again).

    Args:
        source: ``"panns:PATH"`` or a :class:`PannsSource`.
        prepared: the data (``FeatureConfig.panns()`` features).
        out_dir: the teacher's run folder (``<student run>/teacher``).
        epochs: epochs of fine-tuning (>= 1).
        freeze_epochs: of them, how many train the new head alone.
        **recipe: more :func:`~keras_quaternion.training.train` arguments (``lr``,
            ``batch_size``, ``seed``, ``strategy``, ``resume``, augmentation, ``verbose``).

    Returns:
        ``(teacher model, architecture name, the teacher run's result)``.

    Raises:
        FileNotFoundError, CheckpointError, ValueError: as :func:`pretrained_panns` and
            ``train``.
    """
    from keras_quaternion.training.loop import train
    from keras_quaternion.training.model_io import load_model

    source = _as_source(source)
    check_panns_features(prepared, "teacher='panns:...'")
    arch = panns_architecture(source.state_dict())
    result = train(
        arch,
        prepared,
        out_dir=out_dir,
        epochs=epochs,
        init=source,
        freeze_epochs=freeze_epochs,
        model_name=f"{arch} (PANNs teacher)",
        **recipe,
    )
    return load_model(Path(out_dir) / "model.keras"), arch, result
