"""Training: cached feature pipeline, metrics, resumable training loop, ``kq-train``/``kq-eval``."""

from keras_quaternion._startup import COMMAND as _COMMAND
from keras_quaternion._startup import lazy_attributes as _lazy_attributes

if _COMMAND:  # a kq-* command: load on first use (--help must not import TensorFlow)
    __getattr__ = _lazy_attributes(
        __name__,
        {
            "keras_quaternion.training.loop": (
                "STRATEGIES",
                "evaluate",
                "is_chief",
                "load_model",
                "make_strategy",
                "predict",
                "train",
            ),
            "keras_quaternion.training.metrics": (
                "accuracy",
                "average_precision",
                "confusion_matrix",
                "cross_entropy",
                "mean_average_precision",
                "score",
                "score_name",
            ),
            "keras_quaternion.training.pipeline": (
                "DATASET_DEFAULTS",
                "PreparedData",
                "dataset_defaults",
                "default_cache_dir",
                "feature_config_for",
                "prepare",
            ),
        },
    )
else:
    from keras_quaternion.training.loop import (
        STRATEGIES,
        evaluate,
        is_chief,
        load_model,
        make_strategy,
        predict,
        train,
    )
    from keras_quaternion.training.metrics import (
        accuracy,
        average_precision,
        confusion_matrix,
        cross_entropy,
        mean_average_precision,
        score,
        score_name,
    )
    from keras_quaternion.training.pipeline import (
        DATASET_DEFAULTS,
        PreparedData,
        dataset_defaults,
        default_cache_dir,
        feature_config_for,
        prepare,
    )

__all__ = [
    "DATASET_DEFAULTS",
    "STRATEGIES",
    "PreparedData",
    "accuracy",
    "average_precision",
    "confusion_matrix",
    "cross_entropy",
    "dataset_defaults",
    "default_cache_dir",
    "evaluate",
    "is_chief",
    "load_model",
    "make_strategy",
    "predict",
    "train",
    "feature_config_for",
    "mean_average_precision",
    "prepare",
    "score",
    "score_name",
]
