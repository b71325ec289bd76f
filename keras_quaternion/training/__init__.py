"""Training: cached feature pipeline, metrics, resumable training loop, ``kq-train``/``kq-eval``."""

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
