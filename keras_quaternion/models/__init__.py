"""Model registry: PANNs' CNN6/10/14 and ResNet22/38, their quaternion twins, and MC-CNN14.

>>> from keras_quaternion import models
>>> model = models.build("qcnn6", classes=10, n_mels=32, width=0.125)
>>> model.output_shape
(None, 10)

See :func:`build`, :func:`names`, :func:`describe` and ``docs/models.md``.
"""

from keras_quaternion.models.panns_weights import from_panns  # noqa: E402
from keras_quaternion.models.registry import (
    DEFAULT_DROPOUT,
    SPECS,
    ModelSpec,
    build,
    describe,
    names,
)
from keras_quaternion.models.torch_checkpoint import CheckpointError  # noqa: E402

__all__ = [
    "DEFAULT_DROPOUT",
    "SPECS",
    "CheckpointError",
    "ModelSpec",
    "build",
    "describe",
    "from_panns",
    "names",
]
