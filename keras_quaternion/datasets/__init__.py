"""Audio classification datasets behind one small API.

>>> from keras_quaternion import datasets
>>> datasets.names()
['audioset', 'csv', 'esc50', 'folder', 'fsdd', 'gtzan', 'ravdess', 'speech_commands', 'synthetic', 'urbansound8k']
>>> ds = datasets.load("synthetic", samples_per_class=20)          # generated, no files needed
>>> ds = datasets.load("fsdd", data_dir="../shared/data/fsdd")     # doctest: +SKIP
>>> print(ds.describe())                                            # doctest: +SKIP
>>> wave = ds.waveform(ds.splits["train"][0], sample_rate=16000, clip_seconds=1.0)
>>> batch = ds.decode("test", sample_rate=16000, clip_seconds=1.0, progress=False)

Every loader returns an :class:`AudioDataset` with ``train`` / ``validation`` / ``test`` lists of
:class:`Example` (a file path, in-memory waveform or HDF5 row + label + meta). Nothing is decoded
until asked; undecodable files are skipped and reported by name at decode time.
See ``docs/datasets.md`` for each dataset's layout, split protocol and options.
"""

# Loader modules register themselves on import.
from keras_quaternion.datasets import (  # noqa: F401
    audioset,
    custom,
    esc50,
    fsdd,
    gtzan,
    ravdess,
    speech_commands,
    synthetic,
    urbansound8k,
)
from keras_quaternion.datasets.base import (
    SPLITS,
    AudioDataset,
    DatasetLayoutError,
    DecodedSplit,
    Example,
    HDF5Source,
    stratified_holdout,
)
from keras_quaternion.datasets.registry import (
    DatasetSpec,
    expected_layout,
    load,
    names,
    register,
    spec,
)

__all__ = [
    "SPLITS",
    "AudioDataset",
    "DatasetLayoutError",
    "DatasetSpec",
    "DecodedSplit",
    "Example",
    "HDF5Source",
    "expected_layout",
    "load",
    "names",
    "register",
    "spec",
    "stratified_holdout",
]
