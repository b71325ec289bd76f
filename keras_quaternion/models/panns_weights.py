"""PANNs' AudioSet checkpoints in the registry's Keras models, without PyTorch.

PANNs (Kong et al., 2020, qiuqiangkong/audioset_tagging_cnn) publishes its trained ``Cnn6``,
``Cnn10``, ``Cnn14``, ``ResNet22`` and ``ResNet38`` as ``torch.save({"model": state_dict, ...})``
files. :func:`from_panns` reads one with the restricted reader of
:mod:`keras_quaternion.models.torch_checkpoint` and returns the registry's model
(:func:`keras_quaternion.models.build`) with every weight in place, ``bn0`` and the batch-norm
moving statistics included. Its input is PANNs' log-mel, ``FeatureConfig.panns()``.

The layers carry PANNs' module names with ``_`` for ``.`` (``conv_block1.conv1`` ->
``conv_block1_conv1``; ``resnet.layer2.0.conv1`` -> ``resnet_layer2_block1_conv1``; a ResNet
block's ``downsample.{i}`` -> ``..._downsample_conv`` / ``..._downsample_bn``). Convolution
kernels are transposed from ``(out, in, kh, kw)`` to ``(kh, kw, in, out)`` and dense ones from
``(out, in)`` to ``(in, out)``. The front end's tensors (``spectrogram_extractor.*``,
``logmel_extractor.*``) and ``num_batches_tracked`` counters are not weights of the model.
Every other key must fill exactly one weight of the right shape, and every weight of the model
must be filled: otherwise nothing is loaded and the error names the key and the expected shape.

Example:
    >>> model = from_panns("Cnn14_mAP=0.431.pth", model="cnn14")  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 527)
"""

from __future__ import annotations

import os
import re

import numpy as np

from keras_quaternion.models.torch_checkpoint import CheckpointError, read_torch_checkpoint

#: PANNs families the registry builds (its class names: ``Cnn6`` ... ``ResNet38``)
PANNS_MODELS = ("cnn6", "cnn10", "cnn14", "resnet22", "resnet38")
#: state-dict prefixes and suffixes that are not weights of the Keras model
SKIPPED = ("spectrogram_extractor.", "logmel_extractor.")
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def _layer_name(module, params):
    """Keras layer name of a PANNs module path (``params``: the module's parameter names)."""
    name = re.sub(r"\.(\d+)\.", lambda m: f".block{int(m.group(1)) + 1}.", module + ".")[:-1]
    match = re.fullmatch(r"(.*)\.downsample\.block\d+", name)
    if match:
        kind = "bn" if "running_mean" in params else "conv"
        name = f"{match.group(1)}.downsample.{kind}"
    return name.replace(".", "_")


def _group_by_module(state):
    modules = {}
    for key, value in state.items():
        if key.startswith(SKIPPED) or key.endswith(".num_batches_tracked"):
            continue
        module, _, param = key.rpartition(".")
        modules.setdefault(module, {})[param] = (key, np.asarray(value))
    return modules


def _layer_values(layer, params):
    """The values for ``layer.weights`` in order, from PANNs' parameters (transposed)."""
    kind = type(layer).__name__
    if kind == "BatchNormalization":
        missing = [p for p in _BN_PARAMS if p not in params]
        if missing:
            raise CheckpointError(f"Batch norm '{layer.name}' lacks {missing} in the checkpoint.")
        return [params[p] for p in _BN_PARAMS], set(_BN_PARAMS)
    if kind in ("Conv2D", "Dense"):
        weight = params["weight"][1]
        kernel = weight.transpose(2, 3, 1, 0) if kind == "Conv2D" else weight.T
        values = [(params["weight"][0], kernel)]
        if layer.use_bias:
            values.append(params["bias"])
        return values, {"weight"} | ({"bias"} if layer.use_bias else set())
    raise CheckpointError(f"Layer '{layer.name}' ({kind}) has no PANNs counterpart.")


def _check_shapes(layer, values):
    for variable, (key, value) in zip(layer.weights, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise CheckpointError(
                f"'{key}' has shape {tuple(value.shape)} after transposing, but layer "
                f"'{layer.name}' expects {tuple(variable.shape)}: is the checkpoint of another "
                f"architecture (model=...) or width?"
            )


def _assignments(model, state):
    """Every ``(variable, value)`` pair, checked; raises before anything is assigned."""
    modules = _group_by_module(state)
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    pairs, filled = [], set()
    for module, params in modules.items():
        name = _layer_name(module, params)
        layer = layers.get(name)
        if layer is None:
            key = next(iter(params.values()))[0]
            raise CheckpointError(
                f"Checkpoint key '{key}' has no layer '{name}' in model '{model.name}': is the "
                f"checkpoint of another architecture (model=...)?"
            )
        if name in filled:
            raise CheckpointError(f"Two checkpoint modules map to layer '{name}' ('{module}').")
        values, used = _layer_values(layer, params)
        unused = sorted(set(params) - used)
        if unused:
            raise CheckpointError(f"Checkpoint keys {[params[p][0] for p in unused]} are unused.")
        _check_shapes(layer, values)
        pairs += [(v, value) for v, (_, value) in zip(layer.weights, values)]
        filled.add(name)
    empty = sorted(set(layers) - filled)
    if empty:
        expected = {n: [tuple(w.shape) for w in layers[n].weights] for n in empty[:5]}
        raise CheckpointError(
            f"The checkpoint has no weights for {len(empty)} layer(s) of '{model.name}': "
            f"{expected} (expected shapes)."
        )
    return pairs


def panns_state_dict(checkpoint):
    """The state dict of a PANNs checkpoint file (or of an already-read object).

    Args:
        checkpoint: a path to a ``.pth`` file, or the object ``torch.save`` wrote.

    Returns:
        ``{key: numpy array}``.

    Raises:
        CheckpointError: not a PANNs checkpoint (no ``"model"`` state dict of arrays).

    Example:
        >>> panns_state_dict({"model": {"fc1.weight": np.zeros((2, 2))}})["fc1.weight"].shape
        (2, 2)
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = read_torch_checkpoint(checkpoint)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(
            "Not a PANNs checkpoint: expected a dict whose 'model' entry is the state dict of "
            "tensors, as PANNs' training script saves (torch.save({'model': ...}))."
        )
    return state


def from_panns(checkpoint, model="cnn14"):
    """The registry's ``model`` with the weights of a PANNs checkpoint.

    Args:
        checkpoint: path of a PANNs ``.pth`` file (``Cnn14_mAP=0.431.pth`` & co.), or the object
            read from one.
        model: ``"cnn6"``, ``"cnn10"``, ``"cnn14"``, ``"resnet22"`` or ``"resnet38"``: the
            architecture the checkpoint holds.

    Returns:
        A ``keras.Model`` (sigmoid outputs, one per class of the checkpoint's ``fc_audioset``)
        taking PANNs' log-mel ``(batch, frames, 64, 1)``: compute it with
        ``keras_quaternion.features.log_mel(waveform, FeatureConfig.panns())``.

    Raises:
        ValueError: ``model`` is not a PANNs architecture.
        FileNotFoundError: no such checkpoint file.
        CheckpointError: the file is not a tensors-only PyTorch checkpoint, not a PANNs state
            dict, or does not fit the architecture (the message names the key and the expected
            shape); no weight is loaded then.

    Example:
        >>> from_panns({"model": {}}, model="vgg")
        Traceback (most recent call last):
        ...
        ValueError: from_panns: model='vgg' is not a PANNs architecture; choose one of 'cnn6', ...
    """
    if model not in PANNS_MODELS:
        choices = ", ".join(repr(m) for m in PANNS_MODELS)
        raise ValueError(
            f"from_panns: model={model!r} is not a PANNs architecture; choose one of {choices}."
        )
    from keras_quaternion.models.registry import build

    state = panns_state_dict(checkpoint)
    fc = state.get("fc_audioset.weight")
    bn0 = state.get("bn0.running_mean")
    if fc is None or bn0 is None or fc.ndim != 2:
        raise CheckpointError("Not a PANNs checkpoint: it has no 'fc_audioset.weight' or 'bn0'.")
    first = state.get("conv_block1.conv1.weight")
    width = 1.0 if first is None else first.shape[0] / 64  # checkpoints of narrower models too
    keras_model = build(
        model, classes=int(fc.shape[0]), n_mels=int(bn0.shape[0]), multi_label=True, width=width
    )
    for variable, value in _assignments(keras_model, state):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return keras_model
