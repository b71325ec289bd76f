"""What a converted PANNs checkpoint gives in a training run, checked on the golden files.

For each golden checkpoint (``Cnn6_random.pth``, ``Cnn10_random.pth`` in ``--panns-dir``, made
with PANNs' own PyTorch code, random weights): the architecture told from its keys (what
``kq-train --teacher panns:PATH`` does), the conversion time, and the largest difference of
the converted model's clipwise outputs from PANNs' own

* on ``log_mel(waveform, FeatureConfig.panns())`` computed directly, and
* on the log-mel channel that ``prepare()`` stores for the same waveform written as a WAV file
  of a dataset (what ``kq-train --init`` / ``--teacher panns:`` feed the model).

It measures the conversion and the input path, not accuracy: the weights are random.

Usage::

    python benchmarks/panns_golden.py --panns-dir ../shared/data/panns --out golden.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from keras_quaternion.features import FeatureConfig, log_mel  # noqa: E402
from keras_quaternion.files import atomic_write  # noqa: E402
from keras_quaternion.models import from_panns  # noqa: E402
from keras_quaternion.training import prepare  # noqa: E402
from keras_quaternion.training.transfer import PannsSource, panns_architecture  # noqa: E402

NAMES = ("Cnn6", "Cnn10")


def pipeline_input(wave: np.ndarray, work: Path) -> np.ndarray:
    """The log-mel channel ``prepare()`` computes for ``wave`` (a float WAV in a dataset)."""
    for split in ("train", "validation", "test"):
        for label, audio in (("golden", wave), ("silence", np.zeros_like(wave))):
            folder = work / "data" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(folder / "clip.wav", audio, 32000, "FLOAT")
    data = prepare(
        "folder",
        work / "data",
        clip_seconds=len(wave) / 32000,
        feature_config=FeatureConfig.panns(),
        cache_dir=work / "cache",
        progress=False,
    )
    x, y = data.arrays("test", channels=1)
    return x[y == data.class_names.index("golden")][:1]


def measure(panns_dir: Path, name: str, work: Path) -> dict:
    """One row of the table for ``<name>_random.pth``."""
    path = panns_dir / f"{name}_random.pth"
    wave = np.load(panns_dir / "waveform_32k.npy")
    golden = np.load(panns_dir / f"{name}_clipwise.npy")
    start = time.perf_counter()
    arch = panns_architecture(PannsSource(path).state_dict())
    model = from_panns(path, model=arch)
    seconds = time.perf_counter() - start
    direct = np.asarray(log_mel(wave, FeatureConfig.panns()))[None, :, :, None]
    via_prepare = pipeline_input(wave, work / name)
    return {
        "file": path.name,
        "arch": arch,
        "seconds": seconds,
        "direct": float(np.abs(np.asarray(model(direct))[0] - golden).max()),
        "prepare": float(np.abs(np.asarray(model(via_prepare))[0] - golden).max()),
        "input": float(np.abs(via_prepare - direct).max()),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| checkpoint | architecture (from its keys) | conversion | max abs diff, clipwise: "
        "`log_mel` | max abs diff, clipwise: through `prepare()` | max abs diff of the inputs |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['file']}` | `{r['arch']}` | {r['seconds']:.1f} s | {r['direct']:.1e} | "
            f"{r['prepare']:.1e} | {r['input']:.1e} |"
        )
    lines.append("")
    lines.append(
        "Made by `python benchmarks/panns_golden.py --panns-dir ../shared/data/panns` "
        "(`make figures-timed`); clipwise outputs are compared with PANNs' own "
        "(`<name>_clipwise.npy`), the inputs with each other."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--panns-dir", type=Path, default=Path("../shared/data/panns"))
    parser.add_argument("--out", type=Path, default=None, help="markdown table (default: print)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        rows = [measure(args.panns_dir, name, Path(work)) for name in NAMES]
    text = table(rows)
    if args.out is None:
        print(text, end="")
    else:
        atomic_write(args.out, text)


if __name__ == "__main__":
    main()
