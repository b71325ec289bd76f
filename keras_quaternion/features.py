"""Quaternion audio features: log-mel and its 1st, 2nd and 3rd time derivatives.

A clip becomes a ``[frames, n_mels, 4]`` tensor whose four components are

    r = log-mel,  i = Δ,  j = Δ²,  k = Δ³

(the layout every quaternion model in this package expects). The pipeline is

1. STFT as PANNs / ``librosa.stft(center=True, pad_mode="reflect")``: reflect-pad ``n_fft // 2``
   samples on both sides, periodic Hann window, hop ``hop_length``, so a clip of ``N`` samples
   gives ``1 + N // hop_length`` frames (even ``n_fft``). Power ``|X|²``.
2. A triangular mel filterbank on the HTK mel scale (:func:`mel_filterbank`), equal to
   ``librosa.filters.mel(..., htk=True, norm=None)``.
3. ``10 * log10(max(mel_power, 1e-10))`` (PANNs: ``ref=1.0``, ``amin=1e-10``, no ``top_db``).
4. Savitzky–Golay derivatives along time, exactly what ``librosa.feature.delta(x, width=9,
   order=n, axis=time)`` computes (``mode="interp"``), each order computed from the static log-mel.
   They are a fixed linear operator (a central 1-D filter plus small edge matrices), built once in
   numpy by :func:`savgol_delta_matrices` and applied with convolutions, so the same code runs in
   ``tf.data``, inside a Keras model (:class:`keras_quaternion.layers.deltas.QuaternionDeltas`) and
   in an int8 TFLite graph.

Everything here is TensorFlow (``tf.signal``), eager or inside ``tf.function``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "AMIN",
    "FeatureConfig",
    "apply_delta_operator",
    "change_level",
    "deltas",
    "log_mel",
    "mel_filterbank",
    "power_spectrogram",
    "quaternion_features",
    "savgol_delta_matrices",
]

#: Floor applied to the mel power before the logarithm (PANNs' ``amin``): -100 dB.
AMIN = 1e-10

# Bumped whenever the numbers produced for a given config change, so on-disk caches keyed by
# FeatureConfig.cache_key() are invalidated.
_FEATURES_VERSION = 1

_MEL_NORMS = (None, "slaney")
_MEL_SCALES = ("htk", "slaney")
#: fields added after cache keys were first published, with the default that leaves keys as
#: they were (see FeatureConfig.cache_key)
_LATER_FIELDS = {"mel_scale": "htk"}


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_width(width, where: str) -> int:
    if not _is_int(width) or width < 3 or width % 2 != 1:
        raise ValueError(
            f"{where} must be an odd integer >= 3 (the number of frames in the Savitzky-Golay "
            f"window, e.g. 9 as librosa), got {width!r}."
        )
    return int(width)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the quaternion feature front end (defaults are PANNs', but see ``mel_norm``).

    Args:
        sample_rate: sampling rate of the waveform in Hz (int >= 1).
        n_fft: FFT size = window length in samples (int >= 2).
        hop_length: frame step in samples, ``1 <= hop_length <= n_fft``.
        n_mels: number of mel bands (int >= 1).
        fmin: lowest filter edge in Hz, ``0 <= fmin < fmax``.
        fmax: highest filter edge in Hz, ``fmin < fmax <= sample_rate / 2``.
        delta_width: Savitzky–Golay window in frames for Δ, Δ², Δ³: an odd int >= 5 (it must
            exceed 3, the highest derivative order; 9 is librosa's default).
        mel_norm: ``None`` (plain triangles with peak 1, the default) or ``"slaney"`` (each
            triangle divided by its width in Hz / 2, constant energy per band). Unlike PANNs,
            whose filterbank has Slaney area normalisation (and the Slaney mel scale), the
            default has none.
        mel_scale: ``"htk"`` (``2595 log10(1 + f / 700)``, the default) or ``"slaney"``
            (linear below 1 kHz, logarithmic above: librosa's default and PANNs').
            :meth:`panns` gives PANNs' exact front end.

    Raises:
        ValueError: a field outside its allowed range; the message names the field, the value
            and the range.
        TypeError: a field of the wrong type (e.g. a float ``n_fft``).

    Example:
        >>> cfg = FeatureConfig()
        >>> cfg.num_frames(32000)          # one second at 32 kHz
        101
        >>> FeatureConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> fsdd = FeatureConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmax=4000.0)
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    delta_width: int = 9
    mel_norm: str | None = None
    mel_scale: str = "htk"

    @classmethod
    def panns(cls) -> FeatureConfig:
        """The features PANNs' AudioSet models were trained on.

        32 kHz, 1024-point periodic-Hann window, hop 320, 64 mel bands from 50 to 14,000 Hz on
        the Slaney mel scale with Slaney area normalisation, ``10 log10(max(power, 1e-10))``
        (``ref=1``, no ``top_db``): the log-mel of PANNs' ``Cnn14`` & co., so that a converted
        checkpoint (:func:`keras_quaternion.models.from_panns`) sees its training input.

        Example:
            >>> cfg = FeatureConfig.panns()
            >>> cfg.mel_scale, cfg.mel_norm, cfg.num_frames(32000)
            ('slaney', 'slaney', 101)
        """
        return cls(mel_norm="slaney", mel_scale="slaney")

    def __post_init__(self):
        self._check_framing()
        self._check_band()
        if not _is_int(self.delta_width) or self.delta_width < 5 or self.delta_width % 2 != 1:
            raise ValueError(
                "FeatureConfig.delta_width must be an odd integer >= 5 (the Savitzky-Golay window "
                f"in frames must exceed the highest derivative order, 3), got {self.delta_width!r}."
            )
        object.__setattr__(self, "delta_width", int(self.delta_width))
        if self.mel_norm not in _MEL_NORMS:
            raise ValueError(
                f"FeatureConfig.mel_norm must be one of {_MEL_NORMS}, got {self.mel_norm!r}."
            )
        if self.mel_scale not in _MEL_SCALES:
            raise ValueError(
                f"FeatureConfig.mel_scale must be one of {_MEL_SCALES}, got {self.mel_scale!r}."
            )

    def _check_framing(self) -> None:
        """The integer fields (rate, FFT, hop, mel bands) and a hop that leaves no gaps."""
        for name, minimum in (("sample_rate", 1), ("n_fft", 2), ("hop_length", 1), ("n_mels", 1)):
            value = getattr(self, name)
            if not _is_int(value):
                raise TypeError(
                    f"FeatureConfig.{name} must be an integer, got {value!r} "
                    f"({type(value).__name__})."
                )
            if value < minimum:
                raise ValueError(f"FeatureConfig.{name} must be >= {minimum}, got {value!r}.")
            object.__setattr__(self, name, int(value))
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"FeatureConfig.hop_length must be in [1, n_fft={self.n_fft}] (frames may overlap "
                f"but not leave gaps), got {self.hop_length}."
            )

    def _check_band(self) -> None:
        """``0 <= fmin < fmax <= sample_rate / 2``, both finite numbers of Hz."""
        for name in ("fmin", "fmax"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(float(value)):
                raise TypeError(
                    f"FeatureConfig.{name} must be a finite number of Hz, got {value!r}."
                )
            object.__setattr__(self, name, float(value))
        nyquist = self.sample_rate / 2
        if self.fmin < 0:
            raise ValueError(f"FeatureConfig.fmin must be >= 0 Hz, got {self.fmin}.")
        if self.fmax > nyquist:
            raise ValueError(
                f"FeatureConfig.fmax must be <= sample_rate / 2 = {nyquist} Hz (the Nyquist "
                f"frequency), got {self.fmax}; lower fmax or raise sample_rate."
            )
        if self.fmin >= self.fmax:
            raise ValueError(
                f"FeatureConfig.fmin must be < fmax = {self.fmax} Hz, got fmin={self.fmin}."
            )

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of all fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Build a config from :meth:`to_dict` output; missing fields take their defaults.

        Raises:
            TypeError: ``d`` is not a mapping.
            ValueError: ``d`` has keys that are not fields (they are listed), or invalid values.
        """
        if not isinstance(d, dict):
            raise TypeError(f"FeatureConfig.from_dict expects a dict, got {type(d).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"FeatureConfig.from_dict: unknown field(s) {unknown}; known fields are "
                f"{sorted(known)}."
            )
        return cls(**d)

    def cache_key(self) -> str:
        """Short stable hash (16 hex digits) of every field and the feature-code version.

        Equal configs give equal keys in every process and on every machine (the hash is SHA-256
        of sorted JSON, not Python's salted ``hash``). Used to name on-disk feature caches.
        Fields added after the first release (``mel_scale``) enter the hash only when they
        differ from their default, so that configs that existed before keep their keys and
        their caches.
        """
        fields = self.to_dict()
        for name, default in _LATER_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        payload = json.dumps(
            {"features_version": _FEATURES_VERSION, **fields},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    # --- shapes --------------------------------------------------------------------------------

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of ``num_samples`` samples (centred STFT).

        ``1 + (num_samples + 2 * (n_fft // 2) - n_fft) // hop_length``, i.e.
        ``1 + num_samples // hop_length`` for even ``n_fft``.

        Raises:
            ValueError: ``num_samples`` is not an int or is <= ``n_fft // 2`` (too short for the
                reflect padding).
        """
        if not _is_int(num_samples):
            raise ValueError(f"num_samples must be an integer, got {num_samples!r}.")
        pad = self.n_fft // 2
        if num_samples <= pad:
            raise ValueError(
                f"A clip of {num_samples} samples is too short for n_fft={self.n_fft}: the centred "
                f"STFT reflect-pads {pad} samples, which needs at least {pad + 1} samples."
            )
        return 1 + (int(num_samples) + 2 * pad - self.n_fft) // self.hop_length

    def min_num_samples(self) -> int:
        """Shortest clip (in samples) that gives at least ``delta_width`` frames.

        That is the minimum length :func:`quaternion_features` accepts
        (``(delta_width - 1) * hop_length`` for even ``n_fft``; 2560 samples = 80 ms by default).
        """
        pad = self.n_fft // 2
        return max(pad + 1, (self.delta_width - 1) * self.hop_length + self.n_fft - 2 * pad)


# --- mel filterbank ------------------------------------------------------------------------------


def _hz_to_mel_htk(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz_htk(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


_SLANEY_BREAK_HZ = 1000.0
_SLANEY_LOG_STEP = math.log(6.4) / 27.0  # log-spaced part: 27 mels per factor 6.4
_SLANEY_HZ_PER_MEL = 200.0 / 3.0  # linear part


def _hz_to_mel_slaney(hz):
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    brk = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
    logs = brk + np.log(np.maximum(hz, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, logs, linear)


def _mel_to_hz_slaney(mel):
    mel = np.asarray(mel, dtype=np.float64)
    brk = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
    logs = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - brk))
    return np.where(mel >= brk, logs, _SLANEY_HZ_PER_MEL * mel)


_MEL_SCALE_FUNCTIONS = {
    "htk": (_hz_to_mel_htk, _mel_to_hz_htk),
    "slaney": (_hz_to_mel_slaney, _mel_to_hz_slaney),
}


@functools.lru_cache(maxsize=32)
def _mel_filterbank_cached(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, mel_norm, mel_scale
) -> np.ndarray:
    bin_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # [n_bins]
    # n_mels + 2 points equally spaced on the mel scale: band m rises from edges[m] to a peak at
    # edges[m + 1] and falls to zero at edges[m + 2].
    to_mel, to_hz = _MEL_SCALE_FUNCTIONS[mel_scale]
    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2, dtype=np.float64))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz[None, :] - lo) / (mid - lo)
    falling = (hi - bin_hz[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_bins]
    if mel_norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = np.flatnonzero(weights.max(axis=1) <= 0.0)
    if empty.size:
        warnings.warn(
            f"mel_filterbank: {empty.size} of {n_mels} mel bands contain no FFT bin "
            f"(bands {empty[:10].tolist()}{' ...' if empty.size > 10 else ''}) with "
            f"sample_rate={sample_rate}, n_fft={n_fft}, fmin={fmin}, fmax={fmax}; they will be "
            "constant -100 dB. Use fewer n_mels, a larger n_fft or a higher fmin.",
            stacklevel=3,
        )
    out = np.ascontiguousarray(weights.T)  # [n_bins, n_mels]
    out.setflags(write=False)
    return out


def mel_filterbank(config: FeatureConfig | None = None) -> np.ndarray:
    """Triangular mel filterbank as a ``[n_fft // 2 + 1, n_mels]`` float64 matrix.

    ``n_mels + 2`` edge frequencies are equally spaced on the mel scale (HTK's
    ``mel(f) = 2595 log10(1 + f / 700)`` by default; Slaney's with ``mel_scale="slaney"``)
    between ``fmin`` and ``fmax``; band ``m`` is the triangle
    rising from edge ``m`` to 1 at edge ``m + 1`` and back to 0 at edge ``m + 2``, sampled at the
    FFT bin frequencies ``k * sample_rate / n_fft``. With ``mel_norm="slaney"`` each triangle is
    scaled by ``2 / (edge[m + 2] - edge[m])``. Equals
    ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., fmin=..., fmax=..., htk=True,
    norm=None).T`` (``norm="slaney"`` for ``mel_norm="slaney"``, ``htk=False`` for
    ``mel_scale="slaney"``).

    Args:
        config: the :class:`FeatureConfig` (default ``FeatureConfig()``).

    Returns:
        ``np.ndarray`` float64 of shape ``[n_fft // 2 + 1, n_mels]`` (a fresh, writable copy);
        ``mel_power = power_spectrum @ mel_filterbank(config)``.

    Raises:
        TypeError: ``config`` is not a :class:`FeatureConfig`.

    Warns:
        UserWarning: when some bands contain no FFT bin (too many mels for the FFT resolution).

    Example:
        >>> mel_filterbank(FeatureConfig()).shape
        (513, 64)
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig, got {type(config).__name__}.")
    return _mel_filterbank_cached(
        config.sample_rate,
        config.n_fft,
        config.n_mels,
        config.fmin,
        config.fmax,
        config.mel_norm,
        config.mel_scale,
    ).copy()


# --- spectrogram and log-mel -------------------------------------------------------------------


def _as_waveform_batch(waveform, min_samples: int, what: str, config: FeatureConfig):
    """Convert to float32 [B, N]; returns (tensor, was_batched)."""
    x = tf.convert_to_tensor(waveform)
    if not x.dtype.is_floating:
        raise TypeError(
            f"{what}: waveform must be floating point (e.g. float32 samples in [-1, 1]), got "
            f"dtype {x.dtype.name}; convert integer PCM first, e.g. x.astype('float32') / 32768."
        )
    if x.dtype != tf.float32:
        x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    if rank not in (1, 2):
        raise ValueError(
            f"{what}: waveform must have shape [samples] or [batch, samples], got shape "
            f"{x.shape} (rank {rank})."
        )
    batched = rank == 2
    if not batched:
        x = x[tf.newaxis]
    n = x.shape[1]
    if n is not None and n < min_samples:
        raise ValueError(_short_clip_message(what, n, min_samples, config))
    x = _guard_min_length(
        x,
        min_samples,
        f"{what}: clip too short, it needs at least {min_samples} samples "
        f"({config.n_fft=}, {config.hop_length=}, {config.delta_width=}). Use a longer clip "
        "(pad it with zeros).",
    )
    return x, batched


def _guard_min_length(x, minimum: int, message: str):
    """``x`` unchanged, but made to depend on a run-time check ``x.shape[1] >= minimum``.

    Only when ``x.shape[1]`` is unknown (inside ``tf.function`` / ``tf.data``); a known length is
    checked statically by the caller. The assertion is a control dependency of the returned
    tensor, so every op computed from it runs only after the check passed: a too-short input
    always fails with ``message`` (an ``InvalidArgumentError``), never with an error from
    whichever downstream op (a slice, a concatenation) the scheduler happened to run first.
    """
    if x.shape[1] is not None:
        return x
    check = tf.debugging.assert_greater_equal(tf.shape(x)[1], minimum, message=message)
    with tf.control_dependencies([check]):
        return tf.identity(x)


def _short_clip_message(what, n, min_samples, config: FeatureConfig) -> str:
    msg = (
        f"{what}: a clip of {n} samples is too short; it needs at least {min_samples} samples "
        f"({min_samples / config.sample_rate * 1000:.1f} ms at {config.sample_rate} Hz)"
    )
    if min_samples > config.n_fft // 2 + 1:
        msg += (
            f" to give delta_width={config.delta_width} frames. Use a longer clip (pad it with "
            "zeros) or a smaller delta_width."
        )
    else:
        msg += f" for the centred STFT with n_fft={config.n_fft}. Use a longer clip."
    return msg


def _power_spectrogram_batch(x, config: FeatureConfig):
    pad = config.n_fft // 2
    x = tf.pad(x, [[0, 0], [pad, pad]], mode="REFLECT")
    spec = tf.signal.stft(
        x,
        frame_length=config.n_fft,
        frame_step=config.hop_length,
        fft_length=config.n_fft,
        window_fn=functools.partial(tf.signal.hann_window, periodic=True),
        pad_end=False,
    )
    return tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))


def _log_mel_batch(x, config: FeatureConfig):
    power = _power_spectrogram_batch(x, config)  # [B, frames, bins]
    fb = tf.constant(mel_filterbank(config), dtype=tf.float32)
    mel = tf.einsum("bfk,km->bfm", power, fb)
    return (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(mel, AMIN))


def power_spectrogram(waveform, config: FeatureConfig | None = None) -> tf.Tensor:
    """Power spectrogram ``|STFT|²`` of a centred, reflect-padded, periodic-Hann STFT.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` (numpy or tensor).
        config: :class:`FeatureConfig` (default ``FeatureConfig()``).

    Returns:
        float32 tensor ``[frames, n_fft // 2 + 1]`` (or ``[batch, frames, n_fft // 2 + 1]``),
        ``frames = config.num_frames(samples)``.

    Raises:
        TypeError: integer waveform. ValueError: wrong rank, or fewer than ``n_fft // 2 + 1``
        samples.

    Example:
        >>> power_spectrogram(np.zeros(32000, "float32")).shape
        TensorShape([101, 513])
    """
    config = FeatureConfig() if config is None else config
    x, batched = _as_waveform_batch(waveform, config.n_fft // 2 + 1, "power_spectrogram", config)
    out = _power_spectrogram_batch(x, config)
    return out if batched else out[0]


def log_mel(waveform, config: FeatureConfig | None = None) -> tf.Tensor:
    """Log-mel spectrogram in dB: ``10 log10(max(power @ mel_filterbank, 1e-10))``.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` (numpy or tensor; float64 is cast
            to float32). Works eagerly and inside ``tf.function`` / ``tf.data`` (also with an
            unknown number of samples).
        config: :class:`FeatureConfig` (default ``FeatureConfig()``, PANNs' front end).

    Returns:
        float32 tensor ``[frames, n_mels]`` or ``[batch, frames, n_mels]``, with
        ``frames = config.num_frames(samples)``.

    Raises:
        TypeError: integer waveform (convert PCM to float first).
        ValueError: wrong rank, or fewer than ``n_fft // 2 + 1`` samples.

    Example:
        >>> import numpy as np
        >>> t = np.arange(32000) / 32000
        >>> log_mel(np.sin(2 * np.pi * 440 * t).astype("float32")).shape
        TensorShape([101, 64])
    """
    config = FeatureConfig() if config is None else config
    x, batched = _as_waveform_batch(waveform, config.n_fft // 2 + 1, "log_mel", config)
    out = _log_mel_batch(x, config)
    return out if batched else out[0]


# --- Savitzky-Golay deltas -----------------------------------------------------------------------


def savgol_delta_matrices(
    width: int, order: int, polyorder: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of the Savitzky–Golay derivative of ``order`` over ``width`` frames.

    A polynomial of degree ``polyorder`` (default ``order``, as ``librosa.feature.delta``) is
    least-squares fitted to each window of ``width`` frames and differentiated ``order`` times
    (unit frame spacing). Away from the edges the result is a fixed correlation filter; for the
    first and last ``width // 2`` frames, the polynomial fitted to the first / last full window is
    evaluated there (scipy's ``savgol_filter(mode="interp")``). With ``h = width // 2``::

        y[t]         = central · x[t - h : t + h + 1]       for h <= t < T - h
        y[:h]        = left  @ x[:width]
        y[T - h:]    = right @ x[T - width:]

    Args:
        width: odd window length in frames, >= 3.
        order: derivative order, ``1 <= order <= polyorder``.
        polyorder: fitted polynomial degree, ``order <= polyorder < width`` (default ``order``).

    Returns:
        ``(central [width], left [h, width], right [h, width])``, float64.

    Raises:
        ValueError: invalid ``width``, ``order`` or ``polyorder`` (the message says which).

    Example:
        >>> central, left, right = savgol_delta_matrices(5, 1)
        >>> (np.round(central * 10, 6) + 0.0).tolist()   # the classic (-2, -1, 0, 1, 2) / 10
        [-2.0, -1.0, 0.0, 1.0, 2.0]
    """
    width = _check_width(width, "savgol_delta_matrices: width")
    polyorder = order if polyorder is None else polyorder
    if not _is_int(order) or order < 1:
        raise ValueError(f"savgol_delta_matrices: order must be an integer >= 1, got {order!r}.")
    if not _is_int(polyorder) or not order <= polyorder < width:
        raise ValueError(
            f"savgol_delta_matrices: polyorder must be an integer with order={order} <= polyorder "
            f"< width={width}, got {polyorder!r}. For a derivative of order {order} use a width "
            f"of at least {2 * (order // 2) + 3}."
        )
    half = width // 2
    u = np.arange(width, dtype=np.float64) - half  # positions centred on the window middle
    powers = np.arange(polyorder + 1)
    design = u[:, None] ** powers[None, :]  # [width, polyorder + 1]
    fit = np.linalg.pinv(design)  # polynomial coefficients = fit @ window
    # d^order/du^order of u^p = p! / (p - order)! * u^(p - order)
    falling = np.array(
        [math.factorial(p) / math.factorial(p - order) if p >= order else 0.0 for p in powers]
    )
    exps = np.maximum(powers - order, 0)
    evaluate = falling[None, :] * u[:, None] ** exps[None, :]  # [width, polyorder + 1]
    full = evaluate @ fit  # [width (evaluation position), width (input frame)]
    return full[half].copy(), full[:half].copy(), full[half + 1 :].copy()


@dataclasses.dataclass(frozen=True)
class _DeltaKernels:
    width: int
    orders: tuple[int, ...]
    central: np.ndarray  # [width, 1, 1, n]             channel o = order orders[o]
    left: np.ndarray  # [width, 1, 1, half * n]         channel t * n + o = frame t, order o
    right: np.ndarray  # [width, 1, 1, half * n]


@functools.lru_cache(maxsize=16)
def _delta_kernels(width: int, orders: tuple[int, ...]) -> _DeltaKernels:
    half = width // 2
    n = len(orders)
    central = np.zeros((width, 1, 1, n))
    left = np.zeros((width, 1, 1, half * n))
    right = np.zeros((width, 1, 1, half * n))
    for o, order in enumerate(orders):
        c, lm, rm = savgol_delta_matrices(width, order)
        central[:, 0, 0, o] = c
        for t in range(half):
            left[:, 0, 0, t * n + o] = lm[t]
            right[:, 0, 0, t * n + o] = rm[t]
    for a in (central, left, right):
        a.setflags(write=False)
    return _DeltaKernels(width, orders, central, left, right)


def _check_orders(orders, width: int, where: str) -> tuple[int, ...]:
    try:
        orders = tuple(orders)
    except TypeError:
        raise ValueError(f"{where}: orders must be a sequence of ints, got {orders!r}.") from None
    if not orders or not all(_is_int(o) and 1 <= o < width for o in orders):
        raise ValueError(
            f"{where}: orders must be a non-empty sequence of integers in [1, width - 1 = "
            f"{width - 1}], got {orders!r}."
        )
    return tuple(int(o) for o in orders)


def apply_delta_operator(
    x,
    width: int = 9,
    orders: Sequence[int] = (1, 2, 3),
    *,
    conv: Callable | None = None,
    concat: Callable | None = None,
):
    """Savitzky–Golay time derivatives of a ``[batch, frames, mels, 1]`` tensor.

    The single implementation behind :func:`deltas`, :func:`quaternion_features` and
    :class:`~keras_quaternion.layers.deltas.QuaternionDeltas`. It uses only valid 2-D
    convolutions with constant ``[width, 1]`` kernels, slices and one concatenation along time, so
    it quantizes to int8 TFLite builtins (CONV_2D, STRIDED_SLICE, CONCATENATION).

    Args:
        x: tensor ``[batch, frames, mels, 1]`` with ``frames >= width``.
        width: odd Savitzky–Golay window (frames), >= 3.
        orders: derivative orders, each in ``[1, width - 1]``.
        conv: ``conv(x, kernel_numpy) -> tensor`` doing a stride-1 "valid" channels-last 2-D
            convolution; default ``tf.nn.conv2d`` (the Keras layer passes ``keras.ops.conv``).
        concat: ``concat(list, axis) -> tensor``; default ``tf.concat``.

    Returns:
        tensor ``[batch, frames, mels, len(orders)]``; channel ``c`` is the derivative of order
        ``orders[c]`` computed from ``x`` (not a delta of a delta), as
        ``librosa.feature.delta(x, width=width, order=orders[c], axis=1)``.

    Raises:
        ValueError: invalid ``width``/``orders``, or a statically known ``frames < width``.

    Example:
        On ``x[t] = t**2`` the second derivative is 2 everywhere and the first is ``2 t`` away
        from the edges (where the order-1 fit of the first/last ``width`` frames is used):

        >>> x = tf.reshape(tf.range(12.0) ** 2, [1, 12, 1, 1])
        >>> d = apply_delta_operator(x, width=5, orders=(1, 2))
        >>> d.shape
        TensorShape([1, 12, 1, 2])
        >>> np.round(d[0, 2:-2, 0, 0].numpy(), 3).tolist()
        [4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
        >>> np.round(d[0, :, 0, 1].numpy(), 3).tolist()
        [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    """
    width = _check_width(width, "apply_delta_operator: width")
    orders = _check_orders(orders, width, "apply_delta_operator")
    kernels = _delta_kernels(width, orders)
    if conv is None:

        def conv(inp, kernel):
            return tf.nn.conv2d(
                inp, tf.constant(kernel, dtype=inp.dtype), strides=1, padding="VALID"
            )

    if concat is None:
        concat = tf.concat
    frames = x.shape[1]
    if frames is not None and frames < width:
        raise ValueError(_short_frames_message(frames, width))
    x = _guard_min_length(x, width, _short_frames_message("fewer", width))
    half, n = width // 2, len(orders)
    central = conv(x, kernels.central)  # [B, frames - 2 * half, M, n]
    left = conv(x[:, :width], kernels.left)  # [B, 1, M, half * n]
    right = conv(x[:, -width:], kernels.right)
    pieces = [left[..., t * n : (t + 1) * n] for t in range(half)]
    pieces.append(central)
    pieces += [right[..., t * n : (t + 1) * n] for t in range(half)]
    return concat(pieces, axis=1)


def _short_frames_message(frames, width) -> str:
    return (
        f"Savitzky-Golay deltas need at least delta_width={width} frames, got {frames}. Use a "
        f"longer clip (pad it) or a smaller delta_width (odd, >= 5 for Δ³)."
    )


def deltas(log_mel, width: int = 9, orders: Sequence[int] = (1, 2, 3)) -> tf.Tensor:
    """Time derivatives of a log-mel spectrogram, as ``librosa.feature.delta``.

    Each order is computed from the static input (``librosa.feature.delta(x, width=width,
    order=n, axis=time)``, Savitzky–Golay with polynomial order ``n``, ``mode="interp"``), not as
    a delta of a delta.

    Args:
        log_mel: float ``[frames, mels]`` or ``[batch, frames, mels]`` with ``frames >= width``.
        width: odd window length in frames (>= 3, and larger than every order).
        orders: derivative orders (default Δ, Δ², Δ³).

    Returns:
        float tensor ``[frames, mels, len(orders)]`` (or with a leading batch axis).

    Raises:
        ValueError: wrong rank, invalid width/orders, or fewer frames than ``width`` (the
            message gives both numbers and the fix).

    Example:
        >>> import numpy as np
        >>> deltas(np.random.randn(20, 64).astype("float32")).shape
        TensorShape([20, 64, 3])
    """
    width = _check_width(width, "deltas: width")
    orders = _check_orders(orders, width, "deltas")
    x = tf.convert_to_tensor(log_mel)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    if rank not in (2, 3):
        raise ValueError(
            f"deltas: log_mel must have shape [frames, mels] or [batch, frames, mels], got "
            f"shape {x.shape} (rank {rank})."
        )
    batched = rank == 3
    if not batched:
        x = x[tf.newaxis]
    frames = x.shape[1]
    if frames is not None and frames < width:
        raise ValueError("deltas: " + _short_frames_message(frames, width))
    x = _guard_min_length(x, width, "deltas: " + _short_frames_message("fewer", width))
    out = apply_delta_operator(x[..., tf.newaxis], width, orders)
    return out if batched else out[0]


def quaternion_features(waveform, config: FeatureConfig | None = None) -> tf.Tensor:
    """Quaternion input ``[frames, n_mels, 4]`` = (log-mel, Δ, Δ², Δ³) = (r, i, j, k).

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]``; needs at least
            ``config.min_num_samples()`` samples (80 ms with the defaults).
        config: :class:`FeatureConfig` (default ``FeatureConfig()``).

    Returns:
        float32 tensor ``[frames, n_mels, 4]`` or ``[batch, frames, n_mels, 4]``; component 0 is
        :func:`log_mel`, components 1-3 are :func:`deltas` of it with ``config.delta_width``.

    Raises:
        TypeError: integer waveform. ValueError: wrong rank, or a clip shorter than
        ``config.min_num_samples()`` (too few frames for the delta window).

    Example:
        >>> import numpy as np
        >>> quaternion_features(np.zeros(32000, "float32")).shape
        TensorShape([101, 64, 4])
    """
    config = FeatureConfig() if config is None else config
    x, batched = _as_waveform_batch(
        waveform, config.min_num_samples(), "quaternion_features", config
    )
    lm = _log_mel_batch(x, config)[..., tf.newaxis]  # [B, frames, mels, 1]
    d = apply_delta_operator(lm, config.delta_width, (1, 2, 3))
    out = tf.concat([lm, d], axis=-1)
    return out if batched else out[0]


def change_level(features, db) -> tf.Tensor:
    """The features of the same sound recorded ``db`` decibels louder (negative: softer).

    The log-mel component (channel 0) moves by ``db``, as ``10 log10(max(g * power, 1e-10))``
    would with ``g = 10 ** (db / 10)``: cells at the -100 dB floor (digital silence, the padding
    after a short clip) stay there, and no cell drops below it. The deltas are kept: a level
    change does not change a time derivative of the log-mel, except where the floor cuts in,
    which is ignored here.

    Args:
        features: float ``[..., channels]`` features (quaternion: 4 channels; real models' log-mel
            alone: 1), e.g. ``[batch, frames, n_mels, 4]``.
        db: the change in dB, a number or a tensor that broadcasts against ``features`` (one
            value per example: shape ``[batch, 1, 1, 1]``).

    Returns:
        float tensor of ``features``' shape and dtype.

    Example:
        >>> import numpy as np
        >>> x = np.array([[-100.0, 0.3], [-30.0, 0.3], [-95.0, 0.3]], "float32")
        >>> change_level(x, -10).numpy().tolist()
        [[-100.0, 0.30000001192092896], [-40.0, 0.30000001192092896], [-100.0, 0.30000001192092896]]
    """
    x = tf.convert_to_tensor(features)
    if not x.dtype.is_floating:
        raise TypeError(f"change_level: features must be float, got {x.dtype.name}.")
    floor = tf.constant(10.0 * math.log10(AMIN), x.dtype)
    moved = tf.where(x > floor, tf.maximum(x + tf.cast(db, x.dtype), floor), x)
    first = tf.range(tf.shape(x)[-1]) == 0  # channel 0, broadcast over the rest
    return tf.where(first, moved, x)
