"""Draw the figures of docs/concepts.md.

    python apps/docs_figures/concepts.py [--out docs/img]

* ``hamilton_kernel.png``: the assembled real kernel of a QDense with 2 quaternion inputs and 3
  quaternion outputs, coloured by which component (r, i, j, k) and sign fills each entry. It is
  computed by the library itself (``assemble_hamilton_kernel``), not drawn by hand.
* ``quaternion_input.png``: the four components of the quaternion input (log-mel, Δ, Δ², Δ³) of a
  generated up-chirp with clicks, from ``keras_quaternion.features.quaternion_features``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def hamilton_kernel_figure(path):
    from keras_quaternion.layers import assemble_hamilton_kernel

    c_in, f_out = 2, 3
    # encode component n as the value n+1, so the assembled kernel tells which part and sign
    comps = np.stack([np.full((c_in, f_out), n + 1.0, "float32") for n in range(4)])
    kernel = np.asarray(assemble_hamilton_kernel(comps))
    labels = {1: "r", 2: "i", 3: "j", 4: "k"}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.imshow(kernel, cmap="coolwarm", vmin=-4.5, vmax=4.5)
    for (row, col), value in np.ndenumerate(kernel):
        sign = "−" if value < 0 else "+"
        ax.text(col, row, sign + labels[int(abs(value))], ha="center", va="center", fontsize=8)
    blocks = ["r", "i", "j", "k"]
    ax.set_xticks([f_out * n + (f_out - 1) / 2 for n in range(4)], [f"out {b}" for b in blocks])
    ax.set_yticks([c_in * n + (c_in - 1) / 2 for n in range(4)], [f"in {b}" for b in blocks])
    for n in range(1, 4):
        ax.axvline(n * f_out - 0.5, color="black", lw=1.5)
        ax.axhline(n * c_in - 0.5, color="black", lw=1.5)
    ax.set_title(
        "Assembled real kernel of W ⊗ x (2 quaternion inputs → 3 outputs)\n"
        "each entry is ± one component of the 6 stored quaternion weights"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def quaternion_input_figure(path):
    from keras_quaternion.features import FeatureConfig, quaternion_features

    sr = 16000
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    chirp = 0.5 * np.sin(2 * np.pi * (300 * t + 1800 * t**2))
    clicks = np.zeros_like(t)
    clicks[:: sr // 8] = 1.0
    audio = (chirp + clicks + 0.01 * rng.standard_normal(sr)).astype("float32")
    config = FeatureConfig(
        sample_rate=sr, n_fft=512, hop_length=160, n_mels=64, fmin=50.0, fmax=8000.0
    )
    feats = np.asarray(quaternion_features(audio, config))
    names = ["r: log-mel (dB)", "i: Δ", "j: Δ²", "k: Δ³"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), sharey=True)
    for n, ax in enumerate(axes):
        image = feats[..., n].T
        lim = None if n == 0 else np.percentile(np.abs(image), 99)
        ax.imshow(
            image,
            origin="lower",
            aspect="auto",
            cmap="magma" if n == 0 else "RdBu_r",
            vmin=None if n == 0 else -lim,
            vmax=lim,
        )
        ax.set_title(names[n])
        ax.set_xlabel("frame (10 ms)")
    axes[0].set_ylabel("mel bin")
    fig.suptitle("Quaternion input of a 1 s up-chirp with clicks: [frames, mels, 4]")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img", help="output folder (default docs/img)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hamilton_kernel_figure(out / "hamilton_kernel.png")
    quaternion_input_figure(out / "quaternion_input.png")
    print(f"wrote {out / 'hamilton_kernel.png'} and {out / 'quaternion_input.png'}")


if __name__ == "__main__":
    main()
