"""Edit a TFLite flatbuffer after conversion: read it as objects, change it, write it back.

Export strategies that work on the converter's output (the compact quaternion operator) read
the flatbuffer with the object API of the TFLite schema that the ``tflite-micro`` package ships,
change tensors, buffers and operators, and serialise it again. :func:`write_model` aligns every
constant buffer to 16 bytes, as the converter does: TFLite Micro points its tensors straight into
the flatbuffer, and an int32 bias at an odd address faults on cores without unaligned access.

Example:
    >>> import keras
    >>> from keras_quaternion.export import to_tflite
    >>> x = keras.Input((4,))
    >>> flatbuffer = to_tflite(keras.Model(x, keras.layers.Dense(2)(x)), int8=False)
    >>> model = read_model(flatbuffer)
    >>> opcode_name(model, model.subgraphs[0].operators[0])
    'FULLY_CONNECTED'
    >>> inspect_tflite(write_model(model)).op_kinds
    ['FULLY_CONNECTED']
"""

from __future__ import annotations

import numpy as np

from keras_quaternion.export.tflite import _as_bytes, _schema, inspect_tflite

#: alignment of constant data in the written flatbuffer (the converter uses 16 too)
BUFFER_ALIGNMENT = 16

#: flatbuffer tensor type -> numpy dtype, for the types export writes
TENSOR_DTYPES = {9: np.int8, 2: np.int32, 0: np.float32, 3: np.uint8, 7: np.int16, 4: np.int64}


def read_model(tflite_model):
    """The flatbuffer as a mutable ``ModelT`` object (TFLite schema object API).

    Args:
        tflite_model: the flatbuffer (``bytes``).

    Returns:
        The ``ModelT``; :func:`write_model` turns it back into bytes.

    Raises:
        TypeError: ``tflite_model`` is not bytes.
        ValueError: the bytes are not a TFLite flatbuffer.

    Example:
        >>> read_model(flatbuffer).subgraphs[0].operators[0].opcodeIndex  # doctest: +SKIP
        0
    """
    data = _as_bytes(tflite_model)
    inspect_tflite(data)  # checks the identifier with a clear message
    runtime, _ = _schema()
    return runtime.convert_bytearray_to_object(bytearray(data))


def _pack_buffer(builder, buffer, schema):
    data = None
    if buffer.data is not None and len(buffer.data):
        raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
        builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
        builder.head -= len(raw)
        builder.Bytes[builder.head : builder.head + len(raw)] = raw
        builder.vectorNumElems = len(raw)
        data = builder.EndVector()
    schema.BufferStart(builder)
    if data is not None:
        schema.BufferAddData(builder, data)
    schema.BufferAddOffset(builder, buffer.offset or 0)
    schema.BufferAddSize(builder, buffer.size or 0)
    return schema.BufferEnd(builder)


class _AlignedBuffer:
    """Stands in for a ``BufferT`` while packing: same fields, data aligned to 16 bytes."""

    def __init__(self, buffer, schema):
        self.buffer, self.schema = buffer, schema

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object API's name
        return _pack_buffer(builder, self.buffer, self.schema)


def write_model(model):
    """Serialise a ``ModelT`` to flatbuffer bytes with 16-byte aligned constant buffers.

    Args:
        model: a ``ModelT`` from :func:`read_model` (it is not modified).

    Returns:
        The flatbuffer (``bytes``) with the ``TFL3`` identifier.

    Example:
        >>> inspect_tflite(write_model(read_model(flatbuffer))).size > 0  # doctest: +SKIP
        True
    """
    import flatbuffers

    _, schema = _schema()
    buffers = model.buffers
    model.buffers = [_AlignedBuffer(b, schema) for b in buffers or []]
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    finally:
        model.buffers = buffers
    return bytes(builder.Output())


def opcode_name(model, operator):
    """``"CONV_2D"``-style name of an operator, ``"CUSTOM:<code>"`` for a custom one.

    Args:
        model: the ``ModelT``.
        operator: one of its ``OperatorT``.

    Returns:
        The name, as :func:`~keras_quaternion.export.inspect_tflite` gives it.

    Example:
        >>> opcode_name(model, model.subgraphs[0].operators[0])  # doctest: +SKIP
        'CONV_2D'
    """
    runtime, schema = _schema()
    code = model.operatorCodes[operator.opcodeIndex]
    builtin = runtime.get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


def tensor_data(model, index, subgraph=0):
    """The constant data of tensor ``index`` as a numpy array of its type and shape.

    Args:
        model: the ``ModelT``.
        index: tensor index in the subgraph.
        subgraph: subgraph index.

    Returns:
        A numpy array (a copy), or ``None`` when the tensor holds no constant data.

    Raises:
        ValueError: the tensor's type is not one export handles.

    Example:
        >>> tensor_data(model, op.inputs[1]).dtype  # doctest: +SKIP
        dtype('int8')
    """
    tensor = model.subgraphs[subgraph].tensors[index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer is not None else None
    if buffer is None or buffer.data is None or len(buffer.data) == 0:
        return None
    if tensor.type not in TENSOR_DTYPES:
        raise ValueError(
            f"tensor_data: tensor {index} ('{tensor.name}') has TFLite type {tensor.type}; "
            f"supported: {sorted(TENSOR_DTYPES)}."
        )
    raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    array = np.frombuffer(raw, dtype=np.dtype(TENSOR_DTYPES[tensor.type]).newbyteorder("<"))
    return array.reshape([int(d) for d in tensor.shape]).copy()


def set_tensor_data(model, index, array, subgraph=0):
    """Give tensor ``index`` new constant data and the shape of ``array``, in its own buffer.

    The tensor's old buffer is emptied when no other tensor reads it, else left alone and a
    new buffer is appended.

    Args:
        model: the ``ModelT`` (modified).
        index: tensor index in the subgraph.
        array: the new data; its dtype must be the tensor's type.
        subgraph: subgraph index.

    Raises:
        ValueError: ``array``'s dtype does not match the tensor's type.

    Example:
        >>> set_tensor_data(model, op.inputs[1], compact_kernel)  # doctest: +SKIP
    """
    _, schema = _schema()
    tensor = model.subgraphs[subgraph].tensors[index]
    want = np.dtype(TENSOR_DTYPES.get(tensor.type, np.void))
    array = np.ascontiguousarray(array)
    if array.dtype != want:
        raise ValueError(
            f"set_tensor_data: tensor {index} ('{tensor.name}') holds {want}, got {array.dtype}."
        )
    readers = sum(
        t.buffer == tensor.buffer for g in model.subgraphs for t in g.tensors if t is not tensor
    )
    raw = np.frombuffer(array.astype(array.dtype.newbyteorder("<")).tobytes(), dtype=np.uint8)
    if readers == 0 and tensor.buffer:
        model.buffers[tensor.buffer].data = raw
    else:
        buffer = schema.BufferT()
        buffer.data = raw
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
    tensor.shape = np.asarray(array.shape, dtype=np.int32)
    tensor.shapeSignature = None


def add_constant_tensor(model, array, name, subgraph=0):
    """Append a constant tensor holding ``array`` (int8 or int32) to the subgraph.

    Args:
        model: the ``ModelT`` (modified).
        array: the data; its dtype gives the tensor type.
        name: the tensor name.
        subgraph: subgraph index.

    Returns:
        The new tensor's index.

    Example:
        >>> add_constant_tensor(model, np.zeros((2, 2), np.int32), "corr")  # doctest: +SKIP
        17
    """
    _, schema = _schema()
    types = {np.dtype(v): k for k, v in TENSOR_DTYPES.items()}
    tensor = schema.TensorT()
    tensor.type = types[np.asarray(array).dtype]
    tensor.name = name
    tensor.buffer = 0
    graph = model.subgraphs[subgraph]
    graph.tensors.append(tensor)
    index = len(graph.tensors) - 1
    set_tensor_data(model, index, np.asarray(array), subgraph)
    return index


def custom_opcode(model, name):
    """Index of the CUSTOM operator code ``name`` in the model, added if missing.

    Args:
        model: the ``ModelT`` (modified when the code is added).
        name: the custom operator's name, e.g. ``"KQ_QCONV2D"``.

    Returns:
        The index into ``model.operatorCodes``.

    Example:
        >>> model.operatorCodes[custom_opcode(model, "KQ_QCONV2D")].customCode  # doctest: +SKIP
        b'KQ_QCONV2D'
    """
    _, schema = _schema()
    custom = schema.BuiltinOperator.CUSTOM
    for i, code in enumerate(model.operatorCodes):
        code_name = code.customCode.decode() if isinstance(code.customCode, bytes) else None
        if code.builtinCode == custom and (code_name or code.customCode) == name:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = custom
    code.deprecatedBuiltinCode = custom
    code.customCode = name
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def drop_unused_opcodes(model):
    """Remove operator codes no operator uses and renumber the operators' ``opcodeIndex``.

    Args:
        model: the ``ModelT`` (modified).

    Example:
        >>> drop_unused_opcodes(model)  # doctest: +SKIP
    """
    used = sorted({op.opcodeIndex for g in model.subgraphs for op in g.operators or []})
    renumber = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for graph in model.subgraphs:
        for op in graph.operators or []:
            op.opcodeIndex = renumber[op.opcodeIndex]


def share_empty_buffer(model):
    """Point every tensor without constant data at buffer 0 and drop buffers nothing reads.

    The converter gives each activation tensor an empty buffer of its own; the schema's buffer 0
    is an empty sentinel that all of them can share (a few bytes per tensor).

    Args:
        model: the ``ModelT`` (modified); left alone when its buffer 0 is not empty.

    Example:
        >>> share_empty_buffer(model)  # doctest: +SKIP
    """

    def empty(buffer):
        return (buffer.data is None or len(buffer.data) == 0) and not buffer.offset

    if not model.buffers or not empty(model.buffers[0]):
        return
    tensors = [t for g in model.subgraphs for t in g.tensors or []]
    for tensor in tensors:
        if empty(model.buffers[tensor.buffer]):
            tensor.buffer = 0
    used = sorted({0} | {t.buffer for t in tensors} | {m.buffer for m in model.metadata or []})
    renumber = {old: new for new, old in enumerate(used)}
    model.buffers = [model.buffers[i] for i in used]
    for tensor in tensors:
        tensor.buffer = renumber[tensor.buffer]
    for meta in model.metadata or []:
        meta.buffer = renumber[meta.buffer]
