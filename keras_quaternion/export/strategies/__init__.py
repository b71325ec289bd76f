"""Export strategies: how quaternion layers reach the flatbuffer (``quaternion=`` / ``--quaternion``).

* ``expanded`` (:mod:`.expanded`): the real layer each quaternion layer computes; builtin
  operators only.
* ``compact`` (:mod:`.compact`): one int8 custom operator per quaternion layer holding the four
  weight components, a quarter of the expanded kernel, run by the C kernel in
  ``tflite/quaternion/``.

Example:
    >>> get_strategy("compact").name, STRATEGY_NAMES
    ('compact', ('expanded', 'compact'))
"""

from __future__ import annotations

from keras_quaternion.export.strategies.base import Conversion, ExportStrategy
from keras_quaternion.export.strategies.compact import CompactStrategy
from keras_quaternion.export.strategies.expanded import ExpandedStrategy

#: strategy name -> strategy class; a new strategy is one module and one line here
STRATEGIES = {cls.name: cls for cls in (ExpandedStrategy, CompactStrategy)}
#: the accepted values of ``quaternion=``, default first
STRATEGY_NAMES = tuple(STRATEGIES)


def get_strategy(name):
    """The strategy called ``name``.

    Args:
        name: one of :data:`STRATEGY_NAMES`.

    Returns:
        An :class:`ExportStrategy` instance.

    Raises:
        ValueError: an unknown name; the message lists the choices.

    Example:
        >>> get_strategy("sparse")
        Traceback (most recent call last):
        ...
        ValueError: quaternion='sparse' is not an export strategy; choose one of 'expanded', ...
    """
    if name not in STRATEGIES:
        choices = ", ".join(repr(n) for n in STRATEGY_NAMES)
        raise ValueError(f"quaternion={name!r} is not an export strategy; choose one of {choices}.")
    return STRATEGIES[name]()


__all__ = ["STRATEGIES", "STRATEGY_NAMES", "Conversion", "ExportStrategy", "get_strategy"]
