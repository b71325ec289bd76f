"""Multiply-accumulates of a deployed flatbuffer, counted from its operators.

:func:`keras_quaternion.count_macs` counts a Keras model; what a device runs can differ (an
export strategy may change how quaternion products are computed). :func:`deployed_macs` counts
the operators of the flatbuffer itself: every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
compact quaternion operator, one multiply-accumulate per weight use (a grouped CONV_2D's filter
holds the input channels of one group, so its count is right too). Element-wise operators,
pooling and means are not counted (as in ``count_macs``): the ``ADD``/``SUB`` of the ``fast``
strategy's input combinations and output additions are additions, not multiply-accumulates.

Example:
    >>> import keras
    >>> from keras_quaternion.export import to_tflite
    >>> x = keras.Input((8,))
    >>> flatbuffer = to_tflite(keras.Model(x, keras.layers.Dense(3)(x)), int8=False)
    >>> deployed_macs(flatbuffer)
    24
"""

from __future__ import annotations

import math

from keras_quaternion.export.tflite import inspect_tflite


def _weights_per_output(op, tensors):
    """Weights one output element of ``op`` uses, or ``None`` if ``op`` has no weights."""
    name = op.name
    if name in ("CONV_2D", "CUSTOM:KQ_QCONV2D"):
        _, kh, kw, cin = tensors[op.inputs[1]].shape
        per = kh * kw * cin
        return 4 * per if name.startswith("CUSTOM") else per  # compact: C components, 4C inputs
    if name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = tensors[op.inputs[1]].shape
        return kh * kw
    if name in ("FULLY_CONNECTED", "CUSTOM:KQ_QFULLY_CONNECTED"):
        cin = tensors[op.inputs[1]].shape[-1]
        return 4 * cin if name.startswith("CUSTOM") else cin
    return None


def deployed_macs(tflite_model):
    """Multiply-accumulates of one inference of a flatbuffer (first subgraph).

    Args:
        tflite_model: the flatbuffer (``bytes``).

    Returns:
        The count (``int``).

    Example:
        >>> deployed_macs(int8_flatbuffer) == count_macs(model)  # doctest: +SKIP
        True
    """
    info = inspect_tflite(tflite_model)
    total = 0
    for op in info.operators:
        per = _weights_per_output(op, info.tensors)
        if per is not None:
            total += per * math.prod(info.tensors[op.outputs[0]].shape)
    return int(total)
