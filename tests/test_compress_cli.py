"""kq-prune / kq-distill: files written, metrics.json schema, fine-tuning with KD, clear errors."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from keras_quaternion.cli.distill import distill_command
from keras_quaternion.cli.prune import prune_command
from keras_quaternion.training import load_model, prepare, train
from keras_quaternion.training.recipe import DEFAULT_GAIN_DB, DEFAULT_WEIGHT_DECAY

SCHEMA = {"dataset", "model", "params", "macs", "test", "epochs", "seconds"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny qcnn6 trained one epoch on a tiny synthetic set by the training loop (so a
    metrics.json recording the data settings sits next to model.keras)."""
    root = tmp_path_factory.mktemp("compress")
    cache = root / "cache"
    data = prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=16,
        cache_dir=cache,
        dataset_options={"samples_per_class": 4},
        progress=False,
    )
    train("qcnn6", data, out_dir=root / "base", epochs=1, width=0.125, batch_size=8, verbose=0)
    return {"root": root, "cache": cache, "model": root / "base" / "model.keras", "data": data}


def _invoke(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    return result


def test_prune_only_writes_model_and_report(base, tmp_path):
    out = tmp_path / "pruned"
    result = _invoke(prune_command, [base["model"], "--method", "l1", "--ratio", 0.5, "--out", out])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "model.keras",
        "pruning_report.json",
        "pruning_report.md",
    ]
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["method"] == "l1" and report["ratio"] == 0.5
    assert report["params_after"][0] < report["params_before"][0]
    original, pruned = load_model(base["model"]), load_model(out / "model.keras")
    for name in ("conv_block1_conv1", "conv_block2_conv1"):
        assert pruned.get_layer(name).filters == original.get_layer(name).filters // 2
    assert pruned.count_params() < original.count_params()
    assert "params" in result.output and "->" in result.output


def test_prune_finetune_kd_writes_metrics_and_resumes(base, tmp_path):
    out = tmp_path / "ft"
    args = [base["model"], "--method", "geometric-median", "--ratio", 0.5, "--out", out]
    args += ["--finetune-epochs", 1, "--kd", "--batch-size", 8, "--cache-dir", base["cache"], "-q"]
    args += ["--weight-decay", 0.05, "--gain-db", 6]
    result = _invoke(prune_command, args)  # the dataset comes from the metrics.json beside MODEL
    assert result.exit_code == 0, result.output
    for name in ("model.keras", "pruned.keras", "metrics.json", "pruning_report.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert SCHEMA <= set(metrics)
    assert metrics["dataset"] == "synthetic" and metrics["epochs"] == 1
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["pruning"]["kd"] is True and metrics["pruning"]["method"] == "geometric-median"
    assert metrics["teacher"] is not None and metrics["temperature"] == 2.0
    assert metrics["weight_decay"] == 0.05  # passed through to the fine-tuning
    assert metrics["gain_db"] == 6.0
    final = load_model(out / "model.keras")
    assert metrics["params"] == sum(int(np.prod(w.shape)) for w in final.trainable_weights)
    assert metrics["params"] == metrics["pruning"]["params_after"]
    assert "fine-tuned" in result.output
    # the same command again: the finished run is kept, not pruned over
    before = [w.copy() for w in final.get_weights()]
    again = _invoke(prune_command, args)
    assert again.exit_code == 0, again.output
    for a, b in zip(before, load_model(out / "model.keras").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_distill_trains_a_student_from_scratch(base, tmp_path):
    out = tmp_path / "student"
    args = ["--teacher", base["model"], "--student", "qcnn6", "--width", 0.125, "--out", out]
    args += ["--epochs", 1, "--batch-size", 8, "--cache-dir", base["cache"], "-q"]
    result = _invoke(distill_command, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert SCHEMA <= set(metrics)
    assert metrics["teacher"] == str(base["model"])
    assert metrics["alpha"] == 0.5 and metrics["distillation"]["student"] == "qcnn6"
    assert metrics["weight_decay"] == DEFAULT_WEIGHT_DECAY  # kq-train's default recipe
    assert metrics["gain_db"] == DEFAULT_GAIN_DB
    assert load_model(out / "model.keras").output_shape == (None, 10)


def _strip_model_info(path):
    import zipfile

    from keras_quaternion.model_info import INFO_MEMBER

    with zipfile.ZipFile(path) as archive:
        members = [(m, archive.read(m)) for m in archive.infolist() if m.filename != INFO_MEMBER]
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            archive.writestr(member, data)


@pytest.mark.parametrize(
    "args,message",
    [
        (["{missing}", "--out", "o"], "does not exist"),
        (["{notkeras}", "--out", "o"], "is not a .keras model file"),
        (["{model}", "--ratio", "1.0", "--out", "o"], "outside [0, 1)"),
        (["{model}", "--ratio", "-0.1", "--out", "o"], "outside [0, 1)"),
        (["{model}", "--method", "magnitude", "--out", "o"], "'magnitude' is not one of"),
        (["{model}", "--skip", "no_such_layer", "--out", "o"], "no_such_layer"),
        (["{model}", "--layers", "conv9", "--out", "o"], "conv9"),
        (["{model}", "--ratio", "0.9", "--out", "o"], "zero"),
        (["{model}", "--kd", "--out", "o"], "--finetune-epochs"),
        (["{lonely}", "--finetune-epochs", "1", "--out", "o"], "--dataset"),
        (["{model}", "--out", "{modeldir}"], "overwrite the input model"),
        (["{model}", "--weight-decay", "-1", "--out", "o"], "Invalid value for '--weight-decay'"),
    ],
)
def test_prune_errors_are_clear(base, tmp_path, args, message):
    lonely = tmp_path / "lonely" / "model.keras"  # no metrics.json beside it, and (as models
    lonely.parent.mkdir()  # saved before ModelInfo) no training data recorded inside
    shutil.copy(base["model"], lonely)
    _strip_model_info(lonely)
    notkeras = tmp_path / "model.h5"
    notkeras.write_bytes(b"x")
    fill = {
        "{missing}": tmp_path / "nope.keras",
        "{notkeras}": notkeras,
        "{model}": base["model"],
        "{lonely}": lonely,
        "{modeldir}": base["model"].parent,
    }
    args = [str(fill.get(a, a)) for a in args]
    if "o" in args:
        args[args.index("o")] = str(tmp_path / "out")
    result = CliRunner().invoke(prune_command, args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--student", "qcnn99"], "unknown model 'qcnn99'"),
        (["--student", "cnn6"], "4-channel"),  # real CNN student, quaternion teacher
        (["--weight-decay", "-0.1"], "Invalid value for '--weight-decay'"),
    ],
)
def test_distill_errors_are_clear(base, tmp_path, args, message):
    result = CliRunner().invoke(
        distill_command, ["--teacher", str(base["model"]), "--out", str(tmp_path), *args]
    )
    assert result.exit_code != 0 and message in result.output, result.output


def test_the_command_offers_the_library_methods():
    """kq-prune spells its --method choices and output name out (its --help imports no
    TensorFlow); they are the library's."""
    from keras_quaternion import pruning
    from keras_quaternion.cli import prune as prune_cli
    from keras_quaternion.pruning import finetune

    assert prune_cli.METHODS == pruning.METHODS
    assert prune_cli.MODEL_FILE == finetune.MODEL_FILE


def test_prune_and_finetune_passes_train_options_and_refuses_others(base, tmp_path):
    """Fine-tuning settings go to train() as they are (its own defaults otherwise); a key it
    does not take, or one prune_and_finetune sets itself, is refused before any pruning."""
    from keras_quaternion.pruning import prune_and_finetune

    with pytest.raises(TypeError, match=r"unknown fine-tuning options \['epochs', 'lrate'\]"):
        prune_and_finetune(base["model"], "l1", 0.5, out_dir=tmp_path / "x", lrate=1, epochs=2)
    assert not (tmp_path / "x").exists()
    out = tmp_path / "ft"
    prune_and_finetune(
        base["model"], "l1", 0.5, out_dir=out, prepared=base["data"], finetune_epochs=1,
        batch_size=8, schedule="constant", warmup_epochs=0, weight_decay=0.0, verbose=0,
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["schedule"], metrics["weight_decay"], metrics["batch_size"]) == (
        "constant", 0.0, 8,
    )  # fmt: skip
