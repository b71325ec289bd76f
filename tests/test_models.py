"""Model registry: PANNs' exact parameter counts, quaternion twins, shapes, save/load, training."""

import functools
import math
import os

import keras
import numpy as np
import pytest

from keras_quaternion import QBatchNormalization, QConv2D, QDense, models
from keras_quaternion.counting import count_params

# Trainable parameters of PANNs' own PyTorch models with classes_num=527, mel_bins=64, and of the
# authors' released QCNN14 architecture (issue 3).
PANNS_TRAINABLE = {
    "cnn6": 4_837_455,
    "cnn10": 5_219_279,
    "cnn14": 80_753_615,
    "resnet22": 63_675_087,
    "resnet38": 73_783_247,
    "qcnn14": 21_012_431,
}
TWINS = [("cnn6", "qcnn6"), ("cnn10", "qcnn10"), ("cnn14", "qcnn14")]
TWINS += [("resnet22", "qresnet22"), ("resnet38", "qresnet38")]


def full_size(name):
    return models.build(name, classes=527)


@functools.lru_cache(maxsize=2)
def half_width(name):
    return models.build(name, classes=527, width=0.5)


def conv_kernels(model):
    """{layer name: number of kernel weights} of every (Q)Conv2D / (Q)Dense layer."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, QConv2D | QDense | keras.layers.Conv2D | keras.layers.Dense):
            out[layer.name] = math.prod(layer.kernel.shape)
    return out


def test_names_and_describe():
    assert models.names() == [
        "cnn6",
        "cnn10",
        "cnn14",
        "resnet22",
        "resnet38",
        "qcnn6",
        "qcnn10",
        "qcnn14",
        "qresnet22",
        "qresnet38",
        "mccnn14",
    ]
    assert models.describe("cnn6").min_mels == 16
    assert models.describe("resnet38").min_frames == 32
    assert models.describe("mccnn14").input_channels == 4
    assert not models.describe("mccnn14").quaternion
    assert models.describe("QCNN14").quaternion  # names are case-insensitive


@pytest.mark.parametrize("name", sorted(PANNS_TRAINABLE))
def test_exact_panns_trainable_parameters(name):
    model = full_size(name)
    trainable, non_trainable = count_params(model)
    assert trainable == PANNS_TRAINABLE[name]
    # non-trainable = BN moving mean + variance: bn0 (64 mel bins) + one per conv output channel
    bn_channels = sum(
        layer.moving_mean.shape[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert non_trainable == 2 * bn_channels
    bn0 = model.get_layer("bn0")
    assert bn0.count_params() == 4 * 64 and len(bn0.trainable_weights) == 2


@pytest.mark.parametrize("real, quat", TWINS)
def test_quaternion_twin_has_a_quarter_of_the_conv_weights(real, quat):
    # width 0.5 keeps every width a multiple of 4 (the property holds at any such width) and
    # builds 4x fewer weights than full size; full-size counts are checked above.
    r_kernels = conv_kernels(half_width(real))
    q_model = half_width(quat)
    q_kernels = conv_kernels(q_model)
    assert r_kernels.keys() == q_kernels.keys()  # same layer names, same structure
    for name, r in r_kernels.items():
        if name == "conv_block1_conv1":
            assert q_kernels[name] == r  # 1 quaternion input (4 channels) vs 1 real channel
        elif name == "fc_audioset":
            assert q_kernels[name] == r  # real output layer in both
        else:
            assert 4 * q_kernels[name] == r, name
    assert isinstance(q_model.get_layer("fc1"), QDense)
    assert isinstance(q_model.get_layer("conv_block1_bn1"), keras.layers.BatchNormalization)
    assert q_model.input_shape == (None, None, 64, 4)
    assert half_width(real).input_shape == (None, None, 64, 1)
    # same real widths: every conv/bn output has as many real channels as the real twin's
    for layer in half_width(real).layers[2:]:  # after the input and bn0
        assert q_model.get_layer(layer.name).output.shape == layer.output.shape, layer.name


def test_layer_names_used_by_pruning_and_export():
    cnn14 = models.build("cnn14", classes=3, n_mels=32, width=0.0625)
    names = {layer.name for layer in cnn14.layers}
    for block in range(1, 7):
        for part in ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "dropout"):
            assert f"conv_block{block}_{part}" in names
    assert {"bn0", "freq_mean", "time_pool", "head_dropout", "fc1", "fc_audioset"} <= names
    assert "conv_block6_pool" not in names  # PANNs' (1, 1) pooling is the identity
    resnet38 = models.build("qresnet38", classes=3, n_mels=32, width=0.0625)
    names = {layer.name for layer in resnet38.layers}
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for block in range(1, blocks + 1):
            prefix = f"resnet_layer{stage}_block{block}"
            assert {f"{prefix}_conv1", f"{prefix}_bn2", f"{prefix}_add"} <= names
            has_shortcut = f"{prefix}_downsample_conv" in names
            assert has_shortcut == (stage > 1 and block == 1), prefix
        assert f"resnet_layer{stage}_block{blocks + 1}_conv1" not in names
    assert {"conv_block_after1_conv1", "conv_block_after1_conv2", "resnet_pool"} <= names


def test_bn0_normalises_each_mel_bin_over_all_components():
    model = models.build("qcnn6", classes=3, n_mels=16, width=0.125)
    bn0 = model.get_layer("bn0")
    rng = np.random.default_rng(0)
    offsets = np.arange(16, dtype="float32") * 3.0  # per mel bin
    component = np.array([0.0, 1.0, -1.0, 2.0], "float32")  # per component: must NOT be removed
    x = rng.normal(size=(8, 20, 16, 4)).astype("float32") + offsets[:, None] + component
    y = np.asarray(bn0(x, training=True))
    per_mel = y.mean(axis=(0, 1, 3))
    np.testing.assert_allclose(per_mel, 0.0, atol=1e-4)
    per_component = y.mean(axis=(0, 1, 2))
    assert np.ptp(per_component) > 0.5  # shared statistics keep the components' differences
    assert tuple(bn0.gamma.shape) == (16,)


@pytest.mark.parametrize("name", models.names())
def test_forward_shapes_with_two_frame_counts(name):
    spec = models.describe(name)
    model = models.build(name, classes=5, n_mels=spec.min_mels, width=0.0625)
    for frames in (spec.min_frames, spec.min_frames + 13):
        x = np.zeros((2, frames, spec.min_mels, spec.input_channels), "float32")
        y = np.asarray(model(x))
        assert y.shape == (2, 5)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)  # softmax


def test_fixed_frames_multi_label_and_width():
    model = models.build("cnn10", classes=7, n_mels=40, frames=50, multi_label=True, width=0.25)
    assert model.input_shape == (None, 50, 40, 1)
    assert model.get_layer("fc_audioset").activation.__name__ == "sigmoid"
    assert model.get_layer("conv_block4_conv2").filters == 128  # 512 * 0.25
    y = np.asarray(model(np.random.default_rng(1).normal(size=(3, 50, 40, 1)).astype("float32")))
    assert y.shape == (3, 7) and ((y > 0) & (y < 1)).all() and not np.allclose(y.sum(1), 1)
    tiny = models.build("qcnn14", classes=2, width=0.01)  # 64 * 0.01 -> 1 quaternion filter
    assert tiny.get_layer("conv_block1_conv1").filters == 1
    assert tiny.get_layer("conv_block6_conv2").filters == 5  # round(2048 * 0.01 / 4)
    assert models.build("cnn6", classes=2, width=0.001).get_layer("conv_block1_conv1").filters == 1
    assert models.build("qcnn6", classes=2, model_name="kws").name == "kws"


def test_quaternion_bn_modes_and_zero_init_residual_gamma():
    for bn, whiten in (("quaternion", False), ("whiten", True)):
        model = models.build("qresnet22", classes=3, n_mels=32, width=0.125, bn=bn)
        norms = [layer for layer in model.layers if layer.name.endswith(("_bn1", "_bn2"))]
        assert norms and all(isinstance(n, QBatchNormalization) for n in norms)
        assert all(n.whiten == whiten for n in norms)
        bn2 = model.get_layer("resnet_layer2_block1_bn2")
        assert not np.any(np.asarray(bn2.gamma)) and np.any(np.asarray(norms[0].gamma))
        assert isinstance(model.get_layer("bn0"), keras.layers.BatchNormalization)
    real = models.build("resnet22", classes=3, n_mels=32, width=0.125)
    assert not np.any(np.asarray(real.get_layer("resnet_layer1_block2_bn2").gamma))


def test_dropout_rates_follow_panns_and_can_be_changed():
    def rates(model):
        return sorted(
            (layer.name, layer.rate)
            for layer in model.layers
            if isinstance(layer, keras.layers.Dropout)
        )

    cnn6 = rates(models.build("cnn6", classes=2, n_mels=16, width=0.125))
    expected = [(f"conv_block{b}_dropout", 0.2) for b in range(1, 5)] + [("head_dropout", 0.5)]
    assert cnn6 == sorted(expected)
    res = dict(rates(models.build("resnet22", classes=2, n_mels=32, width=0.125)))
    assert res["resnet_layer1_block1_dropout"] == 0.1 and res["resnet_dropout"] == 0.2
    none = models.build("qcnn6", classes=2, n_mels=16, width=0.125, dropout=0.0)
    assert rates(none) == []
    head = dict(rates(models.build("cnn6", classes=2, n_mels=16, dropout={"head": 0.3})))
    assert head["head_dropout"] == 0.3 and head["conv_block1_dropout"] == 0.2


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    rng = np.random.default_rng(2)
    cases = [("qcnn6", "quaternion", 16), ("qresnet22", "real", 32)]
    for name, bn, mels in cases:
        model = models.build(name, classes=4, n_mels=mels, width=0.0625, bn=bn)
        x = rng.normal(size=(3, 40, mels, 4)).astype("float32")
        model(x, training=True)  # move the BN statistics away from their initial values
        path = os.path.join(tmp_path, f"{name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert [w.name for w in loaded.weights] == [w.name for w in model.weights]
        np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("name", ["qcnn6", "qresnet22"])
def test_qconv_algorithm_switches_every_quaternion_layer(name, tmp_path):
    kwargs = dict(classes=4, n_mels=32, width=0.0625)
    standard = models.build(name, **kwargs)
    fast = models.build(name, qconv_algorithm="fast", **kwargs)
    quaternion = [la for la in fast.layers if isinstance(la, QConv2D | QDense)]
    assert quaternion and all(la.algorithm == "fast" for la in quaternion)
    assert all(
        la.algorithm == "standard" for la in standard.layers if isinstance(la, QConv2D | QDense)
    )
    assert [(w.name, w.shape) for w in fast.weights] == [
        (w.name, w.shape) for w in standard.weights
    ]
    fast.set_weights(standard.get_weights())
    x = np.random.default_rng(4).normal(size=(2, 40, 32, 4)).astype("float32")
    want = standard(x, training=False).numpy()
    np.testing.assert_allclose(fast(x, training=False).numpy(), want, rtol=1e-4, atol=1e-6)
    path = os.path.join(tmp_path, f"{name}.keras")
    fast.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("fc1").algorithm == "fast"
    np.testing.assert_allclose(loaded(x, training=False).numpy(), want, rtol=1e-4, atol=1e-6)


def test_a_few_optimizer_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    model = models.build("qcnn6", classes=3, n_mels=16, width=0.125, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 32, 16, 4)).astype("float32")
    y = np.arange(12) % 3
    x += y[:, None, None, None].astype("float32")  # learnable: class shifts the features
    losses = [float(model.train_on_batch(x, y)) for _ in range(12)]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "cnn15"}, "known models: cnn6, cnn10, cnn14"),
        ({"classes": 1}, "classes must be >= 2"),
        ({"classes": 2.5}, "classes must be an int"),
        ({"width": 0}, "width must be a number in (0, 4]"),
        ({"width": 4.5}, "width must be a number in (0, 4]"),
        ({"width": "wide"}, "width must be a number"),
        ({"n_mels": 31}, "n_mels must be >= 32 (cnn14 halves the mel axis 5 times"),
        ({"name": "cnn6", "n_mels": 15}, "n_mels must be >= 16"),
        ({"frames": 20}, "frames must be >= 32"),
        ({"bn": "quaternion"}, "bn='quaternion' is not available for cnn14; allowed: 'real'"),
        ({"name": "qcnn14", "bn": "layer"}, "allowed: 'real', 'quaternion', 'whiten'"),
        ({"dropout": 1.0}, "dropout rate 'block' must be in [0, 1)"),
        ({"dropout": {"fc": 0.1}}, "unknown dropout key(s) ['fc']"),
        ({"multi_label": "yes"}, "multi_label must be True or False"),
        ({"qconv_algorithm": "fast"}, "qconv_algorithm='fast' is not available for cnn14"),
        ({"name": "qcnn6", "qconv_algorithm": "Fast"}, "allowed: 'standard', 'fast' (or None)"),
    ],
)
def test_errors_say_what_is_allowed(kwargs, message):
    kwargs = {"name": "cnn14", "classes": 10, **kwargs}
    name = kwargs.pop("name")
    with pytest.raises(ValueError) as info:
        models.build(name, **kwargs)
    assert message in str(info.value)
