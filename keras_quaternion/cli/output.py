"""What the commands print: kq-train's summary line, a run's test score, JSON without NaN."""

from __future__ import annotations

import math

__all__ = ["finite", "summary_line", "score_text"]


def summary_line(result: dict, out_dir) -> str:
    """kq-train's last line: the test score, the model, the data, the epochs and the folder.

    Example:
        >>> print(summary_line({"test": {"accuracy": 0.95}, "model": "qcnn6", "params": 73722,
        ...     "macs": 71.0e6, "dataset": "fsdd", "epochs": 12, "seconds": 95.2,
        ...     "stopped_early": True}, "runs/fsdd-qcnn6"))
        Test accuracy 0.9500 | qcnn6 (73,722 params, 71.0 M MACs/clip) | fsdd | 12 epochs (early stop), 95 s training | out: runs/fsdd-qcnn6
    """  # noqa: E501
    test = result.get("test", {})
    name = "mAP" if "mAP" in test else "accuracy"
    value = test.get(name)
    shown = "n/a (empty test split)" if value is None else f"{value:.4f}"
    macs = result.get("macs")
    macs_text = "" if macs is None else f", {macs / 1e6:.1f} M MACs/clip"
    stop = " (early stop)" if result.get("stopped_early") else ""
    return (
        f"Test {name} {shown} | {result['model']} ({result['params']:,} params{macs_text}) | "
        f"{result['dataset']} | {result['epochs']} epochs{stop}, {result['seconds']:.0f} s "
        f"training | out: {out_dir}"
    )


def score_text(metrics: dict | None) -> tuple[str, str]:
    """``(name, value)`` of a run's test score (``metrics.json``): mAP or accuracy, 4 decimals.

    Example:
        >>> score_text({"test": {"mAP": 0.41234}}), score_text(None)
        (('mAP', '0.4123'), ('accuracy', 'n/a'))
    """
    test = (metrics or {}).get("test", {})
    name = "mAP" if "mAP" in test else "accuracy"
    value = test.get(name)
    return name, ("n/a" if value is None else f"{value:.4f}")


def finite(value):
    """``value``, or ``None`` for a float that is not finite (JSON has no NaN).

    Example:
        >>> finite(float("nan")), finite(0.5)
        (None, 0.5)
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
