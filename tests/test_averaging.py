"""Weight averaging (``ema``) and label smoothing in train(), kq-train's options for them.

The average is checked against a numpy recursion over the weights captured after every step;
resuming an interrupted run with an average must continue it exactly.
"""

import csv
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_quaternion.cli.train import train_command
from keras_quaternion.layers import QConv2D
from keras_quaternion.training import PreparedData, train
from keras_quaternion.training.averaging import WeightAverage, momentum_at
from keras_quaternion.training.recipe import Recipe

KW = {"batch_size": 8, "verbose": 0, "seed": 2, "spec_augment": False}


def _data(n=24, validation=8, classes=3, seed=0):
    """Quaternion-shaped features whose class shows as an offset of one component."""
    rng = np.random.default_rng(seed)

    def split(count):
        y = np.arange(count) % classes
        x = rng.normal(size=(count, 12, 8, 4)).astype(np.float32)
        x[np.arange(count), :, :, y] += 2.0
        return x, y

    splits = {"train": split(n), "validation": split(validation), "test": split(6)}
    return PreparedData.from_arrays(splits, class_names=[f"c{i}" for i in range(classes)])


def _model(data, classes=3, seed=0, dropout=0.2):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(data.input_shape(4))
    h = keras.layers.BatchNormalization()(inputs)
    h = QConv2D(4, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(dropout)(h)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(h), name="toy")


class _Capture(keras.callbacks.Callback):
    """The model's weights after every training step."""

    def __init__(self, net):
        super().__init__()
        self.net, self.steps = net, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(v.numpy()) for v in self.net.weights])


def test_momentum_grows_from_a_tenth_to_the_setting():
    assert momentum_at(0.99, 0) == pytest.approx(0.1)
    assert momentum_at(0.99, 1) == pytest.approx(2 / 11)
    assert momentum_at(0.99, 10**6) == 0.99
    assert momentum_at(0.5, 100) == 0.5


def test_the_kept_model_is_the_moving_average_of_every_step(tmp_path):
    """No validation split: the last epoch's average is kept; it equals the numpy recursion
    over the weights after each step (batch-norm statistics included), not the last weights."""
    full = _data()
    x, y = full.arrays("test")
    data = PreparedData.from_arrays(
        {s: full.arrays(s) for s in ("train", "test")} | {"validation": (x[:0], y[:0])},
        class_names=full.class_names,
    )
    net = _model(data)
    initial = [np.array(v.numpy()) for v in net.weights]
    capture = _Capture(net)
    result = train(
        net, data, out_dir=tmp_path / "run", epochs=2, ema=0.8, callbacks=[capture], **KW
    )
    assert result["ema"] == 0.8 and len(capture.steps) == 6  # 24 clips / 8, two epochs
    expected = initial
    for step, values in enumerate(capture.steps, start=1):
        m = momentum_at(0.8, step)
        expected = [m * a + (1 - m) * v for a, v in zip(expected, values, strict=True)]
    kept = keras.models.load_model(tmp_path / "run" / "model.keras")
    names = [v.path for v in net.weights]
    for name, got, want in zip(names, kept.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert any(
        not np.allclose(a, b) for a, b in zip(kept.get_weights(), capture.steps[-1], strict=True)
    ), "the kept model is the last weights, not their average"
    for got, want in zip(net.get_weights(), kept.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)  # train() leaves the average in the model


def test_validation_scores_the_average_that_is_kept(tmp_path):
    data = _data()
    train(_model(data), data, out_dir=tmp_path / "run", epochs=3, ema=0.9, **KW)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv", newline="")))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    best = rows[saved["validation"]["best_epoch"] - 1]
    kept = keras.models.load_model(tmp_path / "run" / "model.keras")
    x, y = data.arrays("validation")
    probs = kept.predict(x, verbose=0)
    loss = float(np.mean(-np.log(probs[np.arange(len(y)), y])))
    assert loss == pytest.approx(float(best["val_loss"]), rel=1e-4)


def test_resume_continues_the_average_exactly(tmp_path):
    data = _data()
    straight = train(_model(data), data, out_dir=tmp_path / "a", epochs=3, ema=0.9, **KW)
    train(_model(data), data, out_dir=tmp_path / "b", epochs=1, ema=0.9, **KW)
    resumed = train(_model(data), data, out_dir=tmp_path / "b", epochs=3, ema=0.9, **KW)
    assert resumed["resumed_from"] == 1
    histories = [
        list(csv.DictReader(open(tmp_path / run / "history.csv", newline=""))) for run in "ab"
    ]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(
            [float(r[key]) for r in histories[1]], [float(r[key]) for r in histories[0]], rtol=1e-4
        )
    assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], rel=1e-4)
    with pytest.raises(ValueError, match="ema: 0.9 -> 0.5"):
        train(_model(data), data, out_dir=tmp_path / "b", epochs=4, ema=0.5, **KW)


def test_label_smoothing_bounds_the_training_loss_by_the_targets_entropy(tmp_path):
    """Separable data: without smoothing the training loss falls towards 0; with 0.5 over three
    classes the targets are (2/3, 1/6, 1/6), whose entropy (0.868) no output can go below."""

    def last_loss(folder, smoothing):
        data = _data(n=48, seed=1)
        kw = {**KW, "lr": 0.05, "weight_decay": 0.0}
        out = tmp_path / folder
        net = _model(data, seed=1, dropout=0.0)
        train(net, data, out_dir=out, epochs=25, label_smoothing=smoothing, **kw)
        rows = list(csv.DictReader(open(out / "history.csv", newline="")))
        assert float(rows[-1]["accuracy"]) == 1.0  # both fit the training clips
        return float(rows[-1]["loss"])

    target = np.array([2 / 3, 1 / 6, 1 / 6])
    entropy = float(-(target * np.log(target)).sum())
    assert last_loss("plain", 0.0) < 0.3
    assert entropy - 1e-4 <= last_loss("smoothed", 0.5) < entropy + 0.1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ema", 1.0, r"ema must be a number in \[0, 0.9999\]"),
        ("ema", -0.1, r"ema must be a number in \[0, 0.9999\]"),
        ("label_smoothing", 0.6, r"label_smoothing must be a number in \[0, 0.5\]"),
        ("label_smoothing", True, r"label_smoothing must be a number"),
    ],
)
def test_bad_settings_name_the_argument(field, value, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**{field: value})


def test_kq_train_takes_both_options(tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "synthetic", "--option", "samples_per_class=4", "--width", "0.0625"]
    args += ["--epochs", "1", "--batch-size", "8", "--ema", "0.95", "--label-smoothing", "0.1"]
    result = CliRunner().invoke(train_command, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "metrics.json").read_text())
    assert (saved["ema"], saved["label_smoothing"]) == (0.95, 0.1)
    bad = CliRunner().invoke(train_command, [*args[:-4], "--ema", "1.5", "--out", str(out)])
    assert bad.exit_code == 2 and "--ema" in bad.output


def test_a_model_that_does_not_rebuild_from_its_config_is_refused():
    class Growing(keras.layers.Layer):  # its config does not say how many weights it makes
        def __init__(self, extra=0, **kwargs):
            super().__init__(**kwargs)
            self.extra = extra

        def build(self, shape):
            for i in range(1 + self.extra):
                self.add_weight(shape=(1,), name=f"w{i}")

        def call(self, x):
            return x

    layer = Growing(extra=0)
    layer.extra = 1  # builds two weights; its config (extra=0) rebuilds one
    inputs = keras.Input((2,))
    net = keras.Model(inputs, layer(inputs))
    with pytest.raises(ValueError, match=r"does not rebuild from its config .* ema=0 \(--ema 0\)"):
        WeightAverage(net, 0.9)


def test_the_average_keeps_the_models_names(tmp_path):
    x = keras.Input((3,))  # unnamed: Keras calls the layer "input_layer", its tensor otherwise
    net = keras.Model(x, keras.layers.Dense(2, name="out")(x), name="toy")
    twin = WeightAverage(net, 0.9).net
    assert twin.name == "toy"
    assert [layer.name for layer in twin.layers] == [layer.name for layer in net.layers]


def test_a_model_that_cannot_be_cloned_is_refused_with_the_way_out():
    class Wrapper(keras.Model):  # takes an object its config cannot hold
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return self.inner(x)

    net = Wrapper(keras.layers.Dense(2), name="wrapper")
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(
        ValueError,
        match=r"model 'wrapper' does not rebuild .*NotImplementedError: Object Wrapper .*\(--ema 0\)",
    ):
        WeightAverage(net, 0.9)
