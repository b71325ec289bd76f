"""The wheel carries the C sources (front end, keyword-spotting app, quaternion kernel), and a
non-editable install in a fresh virtual environment finds them and runs kq-predict.

The wheel is built without build isolation (``pip wheel --no-deps --no-build-isolation``), so
nothing is downloaded; the virtual environment is made with ``--system-site-packages`` to reuse
the installed dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from setup import c_source_files  # noqa: E402

CSRC = "keras_quaternion/export/csrc/"


@pytest.fixture(scope="module")
def wheel(repo_root, tmp_path_factory):
    """The wheel built from a copy of this checkout (its build/ folder stays clean)."""
    source = tmp_path_factory.mktemp("source") / "keras-quaternion"
    ignore = shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "site", "runs", "*.keras"
    )
    shutil.copytree(repo_root, source, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run(
        [*cmd, "-w", str(out), str(source)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("keras_quaternion-*.whl")
    return path


def test_wheel_holds_every_c_source(wheel, repo_root):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {CSRC + str(rel) for _, rel in c_source_files(repo_root / "tflite")}
    for needed in (
        "frontend/kq_frontend.c",
        "frontend/gen_config.py",
        "examples/kws_app/Makefile",
        "examples/kws_app/main_device.cc",
        "examples/kws_app/host/tflm_stub/tflm_stub.cc",
        "quaternion/kq_quaternion_tflm.cc",
    ):
        assert CSRC + needed in expected
    assert expected <= names, sorted(expected - names)
    assert not any("/build/" in name for name in names if name.startswith(CSRC))
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert (
            "kq-predict = keras_quaternion.cli:predict_main" in archive.read(entry_points).decode()
        )


@pytest.mark.slow
def test_installed_wheel_finds_its_c_sources_and_runs_kq_predict(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import keras_quaternion.export as e, keras_quaternion.export.quaternion_kernel as q; "
        "print(e.c_sources()); print(q.source_dir())"
    )
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    sources, kernel = (Path(line) for line in proc.stdout.split())
    assert sources.is_relative_to(env_dir) and sources.name == "csrc"
    assert (sources / "examples" / "kws_app" / "kws_app.c").is_file()
    assert kernel == sources / "quaternion"
    help_run = subprocess.run(
        [str(env_dir / "bin" / "kq-predict"), "--help"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert help_run.returncode == 0 and help_run.stdout.startswith(
        "Usage: kq-predict [OPTIONS] MODEL AUDIO..."
    )
