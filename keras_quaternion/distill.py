"""Knowledge distillation: train a (small) student on a task while matching a frozen teacher.

:class:`Distiller` wraps a student and a teacher into one ``keras.Model`` whose custom
``train_step`` (TensorFlow backend) runs the frozen teacher (``training=False``) and the student
(``training=True``) on the same batch and minimises

* single-label (softmax) models::

      loss = alpha * task_loss + (1 - alpha) * T**2 * KL(softmax(z_t / T) || softmax(z_s / T))

* multi-label (sigmoid) models, e.g. AudioSet::

      loss = alpha * task_loss + (1 - alpha) * T**2 * BCE(sigmoid(z_t / T), sigmoid(z_s / T))

where ``z_t`` and ``z_s`` are the teacher's and the student's logits, ``T`` the temperature, the
KL divergence is summed over classes and the binary cross-entropy averaged over classes, and
both are averaged over the batch. ``T**2`` keeps the gradient scale of the soft term independent
of ``T`` (Hinton et al., 2015).

Models of this package end in a softmax or sigmoid, i.e. they output *probabilities*. The
distiller recovers logits from them (``outputs="auto"`` detects this from the output layer):

* softmax: ``log(p)`` equals the logits minus their log-sum-exp, a per-sample constant that the
  tempered softmax ignores, so the soft targets are exact. ``p`` is clipped at ``1e-30`` first,
  which only matters for a class whose logit sits more than about 69 below the best one.
* sigmoid: ``logit(p) = log(p) - log(1 - p)`` with ``p`` clipped to ``[1e-7, 1 - 1e-7]`` (float32
  rounds ``sigmoid(z)`` to 1 for ``z`` above about 17), so logits saturate at about +-16.1.

Pass ``outputs="logits"`` for models without a final activation. The task loss (``compile(loss=
...)``, by default cross-entropy chosen from the label shape) is applied to the model outputs as
they are, and ``test_step`` scores the student alone. Saving a :class:`Distiller` saves the
student alone, so a ``ModelCheckpoint`` keeps a deployable student.

Teacher and student may take different inputs computed from the same audio: the batches hold
the student's input, and ``teacher_input`` maps it to the teacher's. The default, ``"auto"``,
passes it unchanged when both models take the same shape, and gives a real (1-channel) teacher
the log-mel channel of a quaternion (4-channel: log-mel, Δ, Δ², Δ³) student's features
(:func:`log_mel_channel`), e.g. a converted PANNs CNN14 teacher for a ``qcnn6`` student: the
log-mel channel of the quaternion features is the teacher's input when both use the same
``FeatureConfig``. Any other mapping is a function passed as ``teacher_input``.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

__all__ = ["Distiller", "distillation_loss", "log_mel_channel", "model_output_kind"]

_SOFTMAX_EPS = 1e-30
_SIGMOID_EPS = 1e-7
_OUTPUT_KINDS = ("auto", "probabilities", "logits")


def _activation_name(layer):
    """Name of the final activation a layer applies, or None if it cannot be told."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", None) or type(activation).__name__
    return name.lower()


def model_output_kind(model):
    """Tell whether a model outputs probabilities (softmax or sigmoid) or logits.

    Reads the layer that produces the model's (single) output: a ``softmax`` or ``sigmoid``
    activation (on a ``Dense``/``QDense``/``Conv`` layer, an ``Activation`` layer or a
    ``Softmax`` layer) means probabilities, a ``linear`` activation means logits.

    Args:
        model: a functional or sequential ``keras.Model`` with one output.

    Returns:
        ``(kind, activation)``: ``kind`` is ``"probabilities"`` or ``"logits"``, ``activation``
        is ``"softmax"``, ``"sigmoid"`` or ``"linear"``.

    Raises:
        ValueError: the model has no symbolic output (subclassed), several outputs, or its
            output layer applies an activation other than softmax, sigmoid or linear; pass
            ``outputs=`` to :class:`Distiller` explicitly in that case.

    Example:
        >>> import keras
        >>> inputs = keras.Input((3,))
        >>> model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(inputs))
        >>> model_output_kind(model)
        ('probabilities', 'softmax')
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        raise ValueError(
            f"model_output_kind: model {model.name!r} has no symbolic outputs (a subclassed "
            "model?), so its output activation cannot be read; pass outputs='probabilities' or "
            "outputs='logits' to Distiller explicitly."
        )
    if len(outputs) != 1:
        raise ValueError(
            f"model_output_kind: model {model.name!r} has {len(outputs)} outputs; the "
            "distiller supports single-output classifiers."
        )
    layer = outputs[0]._keras_history.operation
    name = _activation_name(layer)
    if name in ("softmax", "sigmoid"):
        return "probabilities", name
    if name == "linear":
        return "logits", name
    raise ValueError(
        f"model_output_kind: the output layer {layer.name!r} of model {model.name!r} applies "
        f"activation {name!r}; expected softmax, sigmoid or linear. Pass outputs='probabilities'"
        " or outputs='logits' to Distiller explicitly."
    )


def log_mel_channel(x):
    """The log-mel channel (the first) of quaternion features ``[batch, frames, mels, 4]``.

    A real model's input computed from the same audio with the same ``FeatureConfig``; the
    :class:`Distiller`'s ``teacher_input`` for a real teacher and a quaternion student.

    Example:
        >>> import numpy as np
        >>> tuple(log_mel_channel(np.zeros((2, 10, 8, 4))).shape)
        (2, 10, 8, 1)
    """
    return x[..., :1]


def _input_shape(model):
    inputs = getattr(model, "inputs", None)
    return tuple(inputs[0].shape) if inputs and len(inputs) == 1 else None


def _teacher_input(teacher_input, student, teacher):
    """The function mapping the student's input batch to the teacher's (see Distiller)."""
    if callable(teacher_input):
        return teacher_input
    if teacher_input != "auto":
        raise ValueError(
            f"Distiller: teacher_input={teacher_input!r}; expected 'auto' or a function mapping "
            "the student's input batch to the teacher's (e.g. log_mel_channel)."
        )
    s_shape, t_shape = _input_shape(student), _input_shape(teacher)
    if (
        s_shape is not None
        and t_shape is not None
        and len(s_shape) == len(t_shape) == 4
        and (s_shape[-1], t_shape[-1]) == (4, 1)
    ):
        return log_mel_channel
    return None  # the same input: the shapes are checked by _check_shapes


def _to_logits(y, kind, multi_label):
    """Logits (up to a per-sample constant for softmax) from model outputs."""
    y = ops.cast(y, "float32")
    if kind == "logits":
        return y
    if multi_label:
        p = ops.clip(y, _SIGMOID_EPS, 1.0 - _SIGMOID_EPS)
        return ops.log(p) - ops.log(1.0 - p)
    return ops.log(ops.maximum(y, _SOFTMAX_EPS))


def _per_sample_distillation(teacher_logits, student_logits, temperature, multi_label):
    """Per-sample soft loss, already multiplied by ``T**2``; shape ``[batch]``."""
    t = teacher_logits / temperature
    s = student_logits / temperature
    if multi_label:
        target = ops.sigmoid(t)
        # binary cross-entropy with soft targets, from logits: -(q log sig(s) + (1-q) log sig(-s))
        bce = -(target * ops.log_sigmoid(s) + (1.0 - target) * ops.log_sigmoid(-s))
        per_sample = ops.mean(bce, axis=-1)
    else:
        log_t = ops.log_softmax(t, axis=-1)
        log_s = ops.log_softmax(s, axis=-1)
        per_sample = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)
    return per_sample * (temperature**2)


def distillation_loss(
    teacher_outputs,
    student_outputs,
    temperature=2.0,
    multi_label=False,
    outputs="logits",
    sample_weight=None,
):
    """The soft (teacher-matching) term of the distillation loss, already scaled by ``T**2``.

    Single-label: ``T**2 * mean_batch KL(softmax(z_t/T) || softmax(z_s/T))``; multi-label:
    ``T**2 * mean_batch mean_classes BCE(sigmoid(z_t/T), sigmoid(z_s/T))``. With sample
    weights the batch mean is ``sum(w * loss) / batch_size`` (Keras' ``sum_over_batch_size``).

    Args:
        teacher_outputs: ``[batch, classes]`` teacher logits or probabilities.
        student_outputs: ``[batch, classes]`` student logits or probabilities.
        temperature: ``T > 0``.
        multi_label: sigmoid/BCE form instead of softmax/KL.
        outputs: ``"logits"`` or ``"probabilities"`` (see the module docstring for how logits
            are recovered from probabilities).
        sample_weight: optional ``[batch]`` weights.

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: temperature not a positive number, ``outputs`` unknown, or the two outputs'
            shapes differ.

    Example:
        >>> import numpy as np
        >>> z = np.array([[2.0, 0.0, -1.0]], "float32")
        >>> float(distillation_loss(z, z, temperature=2.0))  # identical outputs: no KL
        0.0
    """
    _check_temperature(temperature, "distillation_loss")
    if outputs not in ("logits", "probabilities"):
        raise ValueError(
            f"distillation_loss: outputs={outputs!r}; expected 'logits' or 'probabilities'."
        )
    teacher_outputs = ops.convert_to_tensor(teacher_outputs)
    student_outputs = ops.convert_to_tensor(student_outputs)
    if tuple(teacher_outputs.shape[1:]) != tuple(student_outputs.shape[1:]):
        raise ValueError(
            "distillation_loss: teacher outputs have shape "
            f"{tuple(teacher_outputs.shape)} but student outputs {tuple(student_outputs.shape)};"
            " both must be [batch, classes] with the same classes."
        )
    per_sample = _per_sample_distillation(
        ops.stop_gradient(_to_logits(teacher_outputs, outputs, multi_label)),
        _to_logits(student_outputs, outputs, multi_label),
        float(temperature),
        multi_label,
    )
    return _reduce(per_sample, sample_weight)


def _reduce(per_sample, sample_weight):
    if sample_weight is not None:
        weight = ops.reshape(ops.cast(sample_weight, per_sample.dtype), (-1,))
        per_sample = per_sample * weight
    batch = ops.cast(ops.shape(per_sample)[0], per_sample.dtype)
    return ops.divide_no_nan(ops.sum(per_sample), batch)


def _check_temperature(temperature, where="Distiller"):
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"{where}: temperature must be a finite number > 0, got {temperature!r} "
            "(the paper's authors use T=2)."
        )


@keras.saving.register_keras_serializable(package="keras_quaternion")
class AutoCrossentropy(keras.losses.Loss):
    """Cross-entropy that picks its form from the label shape when first traced.

    One-hot (or soft) labels ``[batch, classes]`` use categorical cross-entropy, integer labels
    ``[batch]`` or ``[batch, 1]`` sparse categorical cross-entropy; ``multi_label=True`` always
    uses binary cross-entropy. This is :class:`Distiller`'s default task loss.

    Args:
        from_logits: whether the model outputs logits.
        multi_label: binary cross-entropy (sigmoid outputs, multi-hot labels).
        name: loss name.

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.5, 0.25, 0.25]], "float32")
        >>> loss = AutoCrossentropy()
        >>> round(float(loss(np.array([0]), p)), 4), round(float(loss(np.eye(3)[:1], p)), 4)
        (0.6931, 0.6931)
    """

    def __init__(self, from_logits=False, multi_label=False, name="auto_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)
        self.multi_label = bool(multi_label)

    def call(self, y_true, y_pred):
        if self.multi_label:
            return keras.losses.binary_crossentropy(
                ops.cast(y_true, y_pred.dtype), y_pred, from_logits=self.from_logits
            )
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1] != 1:
            return keras.losses.categorical_crossentropy(
                ops.cast(y_true, y_pred.dtype), y_pred, from_logits=self.from_logits
            )
        return keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, multi_label=self.multi_label)
        return config


def _scale_for_replicas(value):
    """Divide a per-replica mean loss by the replica count (gradients are summed over replicas)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            value = value * (1.0 / replicas)
    return value


def _unscale_for_replicas(value):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            value = value * float(replicas)
    return value


class Distiller(keras.Model):
    """Train ``student`` on the task while matching the frozen ``teacher`` (Hinton KD).

    The training objective is ``alpha * task_loss + (1 - alpha) * T**2 * soft_loss`` (see the
    module docstring for the single- and multi-label forms). ``fit`` logs ``loss`` (that total),
    ``task_loss``, ``distillation_loss`` and the compiled metrics, computed on the student's
    outputs; ``evaluate`` scores the student (``training=False``) the same way. Calling the
    distiller calls the student. ``save`` writes the student alone.

    The teacher is frozen without being modified: the distiller's trainable variables are the
    student's alone (the teacher's count as non-trainable), and the teacher always runs with
    ``training=False``, so its weights and batch-norm statistics never change and its own
    ``trainable`` flags are left as they were (the same model can be pruned or trained
    afterwards). Under a
    ``tf.distribute`` strategy create the student, the teacher and the distiller, and call
    ``compile``, inside ``strategy.scope()``; losses are scaled per replica as Keras does.

    Args:
        student: ``keras.Model`` to train, single output ``[batch, classes]``.
        teacher: trained ``keras.Model`` with the same output shape, and the same input shape
            unless ``teacher_input`` maps the student's input to the teacher's.
        temperature: softening temperature ``T > 0`` (default 2, as in the paper).
        alpha: weight of the task loss, ``0 <= alpha <= 1``; ``1 - alpha`` weighs the soft loss.
        multi_label: sigmoid/binary-cross-entropy form (AudioSet) instead of softmax/KL.
        outputs: ``"auto"`` (read each model's final activation), ``"probabilities"`` or
            ``"logits"`` (applies to both models).
        teacher_input: ``"auto"``: the student's input as it is when the two input shapes
            match, its log-mel channel (:func:`log_mel_channel`) for a 1-channel teacher and a
            4-channel (quaternion features) student; or a function from the student's input
            batch to the teacher's.
        name: model name.

    Raises:
        TypeError: ``student`` or ``teacher`` is not a ``keras.Model``.
        ValueError: ``alpha`` outside ``[0, 1]``, ``temperature <= 0``, ``outputs`` or
            ``teacher_input`` unknown, output shapes (or, without a ``teacher_input`` mapping,
            input shapes) of the two models differ, or the output activations do not match
            ``multi_label`` (softmax for single-label, sigmoid for multi-label).

    Example:
        >>> import keras, numpy as np
        >>> def mlp(width):
        ...     x = keras.Input((8,))
        ...     h = keras.layers.Dense(width, activation="relu")(x)
        ...     return keras.Model(x, keras.layers.Dense(3, activation="softmax")(h))
        >>> teacher, student = mlp(32), mlp(4)
        >>> distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
        >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
        >>> x, y = np.random.rand(16, 8).astype("float32"), np.arange(16) % 3
        >>> logs = distiller.fit(x, y, epochs=1, batch_size=8, verbose=0).history
        >>> sorted(logs)
        ['accuracy', 'distillation_loss', 'loss', 'task_loss']
    """

    def __init__(
        self,
        student,
        teacher,
        temperature=2.0,
        alpha=0.5,
        multi_label=False,
        outputs="auto",
        teacher_input="auto",
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        for role, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"Distiller: {role} must be a keras.Model, got {type(model).__name__}."
                )
        _check_temperature(temperature)
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, numbers.Real)
            or not (0.0 <= float(alpha) <= 1.0)
        ):
            raise ValueError(
                f"Distiller: alpha (weight of the task loss) must be a number in [0, 1], got "
                f"{alpha!r}; 1 - alpha weighs the distillation loss."
            )
        if outputs not in _OUTPUT_KINDS:
            raise ValueError(f"Distiller: outputs={outputs!r}; expected one of {_OUTPUT_KINDS}.")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.multi_label = bool(multi_label)
        self.outputs_kind = outputs
        self.teacher_input = _teacher_input(teacher_input, student, teacher)
        self._check_shapes(student, teacher, same_input=self.teacher_input is None)
        self._student_kind = self._resolve_kind(student, "student")
        self._teacher_kind = self._resolve_kind(teacher, "teacher")
        self.student = student
        self.teacher = teacher
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    # ----------------------------------------------------------------------------- validation
    @staticmethod
    def _check_shapes(student, teacher, same_input=True):
        for what in ("inputs", "outputs") if same_input else ("outputs",):
            s_list = getattr(student, what, None)
            t_list = getattr(teacher, what, None)
            if not s_list or not t_list:
                continue  # subclassed models: shapes are checked on the first batch
            if len(s_list) != len(t_list):
                raise ValueError(
                    f"Distiller: the student has {len(s_list)} {what} but the teacher "
                    f"{len(t_list)}; they must match."
                )
            for s, t in zip(s_list, t_list):
                s_shape, t_shape = tuple(s.shape), tuple(t.shape)
                compatible = len(s_shape) == len(t_shape) and all(
                    a is None or b is None or a == b for a, b in zip(s_shape, t_shape)
                )
                if not compatible:
                    raise ValueError(
                        f"Distiller: student {what[:-1]} shape {s_shape} does not match teacher "
                        f"{what[:-1]} shape {t_shape}; the two models must predict the same "
                        "classes, and take the same input unless teacher_input maps the "
                        "student's input to the teacher's (a 1-channel log-mel teacher and a "
                        "4-channel quaternion student are mapped automatically)."
                    )

    def _resolve_kind(self, model, role):
        if self.outputs_kind != "auto":
            return self.outputs_kind
        try:
            kind, activation = model_output_kind(model)
        except ValueError as exc:
            raise ValueError(f"Distiller ({role}): {exc}") from None
        wanted = "sigmoid" if self.multi_label else "softmax"
        if kind == "probabilities" and activation != wanted:
            raise ValueError(
                f"Distiller: the {role} {model.name!r} ends in a {activation} but "
                f"multi_label={self.multi_label} expects {wanted} outputs; set "
                f"multi_label={not self.multi_label} or use a matching model."
            )
        return kind

    # ------------------------------------------------------------------------------ variables
    @property
    def trainable_variables(self):
        return self.student.trainable_variables

    @property
    def trainable_weights(self):
        return self.student.trainable_weights

    @property
    def non_trainable_variables(self):
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    # -------------------------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss="auto", metrics=None, **kwargs):
        """Configure training; ``loss`` is the task loss applied to the student's outputs.

        Args:
            optimizer: optimizer instance or name.
            loss: task loss; ``"auto"`` (default) is :class:`AutoCrossentropy` (categorical,
                sparse categorical or binary cross-entropy from the labels and
                ``multi_label``, on probabilities or logits as the student outputs).
            metrics: metrics computed on the student's outputs.
            **kwargs: passed to ``keras.Model.compile``.
        """
        if loss == "auto" or loss is None:
            loss = AutoCrossentropy(
                from_logits=self._student_kind == "logits", multi_label=self.multi_label
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        own = [self.total_loss_tracker, self.task_loss_tracker, self.distillation_loss_tracker]
        rest = [
            m
            for m in super().metrics
            if all(m is not o for o in own) and getattr(m, "name", None) != "loss"
        ]
        return own + rest

    # ------------------------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def teacher_outputs(self, x):
        """The frozen teacher's outputs for the student's input batch ``x``."""
        if self.teacher_input is not None:
            x = self.teacher_input(x)
        return self.teacher(x, training=False)

    def soft_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        """``T**2``-scaled soft loss for this distiller's settings (per replica, unscaled)."""
        teacher_logits = ops.stop_gradient(
            _to_logits(teacher_outputs, self._teacher_kind, self.multi_label)
        )
        student_logits = _to_logits(student_outputs, self._student_kind, self.multi_label)
        if tuple(teacher_logits.shape[1:]) != tuple(student_logits.shape[1:]):
            raise ValueError(
                f"Distiller: teacher outputs have shape {tuple(teacher_logits.shape)} but the "
                f"student's {tuple(student_logits.shape)}; both must be [batch, classes]."
            )
        per_sample = _per_sample_distillation(
            teacher_logits, student_logits, self.temperature, self.multi_label
        )
        return _reduce(per_sample, sample_weight)

    def loss_terms(self, x, y, sample_weight=None, training=False):
        """Compute the objective on one batch without updating anything.

        Args:
            x: input batch.
            y: labels.
            sample_weight: optional ``[batch]`` weights.
            training: run the student in training mode (the teacher always runs in inference).

        Returns:
            dict of scalar tensors ``{"loss", "task_loss", "distillation_loss"}`` (the values
            ``fit`` logs for this batch on one replica).

        Raises:
            RuntimeError: the distiller is not compiled.
        """
        if not self.compiled:
            raise RuntimeError("Distiller.loss_terms: call compile() first.")
        y_pred = self.student(x, training=training)
        teacher_pred = self.teacher_outputs(x)
        total, task, soft = self._objective(x, y, y_pred, teacher_pred, sample_weight, training)
        return {
            "loss": _unscale_for_replicas(total),
            "task_loss": _unscale_for_replicas(task),
            "distillation_loss": soft,
        }

    def _objective(self, x, y, y_pred, teacher_pred, sample_weight, training):
        # compute_loss: compiled task loss + the student's regularisation losses (the frozen
        # teacher has no trainable weights, so none of its weight penalties enter); it is
        # already divided by the replica count, as Keras' own losses are.
        task = ops.cast(
            self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            ),
            "float32",
        )
        soft = self.soft_loss(teacher_pred, y_pred, sample_weight)
        total = self.alpha * task + (1.0 - self.alpha) * _scale_for_replicas(soft)
        return total, task, soft

    def _track(self, x, total, task, soft):
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        self.total_loss_tracker.update_state(_unscale_for_replicas(total), sample_weight=batch)
        self.task_loss_tracker.update_state(_unscale_for_replicas(task), sample_weight=batch)
        self.distillation_loss_tracker.update_state(soft, sample_weight=batch)

    def train_step(self, data):
        """One optimisation step of the student (TensorFlow backend)."""
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_pred = ops.stop_gradient(self.teacher_outputs(x))
        weights = self.student.trainable_weights
        with tf.GradientTape() as tape:
            y_pred = self.student(x, training=True)
            total, task, soft = self._objective(x, y, y_pred, teacher_pred, sample_weight, True)
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(gradients, weights))
        self._track(x, total, task, soft)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """Score the student (``training=False``) and the objective on one batch."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.student(x, training=False)
        teacher_pred = self.teacher_outputs(x)
        total, task, soft = self._objective(x, y, y_pred, teacher_pred, sample_weight, False)
        self._track(x, total, task, soft)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.student(x, training=False)

    # ------------------------------------------------------------------------------ saving
    def save(self, filepath, overwrite=True, **kwargs):
        """Save the **student** (the deployable model) to ``filepath`` (``.keras``)."""
        return self.student.save(filepath, overwrite=overwrite, **kwargs)

    def get_config(self):
        """The student's serialised config plus the distillation settings (no teacher)."""
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "multi_label": self.multi_label,
            "outputs": self.outputs_kind,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        raise TypeError(
            "Distiller is a training wrapper and is saved as its student alone; load the saved "
            "file with keras.models.load_model(...) and wrap it again with "
            "Distiller(student, teacher) to continue distillation."
        )
