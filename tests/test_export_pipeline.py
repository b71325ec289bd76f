"""export_model / kq-export end to end, evaluate_tflite, and every registry family at tiny width."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_quaternion import models  # noqa: E402
from keras_quaternion.cli.export import export_command  # noqa: E402
from keras_quaternion.export import (  # noqa: E402
    ExportError,
    evaluate_tflite,
    export_model,
    inspect_tflite,
    to_tflite,
    verify_tflite,
)
from keras_quaternion.training import PreparedData  # noqa: E402

FRAMES, MELS, CLASSES = 16, 16, 3


def _separable(n, seed):
    """Class c lights up mel bands 5c..5c+4 (in all four components): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.normal(0.0, 1.0, size=(n, FRAMES, MELS, 4)).astype("float32")
    for c in range(CLASSES):
        x[y == c, :, 5 * c : 5 * c + 4, :] += 2.5
    return x, y


@pytest.fixture(scope="module")
def prepared():
    return PreparedData.from_arrays(
        {"train": _separable(96, 0), "validation": _separable(12, 1), "test": _separable(60, 2)},
        class_names=["a", "b", "c"],
        dataset="separable",
    )


@pytest.fixture(scope="module")
def trained(prepared):
    keras.utils.set_random_seed(0)
    model = models.build("qcnn6", classes=CLASSES, n_mels=MELS, width=0.0625, dropout=0.0)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x, y = prepared.arrays("train")
    model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    return model


def test_export_model_writes_verified_files_and_report(trained, prepared, tmp_path):
    out = tmp_path / "export"
    report = export_model(
        trained, out, prepared=prepared, micro=True, latency_runs=20, progress=False
    )
    names = sorted(os.listdir(out))
    assert names == [
        "export_report.json",
        "kq_frontend_config.h",  # the C front end for the data's features (issue 13)
        "model_data.cc",
        "model_data.h",
        "model_int8.tflite",
        "model_labels.h",  # the class names
        "model_ops.h",
    ]
    key = prepared.feature_config.cache_key()
    assert f'KQ_FRONTEND_CONFIG_KEY "{key}"' in (out / "kq_frontend_config.h").read_text()
    assert report["model_info"]["class_names"] == list(prepared.class_names)
    flatbuffer = (out / "model_int8.tflite").read_bytes()
    on_disk = json.loads((out / "export_report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    exp = report["export"]
    assert exp["flatbuffer_bytes"] == len(flatbuffer)
    assert exp["operators"] == inspect_tflite(flatbuffer).op_kinds
    assert exp["float_flatbuffer_bytes"] > 2 * exp["flatbuffer_bytes"]
    assert report["model"]["parameters"] == trained.count_params()
    assert report["model"]["macs"] > 0
    assert report["arena"]["recommended"] >= report["arena"]["minimal"] > 0
    assert (
        f"kTensorArenaSize = {report['arena']['recommended']} "
        in (out / "model_data.h").read_text()
    )
    ver = report["verification"]
    assert ver["samples"] == 60 and ver["top1_agreement"] >= 0.95
    acc = report["accuracy"]
    assert acc["metric"] == "accuracy" and acc["examples"] == 60
    assert acc["keras_float"] >= 0.9  # the model learned the task
    assert acc["tflite_float"] == pytest.approx(acc["keras_float"], abs=1 / 60)
    assert abs(acc["tflite_int8"] - acc["keras_float"]) <= 3 / 60
    lat = report["latency"]
    assert lat["int8_ms"] > 0 and lat["float_ms"] > 0
    assert lat["int8_ms_no_xnnpack"] > 0 and lat["float_ms_no_xnnpack"] > 0
    assert lat["float_over_int8_no_xnnpack"] == pytest.approx(
        lat["float_ms_no_xnnpack"] / lat["int8_ms_no_xnnpack"]
    )
    assert report["environment"]["tensorflow"]


def test_evaluate_tflite_matches_keras_scoring(trained, prepared, tmp_path):
    from keras_quaternion.training.loop import evaluate

    fb = to_tflite(trained, int8=False, input_shape=(FRAMES, MELS, 4))
    path = tmp_path / "m.tflite"
    path.write_bytes(fb)
    got = evaluate_tflite(path, prepared, "test")
    ref = evaluate(trained, prepared, "test")
    assert set(ref) - {"dataset"} <= set(got)
    assert got["accuracy"] == pytest.approx(ref["accuracy"], abs=1 / 60)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-3, abs=1e-4)
    assert got["dtype"] == "float32" and got["examples"] == 60
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_tflite(tmp_path / "missing.tflite", prepared)
    other = models.build("qcnn6", classes=CLASSES, n_mels=32, width=0.0625)
    with pytest.raises(ValueError, match="takes inputs"):
        evaluate_tflite(to_tflite(other, int8=False, input_shape=(16, 32, 4)), prepared)


def test_export_model_float_and_argument_errors(trained, prepared, tmp_path):
    report = export_model(
        trained, tmp_path, prepared=prepared, int8=False, latency_runs=5, progress=False
    )
    assert report["export"]["format"] == "float32" and "tflite_int8" not in report["accuracy"]
    assert (tmp_path / "model_float.tflite").exists()
    assert report["verification"]["max_abs_diff"] < 1e-4
    with pytest.raises(ValueError, match="needs calibration data"):
        export_model(trained, tmp_path / "x")
    with pytest.raises(ValueError, match="features are"):
        bigger = models.build("qcnn6", classes=CLASSES, n_mels=32, width=0.0625)
        export_model(bigger, tmp_path / "y", prepared=prepared)


def test_kq_export_cli(tmp_path):
    keras.utils.set_random_seed(1)
    model = models.build("qcnn6", classes=10, n_mels=16, width=0.0625)
    path = tmp_path / "model.keras"
    model.save(path)
    runner = CliRunner()
    args = [
        str(path),
        "--dataset",
        "synthetic",
        "--option",
        "samples_per_class=3",
        "--clip-seconds",
        "0.5",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        "--micro",
        "--calibration-samples",
        "8",
        "--verify-samples",
        "4",
    ]
    result = runner.invoke(export_command, args)
    assert result.exit_code == 0, result.output
    assert "tensor arena:" in result.output and "accuracy on test" in result.output
    report = json.loads((tmp_path / "out" / "export_report.json").read_text())
    assert report["export"]["calibration_samples"] == 8
    assert report["verification"]["samples"] == 4
    assert report["model"]["input_shape"] == [None, 16, 4]
    assert (tmp_path / "out" / "model_ops.h").exists()

    missing = runner.invoke(export_command, [str(tmp_path / "nope.keras"), "--out", "o"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_data = runner.invoke(export_command, [str(path), "--out", str(tmp_path / "o")])
    assert no_data.exit_code == 2 and "--dataset is required" in no_data.output
    bad_name = runner.invoke(export_command, [*args, "--name", "9x"])
    assert bad_name.exit_code == 2 and "C identifier" in bad_name.output

    args[args.index("--out") + 1] = str(tmp_path / "compact")
    compact = runner.invoke(export_command, [*args, "--quaternion", "compact"])
    assert compact.exit_code == 0, compact.output
    assert "quaternion: compact" in compact.output and "checked bit for bit" in compact.output
    report = json.loads((tmp_path / "compact" / "export_report.json").read_text())
    assert report["export"]["quaternion"] == "compact"
    assert report["export"]["size_ratio_to_expanded"] < 0.6
    assert (tmp_path / "compact" / "kq_quaternion_tflm.cc").exists()


@pytest.mark.parametrize(
    "real,quat",
    [("cnn6", "qcnn6"), ("resnet22", "qresnet22")],
)
def test_registry_twins_export_to_the_same_graph(real, quat):
    """Real and quaternion twins at the same real widths give the same int8 graph and size."""
    rng = np.random.default_rng(0)
    built = {}
    for name, channels in ((real, 1), (quat, 4)):
        model = models.build(name, classes=4, n_mels=32, frames=32, width=0.0625)
        calib = rng.normal(size=(8, 32, 32, channels)).astype("float32")
        fb = to_tflite(model, representative_data=calib)
        verify_tflite(fb, calib[:4])
        built[name] = inspect_tflite(fb)
    a, b = built[real], built[quat]
    assert [op.name for op in a.operators] == [op.name for op in b.operators]
    assert "CONCATENATION" not in b.op_kinds and "NEG" not in b.op_kinds
    assert abs(a.size - b.size) / a.size < 0.02


def test_mccnn14_and_quaternion_batch_norms_export():
    """QBatchNormalization (plain or whitened) folds away: same graph as with real BN."""
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(8, 32, 32, 4)).astype("float32")
    sequences = {}
    for name, bn in (
        ("mccnn14", None),
        ("qcnn6", "real"),
        ("qcnn6", "quaternion"),
        ("qcnn6", "whiten"),
    ):
        model = models.build(name, classes=4, n_mels=32, frames=32, width=0.0625, bn=bn)
        fb = to_tflite(model, representative_data=calib)
        sequences[name, bn] = [op.name for op in inspect_tflite(fb).operators]
        verify_tflite(fb, calib[:4])
    real = sequences["qcnn6", "real"]
    assert sequences["qcnn6", "quaternion"] == real == sequences["qcnn6", "whiten"]
    assert real.count("CONV_2D") == 4 and real.count("MUL") == 1  # the MUL is bn0 (per mel bin)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_every_registry_model_exports_and_verifies(name):
    spec = models.describe(name)
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(8, 32, 32, spec.input_channels)).astype("float32")
    for bn in ("real", "quaternion", "whiten") if spec.quaternion else ("real",):
        model = models.build(name, classes=4, n_mels=32, width=0.0625, bn=bn)
        try:
            fb = to_tflite(model, representative_data=calib)
        except ExportError as err:  # pragma: no cover - the message is the diagnosis
            pytest.fail(f"{name} bn={bn}: {err}")
        verify_tflite(fb, calib)


def test_compact_export_of_a_trained_model(trained, prepared, tmp_path):
    """Every quaternion layer of a trained registry model becomes compact and is checked bit for
    bit against both runtimes; accuracy and MACs equal the expanded export's."""
    expanded = export_model(trained, tmp_path / "e", prepared=prepared, latency_runs=3,
                            progress=False)  # fmt: skip
    compact = export_model(trained, tmp_path / "c", prepared=prepared, latency_runs=3,
                           progress=False, quaternion="compact")  # fmt: skip
    layers = compact["export"]["quaternion_layers"]
    assert layers and all(x["compact"] for x in layers)
    assert len(compact["verification"]["quaternion_layers"]) == len(layers)
    assert all(c["samples"] == len(prepared.labels["test"]) for c in
               compact["verification"]["quaternion_layers"])  # fmt: skip
    assert compact["accuracy"]["tflite_int8"] == expanded["accuracy"]["tflite_int8"]
    assert compact["export"]["macs"] == expanded["export"]["macs"]
    assert compact["export"]["flatbuffer_bytes"] < expanded["export"]["flatbuffer_bytes"]
