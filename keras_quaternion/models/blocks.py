"""Building blocks of the PANNs-style registry models, real or quaternion.

Every block is built from stock Keras layers plus the library's quaternion layers, so models
save/load in safe mode, convert to TFLite and can be walked by the pruning graph. A
:class:`LayerKit` hides whether a block is real (``Conv2D``) or quaternion (``QConv2D``): it
is always asked for **real** channel counts, and a quaternion kit turns ``4F`` real channels into
``F`` quaternion filters.
"""

from __future__ import annotations

import dataclasses
import math
import re

import keras

from keras_quaternion.layers import QBatchNormalization, QConv2D, QDense
from keras_quaternion.layers.fast import check_algorithm

#: PyTorch's BatchNorm defaults (momentum 0.1 of the new value = Keras momentum 0.9, eps 1e-5),
#: as used by PANNs' models.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

BN_MODES = ("real", "quaternion", "whiten")


def round_half_up(value):
    """Round a non-negative float to the nearest int, halves up (``round()`` rounds to even).

    Args:
        value: a non-negative number.

    Returns:
        ``floor(value + 0.5)`` as an ``int``.

    Example:
        >>> round_half_up(2.5), round(2.5), round_half_up(0.49)
        (3, 2, 0)
    """
    return int(math.floor(value + 0.5))


@dataclasses.dataclass(frozen=True)
class LayerKit:
    """Makes the layers of one model: real or quaternion convolutions, and their norms.

    Args:
        quaternion: convolutions and ``fc1`` are ``QConv2D``/``QDense`` (else ``Conv2D``/``Dense``).
        bn: ``"real"`` (``BatchNormalization``, one set of statistics per real channel),
            ``"quaternion"`` (:class:`QBatchNormalization`) or ``"whiten"``
            (``QBatchNormalization(whiten=True)``); the last two need ``quaternion=True``.
        width: multiplier of every channel count, in ``(0, 4]``.
        dropout: ``{"block", "residual", "head"}`` rates (0 omits the layer).
        algorithm: ``algorithm`` of the quaternion layers, ``"standard"`` or ``"fast"``
            (ignored by real kits).

    Example:
        >>> rates = {"block": 0.2, "residual": 0.1, "head": 0.0}
        >>> kit = LayerKit(quaternion=True, bn="quaternion", width=0.25, dropout=rates)
        >>> kit.channels(64), kit.channels(6)  # real channels: multiples of 4, at least 4
        (16, 4)
        >>> conv = kit.conv(16, 3, "c1")
        >>> type(conv).__name__, conv.filters  # 16 real channels = 4 quaternion filters
        ('QConv2D', 4)
        >>> type(kit.norm("bn1")).__name__, kit.dropout_layer("head", "drop") is None
        ('QBatchNormalization', True)
        >>> fast = LayerKit(True, "real", 1.0, rates, algorithm="fast")
        >>> fast.conv(64, 3, "c1").algorithm, fast.hidden_dense(64, "fc1").algorithm
        ('fast', 'fast')
    """

    quaternion: bool
    bn: str
    width: float
    dropout: dict
    algorithm: str = "standard"

    def __post_init__(self):
        check_algorithm("LayerKit", self.algorithm)

    def channels(self, base):
        """Real channel count for a PANNs width ``base``, scaled by ``width``.

        Real layers keep at least 1 channel; quaternion layers a multiple of 4, at least 4.
        """
        scaled = base * self.width
        if self.quaternion:
            return 4 * max(1, round_half_up(scaled / 4.0))
        return max(1, round_half_up(scaled))

    def conv(self, channels, kernel_size, name):
        """A bias-free, "same"-padded convolution with ``channels`` real outputs."""
        if self.quaternion:
            return QConv2D(
                channels // 4,
                kernel_size,
                padding="same",
                use_bias=False,
                algorithm=self.algorithm,
                name=name,
            )
        return keras.layers.Conv2D(channels, kernel_size, padding="same", use_bias=False, name=name)

    def norm(self, name, zero_gamma=False):
        """The batch normalisation after a convolution.

        ``zero_gamma`` starts the scale at 0 (PANNs' ResNet zero-inits the last BN of a residual
        branch, so every residual block starts as the identity).
        """
        if self.bn == "real":
            return keras.layers.BatchNormalization(
                momentum=BN_MOMENTUM,
                epsilon=BN_EPSILON,
                gamma_initializer="zeros" if zero_gamma else "ones",
                name=name,
            )
        # QBatchNormalization has no gamma initializer: zero_residual_gammas() zeroes it later.
        return QBatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, whiten=self.bn == "whiten", name=name
        )

    def hidden_dense(self, units, name):
        """``fc1``: ReLU dense layer with ``units`` real outputs (QDense for quaternion kits)."""
        if self.quaternion:
            return QDense(units // 4, activation="relu", algorithm=self.algorithm, name=name)
        return keras.layers.Dense(units, activation="relu", name=name)

    def dropout_layer(self, kind, name):
        """A ``Dropout`` of the configured ``kind`` rate, or None when that rate is 0."""
        rate = self.dropout[kind]
        return keras.layers.Dropout(rate, name=name) if rate > 0 else None


RESIDUAL_BN = re.compile(r"^resnet_layer\d+_block\d+_bn2$")


def zero_residual_gammas(model):
    """Zero the scale of each residual branch's last ``QBatchNormalization`` (``*_block*_bn2``).

    Real ``BatchNormalization`` layers get ``gamma_initializer="zeros"`` directly. Layers are
    matched by name (``resnet_layer<L>_block<B>_bn2``); other layers are left alone.

    Args:
        model: a built Keras model (modified in place; returns ``None``).

    Example:
        >>> kit = LayerKit(True, "quaternion", 1.0, {"block": 0.0, "residual": 0.0, "head": 0.0})
        >>> x = keras.Input((8, 8, 8))
        >>> y = resnet_basic_block(x, kit, 8, "resnet_layer1_block1", stride2=False, project=False)
        >>> model = keras.Model(x, y)
        >>> zero_residual_gammas(model)
        >>> gamma = model.get_layer("resnet_layer1_block1_bn2").gamma
        >>> keras.ops.convert_to_numpy(gamma).tolist()
        [0.0, 0.0]
        >>> keras.ops.convert_to_numpy(model.get_layer("resnet_layer1_block1_bn1").gamma).tolist()
        [1.0, 1.0]
    """
    for layer in model.layers:
        if isinstance(layer, QBatchNormalization) and RESIDUAL_BN.match(layer.name):
            if layer.gamma is not None:
                layer.gamma.assign(keras.ops.zeros_like(layer.gamma))


def _maybe(layer, x):
    return x if layer is None else layer(x)


def mel_batch_norm(x):
    """``bn0``: batch normalisation per mel bin, shared by the input's channels.

    PANNs transposes its ``(batch, 1, time, mel)`` log-mel so that ``BatchNorm2d(mel_bins)``
    normalises each mel bin over batch and time. Here the features are
    ``(batch, frames, mels, C)``; a ``BatchNormalization(axis=2)`` keeps one mean/variance and
    one gamma/beta per mel bin, reduced over batch, frames and the ``C`` channels (the four
    quaternion components share them). Parameters: ``4 * mels`` (``2 * mels`` trainable), as
    PANNs' ``bn0``.

    Args:
        x: features ``(batch, frames, mels, C)`` (a Keras tensor).

    Returns:
        The normalised tensor, same shape; the layer is named ``bn0``.

    Example:
        >>> x = keras.Input((10, 16, 4))
        >>> model = keras.Model(x, mel_batch_norm(x))
        >>> model.output_shape, model.get_layer("bn0").count_params()
        ((None, 10, 16, 4), 64)
    """
    layer = keras.layers.BatchNormalization(
        axis=2, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn0"
    )
    return layer(x)


def conv_block(x, kit, channels, name, *, kernel_size=3, convs=2, pool=True):
    """PANNs' ``ConvBlock`` (``convs=2``, 3x3) or ``ConvBlock5x5`` (``convs=1``, 5x5).

    ``conv -> bn -> relu`` ``convs`` times, then a 2x2 average pooling (PANNs'
    ``pool_size=(2, 2), pool_type='avg'``; ``pool=False`` is its ``(1, 1)`` identity pooling).
    Layers: ``{name}_conv1``, ``{name}_bn1``, ``{name}_relu1``, (``{name}_conv2``,
    ``{name}_bn2``, ``{name}_relu2``), ``{name}_pool``.

    Args:
        x: input ``(batch, frames, mels, C)`` (a Keras tensor).
        kit: the :class:`LayerKit` making the convolutions and norms.
        channels: real output channels (a multiple of 4 for a quaternion kit).
        name: prefix of the layer names.
        kernel_size: convolution kernel size.
        convs: number of ``conv -> bn -> relu`` stages.
        pool: end with the 2x2 average pooling.

    Returns:
        ``(batch, frames // 2, mels // 2, channels)``, or ``(batch, frames, mels, channels)``
        with ``pool=False``.

    Example:
        >>> kit = LayerKit(False, "real", 1.0, {"block": 0.0, "residual": 0.0, "head": 0.0})
        >>> x = keras.Input((16, 8, 1))
        >>> model = keras.Model(x, conv_block(x, kit, 4, "conv_block1"))
        >>> model.output_shape
        (None, 8, 4, 4)
        >>> [layer.name for layer in model.layers[1:]]
        ['conv_block1_conv1', 'conv_block1_bn1', 'conv_block1_relu1',
         'conv_block1_conv2', 'conv_block1_bn2', 'conv_block1_relu2', 'conv_block1_pool']
    """
    for n in range(1, convs + 1):
        x = kit.conv(channels, kernel_size, f"{name}_conv{n}")(x)
        x = kit.norm(f"{name}_bn{n}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{n}")(x)
    if pool:
        x = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    return x


def resnet_basic_block(x, kit, channels, name, *, stride2, project):
    """PANNs' ``_ResnetBasicBlock`` (its stride 2 is an average pooling first, as PANNs does).

    ``stride2=True`` (first block of stages 2-4): ``{name}_pool`` (2x2 average) feeds both the
    residual branch and the shortcut (PANNs pools ``x`` once per path; the results are
    identical, so the pooled tensor is shared). ``project=True``: the shortcut is
    ``{name}_downsample_conv`` (1x1) + ``{name}_downsample_bn`` (PANNs' ``downsample``, used
    whenever the block pools or changes the channel count). Branch: ``{name}_conv1`` (3x3),
    ``{name}_bn1``, ``{name}_relu1``, ``{name}_dropout`` (the kit's ``"residual"`` rate,
    PANNs' 0.1; omitted when 0), ``{name}_conv2``, ``{name}_bn2`` (scale starts at 0: real
    ``BatchNormalization`` via its initializer, ``QBatchNormalization`` via
    :func:`zero_residual_gammas`), then ``{name}_add`` and ``{name}_relu2``.

    Args:
        x: input ``(batch, frames, mels, C)`` (a Keras tensor).
        kit: the :class:`LayerKit` making the convolutions and norms.
        channels: real output channels; without ``project`` they must equal ``C``.
        name: prefix of the layer names.
        stride2: start with a 2x2 average pooling (halves frames and mels).
        project: use a 1x1 convolution + norm on the shortcut.

    Returns:
        ``(batch, frames', mels', channels)``.

    Example:
        >>> kit = LayerKit(False, "real", 1.0, {"block": 0.0, "residual": 0.1, "head": 0.0})
        >>> x = keras.Input((8, 8, 8))
        >>> y = resnet_basic_block(x, kit, 16, "blk", stride2=True, project=True)
        >>> model = keras.Model(x, y)
        >>> model.output_shape
        (None, 4, 4, 16)
        >>> sorted(layer.name for layer in model.layers if "downsample" in layer.name)
        ['blk_downsample_bn', 'blk_downsample_conv']
        >>> float(keras.ops.max(model.get_layer("blk_bn2").gamma))  # starts as the identity
        0.0
    """
    if stride2:
        x = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    identity = x
    if project:
        identity = kit.conv(channels, 1, f"{name}_downsample_conv")(x)
        identity = kit.norm(f"{name}_downsample_bn")(identity)
    out = kit.conv(channels, 3, f"{name}_conv1")(x)
    out = kit.norm(f"{name}_bn1")(out)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    out = _maybe(kit.dropout_layer("residual", f"{name}_dropout"), out)
    out = kit.conv(channels, 3, f"{name}_conv2")(out)
    out = kit.norm(f"{name}_bn2", zero_gamma=True)(out)
    out = keras.layers.Add(name=f"{name}_add")([out, identity])
    return keras.layers.ReLU(name=f"{name}_relu2")(out)


def panns_head(x, kit, *, mels_left, hidden, classes, multi_label):
    """Frequency mean, time max + mean, dropout, ``fc1`` (ReLU) and ``fc_audioset``.

    ``freq_mean`` (average pooling over the remaining ``mels_left`` bins) and ``freq_squeeze``
    give ``(batch, frames', C)``; ``time_max`` + ``time_mean`` summed by ``time_pool`` give
    ``(batch, C)``; ``head_dropout`` (the kit's ``"head"`` rate, PANNs' 0.5; omitted when 0),
    ``fc1`` and ``fc_audioset`` (sigmoid for multi-label, else softmax). As in PANNs,
    ``fc_audioset`` reads ``fc1``'s output directly: PANNs' second 0.5 dropout only makes its
    ``embedding`` output, which is not the classifier's input.

    Args:
        x: input ``(batch, frames', mels_left, C)`` (a Keras tensor with a known ``C``).
        kit: the :class:`LayerKit` making ``fc1``.
        mels_left: mel bins left after the poolings (the frequency pooling size).
        hidden: real units of ``fc1`` (a multiple of 4 for a quaternion kit).
        classes: number of output classes.
        multi_label: sigmoid outputs; else softmax.

    Returns:
        Class probabilities ``(batch, classes)``.

    Example:
        >>> kit = LayerKit(False, "real", 1.0, {"block": 0.2, "residual": 0.1, "head": 0.5})
        >>> x = keras.Input((5, 2, 8))
        >>> y = panns_head(x, kit, mels_left=2, hidden=16, classes=3, multi_label=True)
        >>> model = keras.Model(x, y)
        >>> model.output_shape, model.get_layer("fc_audioset").activation.__name__
        ((None, 3), 'sigmoid')
        >>> model.get_layer("head_dropout").rate, model.get_layer("fc1").units
        (0.5, 16)
    """
    channels = x.shape[-1]
    x = keras.layers.AveragePooling2D((1, mels_left), name="freq_mean")(x)
    x = keras.layers.Reshape((-1, channels), name="freq_squeeze")(x)
    x_max = keras.layers.GlobalMaxPooling1D(name="time_max")(x)
    x_mean = keras.layers.GlobalAveragePooling1D(name="time_mean")(x)
    x = keras.layers.Add(name="time_pool")([x_max, x_mean])
    x = _maybe(kit.dropout_layer("head", "head_dropout"), x)
    x = kit.hidden_dense(hidden, "fc1")(x)
    activation = "sigmoid" if multi_label else "softmax"
    return keras.layers.Dense(classes, activation=activation, name="fc_audioset")(x)
