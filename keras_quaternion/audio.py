"""Audio decoding: read a file (or part of it) as mono float32 at a chosen sample rate.

``load_audio`` decodes one file with soundfile (libsndfile: WAV, FLAC, OGG, AIFF, AU, MP3, ...) and
falls back to audioread only for formats libsndfile cannot open (e.g. ``.m4a`` with ffmpeg
installed). Multi-channel audio is mixed to mono by averaging the channels, then resampled with soxr
(high quality) and, when ``clip_seconds`` is given, zero-padded or cropped **from the start** to an
exact length.

``decode_many`` decodes a list of files with a progress bar, skipping the ones that cannot be
decoded and warning once, at the end, with their names.

Every failure to decode raises :class:`AudioDecodeError` (a ``ValueError``) naming the file, the
reason and a hint.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AudioDecodeError",
    "MIN_SAMPLE_RATE",
    "decode_many",
    "fit_length",
    "load_audio",
    "resample",
]

#: Lowest sample rate accepted, for both files and requested output rates (Hz).
MIN_SAMPLE_RATE = 1000
#: Highest sample rate accepted (Hz); anything above is treated as a corrupt header.
MAX_SAMPLE_RATE = 768_000

_HINT = (
    "Check that the file is a complete audio file (re-download or re-extract it), "
    "or remove it from the dataset folder."
)


class AudioDecodeError(ValueError):
    """An audio file could not be decoded.

    Attributes:
        path: the file (as a string).
        reason: what went wrong, in words.
        hint: what to do about it (default: re-download or re-extract the file, or remove it).

    Example:
        >>> try:
        ...     load_audio("missing.wav", sample_rate=16000)
        ... except AudioDecodeError as err:
        ...     print(err.path, "->", err.reason)
        missing.wav -> the file does not exist
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str = _HINT):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"Cannot decode audio file '{self.path}': {reason}. {hint}")

    def __reduce__(self):  # keep picklable (multiprocessing) despite the custom __init__
        return (type(self), (self.path, self.reason, self.hint))


def _check_rate(sample_rate: Any, what: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        else:
            raise ValueError(
                f"{what} must be an integer number of Hz, got {sample_rate!r} "
                f"({type(sample_rate).__name__})."
            )
    sample_rate = int(sample_rate)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"{what} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sample_rate}."
        )
    return sample_rate


def _check_seconds(value: Any, what: str, *, allow_zero: bool) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}.") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be a finite number of seconds {allowed}, got {value!r}.")
    return seconds


def fit_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop from the start to exactly ``num_samples``.

    Args:
        waveform: 1-D array ``[samples]``.
        num_samples: wanted length (>= 1).

    Returns:
        float32 array ``[num_samples]`` (the first ``num_samples`` samples, then zeros).

    Raises:
        ValueError: ``waveform`` is not 1-D or ``num_samples`` < 1.

    Example:
        >>> fit_length(np.ones(3, np.float32), 5).tolist()
        [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"fit_length expects a 1-D waveform, got shape {waveform.shape}.")
    num_samples = int(num_samples)
    if num_samples < 1:
        raise ValueError(f"fit_length: num_samples must be >= 1, got {num_samples}.")
    if waveform.shape[0] >= num_samples:
        return np.ascontiguousarray(waveform[:num_samples])
    out = np.zeros(num_samples, dtype=np.float32)
    out[: waveform.shape[0]] = waveform
    return out


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono waveform with soxr (high quality).

    Args:
        waveform: 1-D float array ``[samples]``.
        orig_sr: its sample rate (Hz, >= 1000).
        target_sr: wanted sample rate (Hz, >= 1000).

    Returns:
        float32 array ``[round(samples * target_sr / orig_sr)]``; the input itself (as float32) when
        the rates are equal.

    Raises:
        ValueError: a rate outside 1000..768000 Hz or a waveform that is not 1-D.

    Example:
        >>> resample(np.zeros(8000, np.float32), 8000, 16000).shape
        (16000,)
    """
    orig_sr = _check_rate(orig_sr, "orig_sr")
    target_sr = _check_rate(target_sr, "target_sr")
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"resample expects a 1-D waveform, got shape {waveform.shape}.")
    if orig_sr == target_sr or waveform.shape[0] == 0:
        return waveform
    import soxr

    out = soxr.resample(waveform, orig_sr, target_sr, quality="HQ")
    return np.asarray(out, dtype=np.float32)


def _read_soundfile(path: str, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(path) as f:
        native_sr = int(f.samplerate)
        frames = int(f.frames)
        if native_sr < MIN_SAMPLE_RATE or native_sr > MAX_SAMPLE_RATE:
            raise AudioDecodeError(
                path,
                f"its header declares an implausible sample rate of {native_sr} Hz "
                f"(allowed {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE})",
            )
        if frames <= 0:
            raise AudioDecodeError(path, "it contains no audio samples (zero length)")
        start = int(round(offset * native_sr))
        if start >= frames:
            raise AudioDecodeError(
                path,
                f"offset {offset:g} s is at or past the end of the file "
                f"({frames / native_sr:.3f} s long)",
                hint="Use an offset smaller than the file's duration.",
            )
        count = (
            frames - start if duration is None else min(frames - start, _ceil(duration, native_sr))
        )
        f.seek(start)
        data = f.read(count, dtype="float32", always_2d=True)
    return data, native_sr


def _ceil(seconds: float, rate: int) -> int:
    return max(1, int(math.ceil(seconds * rate - 1e-9)))


def _read_audioread(path: str, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import audioread

    with audioread.audio_open(path) as f:
        native_sr = int(f.samplerate)
        channels = int(f.channels)
        chunks = [np.frombuffer(buf, dtype="<i2") for buf in f]
    if native_sr < MIN_SAMPLE_RATE or native_sr > MAX_SAMPLE_RATE:
        raise AudioDecodeError(path, f"implausible sample rate {native_sr} Hz")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, "<i2")
    data = (pcm.astype(np.float32) / 32768.0).reshape(-1, max(channels, 1))
    start = int(round(offset * native_sr))
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "it contains no audio samples (zero length)")
    if start >= data.shape[0]:
        raise AudioDecodeError(path, f"offset {offset:g} s is at or past the end of the file")
    stop = None if duration is None else start + _ceil(duration, native_sr)
    return data[start:stop], native_sr


def _soundfile_formats() -> set[str]:
    import soundfile as sf

    return {k.lower() for k in sf.available_formats()} | {"oga", "opus", "aif", "wave"}


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    clip_seconds: float | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform at ``sample_rate``.

    Only the needed part of the file is read: from ``offset`` seconds for ``duration`` seconds
    (or ``clip_seconds`` when that is smaller, or to the end).

    Args:
        path: audio file (WAV, FLAC, OGG, AIFF, AU, MP3, ...; other formats through audioread when
            it has a backend such as ffmpeg).
        sample_rate: output rate in Hz (1000..768000); the file is resampled with soxr.
        clip_seconds: when given, the result is zero-padded at the end or cropped from the start to
            exactly ``round(clip_seconds * sample_rate)`` samples.
        offset: seconds to skip at the start of the file (>= 0, must be inside the file).
        duration: read at most this many seconds after ``offset`` (before padding to
            ``clip_seconds``).

    Returns:
        float32 array ``[samples]``, values in [-1, 1] for integer PCM files.

    Raises:
        AudioDecodeError: the file is missing, empty, zero-length, not audio, corrupt, holds
            NaN/Inf samples, declares a sample rate < 1000 Hz, or ``offset`` is past its end.
        ValueError: a bad argument (``sample_rate``, ``clip_seconds``, ``offset``, ``duration``).

    Example:
        >>> import soundfile as sf
        >>> sf.write("half_second.wav", np.full(4000, 0.25), 8000)  # 0.5 s at 8 kHz
        >>> wave = load_audio("half_second.wav", sample_rate=16000, clip_seconds=1.0)
        >>> wave.shape, wave.dtype, bool(wave[8000:].any())  # resampled, then zero-padded
        ((16000,), dtype('float32'), False)
    """
    sample_rate = _check_rate(sample_rate)
    offset = _check_seconds(offset, "offset", allow_zero=True)
    if clip_seconds is not None:
        clip_seconds = _check_seconds(clip_seconds, "clip_seconds", allow_zero=False)
    if duration is not None:
        duration = _check_seconds(duration, "duration", allow_zero=False)
    read_for = duration
    if clip_seconds is not None:
        read_for = clip_seconds if read_for is None else min(read_for, clip_seconds)

    spath = _check_file(path)
    data, native_sr = _read(spath, offset, read_for)
    if data.shape[0] == 0:
        raise AudioDecodeError(spath, "it contains no audio samples (zero length)")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(spath, "it contains NaN or infinite sample values")
    wave = resample(np.ascontiguousarray(mono, dtype=np.float32), native_sr, sample_rate)
    if read_for is not None and clip_seconds is None:
        wave = wave[: _ceil(read_for, sample_rate)]
    if clip_seconds is not None:
        wave = fit_length(wave, int(round(clip_seconds * sample_rate)))
    return wave


def _check_file(path) -> str:
    """``path`` as a string when it names a non-empty file; else an :class:`AudioDecodeError`."""
    spath = os.fspath(path)
    p = Path(spath)
    if not p.exists():
        raise AudioDecodeError(
            spath, "the file does not exist", hint="Check the path or the dataset's metadata."
        )
    if p.is_dir():
        raise AudioDecodeError(spath, "it is a directory, not a file", hint="Pass an audio file.")
    if p.stat().st_size == 0:
        raise AudioDecodeError(spath, "the file is empty (0 bytes)")
    return spath


def _read(spath: str, offset: float, read_for: float | None):
    """``(samples [n, channels], native rate)`` by libsndfile, else by audioread.

    audioread is tried only for formats libsndfile does not know: a WAV or FLAC it cannot read
    is corrupt, and its error says so.
    """
    ext = Path(spath).suffix.lower().lstrip(".")
    try:
        return _read_soundfile(spath, offset, read_for)
    except AudioDecodeError:
        raise
    except Exception as sf_err:  # libsndfile: unknown/corrupt format, truncated file, ...
        sf_reason = str(sf_err).strip() or type(sf_err).__name__
        if ext in _soundfile_formats():
            raise AudioDecodeError(
                spath, f"it is not a readable {ext.upper()} file ({sf_reason})"
            ) from sf_err
        try:
            return _read_audioread(spath, offset, read_for)
        except AudioDecodeError:
            raise
        except Exception as ar_err:
            raise AudioDecodeError(
                spath,
                f"libsndfile cannot read it ({sf_reason}) and audioread failed too "
                f"({type(ar_err).__name__}: {ar_err})",
                hint="Convert it to WAV or FLAC, or install ffmpeg for audioread.",
            ) from ar_err


def _item_name(item: Any) -> str:
    name = getattr(item, "name", None)
    if isinstance(name, str) and not isinstance(item, Path):
        return name
    return os.fspath(item) if isinstance(item, str | os.PathLike) else str(item)


def decode_many(
    items: Sequence[Any] | Iterable[Any],
    *,
    sample_rate: int,
    clip_seconds: float | None = None,
    progress: bool = True,
    decoder: Callable[[Any], np.ndarray] | None = None,
    desc: str = "Decoding audio",
) -> tuple[list[np.ndarray], list[int], list[tuple[str, str]]]:
    """Decode many files, skipping (and reporting) the ones that cannot be decoded.

    Args:
        items: audio file paths, or any objects ``decoder`` accepts (e.g. dataset examples).
        sample_rate: output rate in Hz for every file.
        clip_seconds: when given, every waveform is padded/cropped to this length.
        progress: show a tqdm progress bar.
        decoder: ``decoder(item) -> np.ndarray`` used instead of ``load_audio`` (it receives the
            item only; bind rates with a closure). It should raise :class:`AudioDecodeError` for
            bad audio; any other exception propagates.
        desc: progress-bar label.

    Returns:
        ``(arrays, kept_indices, skipped)``: the decoded float32 waveforms, the index into
        ``items`` of each, and ``[(name, reason), ...]`` for each skipped item.

    Warns:
        UserWarning, once at the end, when files were skipped: the count and the first ten names.

    Raises:
        ValueError: a bad ``sample_rate`` / ``clip_seconds``.

    Example:
        >>> import soundfile as sf, warnings
        >>> sf.write("good.wav", np.zeros(800), 8000)
        >>> _ = open("bad.wav", "wb").write(b"not audio")
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     waves, kept, skipped = decode_many(["good.wav", "bad.wav"], sample_rate=16000,
        ...                                        clip_seconds=1.0, progress=False)
        >>> waves[0].shape, kept, skipped[0][0], len(caught)
        ((16000,), [0], 'bad.wav', 1)
    """
    from tqdm.auto import tqdm

    sample_rate = _check_rate(sample_rate)
    if clip_seconds is not None:
        clip_seconds = _check_seconds(clip_seconds, "clip_seconds", allow_zero=False)
    items = list(items)
    if decoder is None:

        def decoder(item):
            return load_audio(item, sample_rate=sample_rate, clip_seconds=clip_seconds)

    arrays: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, item in enumerate(
        tqdm(items, desc=desc, unit="file", disable=not progress or len(items) == 0)
    ):
        try:
            wave = decoder(item)
        except AudioDecodeError as err:
            skipped.append((_item_name(item), err.reason))
            continue
        arrays.append(np.asarray(wave, dtype=np.float32))
        kept.append(i)
    if skipped:
        warnings.warn(_skipped_message(skipped, len(items)), UserWarning, stacklevel=2)
    return arrays, kept, skipped


def _skipped_message(skipped: list[tuple[str, str]], total: int) -> str:
    shown = [f"{name} ({reason})" for name, reason in skipped[:10]]
    more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    return (
        f"Skipped {len(skipped)} of {total} audio files that could not be decoded: "
        + "; ".join(shown)
        + more
        + "."
    )
