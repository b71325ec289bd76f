"""Inference graph for export: quaternion layers as plain real layers, batch norm folded.

A trained QCNN computes every quaternion convolution as one real convolution whose kernel is
assembled from ``(4, kh, kw, C, F)`` components by concatenation and negation
(:func:`keras_quaternion.layers.assemble_hamilton_kernel`), and normalises with
:class:`~keras_quaternion.layers.QBatchNormalization`, which reshapes to ``(..., 4, F)``. Fed
as is to the TFLite converter, the kernel assembly is constant-folded but the batch norm is not:
it stays as RESHAPE / MUL / ADD operators around every convolution. :func:`deploy_model`
rewrites the model before conversion so that the exported graph is the one a real CNN of the same
real widths would give:

* ``QConv1D``/``QConv2D``/``QDense`` become ``Conv1D``/``Conv2D``/``Dense`` holding the assembled
  real kernel (same layer names, so operators still map back to layers).
* A batch norm (``QBatchNormalization``, whitened or not, or Keras ``BatchNormalization`` on the
  last axis) whose only input is the linear output of such a layer is folded into that layer's
  kernel and bias and replaced by :class:`FoldedAway` (an identity).
* Any other ``QBatchNormalization`` becomes the equivalent per-channel Keras
  ``BatchNormalization`` (or, when whitened, a 1x1 convolution / dense mixing of each unit's four
  components).
* Every other layer is cloned from its config with its weights (or, when it cannot be rebuilt
  from its config, such as a ``Lambda`` layer, reused as is).

The rewritten model computes the same function up to float rounding; :func:`to_tflite` checks
that on the calibration data.
"""

from __future__ import annotations

import keras
import numpy as np
from keras.src.models.functional import Functional

from keras_quaternion.layers import QBatchNormalization, QConv, QDense

_REAL_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)


class FoldedAway(keras.layers.Layer):
    """Stands in for a batch norm folded into the layer before it; passes its input through.

    Accepts the ``mask``/``training`` arguments a batch norm call may have been recorded with.

    Shape:
        Any input; the output is the input, unchanged.

    Example:
        >>> layer = FoldedAway(name="bn1")
        >>> x = np.arange(8, dtype="float32").reshape(1, 8)
        >>> bool(np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x))
        True
        >>> layer.compute_output_shape((None, 8)), layer.count_params()
        ((None, 8), 0)
    """

    def call(self, inputs, mask=None, training=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _is_linear(activation):
    return activation is None or activation is keras.activations.linear


def _is_foldable_source(layer):
    if isinstance(layer, (QConv, QDense)):
        return _is_linear(layer.activation) and getattr(layer, "rank", None) in (1, 2, None)
    if type(layer) in _REAL_CONV:
        return _is_linear(layer.activation) and getattr(layer, "groups", 1) == 1
    return False


def _bn_rank(layer):
    return len(layer._inbound_nodes[0].input_tensors[0].shape)


def _is_batch_norm(layer):
    if isinstance(layer, QBatchNormalization):
        return True
    if type(layer) is keras.layers.BatchNormalization:
        rank = _bn_rank(layer)
        axis = layer.axis if layer.axis >= 0 else rank + layer.axis
        return axis == rank - 1
    return False


def batch_norm_affine(layer):
    """The per-position affine map ``y = A x + c`` of a batch norm layer in inference mode.

    Args:
        layer: a built :class:`~keras_quaternion.layers.QBatchNormalization` (whitened or not) or
            a Keras ``BatchNormalization`` normalising the last axis.

    Returns:
        ``(A, c)``: float64 arrays of shapes ``(N, N)`` and ``(N,)`` with ``N`` the number of real
        channels. ``A`` is diagonal except for a whitened quaternion batch norm, where it mixes the
        four components of each unit (``A[a*F+f, b*F+f]``).

    Raises:
        TypeError: ``layer`` is not a batch norm layer.

    Example:
        >>> import numpy as np
        >>> bn = QBatchNormalization(); _ = bn(np.zeros((1, 8), "float32"))
        >>> a, c = batch_norm_affine(bn); a.shape, c.shape
        ((8, 8), (8,))
    """
    if isinstance(layer, QBatchNormalization):
        units = layer.units
        n = 4 * units
        mean = _np(layer.moving_mean)
        beta = _np(layer.beta) if layer.center else np.zeros(n)
        if layer.whiten:
            cov = _np(layer.moving_covariance) + layer.epsilon * np.eye(4)[None]
            chol = np.linalg.cholesky(cov)
            inv_l = np.linalg.inv(chol)
            matrix = np.matmul(_np(layer.gamma), inv_l) if layer.scale else inv_l  # (F, 4, 4)
            a = np.zeros((n, n))
            f = np.arange(units)
            for i in range(4):
                for j in range(4):
                    a[i * units + f, j * units + f] = matrix[:, i, j]
        else:
            gamma = _np(layer.gamma) if layer.scale else np.ones(units)
            scale = gamma / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
            a = np.diag(np.tile(scale, 4))
        return a, beta - a @ mean
    if isinstance(layer, keras.layers.BatchNormalization):
        mean = _np(layer.moving_mean)
        n = mean.shape[0]
        gamma = _np(layer.gamma) if layer.scale else np.ones(n)
        beta = _np(layer.beta) if layer.center else np.zeros(n)
        scale = gamma / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
        return np.diag(scale), beta - scale * mean
    raise TypeError(
        f"batch_norm_affine: layer '{getattr(layer, 'name', layer)}' is a "
        f"{type(layer).__name__}, expected QBatchNormalization or keras BatchNormalization."
    )


def _source_kernel_bias(layer):
    """Real kernel ``(..., in, out)`` and bias of a conv/dense layer (quaternion or real)."""
    if isinstance(layer, (QConv, QDense)):
        kernel = _np(layer.real_kernel())
        bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
    else:
        kernel = _np(layer.kernel)
        bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
    return kernel, bias


def _real_layer_like(layer, out_channels):
    """An unbuilt real Conv1D/Conv2D/Dense doing what ``layer`` does, with a bias."""
    if isinstance(layer, QDense) or isinstance(layer, keras.layers.Dense):
        return keras.layers.Dense(
            out_channels, activation=layer.activation, use_bias=True, name=layer.name
        )
    rank = layer.rank
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[rank]
    return cls(
        out_channels,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        activation=layer.activation,
        use_bias=True,
        name=layer.name,
    )


def _mixing_layer(bn, rank, a, c):
    """A standalone whitened QBN as a 1x1 conv (rank 3/4 inputs) or dense (other ranks)."""
    n = a.shape[0]
    if rank == 4:
        layer = keras.layers.Conv2D(n, 1, use_bias=True, name=bn.name)
        kernel = a.T[None, None]
    elif rank == 3:
        layer = keras.layers.Conv1D(n, 1, use_bias=True, name=bn.name)
        kernel = a.T[None]
    else:
        layer = keras.layers.Dense(n, use_bias=True, name=bn.name)
        kernel = a.T
    return layer, [kernel, c]


def _standalone_qbn(layer):
    """``(new layer, weights)`` for a QBatchNormalization that no layer before it absorbs."""
    if layer.whiten:
        a, c = batch_norm_affine(layer)
        return _mixing_layer(layer, _bn_rank(layer), a, c)
    new = keras.layers.BatchNormalization(
        axis=-1, epsilon=layer.epsilon, center=layer.center, scale=layer.scale, name=layer.name
    )
    weights = []
    if layer.scale:
        weights.append(np.tile(_np(layer.gamma), 4))
    if layer.center:
        weights.append(_np(layer.beta))
    weights += [_np(layer.moving_mean), np.tile(_np(layer.moving_variance), 4)]
    return new, weights


def _consumers(model):
    """Map id(KerasTensor) -> number of layer calls in ``model`` that read it."""
    counts = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    for tensor in model.outputs:
        counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    return counts


def fold_plan(model):
    """Which batch norms of a functional ``model`` fold into the layer before them.

    Args:
        model: a built functional or Sequential Keras model.

    Returns:
        ``{bn_layer_name: source_layer_name}`` for every batch norm whose only input is the
        output of a single-use, linear ``QConv*``/``QDense``/``Conv1D``/``Conv2D``/``Dense``
        that nothing else reads.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((8, 8, 4))
        >>> y = QBatchNormalization(name="bn")(QConv2D(2, 3, name="c")(x))
        >>> fold_plan(keras.Model(x, y))
        {'bn': 'c'}
    """
    consumers = _consumers(model)
    plan = {}
    for layer in model.layers:
        if not _is_batch_norm(layer) or len(layer._inbound_nodes) != 1:
            continue
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            continue
        history = inputs[0]._keras_history
        source = history.operation
        if (
            isinstance(source, keras.layers.Layer)
            and source in model.layers
            and _is_foldable_source(source)
            and len(source._inbound_nodes) == 1
            and consumers.get(id(inputs[0]), 0) == 1
        ):
            plan[layer.name] = source.name
    return plan


def _as_functional(model):
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"Model '{model.name}': a Sequential model must be built with a known input "
                f"shape before export (start it with keras.Input(shape) or call it once)."
            )
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def _fixed_shape(shape, override, model_name):
    shape = tuple(shape)[1:]
    if override is None:
        return shape
    override = tuple(int(d) for d in override)
    if len(override) != len(shape) or any(
        d is not None and d != o for d, o in zip(shape, override)
    ):
        raise ValueError(
            f"deploy_model: input_shape {override} does not fit model '{model_name}' input "
            f"{shape} (only unknown (None) dimensions can be fixed)."
        )
    return override


def deploy_model(model, *, batch_size=None, input_shape=None, replace=None):
    """Return an inference-only copy of ``model`` with quaternion layers made real and BN folded.

    Args:
        model: a built functional or Sequential Keras model (nested functional models are
            rewritten recursively).
        batch_size: fix the batch dimension of the copy's inputs (``1`` for export: every shape
            becomes static, so ``Flatten``/``Reshape`` convert to one RESHAPE with a constant
            shape instead of SHAPE/STRIDED_SLICE/PACK arithmetic). ``None`` keeps it free.
        input_shape: fix the input's unknown dimensions (shape without the batch axis), e.g.
            ``(frames, mels, 4)`` for a registry model built with ``frames=None``.
        replace: how an export strategy deploys quaternion layers: called as
            ``replace(layer, bn)`` for every ``QConv1D``/``QConv2D``/``QDense`` (``bn``: the batch
            norm folded into it, or ``None``), it returns ``(new_layer, weights)`` (an unbuilt
            layer with the same name and the values of its weights) or ``None`` for the
            default (the real layer holding the assembled kernel, batch norm folded).

    Returns:
        A new functional ``keras.Model`` with the same inputs, outputs and layer names that
        computes the same function in inference mode (up to float rounding), and whose TFLite
        conversion contains no Hamilton-kernel assembly and no separate batch norm after a
        convolution. The input ``model`` is not modified.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``model`` is a subclassed model (not functional/Sequential), an unbuilt
            Sequential model, or ``input_shape`` does not fit the model's input.

    Example:
        >>> import numpy as np
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((8, 8, 4))
        >>> m = keras.Model(x, QBatchNormalization()(QConv2D(2, 3)(x)))
        >>> d = deploy_model(m)
        >>> [type(layer).__name__ for layer in d.layers]
        ['InputLayer', 'Conv2D', 'FoldedAway']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"deploy_model: expected a keras.Model, got {type(model).__name__}.")
    functional = _as_functional(model)
    if not isinstance(functional, Functional):
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model; export needs a "
            f"functional or Sequential model so its layers can be rewritten for deployment."
        )

    cloner = _DeployCloner(functional, replace)
    input_tensors = _fixed_inputs(functional, model.name, batch_size, input_shape)
    cloned = keras.models.clone_model(
        functional, input_tensors=input_tensors, clone_function=cloner.clone
    )
    _set_pending_weights(cloned, cloner.pending)
    return cloned


class _DeployCloner:
    """``clone_function`` of :func:`deploy_model`: each layer's inference-only replacement.

    ``pending`` collects the weights of every new layer (by name), set once the clone is built.
    """

    def __init__(self, functional, replace):
        self.plan = fold_plan(functional)  # batch norm name -> the layer it folds into
        self.folded_into = {source: bn for bn, source in self.plan.items()}
        self.by_name = {layer.name: layer for layer in functional.layers}
        self.replace = replace
        self.pending = {}

    def clone(self, layer):
        """The layer that replaces ``layer`` in the deployed model."""
        name = layer.name
        if isinstance(layer, keras.Model):
            return deploy_model(layer, replace=self.replace)  # called on the outer tensors
        if self.replace is not None and isinstance(layer, (QConv, QDense)):
            made = self.replace(layer, self.by_name.get(self.folded_into.get(name)))
            if made is not None:
                new, self.pending[name] = made
                return new
        if name in self.folded_into:
            return self._folded(layer)
        if name in self.plan:
            return FoldedAway(name=name)
        if isinstance(layer, (QConv, QDense)):
            kernel, bias = _source_kernel_bias(layer)
            self.pending[name] = [kernel, bias]
            return _real_layer_like(layer, kernel.shape[-1])
        if isinstance(layer, QBatchNormalization):
            new, self.pending[name] = _standalone_qbn(layer)
            return new
        return self._copy(layer)

    def _folded(self, layer):
        """A real layer whose kernel and bias take in the batch norm that follows ``layer``."""
        kernel, bias = _source_kernel_bias(layer)
        a, c = batch_norm_affine(self.by_name[self.folded_into[layer.name]])
        self.pending[layer.name] = [kernel @ a.T, a @ bias + c]
        return _real_layer_like(layer, kernel.shape[-1])

    def _copy(self, layer):
        """A fresh copy of any other layer (the layer itself when it cannot be re-created)."""
        try:
            new = layer.__class__.from_config(layer.get_config())
        except Exception:  # e.g. a Lambda layer or an unregistered custom layer
            return layer  # reused as is: it holds no quaternion weights to rewrite
        self.pending[layer.name] = layer.get_weights()
        return new


def _fixed_inputs(functional, name, batch_size, input_shape):
    """New input tensors with the batch size and unknown dimensions fixed, or ``None``."""
    if input_shape is not None and len(functional.inputs) != 1:
        raise ValueError(
            f"deploy_model: input_shape applies to single-input models; model '{name}' "
            f"has {len(functional.inputs)} inputs."
        )
    if batch_size is None and input_shape is None:
        return None
    tensors = [
        keras.Input(
            batch_shape=(batch_size, *_fixed_shape(t.shape, input_shape, name)),
            dtype=t.dtype,
            name=t._keras_history.operation.name,
        )
        for t in functional.inputs
    ]
    return keras.tree.pack_sequence_as(functional.input, tensors)


def _set_pending_weights(cloned, pending):
    """Assign the values computed during the rewrite to the new layers, once they are built."""
    for layer in cloned.layers:
        weights = pending.get(layer.name)
        if not weights:
            continue
        targets = layer.weights
        if len(targets) != len(weights):
            raise ValueError(
                f"deploy_model: layer '{layer.name}' has {len(targets)} weights after the "
                f"rewrite but {len(weights)} values were computed for it."
            )
        for variable, value in zip(targets, weights):
            variable.assign(np.asarray(value, dtype=variable.dtype).reshape(variable.shape))
