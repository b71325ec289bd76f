"""The Hamilton product as a real block matrix, shared by every quaternion layer.

Channel layout (used everywhere in keras-quaternion): channels-last, and a tensor holding
``F`` quaternion units has ``4F`` real channels laid out as four contiguous blocks
``[r | i | j | k]``, each ``F`` wide.

A quaternion weight ``W = a + b i + c j + d k`` acting on an input ``x = p + q i + r j + s k``
by the Hamilton product with the weight on the left (``i² = j² = k² = ijk = -1``) gives::

    W ⊗ x = (a p - b q - c r - d s)
          + (a q + b p + c s - d r) i
          + (a r - b s + c p + d q) j
          + (a s + b r - c q + d p) k

For a layer we store the four real components ``a, b, c, d`` of every weight as one tensor of
shape ``(4, ..., C, F)`` (``C`` quaternion inputs, ``F`` quaternion outputs) and assemble the
real kernel ``(..., 4C, 4F)`` whose rows are the input blocks ``[p|q|r|s]`` and whose columns are
the output blocks ``[r|i|j|k]``::

            out: r    i    j    k
    in  p:  [  a    b    c    d ]
        q:  [ -b    a    d   -c ]
        r:  [ -c   -d    a    b ]
        s:  [ -d    c   -b    a ]

so that one ordinary real convolution (or matmul) with the assembled kernel computes the
Hamilton product at every position: the same number of multiply-accumulates as a real layer of
the same real width, with a quarter of its parameters.
"""

from __future__ import annotations

from keras import ops

#: (component index, sign) of the assembled kernel, by [input block][output block].
HAMILTON_BLOCKS = (
    ((0, 1), (1, 1), (2, 1), (3, 1)),
    ((1, -1), (0, 1), (3, 1), (2, -1)),
    ((2, -1), (3, -1), (0, 1), (1, 1)),
    ((3, -1), (2, 1), (1, -1), (0, 1)),
)


def assemble_hamilton_kernel(components):
    """Assemble the real ``(..., 4C, 4F)`` kernel of ``W ⊗ x`` from ``(4, ..., C, F)`` components.

    Args:
        components: tensor of shape ``(4, *spatial, C, F)`` holding the r, i, j, k parts of the
            quaternion weights.

    Returns:
        A tensor of shape ``(*spatial, 4C, 4F)``.

    Example:
        >>> import numpy as np
        >>> w = np.zeros((4, 1, 1), "float32"); w[0] = 1.0  # the quaternion 1
        >>> np.asarray(assemble_hamilton_kernel(w)).astype(int).tolist()
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    """
    parts = [components[n] for n in range(4)]
    negs = [ops.negative(p) for p in parts]
    rows = []
    for row in HAMILTON_BLOCKS:
        cols = [parts[n] if sign > 0 else negs[n] for n, sign in row]
        rows.append(ops.concatenate(cols, axis=-1))
    return ops.concatenate(rows, axis=-2)


def check_quaternion_channels(layer_name, shape, what="input"):
    """Return the number of quaternion units of ``shape[-1]``; raise if it is not a multiple of 4.

    Args:
        layer_name: name of the calling layer, for the error message.
        shape: a tensor shape, channels last (``(..., 4C)``).
        what: what the shape belongs to (``"input"``, ...), for the error message.

    Returns:
        ``C = shape[-1] // 4``.

    Raises:
        ValueError: the last axis is unknown (``None``), zero or not a multiple of 4.

    Example:
        >>> check_quaternion_channels("qconv", (None, 16, 16, 12))
        3
        >>> check_quaternion_channels("qconv", (None, 16, 16, 6))
        Traceback (most recent call last):
        ...
        ValueError: Layer 'qconv' expects quaternion inputs: the last axis must hold 4·C real ...
    """
    channels = shape[-1]
    if channels is None:
        raise ValueError(
            f"Layer '{layer_name}': the last (channel) axis of its {what} must be known, "
            f"got shape {tuple(shape)}."
        )
    if channels % 4 != 0 or channels == 0:
        raise ValueError(
            f"Layer '{layer_name}' expects quaternion {what}s: the last axis must hold 4·C real "
            f"channels laid out as [r | i | j | k] blocks, so it must be a positive multiple of 4. "
            f"Got shape {tuple(shape)} with {channels} channels. Stack 4 components on the last "
            f"axis (e.g. keras_quaternion.features.quaternion_features) or use a real layer."
        )
    return channels // 4
