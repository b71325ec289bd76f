"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one.

Every file the library writes for the user (models, reports, metrics, caches, generated C
sources, benchmark tables) goes through these helpers: the content is written to a temporary
file in the destination folder, flushed to disk, given the permissions a plain ``open()`` would
give (``0o666`` minus the umask, not ``mkstemp``'s private ``0o600``), then renamed over the
destination with :func:`os.replace`, which is atomic on POSIX and Windows.

Temporary files are named ``.<name>.<8 random characters>.tmp[<suffix>]`` and, on POSIX, hold an
advisory lock (``flock``) for as long as their writer lives, so :func:`sweep_temp_files` can tell
the leftovers of a killed run (unlocked) from files being written right now (locked).
:func:`staged_folder` replaces a set of files in a folder at once (``kq-export``'s artifacts).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:  # POSIX advisory locks; without them temp files are swept by age only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: what :func:`atomic_path`, :func:`temporary_file` and :func:`staged_folder` name their
#: temporary files and folders: ``.<name>.<8 random characters>.tmp[<suffix>]``
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")
#: without ``flock`` (Windows, some network file systems), temporary files older than this
#: (seconds) count as abandoned
UNLOCKED_TEMP_AGE = 24 * 3600.0


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _umask_mode() -> int:
    return 0o666 & ~_umask()


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a finished temporary file over ``path``, with a plain ``open()``'s permissions.

    For writers that must manage their own temporary file (a ``numpy`` memory map filled in
    place, say): ``tmp`` gets mode ``0o666`` minus the umask (a ``mkstemp`` file is ``0o600``,
    readable by its owner only) and is then moved over ``path`` with :func:`os.replace`. Prefer
    :func:`atomic_path`, which creates the temporary file and calls this.

    Args:
        tmp: the complete temporary file, in the same folder as ``path``.
        path: the destination.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Example:
        >>> import stat, tempfile
        >>> fd, tmp = tempfile.mkstemp(dir=".")
        >>> os.close(fd)
        >>> old = os.umask(0o022)
        >>> oct(stat.S_IMODE(publish(tmp, "data.bin").stat().st_mode))
        '0o644'
        >>> _ = os.umask(old)
    """
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = False):
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    Use it for writers that want a file name (``np.save``, ``model.save``, ``savefig``). The
    temporary name keeps the destination's suffix, so writers that check it are satisfied. On an
    exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the destination file.
        make_parents: create missing parent folders; otherwise a missing folder is an error.

    Raises:
        FileNotFoundError: the destination folder does not exist (and ``make_parents`` is off).

    Example:
        >>> with atomic_path("table.md") as tmp:
        ...     _ = Path(tmp).write_text("| a |\\n", encoding="utf-8")
        >>> Path("table.md").read_text(encoding="utf-8")
        '| a |\\n'
    """
    path = Path(path)
    with temporary_file(path, make_parents=make_parents) as tmp:
        yield tmp
        publish(tmp, path)


def _try_lock(fd: int) -> bool | None:
    """Take ``fd``'s exclusive ``flock`` without waiting.

    Returns ``True`` when taken, ``False`` when another open file holds it, ``None`` when this
    system or file system has no ``flock``.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # pragma: no cover - e.g. a network file system without locks
        return None
    return True


@contextlib.contextmanager
def temporary_file(path: str | os.PathLike, *, make_parents: bool = False):
    """Yield a locked temporary file next to ``path``, removed on exit unless moved away.

    The building block of :func:`atomic_path` for writers that publish the file themselves
    (with :func:`publish`) or not at all. The file is named ``.<stem>.<random>.tmp<suffix>`` and
    holds a ``flock`` until the block ends, so that :func:`sweep_temp_files` leaves it alone
    while this process lives and removes it if the process is killed.

    Args:
        path: the file the temporary one stands in for.
        make_parents: create missing parent folders; otherwise a missing folder is an error.

    Raises:
        FileNotFoundError: the destination folder does not exist (and ``make_parents`` is off).

    Example:
        >>> with temporary_file("big.npy") as tmp:
        ...     _ = tmp.write_bytes(b"...")
        ...     bool(TEMP_NAME.match(tmp.name)), tmp.exists()
        (True, True)
        >>> tmp.exists()
        False
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot write '{path}': the folder '{folder}' does not exist. Create it first."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    try:
        _try_lock(fd)
        yield Path(tmp)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(
    path: str | os.PathLike, content: str | bytes, *, make_parents: bool = False
) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically.

    Args:
        path: the destination file.
        content: ``str`` (written as UTF-8) or bytes-like.
        make_parents: create missing parent folders.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        FileNotFoundError: the destination folder does not exist (and ``make_parents`` is off).

    Example:
        >>> atomic_write("notes.txt", "hello\\n").read_text(encoding="utf-8")
        'hello\\n'
    """
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    with atomic_path(path, make_parents=make_parents) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def atomic_save_model(
    model, path: str | os.PathLike, *, strip_optimizer: bool = True, info=None
) -> Path:
    """Save a Keras model to a ``.keras`` file atomically, creating the folder if needed.

    Args:
        model: a ``keras.Model``.
        path: the destination, ending in ``.keras``.
        strip_optimizer: save a copy rebuilt from the model's config, without the optimizer's
            slots (a deployable file a third of the size for Adam). A model that cannot be
            rebuilt from its config is saved as it is.
        info: a :class:`~keras_quaternion.model_info.ModelInfo` to store inside the archive
            (features, clip length, class names), or ``None``.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``path`` does not end in ``.keras``.

    Example:
        >>> import keras
        >>> x = keras.Input((3,))
        >>> atomic_save_model(keras.Model(x, keras.layers.Dense(2)(x)), "tiny.keras").name
        'tiny.keras'
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(
            f"Cannot save a Keras model to '{path}': the file name must end in .keras "
            f"(e.g. '{path.with_suffix('.keras')}')."
        )
    if strip_optimizer and getattr(model, "optimizer", None) is not None:
        try:
            plain = type(model).from_config(model.get_config())
            plain.set_weights(model.get_weights())
            model = plain
        except Exception:  # a subclassed model without a usable config: save it as it is
            pass
    with atomic_path(path, make_parents=True) as tmp:
        model.save(tmp)
        if info is not None:
            from keras_quaternion.model_info import write_info

            write_info(tmp, info)
    return path


def _abandoned(path: str, min_age: float, now: float) -> bool:
    """Whether the temporary file ``path`` was left by a dead writer (its lock is free)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        age = now - os.fstat(fd).st_mtime
        if age < min_age:
            return False
        locked = _try_lock(fd)
        if locked is None:  # pragma: no cover - no lock to ask (Windows): only the age tells
            return age >= UNLOCKED_TEMP_AGE
        return locked
    finally:
        os.close(fd)


def sweep_temp_files(
    folder: str | os.PathLike, *, recursive: bool = False, min_age: float = 0.0
) -> list[Path]:
    """Remove the temporary files that killed runs left in ``folder``.

    A temporary file (named as :data:`TEMP_NAME` says) whose lock no live process holds is the
    remains of a writer that was killed before it could rename or remove it; files being
    written right now, by this process or another, are left alone.

    Args:
        folder: the folder to clean (nothing happens when it does not exist).
        recursive: clean its subfolders too.
        min_age: also keep files modified less than this many seconds ago (for folders shared
            by concurrent processes, where a writer may not have locked its file yet).

    Returns:
        The removed files.

    Example:
        >>> import subprocess, sys
        >>> _ = Path("run").mkdir()
        >>> code = "import os; open(os.path.join('run', '.model.abcdefgh.tmp.keras'), 'w')"
        >>> _ = subprocess.run([sys.executable, "-c", code], check=True)  # written, then gone
        >>> with temporary_file("run/metrics.json") as live:
        ...     [p.name for p in sweep_temp_files("run")], live.exists()
        (['.model.abcdefgh.tmp.keras'], True)
    """
    removed: list[Path] = []
    now = time.time()
    walk = os.walk(folder) if recursive else [(folder, [], _files_in(folder))]
    for root, _, names in walk:
        for name in names:
            path = os.path.join(root, name)
            if TEMP_NAME.match(name) and _abandoned(path, min_age, now):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(Path(path))
    return removed


def _files_in(folder) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, target)


def _carry_over(dest: Path, stage: Path, replaced: set[str]) -> None:
    """Link into ``stage`` what ``dest`` holds besides the replaced set and the new files."""
    if not dest.is_dir():
        return
    for entry in os.scandir(dest):
        target = stage / entry.name
        if entry.name in replaced or os.path.lexists(target):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` if
    this system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # pragma: no cover - C library without renameat2
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(stage: Path, dest: Path) -> None:
    """Make ``stage`` be ``dest``; ``stage`` then holds the old folder (if there was one)."""
    if not os.path.lexists(dest):
        os.rename(stage, dest)
    elif not _exchange(stage, dest):  # two renames: for an instant there is no ``dest``
        aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        os.rmdir(aside)
        os.rename(dest, aside)
        os.rename(stage, dest)
        os.rename(aside, stage)


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, *, replaces=()):
    """Yield a new sibling folder of ``dest``; on success it becomes ``dest`` in one step.

    Write a set of files that belong together (a model and its verification report) into the
    yielded folder. When the block ends without an error, everything ``dest`` held that is
    neither among the new files nor named in ``replaces`` (the old set) is hard-linked into the
    new folder, which is then swapped with ``dest`` atomically (``renameat2`` on Linux) and the
    old folder removed. A reader, or a run killed at any point, sees the old complete set or
    the new one, never a mix. On an error the new folder is removed and ``dest`` is untouched.

    Args:
        dest: the folder to fill or update (created when missing, with its parents).
        replaces: names of the files in ``dest`` that the new set replaces (removed even when
            the new set has no file of that name).

    Example:
        >>> _ = Path("out").mkdir()
        >>> for name in ("old.bin", "notes.txt"):
        ...     _ = Path("out", name).write_text("old")
        >>> with staged_folder("out", replaces=["old.bin"]) as stage:
        ...     _ = (stage / "new.bin").write_text("new")
        >>> sorted(os.listdir("out"))
        ['new.bin', 'notes.txt']
    """
    dest = Path(os.path.realpath(dest)) if os.path.islink(dest) else Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    mode = dest.stat().st_mode if dest.is_dir() else 0o777 & ~_umask()
    os.chmod(stage, mode & 0o7777)
    try:
        yield stage
        _carry_over(dest, stage, set(replaces))
        _swap_in(stage, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_staging_folders(dest: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of ``dest`` that killed :func:`staged_folder` runs left.

    Only safe while no other process can be staging ``dest`` (the caller holds its lock, see
    :func:`keras_quaternion.outdir.lock_folder`).

    Args:
        dest: the folder whose siblings ``.<name>.<random>.tmp`` are removed.

    Returns:
        The removed folders.

    Example:
        >>> _ = Path(".export.abcdefgh.tmp").mkdir()
        >>> [p.name for p in remove_staging_folders("export")]
        ['.export.abcdefgh.tmp']
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match and match["name"] == dest.name and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed
