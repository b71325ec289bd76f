"""Output folders of the ``kq-*`` commands: checked before slow work, one command at a time.

* :func:`check_writable` — can a folder be created and written? (``--out``, ``--cache-dir``)
* :func:`lock_folder` — hold a folder for one command; a second one gets :class:`FolderBusyError`
  naming the folder and the process holding it. The lock is an ``flock`` on ``<folder>/.kq-lock``,
  which the kernel drops when its process dies, so a killed run's lock is taken over.
* :func:`claim` — both, then removes what killed runs left (temporary files, staging folders).
* :func:`claim_out` — :func:`claim` for a click command's ``--out``, held until the command ends;
  :func:`writes_files` — whether this process writes any (not a non-chief multi-worker task).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from keras_quaternion.files import (
    _try_lock,
    remove_staging_folders,
    sweep_temp_files,
)

__all__ = [
    "LOCK_NAME",
    "FolderBusyError",
    "FolderLock",
    "NotWritableError",
    "check_writable",
    "claim",
    "claim_out",
    "lock_folder",
    "writes_files",
]

#: the lock file a command holds in its output folder (removed when it ends)
LOCK_NAME = ".kq-lock"


class NotWritableError(PermissionError):
    """A folder a command must write to cannot be created or written."""


class FolderBusyError(RuntimeError):
    """Another process holds the folder's lock."""


def _nearest_existing(folder: Path) -> Path:
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    return existing


def _probe(folder: Path) -> str | None:
    """Why a file cannot be created in the existing ``folder``, or ``None`` if it can."""
    try:
        fd, name = tempfile.mkstemp(prefix=".kq-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        return err.strerror or str(err)
    if not os.access(folder, os.W_OK | os.X_OK):  # created as root, but not for this user
        return "permission denied"
    return None


def check_writable(
    folder: str | os.PathLike, what: str = "folder", hint: str | None = None
) -> Path:
    """Check that ``folder`` exists or can be created, and that files can be written in it.

    Checks the folder itself or, when it does not exist yet, its nearest existing parent: both
    with :func:`os.access` and by creating and removing a file (``os.access`` says yes to root
    on a read-only file system).

    Args:
        folder: the folder.
        what: how the error message names it (``"--out"``, ``"--cache-dir"``).
        hint: the fix the message ends with (default: choose another / a writable ``what``).

    Returns:
        ``folder`` as an expanded :class:`pathlib.Path`.

    Raises:
        NotWritableError: a file stands where the folder (or a parent) should be, or the
            folder cannot be written (read-only file system, permissions).

    Example:
        >>> check_writable("runs/new", "--out").as_posix()
        'runs/new'
        >>> _ = Path("notes.txt").write_text("")
        >>> check_writable("notes.txt/run", "--out")
        Traceback (most recent call last):
        ...
        keras_quaternion.outdir.NotWritableError: --out 'notes.txt/run' cannot be created: 'notes.txt' is a file, not a folder; choose another --out.
    """  # noqa: E501
    folder = Path(folder).expanduser()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        where = "it is" if existing == folder else f"'{existing}' is"
        raise NotWritableError(
            f"{what} '{folder}' cannot be created: {where} a file, not a folder; "
            f"{hint or f'choose another {what}'}."
        )
    problem = _probe(existing)
    if problem is not None:
        where = "" if existing == folder else f" (checked its parent '{existing}')"
        raise NotWritableError(
            f"{what} '{folder}' is not writable: {problem}{where}; "
            f"{hint or f'choose a writable {what}'}."
        )
    return folder


@dataclass
class FolderLock:
    """A held folder lock: who holds it now, and the killed holder it replaced (if any)."""

    folder: Path
    holder: dict
    previous: dict = field(default_factory=dict)


def _holder(command: str) -> dict:
    started = datetime.datetime.now().isoformat(timespec="seconds")
    return {
        "command": command,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": started,
    }


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    """``kq-train (pid 812 on host-1, started 2025-01-01T10:00:00)``, or what is known of it.

    Args:
        holder: the lock file's content (``command``, ``pid``, ``host``, ``started``).

    Example:
        >>> describe_holder({"command": "kq-train", "pid": 812, "host": "h", "started": "10:00"})
        'kq-train (pid 812 on h, started 10:00)'
        >>> describe_holder({})
        'another process'
    """
    if not holder.get("pid"):
        return "another process"
    where = f" on {holder['host']}" if holder.get("host") else ""
    since = f", started {holder['started']}" if holder.get("started") else ""
    return f"{holder.get('command') or 'a process'} (pid {holder['pid']}{where}{since})"


def _acquire(path: Path, what: str) -> tuple[int, dict]:
    """Open and lock ``path``; returns the descriptor and the previous (killed) holder."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if _try_lock(fd) is False:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusyError(
                f"{what} '{path.parent}' is in use by {describe_holder(holder)}; wait for it to "
                f"finish, or choose another {what}."
            )
        try:  # a holder that just finished may have removed the file we opened: open again
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd, _read_holder(fd)
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike, command: str, what: str = "folder"):
    """Hold ``folder`` (created if missing) for ``command`` until the block ends.

    A folder this call created is removed again at the end if nothing was written to it.

    Args:
        folder: the output folder.
        command: who holds it, as the error of a second process shows (``"kq-train"``).
        what: how that error names the folder (``"--out"``).

    Yields:
        A :class:`FolderLock`; its ``previous`` is the holder that was killed without
        releasing it (``{}`` if none).

    Raises:
        FolderBusyError: a live process holds the folder.

    Example:
        >>> with lock_folder("runs/a", "kq-train", "--out") as held:
        ...     try:
        ...         with lock_folder("runs/a", "kq-prune", "--out"):
        ...             pass
        ...     except FolderBusyError as err:
        ...         print(str(err)[:36])
        --out 'runs/a' is in use by kq-train
        >>> os.path.exists("runs/a/.kq-lock")
        False
    """
    folder = Path(folder).expanduser()
    existing = _nearest_existing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        fd, previous = _acquire(path, what)
    except BaseException:
        _remove_empty(folder, existing)
        raise
    holder = _holder(command)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield FolderLock(folder, holder, previous)
    finally:
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                os.unlink(path)
        os.close(fd)
        _remove_empty(folder, existing)


def _remove_empty(folder: Path, existing: Path) -> None:
    """Remove ``folder`` and its parents up to ``existing`` (which was there before) while
    they are empty: a command that stopped before writing anything leaves no folder behind."""
    while folder != existing and folder != folder.parent:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def claim(folder: str | os.PathLike, command: str, what: str = "--out"):
    """What a command does with its output folder before any slow work, until it ends.

    Checks that the folder can be written (:func:`check_writable`), locks it
    (:func:`lock_folder`) and removes the temporary files and staging folders that killed runs
    left there (:func:`~keras_quaternion.files.sweep_temp_files`,
    :func:`~keras_quaternion.files.remove_staging_folders`).

    Args:
        folder: the output folder.
        command: the command's name (``"kq-export"``).
        what: how errors name the folder.

    Yields:
        The :class:`FolderLock`.

    Raises:
        NotWritableError: see :func:`check_writable`.
        FolderBusyError: see :func:`lock_folder`.

    Example:
        >>> _ = Path("ex").mkdir()
        >>> _ = Path("ex", ".model_int8.abcdefgh.tmp.tflite").write_bytes(b"")  # left by a kill
        >>> with claim("ex", "kq-export") as held:
        ...     sorted(os.listdir("ex")), held.holder["command"]
        (['.kq-lock'], 'kq-export')
    """
    folder = check_writable(folder, what)
    try:
        with lock_folder(folder, command, what) as held:
            sweep_temp_files(folder, recursive=True)
            remove_staging_folders(folder)
            yield held
    except FileExistsError as err:  # pragma: no cover - a file appeared where the folder goes
        raise NotWritableError(f"{what} '{folder}' cannot be created: {err}.") from None


def writes_files(strategy: str = "default", tf_config: str | None = None) -> bool:
    """Whether this process writes the command's files: all but non-chief multi-worker tasks.

    Read from ``TF_CONFIG`` without TensorFlow, as
    :func:`keras_quaternion.training.is_chief` decides once the strategy exists.

    Args:
        strategy: the ``--strategy`` value.
        tf_config: the ``TF_CONFIG`` JSON (default: the environment variable).

    Example:
        >>> config = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
        >>> writes_files("multiworker", config), writes_files("default", config)
        (False, True)
    """
    if strategy != "multiworker":
        return True
    try:
        config = json.loads(tf_config if tf_config is not None else os.environ["TF_CONFIG"])
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index") or 0)
    except (KeyError, ValueError, TypeError, AttributeError):
        return True  # make_strategy reports the bad TF_CONFIG
    return kind in (None, "chief") or (kind == "worker" and index == 0 and "chief" not in cluster)


def claim_out(out_dir: Path, strategy: str = "default") -> Path:
    """Hold ``--out`` for the running click command until it ends, after checking it can be written.

    What every command that writes to ``--out`` does before any slow work (see :func:`claim`):
    a folder that cannot be written, or one that another ``kq-*`` process is writing, is a
    one-line error (exit status 1); the lock of a process that was killed is taken over (with a
    note on stderr), and the temporary files and staging folders such runs left are removed.
    Non-chief multi-worker tasks, which write nothing, claim nothing (:func:`writes_files`).

    Args:
        out_dir: the ``--out`` folder (created).
        strategy: the ``--strategy`` value, if the command has one.

    Returns:
        ``out_dir``.

    Raises:
        click.ClickException: not writable, or held by another process.

    Example:
        >>> import click
        >>> @click.command()
        ... @click.option("--out", type=Path)
        ... def fit(out):
        ...     claim_out(out)
        ...     claim_out(out)  # as if a second command wanted it
        >>> from click.testing import CliRunner
        >>> print(CliRunner().invoke(fit, ["--out", "run"]).output[:40])
        Error: --out 'run' is in use by fit (pid
    """
    import click

    if not writes_files(strategy):
        return out_dir
    ctx = click.get_current_context()
    try:
        held = ctx.with_resource(claim(out_dir, ctx.command_path, "--out"))
    except (NotWritableError, FolderBusyError) as err:
        raise click.ClickException(str(err)) from None
    if held.previous.get("pid"):
        click.echo(
            f"Note: {describe_holder(held.previous)} ended without releasing --out "
            f"'{out_dir}'; took it over and removed what it left unfinished.",
            err=True,
        )
    return out_dir
