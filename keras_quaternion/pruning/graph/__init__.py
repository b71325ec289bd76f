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

Modules: :mod:`.layers` (layer classification), :mod:`.atoms` (union-find), :mod:`.records`
(``Producer``, ``LayerUse``, ``ChannelGroup``), :mod:`.dependency` (``DependencyGraph``) and
:mod:`.build` (``build_dependency_graph``).
"""

from keras_quaternion.pruning.graph.build import build_dependency_graph
from keras_quaternion.pruning.graph.dependency import DependencyGraph
from keras_quaternion.pruning.graph.layers import (
    PRODUCER_TYPES,
    is_conv,
    producer_kind,
    register_channel_preserving,
)
from keras_quaternion.pruning.graph.records import ChannelGroup, LayerUse, Producer

__all__ = [
    "PRODUCER_TYPES",
    "ChannelGroup",
    "DependencyGraph",
    "LayerUse",
    "Producer",
    "build_dependency_graph",
    "is_conv",
    "producer_kind",
    "register_channel_preserving",
]
