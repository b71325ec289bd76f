"""The compact quaternion export: int8 custom operator, C kernel bit-exact against both runtimes."""

import json
import os
import subprocess
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense  # noqa: E402
from keras_quaternion.export import export_model, inspect_tflite, to_tflite  # noqa: E402
from keras_quaternion.export import quaternion_kernel as qk  # noqa: E402
from keras_quaternion.export.macs import deployed_macs  # noqa: E402
from keras_quaternion.export.micro import model_ops_source  # noqa: E402
from keras_quaternion.export.strategies import get_strategy  # noqa: E402
from keras_quaternion.export.strategies.compact import (  # noqa: E402
    compact_flatbuffer,
    compact_kernel,
    expand_flatbuffer,
    expand_kernel,
)
from keras_quaternion.export.tflite import convert_model  # noqa: E402
from keras_quaternion.export.verify import VerificationError, run_litert, run_tflm  # noqa: E402
from keras_quaternion.export.verify_compact import verify_layers  # noqa: E402
from keras_quaternion.layers.hamilton import assemble_hamilton_kernel  # noqa: E402


def _randomize_bn(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, QBatchNormalization) and not layer.whiten:
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, size=layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 2.0, size=layer.gamma.shape))
            layer.beta.assign(rng.normal(size=layer.beta.shape))
    return model


def conv_model(*, rank=2, units=3, kernel=3, strides=1, dilation=1, padding="same",
               activation="relu", use_bias=True, bn=True, dense=True, seed=0):  # fmt: skip
    """A small quaternion model around one configurable quaternion convolution."""
    keras.utils.set_random_seed(seed)
    shape = (13, 9, 8) if rank == 2 else (17, 8)
    x = keras.Input(shape, name="features")
    conv = QConv2D if rank == 2 else QConv1D
    y = conv(units, kernel, strides=strides, dilation_rate=dilation, padding=padding,
             use_bias=use_bias, activation=None if bn else activation, name="qconv")(x)  # fmt: skip
    if bn:
        y = QBatchNormalization(name="qbn")(y)
        y = keras.layers.Activation(activation, name="act")(y)
    pool = keras.layers.GlobalAveragePooling2D if rank == 2 else keras.layers.GlobalAveragePooling1D
    y = pool(name="gap")(y)
    if dense:
        y = QDense(2, activation="relu", use_bias=use_bias, name="qdense")(y)
    y = keras.layers.Dense(3, name="head")(y)
    return _randomize_bn(keras.Model(x, y, name="qnet"), seed), shape


CONFIGS = [
    dict(),
    dict(padding="valid", strides=2, activation="relu6"),
    dict(dilation=2, activation="linear", use_bias=False),
    dict(kernel=(1, 5), strides=(2, 1), bn=False, activation="relu"),
    dict(rank=1, kernel=5, strides=2, padding="same"),
    dict(rank=1, kernel=3, dilation=3, padding="valid", bn=False, activation="linear"),
    dict(units=1, kernel=1, dense=False),
]


@pytest.fixture(scope="module")
def kernels():
    return qk.load_kernels()


@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_c_kernel_equals_both_runtimes_on_every_layer(config):
    model, shape = conv_model(**config, seed=len(str(config)))
    rng = np.random.default_rng(1)
    calib = rng.normal(size=(24, *shape)).astype("float32")
    conversion = convert_model(model, representative_data=calib, quaternion="compact",
                               verify=False)  # fmt: skip
    assert conversion.strategy_used == "compact"
    assert all(layer.compact for layer in conversion.layers), conversion.layers
    checked = verify_layers(conversion.expanded_flatbuffer, conversion.flatbuffer,
                            rng.normal(size=(6, *shape)).astype("float32"))  # fmt: skip
    assert len(checked) == (2 if config.get("dense", True) else 1)
    assert all(c["samples"] == 6 for c in checked)


def test_expand_and_compact_kernels_are_inverse():
    rng = np.random.default_rng(0)
    components = rng.integers(-127, 128, size=(12, 3, 2, 5)).astype(np.int8)
    expanded = expand_kernel(components)
    assert expanded.shape == (12, 3, 2, 20)
    back, corrections, reason = compact_kernel(expanded)
    assert reason is None and np.array_equal(back, components) and corrections.shape == (0, 2)


def test_expanded_kernel_is_the_hamilton_kernel_in_tflite_layout():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 2, 5)).astype("float32")  # (4, kh, kw, C, F)
    real = np.asarray(assemble_hamilton_kernel(w))  # (kh, kw, 4C, 4F)
    ohwi = np.transpose(real, (3, 0, 1, 2))
    compact = np.concatenate([np.transpose(w[p], (3, 0, 1, 2)) for p in range(4)], axis=0)
    np.testing.assert_array_equal(expand_kernel(compact), ohwi)


def test_compact_kernel_says_why_it_cannot():
    assert "4x4" in compact_kernel(np.zeros((6, 1, 1, 8), np.int8))[2]
    minus = expand_kernel(np.array([5, -128, 2, 3], np.int16).reshape(4, 1, 1, 1)).astype(np.int8)
    assert "-128" in compact_kernel(minus)[2]
    mixed = np.random.default_rng(0).integers(-127, 128, size=(8, 3, 3, 8)).astype(np.int8)
    assert "Hamilton block structure" in compact_kernel(mixed)[2]


def test_rounding_ties_become_corrections():
    rng = np.random.default_rng(0)
    components = rng.integers(-120, 121, size=(16, 3, 3, 24)).astype(np.int8)
    expanded = expand_kernel(components)
    flips = rng.choice(expanded.size, size=5, replace=False)
    flat = expanded.reshape(-1)
    flat[flips] += np.where(rng.random(5) < 0.5, -1, 1).astype(np.int8)
    compact, corrections, reason = compact_kernel(expanded)
    assert reason is None and np.array_equal(compact, components)
    assert sorted(corrections[:, 0].tolist()) == sorted(flips.tolist())
    rebuilt = expand_kernel(compact).reshape(-1).astype(np.int32)
    rebuilt[corrections[:, 0]] += corrections[:, 1]
    np.testing.assert_array_equal(rebuilt, flat)


@pytest.fixture(scope="module")
def compact_pair():
    model, shape = conv_model(seed=3)
    calib = np.random.default_rng(2).normal(size=(32, *shape)).astype("float32")
    conversion = convert_model(model, representative_data=calib, quaternion="compact")
    return model, calib, conversion


def test_compact_flatbuffer_quarters_the_quaternion_weights(compact_pair):
    _, _, conversion = compact_pair
    expanded, compact = (inspect_tflite(f) for f in (conversion.expanded_flatbuffer,
                                                     conversion.flatbuffer))  # fmt: skip
    assert compact.op_kinds == ["CUSTOM:KQ_QCONV2D", "CUSTOM:KQ_QFULLY_CONNECTED",
                                "FULLY_CONNECTED", "MEAN"]  # fmt: skip
    for layer in conversion.layers:
        assert layer.weight_bytes[1] * 4 == layer.weight_bytes[0]
    saved = sum(a - b for a, b in (x.weight_bytes for x in conversion.layers))
    assert expanded.constant_bytes - compact.constant_bytes == saved
    assert deployed_macs(conversion.flatbuffer) == deployed_macs(conversion.expanded_flatbuffer)


def test_expand_flatbuffer_restores_identical_outputs(compact_pair):
    _, calib, conversion = compact_pair
    restored = expand_flatbuffer(conversion.flatbuffer)
    assert inspect_tflite(restored).op_kinds == ["CONV_2D", "FULLY_CONNECTED", "MEAN"]
    x = calib[:8]
    for run in (lambda f: run_litert(f, x, reference=True), lambda f: run_tflm(f, x)):
        np.testing.assert_array_equal(run(restored), run(conversion.expanded_flatbuffer))


def test_rewrite_without_layer_names_finds_hamilton_kernels(compact_pair):
    _, _, conversion = compact_pair
    again, layers = compact_flatbuffer(conversion.expanded_flatbuffer)
    assert [x.builtin for x in layers] == ["CONV_2D", "FULLY_CONNECTED"]  # not the real head
    assert again == conversion.flatbuffer


def test_a_wrong_kernel_is_caught_by_the_layer_check(compact_pair, kernels):
    _, calib, conversion = compact_pair
    from keras_quaternion.export import flatbuffer as fbs

    model = fbs.read_model(conversion.flatbuffer)
    op = model.subgraphs[0].operators[0]
    w = fbs.tensor_data(model, op.inputs[1])
    w[0, 0, 0, 0] = np.int8(w[0, 0, 0, 0] // 2 + 1)
    fbs.set_tensor_data(model, op.inputs[1], w)
    tampered = fbs.write_model(model)
    with pytest.raises(VerificationError, match=r"#0 KQ_QCONV2D \(layer 'None'\).*LiteRT"):
        verify_layers(conversion.expanded_flatbuffer, tampered, calib[:2])


def test_written_buffers_are_aligned(compact_pair):
    from keras_quaternion.export import flatbuffer as fbs

    _, _, conversion = compact_pair
    data = conversion.flatbuffer
    model = fbs.read_model(data)
    for index, op in enumerate(model.subgraphs[0].operators):
        for t in op.inputs[1:]:
            raw = fbs.tensor_data(model, t) if t >= 0 else None
            if raw is not None and raw.size > 4:
                assert data.find(raw.tobytes()) % 16 == 0, (index, t)


def test_whitened_batch_norm_keeps_the_layer_expanded_with_a_warning():
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 4))
    y = QConv2D(2, 3, padding="same", name="mixed")(x)
    y = QBatchNormalization(whiten=True, name="wbn")(y)
    y = QConv2D(2, 3, padding="same", name="clean")(keras.layers.ReLU()(y))
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(y)))
    model.get_layer("wbn").moving_covariance.assign(
        np.tile(
            np.array([[1.0, 0.4, 0, 0], [0.4, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]),
            (2, 1, 1),
        )  # fmt: skip
    )
    calib = np.random.default_rng(0).normal(size=(16, 8, 8, 4)).astype("float32")
    with pytest.warns(UserWarning, match=r"kept 1 quaternion layer\(s\) expanded: 'mixed'"):
        conversion = convert_model(model, representative_data=calib, quaternion="compact")
    assert [(x.layer, x.compact) for x in conversion.layers] == [("mixed", False), ("clean", True)]


def test_a_real_model_exports_expanded_with_a_warning():
    x = keras.Input((6,))
    model = keras.Model(x, keras.layers.Dense(4)(x), name="real")
    calib = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    with pytest.warns(UserWarning, match="no quaternion layers.*strategy 'expanded'"):
        conversion = convert_model(model, representative_data=calib, quaternion="compact")
    assert conversion.strategy_used == "expanded" and conversion.expanded_flatbuffer is None


def test_bad_strategy_arguments():
    x = keras.Input((6,))
    model = keras.Model(x, keras.layers.Dense(4)(x))
    with pytest.raises(
        ValueError, match="'sparse' is not an export strategy.*'expanded', 'compact'"
    ):
        to_tflite(model, int8=False, quaternion="sparse")
    with pytest.raises(ValueError, match="int8 models only"):
        to_tflite(model, int8=False, quaternion="compact")
    with pytest.raises(ValueError, match="not an export strategy"):
        get_strategy("fastest")


def test_ops_header_registers_the_custom_operators(compact_pair):
    text = model_ops_source(compact_pair[2].flatbuffer, "kws")
    assert '#include "kq_quaternion_tflm.h"' in text
    assert 'resolver.AddCustom("KQ_QCONV2D", tflite::Register_KQ_QCONV2D())' in text
    assert "constexpr int kKwsOpCount = 4;" in text


def test_export_model_report_and_micro_files(compact_pair, tmp_path):
    model, calib, _ = compact_pair
    report = export_model(model, tmp_path, representative_data=calib, micro=True,
                          quaternion="compact", latency_runs=3, verify_samples=8)  # fmt: skip
    exp = report["export"]
    assert (
        exp["quaternion"] == "compact"
        and exp["flatbuffer_bytes"] < exp["expanded_flatbuffer_bytes"]
    )
    assert exp["macs"] == deployed_macs((tmp_path / "model_int8.tflite").read_bytes())
    assert report["memory"]["flash_bytes"] == exp["flatbuffer_bytes"]
    assert report["arena"]["measured_on"].startswith(("deployed", "expanded twin"))
    ver = report["verification"]
    assert [c["op"] for c in ver["quaternion_layers"]] == ["KQ_QCONV2D", "KQ_QFULLY_CONNECTED"]
    assert "layer by layer" in ver["runtime"]
    for name in qk.DEVICE_SOURCES:
        assert (tmp_path / name).is_file() and name in report["micro"]["files"]
    assert (
        json.loads((tmp_path / "export_report.json").read_text())["export"]["quaternion"]
        == "compact"
    )


def test_options_round_trip_and_rejection(kernels):
    raw = kernels.options(
        "conv", padding="SAME", strides=(2, 1), dilation=(1, 3), activation="RELU6"
    )
    assert len(raw) == 32 and raw[:4] == b"KQH1"
    assert kernels.parse_options(raw) == [2, 0, 2, 1, 1, 3, 3]
    assert kernels.parse_options(b"XXXX" + raw[4:]) is None
    assert kernels.parse_options(raw[:20]) is None


def test_quantize_multiplier_matches_tflite_rule(kernels):
    from keras_quaternion.export.verify import _quantize_multiplier

    rng = np.random.default_rng(0)
    for real in np.concatenate([rng.uniform(1e-6, 2.0, 200), [0.0, 0.5, 1.0, 1e-12]]):
        assert kernels.quantize_multiplier(real) == _quantize_multiplier(float(real))


def test_c_sources_compile_cleanly(tmp_path):
    folder = qk.source_dir()
    cmd = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
           str(folder / "kq_quaternion_ops.c"), "-o", str(tmp_path / "ops.o")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(qk.KernelBuildError, match="needs a C compiler"):
        qk.build_library()


def test_cli_quaternion_option(tmp_path):
    from keras_quaternion.cli.export import export_command

    runner = CliRunner()
    bad = runner.invoke(export_command, ["m.keras", "--out", str(tmp_path), "--quaternion", "x"])
    assert bad.exit_code == 2 and "'expanded'" in bad.output and "'compact'" in bad.output
    (tmp_path / "m.keras").write_bytes(b"")
    both = runner.invoke(export_command, [str(tmp_path / "m.keras"), "--out", str(tmp_path),
                                          "--quaternion", "compact", "--float"])  # fmt: skip
    assert both.exit_code == 2 and "int8 models only" in both.output


def test_kernel_rejects_inputs_of_the_wrong_width(kernels):
    layer = qk.QuantizedLayer(np.zeros((8, 3, 3, 2), np.int8), None, 0.1, 0, (0.1,), 0.1, 0,
                              padding="SAME")  # fmt: skip
    with pytest.raises(ValueError, match="4\\*2 channels"):
        kernels.conv2d(np.zeros((1, 5, 5, 4), np.int8), layer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = kernels.conv2d(np.zeros((1, 5, 5, 8), np.int8), layer)
    assert out.shape == (1, 5, 5, 8)


def test_a_wrong_tflm_root_is_a_clear_error(monkeypatch, tmp_path):
    from keras_quaternion.export.tflm_runner import tflm_runner

    monkeypatch.setenv("KQ_TFLM_ROOT", str(tmp_path))
    with pytest.raises(qk.KernelBuildError, match="not a built TFLite Micro checkout"):
        tflm_runner()
    monkeypatch.delenv("KQ_TFLM_ROOT")
    assert tflm_runner() is None


@pytest.mark.skipif(
    not os.environ.get("KQ_TFLM_ROOT"),
    reason="set KQ_TFLM_ROOT to a TFLite Micro checkout with a built microlite library to run "
    "compact models whole on TFLite Micro (docs/deploy.md)",
)
def test_whole_compact_model_on_tflite_micro(compact_pair, tmp_path):
    from keras_quaternion.export.micro import measure_arena
    from keras_quaternion.export.tflm_runner import tflm_runner

    model, calib, conversion = compact_pair
    runner = tflm_runner()
    x = (calib[:16] / 0.05).clip(-128, 127).astype(np.int8)
    np.testing.assert_array_equal(runner.run(conversion.flatbuffer, x),
                                  run_tflm(conversion.expanded_flatbuffer, x))  # fmt: skip
    report = export_model(model, tmp_path, representative_data=calib, quaternion="compact",
                          latency_runs=3, verify_samples=8)  # fmt: skip
    assert "whole on TFLite Micro" in report["verification"]["runtime"]
    assert report["arena"]["measured_on"].startswith("deployed")
    twin = measure_arena(conversion.expanded_flatbuffer)
    assert report["arena"]["minimal"] <= 1.1 * twin.minimal


def test_compact_files_score_and_predict_like_their_twin(compact_pair, tmp_path):
    from keras_quaternion.export.verify import predict_tflite

    _, calib, conversion = compact_pair
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(conversion.flatbuffer)
    np.testing.assert_array_equal(
        predict_tflite(path, calib[:6]), predict_tflite(conversion.expanded_flatbuffer, calib[:6])
    )


def test_corrections_reach_every_runtime(compact_pair):
    """A weight copy rounded the other way becomes a correction the kernel and adapter apply."""
    from keras_quaternion.export import flatbuffer as fbs
    from keras_quaternion.export.tflm_runner import tflm_runner

    _, calib, conversion = compact_pair
    model = fbs.read_model(conversion.expanded_flatbuffer)
    op = model.subgraphs[0].operators[0]
    w = fbs.tensor_data(model, op.inputs[1])
    w[3, 1, 1, 2] += 1 if w[3, 1, 1, 2] < 127 else -1
    fbs.set_tensor_data(model, op.inputs[1], w)
    tampered = fbs.write_model(model)
    compact, layers = compact_flatbuffer(tampered)
    assert [x.corrections for x in layers] == [1, 0]
    verify_layers(tampered, compact, calib[:4])
    x = calib[:8]
    restored = expand_flatbuffer(compact)
    np.testing.assert_array_equal(run_litert(restored, x, reference=True),
                                  run_litert(tampered, x, reference=True))  # fmt: skip
    runner = tflm_runner()
    if runner is not None:
        q = (x / 0.05).clip(-128, 127).astype(np.int8)
        np.testing.assert_array_equal(runner.run(compact, q), run_tflm(tampered, q))
