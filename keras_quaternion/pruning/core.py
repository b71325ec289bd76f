"""``prune``: score, choose and remove whole filters, then rebuild a smaller model."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from keras_quaternion.pruning.graph import build_dependency_graph, is_conv
from keras_quaternion.pruning.rebuild import rebuild
from keras_quaternion.pruning.report import GroupRow, LayerRow, PruningReport
from keras_quaternion.pruning.scores import check_method, importance

RESIDUAL_MODES = ("group", "skip")

#: The authors' plans (``layers="paper"``): conv blocks 4-6 of (Q)CNN14 (its convs 7-12; fc1's
#: inputs follow) and ``conv_block_after1`` of (Q)ResNet38.
PAPER_PLANS = {
    "cnn14": [f"conv_block{b}_conv{c}" for b in (4, 5, 6) for c in (1, 2)],
    "resnet38": ["conv_block_after1_conv1", "conv_block_after1_conv2"],
}


def paper_plan(model):
    """The layers the authors prune in ``model``: (Q)CNN14 convs 7-12 or (Q)ResNet38's after-block.

    Args:
        model: a (Q)CNN14-like model (layers ``conv_block4_conv1`` ... ``conv_block6_conv2``) or a
            (Q)ResNet38-like model (``conv_block_after1_conv1``/``_conv2``).

    Returns:
        The list of layer names.

    Raises:
        ValueError: the model has neither set of layers.

    Example:
        >>> import keras
        >>> x = keras.Input((4, 4, 1))
        >>> y = keras.layers.Conv2D(2, 1, name="conv_block_after1_conv1")(x)
        >>> y = keras.layers.Conv2D(2, 1, name="conv_block_after1_conv2")(y)
        >>> paper_plan(keras.Model(x, y))
        ['conv_block_after1_conv1', 'conv_block_after1_conv2']
    """
    names = {layer.name for layer in model.layers}
    for plan in PAPER_PLANS.values():
        if all(n in names for n in plan):
            return list(plan)
    raise ValueError(
        f"layers='paper' is defined for (Q)CNN14 (layers {', '.join(PAPER_PLANS['cnn14'])}) and "
        f"(Q)ResNet38 ({', '.join(PAPER_PLANS['resnet38'])}); model '{model.name}' has neither "
        "set. Pass layers='all' or a list of layer names."
    )


def _check_ratio(value, what):
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}.") from None
    if isinstance(value, bool) or not 0.0 <= ratio < 1.0 or math.isnan(ratio):
        raise ValueError(
            f"{what} must be in [0, 1) (the fraction of filters to remove), got {value!r}."
        )
    return ratio


def _check_names(names, what, graph, model, *, producers_only=True):
    layer_names = {layer.name for layer in model.layers}
    prunable = sorted(graph.producers)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{what} must hold layer names (str), got {name!r}.")
        if name not in layer_names:
            raise ValueError(
                f"{what}: there is no layer '{name}' in model '{model.name}'. "
                f"Layers with prunable filters: {', '.join(prunable) or 'none'}."
            )
        if producers_only and name not in graph.producers:
            layer = model.get_layer(name)
            raise ValueError(
                f"{what} names layer '{name}' of type {type(layer).__name__}, which has no "
                f"prunable filters. Layers with prunable filters: {', '.join(prunable)}."
            )


def _n_pruned(ratio, n_units):
    """Round half up: ``floor(ratio * n + 0.5)`` units are removed."""
    return int(math.floor(ratio * n_units + 0.5 + 1e-9))


def prune(
    model,
    method,
    ratio,
    *,
    skip=(),
    per_layer=None,
    layers="all",
    residual="group",
    seed=0,
    frames=None,
):
    """Remove the least important whole filters and rebuild a genuinely smaller model.

    A pruned unit is a whole quaternion filter (its four real output channels, one in each
    ``[r|i|j|k]`` block) in quaternion layers and one filter in real layers. With it go the
    producer's kernel slice and bias, its batch norm's channels, and the next layers' input
    slices (next convolution, or the dense head after global pooling). Filters summed by a
    residual ``Add`` (or another element-wise merge) are pruned together with one shared score
    (the mean of their normalised scores), or left alone with ``residual="skip"``.

    Args:
        model: a built functional or Sequential ``keras.Model``.
        method: ``"operator-norm"``, ``"l1"``, ``"geometric-median"`` or ``"random"``
            (see :data:`~keras_quaternion.pruning.METHODS`).
        ratio: fraction of each selected layer's filters to remove, in ``[0, 1)``;
            ``round(ratio * F)`` (half up) filters go.
        skip: layer names never to prune (their whole residual group stays).
        per_layer: ``{layer name: ratio}`` overriding ``ratio`` for those layers (and selecting
            them); layers joined by a merge must share one ratio.
        layers: ``"all"`` (every convolution: ``Conv1D/2D/3D``, ``QConv1D/2D``), ``"paper"``
            (the authors' plan, see :func:`paper_plan`) or a list of layer names (dense layers
            may be listed too).
        residual: ``"group"`` (prune merge-joined filters together) or ``"skip"`` (leave them).
        seed: seed of the ``"random"`` method.
        frames: input frames (axis 1) at which the report counts MACs; default: the model's own
            input length, or :data:`DEFAULT_FRAMES` (1001, a 10 s clip at 32 kHz and hop 320) for
            variable-length models.

    Returns:
        ``(pruned_model, report)``: a new functional model (not compiled; compile it before
        fine-tuning) and a :class:`~keras_quaternion.pruning.report.PruningReport`.

    Raises:
        ValueError: unknown method; ratio (or a per-layer ratio) outside ``[0, 1)``; ``skip``,
            ``per_layer`` or ``layers`` naming an unknown layer or one without prunable filters;
            a requested layer that cannot be pruned (joined with a skipped layer, reaching the
            output, or passing through a layer type the graph does not understand, named in the
            message); a ratio that would remove every filter of a layer.

    Example:
        >>> import keras, numpy as np
        >>> from keras_quaternion import QConv2D
        >>> x = keras.Input((8, 8, 4))
        >>> y = QConv2D(8, 3, padding="same", activation="relu", name="q1")(x)
        >>> y = QConv2D(8, 3, padding="same", name="q2")(y)
        >>> y = keras.layers.GlobalAveragePooling2D()(y)
        >>> model = keras.Model(x, keras.layers.Dense(2, name="head")(y))
        >>> small, report = prune(model, "l1", 0.5)
        >>> [small.get_layer(n).filters for n in ("q1", "q2")], tuple(small.get_layer("head").kernel.shape)
        ([4, 4], (16, 2))
    """
    check_method(method)
    ratio = _check_ratio(ratio, "ratio")
    skip, per_layer = _check_options(frames, residual, skip, per_layer)
    clock = time.perf_counter()
    graph = build_dependency_graph(model)
    seconds = {"graph": time.perf_counter() - clock, "scoring": 0.0}
    selection = _select(model, graph, layers, skip, per_layer)
    plan = _Plan(method, ratio, residual, seed, per_layer, selection, graph, model)
    for group in graph.groups:
        plan.add(group)
    seconds["scoring"] = plan.scoring_seconds
    clock = time.perf_counter()
    new_model, changed = rebuild(model, graph, plan.pruned_units)
    seconds["rebuild"] = time.perf_counter() - clock
    clock = time.perf_counter()
    report = _make_report(
        model, new_model, graph, changed, plan, frames,
        dict(method=method, ratio=ratio, layers=layers, residual=residual, seed=seed),
    )  # fmt: skip
    seconds["report"] = time.perf_counter() - clock
    report.seconds = {k: round(v, 4) for k, v in seconds.items()}
    return new_model, report


def _check_options(frames, residual, skip, per_layer):
    """Validate ``frames`` and ``residual``; return ``skip`` as a tuple and ``per_layer`` as a dict."""
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or frames < 1
    ):
        raise ValueError(f"frames must be a positive int or None, got {frames!r}.")
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}.")
    if isinstance(skip, str):
        skip = (skip,)
    return tuple(skip), dict(per_layer or {})


@dataclasses.dataclass
class _Selection:
    """Which producers to prune: ``selected``; those the caller named: ``explicit``."""

    selected: set
    explicit: set


def _select(model, graph, layers, skip, per_layer):
    """Resolve ``layers``, ``skip`` and ``per_layer`` (checked in place) into a :class:`_Selection`."""
    explicit = set(per_layer)
    if isinstance(layers, str):
        if layers == "all":
            by_name = {layer.name: layer for layer in model.layers}
            selected = {n for n in graph.producers if is_conv(by_name[n])}
        elif layers == "paper":
            selected = set(paper_plan(model))
            _check_names(selected, "layers='paper'", graph, model)
        else:
            raise ValueError(
                f"layers must be 'all', 'paper' or a list of layer names, got {layers!r}."
            )
    else:
        layers = list(layers)
        _check_names(layers, "layers", graph, model)
        selected = set(layers)
        explicit |= selected
    _check_names(skip, "skip", graph, model)
    _check_names(per_layer, "per_layer", graph, model)
    for name, value in per_layer.items():
        per_layer[name] = _check_ratio(value, f"per_layer['{name}']")
        if name in skip:
            raise ValueError(f"Layer '{name}' is in both skip and per_layer; choose one.")
    return _Selection((selected | set(per_layer)) - set(skip), explicit)


class _Plan:
    """The filters chosen group by group, with a row (and maybe a note) per selected group."""

    def __init__(self, method, ratio, residual, seed, per_layer, selection, graph, model):
        self.method, self.ratio, self.residual, self.seed = method, ratio, residual, seed
        self.per_layer, self.selection, self.graph = per_layer, selection, graph
        self.layers = {layer.name: layer for layer in model.layers}
        self.pruned_units, self.group_rows, self.notes = [], [], []
        self.unit_scores = {}  # producer -> per-filter scores used
        self.scoring_seconds = 0.0

    def add(self, group):
        """Decide the group's fate: prune its lowest-scoring filters or record why not."""
        if not any(m in self.selection.selected for m in group.producers):
            return
        status, group_ratio = self._status(group)
        kept = len(group.units)
        if status is None:
            n_prune = self._choose(group, group_ratio)
            kept -= n_prune
            status = f"pruned {n_prune} of {len(group.free)}" if n_prune else "nothing to prune"
        else:
            self.notes.append(status[0].upper() + status[1:] + ".")
        self.group_rows.append(
            GroupRow(
                group.index, group.producers, len(group.units), kept, group_ratio, group.joined,
                status,
            )
        )  # fmt: skip

    def _status(self, group):
        """``(None, ratio)`` if the group is to be pruned, else ``(why not, ratio)``; or raise."""
        members = group.producers
        status = self._selection_status(group)
        ratios = {self.per_layer.get(m, self.ratio) for m in members}
        if status is None and len(ratios) > 1:
            raise ValueError(
                f"Layers {', '.join(members)} are joined by a merge and must share one ratio; "
                f"per_layer gives {sorted(ratios)}."
            )
        group_ratio = ratios.pop() if len(ratios) == 1 else self.ratio
        if status is None and group_ratio == 0.0:
            status = "not pruned: ratio 0"
        unsupported = sorted({m for r in group.fixed.values() for k, m in r if k == "unsupported"})
        if status is None and unsupported:
            raise ValueError(
                f"Cannot prune {', '.join(members)}: its channels {unsupported[0]}. "
                f"Pass skip={members!r} to leave {'it' if len(members) == 1 else 'them'} "
                "unpruned."
            )
        if status is None and len(group.free) == 0:
            reasons = sorted({m for r in group.fixed.values() for _, m in r})
            if any(m in self.selection.explicit for m in members):
                raise ValueError(
                    f"{', '.join(members)} cannot be pruned: its filters {'; '.join(reasons)}."
                )
            status = "not pruned: " + "; ".join(reasons)
        return status, group_ratio

    def _selection_status(self, group):
        """Why a merge-joined group is left alone (part unselected, or residual='skip'), or None."""
        members = group.producers
        chosen = [m for m in members if m in self.selection.selected]
        missing = [m for m in members if m not in self.selection.selected]
        if missing:
            message = (
                f"{', '.join(chosen)} {'is' if len(chosen) == 1 else 'are'} joined by a merge "
                f"(residual Add) with {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not selected"
            )
            if any(m in self.selection.explicit for m in chosen):
                raise ValueError(
                    f"Cannot prune these filters as selected: {message}. Merged filters are "
                    f"pruned together: select all of {', '.join(members)} or none, or pass "
                    "residual='skip'."
                )
            return "not pruned: " + message
        if self.residual == "skip" and group.joined:
            return f"not pruned: residual='skip' ({', '.join(members)} are joined by a merge)"
        return None

    def _choose(self, group, group_ratio):
        """Score the group's free units and mark the lowest ``round(ratio * n)`` for removal."""
        n_free = len(group.free)
        n_prune = _n_pruned(group_ratio, n_free)
        if n_prune >= n_free:
            raise ValueError(
                f"Ratio {group_ratio:g} would remove all {n_free} prunable filters of "
                f"{', '.join(group.producers)}, leaving zero. Use a smaller ratio (per_layer=) "
                "or skip=."
            )
        clock = time.perf_counter()
        scores = _group_scores(group, self.method, self.seed, self.layers, self.unit_scores)
        self.scoring_seconds += time.perf_counter() - clock
        free = np.asarray(group.free)
        chosen = free[np.lexsort((free, scores[free]))][:n_prune]
        self.pruned_units.extend(group.unit_roots[i] for i in chosen)
        _check_not_empty(group, set(int(i) for i in chosen), self.graph)
        return n_prune


def _group_scores(group, method, seed, layers, unit_scores):
    """Per-unit scores of a group: mean over the unit's filters of their layer's scores."""
    if method == "random":
        rng = np.random.default_rng([int(seed), group.index])
        scores = rng.random(len(group.units))
        for name in group.producers:
            unit_scores[name] = None
        return scores
    per_layer = {}
    for name in group.producers:
        per_layer[name] = importance(layers[name], method, seed=seed)
        unit_scores[name] = per_layer[name]
    return np.array(
        [np.mean([per_layer[p][u] for p, u in members]) for members in group.units],
        dtype=np.float64,
    )


def _check_not_empty(group, chosen, graph):
    for name in group.producers:
        producer = graph.producers[name]
        index = {r: i for i, r in enumerate(group.unit_roots)}
        left = sum(1 for r in producer.unit_atoms if index[int(r)] not in chosen)
        if left == 0:
            raise ValueError(
                f"Pruning would leave layer '{name}' with zero filters; use a smaller ratio "
                f"for it (per_layer=) or skip it."
            )


# ---------------------------------------------------------------------------------------------
# Report


#: Frames at which MACs are counted for variable-length models when ``frames`` is not given:
#: a 10 s clip at 32 kHz with hop 320 (PANNs' AudioSet setting).
DEFAULT_FRAMES = 1001


def _variable_frames(model):
    return any(len(t.shape) > 1 and t.shape[1] is None for t in model.inputs)


def _count(model, frames):
    """(trainable, non-trainable) params, total MACs, per-layer MACs, error text."""
    from keras_quaternion import counting

    params = tuple(int(v) for v in counting.count_params(model))
    try:
        total, per = counting.count_macs(model, frames=frames, per_layer=True)
    except ValueError as exc:
        return params, None, {}, str(exc)
    return params, int(total), {k: int(v) for k, v in per.items()}, None


def _make_report(model, new_model, graph, changed, plan, frames, call):
    """The :class:`PruningReport`: counts before and after, a row per layer and per group."""
    if frames is None and _variable_frames(model):
        frames = DEFAULT_FRAMES
    params_b, macs_b, per_b, err_b = _count(model, frames)
    params_a, macs_a, per_a, err_a = _count(new_model, frames)
    notes = list(plan.notes)
    if err_b or err_a:
        notes.append(f"MACs not counted: {err_b or err_a}")
    rows = []
    for name in graph.layer_names():
        if name not in graph.producers and name not in changed:
            continue
        old = model.get_layer(name) if _has_layer(model, name) else None
        if old is None or not old.weights:  # weightless pass-through layers: nothing to report
            continue
        new = new_model.get_layer(name) if _has_layer(new_model, name) else None
        row = _layer_row(old, new, graph.producers.get(name), changed, plan.unit_scores)
        rows.append(
            dataclasses.replace(row, macs_before=per_b.get(name), macs_after=per_a.get(name))
        )
    return PruningReport(
        model=model.name,
        method=call["method"],
        ratio=call["ratio"],
        layers=call["layers"],
        residual=call["residual"],
        seed=int(call["seed"]),
        frames=frames,
        params_before=params_b,
        params_after=params_a,
        macs_before=macs_b,
        macs_after=macs_a,
        layers_table=rows,
        groups=plan.group_rows,
        notes=notes,
    )


def _kept(masks, quaternion):
    """Indices kept by the first mask of ``masks`` (one per quaternion unit), or None if all."""
    if not masks or masks[0].all():
        return None
    mask = masks[0].reshape(4, -1)[0] if quaternion else masks[0]
    return [int(i) for i in np.nonzero(mask)[0]]


def _layer_row(old, new, producer, changed, unit_scores):
    """One layer's :class:`LayerRow` (MACs filled in by the caller)."""
    name = old.name
    ins, outs, role = changed.get(name, (None, None, "producer" if producer else None))
    kept = kept_inputs = scores = None
    if producer is not None:
        q = producer.kind == "quaternion"
        f_before, f_after = producer.units, _units(new)
        in_before, in_after = _inputs(old, q), _inputs(new, q)
        kept, kept_inputs = _kept(outs, q), _kept(ins, q)
        if unit_scores.get(name) is not None:
            scores = [round(float(s), 6) for s in unit_scores[name]]
    else:
        f_before = f_after = None
        in_before = int(len(ins[0])) if ins else None
        in_after = int(ins[0].sum()) if ins else None
    if producer is not None and kept is None and kept_inputs is None and name not in changed:
        role_name = "unchanged"
    else:
        role_name = {"quaternion-per-channel": "per-channel"}.get(role, role)
    return LayerRow(
        name=name,
        class_name=type(old).__name__,
        role=role_name,
        group=producer.group if producer else None,
        filters_before=f_before,
        filters_after=f_after,
        inputs_before=in_before,
        inputs_after=in_after,
        params_before=int(old.count_params()),
        params_after=int(new.count_params()),
        macs_before=None,
        macs_after=None,
        kept=kept,
        kept_inputs=kept_inputs,
        scores=scores,
    )


def _has_layer(model, name):
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def _units(layer):
    return int(layer.filters if hasattr(layer, "filters") else layer.units)


def _inputs(layer, quaternion):
    shape = layer.kernel.shape
    return int(shape[-2])
