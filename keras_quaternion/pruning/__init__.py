"""Structured filter pruning that rebuilds genuinely smaller (quaternion) models.

* :func:`prune` scores filters (data-free), removes the lowest-scoring whole filters, and
  rebuilds a smaller functional model with the kept weights copied, plus a report.
* :func:`importance` scores one layer (or kernel): ``METHODS`` lists the methods.
* :func:`build_dependency_graph` shows which channels feed which layers.
* :func:`prune_and_finetune` prunes, saves the model and its report, and optionally fine-tunes
  it (with knowledge distillation): what ``kq-prune`` runs.

See ``docs/pruning.md``.
"""

from keras_quaternion.pruning.core import (
    DEFAULT_FRAMES,
    PAPER_PLANS,
    RESIDUAL_MODES,
    paper_plan,
    prune,
)
from keras_quaternion.pruning.finetune import prune_and_finetune
from keras_quaternion.pruning.graph import (
    ChannelGroup,
    DependencyGraph,
    LayerUse,
    Producer,
    build_dependency_graph,
    register_channel_preserving,
)
from keras_quaternion.pruning.rebuild import RebuildError
from keras_quaternion.pruning.report import GroupRow, LayerRow, PruningReport
from keras_quaternion.pruning.scores import (
    METHODS,
    geometric_median_scores,
    importance,
    l1_scores,
    layer_kernel,
    operator_norm_scores,
    order_sensitivity,
    random_scores,
)

__all__ = [
    "DEFAULT_FRAMES",
    "METHODS",
    "PAPER_PLANS",
    "RESIDUAL_MODES",
    "ChannelGroup",
    "DependencyGraph",
    "GroupRow",
    "LayerRow",
    "LayerUse",
    "Producer",
    "PruningReport",
    "RebuildError",
    "build_dependency_graph",
    "geometric_median_scores",
    "importance",
    "l1_scores",
    "layer_kernel",
    "operator_norm_scores",
    "order_sensitivity",
    "paper_plan",
    "prune",
    "prune_and_finetune",
    "random_scores",
    "register_channel_preserving",
]
