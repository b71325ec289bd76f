#!/usr/bin/env python3
"""Write ``kq_frontend_config.h``: the constants of the C front end for one FeatureConfig.

The C front end (``kq_frontend.c``) has no parameters of its own: every number it uses comes from
the header this script writes from a :class:`keras_quaternion.features.FeatureConfig`, so the
device computes exactly the features the model was trained on. The header holds

* size macros (``KQ_FRONTEND_N_FFT``, ``KQ_FRONTEND_HOP``, ``KQ_FRONTEND_N_MELS``, ...), usable
  anywhere (they size the caller's buffers);
* behind ``#ifdef KQ_FRONTEND_DEFINE_TABLES`` (defined only by ``kq_frontend.c``) the tables:
  the periodic Hann window, the FFT twiddle factors ``exp(-2 pi i k / n_fft)``, the sparse mel
  filterbank (first bin, number of bins and weights of each band, from
  :func:`keras_quaternion.features.mel_filterbank`) and the Savitzky–Golay coefficients of Δ, Δ²
  and Δ³ (central filter and edge matrices, from
  :func:`keras_quaternion.features.savgol_delta_matrices`).

All tables are computed in float64 and rounded once to float32.

Usage (from the repository root)::

    python tflite/frontend/gen_config.py                       # FSDD 8 kHz default
    python tflite/frontend/gen_config.py --preset panns         # 32 kHz PANNs front end
    python tflite/frontend/gen_config.py --sample-rate 16000 --n-fft 512 --hop-length 160 \\
        --n-mels 64 --fmin 50 --fmax 8000 --out build/kq_frontend_config.h
    python tflite/frontend/gen_config.py --from-json feature_config.json

The default output is ``kq_frontend_config.h`` next to this script (the header the Makefile and
the example app use).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_OUT = HERE / "kq_frontend_config.h"

# run from a checkout without `pip install -e .`; an installed copy (keras_quaternion/export/csrc)
# imports the installed package
if (REPO_ROOT / "keras_quaternion").is_dir() and str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from keras_quaternion.features import (  # noqa: E402
    AMIN,
    FeatureConfig,
    mel_filterbank,
    savgol_delta_matrices,
)

__all__ = [
    "PRESETS",
    "HeaderTables",
    "compute_tables",
    "fsdd_config",
    "render_header",
    "table_bytes",
    "write_header",
]

#: Delta orders emitted by the C front end (components i, j, k of the quaternion input).
DELTA_ORDERS = (1, 2, 3)


def fsdd_config() -> FeatureConfig:
    """The FSDD (8 kHz spoken digits) feature config used by the training pipeline.

    Uses ``keras_quaternion.training``'s ``feature_config_for(8000)`` when that module provides
    it, otherwise the same numbers written out: n_fft 256, hop 80 (10 ms), 64 mels, 50-4000 Hz,
    Savitzky–Golay width 9.
    """
    try:
        from keras_quaternion import training

        for_rate = getattr(training, "feature_config_for", None)
        if for_rate is not None:
            return for_rate(8000)
    except ImportError:
        pass
    return FeatureConfig(
        sample_rate=8000, n_fft=256, hop_length=80, n_mels=64, fmin=50.0, fmax=4000.0
    )


#: Named configs selectable with ``--preset``.
PRESETS = {
    "fsdd": fsdd_config,
    "panns": FeatureConfig.panns,
}


class HeaderTables:
    """The float64 tables of one config, before formatting (see :func:`compute_tables`).

    Attributes:
        config: the FeatureConfig.
        window: ``[n_fft]`` periodic Hann window.
        twiddle_re, twiddle_im: ``[n_fft // 2]`` ``cos``/``-sin`` of ``2 pi k / n_fft``.
        mel_start, mel_count, mel_offset: ``[n_mels]`` int: band ``m`` uses FFT bins
            ``mel_start[m] .. mel_start[m] + mel_count[m] - 1`` with weights
            ``mel_weights[mel_offset[m] : mel_offset[m] + mel_count[m]]``.
        mel_weights: ``[sum(mel_count)]`` non-zero filterbank weights.
        sg_central: ``[3, width]``; sg_left, sg_right: ``[3, width // 2, width]``.
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        n_fft = config.n_fft
        k = np.arange(n_fft, dtype=np.float64)
        self.window = _snap(0.5 - 0.5 * np.cos(2.0 * math.pi * k / n_fft))
        half = np.arange(n_fft // 2, dtype=np.float64)
        self.twiddle_re = _snap(np.cos(2.0 * math.pi * half / n_fft))
        self.twiddle_im = _snap(-np.sin(2.0 * math.pi * half / n_fft))

        fb = mel_filterbank(config)  # [n_bins, n_mels]
        starts, counts, offsets, weights = [], [], [], []
        for m in range(config.n_mels):
            nz = np.flatnonzero(fb[:, m] > 0.0)
            if nz.size == 0:  # empty band (mel_filterbank warned): constant floor
                starts.append(0)
                counts.append(0)
            else:
                first, last = int(nz[0]), int(nz[-1])
                starts.append(first)
                counts.append(last - first + 1)
            offsets.append(len(weights))
            if counts[-1]:
                weights.extend(fb[starts[-1] : starts[-1] + counts[-1], m].tolist())
        self.mel_start = np.array(starts, dtype=np.int64)
        self.mel_count = np.array(counts, dtype=np.int64)
        self.mel_offset = np.array(offsets, dtype=np.int64)
        self.mel_weights = np.array(weights, dtype=np.float64)

        width = config.delta_width
        mats = [savgol_delta_matrices(width, order) for order in DELTA_ORDERS]
        self.sg_central = _snap(np.stack([c for c, _, _ in mats]))
        self.sg_left = _snap(np.stack([lm for _, lm, _ in mats]))
        self.sg_right = _snap(np.stack([rm for _, _, rm in mats]))


def _snap(values, eps: float = 1e-12):
    """Exact zeros for round-off residue (|v| < eps), so the header is the same on every CPU.

    numpy's vectorised cos/sin and the least-squares Savitzky-Golay solve leave ~1e-17 where
    the exact value is 0; the residue differs between SIMD code paths and would otherwise make
    the committed header look stale on another machine.
    """
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.abs(values) < eps, 0.0, values)


def compute_tables(config: FeatureConfig) -> HeaderTables:
    """Compute every table of the C header for ``config``.

    Args:
        config: a :class:`~keras_quaternion.features.FeatureConfig` whose ``n_fft`` is a power of
            two (the C FFT is radix-2).

    Returns:
        :class:`HeaderTables`.

    Raises:
        TypeError: ``config`` is not a FeatureConfig.
        ValueError: ``n_fft`` is not a power of two >= 4.

    Example:
        >>> t = compute_tables(fsdd_config())
        >>> t.window.shape, int(t.mel_count.sum()) == t.mel_weights.size
        ((256,), True)
    """
    if not isinstance(config, FeatureConfig):
        raise TypeError(
            f"gen_config: config must be a keras_quaternion.features.FeatureConfig, got "
            f"{type(config).__name__}."
        )
    n = config.n_fft
    if n < 4 or n & (n - 1):
        lower = 1 << (n.bit_length() - 1)
        raise ValueError(
            f"gen_config: the C front end uses a radix-2 FFT, so n_fft must be a power of two "
            f">= 4, got n_fft={n}; use {max(4, lower)} or {max(4, lower * 2)}."
        )
    return HeaderTables(config)


def table_bytes(config: FeatureConfig) -> dict[str, int]:
    """Bytes of constant data (flash) the generated tables take, by table and in total.

    Example:
        >>> table_bytes(fsdd_config())["total"] > 0
        True
    """
    t = compute_tables(config)
    sizes = {
        "window": 4 * t.window.size,
        "twiddles": 4 * (t.twiddle_re.size + t.twiddle_im.size),
        "mel_index": 2 * 3 * config.n_mels,  # uint16 start, count, offset
        "mel_weights": 4 * t.mel_weights.size,
        "savgol": 4 * (t.sg_central.size + t.sg_left.size + t.sg_right.size),
    }
    sizes["total"] = sum(sizes.values())
    return sizes


def _floats(values, per_line: int = 6, indent: str = "    ") -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    items = [_c_float(v) for v in flat]
    lines = [
        indent + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)
    ]
    return "\n".join(lines) if lines else indent + "0.0f, /* empty */"


def _ints(values, per_line: int = 12, indent: str = "    ") -> str:
    items = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [
        indent + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)
    ]
    return "\n".join(lines)


def _c_float(v: float) -> str:
    f = float(np.float32(v))
    if f == 0.0:
        return "0.0f"
    # 9 significant digits round-trip a float32 exactly.
    return f"{f:.9g}f" if ("e" in f"{f:.9g}" or "." in f"{f:.9g}") else f"{f:.9g}.0f"


def render_header(config: FeatureConfig) -> str:
    """The text of ``kq_frontend_config.h`` for ``config``.

    Args:
        config: the FeatureConfig (``n_fft`` a power of two).

    Returns:
        C source text (ASCII).

    Raises:
        TypeError / ValueError: as :func:`compute_tables`, or when the filterbank needs more
            than 65535 bins (indices are stored as uint16).

    Example:
        >>> "#define KQ_FRONTEND_N_FFT 256" in render_header(fsdd_config())
        True
    """
    t = compute_tables(config)
    if config.n_fft // 2 + 1 > 65535 or t.mel_weights.size > 65535:
        raise ValueError(
            f"gen_config: n_fft={config.n_fft} is too large for the uint16 filterbank indices "
            "of the C front end (at most 65534 bins)."
        )
    width = config.delta_width
    half = width // 2
    n_weights = max(1, t.mel_weights.size)
    cfg_json = json.dumps(config.to_dict(), sort_keys=True)
    mel_norm = "none" if config.mel_norm is None else config.mel_norm
    sizes = table_bytes(config)
    pad = config.n_fft // 2
    out = []
    w = out.append
    w("/* kq_frontend_config.h -- GENERATED by tflite/frontend/gen_config.py; do not edit.")
    w(" *")
    w(" * Regenerate (from the repository root):")
    w(
        f" *   python tflite/frontend/gen_config.py --sample-rate {config.sample_rate} "
        f"--n-fft {config.n_fft} --hop-length {config.hop_length} \\"
    )
    w(
        f" *       --n-mels {config.n_mels} --fmin {config.fmin:g} --fmax {config.fmax:g} "
        f"--delta-width {width} --mel-norm {mel_norm} --mel-scale {config.mel_scale}"
    )
    w(" *")
    w(f" * FeatureConfig: {cfg_json}")
    w(f" * Constant tables: {sizes['total']} bytes.")
    w(" */")
    w("#ifndef KQ_FRONTEND_CONFIG_H")
    w("#define KQ_FRONTEND_CONFIG_H")
    w("")
    w("#include <stdint.h>")
    w("")
    w("/* FeatureConfig.cache_key(): identifies the feature parameters the model was trained")
    w(" * with; compare it with the key in the model's export report. */")
    w(f'#define KQ_FRONTEND_CONFIG_KEY "{config.cache_key()}"')
    w(f"#define KQ_FRONTEND_SAMPLE_RATE {config.sample_rate}")
    w(f"#define KQ_FRONTEND_N_FFT {config.n_fft}")
    w(f"#define KQ_FRONTEND_LOG2_N_FFT {config.n_fft.bit_length() - 1}")
    w(f"#define KQ_FRONTEND_N_BINS {config.n_fft // 2 + 1}")
    w(f"#define KQ_FRONTEND_HOP {config.hop_length}")
    w(f"#define KQ_FRONTEND_PAD {pad} /* centred STFT: reflect padding on both sides */")
    w(f"#define KQ_FRONTEND_N_MELS {config.n_mels}")
    w(f"#define KQ_FRONTEND_FMIN {config.fmin!r}")
    w(f"#define KQ_FRONTEND_FMAX {config.fmax!r}")
    w(f"#define KQ_FRONTEND_MEL_NORM_SLANEY {1 if config.mel_norm == 'slaney' else 0}")
    w(f"#define KQ_FRONTEND_DELTA_WIDTH {width}")
    w(f"#define KQ_FRONTEND_DELTA_HALF {half}")
    w(f"#define KQ_FRONTEND_N_DELTA_ORDERS {len(DELTA_ORDERS)}")
    w(f"#define KQ_FRONTEND_AMIN {_c_float(AMIN)} /* floor of the mel power: -100 dB */")
    w(f"#define KQ_FRONTEND_N_MEL_WEIGHTS {n_weights}")
    w(f"#define KQ_FRONTEND_TABLE_BYTES {sizes['total']}")
    w("")
    w("#ifdef KQ_FRONTEND_DEFINE_TABLES")
    w("")
    w("/* Periodic Hann window, 0.5 - 0.5 cos(2 pi n / N). */")
    w("static const float kq_window[KQ_FRONTEND_N_FFT] = {")
    w(_floats(t.window))
    w("};")
    w("")
    w("/* exp(-2 pi i k / N), k = 0 .. N/2 - 1. */")
    w("static const float kq_twiddle_re[KQ_FRONTEND_N_FFT / 2] = {")
    w(_floats(t.twiddle_re))
    w("};")
    w("static const float kq_twiddle_im[KQ_FRONTEND_N_FFT / 2] = {")
    w(_floats(t.twiddle_im))
    w("};")
    w("")
    w("/* Sparse HTK mel filterbank: band m sums power[mel_start[m] + j] * weight for")
    w(" * j < mel_count[m], weights at kq_mel_weights[kq_mel_offset[m] + j]. */")
    w("static const uint16_t kq_mel_start[KQ_FRONTEND_N_MELS] = {")
    w(_ints(t.mel_start))
    w("};")
    w("static const uint16_t kq_mel_count[KQ_FRONTEND_N_MELS] = {")
    w(_ints(t.mel_count))
    w("};")
    w("static const uint16_t kq_mel_offset[KQ_FRONTEND_N_MELS] = {")
    w(_ints(t.mel_offset))
    w("};")
    w("static const float kq_mel_weights[KQ_FRONTEND_N_MEL_WEIGHTS] = {")
    w(_floats(t.mel_weights if t.mel_weights.size else [0.0]))
    w("};")
    w("")
    w("/* Savitzky-Golay derivative coefficients, orders 1, 2, 3 (librosa.feature.delta,")
    w(' * mode="interp"). Central: y[t] = sum_j c[j] x[t - HALF + j]. Edges: the first HALF')
    w(" * frames are left[t] . x[0 .. WIDTH-1], the last HALF frames right[t] . x[T-WIDTH ..]. */")
    w("static const float kq_sg_central[KQ_FRONTEND_N_DELTA_ORDERS][KQ_FRONTEND_DELTA_WIDTH] = {")
    for o in range(len(DELTA_ORDERS)):
        w("  {")
        w(_floats(t.sg_central[o], indent="      "))
        w("  },")
    w("};")
    for name, mat in (("left", t.sg_left), ("right", t.sg_right)):
        w(
            f"static const float kq_sg_{name}[KQ_FRONTEND_N_DELTA_ORDERS][KQ_FRONTEND_DELTA_HALF]"
            "[KQ_FRONTEND_DELTA_WIDTH] = {"
        )
        for o in range(len(DELTA_ORDERS)):
            w("  {")
            for r in range(half):
                w("    {")
                w(_floats(mat[o, r], indent="        "))
                w("    },")
            w("  },")
        w("};")
    w("")
    w("#endif /* KQ_FRONTEND_DEFINE_TABLES */")
    w("#endif /* KQ_FRONTEND_CONFIG_H */")
    return "\n".join(out) + "\n"


def write_header(config: FeatureConfig, path: str | os.PathLike = DEFAULT_OUT) -> Path:
    """Render the header for ``config`` and write it atomically to ``path``.

    Args:
        config: the FeatureConfig.
        path: output file (its folder is created).

    Returns:
        The path written.

    Raises:
        TypeError / ValueError: as :func:`render_header`.
        OSError: the folder cannot be created or written.

    Example:
        >>> write_header(fsdd_config(), "build/kq_frontend_config.h")  # doctest: +SKIP
    """
    text = render_header(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _config_from_args(args) -> FeatureConfig:
    if args.from_json:
        try:
            data = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(
                f"gen_config: cannot read --from-json {args.from_json}: {err}"
            ) from err
        if isinstance(data, dict) and "feature_config" in data:
            data = data["feature_config"]
        try:
            return FeatureConfig.from_dict(data)
        except (TypeError, ValueError) as err:
            raise SystemExit(f"gen_config: bad feature config in {args.from_json}: {err}") from err
    base = PRESETS[args.preset]()
    overrides = {
        "sample_rate": args.sample_rate,
        "n_fft": args.n_fft,
        "hop_length": args.hop_length,
        "n_mels": args.n_mels,
        "fmin": args.fmin,
        "fmax": args.fmax,
        "delta_width": args.delta_width,
    }
    if args.mel_norm is not None:
        overrides["mel_norm"] = None if args.mel_norm == "none" else args.mel_norm
    if args.mel_scale is not None:
        overrides["mel_scale"] = args.mel_scale
    fields = base.to_dict()
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return FeatureConfig(**fields)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"gen_config: {err}") from err


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Write the C front end's kq_frontend_config.h from a FeatureConfig.",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="fsdd",
        help="starting config (default fsdd: 8 kHz, n_fft 256, hop 80, 64 mels, 50-4000 Hz)",
    )
    parser.add_argument(
        "--from-json",
        help="read the config from a JSON file (FeatureConfig.to_dict, "
        "or an object with a 'feature_config' key, e.g. an export report)",
    )
    parser.add_argument("--sample-rate", type=int)
    parser.add_argument("--n-fft", type=int, help="FFT size, a power of two")
    parser.add_argument("--hop-length", type=int)
    parser.add_argument("--n-mels", type=int)
    parser.add_argument("--fmin", type=float)
    parser.add_argument("--fmax", type=float)
    parser.add_argument("--delta-width", type=int)
    parser.add_argument("--mel-norm", choices=["none", "slaney"])
    parser.add_argument("--mel-scale", choices=["htk", "slaney"])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output (default {DEFAULT_OUT})")
    parser.add_argument("--print-sizes", action="store_true", help="print table sizes in bytes")
    args = parser.parse_args(argv)
    config = _config_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            path = write_header(config, args.out)
        except (TypeError, ValueError) as err:
            raise SystemExit(str(err)) from err
    for warning in caught:
        print(f"gen_config: warning: {warning.message}", file=sys.stderr)
    print(f"wrote {path} for {config}")
    if args.print_sizes:
        print(json.dumps(table_bytes(config), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
