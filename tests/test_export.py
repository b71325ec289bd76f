"""Keras -> TFLite export: BN folding, Hamilton-kernel constant folding, int8, op/layer errors."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense  # noqa: E402
from keras_quaternion.export.fold import batch_norm_affine, deploy_model, fold_plan  # noqa: E402
from keras_quaternion.export.tflite import (  # noqa: E402
    ExportError,
    calibration_samples,
    check_tflite,
    inspect_tflite,
    to_tflite,
)
from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS, tflm_add_method  # noqa: E402

SHAPE = (24, 16, 4)


def _train_stats(model, x, steps=2):
    """Move BN statistics away from their initial values so folding is really exercised."""
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    y = np.random.default_rng(1).normal(size=(len(x), model.outputs[0].shape[-1]))
    model.fit(x, y, epochs=steps, batch_size=16, verbose=0)
    return model


def small_net(kind, *, whiten=False, seed=0):
    """Conv-BN-ReLU x2 + pooling + dense head; quaternion or real with the same real widths."""
    keras.utils.set_random_seed(seed)
    x = keras.Input(SHAPE, name="features")
    if kind == "q":
        y = QConv2D(2, 3, padding="same", use_bias=False, name="conv1")(x)
        y = QBatchNormalization(whiten=whiten, name="bn1")(y)
    else:
        y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(x)
        y = keras.layers.BatchNormalization(name="bn1")(y)
    y = keras.layers.ReLU(name="relu1")(y)
    y = keras.layers.MaxPooling2D(2, name="pool1")(y)
    if kind == "q":
        y = QConv2D(4, 3, padding="same", name="conv2")(y)
        y = QBatchNormalization(whiten=whiten, name="bn2")(y)
    else:
        y = keras.layers.Conv2D(16, 3, padding="same", name="conv2")(y)
        y = keras.layers.BatchNormalization(name="bn2")(y)
    y = keras.layers.ReLU(name="relu2")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = (
        QDense(4, activation="relu", name="fc")
        if kind == "q"
        else keras.layers.Dense(16, activation="relu", name="fc")
    )(y)
    y = keras.layers.Dense(5, name="head")(y)
    return keras.Model(x, y, name=f"{kind}net")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(48, *SHAPE)).astype("float32")


@pytest.fixture(scope="module")
def nets(data):
    return {
        "q": _train_stats(small_net("q"), data),
        "c": _train_stats(small_net("c"), data),
    }


@pytest.fixture(scope="module")
def flatbuffers(nets, data):
    out = {}
    for kind, model in nets.items():
        out[kind, "int8"] = to_tflite(model, representative_data=data[:32])
        out[kind, "float"] = to_tflite(model, int8=False)
    return out


def test_deploy_model_folds_bn_and_matches(nets, data):
    for kind, model in nets.items():
        plan = fold_plan(model)
        assert plan == {"bn1": "conv1", "bn2": "conv2"}
        deployed = deploy_model(model)
        kinds = {layer.name: type(layer).__name__ for layer in deployed.layers}
        assert kinds["conv1"] == "Conv2D" and kinds["conv2"] == "Conv2D"
        assert kinds["bn1"] == "FoldedAway" and kinds["bn2"] == "FoldedAway"
        assert kinds["fc"] == "Dense"
        ref = model(data[:8], training=False)
        got = deployed(data[:8], training=False)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        # the original model is untouched
        assert type(model.get_layer("conv1")).__name__ == ("QConv2D" if kind == "q" else "Conv2D")


def test_deploy_whitened_and_unfoldable_batch_norms(data):
    keras.utils.set_random_seed(3)
    x = keras.Input(SHAPE)
    a = QConv2D(2, 3, padding="same", activation="relu", name="qc")(x)  # activation: no fold
    a = QBatchNormalization(whiten=True, name="wbn")(a)  # standalone whitened -> 1x1 conv
    b = QBatchNormalization(name="pbn")(a)  # standalone plain -> keras BN
    c = keras.layers.Reshape((SHAPE[0], -1))(b)
    c = QConv1D(2, 3, name="qc1")(c)
    c = QBatchNormalization(whiten=True, name="wbn1")(c)  # folds into Conv1D
    y = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(c))
    model = _train_stats(keras.Model(x, y), data)
    assert fold_plan(model) == {"wbn1": "qc1"}
    deployed = deploy_model(model)
    kinds = {layer.name: type(layer).__name__ for layer in deployed.layers}
    assert kinds["wbn"] == "Conv2D" and kinds["pbn"] == "BatchNormalization"
    assert kinds["qc1"] == "Conv1D" and kinds["wbn1"] == "FoldedAway"
    np.testing.assert_allclose(deployed(data[:6]), model(data[:6], training=False), atol=2e-4)


def test_batch_norm_affine_matches_layer():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 12)).astype("float32") * 3 + 1
    for whiten in (False, True):
        bn = QBatchNormalization(whiten=whiten, momentum=0.0)
        bn(x, training=True)
        a, c = batch_norm_affine(bn)
        np.testing.assert_allclose(x @ a.T + c, bn(x, training=False), rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="expected QBatchNormalization"):
        batch_norm_affine(keras.layers.Dense(2))


def test_qcnn_int8_graph_is_a_plain_cnn(flatbuffers):
    q = inspect_tflite(flatbuffers["q", "int8"])
    c = inspect_tflite(flatbuffers["c", "int8"])
    assert q.op_kinds == c.op_kinds == ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN"]
    assert [op.name for op in q.operators] == [op.name for op in c.operators]
    # kernel assembly and batch norm leave no trace
    assert not {"CONCATENATION", "NEG", "MUL", "ADD", "RESHAPE"} & set(q.op_kinds)
    # same real widths -> same materialised weight count -> about the same flatbuffer size
    assert abs(q.size - c.size) / c.size < 0.05
    assert q.input.dtype == q.output.dtype == "INT8"
    # float weights take about 4x the bytes of int8 ones (biases stay 32-bit in both)
    qf = inspect_tflite(flatbuffers["q", "float"])
    assert 3.0 < qf.constant_bytes / q.constant_bytes < 4.0
    assert qf.size > q.size


def test_int8_tflite_tracks_keras(nets, flatbuffers, data):
    from keras_quaternion.export.verify import dequantize, io_spec, run_litert

    fb = flatbuffers["q", "int8"]
    spec = io_spec(fb)
    got = dequantize(run_litert(fb, data[32:48]), spec.output_scale, spec.output_zero_point)
    ref = np.asarray(nets["q"](data[32:48], training=False))
    assert np.max(np.abs(got - ref)) < 0.1 * (1 + np.max(np.abs(ref)))
    assert np.mean(np.argmax(got, 1) == np.argmax(ref, 1)) >= 0.75
    fl = run_litert(flatbuffers["q", "float"], data[32:48])
    np.testing.assert_allclose(fl, ref, rtol=1e-4, atol=1e-4)


def _activation_model(kind):
    x = keras.Input((16,))
    y = keras.layers.Dense(8, name="my_dense")(x)
    if kind == "gelu":
        y = keras.layers.Activation("gelu", name="my_gelu")(y)
    elif kind == "sin":
        y = keras.layers.Lambda(keras.ops.sin, name="my_sin")(y)
    else:
        y = keras.layers.Lambda(keras.ops.erf, name="my_erf")(y)
    return keras.Model(x, keras.layers.Dense(4, name="out")(y))


@pytest.mark.parametrize(
    "kind,pattern",
    [
        ("gelu", r"operator GELU \(from layer 'my_gelu'\) is not implemented by TFLite Micro"),
        ("sin", r"operator SIN \(from layer 'my_sin'\) was left in float"),
        ("erf", r"tf\.Erf.*layer\(s\) 'my_erf'"),
    ],
)
def test_unsupported_operators_name_layer_and_operator(kind, pattern):
    calib = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    with pytest.raises(ExportError, match=pattern):
        to_tflite(_activation_model(kind), representative_data=calib)


def test_bad_arguments():
    model = _activation_model("gelu")
    with pytest.raises(ValueError, match="representative_data is required"):
        to_tflite(model)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(16,\)"):
        to_tflite(model, representative_data=np.zeros((4, 15), "float32"))
    with pytest.raises(TypeError, match="expected a keras.Model"):
        to_tflite("model.keras")
    x = keras.Input((None, 4))
    with pytest.raises(ValueError, match="unknown dimensions"):
        to_tflite(keras.Model(x, keras.layers.Dense(2)(x)), int8=False)
    with pytest.raises(ValueError, match="Not a TFLite flatbuffer"):
        inspect_tflite(b"\x00" * 32)
    with pytest.raises(TypeError, match="as bytes"):
        inspect_tflite("model.tflite")


def test_calibration_samples_accepts_arrays_batches_and_pairs():
    arr = np.arange(24, dtype="float32").reshape(6, 2, 2)
    assert len(calibration_samples(arr)) == 6
    pairs = [(arr[:4], np.zeros(4)), (arr[4:], np.zeros(2))]
    got = calibration_samples(pairs, max_samples=5)
    assert len(got) == 5 and got[4].shape == (1, 2, 2)
    np.testing.assert_array_equal(got[4][0], arr[4])
    with pytest.raises(ValueError, match="empty"):
        calibration_samples([])
    with pytest.raises(ValueError, match="max_samples"):
        calibration_samples(arr, max_samples=0)


def test_check_tflite_float_model_and_op_table(flatbuffers):
    info = check_tflite(flatbuffers["q", "float"], int8=False)
    assert info.input.dtype == "FLOAT32"
    with pytest.raises(ExportError, match="expected INT8"):
        check_tflite(flatbuffers["q", "float"], int8=True)
    assert tflm_add_method("CONV_2D") == "AddConv2D"
    assert "GELU" not in TFLM_BUILTIN_OPS and len(TFLM_BUILTIN_OPS) >= 90
    with pytest.raises(KeyError, match="not a TFLite Micro builtin"):
        tflm_add_method("GELU")


def test_nested_model_with_deltas_front_end_exports(data):
    """A real [T, M, 1] input, QuaternionDeltas, then a nested quaternion model: all rewritten."""
    from keras_quaternion.layers.deltas import QuaternionDeltas

    inner = small_net("q", seed=4)
    x = keras.Input((SHAPE[0], SHAPE[1], 1), name="logmel")
    model = keras.Model(x, inner(QuaternionDeltas(name="deltas")(x)))
    deployed = deploy_model(model, batch_size=1)
    inner_copy = [layer for layer in deployed.layers if isinstance(layer, keras.Model)][0]
    assert type(inner_copy.get_layer("bn1")).__name__ == "FoldedAway"
    assert type(inner_copy.get_layer("conv1")).__name__ == "Conv2D"
    calib = data[:16, ..., :1]
    np.testing.assert_allclose(deployed(calib[:1]), model(calib[:1]), rtol=1e-4, atol=1e-5)
    info = inspect_tflite(to_tflite(model, representative_data=calib))
    assert info.input.shape == (1, SHAPE[0], SHAPE[1], 1) and info.input.dtype == "INT8"
    assert "NEG" not in info.op_kinds
