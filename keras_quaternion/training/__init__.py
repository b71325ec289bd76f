"""Training: cached feature pipeline, metrics, resumable training loop, the commands' data.

One concept per module:

* :mod:`.pipeline`: ``prepare()`` and the cached features (``PreparedData``);
* :mod:`.recipe`: how to train (``Recipe``: epochs, batch, learning rate, schedule, early
  stopping, augmentation) and the default recipe;
* :mod:`.schedules`: learning-rate schedules (warm-up, cosine, constant, plateau);
* :mod:`.loop`: ``train()``, its steps (prepare, resume, the epochs, the best model, outputs);
* :mod:`.callbacks`: the run's state and the callbacks acting after every epoch;
* :mod:`.checkpoint`: the resumable per-epoch checkpoint;
* :mod:`.records`: the settings and results (``metrics.json``) of a run;
* :mod:`.model_io`: loading, building, checking and counting models;
* :mod:`.evaluation`: ``predict()`` and ``evaluate()``;
* :mod:`.strategy`: ``tf.distribute`` strategies by name; :mod:`.multiworker`: its epoch loop;
* :mod:`.metrics`, :mod:`.plots`: scores and figures;
* :mod:`.dataset_options`: the dataset options of the ``kq-*`` commands as one object
  (``DatasetOptions``) and preparing the data they name (the commands: :mod:`keras_quaternion.cli`).
"""

from keras_quaternion._startup import COMMAND as _COMMAND
from keras_quaternion._startup import lazy_attributes as _lazy_attributes

if _COMMAND:  # a kq-* command: load on first use (--help must not import TensorFlow)
    __getattr__ = _lazy_attributes(
        __name__,
        {
            "keras_quaternion.training.dataset_options": ("DatasetOptions",),
            "keras_quaternion.training.evaluation": ("evaluate", "predict"),
            "keras_quaternion.training.loop": ("train",),
            "keras_quaternion.training.metrics": (
                "accuracy",
                "average_precision",
                "confusion_matrix",
                "cross_entropy",
                "mean_average_precision",
                "score",
                "score_name",
            ),
            "keras_quaternion.training.model_io": ("load_model",),
            "keras_quaternion.training.pipeline": (
                "DATASET_DEFAULTS",
                "PreparedData",
                "dataset_defaults",
                "default_cache_dir",
                "feature_config_for",
                "prepare",
            ),
            "keras_quaternion.training.recipe": ("Recipe", "SCHEDULES"),
            "keras_quaternion.training.strategy": ("STRATEGIES", "is_chief", "make_strategy"),
        },
    )
else:
    from keras_quaternion.training.dataset_options import DatasetOptions
    from keras_quaternion.training.evaluation import evaluate, predict
    from keras_quaternion.training.loop import train
    from keras_quaternion.training.metrics import (
        accuracy,
        average_precision,
        confusion_matrix,
        cross_entropy,
        mean_average_precision,
        score,
        score_name,
    )
    from keras_quaternion.training.model_io import load_model
    from keras_quaternion.training.pipeline import (
        DATASET_DEFAULTS,
        PreparedData,
        dataset_defaults,
        default_cache_dir,
        feature_config_for,
        prepare,
    )
    from keras_quaternion.training.recipe import SCHEDULES, Recipe
    from keras_quaternion.training.strategy import STRATEGIES, is_chief, make_strategy

__all__ = [
    "DATASET_DEFAULTS",
    "SCHEDULES",
    "DatasetOptions",
    "STRATEGIES",
    "PreparedData",
    "Recipe",
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
