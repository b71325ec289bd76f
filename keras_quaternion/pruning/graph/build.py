"""Building the graph: walk a functional model's nodes in order and label every channel."""

from __future__ import annotations

import keras
import numpy as np

from keras_quaternion.layers import QBatchNormalization, QConv, QDense
from keras_quaternion.pruning.graph.atoms import Atoms
from keras_quaternion.pruning.graph.dependency import DependencyGraph
from keras_quaternion.pruning.graph.layers import (
    MERGE_LAYERS,
    OPS_BINARY,
    OPS_REDUCE,
    OPS_RESHAPE,
    OPS_UNARY,
    POOLING_LAYERS,
    PRESERVING_LAYERS,
    REGISTERED_PRESERVING,
    producer_kind,
    units_of,
)
from keras_quaternion.pruning.graph.records import ChannelGroup, LayerUse, Producer


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
    atoms = Atoms()
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
    """Label the channels of one node's outputs and record its role.

    Producers (convolutions, dense layers) start new atoms; layers that carry prunable channels
    pass, tie, merge or reshape them (:func:`_classify`, :func:`_carry`); anything else blocks
    them (the channels reaching it are fixed, with the reason).
    """
    op = node.operation
    ins = [graph.channel_labels(t) for t in node.input_tensors]
    if isinstance(op, keras.layers.InputLayer):
        graph.record(op, "input", node)
        return
    kind = producer_kind(op) if isinstance(op, keras.layers.Layer) else None
    if kind is not None:
        _visit_producer(graph, atoms, node, ins, kind, n_calls)
        return
    if not any(len(lab) and lab.any() for lab in ins):
        # Nothing prunable flows here: pass zeros on, whatever the layer is.
        for t in node.output_tensors:
            graph.channel_labels(t)
        graph.record(op, "untouched", node)
        return
    if n_calls > 1 and op.weights:
        message = (
            f"layer '{op.name}' ({type(op).__name__}) has weights and is shared "
            f"(called {n_calls} times)"
        )
        _block(graph, atoms, node, ins, message, "shared")
        return
    role, result = _classify(op, node, ins)
    if role is None:
        _block(graph, atoms, node, ins, result)
        return
    _set_out(graph, node, _carry(atoms, node, ins, role, result))
    graph.record(op, role, node)


def _set_out(graph, node, labels) -> None:
    for t in node.output_tensors:
        graph.set_channel_labels(t, labels)


def _block(graph, atoms, node, ins, message: str, kind: str = "unsupported") -> None:
    """Fix every channel reaching ``node`` (it cannot follow a pruning) and record it."""
    for lab in ins:
        atoms.fix_all(lab, kind, message)
    graph.record(node.operation, "blocked", node)


def _visit_producer(graph, atoms, node, ins, kind: str, n_calls: int) -> None:
    """A layer that makes channels: new atoms (one per quaternion filter, tied over the four
    components), fixed when the layer is shared."""
    op = node.operation
    name = op.name
    if len(node.output_tensors) != 1 or len(ins) != 1:
        message = f"layer '{name}' ({type(op).__name__}) has several inputs or outputs"
        _block(graph, atoms, node, ins, message)
        return
    if kind == "quaternion":
        _tie_quaternion(atoms, ins[0], name)
    units = units_of(op)
    ids = atoms.new(name, units)
    if name not in graph.producers:
        channels = units * (4 if kind == "quaternion" else 1)
        graph.producers[name] = Producer(name, type(op).__name__, kind, units, channels)
        graph.producers[name]._first_atom = int(ids[0])
    _set_out(graph, node, np.tile(ids, 4) if kind == "quaternion" else ids)
    graph.record(op, "producer", node)
    if n_calls > 1:
        message = f"layer '{name}' is shared (called {n_calls} times)"
        atoms.fix_all(ids, "shared", message)
        atoms.fix_all(ins[0], "shared", message)


def _carry(atoms, node, ins, role: str, result):
    """The output labels of a node that carries channels in ``role`` (ties made on the way)."""
    name = node.operation.name
    if role == "merge":
        width = node.output_tensors[0].shape[-1]
        full = [lab for lab in ins if len(lab) == width]
        for lab in ins:
            if len(lab) != width:  # a single channel broadcast over all of them
                atoms.fix_all(lab, "broadcast", f"broadcast over all channels at '{name}'")
        for other in full[1:]:
            atoms.tie(full[0], other, name)
        return full[0]
    if role == "quaternion-per-channel":
        _tie_quaternion(atoms, ins[0], name)
        return ins[0]
    if role == "concatenate":
        return np.concatenate(ins)
    if role == "reshape":
        return result
    return ins[0]


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
    unsupported = (
        None,
        f"passes through layer '{op.name}' of type {type(op).__name__}, which the pruning graph "
        "does not understand",
    )
    if len(node.output_tensors) != 1:
        return unsupported
    if isinstance(op, keras.layers.Layer):
        return _classify_layer(op, node, ins, unsupported)
    return _classify_op(op, node, ins, unsupported)


def _classify_layer(op, node, ins, unsupported):
    """The role of a Keras layer."""
    out_shape = node.output_tensors[0].shape
    in_shape = node.input_tensors[0].shape
    rank = len(in_shape)
    keep = ("pass-through", None)
    if isinstance(op, QBatchNormalization):
        return "quaternion-per-channel", None
    if isinstance(op, keras.layers.BatchNormalization):
        return ("per-channel", None) if _axes(op.axis, rank) == (rank - 1,) else unsupported
    if isinstance(op, keras.layers.LayerNormalization | keras.layers.Softmax):
        return keep if rank - 1 not in _axes(op.axis, rank) else unsupported
    if isinstance(op, keras.layers.PReLU):
        return "per-channel", None
    if isinstance(op, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        if op.depth_multiplier == 1 and _channel_axis_ok(op):
            return "per-channel", None
        return unsupported
    if isinstance(op, keras.layers.Activation):
        fn = getattr(op.activation, "__name__", "")
        return unsupported if "softmax" in fn else keep
    if isinstance(op, PRESERVING_LAYERS) or isinstance(op, tuple(REGISTERED_PRESERVING)):
        return keep if out_shape[-1] == in_shape[-1] else unsupported
    if isinstance(op, POOLING_LAYERS):
        return keep if _channel_axis_ok(op) else unsupported
    if isinstance(op, keras.layers.Permute):
        return keep if op.dims[-1] == rank - 1 else unsupported
    if isinstance(op, keras.layers.Flatten | keras.layers.Reshape):
        return _reshape_role(ins[0], out_shape, unsupported)
    if isinstance(op, MERGE_LAYERS):
        return _merge_role(node, unsupported)
    if isinstance(op, keras.layers.Concatenate):
        return _concat_role(node, op.axis, unsupported)
    return unsupported


def _classify_op(op, node, ins, unsupported):
    """The role of a ``keras.ops`` operation in a functional graph."""
    cls = type(op).__name__
    rank = len(node.input_tensors[0].shape)
    keep = ("pass-through", None)
    if cls in OPS_UNARY:
        if len(node.input_tensors) != 1 or not _scalar_args(node):
            return unsupported
        return keep
    if cls in ("Softmax", "LogSoftmax"):
        return keep if rank - 1 not in _axes(op.axis, rank) else unsupported
    if cls in OPS_BINARY:
        if len(node.input_tensors) == 1:
            return keep if _scalar_args(node) else unsupported
        return _merge_role(node, unsupported)
    if cls in OPS_REDUCE:
        return keep if rank - 1 not in _axes(getattr(op, "axis", None), rank) else unsupported
    if cls in OPS_RESHAPE:
        return _reshape_role(ins[0], node.output_tensors[0].shape, unsupported)
    if cls == "Transpose":
        if op.axes is None:
            return unsupported
        return keep if op.axes[-1] % rank == rank - 1 else unsupported
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
