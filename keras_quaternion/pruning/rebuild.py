"""Rebuild a genuinely smaller functional model with the kept weights copied.

The new model is made from the original's own config: the pruned producers get smaller
``filters``/``units``, a ``Reshape`` that spells out the channel count gets the new one, and the
layers whose input shape changed lose their stale ``build_config`` (they are built again on the
smaller tensors). Then every layer's weights are copied, sliced where channels were removed:

* producer kernels and biases along their output axis (the four ``[r|i|j|k]`` blocks of a
  quaternion layer at once: its kernel holds one ``(4, ..., C, F)`` component tensor);
* consumer kernels along their input axis (whole input quaternions for quaternion layers);
* per-channel parameters: ``BatchNormalization`` (4 channels per pruned quaternion filter),
  ``QBatchNormalization`` (its per-unit ``gamma``/variance or 4x4 matrices and per-channel
  ``beta``/mean), ``PReLU``, ``DepthwiseConv``.
"""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_quaternion.layers import QBatchNormalization, QConv, QDense
from keras_quaternion.pruning.graph import producer_kind


class RebuildError(RuntimeError):
    """The rebuilt model does not fit the copied weights (a bug; please report it).

    Raised by :func:`rebuild` and :func:`layer_masks` (and so by
    :func:`keras_quaternion.pruning.prune`); a subclass of ``RuntimeError``.

    Example:
        >>> try:
        ...     raise RebuildError("Layer 'q1': rebuilt weights have other shapes.")
        ... except RuntimeError as err:
        ...     print(type(err).__name__, err)
        RebuildError Layer 'q1': rebuilt weights have other shapes.
    """


def _unit_mask(mask, layer_name):
    blocks = np.asarray(mask).reshape(4, -1)
    if not (blocks == blocks[0]).all():
        raise RebuildError(
            f"Layer '{layer_name}': the kept channels do not form whole quaternions "
            "(the four [r|i|j|k] blocks disagree)."
        )
    return blocks[0]


def layer_masks(graph, masks):
    """``{layer name: (input masks, output masks, role)}`` for every layer whose channels change.

    Args:
        graph: a :class:`~keras_quaternion.pruning.graph.DependencyGraph`.
        masks: ``{tensor key: bool keep mask}``, from ``graph.keep_masks(pruned_units)``.

    Returns:
        For each changed layer, in graph order: the keep masks of its input tensors, of its
        output tensors (bool ``(channels,)`` arrays) and its role in the graph (``"producer"``,
        ``"consumer"``, ``"per-channel"``, ``"pass-through"``, ...).

    Raises:
        RebuildError: a layer called more than once (shared) would change channels.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning.graph import build_dependency_graph
        >>> x = keras.Input((8, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(QConv2D(2, 3, name="q1")(x))
        >>> model = keras.Model(x, keras.layers.Dense(3, name="head")(y))
        >>> graph = build_dependency_graph(model)
        >>> unit = graph.groups[0].unit_roots[1]  # filter 1 of q1
        >>> changed = layer_masks(graph, graph.keep_masks([unit]))
        >>> list(changed)
        ['q1', 'gap', 'head']
        >>> ins, outs, role = changed["q1"]
        >>> outs[0].astype(int).tolist(), role  # the [r|i|j|k] channels of filter 1 go
        ([1, 0, 1, 0, 1, 0, 1, 0], 'producer')
    """
    changed = {}
    for name in graph.layer_names():
        records = graph.records(name)
        first = records[0]
        ins = [masks[k] for k in first.in_keys if k in masks]
        outs = [masks[k] for k in first.out_keys if k in masks]
        if all(m.all() for m in ins + outs):
            continue
        if len(records) > 1:
            raise RebuildError(f"Layer '{name}' is shared but its channels change.")
        changed[name] = (ins, outs, first.role)
    return changed


def _edit_config(layer_cfg, layer, ins, outs, role):
    cfg = layer_cfg["config"]
    layer_cfg.pop("build_config", None)
    if role == "producer":
        kept = int(outs[0].sum())
        units = kept // 4 if producer_kind(layer) == "quaternion" else kept
        cfg["filters" if "filters" in cfg else "units"] = units
    elif role == "reshape":
        kept = int(outs[0].sum())
        for key in ("target_shape", "newshape"):
            if key in cfg and cfg[key] is not None and cfg[key][-1] != -1:
                cfg[key] = [*cfg[key][:-1], kept]


def _config_entries(config):
    """Yield (layer name, entry) for each layer entry of a Functional or Sequential config."""
    for entry in config.get("layers", []):
        name = entry.get("name") or entry.get("config", {}).get("name")
        yield name, entry


def _sliced_weights(layer, ins, outs, role):
    """New weight values for a layer whose channels change, in ``layer.weights`` order."""
    names = [v.name.split("/")[-1] for v in layer.weights]
    values = layer.get_weights()
    in_mask = ins[0] if ins else None
    out_mask = outs[0] if outs else None
    result = []
    if role == "producer":
        quaternion = isinstance(layer, QConv | QDense)
        keep_in = _unit_mask(in_mask, layer.name) if quaternion and in_mask is not None else in_mask
        keep_out = _unit_mask(out_mask, layer.name) if quaternion else out_mask
        for name, value in zip(names, values):
            if name == "kernel":
                if keep_in is not None:
                    value = value[..., keep_in, :]
                value = value[..., keep_out]
            elif name == "bias":
                value = value[out_mask]
            result.append(value)
        return result
    if role == "quaternion-per-channel" and isinstance(layer, QBatchNormalization):
        units = _unit_mask(in_mask, layer.name)
        for name, value in zip(names, values):
            per_unit = name in ("gamma", "moving_variance", "moving_covariance")
            result.append(value[units] if per_unit else value[in_mask])
        return result
    if role == "per-channel":
        for name, value in zip(names, values):
            if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
                value = value[..., in_mask, :] if name == "kernel" else value[in_mask]
            elif isinstance(layer, keras.layers.PReLU):
                if value.shape[-1] == len(in_mask) and len(in_mask) > 1:
                    value = value[..., in_mask]
            else:  # BatchNormalization: every variable is per channel
                value = value[in_mask]
            result.append(value)
        return result
    if role in ("consumer",):
        return values
    # Channel-preserving layers without channel-shaped weights keep theirs.
    return values


def rebuild(model, graph, pruned_units):
    """Return a new, smaller model with the given pruning units removed.

    Args:
        model: the original model (the one ``graph`` was built from).
        graph: its :class:`~keras_quaternion.pruning.graph.DependencyGraph`.
        pruned_units: atom roots to remove (from ``graph.groups[g].unit_roots``).

    Returns:
        ``(new_model, changed)`` where ``changed`` maps each layer name whose channels changed
        to ``(input keep masks, output keep masks, role)``.

    Raises:
        RebuildError: the edited config cannot be rebuilt, the rebuilt architecture does not
            accept the sliced weights, or a shared layer would change channels.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning.graph import build_dependency_graph
        >>> x = keras.Input((8, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(QConv2D(2, 3, name="q1")(x))
        >>> model = keras.Model(x, keras.layers.Dense(3, name="head")(y))
        >>> graph = build_dependency_graph(model)
        >>> unit = graph.groups[0].unit_roots[1]  # filter 1 of q1
        >>> small, changed = rebuild(model, graph, [unit])
        >>> small.get_layer("q1").filters, tuple(small.get_layer("head").kernel.shape)
        (1, (4, 3))
        >>> kept = keras.ops.convert_to_numpy(small.get_layer("q1").kernel)
        >>> bool((kept == keras.ops.convert_to_numpy(model.get_layer("q1").kernel)[..., :1]).all())
        True
    """
    masks = graph.keep_masks(pruned_units)
    changed = layer_masks(graph, masks)
    config = copy.deepcopy(model.get_config())
    layers_by_name = {}
    for op in getattr(model, "operations", model.layers):
        layers_by_name[op.name] = op
    for name, entry in _config_entries(config):
        if name in changed:
            ins, outs, role = changed[name]
            _edit_config(entry, layers_by_name.get(name), ins, outs, role)

    classes = {type(op).__name__: type(op) for op in layers_by_name.values()}
    with keras.saving.CustomObjectScope(classes):
        try:
            new_model = type(model).from_config(config)
        except Exception as exc:  # noqa: BLE001 - add context, keep the cause
            raise RebuildError(
                f"Rebuilding model '{model.name}' from its edited config failed: {exc}"
            ) from exc

    for layer in model.layers:
        if not layer.weights:
            continue
        new_layer = new_model.get_layer(layer.name)
        if layer.name in changed:
            ins, outs, role = changed[layer.name]
            values = _sliced_weights(layer, ins, outs, role)
        else:
            values = layer.get_weights()
        expected = [tuple(v.shape) for v in new_layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise RebuildError(
                f"Layer '{layer.name}' ({type(layer).__name__}): rebuilt weights have shapes "
                f"{expected} but the sliced originals have {got}."
            )
        new_layer.set_weights(values)
    return new_model, changed
