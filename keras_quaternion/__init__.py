"""keras-quaternion: quaternion CNNs for audio classification in Keras 3.

Build (``QConv2D``, ``QBatchNormalization``, ``QDense``), train, compress (pruning, distillation)
and deploy (int8 TFLite Micro) compact audio classifiers.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# The kq-* commands import this package before their own code runs; quiet TensorFlow's C++
# start-up notes for them (an explicit TF_CPP_MIN_LOG_LEVEL still wins). Library users keep
# TensorFlow's defaults.
_PROGRAM = _os.path.basename(_sys.argv[0] if _sys.argv else "")
if _PROGRAM.startswith("kq"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
#: ``kq-data`` (dataset downloads) needs neither TensorFlow nor Keras: under it the names below
#: are imported on first use (:func:`__getattr__`) instead of here.
_DATA_TOOL = _PROGRAM == "kq-data"

if not _DATA_TOOL:
    from keras_quaternion import models  # noqa: E402
    from keras_quaternion.counting import count_macs, count_params  # noqa: E402
    from keras_quaternion.distill import Distiller  # noqa: E402
    from keras_quaternion.features import FeatureConfig, quaternion_features  # noqa: E402
    from keras_quaternion.layers import (  # noqa: E402
        QBatchNormalization,
        QConv1D,
        QConv2D,
        QDense,
        QuaternionDeltas,
        QuaternionInitializer,
    )
    from keras_quaternion.pruning import prune  # noqa: E402

__all__ = [
    "Distiller",
    "FeatureConfig",
    "QBatchNormalization",
    "QConv1D",
    "QConv2D",
    "QDense",
    "QuaternionDeltas",
    "QuaternionInitializer",
    "count_macs",
    "count_params",
    "models",
    "prune",
    "quaternion_features",
    "__version__",
]

#: the submodule each top-level name comes from (``None``: the name is that submodule)
_HOMES = {
    "models": None,
    "count_macs": "counting",
    "count_params": "counting",
    "Distiller": "distill",
    "FeatureConfig": "features",
    "quaternion_features": "features",
    "QBatchNormalization": "layers",
    "QConv1D": "layers",
    "QConv2D": "layers",
    "QDense": "layers",
    "QuaternionDeltas": "layers",
    "QuaternionInitializer": "layers",
    "prune": "pruning",
}


def __getattr__(name):
    """Import a top-level name on first use (only reached under ``kq-data``)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'keras_quaternion' has no attribute {name!r}")
    import importlib

    home = _HOMES[name]
    value = importlib.import_module(f"keras_quaternion.{home or name}")
    value = getattr(value, name) if home else value
    globals()[name] = value
    return value
