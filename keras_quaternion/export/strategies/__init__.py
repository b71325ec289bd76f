"""Export strategies: how quaternion layers reach the flatbuffer (``quaternion=`` / ``--quaternion``).

* ``expanded`` (:mod:`.expanded`): the real layer each quaternion layer computes; builtin
  operators only.
* ``compact`` (:mod:`.compact`): one int8 custom operator per quaternion layer holding the four
  weight components, a quarter of the expanded kernel, run by the C kernel in
  ``tflite/quaternion/``.
* ``fast`` (:mod:`.fast`): each quaternion layer as 8 real products (8 convolutions ``C -> F``)
  between additions and subtractions: half the weights and multiply-accumulates of
  ``expanded``, builtin operators only.

Example:
    >>> get_strategy("compact").name, STRATEGY_NAMES
    ('compact', ('expanded', 'compact', 'fast'))
"""

from __future__ import annotations

import importlib

from keras_quaternion.export.strategies.base import Conversion, ExportStrategy

#: strategy name -> "module:class"; a new strategy is one module and one line here. Kept as
#: data so that ``kq-export --help`` lists the names without importing Keras.
STRATEGIES = {
    "expanded": "keras_quaternion.export.strategies.expanded:ExpandedStrategy",
    "compact": "keras_quaternion.export.strategies.compact:CompactStrategy",
    "fast": "keras_quaternion.export.strategies.fast:FastStrategy",
}
#: the accepted values of ``quaternion=``, default first
STRATEGY_NAMES = tuple(STRATEGIES)


def strategy_class(name):
    """The class of strategy ``name`` (imported on first use).

    Example:
        >>> strategy_class("expanded").__name__
        'ExpandedStrategy'
    """
    module, _, cls = STRATEGIES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def __getattr__(name):  # FastStrategy & co. on first use
    for key, path in STRATEGIES.items():
        if path.endswith(f":{name}"):
            return strategy_class(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_strategy(name):
    """The strategy called ``name``.

    Args:
        name: one of :data:`STRATEGY_NAMES`, or an :class:`ExportStrategy` instance (returned
            as is: a strategy with arguments, such as ``FastStrategy(grouped=True)``).

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
    if isinstance(name, ExportStrategy):
        return name
    if name not in STRATEGIES:
        choices = ", ".join(repr(n) for n in STRATEGY_NAMES)
        raise ValueError(f"quaternion={name!r} is not an export strategy; choose one of {choices}.")
    return strategy_class(name)()


__all__ = [
    "STRATEGIES",
    "STRATEGY_NAMES",
    "Conversion",
    "ExportStrategy",
    "FastStrategy",
    "get_strategy",
]
