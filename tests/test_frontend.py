"""The C99 front end (tflite/frontend) against the Python features, and the KWS example app.

Everything C is compiled here with the system compiler using ``-std=c99 -Wall -Wextra -Werror
-pedantic -O2`` (and once with ``-fsanitize=address,undefined``), then run through the small host
harness ``kq_frontend_cli`` on raw float32 files. Tolerances (checked on real FSDD audio and on
synthetic signals):

* log-mel: max |C - Python| < 0.05 dB over (frame, mel) cells whose mel power is above -80 dB,
  and < 0.5 dB everywhere (near the -100 dB floor float32 round-off of the FFT dominates);
* Δ, Δ², Δ³: max |C - Python| < 0.01 (dB per frame^order) where the whole 9-frame window is above
  -80 dB; the delta operator alone (same log-mel input) agrees to 1e-4 relative;
* int8 model input: the C quantization of the C features equals numpy's quantization of the
  Python features except for rare 1-LSB rounding-boundary cases (< 0.5% of values, never more
  than 1 LSB).
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_quaternion.features import (  # noqa: E402
    FeatureConfig,
    deltas,
    log_mel,
    mel_filterbank,
    quaternion_features,
)

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "tflite" / "frontend"
APP = ROOT / "tflite" / "examples" / "kws_app"
FSDD = ROOT.parent / "shared" / "data" / "fsdd"

LOGMEL_TOL_DB = 0.05  # cells above -80 dB
LOGMEL_TOL_ALL_DB = 0.5  # every cell
DELTA_TOL = 0.01  # dB / frame^order, windows above -80 dB
THRESHOLD_DB = -80.0


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen_config = _load("gen_config", FRONTEND / "gen_config.py")
parity = _load("kq_parity_report", FRONTEND / "parity_report.py")

CC = parity.find_compiler()
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (gcc/cc) on this machine")

FSDD_CONFIG = gen_config.fsdd_config()


def _need_fsdd():
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD} (../shared/data/fsdd from the repo root)")


def _fsdd_clips(count: int):
    import soundfile as sf

    files = sorted((FSDD / "recordings").glob("*.wav"))
    step = max(1, len(files) // count)
    out = []
    for path in files[::step][:count]:
        x, sr = sf.read(path, dtype="float32")
        assert sr == 8000, f"{path} is {sr} Hz, DATA.md says 8 kHz"
        out.append((path.name, x))
    return out


def _quantize_ref(x, scale, zero_point):
    """TFLite Micro's QUANTIZE: round half away from zero of x / scale, + zero point, clamp."""
    v = np.asarray(x, np.float32) / np.float32(scale)
    v = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    v = np.where(np.isnan(v), -128, v + zero_point)  # the C code maps NaN to -128
    return np.clip(v, -128, 127).astype(np.int8)


def _synthetic(config: FeatureConfig, seconds: float, seed: int = 0) -> np.ndarray:
    """Chirp + two tones + noise with a quiet gap and a loud burst (wide dynamic range)."""
    rng = np.random.default_rng(seed)
    sr = config.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    f0, f1 = 100.0, 0.45 * sr
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))
    x = 0.3 * chirp + 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1234.5 * t)
    x += 0.01 * rng.standard_normal(t.size)
    x[t.size // 3 : t.size // 3 + t.size // 10] *= 1e-3  # -60 dB gap
    x[t.size // 2 : t.size // 2 + 200] += 0.9 * rng.standard_normal(200)  # click
    return x.astype(np.float32)


# --- builds (module scope: each compiled once) ------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """The harness built from the committed FSDD config header."""
    return parity.build_cli(tmp_path_factory.mktemp("kq_cli"))


@pytest.fixture(scope="module")
def panns_cli(tmp_path_factory):
    """The harness built for the PANNs 32 kHz config through -DKQ_FRONTEND_CONFIG_FILE."""
    return parity.build_cli(tmp_path_factory.mktemp("kq_cli_panns"), FeatureConfig())


# --- the generator ------------------------------------------------------------------------------


def test_committed_header_is_current():
    committed = (FRONTEND / "kq_frontend_config.h").read_text(encoding="ascii")
    assert committed == gen_config.render_header(FSDD_CONFIG), (
        "tflite/frontend/kq_frontend_config.h is stale: run python tflite/frontend/gen_config.py"
    )


def test_fsdd_config_is_the_training_config():
    assert FSDD_CONFIG == FeatureConfig(
        sample_rate=8000, n_fft=256, hop_length=80, n_mels=64, fmin=50.0, fmax=4000.0
    )


def test_generator_tables_match_the_python_features():
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, fmax=8000.0)
    t = gen_config.compute_tables(cfg)
    dense = np.zeros((cfg.n_fft // 2 + 1, cfg.n_mels))
    for m in range(cfg.n_mels):
        s, c, o = t.mel_start[m], t.mel_count[m], t.mel_offset[m]
        dense[s : s + c, m] = t.mel_weights[o : o + c]
    np.testing.assert_allclose(dense, mel_filterbank(cfg), rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.window, np.hanning(cfg.n_fft + 1)[:-1], atol=1e-12)
    # the central Savitzky-Golay filter of order 1, width 9 is librosa's classic (-4..4) / 60
    np.testing.assert_allclose(t.sg_central[0], np.arange(-4, 5) / 60.0, atol=1e-12)


def test_generator_cli_and_errors(tmp_path, capsys):
    out = tmp_path / "sub" / "cfg.h"
    assert gen_config.main(["--preset", "panns", "--n-mels", "32", "--out", str(out)]) == 0
    text = out.read_text(encoding="ascii")
    assert "#define KQ_FRONTEND_N_FFT 1024" in text
    assert "#define KQ_FRONTEND_N_MELS 32" in text
    assert not list(out.parent.glob("*.tmp")), "atomic write left a temporary file"

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"feature_config": FSDD_CONFIG.to_dict()}), encoding="utf-8")
    out2 = tmp_path / "cfg2.h"
    assert gen_config.main(["--from-json", str(report), "--out", str(out2)]) == 0
    assert out2.read_text(encoding="ascii") == gen_config.render_header(FSDD_CONFIG)

    with pytest.raises(SystemExit, match=r"power of two.*n_fft=1000.*512 or 1024"):
        gen_config.main(["--n-fft", "1000", "--out", str(tmp_path / "x.h")])
    with pytest.raises(SystemExit, match="fmax"):
        gen_config.main(["--fmax", "5000", "--out", str(tmp_path / "x.h")])
    with pytest.raises(TypeError, match="FeatureConfig"):
        gen_config.compute_tables({"n_fft": 256})
    assert not (tmp_path / "x.h").exists()


def test_generator_doctests():
    result = doctest.testmod(gen_config, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


# --- numerical parity, no dataset needed --------------------------------------------------------


def test_fft_power_matches_numpy(cli):
    n = FSDD_CONFIG.n_fft
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((6, n)).astype(np.float32)
    frames[1] = np.cos(2 * np.pi * 17 * np.arange(n) / n)  # one exact bin
    frames[2] = 0.0
    frames[3] = 1.0  # DC only
    frames[4] = (-1.0) ** np.arange(n)  # Nyquist only
    power = parity.run_cli(cli, "power", frames).reshape(6, n // 2 + 1)
    window = np.hanning(n + 1)[:-1]
    ref = np.abs(np.fft.rfft(frames.astype(np.float64) * window, axis=1)) ** 2
    scale = ref.max(axis=1, keepdims=True) + 1e-30
    assert np.abs(power - ref).max() / scale.max() < 1e-5
    assert (np.abs(power - ref) / scale).max() < 1e-5
    assert np.all(power[2] == 0.0)


def test_frame_helper_matches_python_logmel(cli):
    cfg = FSDD_CONFIG
    rng = np.random.default_rng(2)
    frames = (0.1 * rng.standard_normal((5, cfg.n_fft))).astype(np.float32)
    c = parity.run_cli(cli, "logmel-frames", frames).reshape(5, cfg.n_mels)
    power = np.abs(np.fft.rfft(frames.astype(np.float64) * np.hanning(cfg.n_fft + 1)[:-1])) ** 2
    ref = 10 * np.log10(np.maximum(power @ mel_filterbank(cfg), 1e-10))
    assert np.abs(c - ref).max() < 0.01


def test_delta_operator_matches_python_and_librosa(cli):
    import librosa

    rng = np.random.default_rng(3)
    lm = (rng.standard_normal((23, FSDD_CONFIG.n_mels)) * 20 - 40).astype(np.float32)
    c = parity.run_cli(cli, "deltas", lm).reshape(23, FSDD_CONFIG.n_mels, 4)
    np.testing.assert_array_equal(c[..., 0], lm)
    ref = deltas(lm, width=9).numpy()
    np.testing.assert_allclose(c[..., 1:], ref, rtol=1e-4, atol=1e-4)
    for order in (1, 2, 3):
        lib = librosa.feature.delta(lm.astype(np.float64), width=9, order=order, axis=0)
        np.testing.assert_allclose(c[..., order], lib, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seconds", [0.5, 0.0801])
def test_synthetic_parity_panns_config(panns_cli, seconds):
    """32 kHz / n_fft 1024 build: a wide-dynamic-range synthetic clip, and a minimum-length one."""
    cfg = FeatureConfig()
    x = _synthetic(cfg, seconds)
    if seconds < 0.1:
        x = x[: cfg.min_num_samples()]
    ref = quaternion_features(x, cfg).numpy()
    c = parity.c_quaternion(panns_cli, x, cfg.n_mels)
    res = parity.compare_features(c, ref, cfg.delta_width, THRESHOLD_DB)
    assert res["logmel_above"] < LOGMEL_TOL_DB, res
    assert res["logmel_all"] < LOGMEL_TOL_ALL_DB, res
    assert max(res["delta_above"]) < DELTA_TOL, res
    assert ref.shape[0] == cfg.num_frames(x.size)


def test_synthetic_parity_fsdd_config_and_silence(cli):
    cfg = FSDD_CONFIG
    x = _synthetic(cfg, 1.0, seed=4)
    ref = quaternion_features(x, cfg).numpy()
    c = parity.c_quaternion(cli, x, cfg.n_mels)
    res = parity.compare_features(c, ref, cfg.delta_width, THRESHOLD_DB)
    assert res["logmel_above"] < LOGMEL_TOL_DB and max(res["delta_above"]) < DELTA_TOL, res
    # digital silence: every cell is the -100 dB floor and every delta 0, exactly as in Python
    silent = parity.c_quaternion(cli, np.zeros(cfg.sample_rate // 2, np.float32), cfg.n_mels)
    np.testing.assert_array_equal(silent[..., 0], -100.0)
    assert np.abs(silent[..., 1:]).max() < 1e-4


def test_logmel_mode_is_component_zero(cli):
    x = _synthetic(FSDD_CONFIG, 0.3, seed=5)
    quat = parity.c_quaternion(cli, x, FSDD_CONFIG.n_mels)
    lm = parity.run_cli(cli, "logmel", x).reshape(-1, FSDD_CONFIG.n_mels)
    np.testing.assert_array_equal(lm, quat[..., 0])
    ref = log_mel(x, FSDD_CONFIG).numpy()
    assert np.abs(lm - ref)[ref > THRESHOLD_DB].max() < LOGMEL_TOL_DB


def test_frame_count_and_short_clips(cli):
    cfg = FSDD_CONFIG
    for n in (cfg.min_num_samples(), cfg.min_num_samples() + 79, 8000, 8001):
        x = _synthetic(cfg, 1.01)[:n]
        assert parity.c_quaternion(cli, x, cfg.n_mels).shape[0] == cfg.num_frames(n)
    short = np.zeros(cfg.min_num_samples() - 1, np.float32)
    with pytest.raises(RuntimeError, match="too short"):
        parity.run_cli(cli, "quaternion", short)
    # log-mel alone only needs the reflect padding: n_fft / 2 + 1 samples
    assert parity.run_cli(cli, "logmel", np.ones(cfg.n_fft // 2 + 1)).size == 2 * cfg.n_mels
    with pytest.raises(RuntimeError, match="too short"):
        parity.run_cli(cli, "logmel", np.ones(cfg.n_fft // 2))
    with pytest.raises(RuntimeError, match="at least KQ_FRONTEND_DELTA_WIDTH frames"):
        parity.run_cli(cli, "deltas", np.zeros((8, cfg.n_mels)))


def test_quantize_int8(cli):
    x = np.array(
        [0.0, 0.05, 0.075, -0.075, 0.125, -0.125, 1.0, -1.0, 100.0, -100.0, np.nan, 0.0249],
        np.float32,
    )
    for scale, zp in ((0.05, 0), (0.05, -128), (0.25, 10)):
        got = parity.run_cli(cli, "quantize", x, str(scale), str(zp), out_dtype=np.int8)
        want = _quantize_ref(x, scale, zp)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(RuntimeError, match="scale must be finite and > 0"):
        parity.run_cli(cli, "quantize", x, "0", "0", out_dtype=np.int8)
    with pytest.raises(RuntimeError, match=r"zero point must be in \[-128, 127\]"):
        parity.run_cli(cli, "quantize", x, "0.1", "128", out_dtype=np.int8)


def test_quaternion_int8_equals_quantized_float_features(cli):
    cfg = FSDD_CONFIG
    x = _synthetic(cfg, 1.0, seed=6)
    scale, zp = 0.4, -20
    direct = parity.run_cli(cli, "quaternion-int8", x, str(scale), str(zp), out_dtype=np.int8)
    feats = parity.c_quaternion(cli, x, cfg.n_mels)
    via_float = parity.run_cli(cli, "quantize", feats, str(scale), str(zp), out_dtype=np.int8)
    np.testing.assert_array_equal(direct, via_float)


def test_harness_rejects_bad_files(cli, tmp_path):
    bad = tmp_path / "bad.f32"
    bad.write_bytes(b"\x00" * 7)
    proc = subprocess.run(
        [str(cli), "quaternion", str(bad), str(tmp_path / "o")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "not a multiple of 4" in proc.stderr
    proc = subprocess.run([str(cli), "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
    info = json.loads(subprocess.run([str(cli), "info"], capture_output=True, text=True).stdout)
    assert info["config_key"] == FSDD_CONFIG.cache_key()
    assert info["scratch_bytes"] == 4 * (FSDD_CONFIG.n_fft + 2)
    assert info["min_samples_quaternion"] == FSDD_CONFIG.min_num_samples()


def test_sanitizer_build_runs_clean(tmp_path, cli):
    if not parity.sanitizers_available(CC):
        pytest.skip(f"{CC} cannot build with -fsanitize=address,undefined here")
    asan = parity.build_cli(tmp_path, sanitize=True)
    cfg = FSDD_CONFIG
    for n in (cfg.min_num_samples(), cfg.min_num_samples() + 1, 4321):
        x = _synthetic(cfg, 0.6, seed=n)[:n]
        for command in ("quaternion", "logmel"):
            np.testing.assert_array_equal(
                parity.run_cli(asan, command, x), parity.run_cli(cli, command, x)
            )
    frames = np.random.default_rng(7).standard_normal((3, cfg.n_fft))
    parity.run_cli(asan, "power", frames)
    parity.run_cli(asan, "logmel-frames", frames)
    parity.run_cli(asan, "quaternion-int8", _synthetic(cfg, 0.2), "0.3", "5", out_dtype=np.int8)
    with pytest.raises(RuntimeError, match="too short"):
        parity.run_cli(asan, "quaternion", np.zeros(cfg.min_num_samples() - 1))


# --- real audio -----------------------------------------------------------------------------------


def test_fsdd_parity(cli):
    """24 FSDD recordings, spread over digits and speakers: C vs keras_quaternion.features."""
    _need_fsdd()
    cfg = FSDD_CONFIG
    worst = {"logmel_above": 0.0, "logmel_all": 0.0, "delta": 0.0}
    for name, x in _fsdd_clips(24):
        ref = quaternion_features(x, cfg).numpy()
        c = parity.c_quaternion(cli, x, cfg.n_mels)
        res = parity.compare_features(c, ref, cfg.delta_width, THRESHOLD_DB)
        assert res["logmel_above"] < LOGMEL_TOL_DB, (name, res)
        assert res["logmel_all"] < LOGMEL_TOL_ALL_DB, (name, res)
        assert max(res["delta_above"]) < DELTA_TOL, (name, res)
        worst["logmel_above"] = max(worst["logmel_above"], res["logmel_above"])
        worst["delta"] = max(worst["delta"], *res["delta_above"])
    # the features are not trivially equal because both are constant: they span tens of dB
    assert ref[..., 0].max() - ref[..., 0].min() > 40


# --- the KWS example app with the stand-in interpreter --------------------------------------------


@pytest.fixture(scope="module")
def kws_host(tmp_path_factory):
    out = tmp_path_factory.mktemp("kws") / "kws_host"
    cmd = [
        CC,
        *parity.STRICT_CFLAGS,
        f"-I{APP}",
        f"-I{APP / 'host'}",
        f"-I{FRONTEND}",
        str(APP / "kws_app.c"),
        str(APP / "host" / "fake_model.c"),
        str(APP / "host" / "main_host.c"),
        str(FRONTEND / "kq_frontend.c"),
        "-lm",
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def _run_host(exe, audio, tmp_path, *args, pcm16=False):
    src = tmp_path / ("audio.s16" if pcm16 else "audio.f32")
    (np.asarray(audio, np.int16) if pcm16 else np.asarray(audio, np.float32)).tofile(src)
    dump = tmp_path / "input.i8"
    argv = [str(exe), *args, "--dump-input", str(dump)] + (["--pcm16"] if pcm16 else [])
    proc = subprocess.run([*argv, str(src)], capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    return result, (np.fromfile(dump, np.int8) if dump.exists() else None)


def _fake_model_output(q_input, classes):
    """What host/fake_model.c computes: per-class mean of the int8 input, C integer division."""
    acc = np.array([q_input[c::classes].astype(np.int64).sum() for c in range(classes)])
    cnt = np.array([q_input[c::classes].size for c in range(classes)])
    return np.clip(np.trunc(acc / cnt), -128, 127).astype(np.int8)


def _app_audio():
    if (FSDD / "recordings").is_dir():
        import soundfile as sf

        pcm, sr = sf.read(FSDD / "recordings" / "7_theo_12.wav", dtype="int16")
        assert sr == 8000
        return pcm
    return (_synthetic(FSDD_CONFIG, 0.7, seed=8) * 20000).astype(np.int16)


def test_kws_app_end_to_end_with_fake_interpreter(kws_host, tmp_path):
    """PCM16 clip -> fit to 1 s -> C features -> int8 input -> (fake) interpreter -> top class."""
    cfg = FSDD_CONFIG
    pcm = _app_audio()
    clip = np.zeros(cfg.sample_rate, np.float32)  # the training pipeline's fit_length
    clip[: min(pcm.size, clip.size)] = pcm[: clip.size].astype(np.float32) / 32768.0
    ref = quaternion_features(clip, cfg).numpy()  # [101, 64, 4]
    lo, hi = float(ref.min()), float(ref.max())  # calibrated range, as the converter does
    scale = (hi - lo) / 255.0
    zp = int(round(-128 - lo / scale))
    classes = 10
    res, q = _run_host(
        kws_host,
        pcm,
        tmp_path,
        "--fit",
        "--classes",
        str(classes),
        "--in-scale",
        repr(scale),
        "--in-zp",
        str(zp),
        "--out-scale",
        "0.00390625",
        "--out-zp",
        "-128",
        pcm16=True,
    )
    assert res["rc"] == 0, res
    assert res["frames"] == cfg.num_frames(cfg.sample_rate) == 101
    assert res["invocations"] == 1
    assert res["workspace_bytes"] == 4 * 101 * cfg.n_mels + 4 * (cfg.n_fft + 2)
    want = _quantize_ref(ref, np.float32(scale), zp).ravel()
    assert q.shape == want.shape
    off = np.abs(q.astype(int) - want.astype(int))
    assert off.max() <= 1 and (off > 0).mean() < 0.005, (off.max(), (off > 0).mean())
    out = _fake_model_output(q, classes)
    scores = (out.astype(np.float32) + 128) * np.float32(0.00390625)
    np.testing.assert_allclose(res["scores"], scores, rtol=1e-6)
    assert res["top_class"] == int(np.argmax(out))


def test_kws_app_logmel_model_and_errors(kws_host, tmp_path):
    pcm = _app_audio()
    clip = np.zeros(8000, np.float32)
    clip[: min(pcm.size, 8000)] = pcm[:8000] / 32768.0
    # a model with QuaternionDeltas inside takes [1, 101, 64, 1] log-mel
    res, q = _run_host(
        kws_host,
        pcm,
        tmp_path,
        "--fit",
        "--channels",
        "1",
        "--in-scale",
        "0.5",
        "--in-zp",
        "60",
        pcm16=True,
    )
    assert res["rc"] == 0, res
    want = _quantize_ref(log_mel(clip, FSDD_CONFIG).numpy(), 0.5, 60).ravel()
    off = np.abs(q.astype(int) - want.astype(int))
    assert off.max() <= 1 and (off > 0).mean() < 0.005

    cases = [
        (("--fit", "--frames", "100"), -21, "input shape"),
        (("--fit", "--mels", "40"), -21, "input shape"),
        (("--fit", "--channels", "3"), -21, "input shape"),
        (("--fit", "--classes", "33"), -23, "KWS_MAX_CLASSES"),
        (("--fit", "--in-scale", "0"), -24, "quantization"),
        (("--fit", "--out-zp", "200"), -24, "quantization"),
        (("--fit", "--fail-invoke"), -25, "failed to run"),
        ((), -26, "kws_fit_clip"),  # a clip that is not 1 s long
    ]
    for args, rc, message in cases:
        res, _ = _run_host(kws_host, pcm, tmp_path, *args, pcm16=True)
        assert res["rc"] == rc and message in res["error"], (args, res)


# --- the TFLM adapter and device main: stand-in interpreter, and optionally real TFLM ---------

CXX = next((p for p in (os.environ.get("CXX"), "g++", "c++") if p and shutil.which(p)), None)
CXXFLAGS = ("-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2")
TFLM_ROOT = os.environ.get("KQ_TFLM_ROOT")


def _tiny_int8_model(tmp_path):
    """A real int8 flatbuffer with input [1, 101, 64, 4] and 10 outputs, plus its micro files."""
    import keras
    import tensorflow as tf

    from keras_quaternion.export.micro import write_micro_artifacts

    x = keras.Input((101, FSDD_CONFIG.n_mels, 4), batch_size=1)
    y = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(10, activation="softmax")(y))
    rng = np.random.default_rng(0)
    calib = (rng.normal(size=(8, 1, 101, FSDD_CONFIG.n_mels, 4)) * 20 - 30).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([c] for c in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        flatbuffer = converter.convert()
    art = tmp_path / "art"
    write_micro_artifacts(flatbuffer, art)
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=flatbuffer).get_input_details()[0]
    scale, zero_point = details["quantization"]
    return flatbuffer, art, float(scale), int(zero_point)


def _tiny_compact_model(tmp_path):
    """A quaternion int8 model exported with the compact strategy, plus its micro files.

    Returns the compact flatbuffer's files and, as "flatbuffer", its expanded twin (the
    converter's output), whose TFLite Micro outputs the compact model must reproduce.
    """
    import keras

    from keras_quaternion import QConv2D
    from keras_quaternion.export.micro import ArenaMeasurement, write_micro_artifacts
    from keras_quaternion.export.tflite import convert_model

    keras.utils.set_random_seed(0)
    x = keras.Input((101, FSDD_CONFIG.n_mels, 4), batch_size=1)
    y = QConv2D(2, 3, strides=2, activation="relu", name="qconv")(x)
    y = QConv2D(2, 3, padding="same", activation="relu", name="qconv2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(10, activation="softmax")(y))
    rng = np.random.default_rng(0)
    calib = (rng.normal(size=(8, 101, FSDD_CONFIG.n_mels, 4)) * 20 - 30).astype(np.float32)
    conversion = convert_model(model, representative_data=calib, quaternion="compact")
    art = tmp_path / "art"
    arena = ArenaMeasurement(60000, 60000, 131072, 0.1, 16)
    write_micro_artifacts(conversion.flatbuffer, art, arena=arena)
    from ai_edge_litert.interpreter import Interpreter

    twin = conversion.expanded_flatbuffer
    details = Interpreter(model_content=twin).get_input_details()[0]
    scale, zero_point = details["quantization"]
    return twin, art, float(scale), int(zero_point)


def _device_files(tmp_path_factory, name, make_model):
    """Model files, audio_sample.h and the C objects the device main needs."""
    if CXX is None:
        pytest.skip("no C++ compiler (g++/c++) on this machine")
    tmp = tmp_path_factory.mktemp(name)
    flatbuffer, art, scale, zero_point = make_model(tmp)
    wav_to_header = _load("kq_wav_to_header", APP / "wav_to_header.py")
    pcm = _app_audio()
    (tmp / "audio_sample.h").write_text(
        wav_to_header.render_audio_header(pcm[:8000], 8000, "clip.wav"), encoding="ascii"
    )
    objects = []
    for src in (APP / "kws_app.c", FRONTEND / "kq_frontend.c"):
        obj = tmp / (src.stem + ".o")
        cmd = [
            CC,
            *parity.STRICT_CFLAGS,
            f"-I{APP}",
            f"-I{FRONTEND}",
            "-c",
            str(src),
            "-o",
            str(obj),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objects.append(str(obj))
    return {
        "dir": tmp,
        "art": art,
        "flatbuffer": flatbuffer,
        "scale": scale,
        "zero_point": zero_point,
        "pcm": pcm,
        "objects": objects,
    }


@pytest.fixture(scope="module")
def device_build(tmp_path_factory):
    """The device files for a real-layer int8 model."""
    return _device_files(tmp_path_factory, "device", _tiny_int8_model)


@pytest.fixture(scope="module")
def compact_build(tmp_path_factory):
    """The device files for a quaternion model exported with --quaternion compact."""
    build = _device_files(tmp_path_factory, "compact", _tiny_compact_model)
    obj = build["dir"] / "kq_quaternion_ops.o"
    cmd = [
        CC,
        *parity.STRICT_CFLAGS,
        "-c",
        str(build["art"] / "kq_quaternion_ops.c"),
        "-o",
        str(obj),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    build["objects"].append(str(obj))
    return build


def _build_device(build, name, *extra, tflm_flags=(), sources=()):
    exe = build["dir"] / name
    cmd = [
        CXX,
        *CXXFLAGS,
        *tflm_flags,
        f"-I{build['dir']}",
        f"-I{build['art']}",
        f"-I{APP}",
        f"-I{FRONTEND}",
        *extra,
        str(APP / "main_device.cc"),
        str(APP / "kws_model_tflm.cc"),
        str(build["art"] / "model_data.cc"),
        *sources,
        *build["objects"],
        "-lm",
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return exe


def _device_output(exe):
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr  # TFLM's host MicroPrintf writes to stderr
    lines = text.splitlines()
    ints = [line.split("int8 output", 1)[1].split() for line in lines if "int8 output" in line]
    assert ints or proc.returncode != 0, f"no 'int8 output' line in:\n{text}"
    return proc.returncode, text, (np.array(ints[0], dtype=np.int64) if ints else None)


def _c_model_input(kws_host, build, tmp_path):
    """The int8 input the C app computes for the clip, via the host build (same C code)."""
    res, q = _run_host(
        kws_host,
        build["pcm"][:8000],
        tmp_path,
        "--fit",
        "--in-scale",
        repr(build["scale"]),
        "--in-zp",
        str(build["zero_point"]),
        pcm16=True,
    )
    assert res["rc"] == 0, res
    return q


def test_device_main_with_tflm_stand_in(device_build, kws_host, tmp_path):
    """main_device.cc + kws_model_tflm.cc + the exported model files, over host/tflm_stub.

    The stand-in reads the real flatbuffer's input/output tensors and schema version, checks the
    op count of model_ops.h, and computes a known function of the int8 input.
    """
    stub = APP / "host" / "tflm_stub"
    exe = _build_device(
        device_build, "kws_stub", f"-I{stub}", sources=(str(stub / "tflm_stub.cc"),)
    )
    rc, out, got = _device_output(exe)
    assert rc == 0, out
    q = _c_model_input(kws_host, device_build, tmp_path)
    want = _fake_model_output(q, 10).astype(np.int64)
    np.testing.assert_array_equal(got, want)
    assert f"class {int(np.argmax(want))} " in out
    assert "101 frames x 64 mels" in out

    small = _build_device(
        device_build,
        "kws_stub_small",
        f"-I{stub}",
        "-DKWS_MODEL_ARENA_SIZE=64",
        sources=(str(stub / "tflm_stub.cc"),),
    )
    rc, out, _ = _device_output(small)
    assert rc == 1 and "AllocateTensors failed" in out and "arena is too small" in out, out


@pytest.mark.skipif(
    not TFLM_ROOT,
    reason="set KQ_TFLM_ROOT to a tflite-micro checkout with a built microlite library "
    "(make -f tensorflow/lite/micro/tools/make/Makefile microlite) to run the app on real TFLM",
)
def test_device_main_on_real_tflm(device_build, kws_host, tmp_path):
    """The C app on TFLM built from source gives the int8 output TFLM's Python runtime gives."""
    from tflite_micro import runtime

    exe = _build_on_real_tflm(device_build, "kws_tflm")
    rc, out, got = _device_output(exe)
    assert rc == 0, out
    q = _c_model_input(kws_host, device_build, tmp_path).reshape(1, 101, FSDD_CONFIG.n_mels, 4)
    interpreter = runtime.Interpreter.from_bytes(device_build["flatbuffer"], arena_size=1 << 20)
    interpreter.set_input(q, 0)
    interpreter.invoke()
    np.testing.assert_array_equal(got, interpreter.get_output(0).ravel().astype(np.int64))


def _build_on_real_tflm(build, name, sources=()):
    from keras_quaternion.export.bundle import tflm_library

    root = Path(TFLM_ROOT)
    libs = [tflm_library(root)]  # the host build, not a cross-compiled one
    downloads = root / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
    flags = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_USE_CTIME")
    includes = []
    for path in (
        root,
        downloads / "flatbuffers" / "include",
        downloads / "gemmlowp",
        downloads / "ruy",
    ):
        includes += ["-isystem", str(path)]
    return _build_device(build, name, *includes, tflm_flags=flags, sources=(*sources, str(libs[0])))


def test_compact_model_with_tflm_stand_in(compact_build, kws_host, tmp_path):
    """A compact export's model_ops.h (AddCustom) and kernel build into the app on the stand-in."""
    stub = APP / "host" / "tflm_stub"
    sources = (str(stub / "tflm_stub.cc"), str(stub / "kq_quaternion_stub.cc"))
    exe = _build_device(compact_build, "kws_compact_stub", f"-I{stub}", sources=sources)
    rc, out, got = _device_output(exe)
    assert rc == 0, out
    q = _c_model_input(kws_host, compact_build, tmp_path)
    np.testing.assert_array_equal(got, _fake_model_output(q, 10).astype(np.int64))


@pytest.mark.skipif(
    not TFLM_ROOT,
    reason="set KQ_TFLM_ROOT to a tflite-micro checkout with a built microlite library "
    "(make -f tensorflow/lite/micro/tools/make/Makefile microlite) to run the app on real TFLM",
)
def test_compact_model_on_real_tflm(compact_build, kws_host, tmp_path):
    """The app with the compact quaternion operators on real TFLM gives the int8 output TFLM's
    Python runtime gives for the expanded model (the converter's output)."""
    from tflite_micro import runtime

    exe = _build_on_real_tflm(
        compact_build,
        "kws_compact_tflm",
        sources=(str(compact_build["art"] / "kq_quaternion_tflm.cc"),),
    )
    rc, out, got = _device_output(exe)
    assert rc == 0, out
    q = _c_model_input(kws_host, compact_build, tmp_path).reshape(1, 101, FSDD_CONFIG.n_mels, 4)
    interpreter = runtime.Interpreter.from_bytes(compact_build["flatbuffer"], arena_size=1 << 20)
    interpreter.set_input(q, 0)
    interpreter.invoke()
    np.testing.assert_array_equal(got, interpreter.get_output(0).ravel().astype(np.int64))
