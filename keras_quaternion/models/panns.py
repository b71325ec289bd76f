"""PANNs' CNN and ResNet architectures as functional Keras graphs (real or quaternion).

Architectures follow qiuqiangkong/audioset_tagging_cnn (``pytorch/models.py``: ``Cnn6``,
``Cnn10``, ``Cnn14``, ``ResNet22``, ``ResNet38``), starting after its log-mel front end: the
model input is the feature tensor ``(batch, frames, mels, C)``. SpecAugment and mixup are
training-time augmentations, not layers here.
"""

from __future__ import annotations

import keras

from keras_quaternion.models.blocks import (
    conv_block,
    mel_batch_norm,
    panns_head,
    resnet_basic_block,
)

#: Base (width 1) channels of the conv blocks of each CNN, and of ``fc1``.
CNN_CHANNELS = {
    "cnn6": (64, 128, 256, 512),
    "cnn10": (64, 128, 256, 512),
    "cnn14": (64, 128, 256, 512, 1024, 2048),
}
CNN_FC = {"cnn6": 512, "cnn10": 512, "cnn14": 2048}

#: Basic blocks per ResNet stage (stages of 64, 128, 256, 512 channels).
RESNET_STAGES = {"resnet22": (2, 2, 2, 2), "resnet38": (3, 4, 6, 3)}
RESNET_STAGE_CHANNELS = (64, 128, 256, 512)
RESNET_FIRST = 64
RESNET_AFTER = 2048
RESNET_FC = 2048


def poolings(family):
    """How many 2x2 average poolings a family applies (each halves frames and mel bins).

    Args:
        family: ``"cnn6"``, ``"cnn10"``, ``"cnn14"``, ``"resnet22"`` or ``"resnet38"``.

    Returns:
        The number of poolings; inputs need at least ``2**poolings`` frames and mel bins.

    Raises:
        KeyError: unknown family.

    Example:
        >>> poolings("cnn6"), poolings("cnn14"), poolings("resnet38")
        (4, 5, 5)
        >>> poolings("vgg")
        Traceback (most recent call last):
        ...
        KeyError: "Unknown PANNs family 'vgg'; known: cnn6, cnn10, cnn14, resnet22, resnet38."
    """
    if family in CNN_CHANNELS:
        # cnn14's last block pools with (1, 1); cnn6/cnn10 pool after all four blocks
        return 5 if family == "cnn14" else 4
    if family in RESNET_STAGES:
        return 5  # conv_block1, stages 2-4, and the pooling after the ResNet body
    raise KeyError(
        f"Unknown PANNs family {family!r}; known: {', '.join([*CNN_CHANNELS, *RESNET_STAGES])}."
    )


def _dropout(kit, x, name):
    layer = kit.dropout_layer("block", name)
    return x if layer is None else layer(x)


def build_cnn(family, kit, inputs, *, n_mels, classes, multi_label):
    """``cnn6``/``cnn10``/``cnn14``: ``bn0``, conv blocks each followed by dropout, the head.

    Args:
        family: ``"cnn6"``, ``"cnn10"`` or ``"cnn14"``.
        kit: the :class:`~keras_quaternion.models.blocks.LayerKit` (real or quaternion, width,
            norms, dropout rates).
        inputs: features ``(batch, frames, n_mels, C)`` (a Keras tensor).
        n_mels: mel bins of ``inputs`` (at least ``2**poolings(family)``).
        classes: number of output classes.
        multi_label: sigmoid outputs; else softmax.

    Returns:
        Class probabilities ``(batch, classes)`` (a Keras tensor).

    Raises:
        KeyError: ``family`` is not a CNN family.

    Example:
        >>> from keras_quaternion.models.blocks import LayerKit
        >>> kit = LayerKit(False, "real", 0.0625, {"block": 0.2, "residual": 0.1, "head": 0.5})
        >>> x = keras.Input((32, 16, 1))
        >>> y = build_cnn("cnn6", kit, x, n_mels=16, classes=5, multi_label=False)
        >>> model = keras.Model(x, y)
        >>> model.output_shape, model.get_layer("conv_block4_conv1").filters
        ((None, 5), 32)
    """
    x = mel_batch_norm(inputs)
    channels = CNN_CHANNELS[family]
    single = family == "cnn6"  # ConvBlock5x5: one 5x5 conv per block
    mels = n_mels
    for n, base in enumerate(channels, start=1):
        pool = not (family == "cnn14" and n == len(channels))
        name = f"conv_block{n}"
        x = conv_block(
            x,
            kit,
            kit.channels(base),
            name,
            kernel_size=5 if single else 3,
            convs=1 if single else 2,
            pool=pool,
        )
        mels = mels // 2 if pool else mels
        x = _dropout(kit, x, f"{name}_dropout")
    return panns_head(
        x,
        kit,
        mels_left=mels,
        hidden=kit.channels(CNN_FC[family]),
        classes=classes,
        multi_label=multi_label,
    )


def build_resnet(family, kit, inputs, *, n_mels, classes, multi_label):
    """``resnet22``/``resnet38``: ``bn0``, ``conv_block1``, four stages of basic blocks
    (``resnet_layer{L}_block{B}_*``), ``resnet_pool``, ``conv_block_after1``, the head.

    Args:
        family: ``"resnet22"`` or ``"resnet38"``.
        kit: the :class:`~keras_quaternion.models.blocks.LayerKit` (real or quaternion, width,
            norms, dropout rates).
        inputs: features ``(batch, frames, n_mels, C)`` (a Keras tensor).
        n_mels: mel bins of ``inputs`` (at least ``2**poolings(family)`` = 32).
        classes: number of output classes.
        multi_label: sigmoid outputs; else softmax.

    Returns:
        Class probabilities ``(batch, classes)`` (a Keras tensor).

    Raises:
        KeyError: ``family`` is not a ResNet family.

    Example:
        >>> from keras_quaternion.models.blocks import LayerKit
        >>> kit = LayerKit(False, "real", 0.0625, {"block": 0.2, "residual": 0.1, "head": 0.5})
        >>> x = keras.Input((32, 32, 1))
        >>> y = build_resnet("resnet22", kit, x, n_mels=32, classes=5, multi_label=False)
        >>> model = keras.Model(x, y)
        >>> model.output_shape, len([la for la in model.layers if la.name.endswith("_add")])
        ((None, 5), 8)
    """
    x = mel_batch_norm(inputs)
    x = conv_block(x, kit, kit.channels(RESNET_FIRST), "conv_block1")
    x = _dropout(kit, x, "conv_block1_dropout")
    mels = n_mels // 2
    in_channels = kit.channels(RESNET_FIRST)
    for stage, (blocks, base) in enumerate(
        zip(RESNET_STAGES[family], RESNET_STAGE_CHANNELS), start=1
    ):
        channels = kit.channels(base)
        for block in range(1, blocks + 1):
            stride2 = stage > 1 and block == 1
            x = resnet_basic_block(
                x,
                kit,
                channels,
                f"resnet_layer{stage}_block{block}",
                stride2=stride2,
                project=stride2 or in_channels != channels,
            )
            if stride2:
                mels //= 2
            in_channels = channels
    x = keras.layers.AveragePooling2D(2, name="resnet_pool")(x)
    mels //= 2
    x = _dropout(kit, x, "resnet_dropout")
    x = conv_block(x, kit, kit.channels(RESNET_AFTER), "conv_block_after1", pool=False)
    x = _dropout(kit, x, "conv_block_after1_dropout")
    return panns_head(
        x,
        kit,
        mels_left=mels,
        hidden=kit.channels(RESNET_FC),
        classes=classes,
        multi_label=multi_label,
    )
