"""Parameter and multiply-accumulate (MAC) counts of Keras models.

MACs are counted per example (batch 1) for the layers that multiply by weights:

* ``Conv1D``/``Conv2D``/``Conv3D``: ``prod(output spatial) * prod(kernel) * C_in / groups * C_out``;
* ``QConv1D``/``QConv2D``: the assembled real convolution, ``prod(out) * prod(kernel) * 4C * 4F``
  (the same MACs as a real layer of the same real width; only the weights are shared); half
  that, ``prod(out) * prod(kernel) * 8 * C * F``, with ``algorithm="fast"`` (8 convolutions
  from ``C`` to ``F`` channels; its pre- and post-additions count as zero, as bias additions);
* ``DepthwiseConv1D/2D``: ``prod(out) * prod(kernel) * C_in * depth_multiplier``;
* ``SeparableConv1D/2D``: the depthwise part plus the pointwise ``prod(out) * C_in * dm * C_out``;
* ``Conv1DTranspose/2DTranspose``: ``prod(input spatial) * prod(kernel) * C_in * C_out``;
* ``Dense``/``QDense``: ``prod(leading axes) * inputs * outputs`` (``4C * 4F`` for QDense, half
  that with ``algorithm="fast"``).

Bias additions, batch normalisation (folded into the preceding layer at export), activations,
pooling, element-wise merges and weightless layers (e.g. ``QuaternionDeltas``' fixed filter)
count as zero. Nested models and ``Sequential`` models are walked.
"""

from __future__ import annotations

import math

import keras

from keras_quaternion.layers import QBatchNormalization, QConv, QDense

_ZERO_WEIGHT_TYPES = (
    QBatchNormalization,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
    keras.layers.Normalization,
)


def count_params(model):
    """Count a model's (or layer's) trainable and non-trainable parameters.

    Shared variables are counted once.

    Args:
        model: a built ``keras.Model`` or ``keras.layers.Layer``.

    Returns:
        ``(trainable, non_trainable)`` ints. For a batch-normalised model the non-trainable part
        holds the moving statistics.

    Raises:
        TypeError: ``model`` is not a Keras layer or model.
        ValueError: the model is not built yet (its weights do not exist).

    Example:
        >>> import keras
        >>> inputs = keras.Input((8,))
        >>> h = keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs))
        >>> count_params(keras.Model(inputs, h))
        (44, 8)
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"count_params: expected a keras Model or Layer, got {type(model).__name__}."
        )
    if not model.built:
        raise ValueError(
            f"count_params: '{model.name}' is not built, so it has no weights yet; call it on an "
            "input (or build it) first."
        )

    def total(variables):
        seen = {}
        for v in variables:
            seen[id(v)] = math.prod(int(d) for d in v.shape)
        return sum(seen.values())

    return total(model.trainable_weights), total(model.non_trainable_weights)


def _functional(model):
    """The functional graph behind a model (Sequential wraps one), or None."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            return None
        return model._functional
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "_run_through_graph"):
        return model
    return None


def _shape_list(tensors):
    return [tuple(t.shape) for t in keras.tree.flatten(tensors) if hasattr(t, "shape")]


def _check_known(layer, shape, what):
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"count_macs: layer '{layer.name}' ({type(layer).__name__}) has an {what} shape "
            f"{shape} with unknown dimensions; pass frames=... (the input length) so the model "
            "can be walked with a fixed input shape."
        )


_SUPPORTED = (
    "supported layers with weights: Conv1D/2D/3D (+Transpose), DepthwiseConv1D/2D, "
    "SeparableConv1D/2D, Dense, QConv1D/2D, QDense, and normalisation layers (0 MACs)."
)


def _layer_macs(layer, in_shapes, out_shapes):
    """MACs of one layer for one example, or None for layers without a MAC rule (0 MACs)."""
    if not in_shapes or not out_shapes:
        return None
    x_shape, y_shape = in_shapes[0], out_shapes[0]
    if isinstance(layer, QConv | QDense):
        return _quaternion_macs(layer, x_shape, y_shape)
    macs = _real_conv_macs(layer, x_shape, y_shape)
    if macs is not None:
        return macs
    if isinstance(layer, keras.layers.Dense):
        _check_known(layer, x_shape, "input")
        return math.prod(x_shape[1:-1]) * int(x_shape[-1]) * int(y_shape[-1])
    if isinstance(layer, keras.layers.EinsumDense):
        raise ValueError(
            f"count_macs: layer '{layer.name}' (EinsumDense) is not supported; {_SUPPORTED}"
        )
    if isinstance(layer, _ZERO_WEIGHT_TYPES) or not layer.weights:
        return None
    raise ValueError(
        f"count_macs: layer '{layer.name}' ({type(layer).__name__}) has weights but no MAC "
        f"rule; {_SUPPORTED}"
    )


def _quaternion_macs(layer, x_shape, y_shape) -> int:
    """Real multiply-accumulates of a ``QConv`` / ``QDense`` (halved by the fast algorithm)."""
    fast = 2 if layer.algorithm == "fast" else 1  # 8 instead of 16 products per quaternion
    if isinstance(layer, QDense):
        _check_known(layer, x_shape, "input")
        return math.prod(x_shape[1:-1]) * int(x_shape[-1]) * int(y_shape[-1]) // fast
    _check_known(layer, y_shape, "output")
    spatial = math.prod(y_shape[1:-1]) * math.prod(layer.kernel_size)
    return spatial * int(x_shape[-1]) * int(y_shape[-1]) // fast


def _real_conv_macs(layer, x_shape, y_shape) -> int | None:
    """MACs of a Keras convolution of any kind; ``None`` for other layers."""
    # Order matters: Separable/Depthwise/Transpose subclass the generic base conv class.
    if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        _check_known(layer, y_shape, "output")
        mid = int(x_shape[-1]) * layer.depth_multiplier
        per_position = math.prod(layer.kernel_size) * mid + mid * int(y_shape[-1])
        return math.prod(y_shape[1:-1]) * per_position
    if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        _check_known(layer, y_shape, "output")
        return math.prod(y_shape[1:-1]) * math.prod(layer.kernel_size) * int(y_shape[-1])
    transposed = (
        keras.layers.Conv1DTranspose | keras.layers.Conv2DTranspose | keras.layers.Conv3DTranspose
    )
    if isinstance(layer, transposed):
        _check_known(layer, x_shape, "input")
        spatial = math.prod(x_shape[1:-1])
        return spatial * math.prod(layer.kernel_size) * int(x_shape[-1]) * int(y_shape[-1])
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        if layer.data_format == "channels_first":
            x_shape = (x_shape[0], *x_shape[2:], x_shape[1])
            y_shape = (y_shape[0], *y_shape[2:], y_shape[1])
        _check_known(layer, y_shape, "output")
        per_group_in = int(x_shape[-1]) // layer.groups
        spatial = math.prod(y_shape[1:-1])
        return spatial * math.prod(layer.kernel_size) * per_group_in * int(y_shape[-1])
    return None


def _walk(model, input_specs, prefix, per_layer):
    """Run ``model``'s graph on symbolic ``input_specs``, adding MACs into ``per_layer``."""
    graph = _functional(model)
    if graph is None:
        raise ValueError(
            f"count_macs: '{model.name}' ({type(model).__name__}) is not a functional or "
            "Sequential model, so its layer graph cannot be walked; build it with the "
            "functional API."
        )

    def operation_fn(op):
        def run(*args, **kwargs):
            # compute_output_spec only derives shapes: no new nodes, no weights, no compute.
            if isinstance(op, keras.Model):
                inner = args[0] if len(args) == 1 else list(args)
                return _walk(op, inner, f"{prefix}{op.name}/", per_layer)
            try:
                outputs = op.compute_output_spec(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised with the layer named
                raise ValueError(
                    f"count_macs: layer '{op.name}' ({type(op).__name__}) cannot take input "
                    f"shape(s) {_shape_list(args)}: {exc}"
                ) from exc
            if isinstance(op, keras.layers.Layer):
                macs = _layer_macs(op, _shape_list(args), _shape_list(outputs))
                if macs is not None:
                    key = prefix + op.name
                    per_layer[key] = per_layer.get(key, 0) + int(macs)
            return outputs

        return run

    return graph._run_through_graph(input_specs, operation_fn=operation_fn)


def _input_specs(model, frames):
    graph = _functional(model)
    if graph is None:
        raise ValueError(
            f"count_macs: '{model.name}' ({type(model).__name__}) is not a functional or "
            "Sequential model (or is not built); MACs are counted by walking the layer graph."
        )
    specs = []
    for tensor in graph.inputs:
        shape = list(tensor.shape)
        if frames is not None:
            if len(shape) < 2:
                raise ValueError(
                    f"count_macs: frames={frames} needs inputs with a time axis (rank >= 2); "
                    f"input '{tensor.name}' has shape {tuple(shape)}."
                )
            shape[1] = frames
        shape[0] = 1
        if any(d is None for d in shape):
            raise ValueError(
                f"count_macs: model '{model.name}' has variable input shape "
                f"{tuple(tensor.shape)}; pass frames=<number of frames> to count MACs for a "
                "given input length."
            )
        specs.append(keras.KerasTensor(tuple(shape), dtype=tensor.dtype))
    return specs


def count_macs(model, frames=None, per_layer=False):
    """Count the multiply-accumulates of one forward pass of one example.

    The model's functional graph is walked with symbolic shapes (nothing is computed, the model
    is not modified). With ``frames`` the input's first non-batch axis (time) is set to it, so a
    variable-length model (``frames=None`` at build time) can be counted for a given clip length.

    Args:
        model: a functional or Sequential ``keras.Model`` (nested models are walked).
        frames: input length on axis 1, or None to use the model's own (fixed) input shape.
        per_layer: also return the MACs of every convolution and dense layer.

    Returns:
        ``total`` (int), or ``(total, {layer_name: macs})`` with ``per_layer=True`` (names of
        layers inside nested models are ``"outer/inner"``). See the module docstring for the
        per-layer rules.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: variable input shape and no ``frames``; ``frames`` < 1; an input too short
            for the model (names the layer that fails); a layer with weights but no MAC rule;
            a subclassed model whose graph cannot be walked.

    Example:
        >>> import keras
        >>> inputs = keras.Input((None, 16, 1))
        >>> y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
        >>> y = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(y))
        >>> model = keras.Model(inputs, y)
        >>> count_macs(model, frames=10)  # 10*16*9*1*8 + 8*2
        11536
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"count_macs: expected a keras.Model, got {type(model).__name__}.")
    if frames is not None:
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"count_macs: frames must be a positive int or None, got {frames!r}.")
    specs = _input_specs(model, frames)
    layers = {}
    _walk(model, specs if len(specs) > 1 else specs[0], "", layers)
    total = sum(layers.values())
    return (total, layers) if per_layer else total
