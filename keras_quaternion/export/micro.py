"""Microcontroller artifacts: the flatbuffer as a C array, its op resolver, and a measured arena.

:func:`write_micro_artifacts` writes, for ``name="model"``:

* ``model_data.h`` / ``model_data.cc``: the flatbuffer as a 16-byte aligned
  ``const unsigned char g_model_data[]`` with ``g_model_data_len``, and the tensor-arena size
  ``kTensorArenaSize`` (an ``enum`` constant, usable in C and C++ array bounds);
* ``model_ops.h``: ``using ModelOpResolver = tflite::MicroMutableOpResolver<N>`` with ``N`` the
  number of distinct operators in the model, and ``RegisterModelOps(resolver)`` adding exactly
  those operators.

For another ``name`` (a C identifier such as ``"kws"``) the files are ``kws_data.h``,
``kws_data.cc``, ``kws_ops.h`` and the symbols ``g_kws_data``, ``g_kws_data_len``,
``kKwsTensorArenaSize``, ``KwsOpResolver``, ``RegisterKwsOps``.

The arena is *measured* (:func:`measure_arena`) with TFLite Micro's Python interpreter: the
total its ``RecordingMicroAllocator`` reports after an inference, and the smallest arena with
which the interpreter allocates and runs the model (found by bisection). The recommended size is
the larger of the two plus a margin (default 10 %), rounded up to a multiple of 1 KiB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tempfile

import numpy as np

from keras_quaternion.export.tflite import _as_bytes, inspect_tflite
from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS, TFLM_CUSTOM_OPS, tflm_add_method
from keras_quaternion.export.verify import MIN_ARENA_PROBE
from keras_quaternion.files import atomic_write

#: default safety margin added to the measured arena
ARENA_MARGIN = 0.10
#: the recommended arena is rounded up to a multiple of this many bytes
ARENA_ROUND = 1024
#: alignment of the flatbuffer array (TFLite Micro needs >= 4; 16 suits SIMD kernels)
DATA_ALIGNMENT = 16


@contextlib.contextmanager
def _captured_stderr():
    """Capture what C/C++ code writes to file descriptor 2 (TFLite Micro's logging)."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            box = {}
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            box["text"] = sink.read().decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class ArenaMeasurement:
    """Tensor-arena figures for one model (bytes).

    Attributes:
        recorded: total reported by TFLite Micro's ``RecordingMicroAllocator`` after an
            inference (head + tail of the arena).
        minimal: smallest arena with which TFLite Micro's Python interpreter allocated and ran
            the model (bisection to ``resolution`` bytes).
        recommended: ``max(recorded, minimal) * (1 + margin)`` rounded up to ``ARENA_ROUND``.
        margin: the fractional margin used.
        resolution: bisection resolution in bytes.
        measured_on: which flatbuffer TFLite Micro ran: ``"deployed"``, or for a compact model
            without the custom operators at hand ``"expanded twin"`` (same tensors and
            activations; its CONV_2D / FULLY_CONNECTED persistent data is at least as large as
            the custom operators').

    Example:
        Normally returned by :func:`measure_arena`; built by hand here:

        >>> arena = ArenaMeasurement(recorded=9000, minimal=8800, recommended=10240,
        ...                          margin=0.1, resolution=16)
        >>> math.ceil(max(arena.recorded, arena.minimal) * 1.1 / ARENA_ROUND) * ARENA_ROUND
        10240
    """

    recorded: int
    minimal: int
    recommended: int
    margin: float
    resolution: int
    measured_on: str = "deployed"


# The arena search runs in a child process: TFLite Micro's Python interpreter sometimes crashes
# (SIGSEGV) instead of reporting a failed allocation when the arena is just too small, and a
# crash must not take the user's process with it. The child prints "P <size>" before each probe
# and "R <size> <0|1>" after it; a probe that never reports counts as a failure.
_ARENA_WORKER = r"""
import sys
import numpy as np
from tflite_micro import runtime

path, dtype, shape, low, high, resolution = sys.argv[1:7]
data = open(path, "rb").read()
sample = np.zeros(tuple(int(n) for n in shape.split(",") if n), dtype)
low, high, resolution, verified = int(low), int(high), int(resolution), sys.argv[7] == "1"


def runs(size):
    print("P", size, flush=True)
    try:
        interpreter = runtime.Interpreter.from_bytes(data, arena_size=size)
        interpreter.set_input(sample, 0)
        interpreter.invoke()
        ok = True
    except (RuntimeError, ValueError):
        ok = False
    print("R", size, int(ok), flush=True)
    return ok


while not verified:
    verified = runs(high)
    if not verified:
        low, high = high, high * 2
        if high > 1 << 31:
            sys.exit(3)
while high - low > resolution:
    mid = (low + high) // 2
    if runs(mid):
        high = mid
    else:
        low = mid
"""


def _smallest_arena(data, tensor, start, resolution):
    """Bisect the smallest arena (to ``resolution``) that allocates and runs, in a child process."""
    import subprocess
    import sys

    dtype = {"INT8": "int8", "UINT8": "uint8", "INT16": "int16"}.get(tensor.dtype, "float32")
    shape = ",".join(str(int(n)) for n in tensor.shape)
    low, high, verified = MIN_ARENA_PROBE, max(start, MIN_ARENA_PROBE), False
    with tempfile.TemporaryDirectory(prefix="kq_arena_") as folder:
        path = os.path.join(folder, "model.tflite")
        with open(path, "wb") as handle:
            handle.write(data)
        for _ in range(64):  # each crash narrows the interval, so this always ends
            args = [path, dtype, shape, low, high, resolution, int(verified)]
            child = subprocess.run(
                [sys.executable, "-c", _ARENA_WORKER, *map(str, args)],
                capture_output=True,
                text=True,
            )
            low, high, verified, probing = _read_probes(child.stdout, low, high, verified)
            if child.returncode == 3:
                raise RuntimeError(
                    "TFLite Micro could not allocate or run the model even with a 2 GiB arena; "
                    "see the errors it prints with tflite_micro.runtime.Interpreter."
                )
            if probing is not None:  # the child crashed on this probe: treat it as too small
                if not verified and probing == high:
                    low, high = high, high * 2
                else:
                    low = probing
            elif child.returncode != 0:
                raise RuntimeError(
                    f"The arena search failed (exit status {child.returncode}): "
                    f"{child.stderr.strip()[-500:]}"
                )
            if verified and high - low <= resolution:
                return high
        raise RuntimeError("The arena search did not converge after 64 restarts.")


def _read_probes(stdout: str, low: int, high: int, verified: bool):
    """The arena search's ``(low, high, verified, probing)`` after a worker's report.

    The worker prints ``P size`` before it tries an arena and ``R size ok`` after: a success
    lowers the upper bound, a failure raises the lower one (or doubles an unverified upper
    bound). ``probing`` is the size it was trying when it stopped, ``None`` when it finished.
    """
    probing = None
    for line in stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["P"]:
            probing = int(fields[1])
        elif fields[:1] == ["R"]:
            probing = None
            size, ok = int(fields[1]), fields[2] == "1"
            if ok:
                high, verified = size, True
            elif verified:
                low = size
            else:  # the upper bound failed: double it
                low, high = size, size * 2
    return low, high, verified, probing


def _recorded_total(data, arena_size, sample):
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(data, arena_size=int(arena_size))
    interpreter.set_input(sample, 0)
    interpreter.invoke()
    with _captured_stderr() as box:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", box["text"])
    if not match:
        raise RuntimeError(
            "Could not read the arena usage from TFLite Micro's RecordingMicroAllocator; its "
            f"report was: {box['text'][:300]!r}"
        )
    return int(match.group(1))


def measure_arena(tflite_model, *, margin=ARENA_MARGIN, resolution=16):
    """Measure the tensor arena a model needs on TFLite Micro.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        margin: fraction added on top of the measurement (``>= 0``).
        resolution: bisection step in bytes (``>= 1``).

    Returns:
        An :class:`ArenaMeasurement`.

    Raises:
        ValueError: negative ``margin`` or ``resolution`` < 1.
        RuntimeError: TFLite Micro cannot run the model even with a very large arena.

    Example:
        >>> arena = measure_arena(flatbuffer)  # doctest: +SKIP
        >>> arena.recommended % 1024, arena.recommended >= arena.minimal  # doctest: +SKIP
        (0, True)
    """
    if margin < 0:
        raise ValueError(f"measure_arena: margin must be >= 0, got {margin!r}.")
    if resolution < 1:
        raise ValueError(f"measure_arena: resolution must be >= 1, got {resolution!r}.")
    data = _as_bytes(tflite_model)
    info = inspect_tflite(data)
    tensor = info.input
    dtype = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}.get(tensor.dtype, np.float32)
    sample = np.zeros(tensor.shape, dtype)
    high = _smallest_arena(data, tensor, max(64 * 1024, 4 * len(data)), resolution)
    recorded = _recorded_total(data, max(high, 64 * 1024), sample)
    need = max(recorded, high)
    recommended = int(math.ceil(need * (1.0 + margin) / ARENA_ROUND) * ARENA_ROUND)
    return ArenaMeasurement(recorded, high, recommended, float(margin), int(resolution))


# --------------------------------------------------------------------------- C sources


def _check_name(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"write_micro_artifacts: name must be a C identifier (letters, digits, '_', not "
            f"starting with a digit), got {name!r}."
        )


def _camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def micro_symbols(name="model"):
    """The file names and C/C++ symbols :func:`write_micro_artifacts` uses for ``name``.

    Args:
        name: a C identifier (letters, digits, ``_``; not starting with a digit).

    Returns:
        A dict with the keys ``data_h``, ``data_cc``, ``ops_h`` (file names), ``data``,
        ``data_len``, ``arena``, ``op_count``, ``resolver``, ``register`` (C/C++ symbols) and
        ``guard`` (the upper-case stem of the include guards and macros).

    Raises:
        ValueError: ``name`` is not a C identifier.

    Example:
        >>> micro_symbols("kws")["arena"], micro_symbols()["arena"]
        ('kKwsTensorArenaSize', 'kTensorArenaSize')
    """
    _check_name(name)
    camel = _camel(name) or "Model"
    return {
        "data_h": f"{name}_data.h",
        "data_cc": f"{name}_data.cc",
        "ops_h": f"{name}_ops.h",
        "data": f"g_{name}_data",
        "data_len": f"g_{name}_data_len",
        "arena": "kTensorArenaSize" if name == "model" else f"k{camel}TensorArenaSize",
        "op_count": f"k{camel}OpCount",
        "resolver": f"{camel}OpResolver",
        "register": f"Register{camel}Ops",
        "guard": re.sub(r"[^A-Z0-9]", "_", name.upper()),
    }


def _header_comment(info, arena, generator):
    lines = [
        f"// Generated by {generator}. Do not edit; re-run the export instead.",
        f"// Flatbuffer: {info.size} bytes, {len(info.operators)} operators "
        f"({', '.join(info.op_kinds)}).",
        f"// Input {info.input.dtype} {list(info.input.shape)} scale={info.input.scale} "
        f"zero_point={info.input.zero_point}; output {info.output.dtype} "
        f"{list(info.output.shape)} scale={info.output.scale} "
        f"zero_point={info.output.zero_point}.",
    ]
    if arena is not None:
        lines.append(
            f"// Tensor arena measured with TFLite Micro's Python interpreter: recording "
            f"allocator total {arena.recorded} bytes, smallest arena that ran {arena.minimal} "
            f"bytes; + {arena.margin:.0%} margin, rounded up to {ARENA_ROUND} bytes."
        )
    return "\n".join(lines)


def model_data_sources(tflite_model, name="model", *, arena=None, generator="keras-quaternion"):
    """Return ``(header, source)`` texts for the flatbuffer as an aligned C array.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        name: C identifier used in file and symbol names (:func:`micro_symbols`).
        arena: an :class:`ArenaMeasurement` (its ``recommended`` becomes the arena constant);
            ``None`` leaves the constant out.
        generator: text for the "Generated by" line.

    Returns:
        ``(header, source)``: the texts of ``<name>_data.h`` and ``<name>_data.cc``.

    Raises:
        TypeError: ``tflite_model`` is not bytes.
        ValueError: ``name`` is not a C identifier, or the bytes are not a TFLite flatbuffer.

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> flatbuffer = to_tflite(keras.Model(x, keras.layers.Dense(2)(x)), int8=False)
        >>> arena = ArenaMeasurement(900, 880, 1024, 0.1, 16)
        >>> header, source = model_data_sources(flatbuffer, "kws", arena=arena)
        >>> "extern const unsigned char g_kws_data[];" in header
        True
        >>> [line for line in header.splitlines() if line.startswith("enum")]
        ['enum { kKwsTensorArenaSize = 1024 };']
        >>> source.count("alignas(16) const unsigned char g_kws_data[]")
        1
    """
    data = _as_bytes(tflite_model)
    sym = micro_symbols(name)
    info = inspect_tflite(data)
    comment = _header_comment(info, arena, generator)
    guard = f"KQ_{sym['guard']}_DATA_H_"
    arena_lines = ""
    if arena is not None:
        arena_lines = (
            f"\n/* Tensor arena size in bytes for tflite::MicroInterpreter. */\n"
            f"enum {{ {sym['arena']} = {arena.recommended} }};\n"
            f"#define {sym['guard']}_TENSOR_ARENA_SIZE {arena.recommended}\n"
        )
    header = f"""{comment}
#ifndef {guard}
#define {guard}

#ifdef __cplusplus
extern "C" {{
#endif

/* The .tflite flatbuffer, aligned to {DATA_ALIGNMENT} bytes. */
extern const unsigned char {sym["data"]}[];
/* Its length in bytes ({len(data)}). */
extern const unsigned int {sym["data_len"]};

#ifdef __cplusplus
}}
#endif

#define {sym["guard"]}_DATA_LEN {len(data)}
#define {sym["guard"]}_DATA_ALIGNMENT {DATA_ALIGNMENT}
{arena_lines}
#endif  /* {guard} */
"""
    rows = []
    for start in range(0, len(data), 12):
        chunk = data[start : start + 12]
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    source = f"""{comment}
#include "{sym["data_h"]}"

alignas({DATA_ALIGNMENT}) const unsigned char {sym["data"]}[] = {{
{chr(10).join(rows)}
}};

const unsigned int {sym["data_len"]} = {len(data)};
"""
    return header, source


def model_ops_source(tflite_model, name="model", *, generator="keras-quaternion"):
    """Return the text of ``<name>_ops.h``: an op resolver with exactly the model's operators.

    Args:
        tflite_model: the flatbuffer (``bytes``).
        name: C identifier (:func:`micro_symbols`).
        generator: text for the "Generated by" line.

    Returns:
        The header text, declaring ``<Name>OpResolver`` and ``Register<Name>Ops``.

    Raises:
        TypeError: ``tflite_model`` is not bytes.
        ValueError: ``name`` is not a C identifier, the bytes are not a TFLite flatbuffer, or the
            model has an operator TFLite Micro lacks (export checks this earlier; the message
            names it).

    Example:
        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> flatbuffer = to_tflite(keras.Model(x, keras.layers.Dense(2)(x)), int8=False)
        >>> text = model_ops_source(flatbuffer, "kws")
        >>> [line.strip() for line in text.splitlines() if "(resolver." in line]
        ['if (resolver.AddFullyConnected() != kTfLiteOk) return kTfLiteError;  // FULLY_CONNECTED']
        >>> "using KwsOpResolver = tflite::MicroMutableOpResolver<kKwsOpCount>;" in text
        True
    """
    data = _as_bytes(tflite_model)
    sym = micro_symbols(name)
    info = inspect_tflite(data)
    kinds = info.op_kinds
    custom = [k[len("CUSTOM:") :] for k in kinds if k[len("CUSTOM:") :] in TFLM_CUSTOM_OPS]
    missing = [k for k in kinds if k not in TFLM_BUILTIN_OPS and k[len("CUSTOM:") :] not in custom]
    if missing:
        raise ValueError(
            f"The model uses operators TFLite Micro lacks: {missing}; cannot write {sym['ops_h']}."
        )
    guard = f"KQ_{sym['guard']}_OPS_H_"
    calls = "\n".join(
        f"  if (resolver.{tflm_add_method(k)}() != kTfLiteOk) return kTfLiteError;  // {k}"
        for k in kinds
        if k in TFLM_BUILTIN_OPS
    )
    calls += "".join(
        f'\n  if (resolver.AddCustom("{c}", {TFLM_CUSTOM_OPS[c][0]}) != kTfLiteOk) '
        f"return kTfLiteError;"
        for c in custom
    )
    headers = sorted({TFLM_CUSTOM_OPS[c][1] for c in custom})
    includes = "".join(f'\n#include "{h}"' for h in headers)
    return f"""{_header_comment(info, None, generator)}
// Registers exactly the {len(kinds)} operator kinds this model uses.
#ifndef {guard}
#define {guard}

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"{includes}

constexpr int {sym["op_count"]} = {len(kinds)};
using {sym["resolver"]} = tflite::MicroMutableOpResolver<{sym["op_count"]}>;

inline TfLiteStatus {sym["register"]}({sym["resolver"]}& resolver) {{
{calls}
  return kTfLiteOk;
}}

#endif  // {guard}
"""


@dataclasses.dataclass(frozen=True)
class MicroArtifacts:
    """What :func:`write_micro_artifacts` wrote.

    Attributes:
        data_h: path of ``<name>_data.h``.
        data_cc: path of ``<name>_data.cc``.
        ops_h: path of ``<name>_ops.h``.
        arena: the :class:`ArenaMeasurement` whose ``recommended`` size the header declares.
        operators: the model's distinct operator kinds, sorted.
        symbols: the file names and C symbols used (:func:`micro_symbols`).
        sources: C sources of custom operators copied beside them (compact quaternion
            operators: ``kq_quaternion_ops.c/.h`` and ``kq_quaternion_tflm.cc/.h``).

    Example:
        Here with a given arena, so that nothing is measured:

        >>> import keras
        >>> from keras_quaternion.export import to_tflite
        >>> x = keras.Input((4,))
        >>> flatbuffer = to_tflite(keras.Model(x, keras.layers.Dense(2)(x)), int8=False)
        >>> arena = ArenaMeasurement(900, 880, 1024, 0.1, 16)
        >>> art = write_micro_artifacts(flatbuffer, "micro", "kws", arena=arena)
        >>> os.path.basename(art.data_h), os.path.isfile(art.ops_h), art.operators
        ('kws_data.h', True, ('FULLY_CONNECTED',))
        >>> art.symbols["resolver"], art.arena.recommended
        ('KwsOpResolver', 1024)
    """

    data_h: str
    data_cc: str
    ops_h: str
    arena: ArenaMeasurement
    operators: tuple
    symbols: dict
    sources: tuple = ()

    @property
    def files(self):
        """Base names of every written file."""
        paths = (self.data_h, self.data_cc, self.ops_h)
        return tuple(os.path.basename(p) for p in paths) + tuple(self.sources)


def write_micro_artifacts(tflite_bytes, out_dir, name="model", *, margin=ARENA_MARGIN, arena=None):
    """Write ``<name>_data.h``, ``<name>_data.cc`` and ``<name>_ops.h`` for TFLite Micro.

    Args:
        tflite_bytes: the flatbuffer (``bytes``), normally from
            :func:`~keras_quaternion.export.to_tflite`.
        out_dir: output directory (created if missing).
        name: C identifier for file and symbol names (default ``"model"``: ``model_data.h``,
            ``g_model_data``, ``kTensorArenaSize``, ``ModelOpResolver``, ``RegisterModelOps``).
        margin: arena safety margin (fraction) when ``arena`` is not given.
        arena: a precomputed :class:`ArenaMeasurement` (default: measured here).

    Returns:
        A :class:`MicroArtifacts` with the written paths, arena figures and operator kinds.

    Raises:
        ValueError: ``name`` is not a C identifier or the model has non-TFLM operators.
        RuntimeError: TFLite Micro cannot run the model.

    Example:
        >>> art = write_micro_artifacts(flatbuffer, "out/micro")  # doctest: +SKIP
        >>> os.path.basename(art.data_cc), art.arena.recommended  # doctest: +SKIP
        ('model_data.cc', 13312)
    """
    data = _as_bytes(tflite_bytes)
    sym = micro_symbols(name)
    os.makedirs(out_dir, exist_ok=True)
    if arena is None:
        arena = measure_arena(data, margin=margin)
    from keras_quaternion import __version__

    generator = f"keras-quaternion {__version__} (keras_quaternion.export.write_micro_artifacts)"
    header, source = model_data_sources(data, name, arena=arena, generator=generator)
    ops = model_ops_source(data, name, generator=generator)
    paths = {key: os.path.join(out_dir, sym[key]) for key in ("data_h", "data_cc", "ops_h")}
    atomic_write(paths["data_h"], header)
    atomic_write(paths["data_cc"], source)
    atomic_write(paths["ops_h"], ops)
    operators = tuple(inspect_tflite(data).op_kinds)
    sources = ()
    if any(k[len("CUSTOM:") :] in TFLM_CUSTOM_OPS for k in operators):
        from keras_quaternion.export.quaternion_kernel import copy_device_sources

        sources = tuple(copy_device_sources(out_dir))
    return MicroArtifacts(
        data_h=paths["data_h"],
        data_cc=paths["data_cc"],
        ops_h=paths["ops_h"],
        arena=arena,
        operators=operators,
        symbols=sym,
        sources=sources,
    )
