"""What an export strategy is: how quaternion layers reach the flatbuffer.

A strategy may change the Keras graph before conversion (:meth:`ExportStrategy.deploy`), the
flatbuffer after it (:meth:`ExportStrategy.rewrite`), and how the result is verified
(:meth:`ExportStrategy.verify`). :func:`keras_quaternion.export.to_tflite` runs the three steps
for the strategy named by ``quaternion=``; each strategy lives in its own module.

Example:
    >>> ExportStrategy().custom_ops
    ()
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A converted model and how it was made.

    Attributes:
        flatbuffer: the flatbuffer to deploy (``bytes``).
        strategy: the strategy asked for.
        strategy_used: the strategy the flatbuffer follows (``"expanded"`` when the asked one
            had nothing to do, e.g. ``compact`` on a model without quaternion layers).
        expanded_flatbuffer: the converter's own output, when a rewrite changed it.
        layers: per rewritten layer, what the strategy did (strategy-specific records).

    Example:
        >>> Conversion(b"...", "compact", "expanded").expanded_flatbuffer is None
        True
    """

    flatbuffer: bytes
    strategy: str
    strategy_used: str
    expanded_flatbuffer: bytes | None = None
    layers: tuple = ()


class ExportStrategy:
    """Base strategy: the Keras graph as :func:`~keras_quaternion.export.deploy_model` makes it.

    Attributes:
        name: the value of ``quaternion=`` / ``--quaternion``.
        summary: one line for help texts and reports.
        int8_only: the strategy exists only for full-integer models.
        custom_ops: the custom operators its flatbuffers may hold.

    Example:
        >>> ExportStrategy().int8_only
        False
    """

    name = "base"
    summary = ""
    int8_only = False
    custom_ops: tuple = ()

    def deploy(self, model, *, batch_size, input_shape):
        """The inference graph to convert (quaternion layers real, batch norm folded)."""
        from keras_quaternion.export.fold import deploy_model

        return deploy_model(model, batch_size=batch_size, input_shape=input_shape)

    def rewrite(self, conversion, model, export_model):
        """Change the converted flatbuffer; returns a :class:`Conversion`."""
        return conversion

    def measure_arena(self, conversion, *, margin):
        """The tensor arena TFLite Micro needs for the flatbuffer (``ArenaMeasurement``)."""
        from keras_quaternion.export.micro import measure_arena

        return measure_arena(conversion.flatbuffer, margin=margin)

    def verify(self, conversion, inputs, *, strict=False, arena_size=None):
        """Run the flatbuffer on LiteRT and TFLite Micro; returns a ``VerificationResult``."""
        from keras_quaternion.export.verify import verify_tflite

        return verify_tflite(conversion.flatbuffer, inputs, strict=strict, arena_size=arena_size)
