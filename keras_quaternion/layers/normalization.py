"""Quaternion batch normalisation: per-unit statistics over the four components."""

from __future__ import annotations

import keras
from keras import ops

from keras_quaternion.layers.hamilton import check_quaternion_channels


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QBatchNormalization(keras.layers.Layer):
    """Batch normalisation of quaternion feature maps, one set of statistics per quaternion unit.

    The input's last axis holds ``F`` quaternion units as ``[r | i | j | k]`` blocks.

    * Default (``whiten=False``): each component is centred by its own mean; each unit is scaled
      by one variance, the mean squared norm of its centred quaternion
      ``σ² = E[|x - μ|²]``; then ``y = γ (x - μ)/sqrt(σ² + ε) + β`` with ``γ`` one scalar per
      unit and ``β`` one value per component (``4F``).
    * ``whiten=True`` (Gaudet & Maida, "Deep quaternion networks", 2018): each unit's centred
      4-vector is whitened with its 4x4 covariance ``V``: with the Cholesky factor
      ``V + εI = L Lᵀ`` the whitened value ``z = L⁻¹ (x - μ)`` has identity covariance; then
      ``y = Γ z + β`` with a learnable 4x4 ``Γ`` per unit (initialised to the identity).

    Moving averages of the statistics (``momentum``) are used at inference.

    Args:
        momentum: moving-average momentum, in ``[0, 1)``.
        epsilon: positive regulariser added to the variance / covariance diagonal.
        whiten: full 4x4 whitening instead of the per-unit variance.
        center: learn the offset ``β`` (one per component).
        scale: learn the scale ``γ`` (one per unit), or ``Γ`` (4x4 per unit) with ``whiten``.

    Shape:
        Input ``(batch, ..., 4F)``; output of the same shape.

    Raises:
        ValueError: momentum outside ``[0, 1)``, non-positive epsilon, or an input whose last axis
            is not a multiple of 4.

    Example:
        >>> import numpy as np
        >>> bn = QBatchNormalization()
        >>> y = bn(np.random.randn(8, 5, 5, 12).astype("float32"), training=True)
        >>> tuple(y.shape), bn.count_params()
        ((8, 5, 5, 12), 30)
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-3,
        whiten=False,
        center=True,
        scale=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"QBatchNormalization: momentum must be in [0, 1), got {momentum!r}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"QBatchNormalization: epsilon must be > 0, got {epsilon!r}.")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.whiten = bool(whiten)
        self.center = bool(center)
        self.scale = bool(scale)
        self.supports_masking = True

    def build(self, input_shape):
        units = check_quaternion_channels(self.name, input_shape)
        self.units = units
        eye = ops.tile(ops.eye(4)[None], (units, 1, 1))

        def identity_init(shape, dtype=None):
            return ops.cast(eye, dtype or "float32")

        if self.scale:
            if self.whiten:
                self.gamma = self.add_weight(
                    name="gamma", shape=(units, 4, 4), initializer=identity_init
                )
            else:
                self.gamma = self.add_weight(name="gamma", shape=(units,), initializer="ones")
        else:
            self.gamma = None
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(4 * units,), initializer="zeros")
        else:
            self.beta = None
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(4 * units,), initializer="zeros", trainable=False
        )
        if self.whiten:
            self.moving_covariance = self.add_weight(
                name="moving_covariance",
                shape=(units, 4, 4),
                initializer=identity_init,
                trainable=False,
            )
        else:
            self.moving_variance = self.add_weight(
                name="moving_variance", shape=(units,), initializer="ones", trainable=False
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: 4 * units})
        self.built = True

    def _split(self, x):
        """(..., 4F) -> (..., 4, F)."""
        return ops.reshape(x, (*ops.shape(x)[:-1], 4, self.units))

    def _merge(self, x):
        return ops.reshape(x, (*ops.shape(x)[:-2], 4 * self.units))

    def _update(self, variable, value):
        m = ops.cast(self.momentum, variable.dtype)
        variable.assign(variable * m + ops.cast(value, variable.dtype) * (1.0 - m))

    def call(self, inputs, training=False):
        dtype = inputs.dtype
        x = ops.cast(inputs, "float32")
        reduce_axes = tuple(range(len(x.shape) - 1))
        if training:
            mean = ops.mean(x, axis=reduce_axes)
            self._update(self.moving_mean, mean)
        else:
            mean = self.moving_mean
        centred = self._split(x - mean)  # (..., 4, F)
        if self.whiten:
            out = self._whiten(centred, training, reduce_axes)
        else:
            if training:
                var = ops.mean(ops.sum(ops.square(centred), axis=-2), axis=reduce_axes)
                self._update(self.moving_variance, var)
            else:
                var = self.moving_variance
            out = centred * ops.rsqrt(var + self.epsilon)
            if self.scale:
                out = out * self.gamma
        out = self._merge(out)
        if self.center:
            out = out + self.beta
        return ops.cast(out, dtype)

    def _whiten(self, centred, training, reduce_axes):
        # centred: (..., 4, F) -> flatten the batch axes -> (N, 4, F)
        flat = ops.reshape(centred, (-1, 4, self.units))
        if training:
            n = ops.cast(ops.shape(flat)[0], "float32")
            per_unit = ops.transpose(flat, (2, 1, 0))  # (F, 4, N)
            cov = ops.matmul(per_unit, ops.transpose(per_unit, (0, 2, 1))) / n  # (F, 4, 4)
            self._update(self.moving_covariance, cov)
        else:
            cov = self.moving_covariance
        cov = cov + self.epsilon * ops.eye(4)[None]
        chol = ops.cholesky(cov)  # (F, 4, 4) lower
        inv_l = ops.solve_triangular(
            chol, ops.tile(ops.eye(4)[None], (self.units, 1, 1)), lower=True
        )
        matrix = ops.matmul(self.gamma, inv_l) if self.scale else inv_l  # (F, 4, 4)
        # out[..., a, f] = sum_b matrix[f, a, b] * centred[..., b, f]
        return ops.einsum("fab,...bf->...af", matrix, centred)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "whiten": self.whiten,
                "center": self.center,
                "scale": self.scale,
            }
        )
        return config
