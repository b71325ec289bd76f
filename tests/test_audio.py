"""Tests for keras_quaternion.audio: decoding, resampling, padding and skipping bad files."""

import os
import pickle
import warnings

import numpy as np
import pytest
import soundfile as sf

from keras_quaternion.audio import (
    AudioDecodeError,
    decode_many,
    fit_length,
    load_audio,
    resample,
)


def _write(path, data, sr, subtype="PCM_16"):
    sf.write(str(path), data, sr, subtype=subtype)
    return str(path)


@pytest.fixture
def ramp_wav(tmp_path):
    # 0.1 s at 8 kHz, a slow ramp: sample i == i / 1000 (exact in float32 WAV)
    data = (np.arange(800) / 1000.0).astype(np.float32)
    return _write(tmp_path / "ramp.wav", data, 8000, subtype="FLOAT"), data


def test_load_native_rate_exact(ramp_wav):
    path, data = ramp_wav
    out = load_audio(path, sample_rate=8000)
    assert out.dtype == np.float32 and out.shape == (800,)
    np.testing.assert_array_equal(out, data)


def test_pad_and_crop_from_start(ramp_wav):
    path, data = ramp_wav
    padded = load_audio(path, sample_rate=8000, clip_seconds=0.25)
    assert padded.shape == (2000,)
    np.testing.assert_array_equal(padded[:800], data)
    assert not padded[800:].any()
    cropped = load_audio(path, sample_rate=8000, clip_seconds=0.05)
    np.testing.assert_array_equal(cropped, data[:400])


def test_offset_and_duration(ramp_wav):
    path, data = ramp_wav
    out = load_audio(path, sample_rate=8000, offset=0.025, duration=0.02)
    np.testing.assert_array_equal(out, data[200:360])
    with pytest.raises(AudioDecodeError, match="offset 0.5 s is at or past the end"):
        load_audio(path, sample_rate=8000, offset=0.5)


def test_stereo_is_mixed_to_mono_and_int16_scaled(tmp_path):
    left = np.full(400, 0.5, np.float32)
    right = np.full(400, -0.25, np.float32)
    path = _write(tmp_path / "st.wav", np.stack([left, right], 1), 8000)
    out = load_audio(path, sample_rate=8000)
    np.testing.assert_allclose(out, 0.125, atol=1e-4)


def test_resample_keeps_a_tone(tmp_path):
    sr = 8000
    t = np.arange(sr // 2) / sr
    path = _write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    out = load_audio(path, sample_rate=16000)
    assert out.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak_hz = np.argmax(spectrum) * 16000 / out.size
    assert abs(peak_hz - 440) < 4
    assert abs(np.max(np.abs(out[1000:-1000])) - 0.5) < 0.01
    assert resample(np.zeros(100, np.float32), 8000, 8000).shape == (100,)


def test_corrupt_empty_missing_and_zero_length(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not RIFF audio at all" * 10)
    with pytest.raises(AudioDecodeError, match="garbage.wav.*not a readable WAV") as err:
        load_audio(garbage, sample_rate=8000)
    assert isinstance(err.value, ValueError) and err.value.path == str(garbage)

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty.wav.*empty \(0 bytes\)"):
        load_audio(empty, sample_rate=8000)

    zero = _write(tmp_path / "zero.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioDecodeError, match="zero length"):
        load_audio(zero, sample_rate=8000)

    with pytest.raises(AudioDecodeError, match="does not exist"):
        load_audio(tmp_path / "nope.wav", sample_rate=8000)
    with pytest.raises(AudioDecodeError, match="directory"):
        load_audio(tmp_path, sample_rate=8000)


def test_absurd_rates_and_bad_values(tmp_path):
    low = _write(tmp_path / "low.wav", np.zeros(100, np.float32), 500)
    with pytest.raises(AudioDecodeError, match="implausible sample rate of 500 Hz"):
        load_audio(low, sample_rate=8000)
    ok = _write(tmp_path / "ok.wav", np.zeros(100, np.float32), 8000)
    with pytest.raises(ValueError, match="sample_rate must be between 1000"):
        load_audio(ok, sample_rate=500)
    with pytest.raises(ValueError, match="clip_seconds"):
        load_audio(ok, sample_rate=8000, clip_seconds=0)
    with pytest.raises(ValueError, match="offset"):
        load_audio(ok, sample_rate=8000, offset=-1)
    nan = _write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], np.float32), 8000, "FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(nan, sample_rate=8000)


def test_unsupported_extension_reports_both_decoders(tmp_path):
    bogus = tmp_path / "clip.m4a"
    bogus.write_bytes(os.urandom(256))
    with pytest.raises(AudioDecodeError, match="libsndfile cannot read it.*audioread"):
        load_audio(bogus, sample_rate=8000)


def test_error_is_picklable():
    err = pickle.loads(pickle.dumps(AudioDecodeError("a.wav", "broken")))
    assert err.path == "a.wav" and err.reason == "broken" and "a.wav" in str(err)


def test_fit_length():
    np.testing.assert_array_equal(fit_length(np.ones(3), 5), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(fit_length(np.arange(5.0), 2), [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        fit_length(np.ones((2, 2)), 3)


def test_decode_many_skips_and_warns_once(tmp_path):
    good = [
        _write(tmp_path / f"ok{i}.wav", np.full(80, 0.1 * i, np.float32), 8000) for i in range(3)
    ]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00\x01garbage")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    items = [good[0], str(bad), good[1], str(empty), good[2]]
    with pytest.warns(UserWarning) as record:
        arrays, kept, skipped = decode_many(
            items, sample_rate=8000, clip_seconds=0.02, progress=False
        )
    assert len(record) == 1
    message = str(record[0].message)
    assert "Skipped 2 of 5" in message and "bad.wav" in message and "empty.wav" in message
    assert kept == [0, 2, 4]
    assert [s[0] for s in skipped] == [str(bad), str(empty)]
    assert all(a.shape == (160,) for a in arrays)
    np.testing.assert_allclose(arrays[2][:80], 0.2, atol=1e-4)


def test_decode_many_truncates_long_name_lists(tmp_path):
    items = []
    for i in range(13):
        p = tmp_path / f"junk{i:02d}.wav"
        p.write_bytes(b"junk")
        items.append(str(p))
    with pytest.warns(UserWarning, match=r"Skipped 13 of 13.*and 3 more"):
        arrays, kept, skipped = decode_many(items, sample_rate=8000, progress=False)
    assert arrays == [] and kept == [] and len(skipped) == 13
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped -> no warning
        assert decode_many([], sample_rate=8000, progress=False) == ([], [], [])


def test_mp3_decodes_through_libsndfile(tmp_path):
    sr = 16000
    t = np.arange(sr // 2) / sr
    path = tmp_path / "tone.mp3"
    try:
        sf.write(str(path), 0.5 * np.sin(2 * np.pi * 440 * t), sr, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError) as err:
        pytest.skip(f"this libsndfile cannot write MP3: {err}")
    out = load_audio(path, sample_rate=8000, clip_seconds=0.5)
    assert out.shape == (4000,)
    spectrum = np.abs(np.fft.rfft(out[500:3500] * np.hanning(3000)))
    assert abs(np.argmax(spectrum) * 8000 / 3000 - 440) < 5
