"""The Hamilton product in 8 real multiplications (``algorithm="fast"`` of the quaternion layers).

``W ⊗ x`` (weight ``W = a + b i + c j + d k`` on the left of ``x = p + q i + r j + s k``, see
:mod:`keras_quaternion.layers.hamilton`) is computed from 8 products of one weight combination
by one input combination (the Howell-Lafon scheme, 1975, with its factor ½ moved onto the
weight side)::

    product   weight combination    input combination
    m0        d - c                 r - s
    m1        a + b                 p + q
    m2        a - b                 r + s
    m3        c + d                 p - q
    m4        (d - b) / 2           q - r
    m5        (d + b) / 2           q + r
    m6        (a + c) / 2           p - s
    m7        (a - c) / 2           p + s

    real = m0 + m4 - m5 + m6 + m7
    i    = m1 + m4 - m5 - m6 - m7
    j    = m2 + m4 + m5 + m6 - m7
    k    = m3 + m4 + m5 - m6 + m7

Input-side and output-side coefficients are all ±1 (additions only); the ½ sits on the weight
side, which a layer computes once per call from its ``(4, ..., C, F)`` kernel. The identity is
bilinear, so it holds for a convolution or a matmul with ``C`` inputs and ``F`` outputs in place
of each scalar product: 8 real convolutions (or matmuls) from ``C`` to ``F`` channels replace the
one ``4C`` to ``4F`` convolution of the assembled kernel, half the multiply-accumulates. The
result is the same function in real arithmetic; in floating point the rounding differs (sums
are rounded before the products), see ``docs/concepts.md``.
"""

from __future__ import annotations

from keras import ops

#: The layers' ``algorithm`` values.
ALGORITHMS = ("standard", "fast")

#: Weight combination of each product: coefficients of the components ``(a, b, c, d)``.
FAST_WEIGHT_COMBOS = (
    (0, 0, -1, 1),
    (1, 1, 0, 0),
    (1, -1, 0, 0),
    (0, 0, 1, 1),
    (0, -0.5, 0, 0.5),
    (0, 0.5, 0, 0.5),
    (0.5, 0, 0.5, 0),
    (0.5, 0, -0.5, 0),
)

#: Input combination of each product: coefficients of the input blocks ``(p, q, r, s)``.
FAST_INPUT_COMBOS = (
    (0, 0, 1, -1),
    (1, 1, 0, 0),
    (0, 0, 1, 1),
    (1, -1, 0, 0),
    (0, 1, -1, 0),
    (0, 1, 1, 0),
    (1, 0, 0, -1),
    (1, 0, 0, 1),
)

#: Output block ``[r|i|j|k]`` of the result: coefficients of the products ``m0 .. m7``.
FAST_OUTPUT_COMBOS = (
    (1, 0, 0, 0, 1, -1, 1, 1),
    (0, 1, 0, 0, 1, -1, -1, -1),
    (0, 0, 1, 0, 1, 1, 1, -1),
    (0, 0, 0, 1, 1, 1, -1, 1),
)


def check_algorithm(layer, algorithm):
    """Return ``algorithm`` if it is one of :data:`ALGORITHMS`; raise otherwise.

    Args:
        layer: name of the calling layer class, for the error message.
        algorithm: the value to check.

    Returns:
        ``algorithm`` (``"standard"`` or ``"fast"``).

    Raises:
        ValueError: anything else (the message names the allowed values).

    Example:
        >>> check_algorithm("QConv2D", "fast")
        'fast'
        >>> check_algorithm("QConv2D", "winograd")
        Traceback (most recent call last):
        ...
        ValueError: QConv2D: algorithm must be 'standard' (one real op with the assembled ...
    """
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(
            f"{layer}: algorithm must be 'standard' (one real op with the assembled Hamilton "
            f"kernel) or 'fast' (8 real ops on sums and differences, half the "
            f"multiply-accumulates), got {algorithm!r}."
        )
    return algorithm


def _combine(parts, coeffs):
    total = None
    for part, coeff in zip(parts, coeffs):
        if coeff == 0:
            continue
        if total is None:
            total = part if coeff == 1 else ops.multiply(part, coeff)
        elif coeff == 1:
            total = ops.add(total, part)
        elif coeff == -1:
            total = ops.subtract(total, part)
        else:
            total = ops.add(total, ops.multiply(part, coeff))
    return total


def fast_kernels(components):
    """The 8 weight combinations of a ``(4, ..., C, F)`` component tensor.

    Args:
        components: the ``(4, *spatial, C, F)`` kernel of a quaternion layer.

    Returns:
        A list of 8 tensors of shape ``(*spatial, C, F)`` (:data:`FAST_WEIGHT_COMBOS`).

    Example:
        >>> import numpy as np
        >>> w = np.arange(4, dtype="float32").reshape(4, 1, 1)  # a=0, b=1, c=2, d=3
        >>> [float(np.asarray(k)[0, 0]) for k in fast_kernels(w)]
        [1.0, 1.0, -1.0, 5.0, 1.0, 2.0, 1.0, -1.0]
    """
    parts = [components[n] for n in range(4)]
    return [_combine(parts, coeffs) for coeffs in FAST_WEIGHT_COMBOS]


def fast_inputs(inputs):
    """The 8 input combinations (sums and differences) of a ``(..., 4C)`` quaternion tensor.

    Args:
        inputs: a tensor whose last axis holds the ``[p|q|r|s]`` blocks, ``C`` channels each.

    Returns:
        A list of 8 tensors of shape ``(..., C)`` (:data:`FAST_INPUT_COMBOS`).

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 4.0, 8.0]], "float32")  # p=1, q=2, r=4, s=8
        >>> [float(np.asarray(t)[0, 0]) for t in fast_inputs(x)]
        [-4.0, 3.0, 12.0, -1.0, -2.0, 6.0, -7.0, 9.0]
    """
    p, q, r, s = ops.split(inputs, 4, axis=-1)
    return [r - s, p + q, r + s, p - q, q - r, q + r, p - s, p + s]


def fast_outputs(products):
    """The ``(..., 4F)`` result ``[r|i|j|k]`` from the 8 products (:data:`FAST_OUTPUT_COMBOS`).

    Uses 12 additions: the sums ``m4 ± m7`` and ``m5 ± m6`` are shared by the four outputs.

    Args:
        products: 8 tensors ``m0 .. m7`` of shape ``(..., F)``.

    Returns:
        A tensor of shape ``(..., 4F)``.

    Example:
        >>> import numpy as np
        >>> m = [np.full((1, 1), 2.0**n, "float32") for n in range(8)]  # m_n = 2**n
        >>> np.asarray(fast_outputs(m)).tolist()  # 1+16-32+64+128, 2+16-32-64-128, ...
        [[177.0, -206.0, -12.0, 120.0]]
    """
    m0, m1, m2, m3, m4, m5, m6, m7 = products
    plus47, minus47 = m4 + m7, m4 - m7
    plus56, minus56 = m5 + m6, m5 - m6
    real = m0 + plus47 - minus56
    i = m1 + minus47 - plus56
    j = m2 + minus47 + plus56
    k = m3 + plus47 + minus56
    return ops.concatenate([real, i, j, k], axis=-1)


def fast_hamilton(inputs, components, op):
    """``W ⊗ x`` for a whole layer with 8 calls of a bilinear ``op`` from ``C`` to ``F`` channels.

    Args:
        inputs: ``(..., 4C)`` quaternion input, ``[p|q|r|s]`` blocks.
        components: the ``(4, *spatial, C, F)`` kernel.
        op: ``op(x, w)`` applying a ``(*spatial, C, F)`` kernel to a ``(..., C)`` input (a
            convolution or a matmul); it must be linear in each argument.

    Returns:
        ``(..., 4F)``: what ``op(inputs, assemble_hamilton_kernel(components))`` returns, up to
        float rounding.

    Example:
        >>> import numpy as np
        >>> from keras_quaternion.layers.hamilton import assemble_hamilton_kernel
        >>> rng = np.random.default_rng(0)
        >>> w = rng.standard_normal((4, 3, 2)); x = rng.standard_normal((5, 12))
        >>> fast = fast_hamilton(x, w, ops.matmul)
        >>> bool(np.allclose(fast, x @ np.asarray(assemble_hamilton_kernel(w))))
        True
    """
    kernels = fast_kernels(components)
    products = [op(x, w) for x, w in zip(fast_inputs(inputs), kernels)]
    return fast_outputs(products)
