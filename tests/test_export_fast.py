"""The ``fast`` export strategy: 8 real products between additions, builtin operators only."""

import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense, models  # noqa: E402
from keras_quaternion.cli.export import export_command  # noqa: E402
from keras_quaternion.export import inspect_tflite, run_litert, to_tflite  # noqa: E402
from keras_quaternion.export.macs import deployed_macs  # noqa: E402
from keras_quaternion.export.strategies import FastStrategy, get_strategy  # noqa: E402
from keras_quaternion.export.strategies.fast import (  # noqa: E402
    BIAS_PRODUCTS,
    FastQuaternion,
    fast_layer,
)
from keras_quaternion.export.tflite import convert_model  # noqa: E402
from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS  # noqa: E402
from keras_quaternion.pruning import prune  # noqa: E402


def _randomize_norms(model, seed):
    """Batch norms with statistics and gains far from the identity (per real channel or unit)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, QBatchNormalization) and layer.whiten:
            continue
        if isinstance(layer, (QBatchNormalization, keras.layers.BatchNormalization)):
            for name in ("moving_mean", "beta"):
                var = getattr(layer, name)
                var.assign(rng.normal(size=var.shape))
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, size=layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 2.0, size=layer.gamma.shape))
    return model


def net(*, rank=2, bn="real", units=3, kernel=3, strides=1, dilation=1, padding="same",
        use_bias=True, algorithm="standard", seed=0):  # fmt: skip
    """A quaternion convolution (+ batch norm + ReLU), pooling, a QDense and a real head."""
    keras.utils.set_random_seed(seed)
    shape = (13, 9, 8) if rank == 2 else (17, 8)
    x = keras.Input(shape, name="features")
    conv = QConv2D if rank == 2 else QConv1D
    y = conv(units, kernel, strides=strides, dilation_rate=dilation, padding=padding,
             use_bias=use_bias, algorithm=algorithm, name="qconv")(x)  # fmt: skip
    if bn == "real":
        y = keras.layers.BatchNormalization(name="bn")(y)
    elif bn is not None:
        y = QBatchNormalization(whiten=bn == "whiten", name="bn")(y)
    y = keras.layers.ReLU(name="relu")(y)
    pool = keras.layers.GlobalAveragePooling2D if rank == 2 else keras.layers.GlobalAveragePooling1D
    y = QDense(2, activation="relu", use_bias=use_bias, algorithm=algorithm, name="qdense")(
        pool(name="gap")(y)
    )
    y = keras.layers.Dense(3, name="head")(y)
    return _randomize_norms(keras.Model(x, y, name="qnet"), seed), shape


CONFIGS = [
    dict(),
    dict(bn="quaternion", padding="valid", strides=2),
    dict(bn=None, dilation=2, use_bias=False),
    dict(kernel=(1, 5), strides=(2, 1), algorithm="fast"),
    dict(rank=1, kernel=5, strides=2, bn="quaternion"),
    dict(rank=1, kernel=3, dilation=3, padding="valid", bn=None),
]


def test_bias_rides_on_the_products_that_reach_one_output_block():
    assert BIAS_PRODUCTS == (0, 1, 2, 3)


@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_float_export_equals_the_expanded_model(config):
    model, shape = net(**config)
    x = np.random.default_rng(1).normal(size=(6, *shape)).astype("float32")
    expanded = to_tflite(model, int8=False)
    fast = to_tflite(model, int8=False, quaternion="fast")
    want = run_litert(expanded, x, reference=True)
    got = run_litert(fast, x, reference=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * (1 + np.abs(want).max()))
    np.testing.assert_allclose(got.reshape(6, -1), np.asarray(model(x)), rtol=0, atol=1e-3)
    ops = [op.name for op in inspect_tflite(fast).operators]
    assert ops.count("CONV_2D") == 16 and {"ADD", "SUB", "SPLIT"} <= set(ops)  # 8 per layer
    assert ("DEPTHWISE_CONV_2D" in ops) == (config.get("bn", "real") == "real")


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[4]], ids=["conv2d", "conv1d"])
def test_int8_export_verifies_on_both_runtimes_with_builtins_only(config):
    model, shape = net(**config)
    calib = np.random.default_rng(2).normal(size=(32, *shape)).astype("float32")
    # verify=True: LiteRT's reference kernels and TFLite Micro give the same int8 outputs
    conversion = convert_model(model, representative_data=calib, quaternion="fast")
    assert conversion.strategy_used == "fast"
    kinds = inspect_tflite(conversion.flatbuffer).op_kinds
    assert all(k in TFLM_BUILTIN_OPS for k in kinds), kinds
    assert [(x.layer, x.fast) for x in conversion.layers] == [("qconv", True), ("qdense", True)]
    norms = {"real": "affine", "quaternion": "folded"}
    assert conversion.layers[0].batch_norm == norms[config.get("bn", "real")]
    expanded = to_tflite(model, representative_data=calib, verify=False)
    a = run_litert(expanded, calib[:16], reference=True).astype(int)
    b = run_litert(conversion.flatbuffer, calib[:16], reference=True).astype(int)
    assert np.mean(np.argmax(a, -1) == np.argmax(b, -1)) >= 0.8  # int8 rounding differs


def _conv_macs(flatbuffer):
    """Multiply-accumulates of the CONV_2D operators alone (the quaternion products)."""
    info = inspect_tflite(flatbuffer)
    total = 0
    for op in info.operators:
        if op.name == "CONV_2D":
            _, kh, kw, cin = info.tensors[op.inputs[1]].shape
            total += kh * kw * cin * int(np.prod(info.tensors[op.outputs[0]].shape))
    return total


def test_deployed_convolution_macs_are_half_and_additions_count_zero():
    keras.utils.set_random_seed(3)
    x = keras.Input((12, 10, 32))  # C = 8 units in, F = 8 units out
    y = QConv2D(8, 3, padding="same", name="qc")(x)
    y = QDense(8, name="qd")(keras.layers.GlobalAveragePooling2D()(y))
    wide = keras.Model(x, y)
    calib = np.random.default_rng(3).normal(size=(8, 12, 10, 32)).astype("float32")
    expanded = to_tflite(wide, representative_data=calib, verify=False)
    fast = to_tflite(wide, representative_data=calib, quaternion="fast")
    assert deployed_macs(fast) / deployed_macs(expanded) == pytest.approx(0.5)
    # every multiply-accumulate is in the products' CONV_2Ds: additions count 0
    assert deployed_macs(fast) == _conv_macs(fast)
    assert set(inspect_tflite(fast).op_kinds) >= {"ADD", "SUB"}


def test_grouped_variant_is_one_grouped_conv_and_verifies():
    model, shape = net(units=2, bn="quaternion")
    calib = np.random.default_rng(4).normal(size=(16, *shape)).astype("float32")
    strategy = FastStrategy(grouped=True)
    assert get_strategy(strategy) is strategy
    conversion = convert_model(model, representative_data=calib, quaternion=strategy)
    info = inspect_tflite(conversion.flatbuffer)
    convs = [op for op in info.operators if op.name == "CONV_2D"]
    filters = [info.tensors[op.inputs[1]].shape for op in convs]
    inputs = [info.tensors[op.inputs[0]].shape[-1] for op in convs]
    # qconv: 8 groups of C = 2 -> F = 2; qdense (C = 2 from 8 real channels): 1x1, 8 groups
    assert filters == [(16, 3, 3, 2), (16, 1, 1, 2)] and inputs == [16, 16]
    fast = to_tflite(model, representative_data=calib, quaternion="fast", verify=False)
    assert deployed_macs(conversion.flatbuffer) == deployed_macs(fast)


def test_layer_whose_norm_mixes_components_stays_expanded():
    model, shape = net(bn="whiten")
    bn = model.get_layer("bn")
    cov = np.tile(np.eye(4), (bn.units, 1, 1)) + 0.3 * np.ones((bn.units, 4, 4))
    bn.moving_covariance.assign(cov)
    new, weights, record = fast_layer(model.get_layer("qconv"), bn)
    assert new is None and not record.fast and "whitened" in record.reason
    x = np.random.default_rng(5).normal(size=(4, *shape)).astype("float32")
    with pytest.warns(UserWarning, match="kept 1 quaternion layer.*'qconv'.*whitened"):
        flatbuffer = to_tflite(model, int8=False, quaternion="fast")
    got = run_litert(flatbuffer, x, reference=True).reshape(4, -1)
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=0, atol=1e-3)


def test_real_model_exports_expanded_with_a_warning():
    x = keras.Input((8,))
    model = keras.Model(x, keras.layers.Dense(3)(x))
    with pytest.warns(UserWarning, match="no quaternion layers: --quaternion fast"):
        conversion = convert_model(model, int8=False, quaternion="fast")
    assert conversion.strategy_used == "expanded"


def test_fast_layer_shapes_and_weights():
    layer = FastQuaternion(1, 2, 3, kernel_size=(5,), strides=(2,), padding="same", name="c")
    y = layer(np.zeros((1, 11, 8), "float32"))
    assert tuple(y.shape) == (1, 6, 12) == layer.compute_output_shape((1, 11, 8))
    assert [tuple(w.shape) for w in layer.weights] == [(5, 2, 24), (24,)]


def test_model_with_fast_layers_loads_trains_prunes_and_exports_with_every_strategy(tmp_path):
    keras.utils.set_random_seed(6)
    model = models.build("qcnn6", classes=3, n_mels=16, width=0.25, qconv_algorithm="fast")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(12, 16, 16, 4)).astype("float32")
    y = rng.integers(0, 3, 12)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    model.save(tmp_path / "fast.keras")
    loaded = keras.models.load_model(tmp_path / "fast.keras")
    assert loaded.get_layer("conv_block2_conv1").algorithm == "fast"
    loaded.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    loaded.fit(x, y, epochs=1, batch_size=6, verbose=0)
    pruned, _ = prune(loaded, "operator-norm", 0.25, frames=16)
    assert pruned.get_layer("conv_block2_conv1").algorithm == "fast"
    for candidate in (loaded, pruned):
        outputs = {}
        for strategy in ("expanded", "compact", "fast"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conversion = convert_model(candidate, representative_data=x, quaternion=strategy)
            assert conversion.strategy_used == strategy
            flatbuffer = conversion.expanded_flatbuffer or conversion.flatbuffer
            outputs[strategy] = run_litert(flatbuffer, x, reference=True).astype(int)
        assert np.array_equal(outputs["compact"], outputs["expanded"])
        top = {k: np.argmax(v, -1) for k, v in outputs.items()}
        assert np.mean(top["fast"] == top["expanded"]) >= 0.75


def test_kq_export_cli_fast(tmp_path):
    keras.utils.set_random_seed(7)
    model = models.build("qcnn6", classes=10, n_mels=16, width=0.0625)
    _randomize_norms(model, 7)  # trained-like: a gain per real channel, kept after the layer
    path = tmp_path / "model.keras"
    model.save(path)
    args = [str(path), "--dataset", "synthetic", "--option", "samples_per_class=3",
            "--clip-seconds", "0.5", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "fast"), "--micro", "--calibration-samples", "8",
            "--verify-samples", "4", "--quaternion", "fast"]  # fmt: skip
    result = CliRunner().invoke(export_command, args)
    assert result.exit_code == 0, result.output
    assert "quaternion: fast, 5 layer(s) as 8 products (0.50x the expanded weights)" in (
        result.output
    )
    report = json.loads((tmp_path / "fast" / "export_report.json").read_text())
    exp = report["export"]
    assert exp["quaternion"] == "fast" and "CUSTOM" not in " ".join(exp["operators"])
    assert [x["batch_norm"] for x in exp["quaternion_layers"]] == ["affine"] * 4 + [None]
    assert report["verification"]["samples"] == 4  # verified on both runtimes (else it raises)
    assert (tmp_path / "fast" / "model_ops.h").read_text().count("AddConv2D") == 1
