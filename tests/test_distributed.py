"""Distribution strategies for real: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy as two local worker processes on 127.0.0.1."""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import pytest

from keras_quaternion.training import evaluate, is_chief, make_strategy, prepare

DATA_OPTS = {"samples_per_class": 6}
TRAIN_ARGS = [
    "--model",
    "qcnn6",
    "--width",
    "0.0625",
    "--batch-size",
    "8",
    "--clip-seconds",
    "0.5",
    "--n-mels",
    "32",
    "--option",
    "samples_per_class=6",
    "--quiet",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A feature cache filled once, so the worker processes only read it."""
    path = tmp_path_factory.mktemp("dist_cache")
    prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=32,
        cache_dir=path,
        dataset_options=DATA_OPTS,
        progress=False,
    )
    return path


def _env(repo_root, **extra):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def test_make_strategy_errors(monkeypatch):
    assert make_strategy("default").num_replicas_in_sync == 1
    assert is_chief(make_strategy("default"))
    with pytest.raises(ValueError, match="Unknown strategy 'ps'"):
        make_strategy("ps")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        make_strategy("multiworker")


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from keras_quaternion.training import make_strategy, prepare, train
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, strategy.extended.worker_devices
    data = prepare("synthetic", clip_seconds=0.5, n_mels=32, cache_dir=sys.argv[1],
                   dataset_options={"samples_per_class": 6}, progress=False)
    import keras

    class Epochs(keras.callbacks.Callback):
        seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append([epoch, logs["lr"]])

    result = train("qcnn6", data, width=0.0625, epochs=2, batch_size=8, strategy=strategy,
                   out_dir=sys.argv[2], verbose=0, schedule="plateau", warmup_epochs=0.5,
                   early_stopping=5, callbacks=[Epochs()], ema=0.9)
    keys = ("replicas", "strategy", "epochs", "test", "schedule", "ema")
    print("RESULT " + json.dumps({**{k: result[k] for k in keys}, "seen": Epochs.seen}))
    """
)


def test_mirrored_strategy_on_two_logical_cpus(repo_root, cache_dir, tmp_path):
    out = tmp_path / "mirrored"
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(cache_dir), str(out)],
        cwd=repo_root,
        env=_env(repo_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["replicas"] == 2 and result["strategy"] == "mirrored"
    assert result["epochs"] == 2 and result["schedule"] == "plateau" and result["ema"] == 0.9
    assert [epoch for epoch, _ in result["seen"]] == [0, 1]  # the Keras callback saw both
    assert result["seen"][0][1] == pytest.approx(5e-3)  # warmed up to the default peak rate
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2
    # the saved model loads in a plain (one-device) process and reproduces the test score
    data = prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=32,
        cache_dir=cache_dir,
        dataset_options=DATA_OPTS,
        progress=False,
    )
    model = keras.models.load_model(out / "model.keras")
    assert evaluate(model, data)["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


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


def test_multiworker_strategy_with_two_local_workers(repo_root, cache_dir, tmp_path):
    out = tmp_path / "multiworker"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    code = "from keras_quaternion.cli import train_main; train_main()"
    args = [
        *TRAIN_ARGS,
        "--epochs",
        "2",
        "--strategy",
        "multiworker",
        "--schedule",
        "cosine",
        "--warmup-epochs",
        "0.5",
        "--early-stopping",
        "3",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(out),
    ]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, *args],
                cwd=repo_root,
                env=_env(repo_root, TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
    chief_out, worker_out = outputs
    assert "Test accuracy" in chief_out and "non-chief" not in chief_out
    assert "non-chief worker" in worker_out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "multiworker"
    assert metrics["replicas"] == 2 and metrics["epochs"] == 2
    assert metrics["schedule"] == "cosine" and metrics["early_stopping"] == 3
    with open(out / "history.csv", newline="") as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates[1] < rates[0]  # the cosine decay ran in the multi-worker loop
    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, 10)
