"""The :class:`DependencyGraph`: channel labels of tensors, producers, groups and queries."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_quaternion.pruning.graph.records import NodeRecord


class DependencyGraph:
    """Channel dependencies of a functional model (built by :func:`build_dependency_graph`).

    Attributes:
        model: the model.
        producers: ``{name: Producer}`` in graph order.
        groups: list of :class:`ChannelGroup`.

    ``str(graph)`` (or :meth:`describe`) prints it; :meth:`to_dict` gives plain data.

    Args:
        model: the model (the graph is empty until :func:`build_dependency_graph` fills it).

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
        >>> graph
        <DependencyGraph model='res' producers=3 groups=2>
        >>> list(graph.producers), [len(g.units) for g in graph.groups]
        (['q1', 'q2', 'head'], [2, 3])
        >>> graph.to_dict()["groups"][0]["free_units"]
        2

        Queries: the recorded layers, the pruning unit of every channel of a tensor (looked up
        by ``id``), and which channels survive removing a unit:

        >>> graph.layer_names()[1:], [r.role for r in graph.records("add")]
        (['q1', 'q2', 'add', 'gap', 'head'], ['merge'])
        >>> units = graph.group_of("q2").unit_roots
        >>> graph.channel_units(id(a)).tolist() == units * 4  # [r|i|j|k] blocks of 2 filters
        True
        >>> graph.keep_masks([units[1]])[id(a)].tolist()  # drop filter 1 of q1 (and of q2)
        [True, False, True, False, True, False, True, False]
    """

    def __init__(self, model):
        self.model = model
        self.producers = {}
        self.groups = []
        self._labels = {}  # id(KerasTensor) -> int64 atom labels per channel
        self._records = {}  # layer name -> list of NodeRecord
        self._order = []  # layer names in topological order
        self._roots = None

    # -- construction (used by build_dependency_graph) ------------------------------------
    def channel_labels(self, tensor):
        """Atom label of each channel of ``tensor`` (int64; zeros, unowned, when first seen)."""
        key = id(tensor)
        if key not in self._labels:
            channels = tensor.shape[-1] if len(tensor.shape) else 1
            self._labels[key] = np.zeros(int(channels or 0), dtype=np.int64)
        return self._labels[key]

    def set_channel_labels(self, tensor, labels):
        """Say which atoms the channels of ``tensor`` carry."""
        self._labels[id(tensor)] = labels

    def resolve(self, atoms):
        """Fix every atom's pruning unit (its union-find root); returns the roots."""
        self._roots = atoms.roots()
        return self._roots

    def record(self, layer, role, node):
        """Remember one call (``node``) of ``layer`` and its role, in graph order."""
        if layer.name not in self._records:
            self._records[layer.name] = []
            self._order.append(layer.name)
        self._records[layer.name].append(
            NodeRecord(
                layer,
                role,
                [id(t) for t in node.input_tensors],
                [id(t) for t in node.output_tensors],
            )
        )

    # -- queries --------------------------------------------------------------------------
    def channel_units(self, key):
        """Pruning unit of each channel of the tensor with ``id`` ``key`` (0: not prunable)."""
        return self._roots[self._labels[key]]

    def records(self, name):
        """The recorded calls of layer ``name`` (``[]`` for a layer the graph never saw)."""
        return self._records.get(name, [])

    def layer_names(self):
        """Names of the recorded layers in graph (topological) order."""
        return list(self._order)

    def group_of(self, producer):
        """The :class:`ChannelGroup` of the producer named ``producer``."""
        return self.groups[self.producers[producer].group]

    def keep_masks(self, pruned_units):
        """``{tensor key: bool keep mask}`` once the given atom roots are removed."""
        pruned = np.asarray(sorted(pruned_units), dtype=np.int64)
        masks = {}
        for key, labels in self._labels.items():
            roots = self._roots[labels]
            masks[key] = (labels == 0) | ~np.isin(roots, pruned)
        return masks

    # -- presentation ---------------------------------------------------------------------
    def to_dict(self):
        """Plain-data view: producers (with their channel map) and groups."""
        return {
            "model": self.model.name,
            "producers": [
                {
                    "name": p.name,
                    "class": p.class_name,
                    "kind": p.kind,
                    "filters": p.units,
                    "channels": p.channels,
                    "group": p.group,
                    "channel_map": (
                        f"filter u -> channels u, {p.units}+u, {2 * p.units}+u, {3 * p.units}+u"
                        if p.kind == "quaternion"
                        else "filter u -> channel u"
                    ),
                }
                for p in self.producers.values()
            ],
            "groups": [
                {
                    "index": g.index,
                    "producers": g.producers,
                    "units": len(g.units),
                    "free_units": len(g.free),
                    "joined": g.joined,
                    "fixed_reasons": sorted({m for r in g.fixed.values() for _, m in r}),
                    "uses": [dataclasses.asdict(u) for u in g.uses],
                }
                for g in self.groups
            ],
        }

    def describe(self):
        """Readable multi-line description of every group."""
        lines = [
            f"Dependency graph of '{self.model.name}': {len(self.producers)} producers in "
            f"{len(self.groups)} groups"
        ]
        for g in self.groups:
            status = f"{len(g.free)}/{len(g.units)} units prunable"
            lines.append(
                f"group {g.index}: {status}" + (" (joined by a merge)" if g.joined else "")
            )
            for name in g.producers:
                p = self.producers[name]
                if p.kind == "quaternion":
                    cmap = (
                        f"filter u -> channels [r|i|j|k] = u, {p.units}+u, {2 * p.units}+u, "
                        f"{3 * p.units}+u"
                    )
                else:
                    cmap = "filter u -> channel u"
                lines.append(f"  produced by {name} ({p.class_name}, {p.units} filters; {cmap})")
            for use in g.uses:
                detail = f"; {use.detail}" if use.detail else ""
                lines.append(f"  {use.role:<12} {use.name} ({use.class_name}{detail})")
            for reason in sorted({m for r in g.fixed.values() for _, m in r}):
                lines.append(f"  fixed: {reason}")
        return "\n".join(lines)

    def __str__(self):
        return self.describe()

    def __repr__(self):
        return (
            f"<DependencyGraph model={self.model.name!r} producers={len(self.producers)} "
            f"groups={len(self.groups)}>"
        )
