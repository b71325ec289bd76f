"""``synthetic``: ten classes of generated sounds, the embedded default dataset (no download).

Every clip is one sound event of a class placed at a random time in background noise:

==============  ===========================================================================
class           event (random parameters per clip)
==============  ===========================================================================
tone            steady sine, 200-2000 Hz
chord           major/minor triad, root 150-500 Hz, 4 harmonics per note
white_noise     white noise burst
pink_noise      pink (1/f) noise burst
clicks          broadband click train, 5-20 clicks/s
up_chirp        exponential sweep up by 4-8x from 200-600 Hz
down_chirp      exponential sweep down by 4-8x to 200-600 Hz
tremolo         sine 300-1500 Hz, amplitude-modulated at 4-12 Hz, depth 0.7-1
beeps           3-6 short (40-80 ms) equally spaced beeps, 500-3000 Hz
vibrato         sine 300-1500 Hz, frequency-modulated at 4-8 Hz by 3-8 %
==============  ===========================================================================

Shared variation: onset in the first 30 % of the clip, event length 45-70 % of the clip, 10 ms
fades, a white/pink background mix at 3-30 dB SNR, peak level 0.05-0.9. Each clip is generated
from ``SeedSequence([seed, class, index])`` so the data are identical for a seed on every machine
and independent of the generation order.
"""

from __future__ import annotations

import numpy as np

from keras_quaternion.datasets.base import AudioDataset, Example, check_int
from keras_quaternion.datasets.registry import register

__all__ = ["SYNTHETIC_CLASSES", "generate_clip", "load_synthetic"]

SYNTHETIC_CLASSES = (
    "tone",
    "chord",
    "white_noise",
    "pink_noise",
    "clicks",
    "up_chirp",
    "down_chirp",
    "tremolo",
    "beeps",
    "vibrato",
)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (np.std(x) + 1e-12)


def _sweep(rng, t, sr, up: bool) -> np.ndarray:
    low = _loguniform(rng, 200.0, 600.0)
    high = min(low * rng.uniform(4.0, 8.0), 0.45 * sr)
    f0, f1 = (low, high) if up else (high, low)
    dur = t[-1] + 1.0 / sr
    k = f1 / f0
    phase = 2 * np.pi * f0 * dur / np.log(k) * (np.power(k, t / dur) - 1.0)
    return np.sin(phase + rng.uniform(0, 2 * np.pi))


def _event(name: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    nyq = 0.45 * sr
    if name == "tone":
        return np.sin(2 * np.pi * min(_loguniform(rng, 200, 2000), nyq) * t + rng.uniform(0, 6.3))
    if name == "chord":
        return _chord(rng, t, nyq)
    if name == "white_noise":
        return rng.standard_normal(n)
    if name == "pink_noise":
        return _pink(rng, n)
    if name == "clicks":
        return _clicks(rng, n, sr)
    if name in ("up_chirp", "down_chirp"):
        return _sweep(rng, t, sr, up=name == "up_chirp")
    if name == "tremolo":
        f = min(_loguniform(rng, 300, 1500), nyq)
        rate, depth = rng.uniform(4, 12), rng.uniform(0.7, 1.0)
        env = 1.0 - 0.5 * depth * (1.0 + np.cos(2 * np.pi * rate * t + rng.uniform(0, 6.3)))
        return env * np.sin(2 * np.pi * f * t)
    if name == "beeps":
        return _beeps(rng, n, sr)
    if name == "vibrato":
        f = min(_loguniform(rng, 300, 1500), nyq / 1.1)
        rate, depth = rng.uniform(4, 8), rng.uniform(0.03, 0.08)
        return np.sin(2 * np.pi * f * t + depth * f / rate * np.sin(2 * np.pi * rate * t))
    raise ValueError(f"synthetic: unknown class {name!r}; classes are {list(SYNTHETIC_CLASSES)}.")


def _chord(rng: np.random.Generator, t: np.ndarray, nyq: float) -> np.ndarray:
    """A major or minor triad, four harmonics per note (those below ``nyq``)."""
    root = _loguniform(rng, 150, 500)
    third = 5 / 4 if rng.random() < 0.5 else 6 / 5
    out = np.zeros(t.shape[0])
    for ratio in (1.0, third, 1.5):
        for h in range(1, 5):
            f = root * ratio * h
            if f < nyq:
                out += np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / h
    return out


def _clicks(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Decaying noise bursts of 3 ms at 5-20 per second, slightly irregular."""
    rate = rng.uniform(5, 20)
    out = np.zeros(n)
    m = max(2, int(0.003 * sr))
    shape = np.exp(-np.arange(m) / (0.0005 * sr))
    period = sr / rate
    pos = rng.uniform(0, period)
    while pos < n - 1:
        i = int(pos)
        seg = rng.standard_normal(m) * shape
        out[i : i + m] += seg[: n - i]
        pos += period * rng.uniform(0.95, 1.05)
    return out


def _beeps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Three to six evenly spaced 40-80 ms beeps of one pitch, with 5 ms fades."""
    f = min(_loguniform(rng, 500, 3000), 0.45 * sr)
    count = int(rng.integers(3, 7))
    beep = int(rng.uniform(0.04, 0.08) * sr)
    out = np.zeros(n)
    starts = np.linspace(0, max(n - beep, 0), count).astype(int)
    tb = np.arange(beep) / sr
    fade = np.minimum(1.0, np.minimum(tb, tb[::-1]) / 0.005)
    tone = np.sin(2 * np.pi * f * tb) * fade
    for s in starts:
        seg = tone[: n - s]
        out[s : s + seg.shape[0]] += seg
    return out


def generate_clip(
    class_index: int,
    index: int,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
) -> np.ndarray:
    """Generate one synthetic clip (deterministic for ``(seed, class_index, index)``).

    Args:
        class_index: 0..9, an index into ``SYNTHETIC_CLASSES``.
        index: example number within the class.
        seed: dataset seed.
        sample_rate: Hz.
        clip_seconds: clip length.

    Returns:
        float32 ``[round(clip_seconds * sample_rate)]``, peak in [0.05, 0.9].

    Raises:
        ValueError: ``class_index`` out of range.

    Example:
        >>> generate_clip(5, 0, seed=0, sample_rate=16000).shape
        (16000,)
    """
    if not 0 <= int(class_index) < len(SYNTHETIC_CLASSES):
        raise ValueError(
            f"generate_clip: class_index must be in 0..{len(SYNTHETIC_CLASSES) - 1}, got "
            f"{class_index}."
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(class_index), int(index)]))
    n = int(round(clip_seconds * sample_rate))
    length = max(8, int(n * rng.uniform(0.45, 0.7)))
    onset = int(rng.uniform(0.0, 0.3) * n)
    length = min(length, n - onset)
    event = _event(SYNTHETIC_CLASSES[class_index], rng, length, sample_rate)
    event = event / (np.sqrt(np.mean(event**2)) + 1e-12)
    ramp = max(1, min(int(0.01 * sample_rate), length // 2))
    fade = np.ones(length)
    fade[:ramp] = np.linspace(0.0, 1.0, ramp)
    fade[length - ramp :] = np.linspace(1.0, 0.0, ramp)
    clip = np.zeros(n)
    clip[onset : onset + length] = event * fade

    snr_db = rng.uniform(3.0, 30.0)
    mix = rng.uniform(0.0, 1.0)
    background = mix * rng.standard_normal(n) + (1.0 - mix) * _pink(rng, n)
    background /= np.sqrt(np.mean(background**2)) + 1e-12
    clip += background * 10.0 ** (-snr_db / 20.0)
    clip *= rng.uniform(0.05, 0.9) / (np.max(np.abs(clip)) + 1e-12)
    return clip.astype(np.float32)


@register(
    "synthetic",
    description="Ten classes of generated sounds (tones, chords, noise, clicks, chirps, ...); "
    "no download.",
    needs_data_dir=False,
)
def load_synthetic(
    data_dir=None,
    *,
    samples_per_class: int = 100,
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
    seed: int = 0,
) -> AudioDataset:
    """Generate the ``synthetic`` dataset (in memory).

    Per class, examples ``0 .. n_test-1`` are the test split, the next ``n_val`` the validation
    split and the rest train, with ``n_test = n_val = max(1, round(0.1 * samples_per_class))``
    (default: 80 / 10 / 10 clips per class, 1000 clips in all).

    Args:
        data_dir: must be ``None``.
        samples_per_class: clips per class over all splits (3..100000).
        sample_rate: Hz (8000..96000).
        clip_seconds: clip length, 0.1..10 s (classes are designed for >= 0.5 s).
        seed: any non-negative integer; the same seed gives identical clips.

    Returns:
        :class:`AudioDataset` of in-memory examples; ``meta`` has ``id`` and ``index``.

    Raises:
        ValueError: an option outside its range.

    Example:
        >>> ds = load_synthetic(samples_per_class=20, seed=3)
        >>> len(ds.splits["train"]), ds.class_names[0]
        (160, 'tone')
    """
    samples_per_class = check_int("synthetic", "samples_per_class", samples_per_class, 3, 100_000)
    sample_rate = check_int("synthetic", "sample_rate", sample_rate, 8000, 96000)
    seed = check_int("synthetic", "seed", seed, 0)
    try:
        clip_seconds = float(clip_seconds)
    except (TypeError, ValueError):
        clip_seconds = float("nan")
    if not 0.1 <= clip_seconds <= 10.0:
        raise ValueError(
            f"Dataset 'synthetic': option clip_seconds must be in 0.1..10 seconds, got "
            f"{clip_seconds!r}."
        )
    n_hold = max(1, int(round(0.1 * samples_per_class)))
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for c, cname in enumerate(SYNTHETIC_CLASSES):
        for i in range(samples_per_class):
            wave = generate_clip(
                c, i, seed=seed, sample_rate=sample_rate, clip_seconds=clip_seconds
            )
            split = "test" if i < n_hold else "validation" if i < 2 * n_hold else "train"
            ex = Example(wave, c, {"id": f"{cname}_{i:05d}", "index": i}, sample_rate=sample_rate)
            splits[split].append(ex)
    return AudioDataset(
        name="synthetic",
        class_names=list(SYNTHETIC_CLASSES),
        multi_label=False,
        sample_rate_hint=sample_rate,
        splits=splits,
        info={
            "data_dir": None,
            "protocol": f"generated; per class {n_hold} test, {n_hold} validation, "
            f"{samples_per_class - 2 * n_hold} train clips (seed {seed})",
            "options": {
                "samples_per_class": samples_per_class,
                "sample_rate": sample_rate,
                "clip_seconds": clip_seconds,
                "seed": seed,
            },
        },
    )
