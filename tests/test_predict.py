"""A model that knows its features and classes (``ModelInfo``), and ``kq-predict``."""

import json
import shutil
import zipfile

import keras
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from keras_quaternion.cli.evaluate import eval_command
from keras_quaternion.cli.predict import predict_command
from keras_quaternion.cli.prune import prune_command
from keras_quaternion.datasets.synthetic import SYNTHETIC_CLASSES, generate_clip
from keras_quaternion.files import atomic_save_model
from keras_quaternion.model_info import (
    INFO_MEMBER,
    ModelInfo,
    ModelInfoError,
    describe_model,
    load_with_info,
    read_info,
)
from keras_quaternion.predict import Predictor
from keras_quaternion.training import prepare, train

TINY = {"width": 0.0625, "batch_size": 8, "verbose": 0}
RATE = 16000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny qcnn6 trained on synthetic clips; its folder (model.keras + metrics.json)."""
    cache = tmp_path_factory.mktemp("cache")
    data = prepare("synthetic", clip_seconds=0.5, n_mels=32, cache_dir=cache,
                   dataset_options={"samples_per_class": 6}, progress=False)  # fmt: skip
    out = tmp_path_factory.mktemp("run") / "qcnn6"
    train("qcnn6", data, out_dir=out, epochs=2, seed=1, **TINY)
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Three synthetic recordings (classes 0, 3, 7) and one long one (2.2 s)."""
    folder = tmp_path_factory.mktemp("wavs")
    paths = []
    for cls in (0, 3, 7):
        path = folder / f"{SYNTHETIC_CLASSES[cls]}.wav"
        sf.write(path, generate_clip(cls, 0, sample_rate=RATE, clip_seconds=0.5, seed=5), RATE)
        paths.append(path)
    long = np.concatenate([generate_clip(c, 1, sample_rate=RATE, clip_seconds=0.55, seed=5)
                           for c in (1, 2, 1, 2)])  # fmt: skip
    sf.write(folder / "long.wav", long, RATE)
    return paths, folder / "long.wav"


def test_trained_model_carries_its_features_and_classes(run):
    info = read_info(run / "model.keras")
    metrics = json.loads((run / "metrics.json").read_text())
    assert info.class_names == tuple(metrics["class_names"]) == SYNTHETIC_CLASSES
    assert info.feature_config == metrics["feature_config"] and info.clip_seconds == 0.5
    assert info.dataset == "synthetic" and info.dataset_options == metrics["dataset_options"]
    keras.models.load_model(run / "model.keras", compile=False)  # Keras ignores the member
    model, loaded = load_with_info(run / "model.keras")
    assert loaded == info and model.output_shape == (None, 10)


def test_info_travels_with_the_file_and_old_models_use_metrics_json(run, tmp_path):
    alone = tmp_path / "alone" / "model.keras"
    alone.parent.mkdir()
    shutil.copy(run / "model.keras", alone)
    assert describe_model(alone) == read_info(run / "model.keras")
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("checkpoint", "tb"))
    _strip_info(old / "model.keras")
    assert read_info(old / "model.keras") is None
    assert describe_model(old / "model.keras") == read_info(run / "model.keras")
    (old / "metrics.json").unlink()
    assert describe_model(old / "model.keras") is None


def _strip_info(path):
    with zipfile.ZipFile(path) as archive:
        members = [(m, archive.read(m)) for m in archive.infolist() if m.filename != INFO_MEMBER]
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            archive.writestr(member, data)


def test_damaged_info_is_an_error_naming_the_file(tmp_path):
    x = keras.Input((3,))
    path = atomic_save_model(keras.Model(x, keras.layers.Dense(2)(x)), tmp_path / "m.keras")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(INFO_MEMBER, "{not json")
    with pytest.raises(ModelInfoError, match="m.keras.*not valid JSON"):
        read_info(path)
    with pytest.raises(ModelInfoError, match="lacks class_names"):
        ModelInfo.from_dict({"feature_config": {"sample_rate": 8000}, "clip_seconds": 1.0})


def test_kq_predict_prints_the_right_classes_and_json(run, wavs):
    paths, _ = wavs
    runner = CliRunner()
    result = runner.invoke(predict_command, [str(run / "model.keras"), *map(str, paths)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and all(str(p) in line for p, line in zip(paths, lines, strict=True))
    result = runner.invoke(predict_command, [str(run / "model.keras"), "--json", str(paths[0])])
    record = json.loads(result.output)
    assert record["file"] == str(paths[0]) and record["label"] in SYNTHETIC_CLASSES
    assert len(record["scores"]) == 3 and abs(sum(record["scores"].values())) <= 1.0 + 1e-6


def test_predictions_equal_the_models_output_on_training_features(run, wavs):
    from keras_quaternion.features import quaternion_features
    from keras_quaternion.training import load_model

    paths, _ = wavs
    predictor = Predictor.from_file(run / "model.keras", top_k=10)
    got = predictor.predict_file(paths[1])
    model = load_model(run / "model.keras")
    wave, _ = sf.read(paths[1], dtype="float32")
    feats = quaternion_features(wave[None, : int(0.5 * RATE)], predictor.info.features())
    expected = np.asarray(model(feats))[0]
    scores = dict(got.top)
    for i, name in enumerate(SYNTHETIC_CLASSES):
        assert scores[name] == pytest.approx(expected[i], abs=1e-5)


def test_long_recordings_are_scored_per_window(run, wavs):
    _, long = wavs
    result = Predictor.from_file(run / "model.keras").predict_file(long)
    # 2.2 s at 0.5 s windows: 4 whole windows and a 0.2 s tail (>= a quarter of a clip)
    assert [w["start"] for w in result.windows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert result.windows[-1]["end"] == pytest.approx(2.2)
    assert result.seconds == pytest.approx(2.2)
    out = CliRunner().invoke(predict_command, [str(run / "model.keras"), str(long), "--windows"])
    assert "5 windows" in out.output and out.output.count(" s: ") == 5, out.output


def test_undecodable_files_are_named_and_the_others_still_predicted(run, wavs, tmp_path):
    paths, _ = wavs
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    result = CliRunner().invoke(
        predict_command, [str(run / "model.keras"), "--json", str(bad), str(paths[0])]
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert records[0]["file"] == str(bad) and records[0]["label"] is None and records[0]["error"]
    assert records[1]["label"] in SYNTHETIC_CLASSES
    assert "1 of 2 files could not be decoded" in result.stderr


def test_a_model_without_information_asks_for_the_feature_options(run, wavs, tmp_path):
    paths, _ = wavs
    bare = tmp_path / "bare.keras"
    shutil.copy(run / "model.keras", bare)
    _strip_info(bare)
    result = CliRunner().invoke(predict_command, [str(bare), str(paths[0])])
    assert result.exit_code == 2 and "--dataset" in result.output, result.output
    args = ["--sample-rate", "16000", "--clip-seconds", "0.5", "--n-mels", "32",
            "--labels", ",".join(SYNTHETIC_CLASSES)]  # fmt: skip
    result = CliRunner().invoke(predict_command, [str(bare), *args, str(paths[0])])
    assert result.exit_code == 0, result.output
    wrong = ["--sample-rate", "16000", "--clip-seconds", "0.5", "--labels", "a,b"]
    result = CliRunner().invoke(predict_command, [str(bare), *wrong, str(paths[0])])
    assert result.exit_code == 2 and "2 names but" in result.output


def test_kq_eval_and_kq_prune_use_the_information_inside_the_model(run, tmp_path):
    alone = tmp_path / "alone" / "model.keras"
    alone.parent.mkdir()
    shutil.copy(run / "model.keras", alone)
    cache = ["--cache-dir", str(tmp_path / "cache"), "--option", "samples_per_class=6"]
    result = CliRunner().invoke(eval_command, [str(alone), *cache])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dataset"] == "synthetic"
    result = CliRunner().invoke(
        prune_command,
        [
            str(alone),
            "--ratio",
            "0.5",
            "--layers",
            "conv_block4_conv1",
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_info(tmp_path / "p" / "model.keras") == read_info(alone)


def test_a_tflite_export_finds_its_information_in_the_export_report(run, wavs, tmp_path):
    from keras_quaternion.export import to_tflite
    from keras_quaternion.training import load_model

    paths, _ = wavs
    info = read_info(run / "model.keras")
    model = load_model(run / "model.keras")
    calibration = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:]))
    (tmp_path / "model_int8.tflite").write_bytes(
        to_tflite(model, representative_data=calibration.astype("float32"))
    )
    report = {"flatbuffer_bytes": 1, **info.to_dict()}
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    assert describe_model(tmp_path / "model_int8.tflite") == info
    keras_top = Predictor.from_file(run / "model.keras").predict_file(paths[2])
    result = CliRunner().invoke(
        predict_command,
        [str(tmp_path / "model_int8.tflite"), "--json", "--top-k", "10", str(paths[2])],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["label"] in SYNTHETIC_CLASSES
    assert record["scores"][keras_top.label] == pytest.approx(keras_top.top[0][1], abs=0.1)


def test_a_tflite_model_ending_in_logits_still_gives_probabilities(run, wavs, tmp_path):
    from keras_quaternion.audio import load_audio
    from keras_quaternion.export import to_tflite
    from keras_quaternion.export.tflite import inspect_tflite
    from keras_quaternion.predict import ends_in_logits
    from keras_quaternion.training import load_model

    info = read_info(run / "model.keras")
    model = load_model(run / "model.keras")
    files = {"probs": to_tflite(model, int8=False)}
    model.layers[-1].activation = keras.activations.linear  # the same model, ending in logits
    files["logits"] = to_tflite(model, int8=False)
    scores = {}
    for name, flat in files.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.tflite").write_bytes(flat)
        (folder / "export_report.json").write_text(json.dumps(info.to_dict()))
        assert ends_in_logits(inspect_tflite(flat)) == (name == "logits")
        predictor = Predictor.from_file(folder / "model.tflite")
        scores[name], _ = predictor.scores(load_audio(wavs[0][2], sample_rate=RATE))
    np.testing.assert_allclose(scores["logits"].sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(scores["logits"], scores["probs"], atol=1e-5)
