"""Quaternion Keras layers.

Channel layout: channels-last, ``F`` quaternion units = ``4F`` real channels as four contiguous
blocks ``[r | i | j | k]``. See :mod:`keras_quaternion.layers.hamilton`.
"""

from keras_quaternion.layers.conv import QConv, QConv1D, QConv2D, QDense
from keras_quaternion.layers.deltas import QuaternionDeltas
from keras_quaternion.layers.hamilton import assemble_hamilton_kernel
from keras_quaternion.layers.initializers import QuaternionInitializer
from keras_quaternion.layers.normalization import QBatchNormalization

__all__ = [
    "QBatchNormalization",
    "QConv",
    "QConv1D",
    "QConv2D",
    "QDense",
    "QuaternionDeltas",
    "QuaternionInitializer",
    "assemble_hamilton_kernel",
]
