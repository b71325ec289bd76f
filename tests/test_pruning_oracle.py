"""Test helpers for pruning: an independent "zeroed" reference and weight randomisation.

The exactness claim of pruning: the rebuilt model's output equals the ORIGINAL model's output
when the pruned channels are zeroed at the inputs of the layers that read them. The reference
here is built without the pruning package's graph: it walks the Keras graph itself, derives each
producer's kept real channels from the report's kept filter indices and the [r|i|j|k] layout,
carries those masks through every other layer (checking that merged branches agree), and zeroes
the kernel rows of every weighted layer that reads a masked channel.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_quaternion.layers import QConv, QDense


def randomise(model, seed=0):
    """Random weights that keep activations O(1): kernels ~ N(0, 1/fan_in), BN stats near 1.

    Batch-norm moving statistics are random too (so inference-mode BN is not the identity);
    variances and whitening covariances stay positive definite.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for var in layer.weights:
            shape = tuple(var.shape)
            name = var.name
            if name == "kernel":
                # real fan-in: kh*kw*C, or 4*kh*kw*C rows of a quaternion layer's real kernel
                fan_in = int(np.prod(shape[:-1]))
                value = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
            elif "covariance" in name:
                base = rng.normal(0, 0.2, shape)
                value = np.eye(4) + np.einsum("...ij,...kj->...ik", base, base)
            elif "variance" in name:
                value = rng.uniform(0.5, 1.5, shape)
            elif name == "gamma" and len(shape) == 3:  # whitening Γ
                value = np.eye(4) + rng.normal(0, 0.2, shape)
            elif name == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            else:  # biases, beta, moving means, PReLU alphas
                value = rng.normal(0, 0.2, shape)
            values.append(value.astype("float32"))
        layer.set_weights(values)
    return model


def _weighted(op):
    return isinstance(op, QConv | QDense) or isinstance(
        op, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense
    )


def zeroed_reference(model, report):
    """A copy of ``model`` whose weighted layers ignore the channels the report removed."""
    kept = {row.name: row.kept for row in report.layers_table if row.filters_before is not None}
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    graph = model
    if isinstance(model, keras.Sequential):
        graph = keras.Model(model.inputs, model.outputs)
    masks = {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if isinstance(op, keras.layers.InputLayer):
                continue
            ins = [masks.get(id(t)) for t in node.input_tensors]
            outs = node.output_tensors
            if _weighted(op):
                quaternion = isinstance(op, QConv | QDense)
                if ins[0] is not None and not ins[0].all():
                    layer = clone.get_layer(op.name)
                    weights = layer.get_weights()
                    if quaternion:
                        blocks = ins[0].reshape(4, -1)
                        assert (blocks == blocks[0]).all(), f"{op.name}: partial quaternion"
                        weights[0][..., ~blocks[0], :] = 0.0
                    else:
                        weights[0][..., ~ins[0], :] = 0.0
                    layer.set_weights(weights)
                n = op.filters if hasattr(op, "filters") else op.units
                k = kept.get(op.name)
                unit = np.ones(n, bool) if k is None else np.isin(np.arange(n), k)
                masks[id(outs[0])] = np.tile(unit, 4) if quaternion else unit
                continue
            known = [m for m in ins if m is not None]
            if not known:
                continue
            cls = type(op).__name__
            if cls == "Concatenate" and op.axis in (-1, len(outs[0].shape) - 1):
                parts = [
                    m if m is not None else np.ones(t.shape[-1], bool)
                    for m, t in zip(ins, node.input_tensors)
                ]
                masks[id(outs[0])] = np.concatenate(parts)
            elif cls in ("Flatten", "Reshape"):  # channels repeated once per position
                masks[id(outs[0])] = np.tile(known[0], outs[0].shape[-1] // len(known[0]))
            else:
                width = outs[0].shape[-1]
                for m in known:
                    if len(m) != width:  # a single channel broadcast over all: must be kept
                        assert m.all(), f"{op.name}: a broadcast channel was removed"
                full = [m for m in known if len(m) == width]
                for other in full[1:]:
                    assert (other == full[0]).all(), f"{op.name}: merged branches disagree"
                if full:
                    masks[id(outs[0])] = full[0]
    return clone


def test_reference_zeroes_exactly_the_removed_channels():
    """The oracle itself: removing every filter of the only hidden layer leaves the bias path."""
    import types

    x = keras.Input((6,))
    h = keras.layers.Dense(4, name="h")(x)
    out = keras.layers.Dense(2, name="o")(h)
    model = randomise(keras.Model(x, out))
    row = types.SimpleNamespace(name="h", kept=[1, 3], filters_before=4)
    report = types.SimpleNamespace(layers_table=[row])
    ref = zeroed_reference(model, report)
    data = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    w_h, b_h = model.get_layer("h").get_weights()
    w_o, b_o = model.get_layer("o").get_weights()
    hidden = data @ w_h + b_h
    hidden[:, [0, 2]] = 0.0
    np.testing.assert_allclose(ref(data).numpy(), hidden @ w_o + b_o, rtol=1e-5, atol=1e-6)
