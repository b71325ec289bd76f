"""Pruning every registry architecture: exact rebuilt models, save/load, the authors' plan."""

import keras
import numpy as np
import pytest
from test_pruning_oracle import randomise, zeroed_reference

from keras_quaternion import QConv2D, QDense, models
from keras_quaternion.pruning import METHODS, paper_plan, prune

FRAMES, MELS = 32, 32


def tiny(name, **kwargs):
    # width 0.125 keeps >= 2 filters (quaternion: >= 2 quaternion filters) in every layer.
    model = models.build(name, classes=5, n_mels=MELS, frames=FRAMES, width=0.125, **kwargs)
    return randomise(model, seed=sum(map(ord, name)))


def outputs_of(model, names):
    return keras.Model(model.input, [model.get_layer(n).output for n in names])


@pytest.mark.parametrize("name", models.names())
def test_every_registry_model_prunes_exactly(name, tmp_path):
    model = tiny(name)
    method = METHODS[sum(map(ord, name)) % len(METHODS)]  # spread the methods over the models
    pruned, report = prune(model, method, 0.5, seed=1)
    channels = model.input_shape[-1]
    data = np.random.default_rng(0).normal(size=(2, FRAMES, MELS, channels)).astype("float32")
    reference = zeroed_reference(model, report)
    # Compare fc1's output (before the softmax squashes differences) and the probabilities.
    got = outputs_of(pruned, ["fc1", "fc_audioset"])(data, training=False)
    want = outputs_of(reference, ["fc1", "fc_audioset"])(data, training=False)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)
    original = outputs_of(model, ["fc1"])(data, training=False)
    assert np.abs(got[0].numpy() - original.numpy()).max() > 1e-3  # pruning changed something
    # Every convolution lost filters (a quarter of the MACs left, give or take rounding).
    for row in report.layers_table:
        if row.class_name in ("Conv2D", "QConv2D"):
            assert row.filters_after < row.filters_before, row.name
    assert 0.15 < report.macs_ratio < 0.4
    assert report.params_after[0] < 0.5 * report.params_before[0]
    path = tmp_path / f"{name}.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded(data, training=False).numpy(), got[1].numpy(), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("name", ["qcnn6", "qresnet22"])
def test_fast_models_prune_exactly_and_stay_fast(name, tmp_path):
    model = tiny(name, qconv_algorithm="fast")
    pruned, report = prune(model, "operator-norm", 0.5, seed=1)
    quaternion = [la for la in pruned.layers if isinstance(la, QConv2D | QDense)]
    assert quaternion and all(la.algorithm == "fast" for la in quaternion)
    data = np.random.default_rng(0).normal(size=(2, FRAMES, MELS, 4)).astype("float32")
    got = outputs_of(pruned, ["fc1", "fc_audioset"])(data, training=False)
    want = outputs_of(zeroed_reference(model, report), ["fc1", "fc_audioset"])(data, training=False)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)
    # the same pruning of the standard model: same kept filters, same weights, same function
    standard = tiny(name)
    standard_pruned, standard_report = prune(standard, "operator-norm", 0.5, seed=1)
    assert [r.kept for r in standard_report.layers_table] == [r.kept for r in report.layers_table]
    np.testing.assert_allclose(
        standard_pruned(data, training=False).numpy(), got[1].numpy(), rtol=1e-5, atol=1e-6
    )
    assert 0.15 < report.macs_ratio < 0.4
    path = tmp_path / f"{name}-fast.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("fc1").algorithm == "fast"
    np.testing.assert_allclose(
        loaded(data, training=False).numpy(), got[1].numpy(), rtol=1e-6, atol=1e-6
    )


def test_resnet_residual_groups_share_filters():
    model = tiny("qresnet22")
    pruned, report = prune(model, "l1", 0.5)
    rows = {r.name: r for r in report.layers_table}
    # conv_block1_conv2 feeds stage 1's identity shortcuts: it and every block's conv2 in stage 1
    # are one group and keep the same quaternion filters.
    stage1 = ["conv_block1_conv2", "resnet_layer1_block1_conv2", "resnet_layer1_block2_conv2"]
    assert len({tuple(rows[n].kept) for n in stage1}) == 1
    stage2 = ["resnet_layer2_block1_downsample_conv", "resnet_layer2_block2_conv2"]
    assert rows[stage2[0]].kept == rows[stage2[1]].kept
    assert rows[stage2[0]].group == rows[stage2[1]].group != rows[stage1[0]].group
    # residual="skip" leaves those groups whole and prunes the rest.
    pruned, report = prune(model, "l1", 0.5, residual="skip")
    assert pruned.get_layer("resnet_layer1_block1_conv2").filters == 2
    assert pruned.get_layer("resnet_layer1_block1_conv1").filters == 1
    assert any("residual='skip'" in note for note in report.notes)


def test_paper_plan_on_full_size_qcnn14():
    """The authors' plan at p = 0.5: about 6.6 M parameters and 12.5 G MACs per 10 s clip."""
    model = models.build("qcnn14", classes=527, n_mels=64)
    assert paper_plan(model) == [f"conv_block{b}_conv{c}" for b in (4, 5, 6) for c in (1, 2)]
    pruned, report = prune(model, "operator-norm", 0.5, layers="paper")
    assert report.frames == 1001
    assert report.params_before[0] == 21_012_431
    assert report.params_after[0] == pytest.approx(6.6e6, rel=0.01)
    assert report.macs_after == pytest.approx(12.5e9, rel=0.01)
    rows = {r.name: r for r in report.layers_table}
    assert rows["conv_block3_conv2"].filters_after == 64  # untouched
    assert rows["conv_block4_conv1"].filters_after == 64  # 128 -> 64
    assert rows["conv_block6_conv2"].filters_after == 256
    assert rows["fc1"].inputs_after == 256 and rows["fc1"].filters_after == 512


def test_paper_plan_on_resnet38_prunes_only_the_after_block():
    model = tiny("resnet38")
    assert paper_plan(model) == ["conv_block_after1_conv1", "conv_block_after1_conv2"]
    pruned, report = prune(model, "geometric-median", 0.25, layers="paper")
    changed = {r.name for r in report.layers_table if r.role == "producer"}
    assert changed == {"conv_block_after1_conv1", "conv_block_after1_conv2", "fc1"}
    assert pruned.get_layer("conv_block_after1_conv2").filters == 192  # 256 - 64
