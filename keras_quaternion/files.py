"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one.

Every file the library writes for the user (models, reports, metrics, caches, generated C
sources, benchmark tables) goes through these helpers: the content is written to a temporary
file in the destination folder, flushed to disk, given the permissions a plain ``open()`` would
give (``0o666`` minus the umask, not ``mkstemp``'s private ``0o600``), then renamed over the
destination with :func:`os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask_mode() -> int:
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


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
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot write '{path}': the folder '{folder}' does not exist. Create it first."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    finally:
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


def atomic_save_model(model, path: str | os.PathLike, *, strip_optimizer: bool = True) -> Path:
    """Save a Keras model to a ``.keras`` file atomically, creating the folder if needed.

    Args:
        model: a ``keras.Model``.
        path: the destination, ending in ``.keras``.
        strip_optimizer: save a copy rebuilt from the model's config, without the optimizer's
            slots (a deployable file a third of the size for Adam). A model that cannot be
            rebuilt from its config is saved as it is.

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
    return path
