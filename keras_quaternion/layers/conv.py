"""Quaternion convolution and dense layers.

``algorithm="standard"`` runs one real op with the assembled Hamilton kernel
(:mod:`keras_quaternion.layers.hamilton`); ``algorithm="fast"`` runs 8 real ops from ``C`` to ``F``
channels (half the multiply-accumulates) on sums and differences of the input components (:mod:`keras_quaternion.layers.fast`).
Both hold the same ``(4, ..., C, F)`` kernel and compute the same function.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_quaternion.layers.fast import check_algorithm, fast_hamilton
from keras_quaternion.layers.hamilton import (
    assemble_hamilton_kernel,
    check_quaternion_channels,
)
from keras_quaternion.layers.initializers import get_quaternion_initializer

_PADDINGS = ("valid", "same")


def _as_tuple(value, rank, name, layer):
    if isinstance(value, int):
        value = (value,) * rank
    value = tuple(value)
    if len(value) != rank or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(
            f"{layer}: {name} must be a positive int or a tuple of {rank} positive ints, "
            f"got {value!r}."
        )
    return value


class _QuaternionWeightsMixin:
    """Weight creation and config shared by QConv and QDense."""

    def _init_common(
        self,
        units,
        units_name,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        kernel_constraint,
        bias_constraint,
        algorithm,
    ):
        cls = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"{cls}: {units_name} counts quaternion units and must be a positive int "
                f"(the layer outputs 4*{units_name} real channels), got {units!r}."
            )
        self.units_ = units
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_quaternion_initializer(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.algorithm = check_algorithm(cls, algorithm)

    def _build_weights(self, spatial, in_units):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(4, *spatial, in_units, self.units_),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=True,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(4 * self.units_,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None

    def real_kernel(self):
        """The assembled real kernel ``(*spatial, 4C, 4F)`` this layer applies."""
        return assemble_hamilton_kernel(self.kernel)

    def _common_config(self):
        return {
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "algorithm": self.algorithm,
        }


class QConv(_QuaternionWeightsMixin, keras.layers.Layer):
    """N-d quaternion convolution (base of :class:`QConv1D` and :class:`QConv2D`).

    Not used directly: a subclass sets the class attribute ``rank`` (1 or 2). The arguments are
    those of :class:`QConv2D`, with ``rank``-tuples for ``kernel_size``, ``strides`` and
    ``dilation_rate``. The quaternion weights are stored as the component tensor ``kernel`` of
    shape ``(4, *kernel_size, C, filters)``; :meth:`real_kernel` assembles the real kernel
    ``(*kernel_size, 4C, 4*filters)`` the layer convolves with (``algorithm="standard"``), or
    that ``algorithm="fast"`` replaces by 8 convolutions from ``C`` to ``filters`` channels.

    Shape:
        Input ``(batch, *spatial, 4C)``; output ``(batch, *spatial', 4*filters)``.

    Raises:
        ValueError: non-positive ``filters``, bad ``kernel_size``/``strides``/
            ``dilation_rate``/``padding``/``algorithm``, ``strides > 1`` together with
            ``dilation_rate > 1``, or an input whose channel count is not a positive multiple
            of 4.

    Example:
        >>> import numpy as np
        >>> layer = QConv1D(2, 3)
        >>> isinstance(layer, QConv), layer.rank
        (True, 1)
        >>> tuple(layer(np.zeros((1, 10, 8), "float32")).shape)
        (1, 8, 8)
        >>> tuple(layer.kernel.shape), tuple(layer.real_kernel().shape)
        ((4, 3, 2, 2), (3, 8, 8))
    """

    rank = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="quaternion",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        algorithm="standard",
        **kwargs,
    ):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self._init_common(
            filters,
            "filters",
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
            algorithm,
        )
        self.filters = filters
        self.kernel_size = _as_tuple(kernel_size, self.rank, "kernel_size", cls)
        self.strides = _as_tuple(strides, self.rank, "strides", cls)
        self.dilation_rate = _as_tuple(dilation_rate, self.rank, "dilation_rate", cls)
        padding = str(padding).lower()
        if padding not in _PADDINGS:
            raise ValueError(f"{cls}: padding must be one of {_PADDINGS}, got {padding!r}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{cls}: strides > 1 together with dilation_rate > 1 is not supported, got "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.padding = padding
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    def build(self, input_shape):
        in_units = check_quaternion_channels(self.name, input_shape)
        self._build_weights(self.kernel_size, in_units)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2, axes={-1: 4 * in_units})
        self.built = True

    def _conv(self, inputs, kernel):
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )

    def call(self, inputs):
        if self.algorithm == "fast":
            outputs = fast_hamilton(inputs, self.kernel, self._conv)
        else:
            outputs = self._conv(inputs, self.real_kernel())
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        check_quaternion_channels(self.name, input_shape)
        spatial = []
        for size, k, s, d in zip(
            input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate
        ):
            if size is None:
                spatial.append(None)
                continue
            eff = (k - 1) * d + 1
            if self.padding == "same":
                spatial.append((size + s - 1) // s)
            else:
                spatial.append((size - eff) // s + 1)
        return (input_shape[0], *spatial, 4 * self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
            }
        )
        config.update(self._common_config())
        return config


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QConv2D(QConv):
    """2-D quaternion convolution: ``y = W ⊗ x + b`` at every position, as one real Conv2D.

    ``filters`` counts quaternion filters: the layer maps ``4C`` real input channels
    (``C`` quaternions, ``[r|i|j|k]`` blocks) to ``4·filters`` real output channels with
    ``4·kh·kw·C·filters`` weights, a quarter of a ``Conv2D(4*filters)`` on the same input.

    Args:
        filters: number of quaternion output filters (``4*filters`` real channels out).
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, as ``keras.layers.Conv2D``.
        padding: ``"valid"`` or ``"same"``.
        dilation_rate: int or ``(dh, dw)``, as ``keras.layers.Conv2D``.
        activation: activation applied to the output (as ``keras.layers.Conv2D``).
        use_bias: add a learned bias of ``4*filters`` values.
        kernel_initializer: ``"quaternion"`` (Parcollet, Glorot criterion; the default),
            ``"quaternion_he"``, a :class:`QuaternionInitializer`, or any Keras initializer
            (applied to the ``(4, kh, kw, C, filters)`` component tensor).
        bias_initializer: Keras initializer of the bias.
        kernel_regularizer: Keras regularizer of the component tensor.
        bias_regularizer: Keras regularizer of the bias.
        kernel_constraint: Keras constraint of the component tensor.
        bias_constraint: Keras constraint of the bias.
        algorithm: ``"standard"`` (the default): one real convolution with the assembled
            ``4C x 4·filters`` kernel, 16 real products per quaternion product; ``"fast"``: 8
            real convolutions from ``C`` to ``filters`` channels on sums and differences of the
            input components (half the multiply-accumulates; faster from about 32 quaternion
            units, see ``docs/concepts.md``). Same weights, same function.

    Shape:
        Input ``(batch, H, W, 4C)``; output ``(batch, H', W', 4*filters)``.

    Raises:
        ValueError: non-positive ``filters``, bad ``kernel_size``/``strides``/``padding``/
            ``algorithm``, or an input whose channel count is not a multiple of 4.

    Example:
        >>> import numpy as np
        >>> layer = QConv2D(8, 3, padding="same")
        >>> y = layer(np.zeros((2, 16, 16, 4), "float32"))
        >>> tuple(y.shape), layer.count_params()
        ((2, 16, 16, 32), 320)
        >>> fast = QConv2D(8, 3, padding="same", algorithm="fast")
        >>> x = np.random.default_rng(0).normal(size=(2, 16, 16, 4)).astype("float32")
        >>> _ = fast(x)
        >>> _ = fast.kernel.assign(layer.kernel)
        >>> bool(np.allclose(fast(x), layer(x), atol=1e-5)), fast.count_params()
        (True, 320)
    """

    rank = 2


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QConv1D(QConv):
    """1-D quaternion convolution; see :class:`QConv2D` for arguments.

    Shape:
        Input ``(batch, steps, 4C)``; output ``(batch, steps', 4*filters)``.

    Example:
        >>> import numpy as np
        >>> tuple(QConv1D(2, 5)(np.zeros((1, 20, 8), "float32")).shape)
        (1, 16, 8)
    """

    rank = 1


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QDense(_QuaternionWeightsMixin, keras.layers.Layer):
    """Quaternion fully connected layer: ``y = W ⊗ x + b`` as one real matmul.

    Args:
        units: number of quaternion output units (``4*units`` real outputs).
        activation: activation applied to the output (as ``keras.layers.Dense``).
        use_bias: add a learned bias of ``4*units`` values.
        kernel_initializer: ``"quaternion"`` (the default), ``"quaternion_he"``, a
            :class:`QuaternionInitializer` or any Keras initializer of the ``(4, C, units)``
            component tensor.
        bias_initializer: Keras initializer of the bias.
        kernel_regularizer: Keras regularizer of the component tensor.
        bias_regularizer: Keras regularizer of the bias.
        kernel_constraint: Keras constraint of the component tensor.
        bias_constraint: Keras constraint of the bias.
        algorithm: ``"standard"`` (one matmul with the assembled kernel, the default) or
            ``"fast"`` (8 matmuls from ``C`` to ``units``; see :class:`QConv2D`).

    Shape:
        Input ``(..., 4C)``; output ``(..., 4*units)``. ``4·C·units`` weights (+ ``4·units`` bias).

    Raises:
        ValueError: non-positive ``units``, bad ``algorithm`` or an input whose last axis is not
            a multiple of 4.

    Example:
        >>> import numpy as np
        >>> layer = QDense(16)
        >>> tuple(layer(np.zeros((3, 32), "float32")).shape), layer.count_params()
        ((3, 64), 576)
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="quaternion",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        algorithm="standard",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_common(
            units,
            "units",
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
            algorithm,
        )
        self.units = units
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        in_units = check_quaternion_channels(self.name, input_shape)
        self._build_weights((), in_units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: 4 * in_units})
        self.built = True

    def call(self, inputs):
        if self.algorithm == "fast":
            outputs = fast_hamilton(inputs, self.kernel, ops.matmul)
        else:
            outputs = ops.matmul(inputs, self.real_kernel())
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        check_quaternion_channels(self.name, input_shape)
        return (*input_shape[:-1], 4 * self.units)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        config.update(self._common_config())
        return config
