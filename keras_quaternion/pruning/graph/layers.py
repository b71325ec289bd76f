"""Which Keras layers produce prunable filters, pass channels through, or merge them."""

from __future__ import annotations

import keras

from keras_quaternion.layers import QConv, QDense

PRESERVING_LAYERS = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
    keras.layers.RepeatVector,
)
POOLING_LAYERS = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.AdaptiveAveragePooling1D,
    keras.layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling3D,
    keras.layers.AdaptiveMaxPooling1D,
    keras.layers.AdaptiveMaxPooling2D,
    keras.layers.AdaptiveMaxPooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)
MERGE_LAYERS = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)
#: keras.ops operations (functional-API calls such as ``keras.ops.mean``) understood by name.
OPS_UNARY = {
    "Abs", "Absolute", "Negative", "Square", "Sqrt", "Exp", "Expm1", "Log", "Log1p", "Tanh",
    "Sign", "Clip", "Cast", "Round", "Floor", "Ceil", "Reciprocal", "Copy", "Fabs", "Relu",
    "Relu6", "Sigmoid", "Softplus", "Softsign", "Silu", "Gelu", "Elu", "Selu", "Celu",
    "LeakyRelu", "HardSigmoid", "HardSilu", "HardTanh", "LogSigmoid", "Squareplus", "Threshold",
    "StopGradient",
}  # fmt: skip
OPS_BINARY = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Fmax", "Fmin",
}  # fmt: skip
OPS_REDUCE = {"Mean", "Max", "Min", "Sum", "Prod", "Amax", "Amin", "Std", "Var", "Median"}
OPS_RESHAPE = {"Reshape", "ExpandDims", "Squeeze", "Ravel"}

PRODUCER_TYPES = "Conv1D, Conv2D, Conv3D, Dense, QConv1D, QConv2D, QDense"

REGISTERED_PRESERVING = []


def register_channel_preserving(layer_class):
    """Declare a custom layer class channel-preserving, so that pruning can pass through it.

    A channel-preserving layer computes each output channel from the same input channel only,
    keeps the channel axis last with the same size, and has no per-channel weights (e.g. a
    custom pooling or activation layer). Usable as a class decorator.

    Args:
        layer_class: a ``keras.layers.Layer`` subclass.

    Returns:
        ``layer_class``.

    Raises:
        TypeError: not a Layer subclass.

    Example:
        >>> import keras
        >>> @register_channel_preserving
        ... class Halve(keras.layers.Layer):
        ...     def call(self, x):
        ...         return x * 0.5
        >>> Halve in REGISTERED_PRESERVING
        True
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"Expected a keras Layer subclass, got {layer_class!r}.")
    if layer_class not in REGISTERED_PRESERVING:
        REGISTERED_PRESERVING.append(layer_class)
    return layer_class


def _is_real_conv(layer):
    conv_types = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
    return isinstance(layer, conv_types) and not isinstance(layer, transposed)


def producer_kind(layer):
    """``"quaternion"`` or ``"real"`` for a layer whose output filters can be pruned, else None.

    Producers are ``QConv1D``/``QConv2D``/``QDense`` (``"quaternion"``), ``Dense`` and
    ungrouped, channels-last, non-transposed ``Conv1D``/``Conv2D``/``Conv3D`` (``"real"``).

    Args:
        layer: a Keras layer.

    Returns:
        ``"quaternion"``, ``"real"`` or ``None``.

    Example:
        >>> from keras_quaternion import QDense
        >>> producer_kind(QDense(2)), producer_kind(keras.layers.Conv2D(4, 3))
        ('quaternion', 'real')
        >>> producer_kind(keras.layers.Conv2D(4, 3, groups=2)), producer_kind(keras.layers.ReLU())
        (None, None)
    """
    if isinstance(layer, QConv | QDense):
        return "quaternion"
    if _is_real_conv(layer):
        if getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last":
            return "real"
        return None
    if isinstance(layer, keras.layers.Dense):
        return "real"
    return None


def is_conv(layer):
    """True for the convolution producers (the layers ``layers="all"`` prunes).

    True for any ``QConv`` and any non-transposed real ``Conv1D``/``Conv2D``/``Conv3D``;
    :func:`~keras_quaternion.pruning.prune` applies it to the graph's producers only (see
    :func:`producer_kind`), so dense layers are left out of ``layers="all"``.

    Args:
        layer: a Keras layer.

    Returns:
        ``bool``.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> is_conv(QConv2D(1, 3)), is_conv(keras.layers.Conv1D(2, 3))
        (True, True)
        >>> is_conv(keras.layers.Dense(2))
        False
    """
    return isinstance(layer, QConv) or _is_real_conv(layer)


def units_of(layer):
    return int(layer.filters if hasattr(layer, "filters") else layer.units)
