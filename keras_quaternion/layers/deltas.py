"""``QuaternionDeltas``: log-mel in, quaternion (log-mel, Δ, Δ², Δ³) out, inside the model."""

from __future__ import annotations

import keras
from keras import ops

from keras_quaternion.features import _check_width, _short_frames_message, apply_delta_operator

_ORDERS = (1, 2, 3)


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QuaternionDeltas(keras.layers.Layer):
    """Turn a log-mel spectrogram into the 4-component quaternion input of a quaternion model.

    Output channel 0 is the input itself (r); channels 1, 2, 3 are its 1st, 2nd and 3rd
    Savitzky–Golay time derivatives (i, j, k), exactly
    :func:`keras_quaternion.features.quaternion_features` (same code,
    :func:`keras_quaternion.features.apply_delta_operator`), i.e.
    ``librosa.feature.delta(x, width=width, order=n, axis=time)`` for n = 1, 2, 3.

    The filter is fixed: the layer has no weights. It is built from stride-1 "valid" convolutions
    with constant ``[width, 1]`` kernels along time, slices and a concatenation, so a model that
    starts with it converts to a fully int8 TFLite graph (builtins CONV_2D, STRIDED_SLICE,
    CONCATENATION) and a deployed model can take plain log-mel.

    Args:
        width: Savitzky–Golay window in frames, an odd int >= 5 (must exceed the highest order,
            3). Use the ``delta_width`` of the :class:`~keras_quaternion.features.FeatureConfig`
            the model was trained with.
        **kwargs: standard layer arguments (``name``, ``dtype``...).

    Shape:
        Input ``(batch, frames, mels, 1)`` log-mel with ``frames >= width`` (``frames`` may be
        ``None``). Output ``(batch, frames, mels, 4)``: ``[log-mel, Δ, Δ², Δ³]``.

    Raises:
        ValueError: ``width`` even, < 5 or not an int; an input that is not rank 4 with one
            channel; a statically known ``frames < width``.

    Example:
        >>> import keras, numpy as np
        >>> from keras_quaternion.layers.deltas import QuaternionDeltas
        >>> inputs = keras.Input((101, 64, 1))            # log-mel frames x mels
        >>> quat = QuaternionDeltas(width=9)(inputs)      # (None, 101, 64, 4)
        >>> outputs = keras.layers.Conv2D(8, 3)(quat)
        >>> model = keras.Model(inputs, outputs)
        >>> model(np.zeros((2, 101, 64, 1), "float32")).shape
        TensorShape([2, 99, 62, 8])
    """

    def __init__(self, width=9, **kwargs):
        super().__init__(**kwargs)
        width = _check_width(width, f"{type(self).__name__}: width")
        if width <= max(_ORDERS):
            raise ValueError(
                f"{type(self).__name__}: width must be an odd integer >= 5 (it must exceed the "
                f"highest derivative order, 3), got {width}."
            )
        self.width = width

    def _check_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[-1] != 1:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expects log-mel of shape "
                f"(batch, frames, mels, 1), got {shape}. Add a channel axis, e.g. "
                "keras.layers.Reshape((frames, mels, 1)) or x[..., None]."
            )
        frames = shape[1]
        if frames is not None and frames < self.width:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': " + _short_frames_message(frames, self.width)
            )
        return shape

    def build(self, input_shape):
        self._check_shape(input_shape)
        self.built = True

    def call(self, inputs):
        self._check_shape(inputs.shape)

        def conv(x, kernel):
            return ops.conv(x, ops.convert_to_tensor(kernel, dtype=x.dtype), padding="valid")

        d = apply_delta_operator(inputs, self.width, _ORDERS, conv=conv, concat=ops.concatenate)
        return ops.concatenate([inputs, d], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = self._check_shape(input_shape)
        return (*shape[:-1], 1 + len(_ORDERS))

    def get_config(self):
        config = super().get_config()
        config.update({"width": self.width})
        return config
