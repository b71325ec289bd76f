"""Strategy ``compact``: quaternion layers stay quaternion in the int8 flatbuffer.

The converter turns every quaternion convolution or dense layer into a real CONV_2D /
FULLY_CONNECTED whose int8 kernel ``E`` (``[4F, kh, kw, 4C]``, output channels first) is built
from four blocks of components by signs and permutations (:data:`HAMILTON_BLOCKS`). After the
converter has run, this strategy

1. reads each such kernel and takes its four components from the first output block
   (``Q[p*F + f] = ±E[f, ..., p*C:(p+1)*C]``), giving a ``[4F, kh, kw, C]`` tensor: a quarter;
2. rebuilds ``E`` from ``Q``; where the converter rounded one of a weight's four copies the
   other way (a value within float rounding of ``k + 0.5``), the difference is kept as a
   correction, so the rebuild is bit-exact; a layer whose kernel holds -128 or whose components
   a batch norm mixed stays expanded, and a warning says why;
3. replaces the operator by the CUSTOM operator ``KQ_QCONV2D`` / ``KQ_QFULLY_CONNECTED`` with the
   compact weights, the same per-real-output-channel scales, the same int32 bias and its
   stride / padding / dilation / activation in 32 bytes of custom options.

The quantisation stays the converter's: the custom operator's C kernel
(``tflite/quaternion/kq_quaternion_ops.c``) computes the same integer sums and requantises them
as TFLite's reference kernels do, so the compact model's int8 outputs equal the expanded
model's. :func:`verify_layers` checks that, operator by operator, against LiteRT's reference
kernels and TFLite Micro running the expanded model.

Example:
    >>> import numpy as np
    >>> e = expand_kernel(np.arange(1, 9, dtype=np.int8).reshape(8, 1, 1, 1))
    >>> compact, corrections, _ = compact_kernel(e)
    >>> e.shape, bool(np.array_equal(compact, np.arange(1, 9).reshape(8, 1, 1, 1))), len(corrections)
    ((8, 1, 1, 4), True, 0)
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from keras_quaternion.export import flatbuffer as fbs
from keras_quaternion.export.quaternion_kernel import CONV_OP, FC_OP, QuantizedLayer
from keras_quaternion.export.strategies.base import ExportStrategy
from keras_quaternion.layers.hamilton import HAMILTON_BLOCKS

#: builtin operator -> (custom operator, kind in the options)
COMPACT_OPS = {"CONV_2D": (CONV_OP, "conv"), "FULLY_CONNECTED": (FC_OP, "fc")}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_PADDINGS = {0: "SAME", 1: "VALID"}


def expand_kernel(compact):
    """The real int8 kernel ``[4F, kh, kw, 4C]`` of compact components ``[4F, kh, kw, C]``.

    Args:
        compact: integer array whose row ``p*F + f`` is component ``p`` of filter ``f``.

    Returns:
        The expanded kernel, output channels first (TFLite's OHWI layout).

    Example:
        >>> expand_kernel(np.array([1, 2, 3, 4], np.int8).reshape(4, 1, 1, 1))[:, 0, 0, :].tolist()
        [[1, -2, -3, -4], [2, 1, -4, 3], [3, 4, 1, -2], [4, -3, 2, 1]]
    """
    compact = np.asarray(compact)
    units, spatial, c = compact.shape[0] // 4, compact.shape[1:-1], compact.shape[-1]
    blocks = compact.reshape(4, units, *spatial, c)
    out = np.empty((4, units, *spatial, 4, c), dtype=compact.dtype)
    for a, row in enumerate(HAMILTON_BLOCKS):
        for b, (component, sign) in enumerate(row):
            out[b, ..., a, :] = blocks[component] if sign > 0 else -blocks[component]
    return out.reshape(4 * units, *spatial, 4 * c)


#: at most this fraction of a layer's compact weights may need corrections (8 bytes each)
MAX_CORRECTIONS = 1 / 256


def _copies(e):
    """The four copies of every component: ``(4 copies, 4 components, F, ..., C)``."""
    units, c = e.shape[0] // 4, e.shape[-1] // 4
    blocks = e.reshape(4, units, *e.shape[1:-1], 4, c)  # (b, F, ..., a, C)
    copies = np.empty((4, 4, units, *e.shape[1:-1], c), dtype=np.int16)
    for a, row in enumerate(HAMILTON_BLOCKS):
        for b, (component, sign) in enumerate(row):
            copies[b, component] = sign * blocks[b, ..., a, :].astype(np.int16)
    return copies


def _majority(copies):
    """Per element, the value most of the four copies hold (the first copy's on a 2-2 tie)."""
    votes = np.stack([np.sum(copies == copies[j], axis=0) for j in range(4)])
    return np.take_along_axis(copies, np.argmax(votes, axis=0)[None], axis=0)[0]


def compact_kernel(expanded, max_fraction=MAX_CORRECTIONS):
    """The compact components of an expanded int8 kernel, with corrections, or why there are none.

    Full-integer conversion rounds the four copies of each weight (one per output block, each
    scaled by its own real channel's scale) separately; a value within float rounding of
    ``k + 0.5`` can round differently in one copy. The components take the value most copies
    hold, and every copy that differs becomes a correction ``(flat index into the expanded
    kernel, delta)``, so that the compact operator still computes exactly what ``expanded`` does.

    Args:
        expanded: int8 ``[4F, ..., 4C]`` kernel (output channels first).
        max_fraction: give up when more than this fraction of the compact weights would need
            a correction (the kernel is then not a quaternion kernel, e.g. a whitened batch norm
            mixed its components).

    Returns:
        ``(compact, corrections, None)`` where :func:`expand_kernel` of ``compact`` plus the
        corrections gives ``expanded`` back bit for bit (``corrections``: int32 ``(n, 2)``),
        else ``(None, None, reason)``.

    Example:
        >>> e = expand_kernel(np.arange(1, 9, dtype=np.int8).reshape(8, 1, 1, 1))
        >>> e[5, 0, 0, 1] += 1  # one copy of one weight rounded the other way
        >>> compact, corrections, _ = compact_kernel(e)
        >>> corrections.tolist()
        [[21, 1]]
    """
    e = np.asarray(expanded)
    if e.shape[0] % 4 or e.shape[-1] % 4:
        return None, None, f"its kernel {tuple(e.shape)} is not made of 4x4 quaternion blocks"
    compact_blocks = _majority(_copies(e))  # (4, F, ..., C)
    compact = compact_blocks.reshape(-1, *e.shape[1:-1], e.shape[-1] // 4)
    if np.any(np.abs(compact) > 127):
        return None, None, "its int8 kernel holds -128, whose negation does not fit in int8"
    compact = compact.astype(e.dtype)
    delta = e.astype(np.int32) - expand_kernel(compact).astype(np.int32)
    index = np.flatnonzero(delta)
    if len(index) > max(1, max_fraction * compact.size):
        return (
            None,
            None,
            (
                f"the int8 kernel does not have the Hamilton block structure ({len(index)} of "
                f"{e.size} values differ; batch norm mixed the four components)"
            ),
        )
    corrections = np.stack([index, delta.reshape(-1)[index]], axis=1).astype(np.int32)
    return compact, corrections.reshape(-1, 2), None


@dataclasses.dataclass(frozen=True)
class CompactLayer:
    """What the compact rewrite did with one candidate operator.

    Attributes:
        operator: operator index in the flatbuffer.
        layer: the Keras layer it came from (``None`` if unknown).
        builtin: ``"CONV_2D"`` or ``"FULLY_CONNECTED"``.
        compact: whether it became a custom operator.
        reason: why not, when it did not.
        weight_bytes: int8 weight bytes before and after (``(expanded, compact)``).
        corrections: weight copies the converter rounded the other way, carried as
            corrections (:func:`compact_kernel`).

    Example:
        >>> CompactLayer(0, "conv1", "CONV_2D", True, None, (576, 144)).weight_bytes
        (576, 144)
    """

    operator: int
    layer: str | None
    builtin: str
    compact: bool
    reason: str | None
    weight_bytes: tuple
    corrections: int = 0


def _quaternion_layer_names(model):
    from keras_quaternion.layers import QConv, QDense

    names = set()
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (QConv, QDense)):
            names.add(layer.name)
    return names


def _unsupported(model, op):
    """Why an int8 CONV_2D / FULLY_CONNECTED cannot become the custom operator, or ``None``."""
    graph = model.subgraphs[0]
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])  # fmt: skip
    if not (x.type == w.type == y.type == 9):
        return "it is not an int8 operator"
    if int(x.shape[-1]) != int(w.shape[-1]):
        return "it is a grouped convolution"
    if np.any(np.asarray(w.quantization.zeroPoint)):
        return "its weights are not symmetrically quantised"
    opts = op.builtinOptions
    if getattr(opts, "fusedActivationFunction", 0) not in _ACTIVATIONS:
        return f"its fused activation {opts.fusedActivationFunction} has no compact kernel"
    if getattr(opts, "weightsFormat", 0) != 0:
        return "its weights use a shuffled format"
    return None


def _options(op, kind):
    from keras_quaternion.export.quaternion_kernel import load_kernels

    opts = op.builtinOptions
    activation = _ACTIVATIONS[opts.fusedActivationFunction]
    if kind == "fc":
        return load_kernels().options("fc", activation=activation)
    return load_kernels().options(
        "conv",
        padding=_PADDINGS[opts.padding],
        strides=(opts.strideH, opts.strideW),
        dilation=(opts.dilationHFactor, opts.dilationWFactor),
        activation=activation,
    )


def _rewrite_operator(model, index, layer_name):
    """Make operator ``index`` compact when possible; return its :class:`CompactLayer`."""
    op = model.subgraphs[0].operators[index]
    builtin = fbs.opcode_name(model, op)
    custom, kind = COMPACT_OPS[builtin]
    kernel = fbs.tensor_data(model, op.inputs[1])
    size = (int(kernel.size), int(kernel.size))
    reason = _unsupported(model, op)
    compact = corrections = None
    if reason is None:
        shaped = kernel.reshape(kernel.shape[0], 1, 1, -1) if kind == "fc" else kernel
        compact, corrections, reason = compact_kernel(shaped)
    if compact is None:
        return CompactLayer(index, layer_name, builtin, False, reason, size)
    compact = compact.reshape(compact.shape[0], -1) if kind == "fc" else compact
    op.customOptions = np.frombuffer(_options(op, kind), dtype=np.uint8)
    fbs.set_tensor_data(model, op.inputs[1], compact)
    inputs = [int(t) for t in op.inputs] + [-1] * (3 - len(op.inputs))
    if len(corrections):
        inputs.append(
            fbs.add_constant_tensor(
                model, corrections, f"{layer_name or f'operator_{index}'}/kq_corrections"
            )
        )
    op.inputs = np.asarray(inputs, dtype=np.int32)
    op.opcodeIndex = fbs.custom_opcode(model, custom)
    op.builtinOptionsType, op.builtinOptions = 0, None
    op.customOptionsFormat = 0
    sizes = (size[0], int(compact.size) + 8 * len(corrections))
    return CompactLayer(index, layer_name, builtin, True, None, sizes, len(corrections))


def compact_flatbuffer(expanded, layer_names=None):
    """Rewrite the quaternion operators of an int8 flatbuffer as compact custom operators.

    Args:
        expanded: the int8 flatbuffer from the converter (``bytes``).
        layer_names: per operator, the Keras layer it came from, and which of them are
            quaternion: ``(operator_layers, quaternion_names)``. ``None``: every
            CONV_2D / FULLY_CONNECTED whose kernel has the Hamilton structure.

    Returns:
        ``(flatbuffer, layers)``: the rewritten flatbuffer and one :class:`CompactLayer` per
        candidate operator.

    Example:
        >>> compact, layers = compact_flatbuffer(int8_flatbuffer)  # doctest: +SKIP
        >>> [(l.layer, l.compact) for l in layers]  # doctest: +SKIP
        [('conv1', True), ('fc1', True)]
    """
    model = fbs.read_model(expanded)
    per_op, quaternion = layer_names if layer_names is not None else (None, None)
    layers = []
    for index, op in enumerate(model.subgraphs[0].operators):
        if fbs.opcode_name(model, op) not in COMPACT_OPS:
            continue
        name = per_op[index] if per_op is not None else None
        if quaternion is not None and name not in quaternion:
            continue
        result = _rewrite_operator(model, index, name)
        if quaternion is None and not result.compact:
            continue  # without layer names, only a Hamilton-structured kernel is quaternion
        layers.append(result)
    fbs.drop_unused_opcodes(model)
    return fbs.write_model(model), tuple(layers)


def _restore_operator(model, op, schema):
    custom = fbs.opcode_name(model, op).split(":", 1)[1]
    from keras_quaternion.export.quaternion_kernel import load_kernels

    fields = load_kernels().parse_options(bytes(np.asarray(op.customOptions, np.uint8)))
    kind, padding, sh, sw, dh, dw, activation = fields
    compact = fbs.tensor_data(model, op.inputs[1])
    shaped = compact.reshape(compact.shape[0], 1, 1, -1) if custom == FC_OP else compact
    expanded = expand_kernel(shaped)
    if len(op.inputs) > 3 and op.inputs[3] >= 0:
        index, delta = fbs.tensor_data(model, op.inputs[3]).T
        flat = expanded.reshape(-1)
        flat[index] = (flat[index].astype(np.int32) + delta).astype(expanded.dtype)
        fbs.set_tensor_data(model, op.inputs[3], np.zeros((0, 2), np.int32))
        op.inputs = op.inputs[:3]
    if custom == FC_OP:
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = activation
        expanded = expanded.reshape(expanded.shape[0], -1)
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        op.opcodeIndex = _builtin_opcode(model, schema.BuiltinOperator.FULLY_CONNECTED, 12)
    else:
        options = schema.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = padding, sh, sw
        options.dilationHFactor, options.dilationWFactor = dh, dw
        options.fusedActivationFunction = activation
        op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
        op.opcodeIndex = _builtin_opcode(model, schema.BuiltinOperator.CONV_2D, 3)
    fbs.set_tensor_data(model, op.inputs[1], expanded)
    op.builtinOptions, op.customOptions = options, None


def _builtin_opcode(model, builtin, version):
    _, schema = fbs._schema()
    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def expand_flatbuffer(compact):
    """The inverse rewrite: every compact custom operator back to its real builtin operator.

    LiteRT and stock TFLite Micro cannot run the custom operators; the expanded flatbuffer
    computes the same int8 outputs, so tools that only need the model's outputs (scoring,
    prediction) run it instead.

    Args:
        compact: a flatbuffer written by the ``compact`` strategy (``bytes``).

    Returns:
        The flatbuffer with builtin CONV_2D / FULLY_CONNECTED operators (``bytes``); a
        flatbuffer without compact operators is returned unchanged.

    Example:
        >>> inspect_tflite(expand_flatbuffer(compact)).op_kinds  # doctest: +SKIP
        ['CONV_2D', 'FULLY_CONNECTED', 'MEAN']
    """
    if CONV_OP.encode() not in compact and FC_OP.encode() not in compact:
        return bytes(compact)  # no custom operator code: nothing to parse
    model = fbs.read_model(compact)
    _, schema = fbs._schema()
    changed = False
    for op in model.subgraphs[0].operators:
        if fbs.opcode_name(model, op) in (f"CUSTOM:{CONV_OP}", f"CUSTOM:{FC_OP}"):
            _restore_operator(model, op, schema)
            changed = True
    if not changed:
        return bytes(compact)
    fbs.drop_unused_opcodes(model)
    return fbs.write_model(model)


def is_compact(tflite_model):
    """Whether a flatbuffer holds compact quaternion operators.

    Example:
        >>> is_compact(compact_flatbuffer_bytes)  # doctest: +SKIP
        True
    """
    from keras_quaternion.export.tflite import inspect_tflite

    kinds = inspect_tflite(tflite_model).op_kinds
    return any(k in (f"CUSTOM:{CONV_OP}", f"CUSTOM:{FC_OP}") for k in kinds)


def quantized_layer(model, op):
    """The :class:`QuantizedLayer` of compact operator ``op`` of a ``ModelT``.

    Example:
        >>> quantized_layer(model, model.subgraphs[0].operators[0]).units  # doctest: +SKIP
        (1, 8)
    """
    from keras_quaternion.export.quaternion_kernel import load_kernels

    graph = model.subgraphs[0]
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])  # fmt: skip
    fields = load_kernels().parse_options(bytes(np.asarray(op.customOptions, np.uint8)))
    bias = corrections = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = fbs.tensor_data(model, op.inputs[2])
    if len(op.inputs) > 3 and op.inputs[3] >= 0:
        corrections = fbs.tensor_data(model, op.inputs[3])
    return QuantizedLayer(
        filter=fbs.tensor_data(model, op.inputs[1]),
        bias=bias,
        input_scale=float(x.quantization.scale[0]),
        input_zero_point=int(x.quantization.zeroPoint[0]),
        filter_scales=tuple(float(s) for s in w.quantization.scale),
        output_scale=float(y.quantization.scale[0]),
        output_zero_point=int(y.quantization.zeroPoint[0]),
        activation=_ACTIVATIONS[fields[6]],
        strides=(fields[2], fields[3]),
        dilation=(fields[4], fields[5]),
        padding=_PADDINGS[fields[1]],
        corrections=corrections,
    )


class CompactStrategy(ExportStrategy):
    """Quaternion layers as compact int8 custom operators (a quarter of the weights).

    Example:
        >>> CompactStrategy().custom_ops
        ('KQ_QCONV2D', 'KQ_QFULLY_CONNECTED')
    """

    name = "compact"
    summary = "quaternion layers as one int8 custom operator each, holding a quarter of the weights"
    int8_only = True
    custom_ops = (CONV_OP, FC_OP)

    def rewrite(self, conversion, model, export_model):
        from keras_quaternion.export.tflite import inspect_tflite, operator_layers

        quaternion = _quaternion_layer_names(model)
        if not quaternion:
            warnings.warn(
                f"Model '{model.name}' has no quaternion layers: --quaternion compact has nothing "
                f"to make compact; exported with strategy 'expanded'.",
                stacklevel=3,
            )
            return dataclasses.replace(conversion, strategy_used="expanded")
        per_op = operator_layers(inspect_tflite(conversion.flatbuffer), export_model)
        flatbuffer, layers = compact_flatbuffer(conversion.flatbuffer, (per_op, quaternion))
        kept = [f"'{x.layer}' ({x.reason})" for x in layers if not x.compact]
        if kept:
            warnings.warn(
                f"--quaternion compact kept {len(kept)} quaternion layer(s) expanded: "
                f"{'; '.join(kept)}.",
                stacklevel=3,
            )
        return dataclasses.replace(
            conversion,
            flatbuffer=flatbuffer,
            expanded_flatbuffer=conversion.flatbuffer,
            layers=layers,
            strategy_used=self.name if any(x.compact for x in layers) else "expanded",
        )

    def verify(self, conversion, inputs, *, strict=False, arena_size=None):
        """Verify the expanded model on both runtimes, then every compact operator against them.

        Where a TFLite Micro checkout is set up (``KQ_TFLM_ROOT``), the whole compact model
        also runs on TFLite Micro and must give the expanded model's outputs.
        """
        from keras_quaternion.export.verify import verify_tflite

        if conversion.expanded_flatbuffer is None:
            return verify_tflite(
                conversion.flatbuffer, inputs, strict=strict, arena_size=arena_size
            )
        from keras_quaternion.export import verify_compact

        result = verify_tflite(
            conversion.expanded_flatbuffer, inputs, strict=strict, arena_size=arena_size
        )
        names = {x.operator: x.layer for x in conversion.layers}
        result.quaternion_layers = verify_compact.verify_layers(
            conversion.expanded_flatbuffer, conversion.flatbuffer, inputs, names
        )
        result.runtime = verify_compact.verify_whole(
            conversion.expanded_flatbuffer, conversion.flatbuffer, inputs, arena_size=arena_size
        )
        return result

    def measure_arena(self, conversion, *, margin):
        """Measured on the compact model where TFLite Micro has its operators, else on the twin.

        The ``tflite-micro`` package cannot run the custom operators: with a TFLite Micro
        checkout (``KQ_TFLM_ROOT``) the compact model runs on a build of it; without one, the
        expanded twin is measured: it has the same tensors and activations, and its builtin
        operators keep at least as much persistent data as the custom ones.
        """
        from keras_quaternion.export.micro import ARENA_ROUND, ArenaMeasurement, measure_arena
        from keras_quaternion.export.tflm_runner import tflm_runner

        runner = tflm_runner()
        if conversion.expanded_flatbuffer is None:
            return measure_arena(conversion.flatbuffer, margin=margin)
        if runner is None:
            arena = measure_arena(conversion.expanded_flatbuffer, margin=margin)
            return dataclasses.replace(arena, measured_on="expanded twin")
        used, minimal = runner.arena(conversion.flatbuffer)
        need = max(used, minimal) * (1.0 + margin)
        recommended = int(-(-need // ARENA_ROUND) * ARENA_ROUND)
        return ArenaMeasurement(used, minimal, recommended, float(margin), 16,
                                measured_on="deployed (TFLite Micro built from KQ_TFLM_ROOT)")  # fmt: skip
