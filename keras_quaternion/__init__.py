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
if _os.path.basename(_sys.argv[0] if _sys.argv else "").startswith("kq"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
