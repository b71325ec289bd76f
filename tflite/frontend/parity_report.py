#!/usr/bin/env python3
"""Build the C front end, run it next to the Python features, and report the differences.

Used by ``tests/test_frontend.py`` (which imports the helpers below) and to produce the parity
and memory tables of ``docs/frontend.md``::

    python tflite/frontend/parity_report.py                      # all FSDD clips, parity table
    python tflite/frontend/parity_report.py --files 300 --json parity.json
    python tflite/frontend/parity_report.py --memory             # memory table (FSDD, PANNs)

Parity is measured on ``../shared/data/fsdd`` (relative to the repository root) or on the
folder given with ``--data-dir``. For every clip the C harness (``kq_frontend_cli``, compiled with
``-std=c99 -Wall -Wextra -Werror -O2``) computes ``[frames, mels, 4]`` features and
:func:`keras_quaternion.features.quaternion_features` computes the reference; the report gives

* the largest log-mel difference in dB over the (frame, mel) cells whose mel power is above
  ``--threshold-db`` (-80 dB by default), and over all cells;
* the largest Δ, Δ², Δ³ difference (dB per frame^order) over the cells whose whole
  Savitzky–Golay window lies above the threshold, and over all cells.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
for _path in (REPO_ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gen_config  # noqa: E402  (this folder, put on sys.path above)

from keras_quaternion.files import atomic_write  # noqa: E402

__all__ = [
    "STRICT_CFLAGS",
    "SANITIZE_FLAGS",
    "build_cli",
    "compare_features",
    "default_fsdd_dir",
    "find_compiler",
    "run_cli",
    "sanitizers_available",
]

#: Flags every build of the front end must pass.
STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
#: Flags of the sanitizer build.
SANITIZE_FLAGS = (
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
    "-g",
)


def default_fsdd_dir() -> Path:
    """``../shared/data/fsdd`` relative to the repository root (may not exist)."""
    return REPO_ROOT.parent / "shared" / "data" / "fsdd"


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``gcc``, else ``cc``; ``None`` when there is none."""
    for name in (os.environ.get("CC"), "gcc", "cc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compile(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"compiling {what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}"
        )


def sanitizers_available(cc: str | None = None) -> bool:
    """Whether ``cc`` can build and run a program with ``-fsanitize=address,undefined``."""
    cc = cc or find_compiler()
    if cc is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("int main(void) { return 0; }\n", encoding="ascii")
        exe = Path(tmp) / "probe"
        try:
            _compile([cc, *SANITIZE_FLAGS, str(src), "-o", str(exe)], "sanitizer probe")
            return subprocess.run([str(exe)], capture_output=True).returncode == 0
        except (RuntimeError, OSError):
            return False


def build_cli(
    build_dir: str | os.PathLike,
    config=None,
    *,
    sanitize: bool = False,
    cc: str | None = None,
    name: str | None = None,
) -> Path:
    """Compile ``kq_frontend_cli`` (front end + harness) into ``build_dir``.

    Args:
        build_dir: output folder (created).
        config: a FeatureConfig; its header is generated into ``build_dir`` and selected with
            ``-DKQ_FRONTEND_CONFIG_FILE``. ``None`` uses the committed ``kq_frontend_config.h``.
        sanitize: add ``-fsanitize=address,undefined``.
        cc: compiler (default :func:`find_compiler`).
        name: executable name (default ``kq_frontend_cli`` / ``kq_frontend_cli_asan``).

    Returns:
        Path of the executable.

    Raises:
        RuntimeError: no C compiler, or the compilation failed (the message holds the command
            and the compiler's output).

    Example:
        >>> exe = build_cli("build/frontend")  # doctest: +SKIP
    """
    cc = cc or find_compiler()
    if cc is None:
        raise RuntimeError("no C compiler found: set $CC or install gcc")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    flags = list(STRICT_CFLAGS)
    if config is not None:
        header = gen_config.write_header(config, build_dir / "kq_frontend_config.h")
        flags.append(f'-DKQ_FRONTEND_CONFIG_FILE="{header}"')
    if sanitize:
        flags += SANITIZE_FLAGS
    exe = build_dir / (name or ("kq_frontend_cli_asan" if sanitize else "kq_frontend_cli"))
    cmd = [
        cc,
        *flags,
        str(HERE / "kq_frontend.c"),
        str(HERE / "kq_frontend_cli.c"),
        "-lm",
        "-o",
        str(exe),
    ]
    _compile(cmd, "the C front end")
    return exe


def run_cli(exe, command: str, data: np.ndarray, *args: str, out_dtype=np.float32) -> np.ndarray:
    """Run ``exe command [args] IN OUT`` on ``data`` (written as float32) and read ``OUT``.

    Args:
        exe: the harness built by :func:`build_cli`.
        command: ``quaternion``, ``logmel``, ``power``, ``logmel-frames``, ``deltas``,
            ``quantize`` or ``quaternion-int8``.
        data: input array (flattened, cast to float32).
        *args: extra arguments before IN (SCALE, ZERO_POINT for the quantizers).
        out_dtype: dtype of OUT (``np.int8`` for the quantizers).

    Returns:
        The flat output array.

    Raises:
        RuntimeError: the harness exited with an error (its stderr is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.f32", Path(tmp) / "out.bin"
        np.ascontiguousarray(data, dtype=np.float32).tofile(src)
        proc = subprocess.run(
            [str(exe), command, *args, str(src), str(dst)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{Path(exe).name} {command} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        return np.fromfile(dst, dtype=out_dtype)


def c_quaternion(exe, waveform: np.ndarray, n_mels: int) -> np.ndarray:
    """``[frames, n_mels, 4]`` features of ``waveform`` from the C harness."""
    return run_cli(exe, "quaternion", waveform).reshape(-1, n_mels, 4)


def compare_features(c: np.ndarray, ref: np.ndarray, width: int, threshold_db: float = -80.0):
    """Differences between C and reference ``[frames, mels, 4]`` features.

    Args:
        c, ref: the two feature arrays (same shape).
        width: the Savitzky–Golay window (``delta_width``).
        threshold_db: only cells whose reference log-mel is above this count for the
            ``*_above`` figures (for the deltas: the whole window above it).

    Returns:
        dict with ``logmel_above``, ``logmel_all``, ``delta_above`` (3 values, orders 1-3),
        ``delta_all`` (3 values), ``cells_above`` (fraction of cells above the threshold).

    Raises:
        ValueError: shapes differ.
    """
    if c.shape != ref.shape:
        raise ValueError(f"C features have shape {c.shape}, Python features {ref.shape}")
    diff = np.abs(c.astype(np.float64) - ref.astype(np.float64))
    above = ref[..., 0] > threshold_db
    frames = above.shape[0]
    half = width // 2
    # a delta at frame t uses frames [t - half, t + half] (the first/last window at the edges)
    window_ok = np.zeros_like(above)
    for t in range(frames):
        lo = min(max(t - half, 0), frames - width)
        window_ok[t] = above[lo : lo + width].all(axis=0)
    return {
        "logmel_above": float(diff[..., 0][above].max()) if above.any() else 0.0,
        "logmel_all": float(diff[..., 0].max()),
        "delta_above": [
            float(diff[..., k][window_ok].max()) if window_ok.any() else 0.0 for k in (1, 2, 3)
        ],
        "delta_all": [float(diff[..., k].max()) for k in (1, 2, 3)],
        "cells_above": float(above.mean()),
    }


def _fsdd_parity(args) -> dict:
    import soundfile as sf
    from tqdm import tqdm

    from keras_quaternion.features import quaternion_features

    config = gen_config.fsdd_config()
    files = sorted((Path(args.data_dir) / "recordings").glob("*.wav"))
    if not files:
        raise SystemExit(
            f"parity_report: no recordings/*.wav under {args.data_dir}; pass --data-dir with "
            "the FSDD folder (see ../shared/data/fsdd/DATA.md)."
        )
    if args.files and args.files < len(files):
        step = len(files) / args.files
        files = [files[int(i * step)] for i in range(args.files)]
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_cli(tmp, config)
        worst = {"logmel_above": 0.0, "logmel_all": 0.0, "delta_above": [0.0] * 3}
        worst["delta_all"] = [0.0] * 3
        above, skipped = [], 0
        for path in tqdm(files, desc="C vs Python features", unit="clip"):
            x, sr = sf.read(path, dtype="float32")
            if sr != config.sample_rate or x.ndim != 1 or x.size < config.min_num_samples():
                skipped += 1
                continue
            ref = quaternion_features(x, config).numpy()
            res = compare_features(
                c_quaternion(exe, x, config.n_mels), ref, config.delta_width, args.threshold_db
            )
            for key in ("logmel_above", "logmel_all"):
                worst[key] = max(worst[key], res[key])
            for key in ("delta_above", "delta_all"):
                worst[key] = [max(a, b) for a, b in zip(worst[key], res[key], strict=True)]
            above.append(res["cells_above"])
    return {
        "config": config.to_dict(),
        "clips": len(files) - skipped,
        "skipped": skipped,
        "threshold_db": args.threshold_db,
        "mean_fraction_above": float(np.mean(above)) if above else 0.0,
        **worst,
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}",
    }


def _memory_rows() -> list[dict]:
    from keras_quaternion.features import FeatureConfig

    cc = find_compiler()
    rows = []
    for label, config in (
        ("FSDD 8 kHz", gen_config.fsdd_config()),
        ("PANNs 32 kHz", FeatureConfig()),
    ):
        frames = config.num_frames(config.sample_rate)
        row = {
            "config": label,
            "n_fft / hop / mels": f"{config.n_fft} / {config.hop_length} / {config.n_mels}",
            "scratch_bytes": 4 * (config.n_fft + 2),
            "table_bytes": gen_config.table_bytes(config)["total"],
            "logmel_1s_bytes": 4 * frames * config.n_mels,
            "quaternion_1s_bytes": 16 * frames * config.n_mels,
            "int8_input_1s_bytes": 4 * frames * config.n_mels,
            "text_bytes_x86_64": None,
        }
        if cc and shutil.which("size"):
            with tempfile.TemporaryDirectory() as tmp:
                header = gen_config.write_header(config, Path(tmp) / "cfg.h")
                obj = Path(tmp) / "kq_frontend.o"
                _compile(
                    [
                        cc,
                        *STRICT_CFLAGS,
                        f'-DKQ_FRONTEND_CONFIG_FILE="{header}"',
                        "-c",
                        str(HERE / "kq_frontend.c"),
                        "-o",
                        str(obj),
                    ],
                    "kq_frontend.c",
                )
                out = subprocess.run(["size", str(obj)], capture_output=True, text=True).stdout
                text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
                row["text_bytes_x86_64"] = text
                row["object_data_bss"] = data + bss
        rows.append(row)
    return rows


def _markdown_parity(r: dict) -> str:
    d = r["delta_above"]
    da = r["delta_all"]
    return "\n".join(
        [
            "| quantity | max abs difference, cells above "
            f"{r['threshold_db']:g} dB | max abs difference, all cells |",
            "|---|---|---|",
            f"| log-mel (dB) | {r['logmel_above']:.4f} | {r['logmel_all']:.4f} |",
            f"| Δ (dB/frame) | {d[0]:.5f} | {da[0]:.5f} |",
            f"| Δ² (dB/frame²) | {d[1]:.5f} | {da[1]:.5f} |",
            f"| Δ³ (dB/frame³) | {d[2]:.5f} | {da[2]:.5f} |",
            "",
            f"{r['clips']} FSDD clips ({r['skipped']} skipped), "
            f"{100 * r['mean_fraction_above']:.2f}% of the cells above {r['threshold_db']:g} dB.",
        ]
    )


def _markdown_memory(rows: list[dict]) -> str:
    lines = [
        "| config | n_fft / hop / mels | scratch RAM | constant tables | log-mel, 1 s (float) "
        "| quaternion, 1 s (float) | int8 model input, 1 s | .text incl. tables (x86-64 gcc -O2) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text = "n/a" if r["text_bytes_x86_64"] is None else f"{r['text_bytes_x86_64']:,} B"
        lines.append(
            f"| {r['config']} | {r['n_fft / hop / mels']} | {r['scratch_bytes']:,} B | "
            f"{r['table_bytes']:,} B | {r['logmel_1s_bytes']:,} B | {r['quaternion_1s_bytes']:,} B "
            f"| {r['int8_input_1s_bytes']:,} B | {text} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(default_fsdd_dir()), help="FSDD folder")
    parser.add_argument("--files", type=int, default=0, help="clips to use, spread evenly (0: all)")
    parser.add_argument("--threshold-db", type=float, default=-80.0)
    parser.add_argument("--memory", action="store_true", help="print the memory table instead")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if find_compiler() is None:
        raise SystemExit("parity_report: no C compiler found (set $CC or install gcc)")
    result = _memory_rows() if args.memory else _fsdd_parity(args)
    print(_markdown_memory(result) if args.memory else _markdown_parity(result))
    if args.json:
        atomic_write(args.json, json.dumps(result, indent=2) + "\n", make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
