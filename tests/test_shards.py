"""The sharded float16 log-mel cache: building (in ranges, with workers), reading, damaged shards
left by interrupted workers, a full disk, per-worker reading, and models with in-model deltas."""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_quaternion.training import pipeline, shards
from keras_quaternion.training.pipeline import PreparedData, build_cache, prepare
from keras_quaternion.training.shards import (
    CacheDiskFullError,
    ShardedArray,
    ShardError,
    load_sharded,
    parse_shard_range,
    plan_shards,
    shard_problems,
)

OPTS = {"samples_per_class": 4}  # 10 classes: train 20, validation 10, test 10
KW = dict(sample_rate=8000, clip_seconds=0.5, n_mels=32, dataset_options=OPTS, progress=False)


def _sharded(cache_dir, **extra):
    return prepare(
        "synthetic", cache_dir=cache_dir, cache_format="logmel16", shard_size=8, **KW, **extra
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A complete logmel16 cache (8 clips per shard) and the float32 cache of the same data."""
    root = tmp_path_factory.mktemp("shards")
    data = _sharded(root)
    return root, data, prepare("synthetic", cache_dir=root, **KW)


def test_plan_and_range_parsing():
    plan = plan_shards({"train": 20, "validation": 10, "test": 0}, 8)
    assert [(s.name, s.rows, s.number) for s in plan] == [
        ("train-00000", 8, 0),
        ("train-00001", 8, 1),
        ("train-00002", 4, 2),
        ("validation-00000", 8, 3),
        ("validation-00001", 2, 4),
    ]
    assert parse_shard_range("1:3", 5) == range(1, 3)
    assert parse_shard_range("3:", 5) == range(3, 5)
    with pytest.raises(ValueError, match=r"--shards 'x' is not a shard range"):
        parse_shard_range("x", 5)
    with pytest.raises(ValueError, match=r"outside the plan's 5 shards"):
        parse_shard_range("2:9", 5)
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        plan_shards({"train": 3}, 0)
    with pytest.raises(ValueError, match="cache_format must be one of"):
        prepare("synthetic", cache_format="float16", **KW)


def test_sharded_cache_equals_float32_log_mel(built):
    root, data, reference = built
    assert data.log_mel_only and data.stored_channels == 1
    assert data.info["cache_format"] == "logmel16"
    assert isinstance(data.features["train"], ShardedArray)
    assert [len(p) for p in data.features["train"].parts] == [8, 8, 4]
    assert data.sizes() == reference.sizes() and data.frames == reference.frames
    for split in ("train", "validation", "test"):
        x = np.asarray(data.features[split], np.float32)
        np.testing.assert_allclose(x, reference.features[split][..., :1], atol=0.07, rtol=1e-3)
        np.testing.assert_array_equal(data.labels[split], reference.labels[split])
    # float16 log-mel: 2 bytes per value, 8x smaller than the float32 quaternion features
    shard = data.cache_path / "train-00000.npy"
    per_clip = (shard.stat().st_size - 128) / 8
    assert per_clip == data.frames * data.n_mels * 2
    assert reference.features["train"][0].nbytes == 8 * per_clip
    # a second call reads the cache (no shard is rebuilt)
    mtime = shard.stat().st_mtime_ns
    again = _sharded(root)
    assert again.cache_path == data.cache_path and shard.stat().st_mtime_ns == mtime


def test_log_mel_only_data_refuses_four_channels(built):
    _, data, _ = built
    with pytest.raises(ValueError, match=r"holds log-mel only .* QuaternionDeltas"):
        data.arrays("test", channels=4)
    with pytest.raises(ValueError, match="holds log-mel only"):
        data.tf_dataset("train", 4, channels=4)
    x, y = data.arrays("test", channels=1)
    assert x.shape == (10, data.frames, 32, 1) and len(y) == 10


def test_build_in_ranges_then_with_two_workers(tmp_path):
    first = build_cache("synthetic", shards="0:2", shard_size=8, cache_dir=tmp_path, **KW)
    assert first["shards"] == 7 and first["built"] == ["train-00000", "train-00001"]
    assert not first["complete"] and not (first["folder"] / "manifest.json").exists()
    with pytest.raises(ShardError, match=r"5 missing of 7 shards"):
        load_sharded(first["folder"])
    rest = build_cache("synthetic", shards="2:", workers=2, shard_size=8, cache_dir=tmp_path, **KW)
    assert rest["folder"] == first["folder"] and rest["complete"]
    assert sorted(rest["built"]) == ["test-00000", "test-00001", "train-00002"] + [
        "validation-00000",
        "validation-00001",
    ]
    assert {r["shard"] for r in rest["results"]} == set(rest["built"])
    manifest = json.loads((rest["folder"] / "manifest.json").read_text())
    assert manifest["clips"] == 40 and manifest["shards"] == 7
    assert _sharded(tmp_path).sizes() == {"train": 20, "validation": 10, "test": 10}


def _copy_cache(built, tmp_path):
    import shutil

    root, data, _ = built
    folder = tmp_path / "copy"
    shutil.copytree(data.cache_path, folder)
    return folder


def test_shard_without_record_names_the_shard_and_the_command(built, tmp_path):
    folder = _copy_cache(built, tmp_path)
    (folder / "train-00001.json").unlink()  # the worker died between the rename and the record
    old = time.time() - 60
    os.utime(folder / "train-00001.npy", (old, old))
    with pytest.raises(ShardError) as info:
        load_sharded(folder)
    message = str(info.value)
    assert info.value.shard == "train-00001"
    assert "'train-00001.npy' has no record 'train-00001.json'" in message
    assert "worker that wrote it was interrupted" in message
    assert "kq-data prepare synthetic ... --shards 1:2" in message


def test_truncated_shard_is_detected(built, tmp_path):
    folder = _copy_cache(built, tmp_path)
    path = folder / "test-00000.npy"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)
    _, _, broken = shard_problems(folder)
    assert "truncated or replaced" in broken["test-00000"]


def test_interrupted_worker_is_rebuilt_by_prepare(built, tmp_path):
    root, data, _ = built
    # a killed worker's temporary file (its lock died with it) and a shard without a record
    code = "open(r'{}', 'wb').write(b'half a shard')".format(
        data.cache_path / ".train-00002.abcdefgh.tmp.npy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    (data.cache_path / "train-00002.json").unlink()
    (data.cache_path / "train-00002.npy").unlink()
    (data.cache_path / "validation-00000.json").unlink()
    old = time.time() - 600
    os.utime(data.cache_path / "validation-00000.npy", (old, old))
    os.utime(data.cache_path / ".train-00002.abcdefgh.tmp.npy", (old, old))
    with pytest.warns(UserWarning) as warned:
        again = _sharded(root)
    text = " ".join(str(w.message) for w in warned)
    assert "train-00002: a worker was interrupted while writing it" in text
    assert "validation-00000: 'validation-00000.npy' has no record" in text
    assert again.sizes() == data.sizes()
    assert not any(p.name.endswith(".tmp.npy") for p in data.cache_path.iterdir())
    np.testing.assert_array_equal(
        np.asarray(again.features["train"]), np.asarray(data.features["train"])
    )


def test_full_disk_leaves_no_shard_under_its_name(tmp_path, monkeypatch):
    def half_then_enospc(handle, array):
        handle.write(array.tobytes()[: array.nbytes // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shards, "_write_array", half_then_enospc)
    with pytest.raises(CacheDiskFullError) as info:
        build_cache("synthetic", shards="0", shard_size=8, cache_dir=tmp_path, **KW)
    message = str(info.value)
    assert "No space left on the device while writing shard train-00000" in message
    assert "nothing was left under the shard's name" in message
    assert "--cache-dir" in message
    folder = next((tmp_path / "features" / "synthetic").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json"]


def test_per_worker_reading_takes_whole_shards(built):
    _, data, _ = built
    x = data.features["train"]
    assert x.worker_rows(0, 2).tolist() == list(range(0, 8)) + list(range(16, 20))
    assert x.worker_rows(1, 2).tolist() == list(range(8, 16))
    with pytest.raises(ShardError, match="Worker 3 of 4 has no shard to read"):
        x.worker_rows(3, 4)
    labels = data.labels["train"]
    ds = data.tf_dataset("train", 4, channels=1, worker=(1, 2), shuffle=False)
    seen = [yb for _, (_, yb) in zip(range(4), ds.as_numpy_iterator())]
    # worker 1 reads shard 1 (rows 8..15) only, and repeats it
    assert np.concatenate(seen).tolist() == labels[8:16].tolist() * 2
    options = ds.options().experimental_distribute.auto_shard_policy
    import tensorflow as tf

    assert options == tf.data.experimental.AutoShardPolicy.OFF
    assert data.tf_dataset("train", 4, channels=1, worker=(0, 1)).cardinality() == 5
    with pytest.raises(ValueError, match="worker must be"):
        data.tf_dataset("train", 4, channels=1, worker=(2, 2))


def test_in_memory_arrays_shard_by_example():
    x = np.zeros((6, 12, 16, 1), "float32")
    data = PreparedData.from_arrays({"train": (x, np.arange(6) % 2)}, class_names=["a", "b"])
    ds = data.tf_dataset("train", 3, channels=1, worker=(1, 2), shuffle=False)
    assert next(ds.as_numpy_iterator())[1].tolist() == [1, 1, 1]  # rows 1, 3, 5


def test_quaternion_model_computes_deltas_and_exports_to_int8(built, tmp_path):
    from keras_quaternion.export.pipeline import export_model
    from keras_quaternion.layers.deltas import QuaternionDeltas
    from keras_quaternion.training import evaluate, train
    from keras_quaternion.training.model_io import build_by_name, load_model

    _, data, reference = built
    model = build_by_name("qcnn6", data, 0.0625)
    assert model.input_shape == (None, data.frames, 32, 1)
    assert isinstance(model.layers[1], QuaternionDeltas) and model.layers[1].width == 9
    # the in-model deltas see what the float32 cache stores
    quat = model.layers[1](np.asarray(data.features["test"], np.float32))
    np.testing.assert_allclose(quat, reference.features["test"], atol=0.1)
    assert build_by_name("cnn6", data, 0.0625).input_shape[-1] == 1  # real: log-mel as it is
    result = train("qcnn6", data, out_dir=tmp_path / "run", epochs=1, batch_size=8,
                   width=0.0625, verbose=0)  # fmt: skip
    assert result["input_shape"] == [data.frames, 32, 1]
    trained = load_model(tmp_path / "run" / "model.keras")
    assert evaluate(trained, data)["accuracy"] == pytest.approx(result["test"]["accuracy"])
    report = export_model(trained, tmp_path / "export", prepared=data, progress=False,
                          latency_runs=1, calibration_samples=16, verify_samples=8)  # fmt: skip
    ops = report["export"]["operators"]
    assert report["export"]["input"]["shape"] == [1, data.frames, 32, 1]
    assert report["export"]["input"]["dtype"] == "INT8"
    assert {"CONV_2D", "STRIDED_SLICE", "CONCATENATION"} <= set(ops)
    assert report["verification"]["top1_agreement"] >= 0.75


def test_models_with_in_model_deltas_prune_distil_and_predict(built, tmp_path):
    """kq-prune, distillation (quaternion and real teachers) and kq-predict on models that take
    log-mel and start with QuaternionDeltas."""
    import soundfile as sf

    from keras_quaternion.datasets.synthetic import generate_clip
    from keras_quaternion.layers.deltas import QuaternionDeltas
    from keras_quaternion.predict import Predictor
    from keras_quaternion.pruning import prune_and_finetune
    from keras_quaternion.training import train
    from keras_quaternion.training.model_io import load_model

    _, data, _ = built
    tiny = dict(epochs=1, batch_size=8, verbose=0)
    train("qcnn6", data, out_dir=tmp_path / "q", width=0.125, **tiny)
    model = load_model(tmp_path / "q" / "model.keras")
    pruned = prune_and_finetune(model, "operator-norm", 0.25, out_dir=tmp_path / "pruned",
                                prepared=data, finetune_epochs=1, kd=True, batch_size=8,
                                verbose=0)  # fmt: skip
    assert isinstance(pruned["model"].layers[1], QuaternionDeltas)
    assert pruned["metrics"]["params"] < model.count_params()
    assert pruned["model"].input_shape == model.input_shape == (None, data.frames, 32, 1)
    train("cnn6", data, out_dir=tmp_path / "real", width=0.0625, **tiny)
    for teacher in ("q", "real"):
        result = train("qcnn6", data, out_dir=tmp_path / f"student-{teacher}", width=0.0625,
                       teacher=tmp_path / teacher / "model.keras", **tiny)  # fmt: skip
        assert 0.0 <= result["test"]["accuracy"] <= 1.0
    wav = tmp_path / "clip.wav"
    sf.write(wav, generate_clip(3, 0, sample_rate=8000, clip_seconds=0.5, seed=5), 8000)
    for path in (tmp_path / "q" / "model.keras", tmp_path / "pruned" / "model.keras"):
        prediction = Predictor.from_file(path).predict_file(wav)
        assert prediction.error is None and prediction.label in data.class_names
        assert sum(score for _, score in prediction.top) <= 1.0 + 1e-6


MULTIWORKER = """
import json, sys
from keras_quaternion.training import make_strategy, prepare, train
strategy = make_strategy("multiworker")
data = prepare("synthetic", sample_rate=8000, clip_seconds=0.5, n_mels=32, cache_dir=sys.argv[1],
               dataset_options={"samples_per_class": 4}, progress=False,
               cache_format="logmel16", shard_size=8)
result = train("qcnn6", data, width=0.0625, epochs=1, batch_size=8, strategy=strategy,
               out_dir=sys.argv[2], verbose=0)
print("RESULT " + json.dumps({"replicas": result["replicas"], "shape": result["input_shape"]}))
"""


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(repo_root, **extra):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def test_multiworker_training_reads_the_sharded_cache(repo_root, built, tmp_path):
    root = built[0]
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", MULTIWORKER, str(root), str(tmp_path / "mw")],
                cwd=repo_root,
                env=_env(repo_root, TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
    line = next(ln for ln in outputs[0].splitlines() if ln.startswith("RESULT "))
    assert json.loads(line[7:]) == {"replicas": 2, "shape": [51, 32, 1]}


def test_worker_of_a_multiworker_cluster():
    from types import SimpleNamespace

    import tensorflow as tf

    from keras_quaternion.training.strategy import worker_of

    cluster = tf.train.ClusterSpec({"worker": ["a:1", "b:1", "c:1"]})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        cluster, task_type="worker", task_id=2
    )
    assert worker_of(SimpleNamespace(cluster_resolver=resolver)) == (2, 3)
    assert pipeline._worker_rows(np.zeros(7), 7, (2, 3)).tolist() == [2, 5]


def test_kq_data_prepare_builds_ranges_and_reports_interrupted_shards(tmp_path):
    from click.testing import CliRunner

    from keras_quaternion.cli.data import prepare_command

    base = ["synthetic", "--option", "samples_per_class=4", "--sample-rate", "8000",
            "--clip-seconds", "0.5", "--n-mels", "32", "--cache-format", "logmel16",
            "--shard-size", "8", "--cache-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(prepare_command, [*base, "--shards", "1:3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Shards 1:3 of 7 in ") and "built 2 (12 clips" in result.output
    assert "not complete yet" in result.output
    folder = next((tmp_path / "features" / "synthetic").iterdir())
    (folder / "train-00001.json").unlink()  # as if its worker died after the rename
    old = time.time() - 600
    os.utime(folder / "train-00001.npy", (old, old))
    with pytest.warns(UserWarning, match="train-00001: 'train-00001.npy' has no record"):
        result = CliRunner().invoke(prepare_command, base)
    assert result.exit_code == 0, result.output
    assert "Rebuilt after an interrupted worker: train-00001" in result.output
    assert "The cache is complete" in result.output
    # the cache kq-train reads with the same options
    assert _sharded(tmp_path).cache_path == folder
    bad = CliRunner().invoke(prepare_command, ["synthetic", "--shards", "0:1"])
    assert bad.exit_code == 2 and "add --cache-format logmel16" in bad.output
    bad = CliRunner().invoke(prepare_command, [*base, "--shards", "5:99"])
    assert bad.exit_code == 1 and "outside the plan's 7 shards" in bad.output
