"""Strategy ``fast``: quaternion layers as 8 real products between additions, builtins only.

Every ``QConv1D`` / ``QConv2D`` / ``QDense`` (whatever its own ``algorithm``) is deployed as
:class:`FastQuaternion`, the Howell-Lafon form of :mod:`keras_quaternion.layers.fast`:

1. the input's four component blocks ``p, q, r, s`` (``SPLIT``) give 8 sums and differences
   (4 ``ADD``, 4 ``SUB``);
2. 8 ``CONV_2D``, each ``C -> F``, multiply them by the 8 weight combinations (coefficients ±1
   and ±½, computed here in float64): half the weights and half the multiply-accumulates of the
   assembled ``4C -> 4F`` kernel; a dense layer is a 1x1 convolution;
3. the 4 output blocks are 12 additions of the products (``ADD``/``SUB``), concatenated.

``grouped=True`` computes the 8 products with ONE grouped ``CONV_2D`` (8 groups of ``C -> F``)
instead: it converts and runs on LiteRT and TFLite Micro, but its ``8F``-channel output must be
split into 8 tensors for the additions (TFLite has no views), so it and the copies are alive
together: the largest activation doubles. The default is therefore 8 convolutions
(docs/deploy.md has the measurements).

Batch norm after the layer: a gain equal for the four components of each quaternion unit
(``QBatchNormalization``, not whitened) scales each unit's weights and folds into the product
weights; the layer's bias and the norm's shift ride on the products ``m0 .. m3``, each of which
reaches exactly one output block. A gain per real channel (Keras ``BatchNormalization``) does not
commute with the post-additions (``m4 .. m7`` reach all four blocks): it stays as a per-channel
affine after the layer, one 1x1 ``DEPTHWISE_CONV_2D`` (per-channel int8 weights, int32 bias; the
activation fuses into it). A whitened ``QBatchNormalization`` mixes each unit's four components:
that layer stays expanded (a real layer with the folded kernel) and a warning says so.

Example:
    >>> FastStrategy().name, FastStrategy().custom_ops, FastStrategy().int8_only
    ('fast', (), False)
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import numpy as np
from keras import ops

from keras_quaternion.export import flatbuffer as fbs
from keras_quaternion.export.strategies.base import ExportStrategy
from keras_quaternion.layers.fast import (
    FAST_INPUT_COMBOS,
    FAST_OUTPUT_COMBOS,
    FAST_WEIGHT_COMBOS,
    fast_outputs,
)

#: the product ``m_o`` that reaches output block ``o`` alone, with coefficient +1 (it carries
#: that block's bias)
BIAS_PRODUCTS = tuple(
    next(m for m in range(8) if row[m] == 1 and sum(abs(r[m]) for r in FAST_OUTPUT_COMBOS) == 1)
    for row in FAST_OUTPUT_COMBOS
)


#: the order the 8 products are computed in: the pairs the additions combine first
#: (``m4 ± m7``, ``m5 ± m6``), then those reaching one output block; TFLite Micro's memory
#: planner packs the activations of this order into a smaller arena than of ``m0 .. m7``
PRODUCT_ORDER = (4, 7, 5, 6, 0, 1, 2, 3)


def _combination(parts, coeffs):
    """``first ± second``: an input combination (two blocks, coefficients +1 and ±1)."""
    (_, first), (c1, second) = [(c, part) for c, part in zip(coeffs, parts) if c]
    return ops.add(first, second) if c1 > 0 else ops.subtract(first, second)


class FastQuaternion(keras.layers.Layer):
    """A quaternion layer as deployed by the ``fast`` strategy (inference only).

    Args:
        rank: 2 (``QConv2D``), 1 (``QConv1D``) or 0 (``QDense``: a 1x1 convolution on every
            position of the flattened leading axes).
        in_units: ``C``, quaternion units of the input (``4C`` real channels).
        units: ``F``, quaternion units of the output (``4F`` real channels).
        kernel_size: a ``rank``-tuple, as the quaternion layer's.
        strides: a ``rank``-tuple, as the quaternion layer's.
        dilation_rate: a ``rank``-tuple, as the quaternion layer's.
        padding: ``"valid"`` or ``"same"``.
        activation: applied last, as the quaternion layer's.
        affine: end with a per-real-channel gain and shift (a batch norm that cannot fold into
            the products).
        grouped: compute the 8 products with one grouped convolution (else 8 convolutions).

    Weights: ``kernel`` ``(*kernel_size, C, 8F)`` (group ``m`` holds weight combination ``m``),
    ``bias`` ``(8F,)`` of the products, and with ``affine`` ``gain`` and ``shift`` ``(4F,)``.

    Example:
        >>> layer = FastQuaternion(0, 2, 3, name="fc")
        >>> tuple(layer(np.zeros((5, 8), "float32")).shape), tuple(layer.kernel.shape)
        ((5, 12), (1, 1, 2, 24))
    """

    def __init__(self, rank, in_units, units, kernel_size=(), strides=(), padding="valid",
                 dilation_rate=(), activation=None, affine=False, grouped=False,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.rank, self.in_units, self.units = int(rank), int(in_units), int(units)
        ones = (1,) if self.rank == 1 else (1, 1)  # a dense layer is a 1x1 2-D convolution
        self.kernel_size = tuple(kernel_size) or ones
        self.strides = tuple(strides) or ones
        self.dilation_rate = tuple(dilation_rate) or ones
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.affine = bool(affine)
        self.grouped = bool(grouped)

    def build(self, input_shape):
        c, f = self.in_units, self.units
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, c, 8 * f))
        self.bias = self.add_weight(name="bias", shape=(8 * f,), initializer="zeros")
        if self.affine:
            self.gain = self.add_weight(name="gain", shape=(4 * f,), initializer="ones")
            self.shift = self.add_weight(name="shift", shape=(4 * f,), initializer="zeros")
        self.built = True

    def _conv(self, x, kernel, **kwargs):
        return ops.conv(x, kernel, strides=self.strides, padding=self.padding,
                        dilation_rate=self.dilation_rate, **kwargs)  # fmt: skip

    def _products(self, x):
        p, q, r, s = ops.split(x, 4, axis=-1)
        combos = [_combination((p, q, r, s), coeffs) for coeffs in FAST_INPUT_COMBOS]
        if self.grouped:  # one convolution with 8 groups, then the 8 products apart again
            products = self._conv(ops.concatenate(combos, axis=-1), self.kernel)
            return ops.split(ops.add(products, self.bias), 8, axis=-1)
        kernels = ops.split(self.kernel, 8, axis=-1)
        biases = ops.split(self.bias, 8, axis=-1)
        products = [None] * 8
        for n in PRODUCT_ORDER:
            products[n] = ops.add(self._conv(combos[n], kernels[n]), biases[n])
        return products

    def call(self, inputs):
        x = ops.reshape(inputs, (-1, 1, 1, 4 * self.in_units)) if self.rank == 0 else inputs
        products = self._products(x)
        y = fast_outputs(products)
        if self.affine:
            spatial = 1 if self.rank == 1 else 2
            gain = ops.reshape(self.gain, (*(1,) * spatial, 4 * self.units, 1))
            y = ops.add(ops.depthwise_conv(y, gain, strides=1, padding="valid"), self.shift)
        if self.activation is not None:
            y = self.activation(y)
        if self.rank == 0:
            y = ops.reshape(y, (*ops.shape(inputs)[:-1], 4 * self.units))
        return y

    def compute_output_shape(self, input_shape):
        if self.rank == 0:
            return (*input_shape[:-1], 4 * self.units)
        spatial = []
        for size, k, s, d in zip(input_shape[1:-1], self.kernel_size, self.strides,
                                 self.dilation_rate):  # fmt: skip
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append((size + s - 1) // s)
            else:
                spatial.append((size - (k - 1) * d - 1) // s + 1)
        return (input_shape[0], *spatial, 4 * self.units)


@dataclasses.dataclass(frozen=True)
class FastLayer:
    """What the ``fast`` strategy did with one quaternion layer.

    Attributes:
        layer: the quaternion layer's name.
        fast: whether it became :class:`FastQuaternion` (else it stayed expanded).
        batch_norm: the batch norm after it: ``None`` (none folded), ``"folded"`` (a
            per-quaternion-unit gain, in the product weights) or ``"affine"`` (a per-real-channel
            gain, kept as a 1x1 depthwise convolution after the layer).
        reason: why it stayed expanded.
        weights: real weights of its products, ``(expanded, fast)``.

    Example:
        >>> FastLayer("conv1", True, "affine", None, (1600, 800)).weights
        (1600, 800)
    """

    layer: str
    fast: bool
    batch_norm: str | None
    reason: str | None
    weights: tuple


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _folded_gain(components, bias, bn):
    """Fold ``bn`` into ``(components, bias)``: ``(components, bias, gain, how)``; ``gain`` is
    the per-real-channel gain left after the layer, or ``None``; ``how`` is ``None`` when the
    norm mixes components (the layer cannot be fast)."""
    from keras_quaternion.export.fold import batch_norm_affine

    if bn is None:
        return components, bias, None, "none"
    a, c = batch_norm_affine(bn)
    if np.count_nonzero(a - np.diag(np.diag(a))):
        return components, bias, None, None
    g = np.diag(a)
    per_unit = g.reshape(4, -1)
    bias = g * bias + c
    if np.allclose(per_unit, per_unit[0], rtol=1e-12, atol=0):
        return components * per_unit[0], bias, None, "folded"
    return components, bias, g, "affine"


def fast_weights(components, bias, gain=None):
    """The weights of :class:`FastQuaternion` for quaternion components and an output bias.

    Args:
        components: the ``(4, *kernel_size, C, F)`` kernel (a dense layer's ``(4, C, F)``).
        bias: ``(4F,)`` added to the output blocks ``[r|i|j|k]``.
        gain: ``(4F,)`` per-real-channel gain applied before ``bias``, or ``None``.

    Returns:
        ``[kernel (*kernel_size, C, 8F), product bias (8F,)]``, plus ``[gain, bias]`` with a
        gain (the bias then stays after it).

    Example:
        >>> w = np.arange(4.0).reshape(4, 1, 1)  # one weight: a=0, b=1, c=2, d=3
        >>> kernel, product_bias = fast_weights(w, np.array([1.0, 2.0, 3.0, 4.0]))
        >>> kernel.ravel().tolist(), product_bias.tolist()
        ([1.0, 1.0, -1.0, 5.0, 1.0, 2.0, 1.0, -1.0], [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0])
    """
    components = np.asarray(components, np.float64)
    units = components.shape[-1]
    kernels = np.tensordot(np.asarray(FAST_WEIGHT_COMBOS, np.float64), components, axes=1)
    kernel = np.concatenate(list(kernels), axis=-1)
    product_bias = np.zeros(8 * units)
    if gain is not None:
        return [kernel, product_bias, np.asarray(gain, np.float64), np.asarray(bias, np.float64)]
    for block, m in enumerate(BIAS_PRODUCTS):
        product_bias[m * units : (m + 1) * units] = bias[block * units : (block + 1) * units]
    return [kernel, product_bias]


def fast_layer(layer, bn=None, *, grouped=False):
    """``(FastQuaternion, weights, FastLayer)`` for a quaternion layer and the norm after it.

    Args:
        layer: a built ``QConv1D``, ``QConv2D`` or ``QDense``.
        bn: the batch norm folded into it (``None``: none).
        grouped: see :class:`FastQuaternion`.

    Returns:
        ``(new layer, weights, record)``; ``new layer`` is ``None`` when ``bn`` mixes the four
        components of a unit (whitened): the layer then stays expanded (``record.reason``).

    Example:
        >>> from keras_quaternion import QConv2D
        >>> conv = QConv2D(2, 3, name="c"); _ = conv(np.zeros((1, 5, 5, 8), "float32"))
        >>> new, weights, record = fast_layer(conv)
        >>> type(new).__name__, weights[0].shape, record.weights
        ('FastQuaternion', (3, 3, 2, 16), (576, 288))
    """
    components = _np(layer.kernel)
    units, in_units = components.shape[-1], components.shape[-2]
    bias = _np(layer.bias) if layer.use_bias else np.zeros(4 * units)
    sizes = (16 * components[0].size, 8 * components[0].size)
    components, bias, gain, how = _folded_gain(components, bias, bn)
    if how is None:
        reason = f"its batch norm '{bn.name}' mixes the four components of each unit (whitened)"
        return None, None, FastLayer(layer.name, False, None, reason, sizes)
    rank = getattr(layer, "rank", None) or 0
    conv = {} if rank == 0 else dict(kernel_size=layer.kernel_size, strides=layer.strides,
                                     padding=layer.padding, dilation_rate=layer.dilation_rate)  # fmt: skip
    new = FastQuaternion(rank, in_units, units, activation=layer.activation,
                         affine=gain is not None, grouped=grouped, name=layer.name,
                         **conv)  # fmt: skip
    weights = fast_weights(components.reshape(4, *new.kernel_size, in_units, units), bias, gain)
    return new, weights, FastLayer(layer.name, True, None if how == "none" else how, None, sizes)


def _has_data(model, index):
    buffer = model.buffers[model.subgraphs[0].tensors[index].buffer]
    return buffer.data is not None and len(buffer.data) > 0


def lean_flatbuffer(flatbuffer, per_op, layers):
    """Shrink the metadata of the fast layers' many small tensors; the graph is unchanged.

    Every tensor the operators of ``layers`` write or hold as constants is named
    ``<layer>/<n>`` instead of the converter's TensorFlow scope names (tens of bytes each;
    operators still map back to their layer), and tensors without data share the empty
    buffer 0 instead of one empty buffer each. (The products' all-zero int32 biases stay:
    LiteRT's int8 ``CONV_2D`` requires a bias.)

    Args:
        flatbuffer: the converted flatbuffer (``bytes``).
        per_op: per operator, the Keras layer it came from
            (:func:`~keras_quaternion.export.tflite.operator_layers`).
        layers: names of the fast layers.

    Returns:
        The smaller flatbuffer (``bytes``), computing the same outputs.

    Example:
        >>> lean = lean_flatbuffer(flatbuffer, per_op, {"conv_block1_conv1"})  # doctest: +SKIP
    """
    model = fbs.read_model(flatbuffer)
    graph = model.subgraphs[0]
    io = {int(t) for t in (*graph.inputs, *graph.outputs)}
    counts = dict.fromkeys(layers, 0)
    for op, layer in zip(graph.operators, per_op):
        if layer not in counts:
            continue
        constants = [int(t) for t in op.inputs if t >= 0 and _has_data(model, int(t))]
        for t in (*[int(t) for t in op.outputs], *constants):
            if t not in io:
                graph.tensors[t].name = f"{layer}/{counts[layer]}"
                counts[layer] += 1
    fbs.share_empty_buffer(model)
    return fbs.write_model(model)


class FastStrategy(ExportStrategy):
    """Quaternion layers as 8 real products between additions: half the weights and MACs.

    Args:
        grouped: the products as one grouped convolution per layer (see
            :class:`FastQuaternion`; the registered ``fast`` uses 8 convolutions).

    Example:
        >>> FastStrategy().summary.split(":")[0]
        'quaternion layers as 8 real products between additions (8 CONV_2D each)'
        >>> FastStrategy(grouped=True).grouped
        True
    """

    name = "fast"
    summary = (
        "quaternion layers as 8 real products between additions (8 CONV_2D each): half the "
        "weights and multiply-accumulates, builtin operators only"
    )

    def __init__(self, grouped=False):
        self.grouped = bool(grouped)
        self.layers = ()

    def deploy(self, model, *, batch_size, input_shape):
        """The inference graph with every quaternion layer a :class:`FastQuaternion`."""
        from keras_quaternion.export.fold import deploy_model

        records = []

        def replace(layer, bn):
            new, weights, record = fast_layer(layer, bn, grouped=self.grouped)
            records.append(record)
            return None if new is None else (new, weights)

        deployed = deploy_model(model, batch_size=batch_size, input_shape=input_shape,
                                replace=replace)  # fmt: skip
        self.layers = tuple(records)
        kept = [f"'{x.layer}' ({x.reason})" for x in records if not x.fast]
        if kept:
            warnings.warn(
                f"--quaternion fast kept {len(kept)} quaternion layer(s) expanded: "
                f"{'; '.join(kept)}.",
                stacklevel=3,
            )
        return deployed

    def rewrite(self, conversion, model, export_model):
        if not self.layers:
            warnings.warn(
                f"Model '{model.name}' has no quaternion layers: --quaternion fast has nothing to "
                f"make fast; exported with strategy 'expanded'.",
                stacklevel=3,
            )
        from keras_quaternion.export.tflite import inspect_tflite, operator_layers

        fast = {x.layer for x in self.layers if x.fast}
        if not fast:
            return dataclasses.replace(conversion, layers=self.layers, strategy_used="expanded")
        per_op = operator_layers(inspect_tflite(conversion.flatbuffer), export_model)
        flatbuffer = lean_flatbuffer(conversion.flatbuffer, per_op, fast)
        return dataclasses.replace(
            conversion, flatbuffer=flatbuffer, layers=self.layers, strategy_used=self.name
        )
