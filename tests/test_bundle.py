"""Issue 13: a model that knows its features, kq-predict, and the deployment bundle.

* the :class:`~keras_quaternion.model_info.ModelInfo` inside ``.keras`` archives: written by
  training, pruning and ``atomic_save_model``, read back, Keras still loading the file, and the
  ``metrics.json`` fallback of older models;
* :mod:`keras_quaternion.predict` and ``kq-predict`` on tones a tiny trained model tells apart;
* ``kq-export --micro``'s ``model_labels.h`` and ``kq_frontend_config.h``, and the ``--app``
  folder for every export strategy: ``make host`` and the stand-in ``make stub`` build; with
  ``KQ_TFLM_ROOT``, ``make run`` on TFLite Micro prints the label kq-predict gives the
  ``.tflite``;
* the host TFLite Micro library is chosen over a cross-compiled one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_quaternion import QConv2D  # noqa: E402
from keras_quaternion.cli.predict import predict_command  # noqa: E402
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
from keras_quaternion.model_info import (  # noqa: E402
    INFO_MEMBER,
    ModelInfo,
    ModelInfoMissingError,
    load_model_with_info,
    model_info,
    read_model_info,
    store_model_info,
)
from keras_quaternion.predict import load_predictor, predict_file  # noqa: E402
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


# --- the model info ------------------------------------------------------------------------


def test_info_is_in_the_archive_and_keras_still_loads_it(trained):
    with zipfile.ZipFile(trained) as archive:
        assert INFO_MEMBER in archive.namelist()
        stored = json.loads(archive.read(INFO_MEMBER))
    assert stored["class_names"] == list(NAMES)
    assert stored["feature_key"] == CONFIG.cache_key() and stored["format_version"] == 1
    assert keras.models.load_model(trained, compile=False).output_shape == (None, 3)
    model, info = load_model_with_info(trained)
    assert info.feature_config == CONFIG and info.clip_seconds == CLIP
    assert info.class_names == NAMES and info.dataset == "tones" and model.output_shape[-1] == 3


def test_older_models_use_metrics_json_and_can_be_given_info(trained, tmp_path):
    plain = tmp_path / "run" / "model.keras"
    atomic_save_model(keras.models.load_model(trained, compile=False), plain)
    assert read_model_info(plain) is None and model_info(plain) is None
    with pytest.raises(ModelInfoMissingError, match="--dataset NAME"):
        model_info(plain, required=True)
    info = read_model_info(trained)
    metrics = {"feature_config": CONFIG.to_dict(), "clip_seconds": CLIP, "class_names": ["a"] * 3}
    (plain.parent / "metrics.json").write_text(json.dumps(metrics))
    assert model_info(plain).class_names == ("a", "a", "a")
    store_model_info(plain, info)
    store_model_info(plain, info)  # replaced, not added twice
    with zipfile.ZipFile(plain) as archive:
        assert archive.namelist().count(INFO_MEMBER) == 1
    assert model_info(plain) == info  # the archive wins over metrics.json


def test_info_errors_name_the_problem():
    good = ModelInfo(CONFIG, CLIP, NAMES).to_dict()
    with pytest.raises(ValueError, match="format version 99"):
        ModelInfo.from_dict({**good, "format_version": 99})
    with pytest.raises(ValueError, match="lacks class_names"):
        ModelInfo.from_dict({**good, "class_names": []})
    with pytest.raises(ValueError, match="clip_seconds must be a number > 0"):
        ModelInfo(CONFIG, 0, NAMES)


def test_training_and_pruning_store_the_info(tones, trained, tmp_path):
    from keras_quaternion.pruning import prune_and_finetune
    from keras_quaternion.training import train

    result = train("qcnn6", tones, width=0.0625, epochs=1, out_dir=tmp_path / "run", verbose=0)
    assert read_model_info(Path(result["out_dir"]) / "model.keras") == ModelInfo.from_prepared(
        tones
    )
    prune_and_finetune(trained, "l1", 0.5, out_dir=tmp_path / "p", verbose=0)
    assert read_model_info(tmp_path / "p" / "model.keras") == read_model_info(trained)


# --- predicting ----------------------------------------------------------------------------


def test_predict_tells_the_tones_apart_and_windows_long_recordings(trained, wavs):
    predictor = load_predictor(trained)
    paths, long = wavs
    assert [predict_file(predictor, p)["label"] for p in paths] == list(NAMES)
    result = predict_file(predictor, long, top_k=2, hop_seconds=0.55)
    assert [w["start"] for w in result["windows"]] == [0.0, 0.55, 1.1]
    assert result["windows"][0]["label"] == "low" and result["windows"][-1]["label"] == "high"
    assert len(result["top"]) == 2 and result["seconds"] == 1.6


def test_kq_predict_json_reports_bad_files_and_exits_1(trained, wavs, tmp_path):
    paths, _ = wavs
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    args = [str(trained), str(paths[0]), str(broken), str(paths[2]), "--json"]
    result = CliRunner().invoke(predict_command, args)
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["file"], x["label"]) for x in lines] == [
        (str(paths[0]), "low"),
        (str(broken), None),
        (str(paths[2]), "high"),
    ]
    assert "broken.wav" in lines[1]["error"] and "broken.wav" in result.stderr


def test_kq_predict_without_info_asks_for_features(trained, wavs, tmp_path):
    plain = tmp_path / "plain.keras"
    atomic_save_model(keras.models.load_model(trained, compile=False), plain)
    result = CliRunner().invoke(predict_command, [str(plain), str(wavs[0][1])])
    assert result.exit_code == 2 and "--dataset NAME" in result.output, result.output
    args = [str(plain), str(wavs[0][1]), "--sample-rate", "8000", "--clip-seconds", "0.5"]
    result = CliRunner().invoke(predict_command, [*args, "--n-mels", "16", "--labels", "a,b,c"])
    assert result.exit_code == 0 and result.output.startswith(f"{wavs[0][1]}: b ("), result.output


def test_logits_models_are_scored_as_probabilities(trained, wavs, tmp_path):
    model = keras.models.load_model(trained, compile=False)
    model.layers[-1].activation = keras.activations.linear
    logits = atomic_save_model(model, tmp_path / "logits.keras", info=read_model_info(trained))
    result = predict_file(load_predictor(logits), wavs[0][0], top_k=3)
    assert result["label"] == "low" and abs(sum(t["score"] for t in result["top"]) - 1) < 1e-5


# --- the bundle ----------------------------------------------------------------------------


def test_labels_and_frontend_headers_carry_the_models_key(monkeypatch):
    info = ModelInfo(CONFIG, CLIP, NAMES)
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
    model, info = load_model_with_info(trained)
    report = export_model(
        model, folder / "export", prepared=tones, micro=True, quaternion=request.param,
        verify_samples=4, latency_runs=2, progress=False, info=info,
    )  # fmt: skip
    assert {"model_labels.h", "kq_frontend_config.h"} <= set(report["micro"]["files"])
    assert report["model_info"]["class_names"] == list(NAMES)
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
    predictor = load_predictor(folder / "model" / "model_int8.tflite")
    for wav in wavs[0]:
        proc = _make(folder, "run", f"WAV={wav}", f"TFLM_ROOT={TFLM_ROOT}", timeout=600)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, text[-3000:]
        labels = [line.split("label: ", 1)[1] for line in text.splitlines() if "label: " in line]
        assert labels == [predict_file(predictor, wav)["label"]], text[-2000:]
