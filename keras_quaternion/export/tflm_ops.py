"""TFLite Micro's builtin operators, as data: which ones exist and how to register them.

``TFLM_BUILTIN_OPS`` maps each TFLite builtin operator name (``BuiltinOperator_<NAME>`` in the
flatbuffer schema) to the ``tflite::MicroMutableOpResolver<N>`` method that registers it. The table
was read off ``tensorflow/lite/micro/micro_mutable_op_resolver.h`` in the TFLite Micro repository
(github.com/tensorflow/tflite-micro, commit ``90b983c2b3f1480642e040bbd2ddb37b998f3424``,
2026-08-20): one entry per ``Add<Op>()`` method that calls ``AddBuiltin(BuiltinOperator_<NAME>,
...)``. Custom operators (``AddCustom``, the signal library, Ethos-U) are not listed: a model with
a custom operator is rejected by :func:`keras_quaternion.export.to_tflite`.

An operator missing here cannot run on a microcontroller with stock TFLite Micro; export stops
with an error naming the operator and the Keras layer it came from.
"""

from __future__ import annotations

#: Source of :data:`TFLM_BUILTIN_OPS`.
TFLM_SOURCE = (
    "tensorflow/tflite-micro@90b983c2b3f1480642e040bbd2ddb37b998f3424:"
    "tensorflow/lite/micro/micro_mutable_op_resolver.h"
)

#: TFLite builtin operator name -> ``MicroMutableOpResolver`` method registering it.
TFLM_BUILTIN_OPS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}


def tflm_add_method(op_name):
    """Return the ``MicroMutableOpResolver`` method registering builtin ``op_name``.

    Args:
        op_name: a TFLite builtin operator name such as ``"CONV_2D"``.

    Returns:
        The method name, e.g. ``"AddConv2D"``.

    Raises:
        KeyError: ``op_name`` is not a TFLite Micro builtin operator; the message lists how to
            find the supported ones.

    Example:
        >>> tflm_add_method("FULLY_CONNECTED")
        'AddFullyConnected'
    """
    try:
        return TFLM_BUILTIN_OPS[op_name]
    except KeyError:
        raise KeyError(
            f"Operator {op_name!r} is not a TFLite Micro builtin operator (see "
            f"keras_quaternion.export.tflm_ops.TFLM_BUILTIN_OPS, {len(TFLM_BUILTIN_OPS)} "
            f"operators, from {TFLM_SOURCE})."
        ) from None


#: keras-quaternion's own custom operators: name -> (registration call, header declaring it).
#: ``<name>_ops.h`` registers them with ``AddCustom``; their sources are in ``tflite/quaternion``.
TFLM_CUSTOM_OPS: dict[str, tuple[str, str]] = {
    "KQ_QCONV2D": ("tflite::Register_KQ_QCONV2D()", "kq_quaternion_tflm.h"),
    "KQ_QFULLY_CONNECTED": ("tflite::Register_KQ_QFULLY_CONNECTED()", "kq_quaternion_tflm.h"),
}
