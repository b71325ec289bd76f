"""keras-quaternion: quaternion CNNs for audio classification in Keras 3.

Build (``QConv2D``, ``QBatchNormalization``, ``QDense``), train, compress (pruning, distillation)
and deploy (int8 TFLite Micro) compact audio classifiers.
"""

__version__ = "0.1.0"

from keras_quaternion.layers import (  # noqa: E402
    QBatchNormalization,
    QConv1D,
    QConv2D,
    QDense,
    QuaternionDeltas,
    QuaternionInitializer,
)

__all__ = [
    "QBatchNormalization",
    "QConv1D",
    "QConv2D",
    "QDense",
    "QuaternionDeltas",
    "QuaternionInitializer",
    "__version__",
]
