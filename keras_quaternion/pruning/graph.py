"""The channel dependency graph of a functional Keras model, read from its layer graph.

Pruning one output filter of a layer removes channels from the layer's output tensor, and every
layer that reads those channels must shrink with it: batch normalisations and other per-channel
layers on the way, the next convolution's (or the dense head's) input slice, and, where tensors
are summed by a residual ``Add``, the filters of every layer feeding the sum at the same
position. :func:`build_dependency_graph` works this out exactly, channel by channel.

How it works: every output filter of a *producer* (``Conv1D/2D/3D``, ``Dense``, ``QConv1D/2D``,
``QDense``) is an *atom*. A quaternion producer's filter ``u`` of ``F`` owns the four real
channels ``u, F+u, 2F+u, 3F+u`` (the ``[r|i|j|k]`` blocks); a real filter owns one channel.
Walking the graph in topological order, every tensor carries the atom of each of its channels:

* channel-preserving layers (activations, pooling, dropout, batch norms, ``Permute`` of
  non-channel axes, reductions over non-channel axes, ...) pass the labels through;
  ``Flatten``/``Reshape`` that keep channels innermost repeat them;
* ``Concatenate`` on the channel axis concatenates them (each branch keeps its own filters);
* element-wise merges (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ...) tie
  the atoms at equal positions together, so that those filters are kept or removed together;
* a quaternion layer reading ``4C`` channels ties the four channels ``c, C+c, 2C+c, 3C+c`` of
  each input unit (it can only drop whole input quaternions).

Atoms tied together form one pruning unit, scored by the mean of their filters' scores; producers
connected through shared units form one group, pruned at one ratio. Units that reach a model
output, are summed with channels no producer owns (e.g. the model input), or pass through a layer
the graph does not understand are *fixed* (never pruned), with the reason recorded.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_quaternion.layers import QBatchNormalization, QConv, QDense

# ---------------------------------------------------------------------------------------------
# Layer classification

_PRESERVING_LAYERS = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
    keras.layers.RepeatVector,
)
_POOLING_LAYERS = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.AdaptiveAveragePooling1D,
    keras.layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling3D,
    keras.layers.AdaptiveMaxPooling1D,
    keras.layers.AdaptiveMaxPooling2D,
    keras.layers.AdaptiveMaxPooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)
_MERGE_LAYERS = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)
#: keras.ops operations (functional-API calls such as ``keras.ops.mean``) understood by name.
_OPS_UNARY = {
    "Abs", "Absolute", "Negative", "Square", "Sqrt", "Exp", "Expm1", "Log", "Log1p", "Tanh",
    "Sign", "Clip", "Cast", "Round", "Floor", "Ceil", "Reciprocal", "Copy", "Fabs", "Relu",
    "Relu6", "Sigmoid", "Softplus", "Softsign", "Silu", "Gelu", "Elu", "Selu", "Celu",
    "LeakyRelu", "HardSigmoid", "HardSilu", "HardTanh", "LogSigmoid", "Squareplus", "Threshold",
    "StopGradient",
}  # fmt: skip
_OPS_BINARY = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Fmax", "Fmin",
}  # fmt: skip
_OPS_REDUCE = {"Mean", "Max", "Min", "Sum", "Prod", "Amax", "Amin", "Std", "Var", "Median"}
_OPS_RESHAPE = {"Reshape", "ExpandDims", "Squeeze", "Ravel"}

PRODUCER_TYPES = "Conv1D, Conv2D, Conv3D, Dense, QConv1D, QConv2D, QDense"

_REGISTERED_PRESERVING = []


def register_channel_preserving(layer_class):
    """Declare a custom layer class channel-preserving, so that pruning can pass through it.

    A channel-preserving layer computes each output channel from the same input channel only,
    keeps the channel axis last with the same size, and has no per-channel weights (e.g. a
    custom pooling or activation layer). Usable as a class decorator.

    Args:
        layer_class: a ``keras.layers.Layer`` subclass.

    Returns:
        ``layer_class``.

    Raises:
        TypeError: not a Layer subclass.

    Example:
        >>> import keras
        >>> @register_channel_preserving
        ... class Halve(keras.layers.Layer):
        ...     def call(self, x):
        ...         return x * 0.5
        >>> Halve in _REGISTERED_PRESERVING
        True
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"Expected a keras Layer subclass, got {layer_class!r}.")
    if layer_class not in _REGISTERED_PRESERVING:
        _REGISTERED_PRESERVING.append(layer_class)
    return layer_class


def _is_real_conv(layer):
    conv_types = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
    return isinstance(layer, conv_types) and not isinstance(layer, transposed)


def producer_kind(layer):
    """``"quaternion"`` or ``"real"`` for a layer whose output filters can be pruned, else None.

    Producers are ``QConv1D``/``QConv2D``/``QDense`` (``"quaternion"``), ``Dense`` and
    ungrouped, channels-last, non-transposed ``Conv1D``/``Conv2D``/``Conv3D`` (``"real"``).

    Args:
        layer: a Keras layer.

    Returns:
        ``"quaternion"``, ``"real"`` or ``None``.

    Example:
        >>> from keras_quaternion import QDense
        >>> producer_kind(QDense(2)), producer_kind(keras.layers.Conv2D(4, 3))
        ('quaternion', 'real')
        >>> producer_kind(keras.layers.Conv2D(4, 3, groups=2)), producer_kind(keras.layers.ReLU())
        (None, None)
    """
    if isinstance(layer, QConv | QDense):
        return "quaternion"
    if _is_real_conv(layer):
        if getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last":
            return "real"
        return None
    if isinstance(layer, keras.layers.Dense):
        return "real"
    return None


def is_conv(layer):
    """True for the convolution producers (the layers ``layers="all"`` prunes).

    True for any ``QConv`` and any non-transposed real ``Conv1D``/``Conv2D``/``Conv3D``;
    :func:`~keras_quaternion.pruning.prune` applies it to the graph's producers only (see
    :func:`producer_kind`), so dense layers are left out of ``layers="all"``.

    Args:
        layer: a Keras layer.

    Returns:
        ``bool``.

    Example:
        >>> from keras_quaternion import QConv2D
        >>> is_conv(QConv2D(1, 3)), is_conv(keras.layers.Conv1D(2, 3))
        (True, True)
        >>> is_conv(keras.layers.Dense(2))
        False
    """
    return isinstance(layer, QConv) or _is_real_conv(layer)


def _units_of(layer):
    return int(layer.filters if hasattr(layer, "filters") else layer.units)


# ---------------------------------------------------------------------------------------------
# Union-find over atoms, with reasons for fixed atoms


class _Atoms:
    def __init__(self):
        self.parent = [0]  # atom 0: "not owned by any producer"; never a pruning unit
        self.owner = [None]  # (producer name, unit index)
        self.fixed = {}  # root -> list of (kind, message)

    def new(self, producer, units):
        start = len(self.parent)
        for u in range(units):
            self.parent.append(start + u)
            self.owner.append((producer, u))
        return np.arange(start, start + units, dtype=np.int64)

    def find(self, a):
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if rb in self.fixed:
            self.fixed.setdefault(ra, []).extend(self.fixed.pop(rb))

    def fix(self, atom, kind, message):
        root = self.find(int(atom))
        if root == 0:
            return
        reasons = self.fixed.setdefault(root, [])
        if (kind, message) not in reasons:
            reasons.append((kind, message))

    def fix_all(self, labels, kind, message):
        for a in np.unique(labels):
            if a:
                self.fix(a, kind, message)

    def tie(self, a, b, where):
        """Tie two label arrays position by position (same length)."""
        diff = np.nonzero(a != b)[0]
        for i in diff:
            x, y = int(a[i]), int(b[i])
            if x == 0 or y == 0:
                self.fix(
                    x or y,
                    "unowned",
                    f"combined at '{where}' with channels that no prunable layer produces",
                )
            else:
                self.union(x, y)

    def roots(self):
        return np.array([self.find(a) for a in range(len(self.parent))], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Public data


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
        >>> from keras_quaternion import QConv2D
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
        >>> from keras_quaternion import QConv2D
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

        >>> from keras_quaternion import QConv2D
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
class _NodeRecord:
    layer: object
    role: str
    in_keys: list
    out_keys: list


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
        >>> from keras_quaternion import QConv2D
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
        self._records = {}  # layer name -> list of _NodeRecord
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
            _NodeRecord(
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


# ---------------------------------------------------------------------------------------------
# Building


def _graph_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model, got {type(model).__name__}.")
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"Sequential model '{model.name}' has no defined input; build it with an Input "
                "layer (keras.Input(shape)) before pruning."
            )
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is not a functional or Sequential "
            "model; pruning reads the functional layer graph. Rebuild it with the functional API."
        )
    return model


def _channel_axis_ok(layer):
    fmt = getattr(layer, "data_format", "channels_last")
    return fmt in (None, "channels_last")


def _axes(axis, rank):
    if axis is None:
        return tuple(range(rank))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % rank for a in axis)


def build_dependency_graph(model):
    """Read which layers' output channels feed which layers' inputs, channel by channel.

    Args:
        model: a built functional (or Sequential) ``keras.Model``.

    Returns:
        A :class:`DependencyGraph`: ``graph.producers`` (every layer whose filters could be
        pruned, with its ``[r|i|j|k]`` channel map), ``graph.groups`` (producers pruned together,
        the layers their channels pass through, their consumers, and why some units are fixed).
        ``print(graph)`` shows it.

    Raises:
        TypeError: not a Keras model.
        ValueError: a subclassed model without a functional graph.

    Layers the graph does not understand do not raise here: the channels reaching them are
    marked fixed with the layer's name and type, and :func:`keras_quaternion.pruning.prune`
    raises when asked to prune such a layer.

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((8, 8, 4))
        >>> y = QConv2D(4, 3, name="q1")(x)
        >>> y = keras.layers.BatchNormalization(name="bn")(y)
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
        >>> out = keras.layers.Dense(3, name="head")(y)
        >>> graph = build_dependency_graph(keras.Model(x, out, name="tiny"))
        >>> print(graph)  # doctest: +NORMALIZE_WHITESPACE
        Dependency graph of 'tiny': 2 producers in 2 groups
        group 0: 4/4 units prunable
          produced by q1 (QConv2D, 4 filters; filter u -> channels [r|i|j|k] = u, 4+u, 8+u, 12+u)
          per-channel  bn (BatchNormalization)
          pass-through gap (GlobalAveragePooling2D)
          consumer     head (Dense; input channels)
        group 1: 0/3 units prunable
          produced by head (Dense, 3 filters; filter u -> channel u)
          fixed: reaches the model output 'head'
    """
    fmodel = _graph_model(model)
    graph = DependencyGraph(model)
    atoms = _Atoms()
    model_layer_nodes = {}
    for depth in sorted(fmodel._nodes_by_depth, reverse=True):
        for node in fmodel._nodes_by_depth[depth]:
            model_layer_nodes.setdefault(id(node.operation), []).append(node)

    for depth in sorted(fmodel._nodes_by_depth, reverse=True):
        for node in fmodel._nodes_by_depth[depth]:
            _visit(graph, atoms, node, len(model_layer_nodes[id(node.operation)]))

    for tensor in fmodel.outputs:
        name = tensor._keras_history.operation.name
        atoms.fix_all(graph.channel_labels(tensor), "output", f"reaches the model output '{name}'")

    _make_groups(graph, atoms)
    return graph


def _visit(graph, atoms, node, n_calls):
    op = node.operation
    name = op.name
    cls = type(op).__name__
    ins = [graph.channel_labels(t) for t in node.input_tensors]
    outs_t = node.output_tensors
    carrying = any(len(lab) and lab.any() for lab in ins)

    def set_out(labels):
        for t in outs_t:
            graph.set_channel_labels(t, labels)

    def block(message, kind="unsupported"):
        for lab in ins:
            atoms.fix_all(lab, kind, message)
        graph.record(op, "blocked", node)

    if isinstance(op, keras.layers.InputLayer):
        graph.record(op, "input", node)
        return

    kind = producer_kind(op) if isinstance(op, keras.layers.Layer) else None
    if kind is not None:
        units = _units_of(op)
        if len(outs_t) != 1 or len(ins) != 1:
            block(f"layer '{name}' ({cls}) has several inputs or outputs")
            return
        if kind == "quaternion":
            _tie_quaternion(atoms, ins[0], name)
        ids = atoms.new(name, units)
        if name not in graph.producers:
            graph.producers[name] = Producer(
                name, cls, kind, units, units * (4 if kind == "quaternion" else 1)
            )
            graph.producers[name]._first_atom = int(ids[0])
        set_out(np.tile(ids, 4) if kind == "quaternion" else ids)
        graph.record(op, "producer", node)
        if n_calls > 1:
            message = f"layer '{name}' is shared (called {n_calls} times)"
            atoms.fix_all(ids, "shared", message)
            atoms.fix_all(ins[0], "shared", message)
        return

    if not carrying:
        # Nothing prunable flows here: pass zeros on, whatever the layer is.
        for t in outs_t:
            graph.channel_labels(t)
        graph.record(op, "untouched", node)
        return

    if n_calls > 1 and op.weights:
        block(
            f"layer '{name}' ({cls}) has weights and is shared (called {n_calls} times)", "shared"
        )
        return

    role, result = _classify(op, node, ins)
    if role is None:
        block(result)
        return
    if role == "merge":
        width = node.output_tensors[0].shape[-1]
        full = [lab for lab in ins if len(lab) == width]
        for lab in ins:
            if len(lab) != width:  # a single channel broadcast over all of them
                atoms.fix_all(lab, "broadcast", f"broadcast over all channels at '{name}'")
        for other in full[1:]:
            atoms.tie(full[0], other, name)
        set_out(full[0])
    elif role == "quaternion-per-channel":
        _tie_quaternion(atoms, ins[0], name)
        set_out(ins[0])
    elif role == "concatenate":
        set_out(np.concatenate(ins))
    elif role == "reshape":
        set_out(result)
    else:
        set_out(ins[0])
    graph.record(op, role, node)


def _tie_quaternion(atoms, labels, where):
    if not len(labels) or not labels.any():
        return
    if len(labels) % 4:
        atoms.fix_all(labels, "unsupported", f"'{where}' reads a non-multiple of 4 channels")
        return
    blocks = labels.reshape(4, -1)
    for b in range(1, 4):
        atoms.tie(blocks[0], blocks[b], where)


def _classify(op, node, ins):
    """(role, payload) for a layer/op carrying prunable channels; role None = unsupported."""
    name, cls = op.name, type(op).__name__
    unsupported = (
        None,
        f"passes through layer '{name}' of type {cls}, which the pruning graph does not understand",
    )
    if len(node.output_tensors) != 1:
        return unsupported
    out_shape = node.output_tensors[0].shape
    in_shape = node.input_tensors[0].shape
    rank = len(in_shape)

    if isinstance(op, keras.layers.Layer):
        if isinstance(op, QBatchNormalization):
            return "quaternion-per-channel", None
        if isinstance(op, keras.layers.BatchNormalization):
            return ("per-channel", None) if _axes(op.axis, rank) == (rank - 1,) else unsupported
        if isinstance(op, keras.layers.LayerNormalization):
            return ("pass-through", None) if rank - 1 not in _axes(op.axis, rank) else unsupported
        if isinstance(op, keras.layers.PReLU):
            return "per-channel", None
        if isinstance(op, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
            if op.depth_multiplier == 1 and _channel_axis_ok(op):
                return "per-channel", None
            return unsupported
        if isinstance(op, keras.layers.Activation):
            fn = getattr(op.activation, "__name__", "")
            return unsupported if "softmax" in fn else ("pass-through", None)
        if isinstance(op, keras.layers.Softmax):
            return ("pass-through", None) if rank - 1 not in _axes(op.axis, rank) else unsupported
        if isinstance(op, _PRESERVING_LAYERS) or isinstance(op, tuple(_REGISTERED_PRESERVING)):
            if node.output_tensors[0].shape[-1] != in_shape[-1]:
                return unsupported
            return "pass-through", None
        if isinstance(op, _POOLING_LAYERS):
            return ("pass-through", None) if _channel_axis_ok(op) else unsupported
        if isinstance(op, keras.layers.Permute):
            return ("pass-through", None) if op.dims[-1] == rank - 1 else unsupported
        if isinstance(op, keras.layers.Flatten | keras.layers.Reshape):
            return _reshape_role(ins[0], out_shape, unsupported)
        if isinstance(op, _MERGE_LAYERS):
            return _merge_role(node, unsupported)
        if isinstance(op, keras.layers.Concatenate):
            return _concat_role(node, op.axis, unsupported)
        return unsupported

    # keras.ops operations in a functional graph
    if cls in _OPS_UNARY:
        if len(node.input_tensors) != 1 or not _scalar_args(node):
            return unsupported
        return "pass-through", None
    if cls in ("Softmax", "LogSoftmax"):
        return ("pass-through", None) if rank - 1 not in _axes(op.axis, rank) else unsupported
    if cls in _OPS_BINARY:
        if len(node.input_tensors) == 1:
            return ("pass-through", None) if _scalar_args(node) else unsupported
        return _merge_role(node, unsupported)
    if cls in _OPS_REDUCE:
        axes = _axes(getattr(op, "axis", None), rank)
        return ("pass-through", None) if rank - 1 not in axes else unsupported
    if cls in _OPS_RESHAPE:
        return _reshape_role(ins[0], out_shape, unsupported)
    if cls == "Transpose":
        axes = op.axes
        if axes is None:
            return unsupported
        return ("pass-through", None) if axes[-1] % rank == rank - 1 else unsupported
    if cls == "Concatenate":
        return _concat_role(node, op.axis, unsupported)
    return unsupported


def _scalar_args(node):
    """True when every non-tensor argument is a scalar (or broadcasts without the channel axis)."""
    tensors = {id(t) for t in node.input_tensors}
    for value in list(node.arguments.args) + list(node.arguments.kwargs.values()):
        if id(value) in tensors or value is None or isinstance(value, str | bool):
            continue
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - unknown argument type: refuse
            return False
        if arr.dtype == object:
            return False
        if arr.ndim and arr.shape[-1] != 1:
            return False
    return True


def _reshape_role(labels, out_shape, unsupported):
    out_last = out_shape[-1] if len(out_shape) else None
    n = len(labels)
    if not out_last or not n or out_last % n:
        return unsupported
    return "reshape", np.tile(labels, out_last // n)


def _merge_role(node, unsupported):
    shapes = [t.shape for t in node.input_tensors]
    last = {s[-1] for s in shapes}
    if len(last - {1}) > 1:
        return unsupported
    return "merge", None


def _concat_role(node, axis, unsupported):
    rank = len(node.output_tensors[0].shape)
    if axis % rank == rank - 1:
        return "concatenate", None
    # Concatenating along another axis stacks positions: channels at equal index are tied.
    return _merge_role(node, unsupported)


def _make_groups(graph, atoms):
    """Fill ``graph.groups``: producers tied by a shared atom, their units, and their uses."""
    roots = graph.resolve(atoms)
    members = {}  # unit root -> [(producer, filter), ...]
    for atom, owner in enumerate(atoms.owner):
        if owner is not None:
            members.setdefault(int(roots[atom]), []).append(owner)
    unit_group = {}  # unit root -> group index
    for index, names in enumerate(_connected_producers(graph, members)):
        unit_roots = []
        for name in names:
            prod = graph.producers[name]
            start = prod._first_atom
            prod.unit_atoms = roots[start : start + prod.units]
            prod.group = index
            unit_roots.extend(int(r) for r in prod.unit_atoms)
        ordered = sorted(set(unit_roots))
        fixed = {i: atoms.fixed[r] for i, r in enumerate(ordered) if r in atoms.fixed}
        graph.groups.append(
            ChannelGroup(
                index,
                names,
                units=[members[r] for r in ordered],
                free=[i for i in range(len(ordered)) if i not in fixed],
                fixed=fixed,
                uses=[],
                joined=any(len({p for p, _ in members[r]}) > 1 for r in ordered),
                unit_roots=ordered,
            )
        )
        unit_group.update(dict.fromkeys(ordered, index))
    _add_uses(graph, unit_group)


def _connected_producers(graph, members):
    """Producer names grouped by the atoms they share (union-find over producers)."""
    parent = {name: name for name in graph.producers}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for owners in members.values():
        first = owners[0][0]
        for prod, _ in owners[1:]:
            a, b = find(first), find(prod)
            if a != b:
                parent[b] = a
    by_root = {}
    for name in graph.producers:
        by_root.setdefault(find(name), []).append(name)
    return list(by_root.values())


def _groups_reached(graph, key, unit_group):
    """Indices of the groups whose units reach the tensor with ``id`` ``key``."""
    return sorted({unit_group[r] for r in np.unique(graph.channel_units(key)) if r})


def _add_uses(graph, unit_group):
    """Every non-producer layer touching a group's channels, and the producers consuming them."""
    for name in graph.layer_names():
        for rec in graph.records(name):
            if rec.role == "producer":
                _add_consumer_use(graph, rec, unit_group)
            if rec.role in ("producer", "input", "untouched"):
                continue
            touched = set()
            for key in rec.in_keys:
                touched.update(_groups_reached(graph, key, unit_group))
            role = {"quaternion-per-channel": "per-channel", "blocked": "blocks"}.get(
                rec.role, rec.role
            )
            detail = "quaternion units" if rec.role == "quaternion-per-channel" else ""
            for g in sorted(touched):
                uses = graph.groups[g].uses
                if not any(u.name == name for u in uses):
                    uses.append(LayerUse(name, type(rec.layer).__name__, role, detail))


def _add_consumer_use(graph, rec, unit_group):
    key = rec.in_keys[0]
    layer = rec.layer
    if isinstance(layer, QConv | QDense):
        c = len(graph.channel_units(key)) // 4
        detail = f"input quaternion units: unit c <- channels c, {c}+c, {2 * c}+c, {3 * c}+c"
    else:
        detail = "input channels"
    for g in _groups_reached(graph, key, unit_group):
        uses = graph.groups[g].uses
        if not any(u.name == layer.name for u in uses):
            uses.append(LayerUse(layer.name, type(layer).__name__, "consumer", detail))
