"""count_params / count_macs against hand-computed counts and PANNs' CNN14 figure."""

import keras
import numpy as np
import pytest

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense, models
from keras_quaternion.counting import count_macs, count_params


def _model(inputs, *layers):
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_count_params_trainable_non_trainable_and_shared_layers():
    inputs = keras.Input((10,))
    dense = keras.layers.Dense(10)
    y = keras.layers.BatchNormalization()(dense(dense(inputs)))  # dense used twice
    model = keras.Model(inputs, y)
    assert count_params(model) == (110 + 20, 20)
    q = _model(keras.Input((6, 8)), QConv1D(3, 3), QBatchNormalization())
    assert count_params(q) == (4 * 3 * 2 * 3 + 12 + 3 + 12, 12 + 3)
    with pytest.raises(ValueError, match="is not built"):
        count_params(keras.layers.Dense(3))
    with pytest.raises(TypeError, match="expected a keras Model or Layer"):
        count_params(np.zeros(3))


def _independent_cnn14_macs(frames, mels=64):
    """CNN14's conv + dense MACs from its description: 3x3 'same' convs, 2x2 pools (floor)."""
    total, t, m, c_in = 0, frames, mels, 1
    for block, c_out in enumerate((64, 128, 256, 512, 1024, 2048), start=1):
        total += t * m * 9 * (c_in * c_out + c_out * c_out)
        c_in = c_out
        if block < 6:
            t, m = t // 2, m // 2
    return total + 2048 * 2048 + 2048 * 527


def test_cnn14_macs_match_panns_figure_for_a_10s_clip():
    model = models.build("cnn14", classes=527)
    macs = count_macs(model, frames=1001)  # 10 s at 32 kHz, hop 320
    assert abs(macs - 20.04e9) / 20.04e9 < 0.01  # PANNs: 20.04 G conv + dense MACs
    assert macs == _independent_cnn14_macs(1001)
    assert count_macs(model, frames=501) == _independent_cnn14_macs(501)
    # quaternion twin: the same real ops, except the first conv reads 4 channels instead of 1
    first = 1001 * 64 * 9 * 64
    assert count_macs(models.build("qcnn14", classes=527), frames=1001) == macs + 3 * first
    # fast quaternion layers: 8 instead of 16 real products per quaternion product
    fast = models.build("qcnn14", classes=527, qconv_algorithm="fast")
    assert count_macs(fast, frames=1001) == (macs + 3 * first - 2048 * 527) // 2 + 2048 * 527


def test_per_layer_rules_against_hand_counts():
    inputs = keras.Input((12, 10, 8))
    convs = [
        keras.layers.Conv2D(16, 3, strides=2, padding="same", groups=2, name="grouped"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="valid", name="depthwise"),
        keras.layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=1, name="separable"),
        QConv2D(3, (1, 3), padding="valid", name="qconv"),
        keras.layers.Conv2DTranspose(4, 2, strides=2, name="transpose"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.MaxPooling2D(2, name="pool"),
    ]
    x = inputs
    for layer in convs:
        x = layer(x)
    x = keras.layers.Reshape((-1, 4))(x)
    x = keras.layers.Dense(8, name="dense")(x)  # applied on (batch, 12, 4): per position
    x = QDense(2, name="qdense")(x)
    model = keras.Model(inputs, x)
    total, per = count_macs(model, per_layer=True)
    # shapes: 12x10x8 -> grouped 6x5x16 -> depthwise 4x3x32 -> separable 4x3x8 -> qconv 4x1x12
    # -> transpose 8x2x4 -> pool 4x1x4 -> reshape (4, 4) -> dense (4, 8) -> qdense (4, 8)
    expected = {
        "grouped": 6 * 5 * 9 * (8 // 2) * 16,  # 16 filters, each over 8 / 2 groups channels
        "depthwise": 4 * 3 * 9 * 32,  # one 3x3 filter per output channel
        "separable": 4 * 3 * (9 * 32 + 32 * 8),  # depthwise + pointwise
        "qconv": 4 * 1 * 3 * 8 * 12,  # the assembled real op: 8 -> 12 channels
        "transpose": 4 * 1 * 4 * 12 * 4,  # input positions * kernel * C_in * C_out
        "dense": 4 * 4 * 8,  # per position of the (4, 4) input
        "qdense": 4 * 8 * 8,  # 2 quaternion units = 8 real outputs, from 8 inputs
    }
    assert per == expected
    assert total == sum(expected.values())


def test_conv1d_qconv1d_and_nested_sequential_models():
    inner = keras.Sequential(
        [keras.Input((20, 4)), QConv1D(2, 5, name="q1"), keras.layers.Conv1D(3, 3, name="c1")],
        name="inner",
    )
    inputs = keras.Input((20, 4))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inner(inputs)))
    total, per = count_macs(model, per_layer=True)
    assert per == {"inner/q1": 16 * 5 * 4 * 8, "inner/c1": 14 * 3 * 8 * 3, "out": 14 * 3 * 2}
    assert total == sum(per.values())
    assert count_macs(inner) == 16 * 5 * 4 * 8 + 14 * 3 * 8 * 3


def test_variable_frames_need_frames_and_the_model_is_not_modified():
    model = models.build("qcnn6", classes=3, n_mels=16, width=0.125)
    nodes = {layer.name: len(layer._inbound_nodes) for layer in model.layers}
    with pytest.raises(ValueError, match="pass frames="):
        count_macs(model)
    small, large = count_macs(model, frames=16), count_macs(model, frames=160)
    assert large > 9 * small  # convs scale with the number of frames
    with pytest.raises(ValueError, match="conv_block4_pool"):
        count_macs(model, frames=8)  # too short for four 2x2 poolings
    with pytest.raises(ValueError, match="frames must be a positive int"):
        count_macs(model, frames=0)
    assert {layer.name: len(layer._inbound_nodes) for layer in model.layers} == nodes
    fixed = models.build("cnn6", classes=3, n_mels=16, frames=16, width=0.125)
    assert count_macs(fixed) == count_macs(fixed, frames=16)


def test_layers_without_a_mac_rule_are_reported():
    inputs = keras.Input((5,), dtype="int32")
    model = _model(inputs, keras.layers.Embedding(10, 4, name="embed"))
    with pytest.raises(ValueError, match="'embed' \\(Embedding\\) has weights but no MAC rule"):
        count_macs(model)
    with pytest.raises(TypeError, match="expected a keras.Model"):
        count_macs(keras.layers.Dense(2))
