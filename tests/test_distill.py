"""Knowledge distillation (keras_quaternion.distill): loss definition, oracle, training, saving."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_quaternion.distill import (
    AutoCrossentropy,
    Distiller,
    distillation_loss,
    model_output_kind,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 5


def _pair(seed=0, activation="softmax", width=(16, 6), features=7):
    """A teacher/student pair of small MLPs with the given output activation."""
    keras.utils.set_random_seed(seed)
    models = []
    for w in width:
        x = keras.Input((features,))
        h = keras.layers.Dense(w, activation="tanh")(x)
        h = keras.layers.BatchNormalization()(h)  # moving statistics: the teacher's must not move
        models.append(keras.Model(x, keras.layers.Dense(CLASSES, activation=activation)(h)))
    return models[0], models[1]


def _without_softmax(model):
    """The same network with a linear head (weights copied): it outputs ``model``'s logits."""
    x = model.inputs[0]
    h = model.layers[-2].output
    head = keras.layers.Dense(CLASSES, activation="linear")
    out = head(h)
    head.set_weights(model.layers[-1].get_weights())
    return keras.Model(x, out)


def _batch(n=12, seed=1, features=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, CLASSES, n)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ------------------------------------------------------------------------------- loss values
def test_single_label_loss_matches_numpy_kl():
    rng = np.random.default_rng(0)
    zt, zs = rng.normal(size=(2, 6, CLASSES)).astype("float32") * 3
    for temperature in (1.0, 2.0, 4.5):
        lt, ls = _np_log_softmax(zt / temperature), _np_log_softmax(zs / temperature)
        want = temperature**2 * np.mean(np.sum(np.exp(lt) * (lt - ls), -1))
        got = float(distillation_loss(zt, zs, temperature=temperature))
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_multi_label_loss_is_tempered_bce_times_t_squared():
    rng = np.random.default_rng(1)
    zt, zs = rng.normal(size=(2, 4, 9)).astype("float32") * 4
    temperature = 2.0
    q = 1 / (1 + np.exp(-zt / temperature))
    p = 1 / (1 + np.exp(-zs / temperature))
    want = temperature**2 * np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p)))
    got = float(distillation_loss(zt, zs, temperature=temperature, multi_label=True))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # probabilities in: logits are recovered with logit(p) before tempering
    probs_t, probs_s = 1 / (1 + np.exp(-zt)), 1 / (1 + np.exp(-zs))
    got_p = float(
        distillation_loss(
            probs_t, probs_s, temperature=temperature, multi_label=True, outputs="probabilities"
        )
    )
    np.testing.assert_allclose(got_p, want, rtol=1e-4)


def test_probabilities_give_the_same_soft_loss_as_logits():
    rng = np.random.default_rng(2)
    zt, zs = rng.normal(size=(2, 8, CLASSES)).astype("float32") * 3
    pt = np.exp(_np_log_softmax(zt))
    ps = np.exp(_np_log_softmax(zs))
    a = float(distillation_loss(zt, zs, temperature=2.0))
    b = float(distillation_loss(pt, ps, temperature=2.0, outputs="probabilities"))
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_sample_weights_use_sum_over_batch_size():
    rng = np.random.default_rng(3)
    zt, zs = rng.normal(size=(2, 4, CLASSES)).astype("float32")
    per = [float(distillation_loss(zt[i : i + 1], zs[i : i + 1])) for i in range(4)]
    w = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    got = float(distillation_loss(zt, zs, sample_weight=w))
    np.testing.assert_allclose(got, np.dot(w, per) / 4, rtol=1e-5)


def test_auto_crossentropy_picks_the_form_from_labels():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    sparse = float(AutoCrossentropy()(np.array([0, 2]), p))
    onehot = float(AutoCrossentropy()(np.eye(3)[[0, 2]], p))
    np.testing.assert_allclose(sparse, -np.mean(np.log([0.7, 0.8])), rtol=1e-5)
    np.testing.assert_allclose(onehot, sparse, rtol=1e-6)
    multi = float(AutoCrossentropy(multi_label=True)(np.array([[1, 0, 0], [0, 1, 1]]), p))
    y = np.array([[1, 0, 0], [0, 1, 1]])
    want = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    np.testing.assert_allclose(multi, want, rtol=1e-4)


# ------------------------------------------------------------------------------------ oracle
@pytest.mark.parametrize("temperature,alpha", [(2.0, 0.5), (3.0, 0.2), (1.0, 0.9)])
def test_single_label_objective_equals_keras_builtin_distiller(temperature, alpha):
    """keras.distillation.Distiller + LogitsDistillation(KL) is the oracle for our loss.

    The built-in treats model outputs as logits; our distiller runs on the softmax models and
    recovers logits with log(p), so the built-in runs on the same networks without the softmax.
    It must get a ``KLDivergence()`` *instance*: only then does Keras 3.15's LogitsDistillation
    apply the tempered softmax and the T**2 factor (the string "kl_divergence" resolves to a
    plain function and is applied to the raw tempered logits).
    """
    teacher, student = _pair(seed=4)
    x, y = _batch()
    ours = Distiller(student, teacher, temperature=temperature, alpha=alpha)
    ours.compile(optimizer="sgd")
    got = ours.loss_terms(x, y)

    t_logits = _without_softmax(teacher)
    s_logits = _without_softmax(student)
    builtin = keras.distillation.Distiller(
        teacher=t_logits,
        student=s_logits,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=alpha,
    )
    builtin.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    want = builtin.compute_loss(x=x, y=y, y_pred=s_logits(x), training=False)
    np.testing.assert_allclose(float(got["loss"]), float(want), rtol=1e-5, atol=1e-6)
    # and on logit models directly (outputs="auto" detects the linear head)
    ours_logits = Distiller(s_logits, t_logits, temperature=temperature, alpha=alpha)
    ours_logits.compile(optimizer="sgd")
    np.testing.assert_allclose(
        float(ours_logits.loss_terms(x, y)["loss"]), float(want), rtol=1e-5, atol=1e-6
    )
    assert ours_logits._student_kind == "logits"


# ------------------------------------------------------------------------------- validation
def test_argument_validation_names_the_argument():
    teacher, student = _pair()
    with pytest.raises(ValueError, match="alpha"):
        Distiller(student, teacher, alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        Distiller(student, teacher, alpha=-0.1)
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="temperature"):
            Distiller(student, teacher, temperature=bad)
    with pytest.raises(ValueError, match="outputs"):
        Distiller(student, teacher, outputs="scores")
    with pytest.raises(TypeError, match="teacher must be a keras.Model"):
        Distiller(student, lambda x: x)
    # different number of classes
    x = keras.Input((7,))
    other = keras.Model(x, keras.layers.Dense(CLASSES + 1, activation="softmax")(x))
    with pytest.raises(ValueError, match="output shape"):
        Distiller(student, other)
    # different input shape
    x = keras.Input((8,))
    other = keras.Model(x, keras.layers.Dense(CLASSES, activation="softmax")(x))
    with pytest.raises(ValueError, match="input shape"):
        Distiller(student, other)
    # activation does not fit multi_label
    with pytest.raises(ValueError, match="multi_label"):
        Distiller(student, teacher, multi_label=True)
    t_sig, s_sig = _pair(activation="sigmoid")
    with pytest.raises(ValueError, match="sigmoid"):
        Distiller(s_sig, t_sig)
    x = keras.Input((7,))
    relu = keras.Model(x, keras.layers.Dense(CLASSES, activation="relu")(x))
    with pytest.raises(ValueError, match="relu"):
        Distiller(relu, teacher)
    assert model_output_kind(t_sig) == ("probabilities", "sigmoid")


# --------------------------------------------------------------------------------- training
def test_fit_trains_student_only_and_save_writes_the_student(tmp_path):
    teacher, student = _pair(seed=5)
    x, y = _batch(n=32)
    before_t = [w.copy() for w in teacher.get_weights()]
    before_s = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.3)
    distiller.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    assert set(history) == {"loss", "task_loss", "distillation_loss", "accuracy"}
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]
    for a, b in zip(before_t, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the teacher is frozen without being modified: it stays trainable for later use
    assert teacher.trainable and all(layer.trainable for layer in teacher.layers)
    assert {id(v) for v in distiller.trainable_variables} == {
        id(v) for v in student.trainable_variables
    }
    assert len(distiller.non_trainable_weights) == len(teacher.weights) + len(
        student.non_trainable_weights
    )
    assert any(not np.array_equal(a, b) for a, b in zip(before_s, student.get_weights()))
    # evaluate scores the student: accuracy equals the student's own accuracy
    scores = distiller.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    acc = np.mean(np.argmax(student.predict(x, verbose=0), -1) == y)
    np.testing.assert_allclose(scores["accuracy"], acc, atol=1e-6)
    # the logged loss is alpha * task + (1 - alpha) * soft
    np.testing.assert_allclose(
        scores["loss"], 0.3 * scores["task_loss"] + 0.7 * scores["distillation_loss"], rtol=1e-5
    )
    path = tmp_path / "student.keras"
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.layers) == len(student.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0))
    config = distiller.get_config()
    assert "teacher" not in config and config["temperature"] == 2.0
    with pytest.raises(TypeError, match="load_model"):
        Distiller.from_config(config)


def test_alpha_one_is_plain_training():
    """With alpha=1 one SGD step of the distiller equals one step of the student alone."""
    x, y = _batch(n=8)
    teacher, student = _pair(seed=6)
    _, twin = _pair(seed=6)
    distiller = Distiller(student, teacher, alpha=1.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5))
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    twin.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    twin.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(student.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_multi_label_distiller_trains():
    teacher, student = _pair(seed=7, activation="sigmoid")
    x, _ = _batch(n=16)
    y = (np.random.default_rng(0).random((16, CLASSES)) > 0.5).astype("float32")
    distiller = Distiller(student, teacher, multi_label=True, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=[keras.metrics.AUC(multi_label=True)])
    logs = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and "auc" in logs


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_quaternion.distill import Distiller

    def mlp(width, seed):
        keras.utils.set_random_seed(seed)
        x = keras.Input((6,))
        h = keras.layers.Dense(width, activation="tanh")(x)
        return keras.Model(x, keras.layers.Dense(4, activation="softmax")(h))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 4, 16)
    w = rng.uniform(0.5, 1.5, 16).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(8)

    def run(strategy):
        with strategy.scope():
            d = Distiller(mlp(5, 1), mlp(12, 2), temperature=2.0, alpha=0.4)
            d.compile(optimizer=keras.optimizers.SGD(0.3))
        logs = d.fit(data, epochs=2, verbose=0).history
        return d.student.get_weights(), logs["loss"][-1], strategy.num_replicas_in_sync

    one_w, one_loss, _ = run(tf.distribute.get_strategy())
    two_w, two_loss, n = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(one_w, two_w))
    print(json.dumps({"replicas": n, "diff": diff, "loss": [one_loss, two_loss]}))
    """
)


def test_mirrored_strategy_matches_single_device():
    """Two replicas on two logical CPUs give the same weights as one device (loss scaling)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=env, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["diff"] < 1e-5, result
    np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-5)
