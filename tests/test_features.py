"""Quaternion audio features and QuaternionDeltas: parity with librosa/scipy, errors, int8 TFLite."""

from __future__ import annotations

import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.signal  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_quaternion.features import (  # noqa: E402
    FeatureConfig,
    change_level,
    deltas,
    log_mel,
    mel_filterbank,
    power_spectrogram,
    quaternion_features,
    savgol_delta_matrices,
)
from keras_quaternion.layers.deltas import QuaternionDeltas  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FSDD = REPO_ROOT.parent / "shared" / "data" / "fsdd"
FSDD_CLIP = FSDD / "recordings" / "3_jackson_7.wav"

# Tolerances stated in docs/features.md.
LOG_MEL_TOL_DB = 0.01  # |ours - librosa| in dB, where librosa's mel power > 1e-6
LOG_MEL_POWER_FLOOR = 1e-6
DELTA_TOL = 1e-4  # |ours - librosa.feature.delta| (float32 input)

SMALL = FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmax=4000.0)


def chirp_noise(sample_rate=32000, seconds=1.0, seed=0):
    """A linear chirp across the band plus white noise and a short tone burst (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    y = 0.5 * scipy.signal.chirp(t, 100, seconds, 0.4 * sample_rate)
    y += 0.05 * rng.standard_normal(t.size)
    y[t.size // 3 : t.size // 2] += 0.3 * np.sin(2 * np.pi * 1000 * t[: t.size // 2 - t.size // 3])
    return y.astype(np.float32)


def librosa_log_mel(y, cfg: FeatureConfig):
    """Independent reference: librosa STFT (reflect, centred) + librosa HTK mel, in float64."""
    spec = librosa.stft(
        y.astype(np.float64),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window="hann",
        center=True,
        pad_mode="reflect",
    )
    fb = librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=True,
        norm=cfg.mel_norm,
        dtype=np.float64,
    )
    mel = (fb @ np.abs(spec) ** 2).T  # [frames, mels]
    return 10.0 * np.log10(np.maximum(mel, 1e-10)), mel


def assert_log_mel_parity(y, cfg):
    ours = log_mel(y, cfg).numpy()
    ref, power = librosa_log_mel(y, cfg)
    assert ours.shape == ref.shape == (cfg.num_frames(y.size), cfg.n_mels)
    mask = power > LOG_MEL_POWER_FLOOR
    assert mask.mean() > 0.5, "test signal too quiet to check anything"
    err = np.abs(ours - ref)[mask]
    assert err.max() < LOG_MEL_TOL_DB, f"max log-mel error {err.max():.4g} dB"
    return ours


# --- mel filterbank ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(),
        FeatureConfig(mel_norm="slaney"),
        FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=20, fmax=4000),
        FeatureConfig(sample_rate=16000, n_fft=401, hop_length=160, n_mels=24, fmin=0, fmax=7000),
    ],
    ids=["panns", "slaney", "fsdd", "odd_nfft"],
)
def test_mel_filterbank_equals_librosa_htk(cfg):
    ours = mel_filterbank(cfg)
    ref = librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=True,
        norm=cfg.mel_norm,
        dtype=np.float64,
    ).T
    assert ours.shape == (cfg.n_fft // 2 + 1, cfg.n_mels)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    # every band is a triangle with a positive peak
    assert (ours.max(axis=0) > 0).all()


def test_mel_filterbank_returns_private_copy_and_warns_on_empty_bands():
    fb = mel_filterbank(SMALL)
    fb[:] = 0
    assert mel_filterbank(SMALL).max() > 0
    with pytest.warns(UserWarning, match="mel bands contain no FFT bin"):
        mel_filterbank(
            FeatureConfig(sample_rate=8000, n_fft=64, hop_length=32, n_mels=40, fmax=4000)
        )


# --- STFT / log-mel parity ----------------------------------------------------------------------


def test_log_mel_matches_librosa_on_chirp_and_noise():
    y = chirp_noise()
    ours = assert_log_mel_parity(y, FeatureConfig())
    assert ours.shape == (101, 64)  # 1 + 32000 // 320
    # power spectrogram also matches librosa's |STFT|^2 (relative, float32 FFT)
    ref = (
        np.abs(librosa.stft(y.astype(np.float64), n_fft=1024, hop_length=320, pad_mode="reflect"))
        ** 2
    ).T
    ps = power_spectrogram(y).numpy()
    big = ref > 1e-3 * ref.max()
    np.testing.assert_allclose(ps[big], ref[big], rtol=1e-3)


def test_log_mel_matches_librosa_slaney_norm_and_small_config():
    assert_log_mel_parity(chirp_noise(8000, 0.5, seed=1), SMALL)
    assert_log_mel_parity(chirp_noise(seed=2), FeatureConfig(mel_norm="slaney"))


@pytest.mark.skipif(not FSDD_CLIP.exists(), reason=f"FSDD recordings not found at {FSDD}")
def test_log_mel_matches_librosa_on_real_recording():
    import soundfile as sf

    y8k, sr = sf.read(FSDD_CLIP, dtype="float32")
    assert sr == 8000
    # native rate with an 8 kHz front end, and resampled to PANNs' 32 kHz
    assert_log_mel_parity(
        y8k, FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmax=4000.0)
    )
    y32k = scipy.signal.resample_poly(y8k, 4, 1).astype(np.float32)
    lm = assert_log_mel_parity(y32k, FeatureConfig())
    for order in (1, 2, 3):
        ref = librosa.feature.delta(lm.astype(np.float64), width=9, order=order, axis=0)
        np.testing.assert_allclose(deltas(lm).numpy()[..., order - 1], ref, atol=DELTA_TOL)


def test_log_mel_floor_is_minus_100_db_and_float64_input_is_cast():
    out = log_mel(np.zeros(4000, np.float64), SMALL)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), -100.0)


@pytest.mark.parametrize("amplitude", [0.1, 0.01, 3.0])
def test_change_level_equals_the_log_mel_of_a_louder_or_softer_recording(amplitude):
    rng = np.random.default_rng(0)
    wave = np.zeros(4000, np.float32)
    wave[:2500] = 0.3 * rng.standard_normal(2500) * np.hanning(2500)  # speech, then silence
    wave[1200:1400] *= 1e-4  # a near-silent stretch, to reach the floor when made softer
    reference = log_mel(wave, SMALL).numpy()
    recorded = log_mel(amplitude * wave, SMALL).numpy()
    db = 20 * np.log10(amplitude)
    changed = change_level(np.stack([reference, np.ones_like(reference)], -1), db).numpy()
    assert (reference == -100).any() and (recorded == -100).any()  # the floor is in play
    np.testing.assert_allclose(changed[..., 0], recorded, atol=2e-3)
    np.testing.assert_array_equal(changed[..., 1], 1.0)  # other channels kept
    assert changed.dtype == np.float32


def test_change_level_per_example_offsets_and_errors():
    x = np.full((2, 3, 2, 4), -50.0, np.float32)
    out = change_level(x, np.array([-60.0, 10.0], np.float32).reshape(2, 1, 1, 1)).numpy()
    np.testing.assert_array_equal(out[0, ..., 0], -100.0)  # clamped at the floor
    np.testing.assert_array_equal(out[1, ..., 0], -40.0)
    np.testing.assert_array_equal(out[..., 1:], -50.0)
    with pytest.raises(TypeError, match="change_level: features must be float, got int32"):
        change_level(np.zeros((2, 4), np.int32), 3)


# --- deltas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [5, 9, 11])
def test_deltas_match_librosa(width):
    lm = log_mel(chirp_noise(), FeatureConfig()).numpy()
    ours = deltas(lm, width=width).numpy()
    assert ours.shape == (*lm.shape, 3)
    for order in (1, 2, 3):
        ref = librosa.feature.delta(lm.astype(np.float64), width=width, order=order, axis=0)
        err = np.abs(ours[..., order - 1] - ref).max()
        assert err < DELTA_TOL, f"order {order}: max error {err}"
        # also librosa on the float32 array, what users would call
        ref32 = librosa.feature.delta(lm, width=width, order=order, axis=0)
        np.testing.assert_allclose(ours[..., order - 1], ref32, atol=DELTA_TOL)
    # each order is computed from the static log-mel, not as a delta of a delta
    delta_of_delta = librosa.feature.delta(
        librosa.feature.delta(lm, width=width, order=1, axis=0), width=width, order=1, axis=0
    )
    assert np.abs(ours[..., 1] - delta_of_delta).max() > 10 * DELTA_TOL


@settings(max_examples=25, deadline=None)
@given(
    width=st.sampled_from([5, 7, 9, 13]),
    extra=st.integers(0, 20),
    mels=st.integers(1, 4),
    order=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_delta_operator_equals_scipy_savgol_filter(width, extra, mels, order, seed):
    """Any length >= width (incl. exactly width), any order < width: same as scipy (float64)."""
    frames = width + extra
    x = np.random.default_rng(seed).standard_normal((frames, mels)).cumsum(axis=0)
    ours = deltas(x.astype(np.float64), width=width, orders=(order,)).numpy()[..., 0]
    ref = scipy.signal.savgol_filter(x, width, order, deriv=order, axis=0, mode="interp")
    np.testing.assert_allclose(ours, ref, atol=1e-9 * max(1.0, np.abs(x).max()))


def test_savgol_delta_matrices_vs_scipy():
    central, left, right = savgol_delta_matrices(5, 1)
    np.testing.assert_allclose(central, np.array([-2, -1, 0, 1, 2]) / 10, atol=1e-14)
    for width, order, polyorder in [(9, 1, 1), (9, 2, 2), (9, 3, 3), (7, 1, 3), (11, 2, 4)]:
        c, lm, rm = savgol_delta_matrices(width, order, polyorder)
        h = width // 2
        assert c.shape == (width,) and lm.shape == rm.shape == (h, width)
        np.testing.assert_allclose(
            c, scipy.signal.savgol_coeffs(width, polyorder, deriv=order, use="dot"), atol=1e-12
        )
        # scipy's full operator: filter the identity (column j = response to an impulse at j)
        frames = width + 6
        op = scipy.signal.savgol_filter(
            np.eye(frames), width, polyorder, deriv=order, axis=0, mode="interp"
        )
        np.testing.assert_allclose(op[:h, :width], lm, atol=1e-12)
        np.testing.assert_allclose(op[frames - h :, frames - width :], rm, atol=1e-12)
        assert np.abs(op[:h, width:]).max() < 1e-12


# --- quaternion features ------------------------------------------------------------------------


def test_quaternion_features_layout_and_batching():
    cfg = SMALL
    y = np.stack([chirp_noise(8000, 0.5, seed=s) for s in (3, 4)])
    q = quaternion_features(y, cfg).numpy()
    frames = cfg.num_frames(y.shape[1])
    assert q.shape == (2, frames, cfg.n_mels, 4) == (2, 51, 16, 4)
    for b in range(2):
        single = quaternion_features(y[b], cfg).numpy()
        np.testing.assert_allclose(q[b], single, atol=1e-4)
        lm = log_mel(y[b], cfg).numpy()
        np.testing.assert_array_equal(single[..., 0], lm)
        np.testing.assert_allclose(single[..., 1:], deltas(lm, cfg.delta_width).numpy(), atol=1e-5)


def test_features_inside_tf_function_with_unknown_length():
    cfg = SMALL

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def extract(y):
        return quaternion_features(y, cfg)

    y = chirp_noise(8000, 0.37, seed=5)
    out = extract(y)
    np.testing.assert_allclose(out.numpy(), quaternion_features(y, cfg).numpy(), atol=1e-4)
    ds = tf.data.Dataset.from_tensor_slices(np.stack([y, y])).map(lambda w: log_mel(w, cfg))
    assert next(iter(ds)).shape == (cfg.num_frames(y.size), cfg.n_mels)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too short"):
        extract(np.zeros(cfg.min_num_samples() - 1, np.float32))


def _assert_ops_guarding(graph_fn) -> list[str]:
    """Messages of the Assert ops every output of ``graph_fn`` depends on (data or control)."""
    outputs = [t.op for t in graph_fn.outputs]
    guards = None
    for out in outputs:
        seen, stack = set(), [out]
        while stack:
            op = stack.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            stack += [t.op for t in op.inputs] + list(op.control_inputs)
        asserts = {
            name for name in seen if graph_fn.graph.get_operation_by_name(name).type == "Assert"
        }
        guards = asserts if guards is None else guards & asserts
    return sorted(guards or ())


@pytest.mark.parametrize("what", ["quaternion_features", "deltas", "QuaternionDeltas"])
def test_length_check_is_a_dependency_of_the_result_with_unknown_length(what):
    """Regression: the length assertion guards the computation, whatever the op schedule.

    It used to be a free-standing op: inside tf.function a too-short clip sometimes failed with
    ``ConcatOp : Dimension 3 in both shapes must be equal`` from the delta operator instead.
    """
    cfg = SMALL
    if what == "quaternion_features":
        spec, fn, match = (
            tf.TensorSpec([None], tf.float32),
            lambda y: quaternion_features(y, cfg),
            "too short",
        )
        shorts = [np.zeros(n, np.float32) for n in range(cfg.n_fft // 2 + 1, cfg.min_num_samples())]
    elif what == "deltas":
        spec, fn, match = tf.TensorSpec([None, 16], tf.float32), lambda x: deltas(x, 9), "deltas: "
        shorts = [np.zeros((n, 16), np.float32) for n in range(1, 9)]
    else:
        layer = QuaternionDeltas(width=9)
        spec, fn, match = tf.TensorSpec([1, None, 16, 1], tf.float32), layer, "delta_width=9"
        shorts = [np.zeros((1, n, 16, 1), np.float32) for n in range(1, 9)]
    graph_fn = tf.function(fn, input_signature=[spec]).get_concrete_function()
    assert _assert_ops_guarding(graph_fn), f"no Assert op guards the output of {what}"
    extract = tf.function(fn, input_signature=[spec])
    for short in shorts[::-1] * 3:  # many schedules; every one must give the length error
        with pytest.raises(tf.errors.InvalidArgumentError, match=match):
            extract(short)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("fmax", 20000.0, r"fmax must be <= sample_rate / 2 = 16000.0"),
        ("fmin", 15000.0, r"fmin must be < fmax"),
        ("fmin", -1.0, r"fmin must be >= 0"),
        ("n_mels", 0, r"n_mels must be >= 1"),
        ("delta_width", 8, r"delta_width must be an odd integer >= 5.*got 8"),
        ("delta_width", 3, r"delta_width must be an odd integer >= 5.*got 3"),
        ("hop_length", 2048, r"hop_length must be in \[1, n_fft=1024\].*got 2048"),
        ("sample_rate", 0, r"sample_rate must be >= 1"),
        ("mel_norm", "area", r"mel_norm must be one of"),
    ],
)
def test_feature_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        FeatureConfig(**{field: value})


def test_feature_config_type_errors():
    with pytest.raises(TypeError, match=r"n_fft must be an integer, got 1024.0"):
        FeatureConfig(n_fft=1024.0)
    with pytest.raises(TypeError, match="fmax must be a finite number"):
        FeatureConfig(fmax=float("nan"))


def test_short_clip_and_bad_input_errors():
    cfg = FeatureConfig()
    assert cfg.min_num_samples() == 2560 and cfg.num_frames(2560) == 9
    quaternion_features(np.zeros(2560, np.float32), cfg)  # exactly the minimum works
    with pytest.raises(ValueError, match=r"2559 samples is too short.*at least 2560.*longer clip"):
        quaternion_features(np.zeros(2559, np.float32), cfg)
    with pytest.raises(ValueError, match=r"at least 513 samples"):
        log_mel(np.zeros(512, np.float32), cfg)
    with pytest.raises(ValueError, match="too short for n_fft=1024"):
        cfg.num_frames(100)
    with pytest.raises(TypeError, match="int16.*32768"):
        log_mel(np.zeros(4000, np.int16), cfg)
    with pytest.raises(ValueError, match=r"\[samples\] or \[batch, samples\].*rank 3"):
        log_mel(np.zeros((1, 2, 4000), np.float32), cfg)
    with pytest.raises(
        ValueError, match=r"at least delta_width=9 frames, got 8.*smaller delta_width"
    ):
        deltas(np.zeros((8, 4), np.float32), width=9)
    with pytest.raises(ValueError, match="width must be an odd integer >= 3"):
        deltas(np.zeros((20, 4), np.float32), width=4)
    with pytest.raises(ValueError, match=r"orders must be .* \[1, width - 1 = 4\]"):
        deltas(np.zeros((20, 4), np.float32), width=5, orders=(1, 5))
    with pytest.raises(ValueError, match=r"polyorder must be .*order=2 <= polyorder < width=5"):
        savgol_delta_matrices(5, 2, polyorder=1)


def test_feature_config_dict_roundtrip_and_cache_key():
    cfg = FeatureConfig()
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert FeatureConfig.from_dict(d) == cfg
    assert FeatureConfig.from_dict({"sample_rate": 16000, "fmax": 8000}).fmax == 8000.0
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['nfft'\]"):
        FeatureConfig.from_dict({"nfft": 512})
    key = cfg.cache_key()
    # pinned: changing it silently would orphan every user's feature cache
    assert key == "7762468239c4fda4"
    assert FeatureConfig(fmax=14000).cache_key() == key  # int vs float fmax: same config
    changed = {
        "sample_rate": 44100,
        "n_fft": 512,
        "hop_length": 160,
        "n_mels": 32,
        "fmin": 0.0,
        "fmax": 8000.0,
        "delta_width": 7,
        "mel_norm": "slaney",
    }
    keys = {dataclasses.replace(cfg, **{k: v}).cache_key() for k, v in changed.items()}
    assert len(keys) == len(changed) and key not in keys


# --- QuaternionDeltas layer ---------------------------------------------------------------------


def test_quaternion_deltas_layer_equals_quaternion_features():
    cfg = SMALL
    y = chirp_noise(8000, 0.5, seed=6)
    expected = quaternion_features(y, cfg).numpy()
    lm = log_mel(y, cfg).numpy()
    layer = QuaternionDeltas(width=cfg.delta_width)
    out = keras.ops.convert_to_numpy(layer(lm[None, ..., None]))[0]
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert layer.weights == [] and layer.count_params() == 0
    assert layer.compute_output_shape((None, None, 16, 1)) == (None, None, 16, 4)


def test_quaternion_deltas_save_load_roundtrip(tmp_path):
    inputs = keras.Input((None, 16, 1))  # variable number of frames
    x = QuaternionDeltas(width=7, name="deltas")(inputs)
    outputs = keras.layers.Conv2D(2, 3)(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "deltas.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True
    assert loaded.get_layer("deltas").get_config()["width"] == 7
    rng = np.random.default_rng(7)
    for frames in (7, 23):
        x = rng.standard_normal((2, frames, 16, 1)).astype(np.float32)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
        )
    clone = QuaternionDeltas.from_config(QuaternionDeltas(width=5).get_config())
    assert clone.width == 5


def test_quaternion_deltas_errors():
    with pytest.raises(ValueError, match="QuaternionDeltas: width must be an odd integer >= 3"):
        QuaternionDeltas(width=8)
    with pytest.raises(ValueError, match="width must be an odd integer >= 5.*got 3"):
        QuaternionDeltas(width=3)
    with pytest.raises(ValueError, match=r"expects log-mel of shape \(batch, frames, mels, 1\)"):
        QuaternionDeltas()(keras.Input((20, 16, 2)))
    with pytest.raises(ValueError, match="at least delta_width=9 frames, got 5"):
        QuaternionDeltas()(keras.Input((5, 16, 1)))


def test_quaternion_deltas_converts_to_full_int8_tflite(tmp_path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    cfg = SMALL
    clips = [chirp_noise(8000, 0.4, seed=s) for s in range(12)]
    feats = [log_mel(c, cfg).numpy()[None, ..., None] for c in clips]  # [1, 41, 16, 1]
    frames = feats[0].shape[1]
    inputs = keras.Input((frames, cfg.n_mels, 1))
    model = keras.Model(
        inputs, keras.layers.Conv2D(4, 3)(QuaternionDeltas(cfg.delta_width)(inputs))
    )
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([f] for f in feats[:8])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flatbuffer = converter.convert()

    # reference kernels, no delegate: the op list is the model's own
    interp = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    interp.allocate_tensors()
    op_names = {op["op_name"] for op in interp._get_ops_details()}
    assert op_names <= {"CONV_2D", "STRIDED_SLICE", "CONCATENATION", "QUANTIZE"}, op_names
    dtypes = {t["dtype"] for t in interp.get_tensor_details()}
    assert dtypes <= {np.int8, np.int32}, f"non-integer tensors in the int8 model: {dtypes}"

    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == out["dtype"] == np.int8
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    worst = 0.0
    for f in feats[8:]:  # held-out clips
        q = np.clip(np.round(f / s_in + z_in), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        got = (interp.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out
        want = keras.ops.convert_to_numpy(model(f))
        worst = max(worst, float(np.abs(got - want).max()))
    # int8 error of the whole chain (input, deltas and conv output rounding): a few output steps
    assert worst < 4 * s_out, f"int8 error {worst} vs output scale {s_out}"

    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return
    micro = runtime.Interpreter.from_bytes(flatbuffer)
    micro.set_input(q, 0)
    micro.invoke()
    np.testing.assert_array_equal(micro.get_output(0), interp.get_tensor(out["index"]))
