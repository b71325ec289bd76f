"""Run a flatbuffer on TFLite Micro built from source (``KQ_TFLM_ROOT``), custom operators included.

The ``tflite-micro`` Python package runs builtin operators only: its interpreter is a build of
another TFLite Micro version whose C++ types differ from a checkout's, so no operator compiled
against a checkout can be registered into it. Where a TFLite Micro checkout with a built
``libtensorflow-microlite.a`` is available (``KQ_TFLM_ROOT``, see docs/deploy.md), this module
compiles ``tflite/quaternion/host/kq_tflm_runner.cc`` for a model, with the op resolver
``kq-export --micro`` generates for it and the quaternion operators' sources, and runs it: the
same code as on the device. Builds are cached by the hash of what went into them.

Example:
    >>> runner = tflm_runner()  # doctest: +SKIP
    >>> runner.run(compact_flatbuffer, x_int8).shape  # doctest: +SKIP
    (8, 1, 10)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from keras_quaternion.export.quaternion_kernel import KernelBuildError, _cache_dir, source_dir

#: the flags TFLite Micro's library is built with (TfLiteTensor's layout depends on them)
TFLM_DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_USE_CTIME")


def _checkout(root):
    from keras_quaternion.export.bundle import tflm_library

    root = Path(root)
    try:
        library = tflm_library(root)  # the host build, not a cross-compiled one
    except FileNotFoundError:
        return None, None
    if not (root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        return None, None
    return root, library


@dataclasses.dataclass(frozen=True)
class TFLMRunner:
    """A TFLite Micro checkout with a built library, able to run any exported flatbuffer.

    Attributes:
        root: the checkout (``KQ_TFLM_ROOT``).
        library: its ``libtensorflow-microlite.a``.

    Example:
        >>> TFLMRunner(Path("/opt/tflm"), Path("/opt/tflm/gen/x/lib/lib.a")).root.name
        'tflm'
    """

    root: Path
    library: Path

    def _includes(self):
        downloads = self.root / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
        paths = (self.root, downloads / "flatbuffers" / "include", downloads / "gemmlowp")
        return [arg for p in paths for arg in ("-isystem", str(p))]

    def build(self, tflite_model):
        """Compile the runner for ``tflite_model``'s operators; returns the executable's path."""
        from keras_quaternion.export.micro import model_ops_source

        ops = model_ops_source(tflite_model, "model", generator="keras-quaternion tflm_runner")
        src = source_dir()
        files = [src / "host" / "kq_tflm_runner.cc", src / "kq_quaternion_tflm.cc",
                 src / "kq_quaternion_ops.c"]  # fmt: skip
        digest = hashlib.sha256(ops.encode() + str(self.library.stat().st_mtime).encode())
        for path in files:
            digest.update(path.read_bytes())
        exe = _cache_dir() / f"kq_tflm_runner-{digest.hexdigest()[:16]}"
        if exe.is_file():
            return exe
        exe.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kq_runner_") as work:
            (Path(work) / "model_ops.h").write_text(ops, encoding="utf-8")
            self._compile(files, Path(work), exe)
        return exe

    def _compile(self, files, work, exe):
        cc, cxx = shutil.which("cc") or "gcc", shutil.which("c++") or "g++"
        obj = work / "kq_quaternion_ops.o"
        steps = [
            [cc, "-std=c99", "-O2", "-c", str(files[2]), "-o", str(obj)],
            [cxx, "-std=c++17", "-O2", *TFLM_DEFINES, f"-I{work}", f"-I{files[2].parent}",
             *self._includes(), '-DKQ_OPS_HEADER="model_ops.h"', "-DKQ_RESOLVER=ModelOpResolver",
             "-DKQ_REGISTER=RegisterModelOps", str(files[0]), str(files[1]), str(obj),
             str(self.library), "-lm", "-o", f"{exe}.tmp"],
        ]  # fmt: skip
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise KernelBuildError(
                    f"Building the TFLite Micro runner against {self.root} failed:\n"
                    f"{' '.join(cmd)}\n{done.stderr.strip()[-3000:]}"
                )
        os.replace(f"{exe}.tmp", exe)

    def _invoke(self, tflite_model, x, arena_size):
        """Run the runner once; returns ``(exit status, output bytes, stdout + stderr)``."""
        exe = self.build(tflite_model)
        with tempfile.TemporaryDirectory(prefix="kq_runner_") as work:
            paths = [Path(work) / n for n in ("model.tflite", "inputs.bin", "outputs.bin")]
            paths[0].write_bytes(bytes(tflite_model))
            paths[1].write_bytes(np.ascontiguousarray(x).tobytes())
            cmd = [str(exe), *map(str, paths), str(int(arena_size))]
            done = subprocess.run(cmd, capture_output=True, text=True)
            raw = paths[2].read_bytes() if done.returncode == 0 else b""
        return done.returncode, raw, done.stdout + done.stderr

    def run(self, tflite_model, x, *, arena_size=None):
        """Outputs for int8 (or float) inputs ``x`` of shape ``(N, *input_shape)``.

        Returns:
            A numpy array ``(N, *output_shape)`` of the output dtype (batch axis dropped, as
            :func:`~keras_quaternion.export.verify.run_tflm` returns).

        Raises:
            RuntimeError: TFLite Micro could not allocate or run the model.
        """
        from keras_quaternion.export.verify import io_spec

        spec = io_spec(tflite_model)
        arena = arena_size or max(256 * 1024, 10 * len(tflite_model))
        status, raw, text = self._invoke(tflite_model, np.asarray(x, spec.input_dtype), arena)
        if status != 0:
            raise RuntimeError(
                f"TFLite Micro ({self.root}) could not run the model with a {arena}-byte arena "
                f"(exit status {status}): {text.strip()[-800:]}"
            )
        return np.frombuffer(raw, spec.output_dtype).reshape(len(x), *spec.output_shape[1:])

    def latency(self, tflite_model, x, *, rounds=5, arena_size=None):
        """Median over ``rounds`` runs of the mean ``Invoke()`` time (seconds) on inputs ``x``.

        Raises:
            RuntimeError: TFLite Micro could not run the model.
        """
        from keras_quaternion.export.verify import io_spec

        spec = io_spec(tflite_model)
        arena = arena_size or max(256 * 1024, 10 * len(tflite_model))
        times = []
        for _ in range(rounds):
            status, _, text = self._invoke(tflite_model, np.asarray(x, spec.input_dtype), arena)
            if status != 0:
                raise RuntimeError(f"TFLite Micro could not run the model: {text[-800:]}")
            times.append(float(_figures(text)["invoke_us"]) * 1e-6)
        return float(np.median(times))

    def arena(self, tflite_model, *, limit=None, resolution=16):
        """``(used, minimal)``: TFLite Micro's ``arena_used_bytes()`` with a large arena, and
        the smallest arena (to ``resolution`` bytes) that allocates and runs the model, found
        by bisection with one process per probe (a too small arena can crash TFLite Micro).

        Raises:
            RuntimeError: the model does not run even with ``limit`` bytes.
        """
        from keras_quaternion.export.verify import MIN_ARENA_PROBE, io_spec

        spec = io_spec(tflite_model)
        high = limit or max(1 << 20, 10 * len(tflite_model))
        sample = np.zeros((1, *spec.input_shape[1:]), spec.input_dtype)
        status, _, text = self._invoke(tflite_model, sample, high)
        if status != 0:
            raise RuntimeError(
                f"TFLite Micro could not run the model with {high} bytes: {text[-800:]}"
            )
        used = int(
            dict(line.split() for line in text.splitlines() if line.startswith("arena_used"))[
                "arena_used"
            ]
        )
        low = MIN_ARENA_PROBE
        while high - low > resolution:
            mid = (low + high) // 2
            if self._invoke(tflite_model, sample, mid)[0] == 0:
                high = mid
            else:
                low = mid
        return used, high


def _figures(text):
    """The ``name value`` lines the runner prints."""
    return dict(
        line.split()[:2] for line in text.splitlines() if line.startswith(("arena_", "invoke_"))
    )


def tflm_runner():
    """The :class:`TFLMRunner` of ``KQ_TFLM_ROOT``, or ``None`` when it is unset.

    Raises:
        KernelBuildError: ``KQ_TFLM_ROOT`` is set but holds no built TFLite Micro checkout.

    Example:
        >>> import os
        >>> os.environ.pop("KQ_TFLM_ROOT", None) is None or tflm_runner() is None
        True
    """
    root = os.environ.get("KQ_TFLM_ROOT")
    if not root:
        return None
    checkout, library = _checkout(root)
    if checkout is None:
        raise KernelBuildError(
            f"KQ_TFLM_ROOT={root} is not a built TFLite Micro checkout (no "
            f"tensorflow/lite/micro/micro_interpreter.h or gen/*/lib/libtensorflow-microlite.a): "
            f"build it as docs/deploy.md says (make -f tensorflow/lite/micro/tools/make/Makefile "
            f"microlite), or unset KQ_TFLM_ROOT."
        )
    return TFLMRunner(checkout, library)
