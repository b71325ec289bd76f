"""Start-up of the ``kq-*`` commands: ``--help`` without TensorFlow, and TensorFlow without noise.

In a ``kq-*`` process (a console script, or ``python -m keras_quaternion.cli``)
:data:`COMMAND` is true and ``keras_quaternion``, ``keras_quaternion.training`` and
``keras_quaternion.export`` load their members on first use (:func:`lazy_attributes`), so that
``--help`` and ``--version`` answer in a fraction of a second instead of importing Keras and
TensorFlow. A library user's ``import keras_quaternion`` imports everything, as documented (it
registers the custom layers with Keras).

When a command does import TensorFlow, :func:`quiet_tensorflow` keeps the C++ start-up notes
(oneDNN, CPU features, absl's "All log messages before absl::InitializeLog()") out of its
output; an explicit ``TF_CPP_MIN_LOG_LEVEL=0`` shows them again.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

#: the console scripts' names (``kq-train``; ``kq-train.exe`` / ``kq-train-script.py`` on Windows)
_SCRIPT = re.compile(r"^kq(-[a-z]+)?(\.exe|-script\.pyw?)?$", re.IGNORECASE)
#: lines of TensorFlow's native start-up output that :func:`quiet_tensorflow` drops
START_UP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} \S+ +\d+ \S+:\d+\]"
    r"|To enable the following instructions:)"
)
#: ``TF_CPP_MIN_LOG_LEVEL`` as the user set it (before the package gives it a default)
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")


def started_as_command(argv=None, orig_argv=None) -> bool:
    """Whether this process is a ``kq-*`` command.

    Args:
        argv: ``sys.argv`` (default: this process's).
        orig_argv: ``sys.orig_argv``, the interpreter's own arguments (default: this process's).

    Example:
        >>> started_as_command(["/usr/bin/kq-train", "--help"], ["python", "/usr/bin/kq-train"])
        True
        >>> started_as_command(["-m"], ["python", "-m", "keras_quaternion.cli", "--help"])
        True
        >>> started_as_command(["train.py"], ["python", "train.py"])
        False
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and _SCRIPT.match(re.split(r"[\\/]", str(argv[0]))[-1]):
        return True
    if "-m" in orig_argv[:-1]:
        module = orig_argv[orig_argv.index("-m") + 1]
        return module.startswith("keras_quaternion") and module.rsplit(".", 1)[-1] == "cli"
    return False


#: this process is a ``kq-*`` command (see :func:`started_as_command`)
COMMAND = started_as_command()


def lazy_attributes(package: str, exports: dict[str, tuple[str, ...]]):
    """A module ``__getattr__`` that imports a package's exports on first use.

    Args:
        package: the package's ``__name__``.
        exports: module name -> names it provides; a name equal to the module's last part
            (``{"keras_quaternion.models": ("models",)}``) is the module itself.

    Returns:
        The ``__getattr__`` function (PEP 562).

    Example:
        >>> getattr_ = lazy_attributes("keras_quaternion", {"keras_quaternion.files": ("publish",)})
        >>> getattr_("publish").__name__
        'publish'
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name):
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name == f"{package}.{name}" else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


@contextlib.contextmanager
def _filtered_stderr():
    """Capture the process's native stderr; on exit, pass on all but :data:`START_UP_NOISE`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable file descriptor 2
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not START_UP_NOISE.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's native start-up notes out of this process's output.

    From now on, the first ``import tensorflow`` (wherever it happens) runs with file
    descriptor 2 captured; what it printed is passed on without the lines
    :data:`START_UP_NOISE` matches. Does nothing when TensorFlow is already imported or the
    user set ``TF_CPP_MIN_LOG_LEVEL=0``.

    Example:
        >>> quiet_tensorflow()  # TensorFlow is imported already here: nothing to do
    """
    if "tensorflow" in sys.modules or USER_LOG_LEVEL == "0":
        return
    if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
