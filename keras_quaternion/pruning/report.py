"""What a pruning run did, layer by layer: filters, parameters, MACs and the kept indices."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from keras_quaternion.files import atomic_write

REPORT_JSON = "pruning_report.json"
REPORT_MD = "pruning_report.md"


@dataclasses.dataclass
class LayerRow:
    """One layer with weights that changed (or a producer that could have been pruned).

    ``filters_*`` count output filters (quaternion filters for quaternion layers; ``None`` for
    layers without filters), ``inputs_*`` the input channels (quaternion units for quaternion
    layers) its weights read. ``kept`` lists the kept output filter indices (``None`` when all
    were kept), ``kept_inputs`` the kept input indices (``None`` when all were kept).

    Attributes:
        name: the layer's name.
        class_name: its class name.
        role: its role in the dependency graph (``"producer"``, ``"per-channel"``, ...), or
            ``"unchanged"`` for a producer that was left as it was.
        group: the producer's group index (``None`` for non-producers).
        filters_before, filters_after: output filters.
        inputs_before, inputs_after: input channels (quaternion units) its weights read.
        params_before, params_after: the layer's parameters (``count_params()``).
        macs_before, macs_after: its multiply-accumulates per example (``None`` if not counted).
        kept: kept output filter indices, or ``None``.
        kept_inputs: kept input indices, or ``None``.
        scores: a producer's normalised importance score per filter (``None`` if not scored).

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning import prune
        >>> x = keras.Input((8, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D()(QConv2D(4, 3, padding="same", name="q1")(x))
        >>> model = keras.Model(x, keras.layers.Dense(2, name="head")(y))
        >>> small, report = prune(model, "l1", 0.5)
        >>> q1, head = report.layers_table
        >>> q1.name, q1.filters_before, q1.filters_after, q1.params_before, q1.params_after
        ('q1', 4, 2, 160, 80)
        >>> len(q1.kept), len(q1.scores), head.inputs_before, head.inputs_after
        (2, 4, 16, 8)
    """

    name: str
    class_name: str
    role: str
    group: int | None
    filters_before: int | None
    filters_after: int | None
    inputs_before: int | None
    inputs_after: int | None
    params_before: int
    params_after: int
    macs_before: int | None
    macs_after: int | None
    kept: list | None = None
    kept_inputs: list | None = None
    scores: list | None = None


@dataclasses.dataclass
class GroupRow:
    """One pruning group: its producers, units before/after, the ratio used and its status.

    Attributes:
        index: the group's index in the dependency graph.
        producers: names of its producing layers.
        units_before, units_after: pruning units (filters, or merge-tied filter sets).
        ratio: the ratio applied to the group.
        joined: True when a merge (residual ``Add``) ties several producers.
        status: ``"pruned N of M"``, ``"nothing to prune"`` or ``"not pruned: <reason>"``.

    Example:
        >>> import keras
        >>> from keras_quaternion import QConv2D
        >>> from keras_quaternion.pruning import prune
        >>> x = keras.Input((8, 8, 4))
        >>> y = keras.layers.GlobalAveragePooling2D()(QConv2D(4, 3, padding="same", name="q1")(x))
        >>> model = keras.Model(x, keras.layers.Dense(2, name="head")(y))
        >>> small, report = prune(model, "l1", 0.5)
        >>> group = report.groups[0]
        >>> group.producers, group.units_before, group.units_after, group.ratio, group.status
        (['q1'], 4, 2, 0.5, 'pruned 2 of 4')
    """

    index: int
    producers: list
    units_before: int
    units_after: int
    ratio: float
    joined: bool
    status: str


@dataclasses.dataclass
class PruningReport:
    """The record of one :func:`keras_quaternion.pruning.prune` call.

    Attributes:
        model, method, ratio, layers, residual, seed: the call.
        frames: the input frame count the MACs were counted at.
        params_before, params_after: ``(trainable, non_trainable)`` of the whole model.
        macs_before, macs_after: multiply-accumulates of the whole model per example.
        layers_table: list of :class:`LayerRow`.
        groups: list of :class:`GroupRow`.
        notes: why some layers were left alone.
        seconds: wall-clock seconds of each stage (``graph``, ``scoring``, ``rebuild``,
            ``report``: parameter and MAC counting).

    Example:
        >>> r = PruningReport(model="m", method="l1", ratio=0.5, layers="all", residual="group",
        ...                   seed=0, frames=None, params_before=(10, 2), params_after=(5, 1),
        ...                   macs_before=100, macs_after=25)
        >>> r.summary()
        'm: l1 p=0.5 -> params 10 -> 5 (-50.0%), MACs 100 -> 25 (-75.0%)'
    """

    model: str
    method: str
    ratio: float
    layers: object
    residual: str
    seed: int
    frames: int | None
    params_before: tuple
    params_after: tuple
    macs_before: int | None
    macs_after: int | None
    layers_table: list = dataclasses.field(default_factory=list)
    groups: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    seconds: dict = dataclasses.field(default_factory=dict)

    # -- derived ----------------------------------------------------------------------------
    @property
    def params_ratio(self):
        """Trainable parameters after / before."""
        return self.params_after[0] / max(self.params_before[0], 1)

    @property
    def macs_ratio(self):
        """MACs after / before (``None`` when MACs were not counted)."""
        if self.macs_before in (None, 0) or self.macs_after is None:
            return None
        return self.macs_after / self.macs_before

    def summary(self):
        """One line: parameters and MACs before and after."""
        text = (
            f"{self.model}: {self.method} p={self.ratio:g} -> params {self.params_before[0]:,} "
            f"-> {self.params_after[0]:,} ({100 * (self.params_ratio - 1):+.1f}%)"
        )
        if self.macs_ratio is not None:
            text += (
                f", MACs {self.macs_before:,} -> {self.macs_after:,} "
                f"({100 * (self.macs_ratio - 1):+.1f}%)"
            )
        return text.replace("+-", "-")

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self):
        """Plain JSON-able data."""
        data = dataclasses.asdict(self)
        data["params_before"] = list(self.params_before)
        data["params_after"] = list(self.params_after)
        data["params_ratio"] = self.params_ratio
        data["macs_ratio"] = self.macs_ratio
        return data

    def to_json(self, indent=2):
        """The report as a JSON string (see :meth:`from_json`)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text):
        """Rebuild a report from :meth:`to_json` output.

        Raises:
            ValueError: the text is not a pruning report.
        """
        data = json.loads(text)
        try:
            data.pop("params_ratio", None)
            data.pop("macs_ratio", None)
            data["params_before"] = tuple(data["params_before"])
            data["params_after"] = tuple(data["params_after"])
            data["layers_table"] = [LayerRow(**row) for row in data["layers_table"]]
            data["groups"] = [GroupRow(**row) for row in data["groups"]]
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Not a pruning report: {exc}") from exc

    def to_markdown(self):
        """The report as a Markdown document (a summary and a per-layer table)."""
        lines = [f"# Pruning report: {self.model}", "", *self._summary_lines(), ""]
        lines += self._layer_lines()
        lines += [
            "",
            "Filters and inputs count quaternion units in quaternion layers (QConv, QDense); "
            "inputs of other layers count real channels.",
        ]
        if self.groups:
            lines += ["", "| group | producers | units | ratio | status |", "|---|---|---|---|---|"]
            lines += [
                f"| {g.index} | {', '.join(g.producers)} | {g.units_before} -> {g.units_after} | "
                f"{g.ratio:g} | {g.status} |"
                for g in self.groups
            ]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        lines.append("")
        lines.append("Kept filter indices per layer are in the JSON report (`kept`).")
        return "\n".join(lines) + "\n"

    def _summary_lines(self) -> list[str]:
        """The Markdown bullets: method, parameters before and after, MACs when counted."""
        lines = [
            f"- method: `{self.method}`, ratio p = {self.ratio:g}, layers: `{self.layers}`, "
            f"residual: `{self.residual}`, seed: {self.seed}",
            f"- trainable parameters: {self.params_before[0]:,} -> {self.params_after[0]:,} "
            f"(x{self.params_ratio:.3f}); non-trainable: {self.params_before[1]:,} -> "
            f"{self.params_after[1]:,}",
        ]
        if self.macs_ratio is not None:
            frames = f" at {self.frames} frames" if self.frames else ""
            lines.append(
                f"- MACs per example{frames}: {self.macs_before:,} -> {self.macs_after:,} "
                f"(x{self.macs_ratio:.3f})"
            )
        return lines

    def _layer_lines(self) -> list[str]:
        """The per-layer Markdown table, ``before -> after`` where a count changed."""

        def pair(a, b):
            if a is None:
                return "-"
            return f"{a:,}" if a == b else f"{a:,} -> {b:,}"

        lines = [
            "| layer | type | role | filters | inputs | params | MACs |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.layers_table:
            lines.append(
                f"| {row.name} | {row.class_name} | {row.role} | "
                f"{pair(row.filters_before, row.filters_after)} | "
                f"{pair(row.inputs_before, row.inputs_after)} | "
                f"{pair(row.params_before, row.params_after)} | "
                f"{pair(row.macs_before, row.macs_after)} |"
            )
        return lines

    def save(self, directory):
        """Write ``pruning_report.json`` and ``pruning_report.md`` into ``directory`` atomically.

        Returns:
            ``(json_path, markdown_path)``.

        Raises:
            NotADirectoryError: ``directory`` exists and is a file.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"Report directory {directory} exists and is not a folder.")
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for filename, text in ((REPORT_JSON, self.to_json()), (REPORT_MD, self.to_markdown())):
            target = directory / filename
            atomic_write(target, text)
            paths.append(target)
        return tuple(paths)
