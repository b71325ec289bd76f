"""Start-up of the kq-* commands: --help and --version on every command without TensorFlow, and
no TensorFlow / absl / oneDNN start-up text once a command does import it."""

import os
import re
import subprocess
import sys

import pytest

from keras_quaternion import __version__
from keras_quaternion._startup import started_as_command

COMMANDS = ["kq", "kq-train", "kq-eval", "kq-prune", "kq-distill", "kq-export", "kq-predict"]
NOISE = re.compile(r"oneDNN|absl|cpu_feature_guard|^[IWE]\d{4} ", re.MULTILINE)

#: runs a command as its console script does (argv[0] is the script), then reports whether
#: TensorFlow or Keras were imported, and how long it took
AS_SCRIPT = """
import sys, time
started = time.perf_counter()
sys.argv = sys.argv[1:]
from keras_quaternion import cli
name = sys.argv[0]
entry = cli.main if name == "kq" else getattr(cli, name[3:] + "_main")
code = None
try:
    entry()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(f"RESULT {code} {heavy} {time.perf_counter() - started:.3f}", file=sys.stderr)
"""


def _run(repo_root, *args, code=AS_SCRIPT):
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # a user's environment
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("flag", ["--help", "--version"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_and_version_do_not_import_tensorflow(repo_root, command, flag):
    proc = _run(repo_root, command, flag)
    *other, result = proc.stderr.strip().splitlines()
    code, heavy, seconds = re.fullmatch(r"RESULT (\S+) (\[.*\]) (\S+)", result).groups()
    assert (code, heavy) == ("0", "[]"), proc.stderr
    assert other == [], proc.stderr  # nothing on stderr: no TensorFlow start-up text
    if flag == "--version":
        assert proc.stdout == f"{command}, version {__version__}\n"
    else:
        assert proc.stdout.startswith(f"Usage: {command} ")
    print(f"{command} {flag}: {float(seconds):.2f} s")


def test_python_dash_m_cli_is_a_command(repo_root):
    proc = _run(repo_root, "-m", "keras_quaternion.cli", "export", "--version", code=None)
    assert proc.returncode == 0 and proc.stdout == f"kq-export, version {__version__}\n"


def test_started_as_command():
    assert started_as_command(["/venv/bin/kq-prune"], ["python", "/venv/bin/kq-prune"])
    assert started_as_command(["C:\\venv\\Scripts\\kq-train.exe"], [])
    assert started_as_command(["-m"], ["python", "-m", "keras_quaternion.training.cli"])
    assert not started_as_command(["kq_analysis.py"], ["python", "kq_analysis.py"])
    assert not started_as_command(["-c"], ["python", "-c", "import keras_quaternion"])
    assert not started_as_command(["-m"], ["python", "-m", "pytest"])


QUIET_IMPORT = """
import sys, warnings
sys.argv = ["kq-train"]
from keras_quaternion import _startup
assert _startup.COMMAND
_startup.quiet_tensorflow()
import keras_quaternion as kq, keras_quaternion.training, keras_quaternion.export
assert "tensorflow" not in sys.modules  # the package loads lazily in a command
import tensorflow
print("import tensorflow: done", file=sys.stderr)
for package in (kq, kq.training, kq.export):  # every export resolves on first use
    missing = [name for name in package.__all__ if getattr(package, name, None) is None]
    assert not missing, (package.__name__, missing)
"""


def test_tensorflow_start_up_text_is_filtered(repo_root):
    proc = _run(repo_root, code=QUIET_IMPORT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "import tensorflow: done\n", proc.stderr
    assert not NOISE.search(proc.stdout + proc.stderr)


def test_a_library_import_is_eager(repo_root):
    """``import keras_quaternion`` registers the custom layers with Keras (documented)."""
    code = "import sys, keras_quaternion; print('tensorflow' in sys.modules)"
    assert _run(repo_root, code=code).stdout == "True\n"
