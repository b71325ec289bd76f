"""The model registry: ``build(name, ...)``, ``names()``, ``describe(name)``."""

from __future__ import annotations

import dataclasses
import numbers

import keras

from keras_quaternion.layers.fast import ALGORITHMS
from keras_quaternion.models import panns
from keras_quaternion.models.blocks import BN_MODES, LayerKit, zero_residual_gammas

#: PANNs' dropout rates: after every conv block, inside ResNet basic blocks, before ``fc1``.
DEFAULT_DROPOUT = {"block": 0.2, "residual": 0.1, "head": 0.5}
MAX_WIDTH = 4.0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a registry name builds.

    Attributes:
        name: registry name, e.g. ``"qcnn14"``.
        family: the PANNs architecture (``"cnn6"``, ``"cnn10"``, ``"cnn14"``, ``"resnet22"``,
            ``"resnet38"``).
        quaternion: convolutions and ``fc1`` are quaternion layers.
        input_channels: ``C`` of the ``(frames, mels, C)`` input: 1 (log-mel) or 4 (quaternion
            features: log-mel, Δ, Δ², Δ³).
        poolings: number of 2x2 average poolings; ``frames`` and ``n_mels`` must be at least
            ``2**poolings`` (``min_frames``, ``min_mels``).
        summary: one line for listings.

    Example:
        >>> spec = describe("qresnet22")
        >>> spec.family, spec.quaternion, spec.input_channels, spec.poolings, spec.min_frames
        ('resnet22', True, 4, 5, 32)
        >>> describe("mccnn14").summary
        'multi-channel CNN14: real Conv2D on the 4 quaternion-feature channels (ablation)'
    """

    name: str
    family: str
    quaternion: bool
    input_channels: int
    poolings: int
    summary: str

    @property
    def min_frames(self):
        """Smallest number of input frames the model accepts (``2**poolings``)."""
        return 2**self.poolings

    @property
    def min_mels(self):
        """Smallest number of mel bins the model accepts (``2**poolings``)."""
        return 2**self.poolings


def _specs():
    specs = {}
    for family in ("cnn6", "cnn10", "cnn14", "resnet22", "resnet38"):
        depth = panns.poolings(family)
        upper = family.replace("cnn", "CNN").replace("resnet", "ResNet")
        specs[family] = ModelSpec(
            family, family, False, 1, depth, f"PANNs' {upper} on log-mel (real)"
        )
        specs["q" + family] = ModelSpec(
            "q" + family,
            family,
            True,
            4,
            depth,
            f"quaternion {upper}: QConv2D everywhere, on quaternion features",
        )
    specs["mccnn14"] = ModelSpec(
        "mccnn14",
        "cnn14",
        False,
        4,
        panns.poolings("cnn14"),
        "multi-channel CNN14: real Conv2D on the 4 quaternion-feature channels (ablation)",
    )
    return specs


SPECS = _specs()


def names():
    """The registry's model names, in a stable order.

    Returns:
        A list of str: real PANNs models, their quaternion twins, then ``mccnn14``.

    Example:
        >>> names()
        ['cnn6', 'cnn10', 'cnn14', 'resnet22', 'resnet38', 'qcnn6', 'qcnn10', 'qcnn14', 'qresnet22', 'qresnet38', 'mccnn14']
    """
    real = [n for n, s in SPECS.items() if not s.quaternion and s.input_channels == 1]
    quat = [n for n, s in SPECS.items() if s.quaternion]
    other = [n for n in SPECS if n not in real and n not in quat]
    return real + quat + other


def describe(name):
    """The :class:`ModelSpec` of a registry name (input channels, minimum sizes, family).

    Args:
        name: a name from :func:`names`.

    Returns:
        A :class:`ModelSpec`.

    Raises:
        ValueError: unknown name (the message lists the known ones).

    Example:
        >>> spec = describe("qcnn14")
        >>> spec.input_channels, spec.min_frames, spec.min_mels
        (4, 32, 32)
    """
    if not isinstance(name, str) or name.lower() not in SPECS:
        raise ValueError(f"Unknown model name {name!r}; known models: {', '.join(names())}.")
    return SPECS[name.lower()]


def _check_int(value, what, minimum, why):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"build(): {what} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"build(): {what} must be >= {minimum} ({why}), got {value}.")
    return int(value)


def _check_input_size(spec, n_mels, frames) -> tuple[int, int | None]:
    """``(n_mels, frames)`` checked against the model's pooling depth (``frames`` may be None)."""
    pools = f"{spec.poolings} times with 2x2 average poolings"
    n_mels = _check_int(n_mels, "n_mels", spec.min_mels, f"{spec.name} halves the mel axis {pools}")
    if frames is not None:
        frames = _check_int(
            frames, "frames", spec.min_frames, f"{spec.name} halves the time axis {pools}"
        )
    return n_mels, frames


def _resolve_bn(bn, spec) -> str:
    """The normalisation mode: ``None`` is ``"real"``; quaternion modes need a q* model."""
    bn = "real" if bn is None else bn
    allowed = BN_MODES if spec.quaternion else ("real",)
    if bn not in allowed:
        raise ValueError(
            f"build(): bn={bn!r} is not available for {spec.name}; allowed: "
            f"{', '.join(repr(a) for a in allowed)} (or None)."
            + ("" if spec.quaternion else " Quaternion normalisation needs a q* model.")
        )
    return bn


def _resolve_dropout(dropout):
    if dropout is None:
        return dict(DEFAULT_DROPOUT)
    if isinstance(dropout, numbers.Real) and not isinstance(dropout, bool):
        rates = dict.fromkeys(DEFAULT_DROPOUT, float(dropout))
    elif isinstance(dropout, dict):
        unknown = sorted(set(dropout) - set(DEFAULT_DROPOUT))
        if unknown:
            raise ValueError(
                f"build(): unknown dropout key(s) {unknown}; allowed keys: "
                f"{sorted(DEFAULT_DROPOUT)}."
            )
        rates = {**DEFAULT_DROPOUT, **dropout}
    else:
        raise ValueError(
            "build(): dropout must be None (PANNs' rates), one rate for all dropout layers, or a "
            f"dict with keys {sorted(DEFAULT_DROPOUT)}; got {dropout!r}."
        )
    for key, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"build(): dropout rate {key!r} must be in [0, 1), got {rate!r}.")
        rates[key] = float(rate)
    return rates


def _resolve_algorithm(algorithm, spec):
    allowed = ALGORITHMS if spec.quaternion else ("standard",)
    if algorithm is None:
        return "standard"
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise ValueError(
            f"build(): qconv_algorithm={algorithm!r} is not available for {spec.name}; allowed: "
            f"{', '.join(repr(a) for a in allowed)} (or None)."
            + ("" if spec.quaternion else " The fast Hamilton product needs a q* model.")
        )
    return algorithm


def _model_input(spec, frames, n_mels, deltas):
    """``(inputs, features)``: the model's input and what its first block sees."""
    if deltas is None:
        inputs = keras.Input((frames, n_mels, spec.input_channels), name="features")
        return inputs, inputs
    if spec.input_channels != 4:
        raise ValueError(
            f"build(): deltas={deltas!r} needs a model with 4 input channels (a q* model or "
            f"mccnn14); {spec.name} takes log-mel already. Leave deltas=None."
        )
    from keras_quaternion.layers.deltas import QuaternionDeltas

    inputs = keras.Input((frames, n_mels, 1), name="log_mel")
    return inputs, QuaternionDeltas(width=deltas, name="deltas")(inputs)


def build(
    name,
    *,
    classes,
    n_mels=64,
    frames=None,
    multi_label=False,
    width=1.0,
    bn=None,
    dropout=None,
    model_name=None,
    qconv_algorithm=None,
    deltas=None,
):
    """Build a registry model: a functional Keras model from features to class probabilities.

    Real models (``cnn6``, ``cnn10``, ``cnn14``, ``resnet22``, ``resnet38``) are PANNs'
    architectures (qiuqiangkong/audioset_tagging_cnn) after its log-mel front end; their
    quaternion twins (``q*``) use the same real channel widths with ``QConv2D`` everywhere, a
    quaternion ``fc1`` and a real output layer; ``mccnn14`` feeds the 4 quaternion-feature
    channels to a real CNN14. See ``docs/models.md`` for layer names and design choices.

    Args:
        name: a registry name (:func:`names`).
        classes: number of output classes, >= 2.
        n_mels: mel bins of the input features; at least ``describe(name).min_mels``
            (``2**poolings``: 16 for cnn6/cnn10 and their twins, 32 for the others).
        frames: fixed number of input frames, or None for variable-length input. A fixed value
            (and any input at run time) must be at least ``describe(name).min_frames``.
        multi_label: sigmoid outputs (multi-label tagging, e.g. AudioSet); else softmax.
        width: multiplier of every channel count (conv blocks, ResNet stages, ``fc1``), in
            ``(0, 4]``. Real layers keep ``max(1, round(c * width))`` channels, quaternion layers
            the nearest multiple of 4, at least 4.
        bn: normalisation after each convolution. Real models: None or ``"real"``. Quaternion
            models: ``"real"`` (default; a ``BatchNormalization`` per real channel, as the
            authors' released QCNN14), ``"quaternion"`` (:class:`QBatchNormalization`) or
            ``"whiten"`` (``QBatchNormalization(whiten=True)``). ``bn0`` is always the real
            per-mel-bin normalisation.
        dropout: None for PANNs' rates (0.2 after each conv block, 0.1 inside ResNet basic
            blocks, 0.5 before ``fc1``), one float for all, or a dict overriding some of the keys
            ``"block"``, ``"residual"``, ``"head"``. A rate of 0 omits those Dropout layers.
        model_name: the Keras model's name (default: ``name``).
        qconv_algorithm: ``algorithm`` of every ``QConv2D`` and ``QDense`` of a quaternion model:
            None or ``"standard"`` (one real op with the assembled Hamilton kernel) or
            ``"fast"`` (8 real ops on sums and differences, half the multiply-accumulates; same
            weights, same function). Real models accept only None or ``"standard"``.
        deltas: ``None`` (the model takes its features as they are) or the Savitzky–Golay
            width (an odd int >= 5, the features' ``delta_width``) of a
            :class:`~keras_quaternion.layers.deltas.QuaternionDeltas` layer that starts a model
            with 4 input channels: it then takes log-mel ``(batch, frames, n_mels, 1)`` and
            computes Δ, Δ², Δ³ itself (for a ``"logmel16"`` feature cache).

    Returns:
        A ``keras.Model`` taking ``(batch, frames, n_mels, C)`` (``C = describe(name).
        input_channels``) and returning ``(batch, classes)`` probabilities.

    Raises:
        ValueError: unknown ``name`` (lists the known ones), ``classes < 2``, ``n_mels`` or
            ``frames`` too small for the pooling depth, ``width`` outside ``(0, 4]``, a ``bn``
            mode or ``qconv_algorithm`` not allowed for the model, bad dropout rates.

    Example:
        >>> model = build("qcnn6", classes=10, n_mels=32, width=0.125)
        >>> model.input_shape, model.output_shape
        ((None, None, 32, 4), (None, 10))
        >>> model.get_layer("conv_block1_conv1").filters  # quaternion filters: 8 real channels
        2
        >>> fast = build("qcnn6", classes=10, n_mels=32, width=0.125, qconv_algorithm="fast")
        >>> fast.get_layer("conv_block1_conv1").algorithm, fast.count_params() == model.count_params()
        ('fast', True)
    """
    spec = describe(name)
    classes = _check_int(classes, "classes", 2, "a classifier needs at least two classes")
    n_mels, frames = _check_input_size(spec, n_mels, frames)
    if not isinstance(multi_label, bool):
        raise ValueError(f"build(): multi_label must be True or False, got {multi_label!r}.")
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not 0 < width <= MAX_WIDTH:
        raise ValueError(
            f"build(): width must be a number in (0, {MAX_WIDTH:g}] (1.0 = PANNs' widths), "
            f"got {width!r}."
        )
    bn = _resolve_bn(bn, spec)
    rates = _resolve_dropout(dropout)
    algorithm = _resolve_algorithm(qconv_algorithm, spec)
    if model_name is not None and not isinstance(model_name, str):
        raise ValueError(f"build(): model_name must be a str or None, got {model_name!r}.")

    kit = LayerKit(
        quaternion=spec.quaternion,
        bn=bn,
        width=float(width),
        dropout=rates,
        algorithm=algorithm,
    )
    inputs, features = _model_input(spec, frames, n_mels, deltas)
    builder = panns.build_cnn if spec.family in panns.CNN_CHANNELS else panns.build_resnet
    outputs = builder(
        spec.family, kit, features, n_mels=n_mels, classes=classes, multi_label=multi_label
    )
    model = keras.Model(inputs, outputs, name=model_name or spec.name)
    zero_residual_gammas(model)
    return model
