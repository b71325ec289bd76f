"""Data-free filter importance scores, computed from a layer's weights only.

Every scorer returns one score per output filter (per quaternion filter in quaternion layers),
normalised by the layer maximum so that the scores lie in ``[0, 1]``; **a higher score means a
more important filter**, and pruning removes the lowest-scoring filters first.

Methods (see ``docs/pruning.md`` for the equations and the differences with the authors'
released code):

* ``"operator-norm"``: Singh & Plumbley's passive pruning score. For every input channel the
  filters form a matrix (filters x kernel taps); it is centred by the mean filter, and its
  rank-1 (top singular) direction is taken; a filter's score is the square of its centred
  weights' projection onto those directions, summed over the input channels, divided by the
  layer maximum. Quaternion layers are scored per component (r, i, j, k) and the four
  normalised scores are averaged, as the authors do. The released formula depends on the order
  of the filters: each input channel's direction is signed by filter 0's projection, so
  permuting the filters can flip channels' contributions and change which filters are kept.
* ``"operator-norm-unsigned"``: the same rank-1 directions, but a filter's score is the sum over
  input channels of its *squared* projection, so the signs cancel and the score does not depend
  on the order of the filters (ours; not in the authors' code).
* ``"l1"``: entry-wise l1 norm of the whole filter (every tap, input channel and component).
* ``"geometric-median"``: FPGM (He et al., 2019): the summed Euclidean distance from a filter
  to the layer's other filters; filters near the geometric median (small sums) are redundant.
* ``"random"``: seeded uniform scores, the control every method should beat.
"""

from __future__ import annotations

import numpy as np

#: Names accepted by :func:`importance` and :func:`keras_quaternion.pruning.prune`.
METHODS = ("operator-norm", "operator-norm-unsigned", "l1", "geometric-median", "random")

_EPS = 1e-12
_CHUNK = 256  # input channels per batch (bounds memory on full-size layers)


def check_method(method):
    """Return ``method`` if it is a known scoring method; raise ``ValueError`` otherwise.

    Args:
        method: a scoring method name (one of :data:`METHODS`).

    Returns:
        ``method`` unchanged.

    Raises:
        ValueError: ``method`` is not in :data:`METHODS`.

    Example:
        >>> check_method("l1")
        'l1'
        >>> check_method("l2")
        Traceback (most recent call last):
        ...
        ValueError: ... 'l2'; choose one of operator-norm, operator-norm-unsigned, l1, geometric-median, random.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown pruning method {method!r}; choose one of {', '.join(METHODS)}.")
    return method


def _normalise(score):
    score = np.asarray(score, dtype=np.float64)
    top = np.max(score) if score.size else 0.0
    return score / top if top > 0 else np.zeros_like(score)


def operator_norm_scores(weights, *, signed=True):
    """Operator-norm importance of ``F`` filters given as a real ``(F, C, T)`` array.

    ``weights[f, c, :]`` holds the ``T`` kernel taps that filter ``f`` applies to input channel
    ``c``. For every ``c``, ``A_c = weights[:, c, :]`` is centred by its mean row ``m_c``; with
    ``A_c - 1 m_c = Σ s_k u_k v_kᵀ`` the direction ``d_c`` is the first row of the rank-1 term
    ``u_1 v_1ᵀ`` scaled to unit length (``d_c = sign(u_1[0]) v_1``; the sign ambiguity of the
    SVD cancels). The score is ``(Σ_c <A_c[f] - m_c, d_c>)²`` divided by its maximum over ``f``.

    That sum depends on the order of the filters: ``d_c`` takes the sign of filter 0's
    projection, so reordering the filters can flip some channels' terms. With ``signed=False``
    each channel's projection is squared before the sum, ``Σ_c <A_c[f] - m_c, v_1>²``, which no
    sign or order changes.

    Args:
        weights: array ``(F, C, T)``.
        signed: ``True`` for the released formula, ``False`` for the order-independent one.

    Returns:
        ``(F,)`` float64 scores in ``[0, 1]``.

    Raises:
        ValueError: ``weights`` is not 3-D.

    Example:
        >>> import numpy as np
        >>> w = np.zeros((3, 1, 2)); w[:, 0, 0] = [0.0, 1.0, 3.0]  # spread along one direction
        >>> np.round(operator_norm_scores(w), 3).tolist()
        [0.64, 0.04, 1.0]
        >>> w = np.random.default_rng(0).normal(size=(6, 5, 3)); order = [5, 4, 3, 2, 1, 0]
        >>> bool(np.allclose(operator_norm_scores(w, signed=False)[order],
        ...                  operator_norm_scores(w[order], signed=False)))
        True
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"operator_norm_scores expects (filters, inputs, taps), got {w.shape}.")
    n_filters, n_inputs, _ = w.shape
    centred = w - w.mean(axis=0, keepdims=True)
    projection = np.zeros(n_filters, dtype=np.float64)
    for start in range(0, n_inputs, _CHUNK):
        block = centred[:, start : start + _CHUNK, :]  # (F, c, T)
        # Top right singular vector v1 of each (F, T) matrix = top eigenvector of its (T, T)
        # Gram matrix (much faster than F x T SVDs); s1 = sqrt(top eigenvalue), u1 = A v1 / s1.
        gram = np.einsum("fct,fcs->cts", block, block)
        values, vectors = np.linalg.eigh(gram)
        v1 = vectors[:, :, -1]  # (c, T)
        if not signed:
            projection += (np.einsum("fct,ct->fc", block, v1) ** 2).sum(axis=1)
            continue
        s1 = np.sqrt(np.maximum(values[:, -1], 0.0))
        u1_first = np.einsum("ct,ct->c", block[0], v1) / np.where(s1 > 0, s1, 1.0)
        # First row of the rank-1 term u1 v1^T, scaled to unit length as the released code does
        # (the joint sign ambiguity of u1 and v1 cancels here).
        direction = (u1_first / (np.abs(u1_first) + _EPS))[:, None] * v1
        projection += np.einsum("fct,ct->f", block, direction)
    return _normalise(projection if not signed else projection**2)


def l1_scores(filters):
    """Entry-wise l1 norm of each filter, ``filters`` given as ``(F, D)``; normalised by the max.

    Args:
        filters: array ``(F, D)``, one flattened filter per row.

    Returns:
        ``(F,)`` float64 scores in ``[0, 1]`` (all 0 when every filter is 0).

    Example:
        >>> import numpy as np
        >>> l1_scores(np.array([[1.0, -1.0], [0.5, 0.0]])).tolist()
        [1.0, 0.25]
    """
    return _normalise(np.abs(np.asarray(filters, dtype=np.float64)).sum(axis=1))


def geometric_median_scores(filters):
    """FPGM scores: summed Euclidean distance of each filter ``(F, D)`` to all the others.

    A filter near the geometric median of the layer's filters can be replaced by the others, so
    it gets a small score (He et al., "Filter pruning via geometric median", CVPR 2019).

    Args:
        filters: array ``(F, D)``, one flattened filter per row.

    Returns:
        ``(F,)`` float64 scores in ``[0, 1]`` (divided by the largest sum).

    Example:
        >>> import numpy as np
        >>> pts = np.array([[0.0], [1.0], [2.0], [10.0]])
        >>> int(np.argmin(geometric_median_scores(pts)))  # the point nearest the median
        1
    """
    x = np.asarray(filters, dtype=np.float32)
    n = x.shape[0]
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, x.shape[1], 4096):
        part = x[:, start : start + 4096].astype(np.float64)
        gram += part @ part.T
    sq = np.diag(gram)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))
    np.fill_diagonal(dist, 0.0)
    return _normalise(dist.sum(axis=1))


def random_scores(n_filters, seed=0):
    """Seeded uniform scores in ``[0, 1)`` for ``n_filters`` filters (the chance baseline).

    Args:
        n_filters: number of filters ``F``.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(F,)`` float64 scores.

    Example:
        >>> bool((random_scores(4, seed=1) == random_scores(4, seed=1)).all())
        True
    """
    return np.random.default_rng(seed).random(int(n_filters))


def layer_kernel(layer):
    """Return ``(kernel array, is_quaternion)`` of a prunable Keras layer, or raise.

    Quaternion layers give their components ``(4, *taps, C, F)``, real layers ``(*taps, C, F)``.

    Raises:
        ValueError: the layer is not built, is grouped, or has no prunable kernel.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> layer = QConv2D(5, 3); _ = layer(np.zeros((1, 6, 6, 8), "float32"))
        >>> kernel, is_quaternion = layer_kernel(layer)
        >>> kernel.shape, is_quaternion
        ((4, 3, 3, 2, 5), True)
    """
    import keras

    from keras_quaternion.layers import QConv, QDense

    name = getattr(layer, "name", "?")
    if not getattr(layer, "built", False):
        raise ValueError(f"Layer '{name}' is not built yet: call it on an input first.")
    if isinstance(layer, QConv | QDense):
        return np.asarray(keras.ops.convert_to_numpy(layer.kernel)), True
    conv_types = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    if isinstance(layer, conv_types) and not isinstance(
        layer, keras.layers.Conv1DTranspose | keras.layers.Conv2DTranspose
    ):
        if getattr(layer, "groups", 1) != 1:
            raise ValueError(
                f"Layer '{name}' ({type(layer).__name__}) uses groups={layer.groups}; only "
                "ungrouped convolutions can be scored."
            )
        return np.asarray(keras.ops.convert_to_numpy(layer.kernel)), False
    if isinstance(layer, keras.layers.Dense):
        return np.asarray(keras.ops.convert_to_numpy(layer.kernel)), False
    raise ValueError(
        f"Layer '{name}' has type {type(layer).__name__}; importance scores exist for Conv1D, "
        "Conv2D, Conv3D, Dense, QConv1D, QConv2D and QDense layers."
    )


def importance(layer_or_kernel, method, *, quaternion=None, seed=0):
    """Score the output filters of a layer (or of a raw kernel) with a data-free method.

    Args:
        layer_or_kernel: a built ``Conv1D``/``Conv2D``/``Conv3D``/``Dense``/``QConv1D``/
            ``QConv2D``/``QDense`` layer, or a kernel array: real ``(*taps, C, F)`` or, with
            ``quaternion=True``, the quaternion components ``(4, *taps, C, F)``.
        method: one of :data:`METHODS`.
        quaternion: for a kernel array, whether it holds quaternion components on its first
            axis (default ``False``); for a layer it is read from the layer type and must not
            contradict it.
        seed: seed of the ``"random"`` method (ignored by the others).

    Returns:
        ``(F,)`` float64 scores in ``[0, 1]``, one per (quaternion) output filter; higher means
        more important.

    Raises:
        ValueError: unknown method, an unsupported layer type, or a kernel whose shape does not
            match the ``quaternion`` flag.

    Example:
        >>> import numpy as np
        >>> k = np.ones((3, 3, 2, 4)); k[..., 2] *= 0.1   # filter 2 is small
        >>> int(np.argmin(importance(k, "l1")))
        2
        >>> from keras_quaternion import QConv2D
        >>> layer = QConv2D(5, 3); _ = layer(np.zeros((1, 6, 6, 8), "float32"))
        >>> importance(layer, "operator-norm").shape
        (5,)
    """
    check_method(method)
    if isinstance(layer_or_kernel, np.ndarray | list | tuple):
        kernel = np.asarray(layer_or_kernel)
        is_q = bool(quaternion)
        where = "kernel"
    else:
        kernel, is_q = layer_kernel(layer_or_kernel)
        where = f"layer '{layer_or_kernel.name}'"
        if quaternion is not None and bool(quaternion) != is_q:
            raise ValueError(
                f"quaternion={quaternion!r} contradicts {where} of type "
                f"{type(layer_or_kernel).__name__}."
            )
    min_rank = 3 if is_q else 2
    if kernel.ndim < min_rank or (is_q and kernel.shape[0] != 4):
        expected = "(4, *taps, C, F)" if is_q else "(*taps, C, F)"
        raise ValueError(f"{where}: expected a kernel of shape {expected}, got {kernel.shape}.")
    n_filters = kernel.shape[-1]
    if method == "random":
        return random_scores(n_filters, seed)
    components = kernel if is_q else kernel[None]
    if method.startswith("operator-norm"):
        per_component = []
        for comp in components:
            n_in = comp.shape[-2]
            w = comp.reshape(-1, n_in, n_filters).transpose(2, 1, 0)  # (F, C, T)
            per_component.append(operator_norm_scores(w, signed=method == "operator-norm"))
        return np.mean(per_component, axis=0)
    flat = np.moveaxis(components, -1, 0).reshape(n_filters, -1)  # (F, all other entries)
    if method == "l1":
        return l1_scores(flat)
    return geometric_median_scores(flat)


def order_sensitivity(
    layer_or_kernel, method, ratio=0.5, *, permutations=20, quaternion=None, seed=0
):
    """Fraction of a layer's filters whose keep/prune decision changes when the filters are reordered.

    A score that depends only on each filter (and the set of filters) gives 0. The layer's output
    filters are permuted ``permutations`` times at random; each time the ``round(ratio * F)``
    lowest-scoring filters (ties by index, as :func:`keras_quaternion.pruning.prune` breaks them)
    are compared with those of the original order.

    Args:
        layer_or_kernel: as for :func:`importance`.
        method: one of :data:`METHODS` other than ``"random"``.
        ratio: pruning ratio in ``(0, 1)``.
        permutations: how many random orders to try (>= 1).
        quaternion: as for :func:`importance`.
        seed: seed of the permutations.

    Returns:
        float in ``[0, 1]``: filters moved between kept and pruned, divided by ``F``, averaged.

    Raises:
        ValueError: ``method`` is ``"random"`` or unknown; ``ratio`` or ``permutations`` out of range.

    Example:
        >>> w = np.random.default_rng(0).normal(size=(3, 3, 8, 16))
        >>> order_sensitivity(w, "operator-norm-unsigned")
        0.0
    """
    check_method(method)
    if method == "random":
        raise ValueError("order_sensitivity: method 'random' has no order to test.")
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"order_sensitivity: ratio must be in (0, 1), got {ratio!r}.")
    if int(permutations) < 1:
        raise ValueError(f"order_sensitivity: permutations must be >= 1, got {permutations!r}.")
    if isinstance(layer_or_kernel, np.ndarray | list | tuple):
        kernel, is_q = np.asarray(layer_or_kernel), bool(quaternion)
    else:
        kernel, is_q = layer_kernel(layer_or_kernel)
    n_filters = kernel.shape[-1]
    n_pruned = int(np.floor(float(ratio) * n_filters + 0.5 + 1e-9))
    reference = _lowest(importance(kernel, method, quaternion=is_q), n_pruned)
    rng = np.random.default_rng(seed)
    moved = 0
    for _ in range(int(permutations)):
        order = rng.permutation(n_filters)
        scores = np.empty(n_filters)
        scores[order] = importance(kernel[..., order], method, quaternion=is_q)
        moved += len(reference - _lowest(scores, n_pruned))
    return moved / (int(permutations) * n_filters)


def _lowest(scores, n):
    """Indices of the ``n`` lowest scores, ties broken by index."""
    index = np.arange(len(scores))
    return set(index[np.lexsort((index, scores))][:n].tolist())
