"""The C int8 quaternion kernels (``tflite/quaternion/``), called from Python through ctypes.

The compact export replaces each quaternion CONV_2D / FULLY_CONNECTED by a custom operator
that the C kernels in ``kq_quaternion_ops.c`` compute on the device. This module compiles the
same C file into a shared library with the system C compiler (once, cached under
``$XDG_CACHE_HOME/keras_quaternion`` by the hash of the sources) so that the export can check,
bit for bit, that the kernel computes what TFLite's reference kernels compute on the expanded
model, and so that tests can drive it on any shape.

Example:
    >>> import numpy as np
    >>> kernels = load_kernels()
    >>> x = np.arange(8, dtype=np.int8).reshape(1, 8)          # 2 quaternion inputs
    >>> w = np.zeros((4, 2), np.int8); w[0] = 1                 # the quaternion 1, twice
    >>> layer = QuantizedLayer(w, None, input_scale=1.0, input_zero_point=0,
    ...                        filter_scales=[1.0] * 4, output_scale=1.0, output_zero_point=0)
    >>> kernels.fully_connected(x, layer).tolist()              # r = p0 + p1, i = q0 + q1, ...
    [[1, 5, 9, 13]]
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from keras_quaternion.files import atomic_path

#: the C files of the kernel, relative to the folder that holds them
SOURCES = ("kq_quaternion_ops.c", "kq_quaternion_ops.h")
#: C files the device needs next to the model for the compact strategy
DEVICE_SOURCES = (*SOURCES, "kq_quaternion_tflm.cc", "kq_quaternion_tflm.h")
#: rounding modes (``kq_rounding``): TFLite Micro's double rounding, LiteRT's single rounding
ROUNDING = {"double": 0, "single": 1}
#: fused activations (TFLite schema values) the kernel implements
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
#: paddings (TFLite schema values)
PADDINGS = {"SAME": 0, "VALID": 1}
#: custom operator names (``KQ_QCONV2D_NAME`` / ``KQ_QFC_NAME`` in the header)
CONV_OP, FC_OP = "KQ_QCONV2D", "KQ_QFULLY_CONNECTED"


class KernelBuildError(RuntimeError):
    """The C kernel could not be found or compiled (no C compiler, sources missing).

    Example:
        >>> issubclass(KernelBuildError, RuntimeError)
        True
    """


def source_dir():
    """The folder holding ``kq_quaternion_ops.c`` and the TFLite Micro adapter.

    Installed packages carry a copy in ``keras_quaternion/export/csrc/quaternion``; a source
    checkout reads ``tflite/quaternion`` beside the package (see
    :func:`keras_quaternion.export.c_sources`).

    Returns:
        A :class:`pathlib.Path`.

    Raises:
        KernelBuildError: neither folder has the sources.

    Example:
        >>> (source_dir() / "kq_quaternion_ops.h").is_file()
        True
    """
    here = Path(__file__).resolve().parent
    for folder in (here / "csrc" / "quaternion", here.parents[1] / "tflite" / "quaternion"):
        if all((folder / name).is_file() for name in DEVICE_SOURCES):
            return folder
    raise KernelBuildError(
        f"The C sources of the quaternion operator ({', '.join(DEVICE_SOURCES)}) are neither in "
        f"{here / 'csrc' / 'quaternion'} nor in {here.parents[1] / 'tflite' / 'quaternion'}; "
        "reinstall "
        f"keras-quaternion (pip install -e . from a source checkout)."
    )


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keras_quaternion" / "kernels"


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise KernelBuildError(
        "Checking the compact quaternion operator needs a C compiler to build its kernel "
        "(tried $CC, cc, gcc, clang): install one (e.g. apt-get install gcc), or export with "
        "quaternion='expanded'."
    )


def build_library(folder=None):
    """Compile ``kq_quaternion_ops.c`` into a shared library (cached by source hash).

    Args:
        folder: where the sources are (default :func:`source_dir`).

    Returns:
        The path of the shared library.

    Raises:
        KernelBuildError: no C compiler, or compilation failed (the message has its output).

    Example:
        >>> build_library().suffix
        '.so'
    """
    folder = Path(folder) if folder is not None else source_dir()
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((folder / name).read_bytes())
    target = _cache_dir() / f"libkq_quaternion_ops-{digest.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        cmd = [_compiler(), "-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra"]
        cmd += ["-o", str(tmp), str(folder / "kq_quaternion_ops.c"), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelBuildError(
                f"Compiling the quaternion kernel failed ({' '.join(cmd)}):\n"
                f"{done.stderr.strip()[-2000:]}"
            )
    return target


class _Requant(ctypes.Structure):
    _fields_ = [
        ("input_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
        ("act_min", ctypes.c_int32),
        ("act_max", ctypes.c_int32),
        ("rounding", ctypes.c_int),
        ("multiplier", ctypes.POINTER(ctypes.c_int32)),
        ("shift", ctypes.POINTER(ctypes.c_int32)),
    ]


class _ConvShape(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int)
        for name in (
            "batches in_h in_w in_units out_h out_w out_units filter_h filter_w "
            "stride_h stride_w dilation_h dilation_w pad_h pad_w"
        ).split()
    ]


@dataclasses.dataclass(frozen=True)
class QuantizedLayer:
    """One quaternion layer as the custom operator sees it: compact weights and quantisation.

    Attributes:
        filter: int8 compact weights, ``(4F, kh, kw, C)`` for a convolution or ``(4F, C)`` for
            a fully connected layer; row ``p*F + f`` is component ``p`` of quaternion filter
            ``f``.
        bias: int32 ``(4F,)`` or ``None``.
        input_scale, input_zero_point: quantisation of the int8 input.
        filter_scales: per real output channel (``4F`` values) or one value.
        output_scale, output_zero_point: quantisation of the int8 output.
        activation: fused activation name (``"NONE"``, ``"RELU"``, ``"RELU6"``,
            ``"RELU_N1_TO_1"``).
        strides, dilation: ``(h, w)`` (convolution only).
        padding: ``"SAME"`` or ``"VALID"`` (convolution only).
        corrections: int32 ``(n, 2)`` pairs ``(flat index into the expanded kernel, delta)``
            where the converter rounded one copy of a weight differently (see
            ``kq_quaternion_ops.h``), or ``None``.

    Example:
        >>> QuantizedLayer(np.zeros((4, 3), np.int8), None, 0.1, 0, [0.1], 0.2, 0).units
        (3, 1)
    """

    filter: np.ndarray
    bias: np.ndarray | None
    input_scale: float
    input_zero_point: int
    filter_scales: tuple
    output_scale: float
    output_zero_point: int
    activation: str = "NONE"
    strides: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "VALID"
    corrections: np.ndarray | None = None

    @property
    def units(self):
        """``(C, F)``: quaternion inputs and outputs."""
        return int(self.filter.shape[-1]), int(self.filter.shape[0]) // 4


def _ptr(array, ctype):
    return array.ctypes.data_as(ctypes.POINTER(ctype))


class QuaternionKernels:
    """The loaded C kernels. Use :func:`load_kernels`.

    Example:
        >>> kernels = load_kernels()
        >>> kernels.quantize_multiplier(0.25)
        (1073741824, -1)
    """

    def __init__(self, path):
        lib = ctypes.CDLL(str(path))
        # input, filter, bias, corrections, n_corrections, output
        pointers = [ctypes.c_void_p] * 4 + [ctypes.c_int, ctypes.c_void_p]
        lib.kq_qconv2d_s8.argtypes = [ctypes.POINTER(_ConvShape), ctypes.POINTER(_Requant)]
        lib.kq_qconv2d_s8.argtypes += pointers
        lib.kq_qfully_connected_s8.argtypes = [ctypes.c_int] * 3 + [ctypes.POINTER(_Requant)]
        lib.kq_qfully_connected_s8.argtypes += pointers
        lib.kq_quantize_multiplier.argtypes = [
            ctypes.c_double,
            ctypes.POINTER(ctypes.c_int32),
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.kq_quantize_multiplier.restype = None
        lib.kq_channel_multipliers.argtypes = [ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
        lib.kq_channel_multipliers.argtypes += [ctypes.c_float, ctypes.c_int]
        lib.kq_channel_multipliers.argtypes += [ctypes.c_void_p] * 2
        lib.kq_activation_range.argtypes = [ctypes.c_int, ctypes.c_float, ctypes.c_int32]
        lib.kq_activation_range.argtypes += [ctypes.POINTER(ctypes.c_int32)] * 2
        lib.kq_output_size.argtypes = [ctypes.c_int] * 5 + [ctypes.POINTER(ctypes.c_int)] * 2
        lib.kq_parse_options.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
        lib.kq_write_options.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.kq_write_options.restype = None
        self.lib = lib
        self.path = Path(path)

    def quantize_multiplier(self, real):
        """TFLite's ``QuantizeMultiplier``: ``(multiplier, shift)`` for a real factor."""
        m, s = ctypes.c_int32(), ctypes.c_int()
        self.lib.kq_quantize_multiplier(float(real), ctypes.byref(m), ctypes.byref(s))
        return int(m.value), int(s.value)

    def output_size(self, padding, in_size, filter_size, stride, dilation):
        """``(out_size, pad_before)`` as TFLite computes them for one spatial axis."""
        out, pad = ctypes.c_int(), ctypes.c_int()
        status = self.lib.kq_output_size(
            PADDINGS[padding], in_size, filter_size, stride, dilation, out, pad
        )
        if status != 0:
            raise ValueError(
                f"No output for input size {in_size}, filter {filter_size}, stride {stride}, "
                f"dilation {dilation} with {padding} padding."
            )
        return out.value, pad.value

    def options(self, kind, padding="VALID", strides=(1, 1), dilation=(1, 1), activation="NONE"):
        """The 32 bytes of custom options the C adapter parses."""
        fields = [
            {"conv": 2, "fc": 1}[kind],
            PADDINGS[padding],
            *map(int, strides),
            *map(int, dilation),
            ACTIVATIONS[activation],
        ]
        values = np.asarray(fields, dtype=np.int32)
        buffer = ctypes.create_string_buffer(32)
        self.lib.kq_write_options(values.ctypes.data, buffer)
        return buffer.raw

    def parse_options(self, data):
        """The seven option fields, or ``None`` when the C parser rejects ``data``."""
        fields = np.zeros(7, dtype=np.int32)
        status = self.lib.kq_parse_options(bytes(data), len(data), fields.ctypes.data)
        return None if status != 0 else fields.tolist()

    def _requant(self, layer, rounding, keep):
        channels = 4 * layer.units[1]
        scales = np.asarray(layer.filter_scales, dtype=np.float32).reshape(-1)
        mult = np.zeros(channels, np.int32)
        shift = np.zeros(channels, np.int32)
        status = self.lib.kq_channel_multipliers(
            layer.input_scale, scales.ctypes.data, scales.size, layer.output_scale, channels,
            mult.ctypes.data, shift.ctypes.data,
        )  # fmt: skip
        if status != 0:
            raise ValueError(
                f"filter_scales has {scales.size} values; expected 1 or {channels} (4F)."
            )
        lo, hi = ctypes.c_int32(), ctypes.c_int32()
        self.lib.kq_activation_range(
            ACTIVATIONS[layer.activation], layer.output_scale, layer.output_zero_point, lo, hi
        )
        keep.extend([mult, shift, scales])
        return _Requant(
            -int(layer.input_zero_point), int(layer.output_zero_point), lo.value, hi.value,
            ROUNDING[rounding], _ptr(mult, ctypes.c_int32), _ptr(shift, ctypes.c_int32),
        )  # fmt: skip

    def _weights(self, layer):
        """Arrays kept alive for the call, and the pointer arguments (bias, corrections, n)."""
        w = np.ascontiguousarray(layer.filter, dtype=np.int8)
        keep = [w]
        bias_ptr = corr_ptr = None
        n = 0
        if layer.bias is not None:
            keep.append(np.ascontiguousarray(layer.bias, dtype=np.int32).reshape(-1))
            bias_ptr = keep[-1].ctypes.data
        if layer.corrections is not None and len(layer.corrections):
            keep.append(np.ascontiguousarray(layer.corrections, dtype=np.int32).reshape(-1, 2))
            corr_ptr, n = keep[-1].ctypes.data, len(keep[-1])
        return keep, (bias_ptr, corr_ptr, n)

    def conv2d(self, x, layer, rounding="double"):
        """Run ``KQ_QCONV2D`` on an int8 ``(N, H, W, 4C)`` input; returns ``(N, H', W', 4F)``."""
        x = np.ascontiguousarray(x, dtype=np.int8)
        (c, f), (kh, kw) = layer.units, layer.filter.shape[1:3]
        if x.ndim != 4 or x.shape[-1] != 4 * c:
            raise ValueError(f"conv2d: input {x.shape} does not hold 4*{c} channels last.")
        oh, ph = self.output_size(layer.padding, x.shape[1], kh, layer.strides[0],
                                  layer.dilation[0])  # fmt: skip
        ow, pw = self.output_size(layer.padding, x.shape[2], kw, layer.strides[1],
                                  layer.dilation[1])  # fmt: skip
        shape = _ConvShape(x.shape[0], x.shape[1], x.shape[2], c, oh, ow, f, kh, kw,
                           *layer.strides, *layer.dilation, ph, pw)  # fmt: skip
        keep = []
        requant = self._requant(layer, rounding, keep)
        arrays, (bias, corrections, n) = self._weights(layer)
        out = np.zeros((x.shape[0], oh, ow, 4 * f), np.int8)
        status = self.lib.kq_qconv2d_s8(shape, requant, x.ctypes.data, arrays[0].ctypes.data,
                                        bias, corrections, n, out.ctypes.data)  # fmt: skip
        if status != 0:
            raise ValueError(f"kq_qconv2d_s8 rejected its arguments (status {status}).")
        return out

    def fully_connected(self, x, layer, rounding="double"):
        """Run ``KQ_QFULLY_CONNECTED`` on int8 rows of ``4C`` values; returns rows of ``4F``."""
        c, f = layer.units
        x = np.ascontiguousarray(x, dtype=np.int8)
        if x.size % (4 * c):
            raise ValueError(f"fully_connected: input {x.shape} is not rows of 4*{c} values.")
        rows = x.size // (4 * c)
        keep = []
        requant = self._requant(layer, rounding, keep)
        arrays, (bias, corrections, n) = self._weights(layer)
        out = np.zeros((rows, 4 * f), np.int8)
        status = self.lib.kq_qfully_connected_s8(rows, c, f, requant, x.ctypes.data,
                                                 arrays[0].ctypes.data, bias, corrections, n,
                                                 out.ctypes.data)  # fmt: skip
        if status != 0:
            raise ValueError(f"kq_qfully_connected_s8 rejected its arguments (status {status}).")
        return out


@functools.cache
def _load(path):
    return QuaternionKernels(path)


def load_kernels(folder=None):
    """Build (if needed) and load the C kernels.

    Args:
        folder: where the sources are (default :func:`source_dir`).

    Returns:
        A :class:`QuaternionKernels`.

    Raises:
        KernelBuildError: no C compiler or the sources do not compile.

    Example:
        >>> load_kernels().path.is_file()
        True
    """
    return _load(str(build_library(folder)))


def copy_device_sources(out_dir):
    """Copy the kernel and its TFLite Micro adapter into ``out_dir`` (for firmware builds).

    Args:
        out_dir: destination folder (created).

    Returns:
        The list of written file names.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     sorted(copy_device_sources(folder))[:2]
        ['kq_quaternion_ops.c', 'kq_quaternion_ops.h']
    """
    folder = source_dir()
    os.makedirs(out_dir, exist_ok=True)
    for name in DEVICE_SOURCES:
        with atomic_path(os.path.join(out_dir, name)) as tmp:
            shutil.copyfile(folder / name, tmp)
    return list(DEVICE_SOURCES)


__all__ = [
    "CONV_OP",
    "FC_OP",
    "KernelBuildError",
    "QuantizedLayer",
    "QuaternionKernels",
    "build_library",
    "copy_device_sources",
    "load_kernels",
    "source_dir",
]
