"""The graph's public records: producers, the layers that use their channels, channel groups."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Producer:
    """A layer whose output filters are pruning candidates.

    Attributes:
        name, class_name: the layer.
        kind: ``"quaternion"`` (a filter owns channels ``u, F+u, 2F+u, 3F+u``) or ``"real"``.
        units: number of output filters ``F`` (quaternion filters for quaternion layers).
        channels: real output channels (``4F`` or ``F``).
        group: index into :attr:`DependencyGraph.groups`.
        unit_atoms: ``(F,)`` the pruning unit (atom root) of each filter.

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning.graph import build_dependency_graph
        >>> x = keras.Input((8, 8, 4))
        >>> a = QConv2D(2, 3, padding="same", name="q1")(x)
        >>> b = QConv2D(2, 3, padding="same", name="q2")(a)
        >>> y = keras.layers.Add(name="add")([a, b])
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
        >>> model = keras.Model(x, keras.layers.Dense(3, name="head")(y), name="res")
        >>> graph = build_dependency_graph(model)
        >>> q1 = graph.producers["q1"]
        >>> q1.kind, q1.units, q1.channels, q1.group
        ('quaternion', 2, 8, 0)
        >>> q1.channels_of(1), graph.producers["head"].channels_of(1)  # [r|i|j|k] blocks of 2
        ([1, 3, 5, 7], [1])
    """

    name: str
    class_name: str
    kind: str
    units: int
    channels: int
    group: int = -1
    unit_atoms: np.ndarray = dataclasses.field(default=None, repr=False)

    def channels_of(self, unit):
        """Real output channels owned by filter ``unit``."""
        if self.kind == "quaternion":
            return [b * self.units + unit for b in range(4)]
        return [unit]


@dataclasses.dataclass
class LayerUse:
    """How a non-producing layer touches pruned channels.

    ``role`` is ``"consumer"`` (its weights have an input slice: the next convolution or dense
    head), ``"per-channel"`` (channel-preserving with per-channel parameters, e.g. batch norm),
    ``"pass-through"`` (channel-preserving, no parameters), ``"merge"`` (element-wise join
    that ties channels), ``"concatenate"``, ``"reshape"`` (channels repeated by a flatten) or
    ``"blocks"`` (a layer the graph does not understand; the channels reaching it are fixed).

    Attributes:
        name: the layer's name.
        class_name: its class name.
        role: one of the roles above.
        detail: extra text, e.g. the input channel map of a consumer, or ``"quaternion units"``
            for a per-channel layer that keeps each unit's four components together.

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning.graph import build_dependency_graph
        >>> x = keras.Input((8, 8, 4))
        >>> a = QConv2D(2, 3, padding="same", name="q1")(x)
        >>> b = QConv2D(2, 3, padding="same", name="q2")(a)
        >>> y = keras.layers.Add(name="add")([a, b])
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
        >>> model = keras.Model(x, keras.layers.Dense(3, name="head")(y), name="res")
        >>> graph = build_dependency_graph(model)
        >>> [(use.name, use.role) for use in graph.groups[0].uses]
        [('q2', 'consumer'), ('add', 'merge'), ('gap', 'pass-through'), ('head', 'consumer')]
        >>> graph.groups[0].uses[-1].detail
        'input channels'
    """

    name: str
    class_name: str
    role: str
    detail: str = ""


@dataclasses.dataclass
class ChannelGroup:
    """Producers that must be pruned together, and every layer their channels reach.

    Attributes:
        index: position in :attr:`DependencyGraph.groups`.
        producers: names of the producing layers (more than one when joined by a merge).
        units: list of pruning units; each is a list of ``(producer, filter)`` pairs that are kept
            or removed together.
        free: indices into ``units`` of the units that may be pruned.
        fixed: ``{unit index: [reason, ...]}`` for the others.
        uses: the other layers the group's channels flow through (:class:`LayerUse`).
        joined: True when units tie filters of several producers (a residual merge).
        unit_roots: the pruning-unit id of each unit (what :meth:`DependencyGraph.keep_masks`
            and :func:`~keras_quaternion.pruning.rebuild.pruned_model` take), in ``units`` order.

    Example:
        The residual ``Add`` ties filter ``u`` of ``q1`` to filter ``u`` of ``q2``:

        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning.graph import build_dependency_graph
        >>> x = keras.Input((8, 8, 4))
        >>> a = QConv2D(2, 3, padding="same", name="q1")(x)
        >>> b = QConv2D(2, 3, padding="same", name="q2")(a)
        >>> y = keras.layers.Add(name="add")([a, b])
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
        >>> model = keras.Model(x, keras.layers.Dense(3, name="head")(y), name="res")
        >>> graph = build_dependency_graph(model)
        >>> group = graph.groups[0]
        >>> group.producers, group.joined, group.free
        (['q1', 'q2'], True, [0, 1])
        >>> group.units
        [[('q1', 0), ('q2', 0)], [('q1', 1), ('q2', 1)]]
        >>> graph.groups[1].fixed[0]  # the output layer is never pruned
        [('output', "reaches the model output 'head'")]
    """

    index: int
    producers: list
    units: list
    free: list
    fixed: dict
    uses: list
    joined: bool
    unit_roots: list = dataclasses.field(default_factory=list, repr=False)


@dataclasses.dataclass
class NodeRecord:
    layer: object
    role: str
    in_keys: list
    out_keys: list
