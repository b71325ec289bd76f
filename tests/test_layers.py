"""Quaternion layers against an independent numpy oracle, and their algebra."""

import math

import keras
import numpy as np
import pytest

from keras_quaternion import QBatchNormalization, QConv1D, QConv2D, QDense, QuaternionInitializer

# ---------------------------------------------------------------------------------------------
# Oracle: the Hamilton product written from the basis rules i² = j² = k² = ijk = -1, which give
# ij = k, jk = i, ki = j, ji = -k, kj = -i, ik = -j. No block matrix involved.
# BASIS[a][b] = (sign, c) means e_a * e_b = sign * e_c with e_0 = 1, e_1 = i, e_2 = j, e_3 = k.
BASIS = [
    [(1, 0), (1, 1), (1, 2), (1, 3)],
    [(1, 1), (-1, 0), (1, 3), (-1, 2)],
    [(1, 2), (-1, 3), (-1, 0), (1, 1)],
    [(1, 3), (1, 2), (-1, 1), (-1, 0)],
]


def qmul(w, x):
    """Hamilton product of quaternion arrays w, x with components on the last axis."""
    out = np.zeros(np.broadcast_shapes(w.shape, x.shape), dtype=np.float64)
    for a in range(4):
        for b in range(4):
            sign, c = BASIS[a][b]
            out[..., c] += sign * w[..., a] * x[..., b]
    return out


def to_quat(x):
    """(..., 4C) real [r|i|j|k] -> (..., C, 4)."""
    c = x.shape[-1] // 4
    return np.stack([x[..., n * c : (n + 1) * c] for n in range(4)], axis=-1)


def from_quat(q):
    return np.concatenate([q[..., n] for n in range(4)], axis=-1)


def oracle_conv(x, comps, bias, strides, padding, dilation):
    """x (B, *S, 4C), comps (4, *k, C, F) -> (B, *S', 4F) by explicit Hamilton products."""
    xq = to_quat(x)  # (B, *S, C, 4)
    w = np.moveaxis(comps, 0, -1)  # (*k, C, F, 4)
    rank = x.ndim - 2
    ksize = w.shape[:rank]
    pads = []
    out_sizes = []
    for d in range(rank):
        size, k, s, r = x.shape[1 + d], ksize[d], strides[d], dilation[d]
        eff = (k - 1) * r + 1
        if padding == "same":
            out = math.ceil(size / s)
            total = max((out - 1) * s + eff - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            out = (size - eff) // s + 1
            pads.append((0, 0))
        out_sizes.append(out)
    xq = np.pad(xq, [(0, 0), *pads, (0, 0), (0, 0)])
    batch, units = x.shape[0], w.shape[-2]
    result = np.zeros((batch, *out_sizes, units, 4))
    for pos in np.ndindex(*out_sizes):
        acc = np.zeros((batch, units, 4))
        for tap in np.ndindex(*ksize):
            idx = tuple(p * s + t * r for p, t, s, r in zip(pos, tap, strides, dilation))
            xin = xq[(slice(None), *idx)]  # (B, C, 4)
            wt = w[tap]  # (C, F, 4)
            acc += qmul(wt[None], xin[:, :, None, :]).sum(axis=1)
        result[(slice(None), *pos)] = acc
    out = from_quat(result)
    return out + bias if bias is not None else out


@pytest.mark.parametrize(
    "kernel,strides,padding,dilation,spatial",
    [
        ((3, 3), (1, 1), "same", (1, 1), (6, 7)),
        ((3, 2), (2, 1), "valid", (1, 1), (7, 6)),
        ((2, 3), (1, 1), "valid", (2, 1), (6, 7)),
        ((3, 3), (2, 2), "same", (1, 1), (5, 5)),
    ],
)
def test_qconv2d_matches_hamilton_oracle(kernel, strides, padding, dilation, spatial):
    rng = np.random.default_rng(sum(kernel) + sum(strides))
    c_in, f = 2, 3
    layer = QConv2D(
        f,
        kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        dtype="float64",
        bias_initializer="random_normal",
    )
    x = rng.standard_normal((2, *spatial, 4 * c_in))
    y = np.asarray(layer(x))
    comps = np.asarray(layer.kernel)
    expected = oracle_conv(x, comps, np.asarray(layer.bias), strides, padding, dilation)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_qconv1d_matches_hamilton_oracle():
    rng = np.random.default_rng(1)
    layer = QConv1D(2, 3, strides=2, padding="same", dtype="float64", use_bias=False)
    x = rng.standard_normal((3, 9, 12))
    y = np.asarray(layer(x))
    expected = oracle_conv(x, np.asarray(layer.kernel), None, (2,), "same", (1,))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_qdense_matches_hamilton_oracle():
    rng = np.random.default_rng(2)
    layer = QDense(5, dtype="float64", bias_initializer="random_normal")
    x = rng.standard_normal((4, 3, 8))
    y = np.asarray(layer(x))
    w = np.moveaxis(np.asarray(layer.kernel), 0, -1)  # (C, F, 4)
    xq = to_quat(x)  # (4, 3, C, 4)
    expected = from_quat(qmul(w, xq[..., :, None, :]).sum(axis=-3)) + np.asarray(layer.bias)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_product_is_not_commutative_and_weight_is_on_the_left():
    rng = np.random.default_rng(3)
    layer = QDense(1, use_bias=False, dtype="float64")
    layer.build((None, 4))
    w = rng.standard_normal(4)
    layer.kernel.assign(w.reshape(4, 1, 1))
    x = rng.standard_normal((1, 4))
    y = np.asarray(layer(x))[0]
    np.testing.assert_allclose(y, qmul(w, x[0]), atol=1e-12)
    assert not np.allclose(y, qmul(x[0], w), atol=1e-3)


def test_one_unit_1x1_layer_multiplies_norms():
    rng = np.random.default_rng(4)
    layer = QConv2D(1, 1, use_bias=False, dtype="float64")
    x = rng.standard_normal((1, 3, 3, 4))
    y = np.asarray(layer(x))
    w = np.asarray(layer.kernel).reshape(4)
    np.testing.assert_allclose(
        np.linalg.norm(y, axis=-1), np.linalg.norm(w) * np.linalg.norm(x, axis=-1), rtol=1e-10
    )


def test_parameter_count_is_a_quarter_of_the_real_layer():
    x = np.zeros((1, 8, 8, 12), "float32")
    q = QConv2D(5, 3)
    r = keras.layers.Conv2D(20, 3)
    q(x), r(x)
    assert q.count_params() == 4 * 3 * 3 * 3 * 5 + 20
    assert q.kernel.shape == (4, 3, 3, 3, 5)
    assert 4 * int(np.prod(q.kernel.shape)) == int(np.prod(r.kernel.shape))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: QConv2D(0, 3), "filters"),
        (lambda: QConv2D(2, 0), "kernel_size"),
        (lambda: QConv2D(2, 3, padding="full"), "padding"),
        (lambda: QDense(-1), "units"),
        (lambda: QBatchNormalization(momentum=1.5), "momentum"),
        (lambda: QuaternionInitializer("lecun"), "criterion"),
    ],
)
def test_bad_arguments_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_input_channels_must_be_multiple_of_four():
    layer = QConv2D(2, 3, name="my_qconv")
    with pytest.raises(ValueError, match=r"my_qconv.*multiple of 4.*6 channels"):
        layer(np.zeros((1, 5, 5, 6), "float32"))
    with pytest.raises(ValueError, match="multiple of 4"):
        QDense(2)(np.zeros((1, 7), "float32"))


def test_initializer_statistics():
    init = QuaternionInitializer("he", seed=0)
    w = np.asarray(init((4, 3, 3, 64, 64)))
    fan_in = 64 * 9
    # E|w|^2 = 4 sigma^2 for a chi(4) magnitude with sigma = 1/sqrt(2 fan_in)
    np.testing.assert_allclose((w**2).sum(axis=0).mean(), 4 / (2 * fan_in), rtol=0.05)
    # the imaginary axis is a unit vector: per weight, |imag| = |w| |sin θ|
    glorot = np.asarray(QuaternionInitializer("glorot", seed=0)((4, 3, 3, 64, 64)))
    assert (glorot**2).sum(axis=0).mean() < (w**2).sum(axis=0).mean()
    again = np.asarray(QuaternionInitializer("he", seed=0)((4, 3, 3, 64, 64)))
    np.testing.assert_array_equal(w, again)


def test_batchnorm_default_mode_statistics():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 4, 4, 8)) * 3 + 2).astype("float32")
    bn = QBatchNormalization(momentum=0.0)
    y = np.asarray(bn(x, training=True)).reshape(-1, 8)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    q = to_quat(y)  # (N, 2, 4)
    np.testing.assert_allclose((q**2).sum(-1).mean(0), 1.0, rtol=1e-2)
    # momentum 0: moving statistics equal the batch ones, so inference reproduces training
    np.testing.assert_allclose(
        np.asarray(bn(x, training=False)).reshape(-1, 8), y, rtol=1e-4, atol=1e-4
    )


def test_batchnorm_whitening_gives_identity_covariance():
    rng = np.random.default_rng(6)
    mix = rng.standard_normal((12, 12))
    x = (rng.standard_normal((2048, 12)) @ mix + 1.5).astype("float32")
    bn = QBatchNormalization(whiten=True, epsilon=1e-5)
    y = np.asarray(bn(x, training=True))
    q = to_quat(y)  # (N, 3, 4)
    for unit in range(3):
        cov = np.cov(q[:, unit, :].T, bias=True)
        np.testing.assert_allclose(cov, np.eye(4), atol=2e-3)
    assert bn.count_params() == 3 * 16 + 12 + 12 + 3 * 16


@pytest.mark.parametrize("whiten", [False, True])
def test_save_load_round_trip(tmp_path, whiten):
    inp = keras.Input((8, 6, 4))
    h = QConv2D(
        3, 3, padding="same", activation="relu", kernel_initializer="quaternion_he", name="qc"
    )(inp)
    h = QBatchNormalization(whiten=whiten)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = QDense(2, kernel_regularizer="l2")(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 8, 6, 4)).astype("float32")
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert loaded.get_layer("qc").get_config()["kernel_size"] == (3, 3)


def test_training_lowers_the_loss():
    keras.utils.set_random_seed(8)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((32, 8, 8, 4)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            QConv2D(4, 3, padding="same", activation="relu"),
            QBatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before * 0.8


# ---------------------------------------------------------------------------------------------
# algorithm="fast": the Hamilton product in 8 real multiplications (keras_quaternion.layers.fast)


def test_fast_scheme_is_the_hamilton_product_exactly():
    # A bilinear map is fixed by its values on pairs of basis vectors: compare the scheme's
    # tensor sum_m out[o, m] * weight[m, a] * input[m, b] with e_a * e_b from the basis rules,
    # in exact rational arithmetic.
    from fractions import Fraction

    from keras_quaternion.layers import fast

    weight, inputs, outputs = (
        [[Fraction(c) for c in row] for row in table]
        for table in (fast.FAST_WEIGHT_COMBOS, fast.FAST_INPUT_COMBOS, fast.FAST_OUTPUT_COMBOS)
    )
    assert len(weight) == len(inputs) == 8 and len(outputs) == 4
    for a in range(4):
        for b in range(4):
            sign, c = BASIS[a][b]
            for o in range(4):
                got = sum(outputs[o][m] * weight[m][a] * inputs[m][b] for m in range(8))
                assert got == (sign if o == c else 0), (a, b, o)
    # pre- and post-additions are additions only; the 1/2 sits on the weight side
    assert {c for row in inputs + outputs for c in row} <= {-1, 0, 1}
    assert {abs(c) for row in weight for c in row} <= {0, Fraction(1, 2), 1}


def test_fast_helpers_implement_the_tables():
    from keras_quaternion.layers import fast

    eye = np.eye(4)
    ins = np.stack([np.asarray(t)[:, 0] for t in fast.fast_inputs(eye)], axis=1)  # (block, m)
    np.testing.assert_array_equal(ins.T, fast.FAST_INPUT_COMBOS)
    kernels = np.stack([np.asarray(k)[:, 0, 0] for k in fast.fast_kernels(eye[:, :, None, None])])
    np.testing.assert_array_equal(kernels, fast.FAST_WEIGHT_COMBOS)
    outs = np.asarray(fast.fast_outputs([np.eye(8)[:, m : m + 1] for m in range(8)]))
    np.testing.assert_array_equal(outs.T, fast.FAST_OUTPUT_COMBOS)


def _pair(make, x, seed):
    """A standard and a fast layer from ``make(algorithm)`` with the same random weights."""
    standard, fast = make("standard"), make("fast")
    standard(x[:1]), fast(x[:1])
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(w.shape) * 0.5 for w in standard.weights]
    standard.set_weights(values)
    fast.set_weights(values)
    return standard, fast


def _grads(layer, x, cotangent):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * cotangent)
    grad_x, grad_w = tape.gradient(loss, [x, layer.kernel])
    return grad_x.numpy(), grad_w.numpy()


FAST_CONV_CASES = [
    (2, (3, 3), (1, 1), "same", (1, 1), (6, 7)),
    (2, (3, 2), (2, 1), "valid", (1, 1), (7, 6)),
    (2, (2, 3), (1, 1), "valid", (2, 1), (6, 7)),
    (2, (3, 3), (2, 2), "same", (1, 1), (5, 5)),
    (1, (3,), (2,), "same", (1,), (9,)),
    (1, (2,), (1,), "valid", (3,), (10,)),
]


@pytest.mark.parametrize("rank,kernel,strides,padding,dilation,spatial", FAST_CONV_CASES)
def test_fast_qconv_matches_oracle_outputs_and_gradients(
    rank, kernel, strides, padding, dilation, spatial
):
    rng = np.random.default_rng(sum(kernel) + sum(strides) + rank)
    cls = QConv2D if rank == 2 else QConv1D
    x = rng.standard_normal((2, *spatial, 8))

    def make(algorithm):
        return cls(
            3,
            kernel,
            strides,
            padding,
            dilation_rate=dilation,
            algorithm=algorithm,
            dtype="float64",
        )

    standard, fast = _pair(make, x, seed=rank)
    comps, bias = np.asarray(fast.kernel), np.asarray(fast.bias)
    y = np.asarray(fast(x))
    np.testing.assert_allclose(
        y, oracle_conv(x, comps, bias, strides, padding, dilation), 1e-10, 1e-10
    )
    # Gradients: the layer is bilinear in (x, kernel), so <dL/dx, dx> = <g, oracle(dx, kernel)>
    # and <dL/dkernel, dw> = <g, oracle(x, dw)> for L = <g, y> and any directions dx, dw.
    g = rng.standard_normal(y.shape)
    grad_x, grad_w = _grads(fast, x, g)
    for _ in range(3):
        dx, dw = rng.standard_normal(x.shape), rng.standard_normal(comps.shape)
        along_x = np.sum(g * oracle_conv(dx, comps, None, strides, padding, dilation))
        along_w = np.sum(g * oracle_conv(x, dw, None, strides, padding, dilation))
        np.testing.assert_allclose(np.sum(grad_x * dx), along_x, rtol=1e-9)
        np.testing.assert_allclose(np.sum(grad_w * dw), along_w, rtol=1e-9)
    # ... and equal the standard algorithm's, element by element
    for got, want in zip((grad_x, grad_w), _grads(standard, x, g)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_fast_qdense_matches_oracle_outputs_and_gradients():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 8))
    standard, fast = _pair(lambda a: QDense(5, algorithm=a, dtype="float64"), x, seed=12)
    w = np.moveaxis(np.asarray(fast.kernel), 0, -1)  # (C, F, 4)

    def oracle(inp, weights):
        return from_quat(qmul(weights, to_quat(inp)[..., :, None, :]).sum(axis=-3))

    y = np.asarray(fast(x))
    np.testing.assert_allclose(y, oracle(x, w) + np.asarray(fast.bias), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(y.shape)
    grad_x, grad_w = _grads(fast, x, g)
    dx, dw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    np.testing.assert_allclose(np.sum(grad_x * dx), np.sum(g * oracle(dx, w)), rtol=1e-9)
    np.testing.assert_allclose(
        np.sum(grad_w * np.moveaxis(dw, -1, 0)), np.sum(g * oracle(x, dw)), rtol=1e-9
    )
    for got, want in zip((grad_x, grad_w), _grads(standard, x, g)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: QConv2D(16, 3, padding="same", algorithm=a),
        lambda a: QConv1D(16, 5, strides=2, algorithm=a),
        lambda a: QDense(16, algorithm=a),
    ],
    ids=["QConv2D", "QConv1D", "QDense"],
)
def test_fast_equals_standard_within_float32_rounding(make):
    # float32, 64 -> 64 real channels: the two algorithms round differently, by a few ulps of
    # the sums they accumulate (here ~1e-6 of the output scale).
    rng = np.random.default_rng(13)
    rank = getattr(make("standard"), "rank", 0)  # QDense: no spatial axes
    x = rng.standard_normal((8, *(12,) * rank, 64)).astype("float32")
    standard, fast = _pair(make, x, seed=13)
    y_std, y_fast = np.asarray(standard(x)), np.asarray(fast(x))
    scale = np.abs(y_std).max()
    np.testing.assert_allclose(y_fast, y_std, rtol=0, atol=1e-5 * scale)
    g = rng.standard_normal(y_std.shape).astype("float32")
    for got, want in zip(_grads(fast, x, g), _grads(standard, x, g)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_fast_layers_keep_the_weights_and_parameter_count():
    x = np.zeros((1, 8, 8, 12), "float32")
    standard, fast = QConv2D(5, 3), QConv2D(5, 3, algorithm="fast")
    standard(x), fast(x)
    assert [(w.name, tuple(w.shape)) for w in fast.weights] == [
        (w.name, tuple(w.shape)) for w in standard.weights
    ]
    assert fast.kernel.shape == (4, 3, 3, 3, 5) and fast.count_params() == standard.count_params()
    assert tuple(fast.real_kernel().shape) == (3, 3, 12, 20)
    assert QConv2D.from_config(fast.get_config()).algorithm == "fast"
    assert QDense(2).get_config()["algorithm"] == "standard"


@pytest.mark.parametrize("cls", [QConv1D, QConv2D, QDense])
@pytest.mark.parametrize("bad", ["Fast", "winograd", None, 8])
def test_bad_algorithm_names_both_choices(cls, bad):
    args = (2,) if cls is QDense else (2, 3)
    with pytest.raises(ValueError) as info:
        cls(*args, algorithm=bad)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: algorithm must be 'standard'")
    assert "'fast'" in message and f"got {bad!r}" in message


def test_fast_model_saves_loads_and_trains(tmp_path):
    keras.utils.set_random_seed(14)
    inp = keras.Input((8, 6, 4))
    h = QConv2D(3, 3, padding="same", activation="relu", algorithm="fast", name="qc")(inp)
    h = keras.layers.Reshape((8, 6 * 12))(h)
    h = QConv1D(2, 3, dilation_rate=2, algorithm="fast", name="qc1")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = QDense(2, algorithm="fast", name="qd")(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(14)
    x = rng.standard_normal((16, 8, 6, 4)).astype("float32")
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "fast.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for name in ("qc", "qc1", "qd"):
        assert loaded.get_layer(name).algorithm == "fast"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    before = [w.copy() for w in loaded.get_weights()]
    loaded.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # trains after loading
    assert any(not np.array_equal(a, b) for a, b in zip(before, loaded.get_weights()))
