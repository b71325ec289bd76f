"""Run a TFLite flatbuffer with LiteRT and with TFLite Micro, and check they agree.

Two interpreters run every exported model on the same inputs:

* LiteRT (``ai_edge_litert.interpreter.Interpreter``) with its *reference* kernels
  (``OpResolverType.BUILTIN_REF``), the specification TFLite Micro's kernels follow, and
* TFLite Micro's Python interpreter (``tflite_micro.runtime.Interpreter``), i.e. the code that
  runs on the microcontroller.

For an int8 model the raw int8 outputs are compared exactly. One difference between the two
runtimes is known and is *proved*, not tolerated: LiteRT's int8 ``FULLY_CONNECTED`` requantizes
its accumulators with a single rounding, TFLite Micro's with the classic double rounding
(``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``), so an accumulator whose
scaled value lies within a hair of ``k + 0.5`` may come out 1 apart. When outputs differ,
:func:`verify_tflite` replays the sample with every intermediate tensor kept, finds the first
operator whose inputs agree but whose outputs differ, and accepts the difference only if that
operator is a ``FULLY_CONNECTED`` and each differing element equals, bit for bit, the
double-rounding result (TFLite Micro) and the single-rounding result (LiteRT) recomputed here in
integer arithmetic from its inputs, weights and quantization parameters. Any other difference
raises :class:`VerificationError`; ``strict=True`` rejects even the proved rounding case.

LiteRT's default kernels (XNNPACK) are compared too and reported, not enforced: XNNPACK
requantizes int8 convolutions in float and differs from both by up to a few LSB.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from keras_quaternion.export.quiet import native_stderr_captured
from keras_quaternion.export.tflite import ExportError, _as_bytes, inspect_tflite


class VerificationError(ExportError):
    """LiteRT and TFLite Micro disagree on an exported model beyond the proved rounding case.

    Raised by :func:`verify_tflite` (and so by :func:`~keras_quaternion.export.to_tflite` and
    :func:`~keras_quaternion.export.export_model`); the message names the first diverging
    operator(s). A subclass of :class:`~keras_quaternion.export.tflite.ExportError`, so one
    ``except ExportError`` catches every export failure.

    Example:
        >>> err = VerificationError("int8 model: TFLite Micro and LiteRT outputs differ ...")
        >>> isinstance(err, ExportError), isinstance(err, RuntimeError)
        (True, True)
        >>> try:
        ...     raise err
        ... except ExportError as caught:
        ...     print(type(caught).__name__)
        VerificationError
    """


# --------------------------------------------------------------------------- runtimes


def _litert(tflite_model, *, reference=True, preserve=False, num_threads=1, delegates=True):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Running .tflite files needs 'ai-edge-litert': pip install 'keras-quaternion[export]'."
        ) from err
    kwargs = {"model_content": _as_bytes(tflite_model), "num_threads": num_threads}
    if reference:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    elif not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if preserve:
        kwargs["experimental_preserve_all_tensors"] = True
    with native_stderr_captured():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" note
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
    return interpreter


#: smallest arena handed to TFLite Micro's Python interpreter: below about 512 bytes it crashes
#: the process (SIGSEGV) instead of reporting the failed allocation.
MIN_ARENA_PROBE = 1024


def _tflm(tflite_model, *, arena_size=None, preserve=False):
    try:
        from tflite_micro import runtime
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Running on TFLite Micro needs 'tflite-micro': pip install 'keras-quaternion[export]'."
        ) from err
    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve
        else runtime.InterpreterConfig.kAllocationRecording
    )
    data = _as_bytes(tflite_model)
    if arena_size is None:
        arena_size = max(64 * 1024, 10 * len(data))
    if int(arena_size) < MIN_ARENA_PROBE:
        raise ValueError(
            f"arena_size must be at least {MIN_ARENA_PROBE} bytes, got {arena_size}: TFLite "
            "Micro's Python interpreter crashes the process on smaller arenas instead of raising. "
            "keras_quaternion.export.measure_arena finds the size a model needs."
        )
    return runtime.Interpreter.from_bytes(data, arena_size=arena_size, intrepreter_config=config)


@dataclasses.dataclass(frozen=True)
class IOSpec:
    """Input/output dtype and quantization of a flatbuffer.

    Attributes:
        input_shape: shape of the first input tensor, batch axis included (``(1, ...)``).
        input_dtype: its numpy dtype (``int8`` for a full-integer model, else ``float32``).
        input_scale: its quantization scale, or ``None`` for a float input.
        input_zero_point: its quantization zero point, or ``None`` for a float input.
        output_shape: shape of the first output tensor, batch axis included.
        output_dtype: its numpy dtype.
        output_scale: its quantization scale, or ``None``.
        output_zero_point: its quantization zero point, or ``None``.

    Example:
        Normally read by :func:`io_spec`; built by hand here:

        >>> spec = IOSpec((1, 4), np.dtype("int8"), 0.5, -1, (1, 2), np.dtype("int8"), 0.1, 0)
        >>> spec.quantized
        True
    """

    input_shape: tuple
    input_dtype: np.dtype
    input_scale: float | None
    input_zero_point: int | None
    output_shape: tuple
    output_dtype: np.dtype
    output_scale: float | None
    output_zero_point: int | None

    @property
    def quantized(self):
        """True for an integer (int8) input."""
        return np.issubdtype(self.input_dtype, np.integer)


_NP_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "FLOAT32": np.float32}


def io_spec(tflite_model):
    """Input/output shapes, dtypes and quantization of a flatbuffer (first input and output).

    Args:
        tflite_model: the flatbuffer (``bytes``).

    Returns:
        An :class:`IOSpec`.

    Raises:
        TypeError: ``tflite_model`` is not bytes.
        ValueError: not a TFLite flatbuffer, or an input/output type other than
            int8/uint8/int16/float32.

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> init = keras.initializers.GlorotUniform(seed=0)
        >>> model = keras.Model(x, keras.layers.Dense(3, kernel_initializer=init)(x))
        >>> calib = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)  # int8
        >>> spec = io_spec(flatbuffer)
        >>> spec.input_shape, spec.input_dtype, spec.output_shape, spec.quantized
        ((1, 4), dtype('int8'), (1, 3), True)
    """
    info = inspect_tflite(tflite_model)
    specs = []
    for tensor in (info.input, info.output):
        if tensor.dtype not in _NP_TYPES:
            raise ValueError(
                f"Tensor '{tensor.name}' has type {tensor.dtype}; supported model inputs/outputs "
                f"are {sorted(_NP_TYPES)}."
            )
        specs.append(
            (tensor.shape, np.dtype(_NP_TYPES[tensor.dtype]), tensor.scale, tensor.zero_point)
        )
    (ish, idt, isc, izp), (osh, odt, osc, ozp) = specs
    return IOSpec(ish, idt, isc, izp, osh, odt, osc, ozp)


def quantize(x, scale, zero_point, dtype=np.int8):
    """Float -> integer with TFLite's affine scheme ``q = clip(round(x / scale) + zero_point)``.

    Args:
        x: float array.
        scale, zero_point: the tensor's quantization parameters.
        dtype: integer numpy dtype of the tensor.

    Returns:
        An array of ``dtype``.

    Example:
        >>> quantize(np.array([0.0, 1.0, -100.0]), 0.5, -1).tolist()
        [-1, 1, -128]
    """
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, scale, zero_point):
    """Integer -> float32: ``(q - zero_point) * scale``.

    Args:
        q: integer array (any shape).
        scale: the tensor's quantization scale.
        zero_point: the tensor's quantization zero point.

    Returns:
        A float32 array of the same shape.

    Example:
        >>> dequantize(np.array([-1, 1], np.int8), 0.5, -1).tolist()
        [0.0, 1.0]
    """
    return ((np.asarray(q, np.float64) - zero_point) * scale).astype(np.float32)


def prepare_inputs(spec, inputs):
    """Float inputs ``(N, ...)`` -> the model's input dtype (quantized for int8 models).

    Args:
        spec: the model's :class:`IOSpec` (from :func:`io_spec`).
        inputs: ``(N, *input_shape)`` without the model's batch axis of 1; float, or already
            of the model's integer input dtype (then returned as is).

    Returns:
        ``(N, *input_shape)``: quantized with the input scale and zero point for an integer
        model, else float32.

    Raises:
        ValueError: ``inputs`` do not have the shape ``(N, *input_shape)``.

    Example:
        >>> spec = IOSpec((1, 4), np.dtype("int8"), 0.5, -1, (1, 2), np.dtype("int8"), 0.1, 0)
        >>> prepare_inputs(spec, np.array([[0.0, 1.0, -100.0, 2.0]])).tolist()
        [[-1, 1, -128, 3]]
        >>> prepare_inputs(spec, np.zeros((2, 5)))
        Traceback (most recent call last):
        ...
        ValueError: Inputs have shape (2, 5) but the .tflite model expects (N, *(4,)) ...
    """
    x = np.asarray(inputs)
    expected = tuple(spec.input_shape[1:])
    if x.shape[1:] != expected:
        raise ValueError(
            f"Inputs have shape {x.shape} but the .tflite model expects (N, *{expected}) "
            f"(its input tensor is {tuple(spec.input_shape)})."
        )
    if spec.quantized:
        if np.issubdtype(x.dtype, np.integer) and x.dtype == spec.input_dtype:
            return x
        return quantize(x, spec.input_scale, spec.input_zero_point, spec.input_dtype)
    return x.astype(np.float32)


def run_litert(tflite_model, inputs, *, reference=False, num_threads=1):
    """Run a flatbuffer with LiteRT on a batch, one sample at a time.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        inputs: ``(N, *input_shape)``, float (quantized here for int8 models) or already in the
            model's input dtype.
        reference: use LiteRT's reference kernels instead of the default optimized ones.
        num_threads: LiteRT threads.

    Returns:
        Raw outputs ``(N, *output_shape)`` in the model's output dtype.

    Raises:
        ValueError: inputs of the wrong shape.

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> init = keras.initializers.GlorotUniform(seed=0)
        >>> model = keras.Model(x, keras.layers.Dense(3, kernel_initializer=init)(x))
        >>> calib = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)  # int8
        >>> out = run_litert(flatbuffer, calib[:5], reference=True)
        >>> out.shape, out.dtype
        ((5, 3), dtype('int8'))
    """
    spec = io_spec(tflite_model)
    x = prepare_inputs(spec, inputs)
    interpreter = _litert(tflite_model, reference=reference, num_threads=num_threads)
    i_index = interpreter.get_input_details()[0]["index"]
    o_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for row in x:
        interpreter.set_tensor(i_index, row[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(o_index)[0].copy())
    return np.stack(outputs)


def run_tflm(tflite_model, inputs, *, arena_size=None):
    """Run a flatbuffer on the TFLite Micro interpreter, one sample at a time.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        inputs: as :func:`run_litert`.
        arena_size: tensor arena in bytes (default ``max(64 KiB, 10 x model size)``).

    Returns:
        Raw outputs ``(N, *output_shape)`` in the model's output dtype.

    Raises:
        ValueError: inputs of the wrong shape, or ``arena_size`` below ``MIN_ARENA_PROBE``
            (1024) bytes.
        RuntimeError: TFLite Micro cannot allocate or run the model (e.g. arena too small).

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> init = keras.initializers.GlorotUniform(seed=0)
        >>> model = keras.Model(x, keras.layers.Dense(3, kernel_initializer=init)(x))
        >>> calib = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)  # int8
        >>> micro = run_tflm(flatbuffer, calib[:5])
        >>> reference = run_litert(flatbuffer, calib[:5], reference=True)
        >>> micro.shape, bool(np.array_equal(micro, reference))
        ((5, 3), True)
    """
    spec = io_spec(tflite_model)
    x = prepare_inputs(spec, inputs)
    interpreter = _tflm(tflite_model, arena_size=arena_size)
    outputs = []
    for row in x:
        interpreter.set_input(row[None], 0)
        interpreter.invoke()
        outputs.append(np.asarray(interpreter.get_output(0))[0].copy())
    return np.stack(outputs)


# --------------------------------------------------------------------------- rounding proof


def _quantize_multiplier(real):
    """TFLite's QuantizeMultiplier: real = q * 2^(shift - 31), q in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = round(mantissa * (1 << 31))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def _requant_double(acc, multiplier, shift):
    """MultiplyByQuantizedMultiplier with double rounding (TFLite Micro's reference)."""
    left = max(shift, 0)
    right = max(-shift, 0)
    a = acc * (1 << left)
    if a == multiplier == -(1 << 31):
        high = (1 << 31) - 1
    else:
        ab = a * multiplier
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        v = ab + nudge
        high = abs(v) >> 31 if v >= 0 else -(abs(v) >> 31)
    if right == 0:
        return high
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if remainder > threshold else 0)


def _requant_single(acc, multiplier, shift):
    """MultiplyByQuantizedMultiplier with a single rounding (TFLITE_SINGLE_ROUNDING)."""
    total = 31 - shift
    return (acc * multiplier + (1 << (total - 1))) >> total


def _activation_range(activation, scale, zero_point, dtype=np.int8):
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if activation == "RELU":
        lo = max(lo, zero_point)
    elif activation == "RELU6":
        lo, hi = max(lo, zero_point), min(hi, zero_point + round(6.0 / scale))
    elif activation == "RELU_N1_TO_1":
        lo = max(lo, zero_point + round(-1.0 / scale))
        hi = min(hi, zero_point + round(1.0 / scale))
    elif activation not in (None, "NONE"):
        return None
    return lo, hi


def _fc_rounding_explains(op, litert, litert_out, tflm_out):
    """True if every differing element of an int8 FULLY_CONNECTED is the rounding difference."""
    details = litert.get_tensor_details()
    x = litert.get_tensor(op.inputs[0]).astype(np.int64)
    w = litert.get_tensor(op.inputs[1]).astype(np.int64)
    if w.ndim != 2:
        return False
    bias = (
        litert.get_tensor(op.inputs[2]).astype(np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0
        else np.zeros(w.shape[0], np.int64)
    )
    xq = details[op.inputs[0]]["quantization_parameters"]
    wq = details[op.inputs[1]]["quantization_parameters"]
    oq = details[op.outputs[0]]["quantization_parameters"]
    if len(xq["scales"]) != 1 or len(oq["scales"]) != 1:
        return False
    x_zp, o_zp = int(xq["zero_points"][0]), int(oq["zero_points"][0])
    w_scales = np.asarray(wq["scales"], np.float32)
    x_scale, o_scale = np.float32(xq["scales"][0]), np.float32(oq["scales"][0])
    limits = _activation_range(op.activation, float(o_scale), o_zp)
    if limits is None:
        return False
    rows = x.reshape(-1, w.shape[1])
    acc = (rows - x_zp) @ w.T + bias  # (rows, out)
    a = np.asarray(litert_out).reshape(acc.shape)
    b = np.asarray(tflm_out).reshape(acc.shape)
    for r, c in zip(*np.nonzero(a != b)):
        w_scale = w_scales[c] if w_scales.size > 1 else w_scales[0]
        real = float(np.float64(x_scale) * np.float64(w_scale) / np.float64(o_scale))
        m, s = _quantize_multiplier(real)
        total = int(acc[r, c])
        double = min(max(_requant_double(total, m, s) + o_zp, limits[0]), limits[1])
        single = min(max(_requant_single(total, m, s) + o_zp, limits[0]), limits[1])
        if not (int(b[r, c]) == double and int(a[r, c]) == single):
            return False
    return True


def _root_causes(tflite_model, info, sample, expected_ref, expected_micro):
    """Replay one sample with all tensors kept; classify the first diverging operators.

    The replay must reproduce the outputs of the batch run on both runtimes; a mismatch is
    reported as an unexplained difference (a runtime that is not deterministic, or outputs that
    changed between runs).
    """
    litert = _litert(tflite_model, reference=True, preserve=True)
    tflm = _tflm(tflite_model, preserve=True)
    litert.set_tensor(litert.get_input_details()[0]["index"], sample[None])
    litert.invoke()
    tflm.set_input(sample[None], 0)
    tflm.invoke()

    def micro(t):
        return np.asarray(tflm.GetTensor(t, 0)["tensor_data"])

    explained, unexplained = [], []
    out = info.outputs[0]
    for runtime, got, want in (
        ("LiteRT", litert.get_tensor(out)[0], expected_ref),
        ("TFLite Micro", micro(out)[0], expected_micro),
    ):
        if not np.array_equal(got, want):
            unexplained.append((-1, f"{runtime} replay", info.tensors[out].name, -1))
    for op in info.operators:
        live = [t for t in op.inputs if t >= 0 and not info.tensors[t].is_constant]
        if not all(np.array_equal(litert.get_tensor(t), micro(t)) for t in live):
            continue  # a difference propagated from an earlier operator
        for t in op.outputs:
            a, b = litert.get_tensor(t), micro(t)
            if np.array_equal(a, b):
                continue
            diff = int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))
            entry = (op.index, op.name, info.tensors[t].name, diff)
            if op.name == "FULLY_CONNECTED" and _fc_rounding_explains(op, litert, a, b):
                explained.append(entry)
            else:
                unexplained.append(entry)
    return explained, unexplained


# --------------------------------------------------------------------------- verification


@dataclasses.dataclass
class VerificationResult:
    """Outcome of :func:`verify_tflite` (JSON-friendly via ``dataclasses.asdict``).

    Attributes:
        samples: number of inputs compared.
        int8: whether the model is integer.
        identical_samples: samples whose TFLite Micro output equals LiteRT-reference exactly.
        max_abs_diff: largest output difference TFLite Micro vs LiteRT-reference (LSB for
            int8, absolute for float).
        top1_agreement: fraction of samples with the same arg-max class.
        rounding_explained: operators (index, name, tensor, LSB) where a difference was proved
            to be the FULLY_CONNECTED single/double rounding difference.
        default_kernels_max_abs_diff: largest difference TFLite Micro vs LiteRT's default
            (XNNPACK) kernels, for information.
        runtime: what ran the deployed flatbuffer for this verification.
        quaternion_layers: compact strategy: per custom operator, the layer and the samples on
            which its C kernel matched both runtimes (``None`` for other strategies).

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> init = keras.initializers.GlorotUniform(seed=0)
        >>> model = keras.Model(x, keras.layers.Dense(3, kernel_initializer=init)(x))
        >>> calib = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)  # int8
        >>> result = verify_tflite(flatbuffer, calib)
        >>> result.samples, result.int8, result.identical, result.top1_agreement
        (16, True, True, 1.0)
        >>> sorted(dataclasses.asdict(result))[:3]
        ['default_kernels_max_abs_diff', 'identical_samples', 'int8']
    """

    samples: int
    int8: bool
    identical_samples: int
    max_abs_diff: float
    top1_agreement: float
    rounding_explained: list
    default_kernels_max_abs_diff: float
    runtime: str = "LiteRT reference kernels and TFLite Micro's Python runtime"
    quaternion_layers: list | None = None

    @property
    def identical(self):
        """All samples bit-identical."""
        return self.identical_samples == self.samples


def verify_tflite(tflite_model, inputs, *, strict=False, arena_size=None, float_rtol=1e-4):
    """Run a flatbuffer with LiteRT and TFLite Micro on the same inputs and compare.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        inputs: float inputs ``(N, *input_shape)`` (quantized with the model's input scale and
            zero point for int8 models), e.g. a few test-split feature maps.
        strict: int8: require bit-identical outputs, rejecting even the proved FULLY_CONNECTED
            rounding difference (see module docs).
        arena_size: TFLite Micro arena in bytes (default: generous).
        float_rtol: float models: allowed ``max|a-b| / (1 + max|a|)``.

    Returns:
        A :class:`VerificationResult`.

    Raises:
        VerificationError: the runtimes disagree (int8: any difference not proved to be the
            FULLY_CONNECTED rounding difference, or any difference with ``strict``; float:
            beyond ``float_rtol``). The message names the first diverging operator(s).
        ValueError: inputs of the wrong shape or empty.

    Example:
        >>> result = verify_tflite(flatbuffer, x_test[:16])  # doctest: +SKIP
        >>> result.identical_samples, result.top1_agreement  # doctest: +SKIP
        (16, 1.0)
    """
    data = _as_bytes(tflite_model)
    spec = io_spec(data)
    x = prepare_inputs(spec, inputs)
    if len(x) == 0:
        raise ValueError("verify_tflite: no inputs given.")
    ref = run_litert(data, x, reference=True)
    micro = run_tflm(data, x, arena_size=arena_size)
    fast = run_litert(data, x, reference=False)
    result, per_sample = _compare(spec, ref, micro, fast)
    if not spec.quantized:
        _check_float(result, ref, per_sample, float_rtol)
    elif not result.identical:
        _explain_int8(result, data, x, ref, micro, per_sample, strict)
    return result


def _compare(spec, ref, micro, fast):
    """The :class:`VerificationResult` of the outputs (nothing explained yet) and the largest
    difference per input."""
    n = len(ref)
    wide_ref, wide_micro = ref.astype(np.float64), micro.astype(np.float64)
    per_sample = np.abs(wide_ref - wide_micro).reshape(n, -1).max(axis=1)
    same_top1 = np.argmax(wide_ref.reshape(n, -1), 1) == np.argmax(wide_micro.reshape(n, -1), 1)
    result = VerificationResult(
        samples=n,
        int8=spec.quantized,
        identical_samples=int(np.sum(per_sample == 0)),
        max_abs_diff=float(per_sample.max()),
        top1_agreement=float(np.mean(same_top1)),
        rounding_explained=[],
        default_kernels_max_abs_diff=float(np.max(np.abs(fast.astype(np.float64) - wide_micro))),
    )
    return result, per_sample


def _check_float(result, ref, per_sample, float_rtol: float) -> None:
    """A float model's outputs must agree within ``float_rtol`` (relative to the largest)."""
    tol = float_rtol * (1.0 + float(np.max(np.abs(ref.astype(np.float64)))))
    if result.max_abs_diff > tol:
        n = result.samples
        raise VerificationError(
            f"Float model: TFLite Micro and LiteRT outputs differ by {result.max_abs_diff:.3g} "
            f"(allowed {tol:.3g}) on {n - int(np.sum(per_sample <= tol))} of {n} inputs."
        )


def _explain_int8(result, data, x, ref, micro, per_sample, strict: bool) -> None:
    """Trace every differing int8 input to its first diverging operator: differences proved to
    be FULLY_CONNECTED rounding are recorded in ``result``; anything else (or anything with
    ``strict``) raises :class:`VerificationError`."""
    info = inspect_tflite(data)
    seen = {}
    for i in np.nonzero(per_sample > 0)[0]:
        explained, unexplained = _root_causes(data, info, x[i], ref[i], micro[i])
        for entry in explained:
            seen.setdefault(entry[:3], entry)
        if unexplained or not explained:
            where = (
                ", ".join(
                    f"{e[1]} gave other outputs than the first run"
                    if e[0] < 0
                    else f"operator #{e[0]} {e[1]} (tensor '{e[2]}', {e[3]} LSB)"
                    for e in unexplained
                )
                or "no single operator (outputs differ but every operator agrees)"
            )
            raise VerificationError(
                f"int8 model: TFLite Micro and LiteRT (reference kernels) outputs differ on "
                f"input {i} by up to {int(per_sample[i])} LSB; first diverging {where}. "
                f"{result.identical_samples} of {len(x)} inputs were identical."
            )
    result.rounding_explained = [list(v) for v in seen.values()]
    if strict:
        raise VerificationError(
            f"int8 model: TFLite Micro and LiteRT outputs differ on "
            f"{len(x) - result.identical_samples} of {len(x)} inputs (up to "
            f"{int(result.max_abs_diff)} LSB). Every difference was proved to come from "
            f"FULLY_CONNECTED requantization rounding (LiteRT single, TFLite Micro double "
            f"rounding) at {[e[2] for e in result.rounding_explained]}, but strict=True."
        )


def litert_latency(tflite_model, *, runs=50, warmup=5, num_threads=1, xnnpack=True):
    """Median wall-clock time of one LiteRT inference on this CPU.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        runs: timed invocations (>= 1).
        warmup: untimed invocations first.
        num_threads: LiteRT threads.
        xnnpack: use LiteRT's default kernels, XNNPACK included (the fastest on a desktop CPU);
            ``False`` runs the built-in optimized kernels without the default delegate, whose
            float/int8 balance is closer to a microcontroller's (no wide float SIMD there).

    Returns:
        Median seconds per inference.

    Raises:
        ValueError: ``runs`` < 1.

    Example:
        >>> litert_latency(flatbuffer, runs=20) < 0.1  # doctest: +SKIP
        True
    """
    if runs < 1:
        raise ValueError(f"litert_latency: runs must be >= 1, got {runs}.")
    interpreter = _litert(tflite_model, reference=False, num_threads=num_threads, delegates=xnnpack)
    detail = interpreter.get_input_details()[0]
    x = np.zeros(detail["shape"], detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# --------------------------------------------------------------------------- scoring


def _load_flatbuffer(path_or_bytes):
    """The flatbuffer to run and its name; compact quaternion operators are expanded, since the
    Python runtimes cannot run them and the expanded operators give the same int8 outputs."""
    from keras_quaternion.export.strategies.compact import expand_flatbuffer

    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return expand_flatbuffer(bytes(path_or_bytes)), "<bytes>"
    path = os.fspath(path_or_bytes)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TFLite model file '{path}' does not exist.")
    with open(path, "rb") as handle:
        return expand_flatbuffer(handle.read()), path


def predict_tflite(path_or_bytes, features, *, runtime="litert", progress=False):
    """Float predictions of a .tflite model on float features (quantize in, dequantize out).

    Args:
        path_or_bytes: a ``.tflite`` path or the flatbuffer bytes.
        features: float32 ``(N, *input_shape)``.
        runtime: ``"litert"`` (LiteRT default kernels), ``"litert-reference"`` or ``"tflm"``
            (TFLite Micro, as on the device; slower).
        progress: show a tqdm bar.

    Returns:
        float32 ``(N, *output_shape)``: dequantized outputs for int8 models.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: unknown ``runtime`` or features of the wrong shape.

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> init = keras.initializers.GlorotUniform(seed=0)
        >>> model = keras.Model(x, keras.layers.Dense(3, kernel_initializer=init)(x))
        >>> calib = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        >>> flatbuffer = to_tflite(model, representative_data=calib)  # int8
        >>> with open("model.tflite", "wb") as f:
        ...     _ = f.write(flatbuffer)
        >>> probs = predict_tflite("model.tflite", calib[:5])
        >>> probs.shape, probs.dtype
        ((5, 3), dtype('float32'))
        >>> float(np.max(np.abs(probs - np.asarray(model(calib[:5]))))) < 0.1  # int8 rounding
        True
    """
    from tqdm.auto import tqdm

    data, _ = _load_flatbuffer(path_or_bytes)
    if runtime not in ("litert", "litert-reference", "tflm"):
        raise ValueError(
            f"predict_tflite: runtime must be 'litert', 'litert-reference' or 'tflm', "
            f"got {runtime!r}."
        )
    spec = io_spec(data)
    x = prepare_inputs(spec, features)
    if runtime == "tflm":
        interpreter = _tflm(data)

        def run(row):
            interpreter.set_input(row[None], 0)
            interpreter.invoke()
            return np.asarray(interpreter.get_output(0))[0]

    else:
        interpreter = _litert(data, reference=runtime == "litert-reference")
        i_index = interpreter.get_input_details()[0]["index"]
        o_index = interpreter.get_output_details()[0]["index"]

        def run(row):
            interpreter.set_tensor(i_index, row[None])
            interpreter.invoke()
            return interpreter.get_tensor(o_index)[0]

    outputs = (
        np.stack(
            [run(row).copy() for row in tqdm(x, desc="tflite", disable=not progress, leave=False)]
        )
        if len(x)
        else np.zeros((0, *spec.output_shape[1:]), np.float32)
    )
    if np.issubdtype(spec.output_dtype, np.integer):
        return dequantize(outputs, spec.output_scale, spec.output_zero_point)
    return outputs.astype(np.float32)


def evaluate_tflite(path_or_bytes, prepared, split="test", *, runtime="litert", progress=False):
    """Score a .tflite model on a split, with the metric code used for Keras models.

    Inputs are quantized with the model's input scale/zero-point and outputs dequantized; the
    headline score is :func:`keras_quaternion.training.metrics.score` (accuracy, or mAP for
    multi-label data), exactly as for a ``.keras`` model.

    Args:
        path_or_bytes: a ``.tflite`` path or the flatbuffer bytes.
        prepared: a :class:`keras_quaternion.training.PreparedData`.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        runtime: see :func:`predict_tflite`.
        progress: show a tqdm bar.

    Returns:
        ``{"split", "examples", "loss", "accuracy" (or "mAP"), "runtime", "dtype"}``, the keys
        of :func:`keras_quaternion.training.loop.evaluate` for Keras models plus the runtime
        and the model's input dtype (``"int8"``/``"float32"``). ``loss`` is the cross-entropy
        of the (dequantized) outputs, meaningful for softmax/sigmoid outputs.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: unknown split, empty split, or a model whose input shape does not match the
            prepared features (frames, mels, 1 or 4 channels).

    Example:
        >>> evaluate_tflite("out/model_int8.tflite", prepared)  # doctest: +SKIP
        {'split': 'test', 'examples': 300, 'loss': 0.21, 'accuracy': 0.93, 'runtime': 'litert', 'dtype': 'int8'}
    """
    from keras_quaternion.training.metrics import cross_entropy, score

    data, where = _load_flatbuffer(path_or_bytes)
    spec = io_spec(data)
    shape = tuple(spec.input_shape[1:])
    channels = shape[-1] if len(shape) == 3 else None
    if channels not in (1, 4) or shape[:2] != (prepared.frames, prepared.n_mels):
        raise ValueError(
            f"TFLite model {where} takes inputs {tuple(spec.input_shape)} but '{prepared.dataset}' "
            f"features are [N, {prepared.frames}, {prepared.n_mels}, 1 or 4]; export the model "
            f"trained on these features."
        )
    x, y = prepared.arrays(split, channels=channels)
    if len(y) == 0:
        raise ValueError(f"evaluate_tflite: the {split!r} split of '{prepared.dataset}' is empty.")
    probs = predict_tflite(data, np.asarray(x), runtime=runtime, progress=progress)
    probs = probs.reshape(len(y), -1)
    result = {"split": split, "examples": int(len(y))}
    result["loss"] = cross_entropy(y, probs, multi_label=prepared.multi_label)
    result.update(score(y, probs, prepared.multi_label))
    result.update(
        runtime=runtime,
        dtype="int8" if spec.quantized else "float32",
    )
    return result
