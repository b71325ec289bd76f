"""Pruning on hand-made filters and generic functional models (no model registry needed)."""

import json
import os

import keras
import numpy as np
import pytest
from keras import layers, ops
from test_pruning_oracle import randomise, zeroed_reference

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense
from keras_quaternion.pruning import (
    METHODS,
    PruningReport,
    build_dependency_graph,
    importance,
    operator_norm_scores,
    order_sensitivity,
    prune,
)

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# Scores


def naive_operator_norm(w):
    """The released algorithm written plainly: one SVD per input channel, loops everywhere."""
    n_f, n_c, _ = w.shape
    directions, means = [], []
    for c in range(n_c):
        a = w[:, c, :].astype(np.float64)
        mean = a.mean(axis=0)
        u, _, vt = np.linalg.svd(a - mean, full_matrices=False)
        first_row = np.outer(u[:, 0], vt[0])[0]
        directions.append(first_row / (np.linalg.norm(first_row) + 1e-12))
        means.append(mean)
    score = np.array(
        [
            sum(float(np.dot(w[f, c] - means[c], directions[c])) for c in range(n_c)) ** 2
            for f in range(n_f)
        ]
    )
    return score / score.max()


def test_operator_norm_ranks_hand_made_filters():
    # Every filter = shared base + a_f * (one fixed direction per input channel) + tiny noise:
    # the centred filters lie on one line per channel, so the score is ∝ (a_f - mean(a))².
    a = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    base = RNG.normal(size=(1, 3, 9))
    direction = RNG.normal(size=(1, 3, 9))
    w = base + a[:, None, None] * direction + 1e-6 * RNG.normal(size=(5, 3, 9))
    scores = operator_norm_scores(w)
    expected = (a - a.mean()) ** 2
    np.testing.assert_allclose(scores, expected / expected.max(), rtol=1e-4)
    assert list(np.argsort(scores)) == [3, 2, 1, 0, 4]


def test_operator_norm_matches_plain_implementation_and_ignores_the_mean_filter():
    w = RNG.normal(size=(7, 300, 9))  # 300 input channels: crosses the batching chunk
    np.testing.assert_allclose(operator_norm_scores(w), naive_operator_norm(w), rtol=1e-7)
    shifted = w + RNG.normal(size=(1, 300, 9))  # adding one filter to all changes nothing
    np.testing.assert_allclose(operator_norm_scores(shifted), operator_norm_scores(w), atol=1e-9)


def naive_unsigned_operator_norm(w):
    """The order-independent variant written plainly: squared projections, summed over channels."""
    n_f, n_c, _ = w.shape
    score = np.zeros(n_f)
    for c in range(n_c):
        a = w[:, c, :].astype(np.float64)
        centred = a - a.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        score += (centred @ vt[0]) ** 2
    return score / score.max()


def _decisions(scores, keep):
    return set(np.argsort(scores, kind="stable")[-keep:].tolist())


def test_released_operator_norm_depends_on_the_order_of_the_filters():
    # Each channel's direction is signed by filter 0, so moving another filter to the front can
    # flip channels' terms; over a few permutations some keep/prune decisions change.
    w = RNG.normal(size=(16, 12, 9))
    reference = _decisions(operator_norm_scores(w), 8)
    changed = 0
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(16)
        permuted = operator_norm_scores(w[order])
        unpermuted = np.empty(16)
        unpermuted[order] = permuted
        changed += len(reference ^ _decisions(unpermuted, 8))
    assert changed > 0


def test_unsigned_operator_norm_is_independent_of_the_order_and_matches_plain_svd():
    w = RNG.normal(size=(16, 300, 9))
    scores = operator_norm_scores(w, signed=False)
    np.testing.assert_allclose(scores, naive_unsigned_operator_norm(w), rtol=1e-7)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(16)
        np.testing.assert_allclose(operator_norm_scores(w[order], signed=False), scores[order])
    kernel = RNG.normal(size=(4, 3, 3, 5, 6))
    per_component = [
        naive_unsigned_operator_norm(kernel[n].reshape(9, 5, 6).transpose(2, 1, 0))
        for n in range(4)
    ]
    got = importance(kernel, "operator-norm-unsigned", quaternion=True)
    np.testing.assert_allclose(got, np.mean(per_component, axis=0), rtol=1e-7)


def test_quaternion_operator_norm_averages_the_four_components():
    kernel = RNG.normal(size=(4, 3, 3, 5, 6))  # (4, kh, kw, C, F)
    per_component = [
        naive_operator_norm(kernel[n].reshape(9, 5, 6).transpose(2, 1, 0)) for n in range(4)
    ]
    got = importance(kernel, "operator-norm", quaternion=True)
    np.testing.assert_allclose(got, np.mean(per_component, axis=0), rtol=1e-7)
    layer = QConv2D(6, 3)
    layer.build((None, 8, 8, 20))
    layer.kernel.assign(kernel.astype("float32"))
    np.testing.assert_allclose(importance(layer, "operator-norm"), got, rtol=1e-5)


def test_l1_uses_every_tap_and_component():
    kernel = np.ones((4, 3, 3, 2, 3))
    kernel[:, 1, 1, :, 0] = 50.0  # filter 0 is large only away from the first tap
    kernel[2, ..., 2] = 0.0  # filter 2 lost its j component
    scores = importance(kernel, "l1", quaternion=True)
    sums = np.abs(kernel).sum(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(scores, sums / sums.max())
    assert list(np.argsort(scores)) == [2, 1, 0]


def test_geometric_median_finds_the_redundant_filter():
    # Four filters; filter 1 sits at the geometric median of the set (FPGM prunes it first).
    filters = np.array([[0.0, 0.0], [1.0, 0.1], [2.0, 0.0], [1.0, 3.0]])
    kernel = filters.T[None, None]  # (1, 1, C=2, F=4)
    scores = importance(kernel, "geometric-median")
    dists = np.linalg.norm(filters[:, None] - filters[None], axis=-1).sum(axis=1)
    np.testing.assert_allclose(scores, dists / dists.max(), rtol=1e-9)
    assert int(np.argmin(scores)) == 1


def test_random_is_seeded():
    kernel = np.ones((3, 3, 2, 16))
    a = importance(kernel, "random", seed=3)
    assert np.array_equal(a, importance(kernel, "random", seed=3))
    assert not np.array_equal(a, importance(kernel, "random", seed=4))


def test_importance_errors():
    with pytest.raises(ValueError, match="Unknown pruning method 'taylor'"):
        importance(np.ones((3, 3, 2, 2)), "taylor")
    with pytest.raises(ValueError, match=r"\(4, \*taps, C, F\)"):
        importance(np.ones((3, 3, 2, 2)), "l1", quaternion=True)
    with pytest.raises(ValueError, match="BatchNormalization"):
        bn = layers.BatchNormalization()
        bn.build((None, 4))
        importance(bn, "l1")
    with pytest.raises(ValueError, match="contradicts"):
        dense = layers.Dense(3)
        dense.build((None, 4))
        importance(dense, "l1", quaternion=True)
    assert METHODS == (
        "operator-norm",
        "operator-norm-unsigned",
        "l1",
        "geometric-median",
        "random",
    )


# ---------------------------------------------------------------------------------------------
# Generic models


def residual_qmodel(whiten=False):
    """Quaternion convs, real and quaternion BN, a residual Add, ops pooling, dense heads."""
    inp = keras.Input((12, 8, 4))
    x = QConv2D(6, 3, padding="same", name="q1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="r1")(x)
    y = QConv2D(6, 3, padding="same", name="q2")(x)
    y = QBatchNormalization(whiten=whiten, name="qbn2")(y)
    z = layers.Add(name="res")([x, y])
    z = layers.AveragePooling2D(2, name="pool")(z)
    z = layers.Dropout(0.2, name="drop")(z)
    w = layers.Conv2D(10, 3, padding="same", name="c3")(z)
    w = layers.BatchNormalization(name="bn3")(w)
    w = layers.Activation("relu", name="act3")(w)
    m = ops.mean(w, axis=2)
    a = ops.max(m, axis=1) + ops.mean(m, axis=1)
    a = layers.Dense(12, activation="relu", name="fc1")(a)
    out = layers.Dense(3, name="out")(a)
    return randomise(keras.Model(inp, out, name="residual_q"))


def branch_model():
    """Concatenate of a quaternion and a real branch, Flatten into QDense, PReLU, 1-D convs."""
    inp = keras.Input((10, 8))
    a = QConv1D(3, 3, padding="same", name="qa")(inp)
    b = layers.Conv1D(4, 3, padding="same", name="rb")(inp)
    c = layers.Concatenate(name="cat")([a, b])  # 12 + 4 real channels
    c = layers.PReLU(name="prelu")(c)
    c = layers.MaxPooling1D(2, name="mp")(c)
    d = layers.Conv1D(8, 1, name="mix")(c)
    d = layers.Flatten(name="flat")(d)  # 5 positions x 8 channels
    d = QDense(3, name="qd")(d)
    out = layers.Dense(2, name="out")(d)
    return randomise(keras.Model(inp, out, name="branches"))


def sequential_model():
    return randomise(
        keras.Sequential(
            [
                keras.Input((9, 9, 4)),
                QConv2D(4, 3, name="s1"),
                layers.BatchNormalization(name="sbn"),
                layers.ReLU(),
                QConv2D(4, 3, name="s2"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(2, name="sout"),
            ],
            name="seq",
        )
    )


def assert_exact(model, pruned, report, data):
    ref = zeroed_reference(model, report)
    got = pruned(data, training=False).numpy()
    want = ref(data, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # And the pruning changed the function (the check above is not vacuous).
    assert np.abs(got - model(data, training=False).numpy()).max() > 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_residual_model_is_exact_and_smaller(method):
    model = residual_qmodel()
    pruned, report = prune(model, method, 0.5, seed=7)
    data = RNG.normal(size=(3, 12, 8, 4)).astype("float32")
    assert_exact(model, pruned, report, data)
    # q1 and q2 are joined by the Add: one shared choice, both 6 -> 3 quaternion filters.
    assert pruned.get_layer("q1").filters == pruned.get_layer("q2").filters == 3
    rows = {r.name: r for r in report.layers_table}
    assert rows["q1"].kept == rows["q2"].kept == rows["q2"].kept_inputs
    assert pruned.get_layer("c3").filters == 5
    assert tuple(pruned.get_layer("c3").kernel.shape) == (3, 3, 12, 5)
    assert tuple(pruned.get_layer("fc1").kernel.shape) == (5, 12)
    assert pruned.get_layer("fc1").units == 12  # dense layers are not pruned by default
    assert pruned.count_params() < model.count_params()
    assert report.params_after[0] == sum(int(np.prod(w.shape)) for w in pruned.trainable_weights)


def test_whitening_qbn_and_save_load(tmp_path):
    model = residual_qmodel(whiten=True)
    pruned, report = prune(model, "l1", 0.34)
    data = RNG.normal(size=(2, 12, 8, 4)).astype("float32")
    assert_exact(model, pruned, report, data)
    assert tuple(pruned.get_layer("qbn2").gamma.shape) == (4, 4, 4)  # 6 - round(2.04) = 4
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(data).numpy(), pruned(data).numpy(), rtol=1e-6, atol=1e-6)


def test_concatenate_flatten_qdense_prelu_exact():
    model = branch_model()
    pruned, report = prune(model, "operator-norm", 0.5)
    data = RNG.normal(size=(2, 10, 8)).astype("float32")
    assert_exact(model, pruned, report, data)
    # qa: 3 quaternion filters, round(1.5) = 2 (half up) removed. QDense reads the flattened
    # 5 x 8 channels of 'mix' as 10 quaternion units (channels i, i+10, i+20, i+30), which ties
    # mix's filters into two classes {0, 2, 4, 6} and {1, 3, 5, 7}: one class goes.
    assert pruned.get_layer("qa").filters == 1
    assert pruned.get_layer("rb").filters == 2
    assert pruned.get_layer("mix").filters == 4
    assert report.layers_table[[r.name for r in report.layers_table].index("mix")].kept in (
        [0, 2, 4, 6],
        [1, 3, 5, 7],
    )
    assert tuple(pruned.get_layer("qd").kernel.shape) == (4, 5, 3)


def test_sequential_model():
    model = sequential_model()
    pruned, report = prune(model, "geometric-median", 0.5)
    data = RNG.normal(size=(2, 9, 9, 4)).astype("float32")
    assert isinstance(pruned, keras.Sequential)
    assert_exact(model, pruned, report, data)


def test_residual_skip_and_skip_list():
    model = residual_qmodel()
    pruned, report = prune(model, "l1", 0.5, residual="skip")
    assert pruned.get_layer("q1").filters == 6 and pruned.get_layer("c3").filters == 5
    assert any("residual='skip'" in note for note in report.notes)
    pruned, report = prune(model, "l1", 0.5, skip=["q2"])  # its Add partner q1 stays too
    assert pruned.get_layer("q1").filters == 6 and pruned.get_layer("c3").filters == 5
    assert any("q2" in note for note in report.notes)
    pruned, _ = prune(model, "l1", 0.5, layers=["fc1"])  # dense units on request
    assert pruned.get_layer("fc1").units == 6 and pruned.get_layer("c3").filters == 10
    pruned, _ = prune(model, "l1", 0.25, per_layer={"c3": 0.5})
    assert pruned.get_layer("c3").filters == 5 and pruned.get_layer("q1").filters == 4


def test_dependency_graph_is_explicit():
    graph = build_dependency_graph(residual_qmodel())
    text = str(graph)
    assert "filter u -> channels [r|i|j|k] = u, 6+u, 12+u, 18+u" in text
    group = graph.group_of("q1")
    assert group.producers == ["q1", "q2"] and group.joined and len(group.units) == 6
    roles = {u.name: u.role for u in group.uses}
    assert roles == {
        "bn1": "per-channel",
        "r1": "pass-through",
        "q2": "consumer",
        "qbn2": "per-channel",
        "res": "merge",
        "pool": "pass-through",
        "drop": "pass-through",
        "c3": "consumer",
    }
    out_group = graph.group_of("out")
    assert not out_group.free and "reaches the model output 'out'" in text
    data = graph.to_dict()
    json.dumps(data)
    assert data["producers"][0]["channel_map"] == "filter u -> channels u, 6+u, 12+u, 18+u"


def test_unknown_layer_stops_with_its_name():
    inp = keras.Input((8, 8, 4))
    x = QConv2D(4, 3, name="q1")(inp)
    x = layers.UnitNormalization(name="unit_norm")(x)  # mixes channels: not understood
    out = layers.Dense(2, name="out")(layers.Flatten()(x))
    model = keras.Model(inp, out)
    with pytest.raises(ValueError, match=r"'unit_norm' of type UnitNormalization.*skip=\['q1'\]"):
        prune(model, "l1", 0.5)
    pruned, _ = prune(model, "l1", 0.5, skip=["q1"])
    assert pruned.get_layer("q1").filters == 4


def test_channels_reaching_the_output_or_input_sum_are_fixed():
    inp = keras.Input((8, 8, 4))
    x = QConv2D(1, 3, padding="same", name="q1")(inp)
    x = layers.Add(name="skip_in")([x, inp])  # summed with the model input
    x = QConv2D(3, 3, padding="same", name="q2")(x)
    model = keras.Model(inp, x)
    pruned, report = prune(model, "l1", 0.5)
    assert pruned.get_layer("q1").filters == 1 and pruned.get_layer("q2").filters == 3
    text = " ".join(report.notes)
    assert "skip_in" in text and "reaches the model output 'q2'" in text
    with pytest.raises(ValueError, match="reaches the model output"):
        prune(model, "l1", 0.5, layers=["q2"])


def test_argument_errors():
    model = residual_qmodel()
    for bad in (-0.1, 1.0, 1.5, "half", None, True):
        with pytest.raises(ValueError, match=r"ratio must be .*\[0, 1\)"):
            prune(model, "l1", bad)
    with pytest.raises(ValueError, match="Unknown pruning method 'fpgm'"):
        prune(model, "fpgm", 0.5)
    with pytest.raises(
        ValueError, match="per_layer: there is no layer 'conv9'.*Layers with prunable"
    ):
        prune(model, "l1", 0.5, per_layer={"conv9": 0.5})
    with pytest.raises(ValueError, match=r"per_layer\['c3'\] must be in \[0, 1\)"):
        prune(model, "l1", 0.5, per_layer={"c3": 1.2})
    with pytest.raises(ValueError, match="skip names layer 'bn1' of type BatchNormalization"):
        prune(model, "l1", 0.5, skip=["bn1"])
    with pytest.raises(ValueError, match="Cannot prune these filters as selected: q1 is joined"):
        prune(model, "l1", 0.5, layers=["q1"])
    with pytest.raises(ValueError, match="must share one ratio"):
        prune(model, "l1", 0.5, per_layer={"q1": 0.25, "q2": 0.5})
    with pytest.raises(ValueError, match="would remove all 6 prunable filters"):
        prune(model, "l1", 0.95)
    with pytest.raises(ValueError, match="residual must be one of"):
        prune(model, "l1", 0.5, residual="merge")
    with pytest.raises(ValueError, match="layers must be 'all', 'paper' or a list"):
        prune(model, "l1", 0.5, layers="some")
    with pytest.raises(ValueError, match="layers='paper' is defined for"):
        prune(model, "l1", 0.5, layers="paper")


def test_report_round_trip_and_atomic_save(tmp_path):
    model = residual_qmodel()
    _, report = prune(model, "operator-norm", 0.5)
    again = PruningReport.from_json(report.to_json())
    assert again == report
    md = report.to_markdown()
    assert "| q1 | QConv2D | producer | 6 -> 3 |" in md
    json_path, md_path = report.save(tmp_path / "out")
    assert json.loads(json_path.read_text())["layers_table"][0]["name"] == "q1"
    assert md_path.read_text() == md
    assert sorted(os.listdir(tmp_path / "out")) == ["pruning_report.json", "pruning_report.md"]
    with pytest.raises(ValueError, match="Not a pruning report"):
        PruningReport.from_json('{"model": "x"}')
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        report.save(tmp_path / "file")


def test_custom_layer_can_be_registered_channel_preserving():
    from keras_quaternion.pruning import register_channel_preserving

    class Scale(layers.Layer):  # a custom layer the graph cannot know about
        def call(self, x):
            return x * 2.0 + 1.0

    def build():
        inp = keras.Input((8, 8, 4))
        x = QConv2D(4, 3, name="q1")(inp)
        x = Scale(name="scale")(x)
        x = layers.GlobalAveragePooling2D()(x)
        return randomise(keras.Model(inp, layers.Dense(2, name="out")(x)))

    model = build()
    with pytest.raises(ValueError, match="'scale' of type Scale"):
        prune(model, "l1", 0.5)
    register_channel_preserving(Scale)
    pruned, report = prune(model, "l1", 0.5)
    assert pruned.get_layer("q1").filters == 2
    assert_exact(model, pruned, report, RNG.normal(size=(2, 8, 8, 4)).astype("float32"))
    with pytest.raises(TypeError, match="Layer subclass"):
        register_channel_preserving(object)


def test_single_channel_and_broadcast_merges():
    inp = keras.Input((8, 8, 3))
    a = layers.Conv2D(1, 3, padding="same", name="a")(inp)  # one channel each: still tied
    b = layers.Conv2D(1, 3, padding="same", name="b")(inp)
    gate = layers.Multiply(name="gate")([layers.Add(name="ab")([a, b]), inp])  # broadcast 1 -> 3
    c = layers.Conv2D(4, 3, padding="same", name="c")(inp)
    d = layers.Multiply(name="scale")([c, a])  # a broadcast over c's channels
    x = layers.Concatenate(name="cat")([gate, d])
    out = layers.Dense(2, name="out")(layers.GlobalAveragePooling2D()(x))
    model = randomise(keras.Model(inp, out))
    graph = build_dependency_graph(model)
    assert graph.group_of("a").producers == ["a", "b"]
    assert not graph.group_of("a").free  # broadcast: cannot drop the single channel
    assert len(graph.group_of("c").free) == 4
    pruned, report = prune(model, "l1", 0.5)
    assert pruned.get_layer("a").filters == 1 and pruned.get_layer("c").filters == 2
    assert_exact(model, pruned, report, RNG.normal(size=(2, 8, 8, 3)).astype("float32"))


def test_ratio_zero_rebuilds_the_same_function():
    model = residual_qmodel()
    same, report = prune(model, "operator-norm", 0.0)
    data = RNG.normal(size=(2, 12, 8, 4)).astype("float32")
    np.testing.assert_allclose(same(data).numpy(), model(data).numpy(), rtol=1e-6, atol=1e-6)
    assert report.params_after == report.params_before
    assert same is not model and same.get_layer("q1") is not model.get_layer("q1")


def test_pruned_model_trains():
    pruned, _ = prune(residual_qmodel(), "l1", 0.5)
    pruned.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
    data = RNG.normal(size=(4, 12, 8, 4)).astype("float32")
    target = RNG.normal(size=(4, 3)).astype("float32")
    before = [w.numpy().copy() for w in pruned.trainable_weights]
    loss = pruned.train_on_batch(data, target)
    assert np.isfinite(loss)
    after = [w.numpy() for w in pruned.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after) if a.ndim > 1)


def test_order_sensitivity_measures_the_released_formula_and_zero_for_the_others():
    kernel = RNG.normal(size=(4, 3, 3, 8, 16))
    assert order_sensitivity(kernel, "operator-norm", quaternion=True) > 0.0
    for method in ("operator-norm-unsigned", "l1", "geometric-median"):
        assert order_sensitivity(kernel, method, quaternion=True) == 0.0
    layer = QConv2D(6, 3)
    layer.build((None, 8, 8, 20))
    assert order_sensitivity(layer, "operator-norm-unsigned", permutations=2) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "random"}, "has no order"),
        ({"method": "l1", "ratio": 1.0}, "ratio must be in"),
        ({"method": "l1", "permutations": 0}, "permutations must be"),
    ],
)
def test_order_sensitivity_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        order_sensitivity(RNG.normal(size=(3, 3, 2, 4)), **kwargs)
