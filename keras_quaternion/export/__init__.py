"""Deployment: int8 TFLite export, verified on TFLite Micro, with microcontroller artifacts.

* :func:`to_tflite` — Keras model -> float32 or full-integer int8 flatbuffer, with quaternion
  layers made real and batch norm folded first (:func:`deploy_model`), and a check that every
  operator runs on TFLite Micro.
* :func:`verify_tflite` — the same inputs through LiteRT and TFLite Micro; outputs must agree.
* :func:`evaluate_tflite` — score a .tflite file on a prepared split with the training metrics.
* :func:`measure_arena`, :func:`write_micro_artifacts` — measured tensor arena, ``model_data.h``
  / ``model_data.cc`` / ``model_ops.h``.
* :func:`export_model` — all of the above plus ``export_report.json`` (what ``kq-export`` runs).
* :func:`c_sources` — the folder of the shipped C sources (front end, keyword-spotting app,
  quaternion kernel); :mod:`keras_quaternion.export.bundle` writes the labels, front-end header
  and app folder of ``kq-export --micro [--app DIR]``.

Example:
    >>> import numpy as np, keras
    >>> from keras_quaternion import QConv2D
    >>> x = keras.Input((16, 8, 4))
    >>> y = keras.layers.GlobalAveragePooling2D()(QConv2D(2, 3, activation="relu")(x))
    >>> model = keras.Model(x, keras.layers.Dense(3)(y))
    >>> calib = np.random.default_rng(0).normal(size=(16, 16, 8, 4)).astype("float32")
    >>> flatbuffer = to_tflite(model, representative_data=calib)
    >>> verify_tflite(flatbuffer, calib[:8]).top1_agreement
    1.0
"""

from keras_quaternion._startup import COMMAND as _COMMAND
from keras_quaternion._startup import lazy_attributes as _lazy_attributes

if _COMMAND:  # a kq-* command: load on first use (--help must not import TensorFlow)
    __getattr__ = _lazy_attributes(
        __name__,
        {
            "keras_quaternion.export.bundle": ("c_sources",),
            "keras_quaternion.export.fold": ("deploy_model", "fold_plan"),
            "keras_quaternion.export.micro": (
                "ArenaMeasurement",
                "MicroArtifacts",
                "measure_arena",
                "write_micro_artifacts",
            ),
            "keras_quaternion.export.pipeline": ("export_model",),
            "keras_quaternion.export.tflite": (
                "ExportError",
                "check_tflite",
                "inspect_tflite",
                "to_tflite",
            ),
            "keras_quaternion.export.tflm_ops": ("TFLM_BUILTIN_OPS",),
            "keras_quaternion.export.verify": (
                "VerificationError",
                "VerificationResult",
                "evaluate_tflite",
                "litert_latency",
                "predict_tflite",
                "run_litert",
                "run_tflm",
                "verify_tflite",
            ),
        },
    )
else:
    from keras_quaternion.export.bundle import c_sources
    from keras_quaternion.export.fold import deploy_model, fold_plan
    from keras_quaternion.export.micro import (
        ArenaMeasurement,
        MicroArtifacts,
        measure_arena,
        write_micro_artifacts,
    )
    from keras_quaternion.export.pipeline import export_model
    from keras_quaternion.export.tflite import (
        ExportError,
        check_tflite,
        inspect_tflite,
        to_tflite,
    )
    from keras_quaternion.export.tflm_ops import TFLM_BUILTIN_OPS
    from keras_quaternion.export.verify import (
        VerificationError,
        VerificationResult,
        evaluate_tflite,
        litert_latency,
        predict_tflite,
        run_litert,
        run_tflm,
        verify_tflite,
    )

__all__ = [
    "TFLM_BUILTIN_OPS",
    "ArenaMeasurement",
    "ExportError",
    "MicroArtifacts",
    "VerificationError",
    "VerificationResult",
    "c_sources",
    "check_tflite",
    "deploy_model",
    "evaluate_tflite",
    "export_model",
    "fold_plan",
    "inspect_tflite",
    "litert_latency",
    "measure_arena",
    "predict_tflite",
    "run_litert",
    "run_tflm",
    "to_tflite",
    "verify_tflite",
    "write_micro_artifacts",
]
