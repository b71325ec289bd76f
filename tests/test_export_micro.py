"""Micro artifacts: C array + length/alignment, op resolver, measured arena; compiled with gcc/g++.

TFLite Micro's sources are not available offline, so ``model_ops.h`` is compiled against a
stand-in ``tensorflow/lite/micro/micro_mutable_op_resolver.h`` written here: a
``MicroMutableOpResolver<N>`` with every ``Add<Op>()`` of the real one (from
:data:`keras_quaternion.export.tflm_ops.TFLM_BUILTIN_OPS`) that records the operators and, like
the real class, refuses more than ``N`` registrations or a duplicate.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_quaternion import QBatchNormalization, QConv2D  # noqa: E402
from keras_quaternion.export.micro import (  # noqa: E402
    measure_arena,
    micro_symbols,
    write_micro_artifacts,
)
from keras_quaternion.export.tflite import inspect_tflite, to_tflite  # noqa: E402
from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS  # noqa: E402
from keras_quaternion.export.verify import MIN_ARENA_PROBE, io_spec, run_tflm  # noqa: E402

needs_compilers = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None,
    reason="gcc and g++ are needed to compile the generated C/C++ files",
)


@pytest.fixture(scope="module")
def flatbuffer():
    keras.utils.set_random_seed(0)
    x = keras.Input((20, 12, 4))
    y = QConv2D(3, 3, padding="same", use_bias=False)(x)
    y = QBatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.AveragePooling2D(2)(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(4, activation="softmax")(y)
    model = keras.Model(x, y)
    calib = np.random.default_rng(0).normal(size=(16, 20, 12, 4)).astype("float32")
    return to_tflite(model, representative_data=calib)


def test_arena_is_measured_not_assumed(flatbuffer, tmp_path):
    arena = measure_arena(flatbuffer, margin=0.1, resolution=16)
    assert arena.recorded > 0 and arena.minimal > 0
    assert arena.recommended % 1024 == 0
    assert arena.recommended >= 1.1 * max(arena.recorded, arena.minimal)
    assert arena.recommended < 1.1 * max(arena.recorded, arena.minimal) + 1024
    # far below the Python runtime's default guess of 10x the model size
    assert arena.minimal < 10 * len(flatbuffer) + 64 * 1024
    x = np.zeros((1, 20, 12, 4), "int8")
    run_tflm(flatbuffer, x, arena_size=arena.minimal)  # enough
    run_tflm(flatbuffer, x, arena_size=arena.recommended)
    # just below the minimum it must fail; in a child process, because TFLite Micro's Python
    # interpreter may crash there instead of raising
    assert not _runs_in_child(flatbuffer, arena.minimal - arena.resolution, tmp_path)
    assert _runs_in_child(flatbuffer, arena.minimal, tmp_path)
    with pytest.raises(ValueError, match="margin"):
        measure_arena(flatbuffer, margin=-0.1)


def _runs_in_child(flatbuffer, arena_size, folder):
    """Whether TFLite Micro allocates and runs the model with this arena, in a child process
    that imports only tflite_micro (fast, and a crash there cannot take pytest down)."""
    spec = io_spec(flatbuffer)
    path = folder / "m.tflite"
    path.write_bytes(flatbuffer)
    code = (
        "import sys, numpy as np\n"
        "from tflite_micro import runtime\n"
        "it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), "
        "arena_size=int(sys.argv[2]))\n"
        "shape = tuple(int(n) for n in sys.argv[4].split(','))\n"
        "it.set_input(np.zeros(shape, sys.argv[3]), 0)\n"
        "it.invoke()\n"
        "print('RAN')\n"
    )
    shape = ",".join(str(int(n)) for n in spec.input_shape)
    child = subprocess.run(
        [sys.executable, "-c", code, str(path), str(arena_size), np.dtype(spec.input_dtype).name,
         shape],
        capture_output=True,
        text=True,
    )  # fmt: skip
    return child.returncode == 0 and "RAN" in child.stdout


def test_arena_search_survives_tflm_crashes_on_tiny_models(tmp_path):
    """A 2->2 int8 model needs ~1.2 KB; TFLite Micro's Python interpreter segfaults on some
    arenas just below that. The search must finish in this process and stay above the floor."""
    keras.utils.set_random_seed(0)
    x = keras.Input((2,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    calib = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    tiny = to_tflite(model, representative_data=calib)
    arena = measure_arena(tiny, resolution=8)
    assert MIN_ARENA_PROBE <= arena.minimal < 4096
    assert _runs_in_child(tiny, arena.minimal, tmp_path)
    with pytest.raises(ValueError, match="at least 1024 bytes"):
        run_tflm(tiny, np.zeros((1, 2), "float32"), arena_size=256)


def test_symbols_and_bad_names():
    assert micro_symbols()["arena"] == "kTensorArenaSize"
    sym = micro_symbols("kws_v2")
    assert sym["data_cc"] == "kws_v2_data.cc" and sym["resolver"] == "KwsV2OpResolver"
    assert sym["arena"] == "kKwsV2TensorArenaSize" and sym["register"] == "RegisterKwsV2Ops"
    for bad in ("2model", "my-model", "", None):
        with pytest.raises(ValueError, match="C identifier"):
            micro_symbols(bad)


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


MAIN_C = r"""
/* C99 user of the generated header: the array, its length and the arena constant. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "model_data.h"

static unsigned char arena[kTensorArenaSize]; /* compile-time constant in C */

int main(int argc, char **argv) {
    FILE *out;
    if (argc != 2) return 9;
    if (g_model_data_len != MODEL_DATA_LEN) return 1;
    if (((uintptr_t)g_model_data) % MODEL_DATA_ALIGNMENT != 0) return 2;
    if (memcmp(g_model_data + 4, "TFL3", 4) != 0) return 3;
    out = fopen(argv[1], "wb");
    if (out == NULL) return 4;
    fwrite(g_model_data, 1, g_model_data_len, out);
    fclose(out);
    printf("%u %u %d\n", g_model_data_len, (unsigned)sizeof(arena), (int)kTensorArenaSize);
    return 0;
}
"""


@needs_compilers
def test_model_data_compiles_with_length_alignment_and_bytes(flatbuffer, tmp_path):
    art = write_micro_artifacts(flatbuffer, tmp_path / "micro")
    build = tmp_path / "micro"
    assert sorted(os.listdir(build)) == ["model_data.cc", "model_data.h", "model_ops.h"]
    (build / "main.c").write_text(MAIN_C)
    _run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-c", "model_data.cc"], build)
    _run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "main.c"], build)
    _run(["g++", "main.o", "model_data.o", "-o", "check"], build)
    length, arena_bytes, arena_const = _run(["./check", "dump.bin"], build).split()
    assert int(length) == len(flatbuffer)
    assert int(arena_bytes) == int(arena_const) == art.arena.recommended
    assert (build / "dump.bin").read_bytes() == flatbuffer


STANDIN_HEADER = """// Stand-in for TFLite Micro's micro_mutable_op_resolver.h (test only).
#ifndef STANDIN_MICRO_MUTABLE_OP_RESOLVER_H_
#define STANDIN_MICRO_MUTABLE_OP_RESOLVER_H_
#include <string>
#include <vector>
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver {{
 public:
  static constexpr unsigned int kCapacity = tOpCount;
  std::vector<std::string> added;
{methods}
 private:
  TfLiteStatus Add(const char* op) {{
    if (added.size() >= tOpCount) return kTfLiteError;
    for (const std::string& name : added) if (name == op) return kTfLiteError;
    added.push_back(op);
    return kTfLiteOk;
  }}
}};
}}  // namespace tflite
#endif
"""

MAIN_OPS = r"""
#include <cstdio>
#include "model_ops.h"

int main() {
  static_assert(ModelOpResolver::kCapacity == kModelOpCount, "N is the op count");
  ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return 1;
  std::printf("%u", ModelOpResolver::kCapacity);
  for (const std::string& name : resolver.added) std::printf(" %s", name.c_str());
  std::printf("\n");
  return 0;
}
"""


@needs_compilers
def test_model_ops_registers_exactly_the_models_operators(flatbuffer, tmp_path):
    art = write_micro_artifacts(flatbuffer, tmp_path)
    methods = "\n".join(
        f'  TfLiteStatus {method}() {{ return Add("{op}"); }}'
        for op, method in TFLM_BUILTIN_OPS.items()
    )
    header = tmp_path / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    header.parent.mkdir(parents=True)
    header.write_text(STANDIN_HEADER.format(methods=methods))
    (tmp_path / "main_ops.cc").write_text(MAIN_OPS)
    _run(["g++", "-std=c++11", "-Wall", "-Werror", "-I.", "main_ops.cc", "-o", "ops"], tmp_path)
    capacity, *names = _run(["./ops"], tmp_path).split()
    kinds = inspect_tflite(flatbuffer).op_kinds
    assert kinds == ["AVERAGE_POOL_2D", "CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"]
    assert int(capacity) == len(kinds) and names == kinds
    assert art.operators == tuple(kinds)


def test_write_is_atomic_and_named(flatbuffer, tmp_path):
    art = write_micro_artifacts(flatbuffer, tmp_path / "a" / "b", name="kws")
    assert os.path.basename(art.data_h) == "kws_data.h"
    text = open(art.data_h).read()
    assert "kKwsTensorArenaSize" in text and f"KWS_DATA_LEN {len(flatbuffer)}" in text
    assert "extern const unsigned char g_kws_data[];" in text
    assert [p for p in os.listdir(tmp_path / "a" / "b") if p.startswith(".tmp")] == []
