"""Multi-worker epochs: ``train_step`` under ``strategy.run`` in a small loop.

Keras 3's ``fit`` cannot reduce its scalar logs under ``MultiWorkerMirroredStrategy``
(tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input with 0 dimensions"), so
:func:`~keras_quaternion.training.train` runs multi-worker epochs with :func:`run_epoch`; every
other step of a run is shared with the other strategies.
"""

from __future__ import annotations

from keras_quaternion.training.pipeline import PreparedData

__all__ = ["build_before_fit", "run_epoch"]


def build_before_fit(trainer, strategy, prepared: PreparedData, channels: int, one_hot: bool):
    """Build the trainer's compiled loss and metric state from a local batch.

    ``fit`` does this itself; the multi-worker loop (:func:`run_epoch`) does not call ``fit``.
    """
    x, y = next(iter(prepared.tf_dataset("train", 2, channels=channels, one_hot=one_hot)))
    with strategy.scope():
        trainer._symbolic_build(data_batch=(x, y))


def run_epoch(
    trainer, strategy, dataset, steps: int, cache: dict, progress: bool, callbacks=None
) -> dict:
    """One epoch of ``trainer.train_step`` under ``strategy.run`` (multi-worker training).

    The metrics are sync-on-read variables: reading them afterwards sums them over all workers.
    ``callbacks`` (a ``keras.callbacks.CallbackList``) get their batch hooks, without logs.

    Returns:
        The epoch's training logs (``{"loss", "accuracy", ...}``).
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    if "step" not in cache:

        @tf.function
        def step(iterator):
            strategy.run(trainer.train_step, args=(next(iterator),))

        cache["step"] = step
    trainer.reset_metrics()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    for batch in tqdm(range(steps), desc="train", unit="step", disable=not progress, leave=False):
        if callbacks is not None:
            callbacks.on_train_batch_begin(batch)
        cache["step"](iterator)
        if callbacks is not None:
            callbacks.on_train_batch_end(batch)
    return {k: float(v) for k, v in trainer.get_metrics_result().items()}
