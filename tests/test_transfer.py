"""Transfer from PANNs checkpoints: init with a new head, frozen body epochs (and resume across
the boundary), distillation from a PANNs teacher into a quaternion student with other inputs.

The checkpoint is the golden ``Cnn6_random.pth`` of ``../shared/data/panns`` (random weights:
nothing is learned, these tests check where weights come from and which ones move).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO_ROOT  # noqa: E402

from keras_quaternion.distill import Distiller, log_mel_channel  # noqa: E402
from keras_quaternion.features import FeatureConfig  # noqa: E402
from keras_quaternion.layers import QConv2D  # noqa: E402
from keras_quaternion.models import CheckpointError, from_panns  # noqa: E402
from keras_quaternion.training import prepare, train  # noqa: E402
from keras_quaternion.training.transfer import (  # noqa: E402
    PannsSource,
    check_panns_features,
    panns_architecture,
    pretrained_panns,
)

CNN6 = REPO_ROOT.parent / "shared" / "data" / "panns" / "Cnn6_random.pth"
RUN = {"batch_size": 5, "lr": 1e-3, "verbose": 0, "seed": 2}


@pytest.fixture(scope="module")
def cnn6_path():
    if not CNN6.is_file():
        pytest.skip(f"golden PANNs checkpoint not found at {CNN6} (see its folder's DATA.md)")
    return CNN6


@pytest.fixture(scope="module")
def converted(cnn6_path):
    return from_panns(cnn6_path, model="cnn6")


@pytest.fixture(scope="module")
def panns_data(tmp_path_factory):
    """10 classes, one clip per class and split, 0.5 s at 32 kHz on PANNs' features."""
    return prepare(
        "synthetic",
        clip_seconds=0.5,
        feature_config=FeatureConfig.panns(),
        cache_dir=tmp_path_factory.mktemp("cache"),
        dataset_options={"samples_per_class": 3},
        progress=False,
    )


def _values(model, skip=()):
    return {
        layer.name: [np.array(w) for w in layer.get_weights()]
        for layer in model.layers
        if layer.weights and layer.name not in skip
    }


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_init_replaces_the_head_and_keeps_the_body(cnn6_path, converted, panns_data):
    net = pretrained_panns(f"panns:{cnn6_path}", "cnn6", panns_data)
    head = net.get_layer("fc_audioset")
    assert net.output_shape == (None, 10) and head.activation.__name__ == "softmax"
    assert converted.output_shape == (None, 527)
    body, original = _values(net, skip={"fc_audioset"}), _values(converted)
    assert len(body) == len(original) - 1
    for name, values in body.items():  # bn0 and the batch-norm statistics included
        assert _same(values, original[name]), name
    assert body["bn0"][2].std() > 0  # non-trivial moving mean from the checkpoint


def test_the_architecture_is_told_from_the_checkpoint(cnn6_path):
    assert panns_architecture(PannsSource.parse(f"panns:{cnn6_path}").state_dict()) == "cnn6"
    with pytest.raises(CheckpointError, match="none of PANNs' Cnn6"):
        panns_architecture({"fc1.weight": np.zeros((2, 2))})


def test_init_errors(cnn6_path, panns_data, tmp_path):
    with pytest.raises(ValueError, match="model='qcnn6' is not one"):
        pretrained_panns(cnn6_path, "qcnn6", panns_data)
    with pytest.raises(CheckpointError, match=r"'conv_block1.conv1.weight' has shape \(5, 5, 1, "):
        pretrained_panns(cnn6_path, "cnn10", panns_data)  # a Cnn6 checkpoint is not a Cnn10
    with pytest.raises(FileNotFoundError, match="PANNs checkpoint '.*missing.pth' does not exist"):
        pretrained_panns("panns:missing.pth", "cnn6", panns_data)
    not_panns = tmp_path / "notes.pth"
    not_panns.write_text("hello")
    with pytest.raises(CheckpointError):
        pretrained_panns(not_panns, "cnn6", panns_data)
    with pytest.raises(ValueError, match="width=0.5 but the checkpoint"):
        pretrained_panns(cnn6_path, "cnn6", panns_data, width=0.5)
    with pytest.raises(ValueError, match="names no checkpoint"):
        PannsSource.parse("panns:")
    other = prepare(
        "synthetic",
        clip_seconds=0.5,
        sample_rate=32000,
        cache_dir=tmp_path / "c",
        dataset_options={"samples_per_class": 3},
        progress=False,
    )
    with pytest.raises(ValueError, match=r"mel_scale='htk' \(PANNs: 'slaney'\)"):
        check_panns_features(other, "init='panns:...'")
    with pytest.raises(ValueError, match="only PANNs checkpoints can start a model"):
        train("cnn6", panns_data, out_dir=tmp_path / "o", init=str(cnn6_path), **RUN)
    with pytest.raises(ValueError, match="freeze_epochs=3 must be in 0..epochs=2"):
        train("cnn6", panns_data, out_dir=tmp_path / "o", epochs=2, freeze_epochs=3, **RUN)


class _Snapshots(keras.callbacks.Callback):
    """The model's weights after every epoch; raises at the start of epoch ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.before, self.after, self.stop_at = None, [], stop_at

    def on_train_begin(self, logs=None):
        self.before = _values(getattr(self.model, "student", self.model))

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at:
            raise KeyboardInterrupt("killed")

    def on_epoch_end(self, epoch, logs=None):
        net = getattr(self.model, "student", self.model)
        self.after.append(_values(net))


def test_frozen_body_then_everything_and_resume_across_the_boundary(
    cnn6_path, converted, panns_data, tmp_path
):
    kw = dict(init=f"panns:{cnn6_path}", epochs=2, freeze_epochs=1, **RUN)
    snaps = _Snapshots()
    result = train("cnn6", panns_data, out_dir=tmp_path / "a", callbacks=[snaps], **kw)
    assert result["init"] == f"panns:{cnn6_path.resolve()}" and result["freeze_epochs"] == 1
    original = _values(converted)
    first, second = snaps.after
    for name, values in first.items():  # epoch 1: the body, batch-norm statistics included,
        if name != "fc_audioset":  # is the checkpoint's; the head moved
            assert _same(values, original[name]), name
    assert not _same(first["fc_audioset"], snaps.before["fc_audioset"])
    moved = [n for n in first if n != "fc_audioset" and not _same(second[n], first[n])]
    assert "conv_block1_conv1" in moved and "bn0" in moved  # epoch 2 trains everything
    saved = keras.models.load_model(tmp_path / "a" / "model.keras")
    assert all(layer.trainable for layer in saved.layers)  # not saved frozen

    # killed at the start of epoch 2, the same call resumes in the unfrozen phase
    with pytest.raises(KeyboardInterrupt):
        train("cnn6", panns_data, out_dir=tmp_path / "b", callbacks=[_Snapshots(1)], **kw)
    again = _Snapshots()
    resumed = train("cnn6", panns_data, out_dir=tmp_path / "b", callbacks=[again], **kw)
    assert resumed["resumed_from"] == 1
    for name, values in again.after[0].items():
        np.testing.assert_allclose(
            np.concatenate([v.ravel() for v in values]),
            np.concatenate([v.ravel() for v in second[name]]),
            rtol=1e-4,
            atol=1e-6,
            err_msg=name,
        )
    a = (tmp_path / "a" / "history.csv").read_text().splitlines()
    b = (tmp_path / "b" / "history.csv").read_text().splitlines()
    col = a[0].split(",").index("loss")
    assert [float(r.split(",")[col]) for r in b[1:]] == pytest.approx(
        [float(r.split(",")[col]) for r in a[1:]], rel=1e-4
    )
    with pytest.raises(ValueError, match="freeze_epochs: 1 -> 2"):
        train("cnn6", panns_data, out_dir=tmp_path / "b", **{**kw, "freeze_epochs": 2})


def _quaternion_student(data, classes=10, activation="softmax"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.input_shape(4))
    h = QConv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=activation)(h), name="qs")


def test_distiller_feeds_a_log_mel_teacher_from_quaternion_features(converted, panns_data):
    student = _quaternion_student(panns_data, classes=527, activation=None)
    teacher = converted  # real: (frames, 64, 1), sigmoid over 527 classes
    distiller = Distiller(student, teacher, multi_label=False, outputs="logits", alpha=0.0)
    assert distiller.teacher_input is log_mel_channel
    distiller.compile(optimizer="adam")
    x, _ = panns_data.arrays("train")
    y = np.zeros((len(x), 527), "float32")
    terms = distiller.loss_terms(x, y)
    from keras_quaternion.distill import distillation_loss

    expected = distillation_loss(teacher(x[..., :1]), student(x), temperature=2.0)
    assert float(terms["distillation_loss"]) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="teacher_input maps the student's input"):
        Distiller(converted, student, outputs="logits")  # a quaternion teacher, a real student
    with pytest.raises(ValueError, match="teacher_input='channel0'"):
        Distiller(student, teacher, teacher_input="channel0", outputs="logits")


def test_panns_teacher_is_fine_tuned_then_distilled_into_a_quaternion_student(
    cnn6_path, panns_data, tmp_path
):
    kw = dict(epochs=1, teacher=f"panns:{cnn6_path}", teacher_epochs=1, **RUN)
    with pytest.raises(ValueError, match="pass teacher_epochs >= 1"):
        train(_quaternion_student(panns_data), panns_data, out_dir=tmp_path / "x",
              **{**kw, "teacher_epochs": None})  # fmt: skip
    result = train(_quaternion_student(panns_data), panns_data, out_dir=tmp_path / "kd", **kw)
    teacher_run = json.loads((tmp_path / "kd" / "teacher" / "metrics.json").read_text())
    assert teacher_run["model"] == "cnn6 (PANNs teacher)" and teacher_run["lr"] == 1e-4
    assert teacher_run["init"] == f"panns:{cnn6_path.resolve()}"
    assert result["teacher"] == f"panns:{cnn6_path.resolve()}"
    assert result["teacher_model"] == "cnn6" and result["teacher_epochs"] == 1
    assert result["feature_config"] == FeatureConfig.panns().to_dict()
    header = (tmp_path / "kd" / "history.csv").read_text().splitlines()[0]
    assert "distillation_loss" in header
    student = keras.models.load_model(tmp_path / "kd" / "model.keras")
    assert student.input_shape == (None, 51, 64, 4) and student.output_shape == (None, 10)


def test_the_training_pipeline_feeds_the_converted_model_panns_input(converted, tmp_path):
    """The golden waveform as a file of a dataset, through prepare() on PANNs' features: the
    log-mel channel a run gives the converted model reproduces PANNs' own outputs."""
    import soundfile as sf

    golden = CNN6.parent
    wave = np.load(golden / "waveform_32k.npy")
    noise = np.random.default_rng(0).normal(0, 0.1, wave.shape).astype("float32")
    for split in ("train", "validation", "test"):
        for label, audio in (("golden", wave), ("noise", noise)):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            sf.write(tmp_path / "data" / split / label / "clip.wav", audio, 32000, "FLOAT")
    data = prepare(
        "folder",
        tmp_path / "data",
        clip_seconds=3.0,
        feature_config=FeatureConfig.panns(),
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    x, y = data.arrays("test", channels=1)
    index = int(np.flatnonzero(y == data.class_names.index("golden"))[0])
    clipwise = np.asarray(converted(x[index : index + 1]))[0]
    np.testing.assert_allclose(clipwise, np.load(golden / "Cnn6_clipwise.npy"), atol=1e-4)


# ------------------------------------------------------------------------------- kq-train


def _kq_train(args, tmp_path):
    from click.testing import CliRunner

    from keras_quaternion.cli.train import train_command

    args = [a.replace("CNN6", str(CNN6)).replace("TMP", str(tmp_path)) for a in args]
    return CliRunner().invoke(train_command, [*args, "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "panns:CNN6"], "no --model is not one of them"),
        (["--init", "panns:CNN6", "--model", "qcnn6"], "--model qcnn6 is not one of them"),
        (["--init", "panns:TMP/missing.pth", "--model", "cnn6"], "missing.pth' does not exist"),
        (["--init", "panns:", "--model", "cnn6"], "names no checkpoint"),
        (["--init", "TMP/model.keras", "--model", "cnn6"], "is not panns:PATH"),
        (["--init", "panns:TMP/notes.pth", "--model", "cnn6"], "is not a PyTorch zip checkpoint"),
        (["--init", "panns:TMP/other.pth", "--model", "cnn6"], "Not a PANNs checkpoint"),
        (["--teacher", "panns:TMP/other.pth"], "none of PANNs' Cnn6, Cnn10, Cnn14"),
        (
            ["--init", "panns:CNN6", "--model", "cnn10"],
            "'conv_block1.conv1.weight' has shape (5, 5, 1, 64) after transposing, but layer "
            "'conv_block1_conv1' expects (3, 3, 1, 64)",
        ),
        (
            ["--init", "panns:CNN6", "--model", "cnn6", "--sample-rate", "16000"],
            "--sample-rate 16000 conflicts with PANNs' 32000",
        ),
        (["--teacher", "panns:CNN6", "--n-mels", "32"], "--n-mels 32 conflicts with PANNs' 64"),
        (["--teacher", "panns:CNN6"], "add --teacher-epochs N"),
        (["--teacher", "panns:TMP/missing.pth"], "missing.pth' does not exist"),
        (["--freeze-epochs", "2"], "it needs --init panns:PATH or --teacher panns:PATH"),
        (["--teacher-epochs", "2"], "--teacher-epochs fine-tunes a --teacher panns:PATH"),
        (
            ["--init", "panns:CNN6", "--model", "cnn6", "--epochs", "2", "--freeze-epochs", "3"],
            "3 frozen epochs is more than --epochs 2",
        ),
        (
            ["--teacher", "panns:CNN6", "--teacher-epochs", "1", "--freeze-epochs", "2"],
            "2 frozen epochs is more than --teacher-epochs 1",
        ),
    ],
)
def test_kq_train_panns_usage_errors(args, message, cnn6_path, tmp_path, monkeypatch):
    from test_panns_weights import write_torch_checkpoint

    (tmp_path / "notes.pth").write_text("not a checkpoint")
    other = {"model": {"fc1.weight": np.zeros((3, 2), "float32")}}  # a state dict, not PANNs'
    write_torch_checkpoint(tmp_path / "other.pth", other, monkeypatch)
    result = _kq_train(args, tmp_path)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


TINY_CLI = ["--dataset", "synthetic", "--clip-seconds", "0.5", "--option", "samples_per_class=3"]
TINY_CLI += ["--batch-size", "5", "--cache-dir", "TMP/cache", "--quiet"]


def test_kq_train_init_fine_tunes_on_panns_features(cnn6_path, tmp_path):
    args = ["--init", "panns:CNN6", "--model", "cnn6", "--epochs", "2", "--freeze-epochs", "1"]
    result = _kq_train(args + TINY_CLI, tmp_path)
    assert result.exit_code == 0, result.output
    assert "Note: --init fine-tunes at --lr 0.0001" in result.output
    run = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert run["feature_config"] == FeatureConfig.panns().to_dict()
    assert run["sample_rate"] == 32000 and run["lr"] == 1e-4 and run["freeze_epochs"] == 1
    assert run["init"] == f"panns:{cnn6_path.resolve()}" and run["model"] == "cnn6"


def test_kq_train_distils_a_panns_teacher_into_a_quaternion_student(cnn6_path, tmp_path):
    args = ["--model", "qcnn6", "--width", "0.0625", "--epochs", "1", "--teacher", "panns:CNN6"]
    args += ["--teacher-epochs", "1", "--freeze-epochs", "1", "--teacher-lr", "0.001"]
    result = _kq_train(args + TINY_CLI, tmp_path)
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "out" / "metrics.json").read_text())
    teacher = json.loads((tmp_path / "out" / "teacher" / "metrics.json").read_text())
    assert run["teacher"] == f"panns:{cnn6_path.resolve()}" and run["teacher_freeze_epochs"] == 1
    assert teacher["freeze_epochs"] == 1 and teacher["lr"] == 0.001
    assert run["input_shape"] == [51, 64, 4] and teacher["input_shape"] == [51, 64, 1]


def test_killed_kq_train_resumes_in_the_right_freeze_phase(cnn6_path, tmp_path):
    """SIGKILL after the first epoch's checkpoint (of two frozen); the same command finishes like an
    uninterrupted run (history within 1e-4)."""
    import signal
    import subprocess
    import sys
    import time

    args = ["--init", f"panns:{cnn6_path}", "--model", "cnn6", "--epochs", "3"]
    args += ["--freeze-epochs", "2", "--seed", "4"]
    args += [a.replace("TMP", str(tmp_path)) for a in TINY_CLI if a != "--quiet"]
    straight = _kq_train([*args, "--quiet"], tmp_path / "straight")
    assert straight.exit_code == 0, straight.output
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", "from keras_quaternion.cli import train_main; train_main()"]

    def start():
        return subprocess.Popen([*command, *args, "--out", str(out)], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip

    proc, pointer, deadline = start(), out / "checkpoint" / "checkpoint.json", time.time() + 180
    while not pointer.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "no checkpoint after 180 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = json.loads(pointer.read_text())["epoch"]
    assert 1 <= done < 3
    again = start()
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and f"Resuming from epoch {done + 1}" in output, output
    a = (tmp_path / "straight" / "out" / "history.csv").read_text().splitlines()
    b = (out / "history.csv").read_text().splitlines()
    col = a[0].split(",").index("loss")
    assert [float(r.split(",")[col]) for r in b[1:]] == pytest.approx(
        [float(r.split(",")[col]) for r in a[1:]], rel=1e-4
    )
