"""Verify a compact flatbuffer: its custom operators compute what the expanded model computes.

Stock LiteRT and the ``tflite-micro`` package cannot run the ``KQ_QCONV2D`` /
``KQ_QFULLY_CONNECTED`` custom operators, so the check works operator by operator: the expanded
flatbuffer (the converter's output) runs on LiteRT's reference kernels and on TFLite Micro with
every intermediate tensor kept; for every compact operator, the C kernel (through ctypes) gets
the operator's int8 input from each runtime and must return that runtime's int8 output of the
expanded operator, bit for bit. The rest of the graph is the same in both flatbuffers, so the
compact model's outputs equal the expanded model's on every verified sample.

LiteRT rounds int8 FULLY_CONNECTED requantisation once, TFLite Micro twice (see
:mod:`keras_quaternion.export.verify`): the kernel runs in the matching mode for each runtime;
the device adapter uses TFLite Micro's.

Where a TFLite Micro checkout is available (``KQ_TFLM_ROOT``), :func:`verify_whole` also runs the
whole compact model on TFLite Micro built from it (:mod:`.tflm_runner`).

Example:
    >>> check = verify_layers(expanded_fb, compact_fb, x_test[:8])  # doctest: +SKIP
    >>> [(c["layer"], c["samples"]) for c in check]  # doctest: +SKIP
    [('conv1', 8), ('fc1', 8)]
"""

from __future__ import annotations

import numpy as np

from keras_quaternion.export import flatbuffer as fbs
from keras_quaternion.export.quaternion_kernel import CONV_OP, FC_OP, load_kernels
from keras_quaternion.export.strategies.compact import quantized_layer
from keras_quaternion.export.verify import (
    VerificationError,
    _litert,
    _tflm,
    io_spec,
    prepare_inputs,
)


def compact_operators(tflite_model):
    """``(index, custom name)`` of every compact operator in a flatbuffer, in execution order.

    Example:
        >>> compact_operators(compact_fb)  # doctest: +SKIP
        [(0, 'KQ_QCONV2D'), (3, 'KQ_QFULLY_CONNECTED')]
    """
    model = fbs.read_model(tflite_model)
    found = []
    for index, op in enumerate(model.subgraphs[0].operators):
        name = fbs.opcode_name(model, op)
        if name in (f"CUSTOM:{CONV_OP}", f"CUSTOM:{FC_OP}"):
            found.append((index, name.split(":", 1)[1]))
    return found


def _kernel_output(kernels, layer, custom, x, rounding):
    if custom == CONV_OP:
        return kernels.conv2d(x, layer, rounding=rounding)
    return kernels.fully_connected(x, layer, rounding=rounding)


def _runtimes(expanded, sample):
    """Both runtimes after one invocation on ``sample``, as tensor readers."""
    litert = _litert(expanded, reference=True, preserve=True)
    litert.set_tensor(litert.get_input_details()[0]["index"], sample[None])
    litert.invoke()
    tflm = _tflm(expanded, preserve=True)
    tflm.set_input(sample[None], 0)
    tflm.invoke()
    return {
        "LiteRT reference": lambda t: np.asarray(litert.get_tensor(t)),
        "TFLite Micro": lambda t: np.asarray(tflm.GetTensor(t, 0)["tensor_data"]),
    }


def _check_operator(kernels, layer, custom, op, readers, where):
    for runtime, read in readers.items():
        rounding = "single" if (custom == FC_OP and runtime == "LiteRT reference") else "double"
        x, want = read(op.inputs[0]), read(op.outputs[0])
        got = _kernel_output(kernels, layer, custom, x, rounding).reshape(want.shape)
        if not np.array_equal(got, want):
            diff = int(np.max(np.abs(got.astype(np.int32) - want.astype(np.int32))))
            raise VerificationError(
                f"Compact operator #{where[0]} {custom} (layer '{where[1]}'): the C kernel differs "
                f"from {runtime} on the expanded model by up to {diff} LSB on "
                f"{int(np.sum(got != want))} of {want.size} outputs (sample {where[2]}); export "
                f"with quaternion='expanded' and report this as a bug."
            )


def verify_layers(expanded, compact, inputs, layer_names=None):
    """Check every compact operator against both runtimes running the expanded flatbuffer.

    Args:
        expanded: the converter's int8 flatbuffer (``bytes``).
        compact: the compact flatbuffer made from it (``bytes``); same tensors and operators.
        inputs: float inputs ``(N, *input_shape)`` (quantized with the model's input scale).
        layer_names: per operator index, the Keras layer name (for messages and the result).

    Returns:
        One dict per compact operator: ``operator``, ``op``, ``layer``, ``samples`` (all of
        which matched on both runtimes).

    Raises:
        VerificationError: an operator's kernel output differs from a runtime's (the message
            names operator, layer, runtime and sample).
        KernelBuildError: the C kernel cannot be compiled here.

    Example:
        >>> first = verify_layers(expanded_fb, compact_fb, x_test[:4])[0]  # doctest: +SKIP
        >>> first["samples"]  # doctest: +SKIP
        4
    """
    kernels = load_kernels()
    model = fbs.read_model(compact)
    ops = compact_operators(compact)
    layers = {i: quantized_layer(model, model.subgraphs[0].operators[i]) for i, _ in ops}
    x = prepare_inputs(io_spec(expanded), inputs)
    names = layer_names or {}
    for n, sample in enumerate(x):
        readers = _runtimes(expanded, sample)
        for index, custom in ops:
            op = model.subgraphs[0].operators[index]
            where = (index, names.get(index), n)
            _check_operator(kernels, layers[index], custom, op, readers, where)
    return [{"operator": i, "op": c, "layer": names.get(i), "samples": int(len(x))} for i, c in ops]


def verify_whole(expanded, compact, inputs, *, arena_size=None):
    """Run the whole compact model on TFLite Micro where a checkout is set up (``KQ_TFLM_ROOT``).

    Both flatbuffers run on TFLite Micro built from the checkout (:mod:`.tflm_runner`), the
    compact one with its custom operators; their int8 outputs must be equal.

    Returns:
        A sentence saying what verified the compact model.

    Raises:
        VerificationError: the compact and expanded models' outputs differ.

    Example:
        >>> verify_whole(expanded_fb, compact_fb, x_test[:4])  # doctest: +SKIP
        'layer by layer: ...'
    """
    from keras_quaternion.export.tflm_runner import tflm_runner

    runner = tflm_runner()
    layerwise = (
        "layer by layer: each compact operator's C kernel against LiteRT's reference kernels "
        "and TFLite Micro running the expanded model"
    )
    if runner is None:
        return layerwise + " (set KQ_TFLM_ROOT to a TFLite Micro checkout to run it whole)"
    x = prepare_inputs(io_spec(expanded), inputs)
    want = runner.run(expanded, x, arena_size=arena_size)
    got = runner.run(compact, x, arena_size=arena_size)
    if not np.array_equal(want, got):
        bad = int(np.sum(np.any((want != got).reshape(len(x), -1), axis=1)))
        raise VerificationError(
            f"On TFLite Micro ({runner.root}), the compact model's outputs differ from the "
            f"expanded model's on {bad} of {len(x)} inputs; export with quaternion='expanded' "
            f"and report this as a bug."
        )
    return (
        f"{layerwise}; and whole on TFLite Micro built from {runner.root} with the custom "
        f"operators, equal to the expanded model on {len(x)} inputs"
    )
