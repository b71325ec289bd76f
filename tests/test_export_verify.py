"""LiteRT vs TFLite Micro verification, the FULLY_CONNECTED rounding proof, latency."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import fractions  # noqa: E402
import types  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_quaternion import QBatchNormalization, QConv2D, QDense  # noqa: E402
from keras_quaternion.export import verify as kv  # noqa: E402
from keras_quaternion.export.tflite import to_tflite  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(128, 20, 12, 4)).astype("float32")


@pytest.fixture(scope="module")
def flatbuffers(data):
    """A small QCNN with two dense layers (FULLY_CONNECTED) at the end, trained one epoch."""
    keras.utils.set_random_seed(0)
    x = keras.Input((20, 12, 4))
    y = QConv2D(4, 3, padding="same", use_bias=False)(x)
    y = keras.layers.ReLU()(QBatchNormalization()(y))
    y = keras.layers.MaxPooling2D(2)(y)
    y = QConv2D(8, 3, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(y))
    y = QDense(8, name="qd")(y)
    model = keras.Model(x, keras.layers.Dense(10, name="head")(y))
    model.compile(optimizer="adam", loss="mse")
    model.fit(data, np.random.default_rng(1).normal(size=(128, 10)), epochs=1, verbose=0)
    return (
        to_tflite(model, representative_data=data[:64]),
        to_tflite(model, int8=False),
    )


def test_verify_int8_model_on_both_runtimes(flatbuffers, data):
    int8_fb, _ = flatbuffers
    result = kv.verify_tflite(int8_fb, data)
    assert result.int8 and result.samples == 128
    assert result.max_abs_diff <= 1 and result.top1_agreement >= 0.98
    # every non-identical sample was attributed to a proved FULLY_CONNECTED rounding case
    if result.identical:
        assert result.rounding_explained == []
        kv.verify_tflite(int8_fb, data, strict=True)
    else:
        assert result.rounding_explained
        assert {entry[1] for entry in result.rounding_explained} == {"FULLY_CONNECTED"}
        with pytest.raises(kv.VerificationError, match="proved to come from FULLY_CONNECTED"):
            kv.verify_tflite(int8_fb, data, strict=True)
    # the micro runtime really runs the model: same outputs as LiteRT's reference kernels
    micro = kv.run_tflm(int8_fb, data[:8])
    ref = kv.run_litert(int8_fb, data[:8], reference=True)
    assert micro.dtype == np.int8 and np.max(np.abs(micro.astype(int) - ref.astype(int))) <= 1


def test_verify_float_model(flatbuffers, data):
    _, float_fb = flatbuffers
    result = kv.verify_tflite(float_fb, data[:8])
    assert not result.int8 and result.max_abs_diff < 1e-4 and result.identical_samples >= 0


def test_unexplained_difference_is_an_error(flatbuffers, data, monkeypatch):
    int8_fb, _ = flatbuffers
    real_run = kv.run_tflm

    def tampered(model, inputs, **kwargs):
        out = real_run(model, inputs, **kwargs)
        out[3, 0] = np.int8(np.clip(int(out[3, 0]) + 2, -128, 127) if out[3, 0] < 120 else 0)
        return out

    monkeypatch.setattr(kv, "run_tflm", tampered)
    with pytest.raises(kv.VerificationError, match="differ on input 3"):
        kv.verify_tflite(int8_fb, data[:8])


def _fake_fc(acc_value, litert_value, tflm_value, w_scale):
    """A one-input, one-output FULLY_CONNECTED in a stand-in LiteRT interpreter."""
    tensors = {
        0: np.array([[1]], np.int8),  # input (zero point 0)
        1: np.array([[acc_value]], np.int32),  # "weights" wide enough to hold the accumulator
        2: np.array([litert_value], np.int8),
    }
    quant = {
        0: {"scales": np.array([1.0], np.float32), "zero_points": np.array([0])},
        1: {"scales": np.array([w_scale], np.float32), "zero_points": np.array([0])},
        2: {"scales": np.array([1.0], np.float32), "zero_points": np.array([0])},
    }
    interp = types.SimpleNamespace(
        get_tensor=lambda i: tensors[i],
        get_tensor_details=lambda: [{"quantization_parameters": quant[i]} for i in range(3)],
    )
    op = types.SimpleNamespace(inputs=(0, 1, -1), outputs=(2,), activation="NONE")
    return op, interp, np.array([[litert_value]]), np.array([[tflm_value]])


def test_rounding_proof_accepts_only_the_rounding_difference():
    w_scale = np.float32(0.3)
    m, shift = kv._quantize_multiplier(float(np.float64(w_scale)))
    acc = next(
        a
        for a in range(1, 100000)
        if kv._requant_single(a, m, shift) != kv._requant_double(a, m, shift)
        and abs(kv._requant_single(a, m, shift)) < 100
    )
    single, double = kv._requant_single(acc, m, shift), kv._requant_double(acc, m, shift)
    assert abs(single - double) == 1
    op, interp, a, b = _fake_fc(acc, single, double, w_scale)
    assert kv._fc_rounding_explains(op, interp, a, b)
    op, interp, a, b = _fake_fc(acc, double, single, w_scale)  # swapped: not this case
    assert not kv._fc_rounding_explains(op, interp, a, b)
    op, interp, a, b = _fake_fc(acc, single, double + 2, w_scale)
    assert not kv._fc_rounding_explains(op, interp, a, b)


@settings(max_examples=200, deadline=None)
@given(
    acc=st.integers(-(2**24), 2**24),
    scale=st.floats(1e-6, 0.99, allow_nan=False, allow_infinity=False),
)
def test_requantization_emulations(acc, scale):
    m, shift = kv._quantize_multiplier(scale)
    exact = fractions.Fraction(acc * m, 2 ** (31 - shift))
    single = kv._requant_single(acc, m, shift)
    assert single == int((exact + fractions.Fraction(1, 2)) // 1)  # round half up, one rounding
    assert abs(kv._requant_double(acc, m, shift) - single) <= 1
    assert abs(single - acc * scale) <= 0.5 + abs(acc) * 2**-30 + 1e-9


def test_quantize_helpers_and_latency(flatbuffers):
    int8_fb, float_fb = flatbuffers
    spec = kv.io_spec(int8_fb)
    x = np.linspace(-2, 2, 9)
    q = kv.quantize(x, spec.input_scale, spec.input_zero_point)
    assert q.dtype == np.int8
    back = kv.dequantize(q, spec.input_scale, spec.input_zero_point)
    assert np.max(np.abs(back - x)[np.abs(x) < 1]) <= spec.input_scale / 2 + 1e-7
    assert 0 < kv.litert_latency(int8_fb, runs=5, warmup=1) < 1.0
    assert 0 < kv.litert_latency(int8_fb, runs=5, warmup=1, xnnpack=False) < 1.0
    with pytest.raises(ValueError, match="runs must be >= 1"):
        kv.litert_latency(float_fb, runs=0)
    with pytest.raises(ValueError, match="expects"):
        kv.run_litert(int8_fb, np.zeros((2, 3, 3, 4), "float32"))
    with pytest.raises(ValueError, match="runtime must be"):
        kv.predict_tflite(int8_fb, np.zeros((1, 20, 12, 4)), runtime="gpu")
