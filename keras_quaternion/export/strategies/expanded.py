"""Strategy ``expanded``: each quaternion layer as the real layer its Hamilton product computes.

The converter stores the assembled real kernel (16 real weights per quaternion weight's 4), so
the flatbuffer is as large as a real CNN's of the same width and runs on every TFLite runtime
with builtin operators only. This is what export did before strategies existed.

Example:
    >>> ExpandedStrategy().name, ExpandedStrategy().custom_ops
    ('expanded', ())
"""

from __future__ import annotations

from keras_quaternion.export.strategies.base import ExportStrategy


class ExpandedStrategy(ExportStrategy):
    """Quaternion layers as real CONV_2D / FULLY_CONNECTED operators (builtins only).

    Example:
        >>> ExpandedStrategy().int8_only
        False
    """

    name = "expanded"
    summary = "quaternion layers as the real layers they compute (builtin operators only)"
