"""Metrics (sklearn as oracle), the resumable training loop, kq-train / kq-eval.

Includes the kill test: a real ``kq-train`` process is SIGKILLed after its first epoch checkpoint
and the same command, run again, resumes and finishes.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from keras_quaternion.cli.evaluate import eval_command
from keras_quaternion.cli.train import train_command
from keras_quaternion.layers import QConv2D
from keras_quaternion.training import (
    PreparedData,
    average_precision,
    confusion_matrix,
    cross_entropy,
    evaluate,
    mean_average_precision,
    prepare,
    score,
    train,
)
from keras_quaternion.training import accuracy as kq_accuracy
from keras_quaternion.training.dataset_options import parse_options
from keras_quaternion.training.recipe import DEFAULT_WEIGHT_DECAY
from keras_quaternion.training.records import settings_diff
from keras_quaternion.training.schedules import make_schedule, plateau_scale

TINY = {"width": 0.0625, "batch_size": 8, "verbose": 0}


# ------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
    y[rng.integers(n)] = 1
    scores = rng.random(n)
    if seed % 2:  # many ties
        scores = np.round(scores * 4) / 4
    assert average_precision(y, scores) == pytest.approx(skm.average_precision_score(y, scores))


def test_mean_average_precision_matches_sklearn_macro_over_classes_with_positives():
    rng = np.random.default_rng(3)
    y = (rng.random((40, 7)) < 0.25).astype(np.float32)
    y[:, 4] = 0  # a class without positives is left out of the mean
    scores = rng.random((40, 7)) + 0.5 * y
    value, per_class = mean_average_precision(y, scores)
    keep = y.sum(0) > 0
    expected = skm.average_precision_score(y[:, keep], scores[:, keep], average="macro")
    assert value == pytest.approx(expected)
    assert np.isnan(per_class[4]) and np.isfinite(per_class[keep]).all()
    assert score(y, scores, multi_label=True) == {"mAP": pytest.approx(expected)}
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_accuracy_confusion_matrix_and_cross_entropy_against_sklearn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=50)
    y = rng.integers(0, 5, 50)
    assert kq_accuracy(y, probs) == pytest.approx(skm.accuracy_score(y, probs.argmax(1)))
    np.testing.assert_array_equal(
        confusion_matrix(y, probs, 5), skm.confusion_matrix(y, probs.argmax(1), labels=range(5))
    )
    assert cross_entropy(y, probs) == pytest.approx(skm.log_loss(y, probs, labels=range(5)))
    multi = (rng.random((50, 5)) > 0.5).astype(float)
    expected = np.mean([skm.log_loss(multi[:, c], probs[:, c]) for c in range(5)])
    assert cross_entropy(multi, probs, multi_label=True) == pytest.approx(expected)
    assert score(y, probs, multi_label=False) == {"accuracy": kq_accuracy(y, probs)}


def test_metric_errors_name_the_problem():
    with pytest.raises(ValueError, match="1-D of equal length"):
        average_precision([1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        average_precision([1, 0], [np.nan, 0.1])
    with pytest.raises(ValueError, match="out of range for 2 classes"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match=r"\[examples, classes\]"):
        mean_average_precision(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="3 labels"):
        kq_accuracy([0, 1, 1], [[0.2, 0.8]])


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="module")
def small_data(cache_dir):
    return prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=32,
        cache_dir=cache_dir,
        dataset_options={"samples_per_class": 6},
        progress=False,
    )


@pytest.fixture(scope="module")
def finished_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "qcnn6"
    result = train("qcnn6", small_data, out_dir=out, epochs=2, seed=1, **TINY)
    return out, result


def _tiny_model(data, classes=10, activation="softmax", seed=0):
    """A small quaternion model (cheap to trace) with dropout, built from a fixed seed."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(data.input_shape(4))
    h = keras.layers.BatchNormalization()(inputs)
    h = QConv2D(4, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=activation)(h), name="toy")


def _history(out):
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- the loop


def test_train_writes_every_artefact(finished_run, small_data):
    out, result = finished_run
    for name in (
        "model.keras",
        "metrics.json",
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
        "checkpoint/checkpoint.json",
    ):
        assert (out / name).is_file(), name
    assert list((out / "tb" / "train").glob("events.out.tfevents.*"))
    assert list((out / "tb" / "validation").glob("events.out.tfevents.*"))
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("dataset", "model", "params", "macs", "test", "epochs", "seconds"):
        assert key in saved, key
    assert saved["dataset"] == "synthetic" and saved["model"] == "qcnn6"
    assert saved["epochs"] == 2 and saved["seconds"] > 0
    assert saved["params"] == sum(
        int(np.prod(w.shape))
        for w in keras.models.load_model(out / "model.keras").trainable_weights
    )
    assert saved["macs"] > 0
    assert set(saved["test"]) == {"accuracy", "loss"} and 0 <= saved["test"]["accuracy"] <= 1
    assert set(saved["train"]) == {"accuracy", "loss"}  # the kept model on the clean train split
    assert saved["schedule"] == "cosine" and saved["warmup_epochs"] == 1.0
    assert saved["early_stopping"] is None and saved["stopped_early"] is False
    assert saved["lr"] == 5e-3 and saved["gain_db"] == 18.0  # the default recipe
    assert saved["spec_augment"] is True and saved["max_epochs"] == 2
    assert saved["freq_warp"] == 0.0 and saved["time_shift"] == 0.0
    assert result["test"]["accuracy"] == saved["test"]["accuracy"]
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(rows[0])
    # model.keras is the best-on-validation model and reproduces the reported test score
    again = evaluate(out / "model.keras", small_data, "test")
    assert again["accuracy"] == pytest.approx(saved["test"]["accuracy"])
    assert again["loss"] == pytest.approx(saved["test"]["loss"], rel=1e-4)
    state = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert state["finished"] and state["epoch"] == 2
    assert len(list((out / "checkpoint").glob("ckpt-*.npz"))) == 1


def test_finished_run_is_a_no_op_and_settings_must_match(finished_run, small_data, capsys):
    out, result = finished_run
    before = (out / "metrics.json").stat().st_mtime_ns
    again = train("qcnn6", small_data, out_dir=out, epochs=2, seed=1, **{**TINY, "verbose": 2})
    assert again["already_finished"] and again["test"] == result["test"]
    assert "already finished" in capsys.readouterr().out
    assert (out / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=r"different settings \(lr: 0.005 -> 0.01\)"):
        train("qcnn6", small_data, out_dir=out, epochs=2, seed=1, lr=0.01, **TINY)
    with pytest.raises(ValueError, match=r"different settings \(freq_warp: 0.0 -> 0.1\)"):
        train("qcnn6", small_data, out_dir=out, epochs=2, seed=1, freq_warp=0.1, **TINY)


def test_a_checkpoint_from_before_freq_warp_and_time_shift_resumes_without_them():
    saved = {"lr": 0.005, "gain_db": 0.0}  # written before the settings existed
    now = {**saved, "freq_warp": 0.0, "time_shift": 0.0, "weight_decay": 0.0}
    assert settings_diff(saved, now) == []
    assert settings_diff(saved, {**now, "time_shift": 0.1}) == ["time_shift: 0.0 -> 0.1"]
    assert settings_diff(saved, {**now, "weight_decay": 0.1}) == ["weight_decay: 0.0 -> 0.1"]


def test_fine_tuning_a_loaded_model_twice_gives_the_same_run(small_data, tmp_path):
    """Keras draws dropout's generator states when a model is loaded, from whatever the process
    did before; train() reseeds them from its seed, so the pruned model's fine-tuning in
    benchmarks/bench_recipe.py repeats (it did not: 0.957 one run, 0.990 the next)."""
    keras.models.save_model(_tiny_model(small_data), tmp_path / "toy.keras")
    kw = {"epochs": 1, "batch_size": 8, "verbose": 0, "seed": 3, "spec_augment": False}
    weights = []
    for before in (1, 2):
        keras.utils.set_random_seed(before)  # a different process history
        net = keras.models.load_model(tmp_path / "toy.keras")
        train(net, small_data, out_dir=tmp_path / f"run{before}", **kw)
        weights.append(net.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weight_decay_shrinks_kernels_but_not_biases_or_batch_norm(small_data, tmp_path):
    """Decoupled decay so strong that the kernels end far smaller than without it; the
    batch-norm scales and biases, excluded from the decay, stay where the gradients put them."""

    def trained(folder, weight_decay):
        keras.utils.set_random_seed(0)
        net = _tiny_model(small_data)
        kw = {"batch_size": 8, "verbose": 0, "seed": 0, "spec_augment": False, "gain_db": 0}
        kw.update(schedule="constant", warmup_epochs=0)
        train(net, small_data, out_dir=tmp_path / folder, epochs=1, weight_decay=weight_decay, **kw)
        saved = json.loads((tmp_path / folder / "metrics.json").read_text())
        assert saved["weight_decay"] == weight_decay
        return [(v.name, np.linalg.norm(v.numpy())) for v in net.trainable_weights]

    plain, decayed = trained("plain", 0.0), trained("decayed", 50.0)
    assert [name for name, _ in plain] == [name for name, _ in decayed]
    for (name, norm), (_, shrunk) in zip(plain, decayed, strict=True):
        if name == "kernel":
            assert shrunk < 0.5 * norm, name
        else:  # gamma, beta, bias: moved by the gradients alone
            assert shrunk == pytest.approx(norm, rel=0.5), name


def test_resume_continues_exactly_like_an_uninterrupted_run(small_data, tmp_path, capsys):
    kw = {"batch_size": 8, "verbose": 0, "seed": 3}
    straight = train(_tiny_model(small_data), small_data, out_dir=tmp_path / "a", epochs=3, **kw)
    train(_tiny_model(small_data), small_data, out_dir=tmp_path / "b", epochs=1, **kw)
    resumed = train(
        _tiny_model(small_data),
        small_data,
        out_dir=tmp_path / "b",
        epochs=3,
        **{**kw, "verbose": 2},
    )
    assert "Resuming from epoch 2" in capsys.readouterr().out
    assert resumed["resumed_from"] == 1 and resumed["epochs"] == 3
    a, b = _history(tmp_path / "a"), _history(tmp_path / "b")
    assert [r["epoch"] for r in b] == ["1", "2", "3"]
    for key in ("loss", "val_loss"):  # same weights, optimizer state, data order, dropout RNG
        np.testing.assert_allclose(
            [float(r[key]) for r in b], [float(r[key]) for r in a], rtol=1e-4
        )
    assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], rel=1e-4)
    # resume=False starts over
    fresh = train(
        _tiny_model(small_data), small_data, out_dir=tmp_path / "b", epochs=1, resume=False, **kw
    )
    assert fresh["resumed_from"] == 0 and len(_history(tmp_path / "b")) == 1


def test_distillation_from_a_teacher_file(finished_run, small_data, tmp_path):
    out, _ = finished_run
    result = train(
        _tiny_model(small_data),
        small_data,
        out_dir=tmp_path / "kd",
        epochs=1,
        teacher=out / "model.keras",
        temperature=3.0,
        alpha=0.3,
        batch_size=8,
        verbose=0,
    )
    assert result["teacher"] == str(out / "model.keras") and result["alpha"] == 0.3
    row = _history(tmp_path / "kd")[0]
    assert {"distillation_loss", "task_loss"} <= set(row)
    student = keras.models.load_model(tmp_path / "kd" / "model.keras")
    assert student.name == "toy" and student.output_shape == (None, 10)


def test_multi_label_data_is_scored_by_map(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((48, 3)) < 0.4).astype(np.float32)
    x = rng.normal(size=(48, 20, 16, 4)).astype(np.float32) + 2 * y[:, None, None, :1]
    data = PreparedData.from_arrays(
        {"train": (x[:32], y[:32]), "validation": (x[32:40], y[32:40]), "test": (x[40:], y[40:])},
        class_names=["a", "b", "c"],
        multi_label=True,
        dataset="toy_tags",
    )
    result = train(
        _tiny_model(data, 3, "sigmoid"), data, out_dir=tmp_path, epochs=1, batch_size=8, verbose=0
    )
    assert set(result["test"]) == {"mAP", "loss"} and 0 <= result["test"]["mAP"] <= 1
    assert "val_mAP" in _history(tmp_path)[0]
    assert not (tmp_path / "confusion_matrix.png").exists()
    assert (tmp_path / "training_curves.png").is_file()


def test_logit_model_with_mixup_and_spec_augment(small_data, tmp_path):
    model = _tiny_model(small_data, 10, None)  # logits out: probabilities via softmax
    result = train(
        model,
        small_data,
        out_dir=tmp_path,
        epochs=1,
        batch_size=8,
        verbose=0,
        mixup=0.4,
        spec_augment=True,
        model_name="toy-logits",
    )
    assert result["model"] == "toy-logits" and result["mixup"] == 0.4
    probs_sum = evaluate(tmp_path / "model.keras", small_data)
    assert np.isfinite(probs_sum["loss"])


def test_train_argument_errors(small_data, tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'nope'.*qcnn6"):
        train("nope", small_data, out_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train("qcnn6", small_data, out_dir=tmp_path, epochs=0)
    with pytest.raises(ValueError, match="lr must be"):
        train("qcnn6", small_data, out_dir=tmp_path, lr=-1.0)
    with pytest.raises(ValueError, match="Unknown strategy"):
        train("qcnn6", small_data, out_dir=tmp_path, strategy="tpu")
    wrong = keras.Sequential(
        [
            keras.Input((51, 32, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match=r"expected \[batch, frames, mels, 1\]"):
        train(wrong, small_data, out_dir=tmp_path)
    with pytest.raises(TypeError, match="PreparedData"):
        train("qcnn6", {"train": 1}, out_dir=tmp_path)


# ------------------------------------------------------------- schedules and callbacks


def test_schedules_warm_up_then_decay_hold_or_plateau():
    cosine = make_schedule("cosine", 0.01, warmup_epochs=2, epochs=10, steps_per_epoch=5)
    rates = [float(cosine(step)) for step in range(50)]
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01)
    assert rates[:10] == sorted(rates[:10])  # linear warm-up
    assert rates[10:] == sorted(rates[10:], reverse=True)  # then cosine decay
    assert rates[-1] == pytest.approx(0.0001, rel=0.05)  # to 1 % of the peak
    assert float(cosine(500)) == pytest.approx(0.0001)  # and stays there
    constant = make_schedule("constant", 0.01, warmup_epochs=0, epochs=10, steps_per_epoch=5)
    assert {round(float(constant(step)), 6) for step in range(50)} == {0.01}
    assert plateau_scale([0.1, 0.2, 0.2, 0.2, 0.2]) == 0.5  # 3 epochs without a better score
    assert plateau_scale([0.1] * 40) == pytest.approx(0.01)  # floor: 1 % of the peak


class _Interrupt(keras.callbacks.Callback):
    """Raise during the end of epoch ``at`` (0-based), before its checkpoint is written."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated kill")


def _frozen_model(data):
    """A model whose predictions barely move at a tiny learning rate (no batch norm)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.input_shape(1))
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h), name="frozen")


@pytest.mark.parametrize(
    "schedule, model, lr, epochs, kill_at",
    [
        ("cosine", _tiny_model, 0.01, 4, 2),
        # a model that does not improve: the rate is halved after epoch 4 (3 epochs without a
        # better score); the kill during epoch 5 comes after that
        ("plateau", _frozen_model, 1e-9, 6, 4),
    ],
)
def test_schedule_resumes_where_it_stopped(
    small_data, tmp_path, schedule, model, lr, epochs, kill_at
):
    kw = {
        "batch_size": 8,
        "verbose": 0,
        "seed": 3,
        "epochs": epochs,
        "schedule": schedule,
        "lr": lr,
    }
    straight = train(model(small_data), small_data, out_dir=tmp_path / "a", **kw)
    with pytest.raises(KeyboardInterrupt):
        train(
            model(small_data),
            small_data,
            out_dir=tmp_path / "b",
            callbacks=[_Interrupt(at=kill_at)],
            **kw,
        )
    assert len(_history(tmp_path / "b")) == kill_at  # killed during epoch kill_at + 1
    resumed = train(model(small_data), small_data, out_dir=tmp_path / "b", **kw)
    assert resumed["resumed_from"] == kill_at
    a, b = _history(tmp_path / "a"), _history(tmp_path / "b")
    for key in ("lr", "loss", "val_loss"):
        np.testing.assert_allclose(
            [float(r[key]) for r in b], [float(r[key]) for r in a], rtol=1e-4, err_msg=key
        )
    rates = [float(r["lr"]) for r in a]
    assert rates[-1] < max(rates)  # the rate went down
    if schedule == "plateau":
        assert rates[-1] == pytest.approx(lr / 2)
    assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], rel=1e-4)


def test_early_stopping_stops_and_a_rerun_is_finished(small_data, tmp_path, capsys):
    kw = {"batch_size": 8, "verbose": 0, "lr": 1e-9, "early_stopping": 2, "epochs": 10}
    result = train(_frozen_model(small_data), small_data, out_dir=tmp_path, **kw)
    assert result["stopped_early"] and result["epochs"] == 3 and result["max_epochs"] == 10
    assert result["validation"]["best_epoch"] == 1 and result["early_stopping"] == 2
    state = json.loads((tmp_path / "checkpoint" / "checkpoint.json").read_text())
    assert state["finished"] and state["stopped_early"]
    again = train(_frozen_model(small_data), small_data, out_dir=tmp_path, **{**kw, "verbose": 2})
    assert again["already_finished"] and "stopped early" in capsys.readouterr().out


class _Recorder(keras.callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.calls, self.batches, self.stop_after = [], 0, stop_after

    def on_train_begin(self, logs=None):
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append((epoch, sorted(logs)))
        if epoch == self.stop_after:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_train_end(self, logs=None):
        self.calls.append("end")


def test_keras_callbacks_see_every_epoch_and_can_stop_the_run(small_data, tmp_path):
    recorder = _Recorder(stop_after=1)
    csv_log = keras.callbacks.CSVLogger(str(tmp_path / "keras_log.csv"))
    result = train(
        _tiny_model(small_data),
        small_data,
        out_dir=tmp_path / "run",
        epochs=4,
        batch_size=8,
        verbose=0,
        callbacks=[recorder, csv_log],
    )
    assert recorder.calls[0] == "begin" and recorder.calls[-1] == "end"
    epochs = [c for c in recorder.calls if isinstance(c, tuple)]
    assert [e for e, _ in epochs] == [0, 1]  # stopped by the callback after epoch 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(epochs[0][1])
    assert recorder.batches == 2 * (small_data.sizes()["train"] // 8)  # batch hooks relayed
    assert result["epochs"] == 2 and result["stopped_early"]
    assert len((tmp_path / "keras_log.csv").read_text().splitlines()) == 3  # header + 2 epochs


def test_schedule_and_callback_argument_errors(small_data, finished_run, tmp_path):
    with pytest.raises(ValueError, match="schedule='linear' is not a learning-rate schedule"):
        train("qcnn6", small_data, out_dir=tmp_path, schedule="linear")
    with pytest.raises(ValueError, match="warmup_epochs must be a number >= 0.*got -1"):
        train("qcnn6", small_data, out_dir=tmp_path, warmup_epochs=-1)
    with pytest.raises(ValueError, match="warmup_epochs=30 is longer than the run"):
        train("qcnn6", small_data, out_dir=tmp_path, warmup_epochs=30, epochs=20)
    with pytest.raises(ValueError, match="early_stopping must be a positive number.*got 0"):
        train("qcnn6", small_data, out_dir=tmp_path, early_stopping=0)
    with pytest.raises(ValueError, match=r"gain_db must be a number >= 0 \(dB, 0 = off\)"):
        train("qcnn6", small_data, out_dir=tmp_path, gain_db=-3)
    with pytest.raises(ValueError, match=r"freq_warp must be a number in \[0, 0.5\].*got 0.7"):
        train("qcnn6", small_data, out_dir=tmp_path, freq_warp=0.7)
    with pytest.raises(ValueError, match=r"time_shift must be a number in \[0, 0.5\].*got -1"):
        train("qcnn6", small_data, out_dir=tmp_path, time_shift=-1)
    with pytest.raises(ValueError, match=r"weight_decay must be a number >= 0 .*got -0.1"):
        train("qcnn6", small_data, out_dir=tmp_path, weight_decay=-0.1)
    with pytest.raises(TypeError, match=r"callbacks\[1\] is a str, not a keras.callbacks"):
        train("qcnn6", small_data, out_dir=tmp_path, callbacks=[keras.callbacks.History(), "x"])
    with pytest.raises(TypeError, match="callbacks must be a list"):
        train("qcnn6", small_data, out_dir=tmp_path, callbacks=keras.callbacks.History())
    no_validation = PreparedData.from_arrays(
        {
            s: small_data.arrays(s) if s != "validation" else (np.zeros((0, 51, 32, 4)), [])
            for s in ("train", "validation", "test")
        },
        class_names=small_data.class_names,
    )
    with pytest.raises(ValueError, match="early_stopping=3 watch the validation score"):
        train("qcnn6", no_validation, out_dir=tmp_path, early_stopping=3)
    out, _ = finished_run
    with pytest.raises(ValueError, match=r"different settings \(schedule: 'cosine' -> 'plateau'\)"):
        train("qcnn6", small_data, out_dir=out, epochs=2, seed=1, schedule="plateau", **TINY)


# --------------------------------------------------------------------------------- CLI


def test_parse_options():
    assert parse_options(["a=1", "b=x,y", "c=true", "d-e=theo"], fold=3, split="speaker") == {
        "a": 1,
        "b": ["x", "y"],
        "c": True,
        "d_e": "theo",
        "fold": 3,
        "split": "speaker",
    }
    with pytest.raises(Exception, match="not key=value"):
        parse_options(["novalue"])


def test_dataset_options_reach_the_commands_as_one_frozen_object(tmp_path, monkeypatch):
    """The eight dataset options plus --dataset arrive as one DatasetOptions (kq-train, kq-eval)."""
    import dataclasses

    import click

    from keras_quaternion.training.dataset_options import DatasetOptions

    seen = []

    def stop(self, *args, **kwargs):
        seen.append(self)
        raise click.ClickException("stopped before featurising")

    monkeypatch.setattr(DatasetOptions, "prepare", stop)
    monkeypatch.setattr(DatasetOptions, "prepare_for_saved_model", stop)
    data_args = ["--data-dir", str(tmp_path / "d"), "--sample-rate", "8000", "--clip-seconds",
                 "0.5", "--n-mels", "16", "--fold", "2", "--split", "speaker", "--option", "a=1",
                 "--option", "b=x,y", "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    expected = DatasetOptions(
        "synthetic", tmp_path / "d", 8000, 0.5, 16, 2, "speaker", ("a=1", "b=x,y"), tmp_path / "c"
    )
    result = CliRunner().invoke(train_command, ["--out", str(tmp_path / "run"), *data_args])
    assert result.exit_code == 1 and "stopped before featurising" in result.output, result.output
    model = tmp_path / "m.keras"
    model.write_bytes(b"")
    result = CliRunner().invoke(eval_command, [str(model), "--dataset", "synthetic", *data_args])
    assert result.exit_code == 1 and "stopped before featurising" in result.output, result.output
    assert seen == [expected, expected]
    assert seen[0].loader_options() == {"a": 1, "b": ["x", "y"], "fold": 2, "split": "speaker"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen[0].fold = 3


def test_kq_train_passes_the_augmentation_options_to_train(monkeypatch, tmp_path):
    import click

    from keras_quaternion.cli import train as train_cli
    from keras_quaternion.training.dataset_options import DatasetOptions

    seen = {}

    def stop(model, prepared, **settings):
        seen.update(settings)
        raise click.ClickException("stopped before training")

    monkeypatch.setattr(DatasetOptions, "prepare", lambda self, *a, **k: "prepared")
    monkeypatch.setattr(train_cli, "_train", stop)
    out = ["--out", str(tmp_path / "run")]
    options = ["--freq-warp", "0.1", "--time-shift", "0.05", "--weight-decay", "0.02"]
    result = CliRunner().invoke(train_command, [*out, *options])
    assert result.exit_code == 1 and "stopped before training" in result.output, result.output
    assert (seen["freq_warp"], seen["time_shift"], seen["gain_db"]) == (0.1, 0.05, 18.0)
    assert seen["weight_decay"] == 0.02
    CliRunner().invoke(train_command, [*out, "--gain-db", "0"])
    assert seen["gain_db"] == 0.0
    CliRunner().invoke(train_command, out)
    assert (seen["freq_warp"], seen["time_shift"]) == (0.0, 0.0)
    assert seen["spec_augment"] is True and seen["epochs"] == 40  # the default recipe
    assert seen["weight_decay"] == 0.3 == DEFAULT_WEIGHT_DECAY
    CliRunner().invoke(train_command, [*out, "--no-spec-augment"])
    assert seen["spec_augment"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nope"], "Unknown dataset 'nope'; known datasets: audioset"),
        (["--model", "resnet999"], "Unknown model 'resnet999'; known models: cnn6"),
        (["--dataset", "fsdd", "--data-dir", "/nonexistent/fsdd"], "recordings/"),
        (["--dataset", "fsdd"], "needs data_dir"),
        (["--epochs", "0"], "Invalid value for '--epochs'"),
        (["--width", "9"], "Invalid value for '--width'"),
        (["--strategy", "tpu"], "Invalid value for '--strategy'"),
        (["--schedule", "linear"], "Invalid value for '--schedule'"),
        (["--warmup-epochs", "-1"], "Invalid value for '--warmup-epochs'"),
        (["--early-stopping", "0"], "Invalid value for '--early-stopping'"),
        (["--gain-db", "-1"], "Invalid value for '--gain-db'"),
        (["--freq-warp", "0.6"], "Invalid value for '--freq-warp'"),
        (["--time-shift", "-0.1"], "Invalid value for '--time-shift'"),
        (["--weight-decay", "-1"], "Invalid value for '--weight-decay'"),
        (
            ["--warmup-epochs", "50"],
            "Invalid value for --warmup-epochs: 50 warm-up epochs is longer than the run",
        ),
        (["--teacher", "missing.keras"], "'missing.keras' does not exist"),
        (["--option", "bogus=1", "--cache-dir", "CACHE"], "unknown option(s) ['bogus']"),
        (["--option", "novalue"], "not key=value"),
        (["--fold", "2", "--cache-dir", "CACHE"], "unknown option(s) ['fold']"),
    ],
)
def test_kq_train_errors(args, message, tmp_path):
    args = [str(tmp_path / "c") if a == "CACHE" else a for a in args]
    result = CliRunner().invoke(train_command, args + ["--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert message in result.output, result.output


def test_kq_eval_scores_a_run_and_dispatches_tflite(finished_run, cache_dir, tmp_path, monkeypatch):
    out, result = finished_run
    run = CliRunner().invoke(
        eval_command, [str(out / "model.keras"), "--cache-dir", str(cache_dir)]
    )
    assert run.exit_code == 0, run.output
    scored = json.loads(run.output[run.output.index("{") :])
    assert scored["accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert scored["dataset"] == "synthetic" and scored["examples"] == 10

    import keras_quaternion.export as export

    seen = {}

    def fake_evaluate_tflite(path, prepared, split="test"):
        seen.update(path=path, frames=prepared.frames, split=split)
        return {"accuracy": 0.5}

    monkeypatch.setattr(export, "evaluate_tflite", fake_evaluate_tflite, raising=False)
    tfl = out / "model_int8.tflite"
    tfl.write_bytes(b"not used by the fake")
    run = CliRunner().invoke(
        eval_command, [str(tfl), "--subset", "validation", "--cache-dir", str(cache_dir)]
    )
    tfl.unlink()
    assert run.exit_code == 0, run.output
    assert seen == {"path": tfl, "frames": 51, "split": "validation"}
    assert json.loads(run.output[run.output.index("{") :])["accuracy"] == 0.5


def test_kq_eval_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(eval_command, [str(tmp_path / "none.keras")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
    (tmp_path / "m.h5").write_bytes(b"x")
    wrong = runner.invoke(eval_command, [str(tmp_path / "m.h5")])
    assert "neither a .keras nor a .tflite" in wrong.output
    (tmp_path / "m.keras").write_bytes(b"x")
    nodata = runner.invoke(eval_command, [str(tmp_path / "m.keras")])
    assert "--dataset is required" in nodata.output
    broken = runner.invoke(eval_command, [str(tmp_path / "m.keras"), "--dataset", "synthetic"])
    assert broken.exit_code != 0 and "is not a Keras model file" in broken.output


def test_load_model_says_a_file_that_exists_is_not_a_keras_archive(tmp_path):
    """Regression: a text file named model.keras was reported as 'File not found'."""
    import zipfile

    from keras_quaternion.training.loop import load_model

    text = tmp_path / "model.keras"
    text.write_text("this is not a model\n")
    with pytest.raises(
        ValueError,
        match=r"model.keras' is not a Keras model file \(a .keras file "
        r"is a zip archive written by model.save\(\); this file is not a zip",
    ):
        load_model(text)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="this zip archive has no config.json"):
        load_model(other_zip)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    x = keras.Input((8,))
    keras.Model(x, keras.layers.Dense(2)(x)).save(tmp_path / "real.keras")
    assert load_model(tmp_path / "real.keras").output_shape == (None, 2)


# ---------------------------------------------------------------------------- kill test


def _kq_train(repo_root, args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = "from keras_quaternion.cli import train_main; train_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=repo_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_killed_kq_train_resumes_and_finishes(repo_root, cache_dir, tmp_path):
    out = tmp_path / "run"
    epochs = 4
    args = [
        "--model",
        "qcnn6",
        "--width",
        "0.0625",
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--clip-seconds",
        "0.5",
        "--n-mels",
        "32",
        "--option",
        "samples_per_class=6",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(out),
    ]
    proc = _kq_train(repo_root, args)
    pointer = out / "checkpoint" / "checkpoint.json"
    deadline = time.time() + 120
    while not pointer.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads(pointer.read_text())["epoch"]
    assert 1 <= done < epochs
    assert not (out / "metrics.json").exists()

    again = _kq_train(repo_root, args)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    assert f"Resuming from epoch {done + 1}" in output
    assert "Test accuracy" in output and str(out) in output
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == epochs
    assert keras.models.load_model(out / "model.keras").output_shape == (None, 10)


def test_epoch_lines_mark_the_best_only_with_a_validation_split(capsys):
    from keras_quaternion.training.callbacks import PrintEpoch, RunState

    state = RunState("accuracy")
    printer = PrintEpoch(state, epochs=2)
    state.improved = True  # without validation every epoch "improves": the last one is kept
    state.history.append({"epoch": 1, "loss": 1.0, "lr": 1e-3, "seconds": 1.0})
    printer.on_epoch_end(0)
    state.history.append({"epoch": 2, "loss": 0.9, "val_accuracy": 0.5, "lr": 1e-3, "seconds": 1})
    printer.on_epoch_end(1)
    first, second = capsys.readouterr().out.splitlines()
    assert "*best" not in first and second.endswith("*best")
