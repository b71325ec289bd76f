"""keras-quaternion: quaternion CNNs for audio classification in Keras 3.

Build (``QConv2D``, ``QBatchNormalization``, ``QDense``), train, compress (pruning, distillation)
and deploy (int8 TFLite Micro) compact audio classifiers.
"""

__version__ = "0.1.0"

import os as _os

from keras_quaternion._startup import COMMAND as _COMMAND
from keras_quaternion._startup import lazy_attributes as _lazy_attributes

if _COMMAND:
    # a kq-* command: quiet TensorFlow's C++ start-up notes (an explicit TF_CPP_MIN_LOG_LEVEL
    # still wins) and load the members below on first use, so that --help and --version do not
    # import TensorFlow. Library users keep TensorFlow's defaults and the eager imports (which
    # register the custom layers with Keras).
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    __getattr__ = _lazy_attributes(
        __name__,
        {
            "keras_quaternion.models": ("models",),
            "keras_quaternion.counting": ("count_macs", "count_params"),
            "keras_quaternion.distill": ("Distiller",),
            "keras_quaternion.features": ("FeatureConfig", "quaternion_features"),
            "keras_quaternion.layers": (
                "QBatchNormalization",
                "QConv1D",
                "QConv2D",
                "QDense",
                "QuaternionDeltas",
                "QuaternionInitializer",
            ),
            "keras_quaternion.pruning": ("prune",),
            "keras_quaternion.model_info": ("ModelInfo", "describe_model", "load_with_info"),
            "keras_quaternion.training.model_io": ("load_model",),
        },
    )
else:
    from keras_quaternion import models
    from keras_quaternion.counting import count_macs, count_params
    from keras_quaternion.distill import Distiller
    from keras_quaternion.features import FeatureConfig, quaternion_features
    from keras_quaternion.layers import (
        QBatchNormalization,
        QConv1D,
        QConv2D,
        QDense,
        QuaternionDeltas,
        QuaternionInitializer,
    )
    from keras_quaternion.model_info import ModelInfo, describe_model, load_with_info
    from keras_quaternion.pruning import prune
    from keras_quaternion.training.model_io import load_model

__all__ = [
    "Distiller",
    "FeatureConfig",
    "ModelInfo",
    "QBatchNormalization",
    "QConv1D",
    "QConv2D",
    "QDense",
    "QuaternionDeltas",
    "QuaternionInitializer",
    "count_macs",
    "count_params",
    "describe_model",
    "load_model",
    "load_with_info",
    "models",
    "prune",
    "quaternion_features",
    "__version__",
]
