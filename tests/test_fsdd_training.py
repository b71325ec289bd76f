"""Real audio: ``kq-train`` on the Free Spoken Digit Dataset reaches >= 0.95 test accuracy.

Uses the recordings in ``../shared/data/fsdd`` (relative to the repository root) with the
conventional split (test = takes 0-4); skipped with a reason where that folder is absent. The
command and its result are documented in docs/training.md.
"""

import json
import os
import subprocess
import sys
import time

import pytest

#: The documented quick command's arguments (docs/training.md, "Real audio: FSDD"): the default
#: model and recipe, 10 epochs on 0.6 s clips.
FSDD_COMMAND = "kq-train --dataset fsdd --epochs 10 --clip-seconds 0.6"
FSDD_ARGS = FSDD_COMMAND.split()[1:]


@pytest.mark.slow
def test_kq_train_on_fsdd_reaches_95_percent(fsdd_dir, repo_root, tmp_path):
    out = tmp_path / "fsdd-qcnn6"
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = "from keras_quaternion.cli import train_main; train_main()"
    args = [
        *FSDD_ARGS,
        "--data-dir",
        str(fsdd_dir),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--quiet",
    ]
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.time() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "fsdd" and metrics["model"] == "qcnn6"
    assert metrics["sample_rate"] == 8000
    assert metrics["examples"]["test"] == 300  # conventional split: takes 0-4 of every digit
    print(
        f"FSDD test accuracy {metrics['test']['accuracy']:.4f} in {seconds:.0f} s, "
        f"{metrics['params']:,} params"
    )
    assert metrics["test"]["accuracy"] >= 0.95, proc.stdout
    assert (out / "model.keras").is_file() and (out / "confusion_matrix.png").is_file()
