"""Issue 13, parts 3 and 5: the deployment bundle (tests/test_predict.py covers parts 1-2).

* ``kq-export --micro``'s ``model_labels.h`` and ``kq_frontend_config.h``, and the ``--app``
  folder for every export strategy: ``make host`` and the stand-in ``make stub`` build; with
  ``KQ_TFLM_ROOT``, ``make run`` on TFLite Micro prints the label kq-predict gives the
  ``.tflite``;
* the host TFLite Micro library is chosen over a cross-compiled one.
"""

from __future__ import annotations

import os
import shutil
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from keras_quaternion import QConv2D  # noqa: E402
from keras_quaternion.export.bundle import (  # noqa: E402
    APP_MARKER,
    check_app_dir,
    frontend_config_header,
    labels_header,
    tflm_library,
    write_app,
)
from keras_quaternion.features import FeatureConfig, quaternion_features  # noqa: E402
from keras_quaternion.files import atomic_save_model  # noqa: E402
from keras_quaternion.model_info import ModelInfo, describe_model, load_with_info  # noqa: E402
from keras_quaternion.predict import Predictor  # noqa: E402
from keras_quaternion.training import PreparedData  # noqa: E402

CONFIG = FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmax=4000.0)
CLIP = 0.5
NAMES = ("low", "mid", "high")
FREQS = (300.0, 1000.0, 2500.0)
TFLM_ROOT = os.environ.get("KQ_TFLM_ROOT")
HAS_MAKE = shutil.which("make") is not None and shutil.which("cc") and shutil.which("c++")
needs_make = pytest.mark.skipif(not HAS_MAKE, reason="needs make, a C and a C++ compiler")


def _tone(freq, seconds=CLIP, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CONFIG.sample_rate)) / CONFIG.sample_rate
    wave = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))
    return (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tones():
    """PreparedData of three tones (features computed from audio, as kq-train does)."""
    splits = {}
    for split, count, base in (("train", 12, 0), ("validation", 3, 100), ("test", 3, 200)):
        waves = [_tone(f, seed=base + i * 3 + c) for i in range(count) for c, f in enumerate(FREQS)]
        labels = [c for _ in range(count) for c in range(3)]
        splits[split] = (quaternion_features(np.stack(waves), CONFIG).numpy(), labels)
    return PreparedData.from_arrays(
        splits, class_names=list(NAMES), feature_config=CONFIG, clip_seconds=CLIP, dataset="tones"
    )


@pytest.fixture(scope="module")
def trained(tones, tmp_path_factory):
    """A tiny quaternion model that tells the tones apart, saved with its info."""
    keras.utils.set_random_seed(0)
    x = keras.Input(tones.input_shape())
    y = QConv2D(2, 3, strides=2, activation="relu", name="q1")(x)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(3, activation="softmax")(y))
    model.compile(keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    features, labels = tones.arrays("train")
    model.fit(features, labels, epochs=40, batch_size=12, verbose=0)
    path = tmp_path_factory.mktemp("trained") / "model.keras"
    atomic_save_model(model, path, info=ModelInfo.from_prepared(tones))
    return path


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """One WAV per tone (0.4 s, shorter than a clip) and a 1.6 s recording."""
    folder = tmp_path_factory.mktemp("wavs")
    paths = []
    for name, freq in zip(NAMES, FREQS):
        paths.append(folder / f"{name}.wav")
        sf.write(paths[-1], _tone(freq, 0.4, seed=7), CONFIG.sample_rate, subtype="PCM_16")
    long = folder / "long.wav"
    sf.write(long, np.concatenate([_tone(300.0, 0.8), _tone(2500.0, 0.8)]), 8000)
    return paths, long


# --- the bundle ----------------------------------------------------------------------------


def test_labels_and_frontend_headers_carry_the_models_key(monkeypatch):
    info = ModelInfo(CONFIG.to_dict(), CLIP, NAMES)
    text = labels_header(info)
    assert '#define MODEL_LABELS { "low", "mid", "high" }' in text
    assert "#define MODEL_CLIP_SAMPLES 4000" in text
    assert f'#define MODEL_FEATURE_KEY "{CONFIG.cache_key()}"' in text
    assert f'#define KQ_FRONTEND_CONFIG_KEY "{CONFIG.cache_key()}"' in frontend_config_header(info)
    from keras_quaternion.export import bundle

    generator = bundle._gen_config()
    monkeypatch.setattr(generator, "render_header", lambda c: '#define KQ_FRONTEND_CONFIG_KEY "0"')
    with pytest.raises(ValueError, match="feature key '0' but the model's is"):
        frontend_config_header(info)


def test_app_folder_must_be_new_empty_or_a_previous_app(tmp_path):
    assert check_app_dir(tmp_path / "new") is False
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not empty \\(notes.txt\\) and is not an app"):
        check_app_dir(tmp_path / "mine")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / APP_MARKER).write_text("{}")
    assert check_app_dir(tmp_path / "old") is True


def test_kq_export_refuses_app_folders_before_any_work(trained, tmp_path):
    from click.testing import CliRunner

    from keras_quaternion.cli.export import export_command

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    base = [str(trained), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(export_command, [*base, "--app", str(tmp_path / "mine")])
    assert result.exit_code == 2 and "is not an app kq-export wrote" in result.output
    result = CliRunner().invoke(export_command, [*base, "--app", str(tmp_path / "a"), "--float"])
    assert result.exit_code == 2 and "int8 models only" in result.output
    assert not (tmp_path / "out").exists() and (tmp_path / "mine" / "notes.txt").is_file()


def test_tflm_library_is_the_host_build(tmp_path):
    import platform

    host = f"{platform.system().lower()}_{platform.machine()}"
    for target in ("cortex_m_generic_cortex-m4_default_gcc", f"{host}_default_gcc"):
        lib = tmp_path / "gen" / target / "lib"
        lib.mkdir(parents=True)
        (lib / "libtensorflow-microlite.a").write_bytes(b"")
    assert tflm_library(tmp_path).parts[-3] == f"{host}_default_gcc"
    shutil.rmtree(tmp_path / "gen" / f"{host}_default_gcc")
    with pytest.raises(FileNotFoundError, match="cortex_m_generic"):
        tflm_library(tmp_path)


def _make(app, *args, timeout=300):
    return subprocess.run(
        ["make", "-C", str(app), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module", params=["expanded", "compact", "fast"])
def app(request, trained, tones, tmp_path_factory):
    """An export of the trained model with ``--micro --app`` for each strategy."""
    from keras_quaternion.export import export_model

    folder = tmp_path_factory.mktemp(f"app_{request.param}")
    model, info = load_with_info(trained)
    report = export_model(
        model, folder / "export", prepared=tones, micro=True, quaternion=request.param,
        verify_samples=4, latency_runs=2, progress=False, info=info,
    )  # fmt: skip
    assert {"model_labels.h", "kq_frontend_config.h"} <= set(report["micro"]["files"])
    assert report["model_info"]["class_names"] == list(NAMES)
    assert describe_model(folder / "export" / "model_int8.tflite") == info  # kq-predict reads it
    write_app(folder / "app", folder / "export", report, info)
    return folder


@needs_make
def test_app_builds_on_the_host_for_every_strategy(app, wavs):
    folder = app / "app"
    assert (folder / APP_MARKER).is_file() and (folder / "model" / "kq_frontend_config.h").is_file()
    proc = _make(folder, "host")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wav = wavs[0][0]
    proc = _make(folder, "stub", f"WAV={wav}")  # the stand-in interpreter: it builds and runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = subprocess.run([str(folder / "build" / "kws_stub")], capture_output=True, text=True)
    assert "label: " in run.stdout + run.stderr, run.stdout + run.stderr


@needs_make
def test_app_refuses_a_front_end_for_other_features(app, wavs, tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(app / "app", folder)
    labels = folder / "model" / "model_labels.h"
    text = labels.read_text()
    labels.write_text(text.replace(CONFIG.cache_key(), "0123456789abcdef"))
    proc = _make(folder, "stub", f"WAV={wavs[0][0]}")
    assert proc.returncode != 0 and "generated for other features" in proc.stderr


@needs_make
def test_make_audio_names_a_python_without_numpy(app, wavs, tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(app / "app", folder)
    proc = _make(folder, "audio", f"WAV={wavs[0][0]}", "PYTHON=/bin/false")
    assert proc.returncode != 0 and "pass PYTHON=" in proc.stdout + proc.stderr


@needs_make
@pytest.mark.skipif(
    not TFLM_ROOT,
    reason="set KQ_TFLM_ROOT to a tflite-micro checkout with a built host microlite library "
    "(make -f tensorflow/lite/micro/tools/make/Makefile microlite) to run the app on TFLite Micro",
)
def test_make_run_on_tflm_prints_the_label_kq_predict_gives(app, wavs):
    folder = app / "app"
    # a compact model's custom operators run on TFLite Micro built from KQ_TFLM_ROOT
    predictor = Predictor.from_file(folder / "model" / "model_int8.tflite")
    for wav in wavs[0]:
        proc = _make(folder, "run", f"WAV={wav}", f"TFLM_ROOT={TFLM_ROOT}", timeout=600)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, text[-3000:]
        labels = [line.split("label: ", 1)[1] for line in text.splitlines() if "label: " in line]
        assert labels == [predictor.predict_file(wav).label], text[-2000:]
