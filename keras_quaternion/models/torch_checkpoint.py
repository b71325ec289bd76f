"""Read a PyTorch ``.pth`` checkpoint of plain tensors without PyTorch, and without running code.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` is a pickle of the saved object in
which every tensor is a call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)`` whose storage is a persistent reference to ``<name>/data/<key>``, the raw little-endian
bytes. :func:`read_torch_checkpoint` unpickles ``data.pkl`` with an unpickler that resolves only
the globals such a file needs (``collections.OrderedDict``, the tensor rebuild functions and the
storage types) and refuses every other one before it can be called: a checkpoint whose pickle
reaches for ``os.system`` or ``builtins.eval`` raises :class:`CheckpointError` and runs nothing.
Tensors come back as numpy arrays.

Example:
    >>> state = read_torch_checkpoint("Cnn14_mAP=0.431.pth")["model"]  # doctest: +SKIP
    >>> state["fc_audioset.weight"].shape  # doctest: +SKIP
    (527, 2048)
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile

import numpy as np

#: storage type name in ``torch`` -> numpy dtype
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """A checkpoint cannot be read: not a torch zip archive, or a pickle that asks for more than
    tensors (the message names what it asked for).

    Example:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. in the pickle: only its dtype matters."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """``torch._utils._rebuild_tensor_v2`` for numpy: a strided view of the storage, copied."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return np.array(storage[offset])
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if min(size) > 0 and extent > storage.size:
        raise CheckpointError(
            f"A tensor of size {size} and stride {stride} at offset {offset} reads past its "
            f"storage of {storage.size} elements: the checkpoint is damaged."
        )
    strides = tuple(s * storage.itemsize for s in stride)
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, strides, writeable=False)
    return np.array(view)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _TensorUnpickler(pickle.Unpickler):
    def __init__(self, handle, archive, prefix):
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"The checkpoint's pickle asks for '{module}.{name}', which a file of tensors does not "
            f"need; refused without running it. Only load checkpoints from sources you trust."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"Unknown persistent reference {pid!r} in the checkpoint.")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType):
            raise CheckpointError(f"Unknown storage type {kind!r} in the checkpoint.")
        member = f"{self.prefix}/data/{key}"
        try:
            raw = self.archive.read(member)
        except KeyError:
            raise CheckpointError(f"The checkpoint has no storage '{member}'.") from None
        array = np.frombuffer(raw, dtype=kind.dtype.newbyteorder("<"))
        if array.size < int(numel):
            raise CheckpointError(f"Storage '{member}' holds {array.size} of {numel} elements.")
        return array[: int(numel)]


def read_torch_checkpoint(path):
    """The object ``torch.save`` wrote to ``path``, with numpy arrays in place of tensors.

    Args:
        path: a ``.pth`` / ``.pt`` file in PyTorch's zip format (``torch.save`` since 1.6).

    Returns:
        The unpickled object (for PANNs: ``{"model": OrderedDict(name -> array), ...}``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a zip archive with a ``data.pkl`` (e.g. the legacy pre-1.6 format),
            a pickle that asks for anything but tensors, or damaged storages.

    Example:
        >>> read_torch_checkpoint("not_there.pth")
        Traceback (most recent call last):
        ...
        FileNotFoundError: Checkpoint 'not_there.pth' does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"'{path}' is not a PyTorch zip checkpoint (torch.save writes a zip archive since "
            f"PyTorch 1.6); re-save it with torch.save(obj, path) from a recent PyTorch."
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(
                f"'{path}' is a zip archive but not a PyTorch checkpoint: expected one "
                f"'<name>/data.pkl', found {len(pickles)}."
            )
        prefix = pickles[0][: -len("/data.pkl")]
        with archive.open(pickles[0]) as handle:
            try:
                return _TensorUnpickler(handle, archive, prefix).load()
            except CheckpointError:
                raise
            except Exception as err:  # a damaged pickle: name the file, keep the cause
                raise CheckpointError(f"Could not unpickle '{path}': {err}") from err
