"""Quaternion weight initialisation (Parcollet et al., "Quaternion recurrent neural networks", 2019)."""

from __future__ import annotations

import math

import keras
from keras import ops

CRITERIA = ("glorot", "he")


@keras.saving.register_keras_serializable(package="keras_quaternion")
class QuaternionInitializer(keras.initializers.Initializer):
    """Polar initialisation of quaternion weights.

    Each weight ``w = |w| (cos θ + u sin θ)`` gets

    * a magnitude ``|w|`` drawn from a chi distribution with 4 degrees of freedom scaled by
      ``σ = 1/sqrt(2 (fan_in + fan_out))`` (``criterion="glorot"``) or ``1/sqrt(2 fan_in)``
      (``criterion="he"``), so that ``Var(w)`` follows the chosen criterion for the whole
      quaternion;
    * a random unit pure quaternion axis ``u`` (uniform on the 2-sphere);
    * a phase ``θ`` uniform in ``[-π, π]``.

    Fans count quaternion units times the receptive field.

    Args:
        criterion: ``"glorot"`` or ``"he"``.
        seed: optional int for reproducible draws.

    Shape:
        Called with ``shape = (4, *spatial, C, F)`` it returns the r, i, j, k components stacked
        on the first axis.

    Raises:
        ValueError: unknown criterion, or a shape whose first axis is not 4.

    Example:
        >>> init = QuaternionInitializer("he", seed=0)
        >>> tuple(init((4, 3, 3, 2, 8)).shape)
        (4, 3, 3, 2, 8)
    """

    def __init__(self, criterion="glorot", seed=None):
        if criterion not in CRITERIA:
            raise ValueError(
                f"QuaternionInitializer: criterion must be one of {CRITERIA}, got {criterion!r}."
            )
        self.criterion = criterion
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 3 or shape[0] != 4:
            raise ValueError(
                "QuaternionInitializer expects a shape (4, *spatial, C, F) with the four "
                f"components first, got {shape}."
            )
        receptive = math.prod(shape[1:-2])
        fan_in = shape[-2] * receptive
        fan_out = shape[-1] * receptive
        if self.criterion == "glorot":
            sigma = 1.0 / math.sqrt(2.0 * (fan_in + fan_out))
        else:
            sigma = 1.0 / math.sqrt(2.0 * fan_in)
        w_shape = shape[1:]
        dtype = dtype or "float32"
        gen = self._generator
        # chi(4): the norm of a 4-d standard normal vector
        normals = keras.random.normal((4, *w_shape), seed=gen, dtype=dtype)
        modulus = sigma * ops.sqrt(ops.sum(ops.square(normals), axis=0))
        axis = keras.random.normal((3, *w_shape), seed=gen, dtype=dtype)
        axis = axis / (ops.sqrt(ops.sum(ops.square(axis), axis=0, keepdims=True)) + 1e-12)
        phase = keras.random.uniform(w_shape, -math.pi, math.pi, seed=gen, dtype=dtype)
        real = modulus * ops.cos(phase)
        imag = (modulus * ops.sin(phase))[None] * axis
        return ops.concatenate([real[None], imag], axis=0)

    def get_config(self):
        return {"criterion": self.criterion, "seed": self.seed}


def get_quaternion_initializer(identifier):
    """Resolve ``"quaternion"``, ``"quaternion_glorot"``, ``"quaternion_he"`` or any Keras initializer.

    Args:
        identifier: one of the three quaternion names (case-insensitive), or anything
            ``keras.initializers.get`` accepts (a name, a config dict, an initializer, ``None``).

    Returns:
        A :class:`QuaternionInitializer` (``"glorot"`` criterion for ``"quaternion"`` and
        ``"quaternion_glorot"``, ``"he"`` for ``"quaternion_he"``), else what
        ``keras.initializers.get`` returns.

    Raises:
        ValueError: ``keras.initializers.get`` cannot interpret ``identifier``.

    Example:
        >>> get_quaternion_initializer("Quaternion_He").criterion
        'he'
        >>> type(get_quaternion_initializer("he_normal")).__name__
        'HeNormal'
    """
    if isinstance(identifier, str):
        name = identifier.lower()
        if name in ("quaternion", "quaternion_glorot"):
            return QuaternionInitializer("glorot")
        if name == "quaternion_he":
            return QuaternionInitializer("he")
    return keras.initializers.get(identifier)
