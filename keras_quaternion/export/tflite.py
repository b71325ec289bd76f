"""Keras -> TFLite conversion (float32 or full-integer int8) with TFLite Micro compatibility checks.

Conversion path: the model is first rewritten by :func:`keras_quaternion.export.fold.deploy_model`
(quaternion layers as real layers holding the assembled kernel, batch norm folded into the
convolutions), then converted with ``tf.lite.TFLiteConverter.from_keras_model`` (which, on
Keras 3, goes through a temporary ``tf_saved_model`` export). For int8 the converter is restricted
to ``TFLITE_BUILTINS_INT8`` with int8 input and output, calibrated on a representative set.

Every converted model is inspected: an operator that TFLite Micro does not implement
(:data:`~keras_quaternion.export.tflm_ops.TFLM_BUILTIN_OPS`), a custom operator, or (int8) any
float tensor left in the graph stops the export with :class:`ExportError` naming the operator and
the Keras layer it came from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import re
import warnings
from collections.abc import Iterable

import numpy as np

from keras_quaternion.export.quiet import native_stderr_captured
from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS, TFLM_SOURCE

#: calibration samples :func:`to_tflite` runs on LiteRT and TFLite Micro after an int8 export
VERIFY_SAMPLES = 8


class ExportError(RuntimeError):
    """A model cannot be exported as requested (not quantizable, unsupported operator, ...).

    Raised by :func:`to_tflite` and :func:`check_tflite`; the message names the operators and,
    where known, the Keras layers they came from. A subclass of ``RuntimeError``.

    Example:
        A float32 flatbuffer is not a full-integer model:

        >>> import keras
        >>> x = keras.Input((4,))
        >>> model = keras.Model(x, keras.layers.Dense(2, activation="relu", name="head")(x))
        >>> flatbuffer = to_tflite(model, int8=False)
        >>> try:
        ...     check_tflite(flatbuffer, int8=True)
        ... except ExportError as err:
        ...     print(str(err).splitlines()[0])
        The converted model cannot run on TFLite Micro as a full-integer int8 model:
    """


def _schema():
    try:
        from tflite_micro import runtime
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_quaternion.export needs the 'tflite-micro' package to read TFLite flatbuffers: "
            "pip install 'keras-quaternion[export]'."
        ) from err
    return runtime, schema


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a TFLite flatbuffer.

    Attributes:
        index: position in the subgraph's tensor list.
        name: the tensor name the converter gave it (TensorFlow name scopes).
        dtype: TFLite type name, e.g. ``"INT8"``, ``"FLOAT32"``.
        shape: the static shape, e.g. ``(1, 4)`` (the batch axis is fixed to 1 by export).
        is_constant: whether its data is stored in the flatbuffer (weights, biases, shapes).
        scale: per-tensor quantization scale, or ``None`` (float, or per-channel quantized).
        zero_point: per-tensor quantization zero point, or ``None``.
        nbytes: bytes of constant data stored in the flatbuffer (0 for activations).

    Example:
        >>> import keras
        >>> x = keras.Input((4,))
        >>> model = keras.Model(x, keras.layers.Dense(2, activation="relu", name="head")(x))
        >>> flatbuffer = to_tflite(model, int8=False)
        >>> info = inspect_tflite(flatbuffer)
        >>> t = info.input
        >>> t.dtype, t.shape, t.is_constant, t.scale
        ('FLOAT32', (1, 4), False, None)
        >>> [t.nbytes for t in info.tensors if t.is_constant]  # the 2x4 float32 kernel
        [32]
    """

    index: int
    name: str
    dtype: str  #: TFLite type name, e.g. ``"INT8"``, ``"FLOAT32"``
    shape: tuple
    is_constant: bool
    scale: float | None
    zero_point: int | None
    nbytes: int = 0  #: bytes of constant data stored in the flatbuffer (0 for activations)


@dataclasses.dataclass(frozen=True)
class OperatorInfo:
    """One operator of a TFLite flatbuffer (first subgraph).

    Attributes:
        index: position in execution order.
        name: builtin name such as ``"CONV_2D"`` or ``"CUSTOM:<code>"``.
        inputs: tensor indices of its inputs (``-1``: an omitted optional input, e.g. no bias).
        outputs: tensor indices of its outputs.
        activation: fused activation (``"NONE"``, ``"RELU"``, ...), or ``None`` if the operator
            has none.

    Example:
        >>> import keras
        >>> x = keras.Input((4,))
        >>> model = keras.Model(x, keras.layers.Dense(2, activation="relu", name="head")(x))
        >>> flatbuffer = to_tflite(model, int8=False)
        >>> op = inspect_tflite(flatbuffer).operators[0]
        >>> op.index, op.name, op.activation, len(op.inputs), len(op.outputs)
        (0, 'FULLY_CONNECTED', 'RELU', 3, 1)
    """

    index: int
    name: str  #: builtin name such as ``"CONV_2D"`` or ``"CUSTOM:<code>"``
    inputs: tuple
    outputs: tuple
    activation: str | None = None  #: fused activation (``"NONE"``, ``"RELU"``, ...) if any


@dataclasses.dataclass(frozen=True)
class TFLiteInfo:
    """What :func:`inspect_tflite` reads from a flatbuffer.

    Attributes:
        size: flatbuffer size in bytes.
        operators: the operators of the main subgraph in execution order.
        tensors: all tensors of the main subgraph.
        inputs, outputs: tensor indices of the subgraph's inputs and outputs.
        num_subgraphs: number of subgraphs (control flow adds some).

    Example:
        >>> import keras
        >>> x = keras.Input((4,))
        >>> model = keras.Model(x, keras.layers.Dense(2, activation="relu", name="head")(x))
        >>> flatbuffer = to_tflite(model, int8=False)
        >>> info = inspect_tflite(flatbuffer)
        >>> info.size == len(flatbuffer), info.op_kinds, info.num_subgraphs
        (True, ['FULLY_CONNECTED'], 1)
        >>> info.input.shape, info.output.shape, info.constant_bytes
        ((1, 4), (1, 2), 32)
    """

    size: int
    operators: tuple
    tensors: tuple
    inputs: tuple
    outputs: tuple
    num_subgraphs: int

    @property
    def op_kinds(self):
        """Sorted distinct operator names."""
        return sorted({op.name for op in self.operators})

    @property
    def constant_bytes(self):
        """Bytes of constant data (weights, biases, shape constants) in the flatbuffer."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def input(self):
        """The first input tensor."""
        return self.tensors[self.inputs[0]]

    @property
    def output(self):
        """The first output tensor."""
        return self.tensors[self.outputs[0]]


def _as_bytes(tflite_model):
    if isinstance(tflite_model, (bytes, bytearray, memoryview)):
        return bytes(tflite_model)
    raise TypeError(
        f"Expected the TFLite flatbuffer as bytes, got {type(tflite_model).__name__}. "
        f"Read a .tflite file with open(path, 'rb').read()."
    )


def inspect_tflite(tflite_model):
    """Read the operators and tensors of a TFLite flatbuffer.

    Args:
        tflite_model: the flatbuffer (``bytes``).

    Returns:
        A :class:`TFLiteInfo`.

    Raises:
        TypeError: ``tflite_model`` is not bytes.
        ValueError: the bytes are not a TFLite flatbuffer (no ``TFL3`` identifier).

    Example:
        >>> info = inspect_tflite(to_tflite(model, int8=False))  # doctest: +SKIP
        >>> info.op_kinds  # doctest: +SKIP
        ['CONV_2D', 'FULLY_CONNECTED', 'MEAN']
    """
    data = _as_bytes(tflite_model)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            f"Not a TFLite flatbuffer: expected the file identifier b'TFL3' at bytes 4..8, got "
            f"{data[4:8]!r} ({len(data)} bytes)."
        )
    runtime, schema = _schema()
    model = runtime.convert_bytearray_to_object(bytearray(data))
    graph = model.subgraphs[0]
    tensors = [_tensor_info(i, t, model, schema) for i, t in enumerate(graph.tensors or [])]
    operators = [
        _operator_info(i, op, model, runtime, schema) for i, op in enumerate(graph.operators or [])
    ]
    return TFLiteInfo(
        size=len(data),
        operators=tuple(operators),
        tensors=tuple(tensors),
        inputs=tuple(int(x) for x in graph.inputs),
        outputs=tuple(int(x) for x in graph.outputs),
        num_subgraphs=len(model.subgraphs),
    )


@functools.cache
def _enum_names(enum) -> dict:
    """``{value: name}`` of a flatbuffer schema enum class."""
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _tensor_info(index: int, t, model, schema) -> TensorInfo:
    """One tensor of the flatbuffer's object API as a :class:`TensorInfo`."""
    buffer = model.buffers[t.buffer] if t.buffer is not None and model.buffers else None
    nbytes = 0
    if buffer is not None:
        nbytes = len(buffer.data) if buffer.data is not None else 0
        nbytes = nbytes or int(getattr(buffer, "size", 0) or 0)
    q = t.quantization
    scale = zero = None
    if q is not None and q.scale is not None and len(q.scale) == 1:
        scale = float(q.scale[0])
        zero = int(q.zeroPoint[0]) if q.zeroPoint is not None else 0
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    shape = tuple(int(s) for s in t.shape) if t.shape is not None else ()
    dtype = _enum_names(schema.TensorType).get(t.type, str(t.type))
    return TensorInfo(index, name, dtype, shape, nbytes > 0, scale, zero, nbytes)


def _operator_info(index: int, op, model, runtime, schema) -> OperatorInfo:
    """One operator of the flatbuffer's object API as an :class:`OperatorInfo`."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = runtime.get_builtin_code_from_operator_code(code)
    name = _enum_names(schema.BuiltinOperator).get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode
        name = f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else []))
    outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else []))
    fused = getattr(op.builtinOptions, "fusedActivationFunction", None)
    names = _enum_names(schema.ActivationFunctionType)
    activation = names.get(fused, str(fused)) if fused is not None else None
    return OperatorInfo(index, name, ins, outs, activation)


# --------------------------------------------------------------------------- layer names


def _layer_names(model):
    names = set()

    def walk(m):
        for layer in m.layers:
            names.add(layer.name)
            if hasattr(layer, "layers"):
                walk(layer)

    walk(model)
    return names


def _match_layer(text, names):
    """Deepest '/'-separated scope of a TF name that is a layer name (Keras adds ``_1``)."""
    best = None
    for part in re.split(r"[;/@]", text):
        candidates = [part, re.sub(r"_\d+$", "", part), re.sub(r"_\d+_\d+$", "", part)]
        for cand in candidates:
            if cand in names:
                best = cand
                break
    return best


def _output_layers(model):
    out = []
    for tensor in model.outputs:
        out.append(tensor._keras_history.operation.name)
    return out


def operator_layers(info, model):
    """Name the Keras layer each operator of a converted model came from.

    TFLite keeps TensorFlow's name scopes in tensor names (``functional/<layer>_1/...``); the
    deepest scope that is a layer of ``model`` names the operator. Operators whose outputs carry
    no scope (the graph output, converter-inserted QUANTIZE/DEQUANTIZE) are named after the layer
    of the operator producing their input, or the model's output layer.

    Args:
        info: a :class:`TFLiteInfo` from :func:`inspect_tflite`.
        model: the Keras model that was converted.

    Returns:
        A list, one entry per operator: the layer name, or ``None`` where unknown.

    Example:
        >>> import keras
        >>> x = keras.Input((4,))
        >>> model = keras.Model(x, keras.layers.Dense(2, activation="relu", name="head")(x))
        >>> flatbuffer = to_tflite(model, int8=False)
        >>> operator_layers(inspect_tflite(flatbuffer), model)
        ['head']
    """
    names = _layer_names(model)
    producer = {}
    for op in info.operators:
        for t in op.outputs:
            producer[t] = op.index
    result = [None] * len(info.operators)
    for op in info.operators:
        for t in op.outputs:
            if t >= 0:
                found = _match_layer(info.tensors[t].name, names)
                if found:
                    result[op.index] = found
                    break
    outputs = set(info.outputs)
    output_layers = _output_layers(model)
    for op in info.operators:
        if result[op.index] is None and any(t in outputs for t in op.outputs):
            result[op.index] = output_layers[0] if len(output_layers) == 1 else None
    for _ in range(len(info.operators)):  # propagate through scope-less ops
        changed = False
        for op in info.operators:
            if result[op.index] is not None:
                continue
            for t in op.inputs:
                if t >= 0 and t in producer and result[producer[t]] is not None:
                    result[op.index] = result[producer[t]]
                    changed = True
                    break
        if not changed:
            break
    return result


def _describe(op, layer):
    where = f"layer '{layer}'" if layer else "an unnamed part of the graph"
    return f"operator {op.name} (from {where})"


def check_tflite(tflite_model, model=None, *, int8=True, custom_ops=()):
    """Check that a flatbuffer can run on TFLite Micro (and, for int8, is fully quantized).

    Args:
        tflite_model: the flatbuffer (``bytes``).
        model: the Keras model it came from, used to name layers in errors (optional).
        int8: also require int8 input/output and no float tensor anywhere in the graph.
        custom_ops: names of custom operators the export strategy adds and registers (see
            :mod:`keras_quaternion.export.strategies`); any other custom operator is an error.

    Returns:
        The :class:`TFLiteInfo` of the flatbuffer.

    Raises:
        ExportError: custom or non-TFLM operators, more than one subgraph, or (int8) float
            tensors / float input or output; the message names the operators and layers.

    Example:
        >>> check_tflite(to_tflite(model, representative_data=x))  # doctest: +SKIP
    """
    info = inspect_tflite(tflite_model)
    layers = operator_layers(info, model) if model is not None else [None] * len(info.operators)
    problems = _operator_problems(info, layers, custom_ops)
    if info.num_subgraphs > 1:
        problems.append(
            f"the model has {info.num_subgraphs} subgraphs (control flow); export a model "
            f"without data-dependent control flow"
        )
    if int8:
        problems += _float_problems(info, layers)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ExportError(
            "The converted model cannot run on TFLite Micro"
            + (" as a full-integer int8 model" if int8 else "")
            + ":\n  - "
            + "\n  - ".join(unique)
        )
    return info


def _operator_problems(info: TFLiteInfo, layers, custom_ops) -> list[str]:
    """The operators TFLite Micro does not run: unknown custom ones and non-TFLM builtins."""
    problems = []
    for op, layer in zip(info.operators, layers):
        if op.name.startswith("CUSTOM:") and op.name[len("CUSTOM:") :] in custom_ops:
            continue
        if op.name.startswith("CUSTOM:"):
            problems.append(
                f"{_describe(op, layer)} is a custom operator; TFLite Micro builds only register "
                f"builtin operators here"
            )
        elif op.name not in TFLM_BUILTIN_OPS:
            problems.append(
                f"{_describe(op, layer)} is not implemented by TFLite Micro (builtin operators "
                f"listed in keras_quaternion.export.tflm_ops, from {TFLM_SOURCE})"
            )
    return problems


def _float_problems(info: TFLiteInfo, layers) -> list[str]:
    """What keeps an int8 model from being full-integer: float operators, input or output."""
    floats = []
    for op, layer in zip(info.operators, layers):
        float_tensors = [
            info.tensors[t].name
            for t in (*op.inputs, *op.outputs)
            if t >= 0 and info.tensors[t].dtype in ("FLOAT32", "FLOAT16", "FLOAT64")
        ]
        if float_tensors:
            floats.append((op, layer, float_tensors))
    # QUANTIZE/DEQUANTIZE around a float operator are symptoms; name the operator itself.
    culprits = [f for f in floats if f[0].name not in ("QUANTIZE", "DEQUANTIZE")] or floats
    problems = [
        f"{_describe(op, layer)} was left in float ({len(float_tensors)} float "
        f"tensors, e.g. '{float_tensors[0]}'): it has no int8 kernel; replace the "
        f"layer by one with an int8 TFLite kernel or export with int8=False"
        for op, layer, float_tensors in culprits
    ]
    for role, idx in (("input", info.inputs), ("output", info.outputs)):
        problems += [
            f"model {role} '{info.tensors[t].name}' is {info.tensors[t].dtype}, expected INT8"
            for t in idx
            if info.tensors[t].dtype != "INT8"
        ]
    return problems


# --------------------------------------------------------------------------- conversion


def calibration_samples(representative_data, max_samples=None):
    """Split a representative set into single float32 samples with a leading batch axis of 1.

    Args:
        representative_data: a numpy array ``(N, ...)`` of model inputs, or an iterable of input
            batches (numpy/tensors), or of ``(inputs, labels)`` tuples such as a batched
            ``tf.data.Dataset``.
        max_samples: stop after this many samples (``None``: all).

    Returns:
        A list of float32 arrays of shape ``(1, ...)``.

    Raises:
        ValueError: no samples, or ``max_samples`` < 1.
        TypeError: an element is neither an array-like nor an ``(inputs, labels)`` tuple.

    Example:
        >>> [s.shape for s in calibration_samples(np.zeros((3, 5, 4)), max_samples=2)]
        [(1, 5, 4), (1, 5, 4)]
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples!r}.")
    if representative_data is None:
        raise ValueError("representative_data is required for int8 export, got None.")
    if isinstance(representative_data, np.ndarray) or hasattr(representative_data, "numpy"):
        batches: Iterable = [representative_data]
    else:
        batches = representative_data
    samples = []
    for batch in batches:
        if isinstance(batch, (tuple, list)):
            if not batch:
                raise TypeError("representative_data yielded an empty tuple/list.")
            batch = batch[0]
        if isinstance(batch, dict):
            raise TypeError(
                "representative_data yielded a dict; multi-input models are not supported by "
                "this exporter (pass the single input array)."
            )
        array = np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch, dtype=np.float32)
        if array.ndim == 0:
            raise TypeError("representative_data yielded a scalar; expected batches of inputs.")
        for row in array:
            samples.append(row[None])
            if max_samples is not None and len(samples) >= max_samples:
                return samples
    if not samples:
        raise ValueError("representative_data is empty: int8 calibration needs input samples.")
    return samples


def _check_model(model, input_shape, samples):
    """Validate the model; return its fixed input shape (without batch)."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"to_tflite: expected a keras.Model, got {type(model).__name__}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            f"export supports one input and one output."
        )
    shape = tuple(model.inputs[0].shape)[1:]
    if input_shape is None and samples is not None and any(d is None for d in shape):
        input_shape = samples[0].shape[1:]  # fix unknown dims from the calibration data
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != len(shape) or any(
            d is not None and d != i for d, i in zip(shape, input_shape)
        ):
            raise ValueError(
                f"Model '{model.name}' expects inputs of shape {shape} (without the batch axis) "
                f"but {input_shape} was given (input_shape or representative_data samples)."
            )
        shape = input_shape
    if any(d is None for d in shape):
        raise ValueError(
            f"Model '{model.name}' input has unknown dimensions {tuple(model.inputs[0].shape)}; a "
            f"microcontroller model needs a fixed input shape: pass input_shape=(frames, mels, "
            f"channels) (int8 export takes it from representative_data)."
        )
    return shape


def _converter_error(err, model, int8):
    """Turn a converter failure into an ExportError that names layers and operators."""
    text = str(err)
    names = _layer_names(model)
    ops = sorted(set(re.findall(r"'(tfl?\.\w+)' op", text)))
    layers = []
    for loc in re.findall(r'fused\["[^"]*", "([^"]+)"\]', text):
        found = _match_layer(loc, names)
        if found and found not in layers:
            layers.append(found)
    what = "int8 (full-integer) " if int8 else ""
    parts = [f"TFLite {what}conversion of model '{model.name}' failed"]
    if ops:
        parts.append(f"operator(s) {', '.join(ops)}")
    if layers:
        parts.append(f"in layer(s) {', '.join(repr(x) for x in layers)}")
    said = re.search(r"'tfl?\.\w+' op [^\n]+", text)
    lines = text.strip().splitlines()
    detail = said.group(0) if said else (lines[0] if lines else type(err).__name__)
    return ExportError(
        "; ".join(parts)
        + f". Converter said: {detail.strip()[:400]}."
        + (
            " Use layers with int8 TFLite builtin kernels, or export with int8=False."
            if int8
            else ""
        )
    )


def _max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _folded(model, strategy, shape, samples):
    """The strategy's inference graph, checked against ``model`` on a few inputs."""
    export_model = strategy.deploy(model, batch_size=1, input_shape=shape)
    if samples is not None:
        probe = samples[:4]
    else:
        rng = np.random.default_rng(0)
        probe = [rng.normal(size=(1, *shape)).astype("float32") for _ in range(2)]
    ref = np.concatenate([np.asarray(model(p, training=False)) for p in probe])
    got = np.concatenate([np.asarray(export_model(p, training=False)) for p in probe])
    tol = 1e-3 * (1.0 + float(np.max(np.abs(ref))))
    if _max_abs_diff(ref, got) > tol:
        raise ExportError(
            f"The folded inference graph of model '{model.name}' differs from the model by "
            f"{_max_abs_diff(ref, got):.3g} (tolerance {tol:.3g}); export with fold=False "
            f"and report this as a bug."
        )
    return export_model


def _run_converter(model, export_model, samples, int8):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(export_model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for sample in samples:
                yield [sample]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with native_stderr_captured():  # the converter's "fully_quantize: 0, ..." note
                flatbuffer = converter.convert()
    except Exception as err:  # the converter raises ConverterError and plain exceptions
        raise _converter_error(err, model, int8) from err
    return bytes(flatbuffer)


def _strategy_for(quaternion, int8):
    from keras_quaternion.export.strategies import get_strategy

    strategy = get_strategy(quaternion)
    if strategy.int8_only and not int8:
        raise ValueError(
            f"quaternion={strategy.name!r} exists for full-integer int8 models only; export with "
            f"int8=True or quaternion='expanded'."
        )
    return strategy


def convert_model(
    model,
    *,
    representative_data=None,
    int8=True,
    max_calibration_samples=500,
    input_shape=None,
    fold=True,
    check_micro=True,
    verify=True,
    quaternion="expanded",
):
    """:func:`to_tflite`, returning how the flatbuffer was made as well.

    Takes the arguments of :func:`to_tflite`.

    Returns:
        A :class:`~keras_quaternion.export.strategies.Conversion`: the flatbuffer, the strategy
        asked for and the one used, and for ``compact`` the converter's own (expanded)
        flatbuffer and what became of each quaternion layer.

    Raises:
        The errors of :func:`to_tflite`.

    Example:
        >>> import numpy as np, keras
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((16, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D()(QConv2D(2, 3, activation="relu")(x))
        >>> model = keras.Model(x, keras.layers.Dense(3)(y))
        >>> calib = np.random.default_rng(0).normal(size=(16, 16, 8, 4)).astype("float32")
        >>> conversion = convert_model(model, representative_data=calib, quaternion="compact")
        >>> conversion.strategy_used, inspect_tflite(conversion.flatbuffer).op_kinds
        ('compact', ['CUSTOM:KQ_QCONV2D', 'FULLY_CONNECTED', 'MEAN'])
    """
    import keras

    from keras_quaternion.export.strategies import Conversion

    if not isinstance(model, keras.Model):
        raise TypeError(f"to_tflite: expected a keras.Model, got {type(model).__name__}.")
    strategy = _strategy_for(quaternion, int8)
    samples = None
    if int8:
        samples = calibration_samples(representative_data, max_calibration_samples)
    shape = _check_model(model, input_shape, samples)
    if samples is not None and samples[0].shape[1:] != shape:
        raise ValueError(
            f"representative_data samples have shape {samples[0].shape[1:]}, but model "
            f"'{model.name}' expects inputs of shape {shape} (without the batch axis)."
        )
    export_model = _folded(model, strategy, shape, samples) if fold else model
    flatbuffer = _run_converter(model, export_model, samples, int8)
    conversion = Conversion(flatbuffer, strategy.name, strategy.name)
    conversion = strategy.rewrite(conversion, model, export_model)
    if check_micro:
        check_tflite(conversion.flatbuffer, export_model, int8=int8, custom_ops=strategy.custom_ops)
    if verify and int8:
        strategy.verify(conversion, np.concatenate(samples[:VERIFY_SAMPLES]))
    return conversion


def to_tflite(
    model,
    *,
    representative_data=None,
    int8=True,
    max_calibration_samples=500,
    input_shape=None,
    fold=True,
    check_micro=True,
    verify=True,
    quaternion="expanded",
):
    """Convert a Keras model to a TFLite flatbuffer, float32 or full-integer int8.

    Args:
        model: a built functional/Sequential Keras model with one fixed-shape input and one
            output (e.g. from :func:`keras_quaternion.models.build`).
        representative_data: calibration inputs for int8 (required then): a numpy array
            ``(N, ...)``, or an iterable of input batches or ``(inputs, labels)`` batches
            (e.g. ``prepared.tf_dataset("train", 32, channels)``). Draw it from training data.
        int8: full-integer quantization with int8 weights, activations, input and output
            (``False``: float32 flatbuffer).
        max_calibration_samples: use at most this many samples for calibration.
        input_shape: fix the model's unknown input dimensions (without the batch axis), e.g. a
            registry model built with ``frames=None``; int8 export takes them from
            ``representative_data`` when not given.
        fold: rewrite the model with :func:`~keras_quaternion.export.fold.deploy_model` first
            (quaternion layers as real convolutions, batch norm folded). Leave on.
        check_micro: run :func:`check_tflite` (TFLite Micro operators, full int8).
        verify: int8: run the flatbuffer on LiteRT and TFLite Micro on the first
            ``VERIFY_SAMPLES`` calibration samples (:func:`~keras_quaternion.export.verify_tflite`);
            :func:`~keras_quaternion.export.export_model` verifies on test data instead.
        quaternion: how quaternion layers reach the flatbuffer
            (:mod:`keras_quaternion.export.strategies`): ``"expanded"`` (real layers, builtin
            operators only), ``"compact"`` (int8 only: one custom operator per quaternion
            layer holding a quarter of the weights) or ``"fast"`` (8 real products between
            additions, builtin operators only: half the weights and multiply-accumulates), or
            a strategy instance; see docs/deploy.md.

    Returns:
        The flatbuffer as ``bytes``. Its input is ``(1, *input_shape)``.

    Raises:
        TypeError / ValueError: not a Keras model, several inputs/outputs, unknown input
            dimensions, missing or empty representative data for int8, an unknown
            ``quaternion`` strategy, or ``compact`` for a float model.
        ExportError: conversion failed, the model cannot be fully int8-quantized or uses an
            operator TFLite Micro lacks (the message names layer and operator), or the folded
            inference graph disagrees with the model.
        VerificationError: (int8, ``verify``) TFLite Micro and LiteRT disagree.

    Example:
        >>> import numpy as np, keras
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((16, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D()(QConv2D(2, 3, activation="relu")(x))
        >>> model = keras.Model(x, keras.layers.Dense(3)(y))
        >>> calib = np.random.default_rng(0).normal(size=(16, 16, 8, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)
        >>> inspect_tflite(flatbuffer).op_kinds
        ['CONV_2D', 'FULLY_CONNECTED', 'MEAN']
    """
    return convert_model(
        model,
        representative_data=representative_data,
        int8=int8,
        max_calibration_samples=max_calibration_samples,
        input_shape=input_shape,
        fold=fold,
        check_micro=check_micro,
        verify=verify,
        quaternion=quaternion,
    ).flatbuffer
