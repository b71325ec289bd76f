"""Cached feature pipeline: feature_config_for, prepare (cache hits without decoding), tf_dataset."""

import json
import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from keras_quaternion.datasets import AudioDataset
from keras_quaternion.features import FeatureConfig, quaternion_features
from keras_quaternion.training import PreparedData, dataset_defaults, feature_config_for, prepare
from keras_quaternion.training import pipeline as pipeline_mod

SMALL_SYNTH = {"samples_per_class": 5}


# ------------------------------------------------------------------- feature_config_for


def test_feature_config_for_32k_is_panns_exactly():
    assert feature_config_for(32000) == FeatureConfig()
    assert feature_config_for(32000) == FeatureConfig(
        sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50, fmax=14000
    )


@pytest.mark.parametrize(
    "rate, n_fft, hop, fmax",
    [
        (8000, 256, 80, 4000.0),
        (16000, 512, 160, 8000.0),
        (22050, 512, 220, 11025.0),
        (44100, 1024, 441, 14000.0),
        (48000, 2048, 480, 14000.0),
    ],
)
def test_feature_config_for_other_rates(rate, n_fft, hop, fmax):
    cfg = feature_config_for(rate, n_mels=40)
    # 32 ms rounded to the nearest power of two; 10 ms hop
    assert cfg.n_fft == n_fft and cfg.hop_length == hop and cfg.fmax == fmax
    assert abs(np.log2(cfg.n_fft) - np.log2(0.032 * rate)) <= 0.5
    assert cfg.fmin == 50.0 and cfg.n_mels == 40 and cfg.sample_rate == rate


@pytest.mark.parametrize("bad", [0, 999, 16000.5, "16000", True])
def test_feature_config_for_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="sample_rate"):
        feature_config_for(bad)


def test_dataset_defaults():
    assert dataset_defaults("synthetic") == (16000, 1.0)
    assert dataset_defaults("fsdd") == (8000, 1.0)
    assert dataset_defaults("speech_commands") == (16000, 1.0)
    assert dataset_defaults("audioset") == (32000, 10.0)
    assert dataset_defaults("esc50") == (32000, 5.0)
    assert dataset_defaults("gtzan") == (32000, 30.0)
    assert dataset_defaults("folder") == (16000, None)


# ------------------------------------------------------------------------------ caching


def _forbid_decoding(monkeypatch):
    """Make any audio decoding or generation raise."""

    def boom(*args, **kwargs):
        raise AssertionError("audio was decoded although the features are cached")

    monkeypatch.setattr(AudioDataset, "waveform", boom)
    monkeypatch.setattr(AudioDataset, "decode", boom)
    monkeypatch.setattr("keras_quaternion.datasets.synthetic.generate_clip", boom)
    monkeypatch.setattr("keras_quaternion.audio.load_audio", boom)
    monkeypatch.setattr("keras_quaternion.audio._read_soundfile", boom)
    monkeypatch.setattr(sf, "read", boom)  # reading headers (sf.info) is allowed


def test_prepare_synthetic_caches_and_second_call_does_not_decode(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=32,
        cache_dir=cache,
        dataset_options=SMALL_SYNTH,
        progress=False,
    )
    assert first.sizes() == {"train": 30, "validation": 10, "test": 10}
    assert first.features["train"].shape == (30, 51, 32, 4)  # 1 + 8000 // 160 frames
    assert first.labels["train"].dtype == np.int64
    assert first.sample_rate == 16000 and first.clip_seconds == 0.5
    assert first.cache_path.parent.parent == cache / "features"
    assert isinstance(first.features["train"], np.memmap)
    manifest = json.loads((first.cache_path / "manifest.json").read_text())
    assert manifest["feature_config"] == feature_config_for(16000, 32).to_dict()
    assert not [p for p in first.cache_path.iterdir() if p.name.endswith(".tmp")]

    _forbid_decoding(monkeypatch)
    second = prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=32,
        cache_dir=cache,
        dataset_options=SMALL_SYNTH,
        progress=False,
    )
    assert second.cache_path == first.cache_path
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(second.features[split], first.features[split])
        np.testing.assert_array_equal(second.labels[split], first.labels[split])
    # another feature configuration is another cache entry (which would need decoding)
    with pytest.raises(AssertionError, match="decoded although"):
        prepare(
            "synthetic",
            clip_seconds=0.5,
            n_mels=40,
            cache_dir=cache,
            dataset_options=SMALL_SYNTH,
            progress=False,
        )


def test_cache_and_checkpoint_files_get_the_umask_mode_not_0600(tmp_path):
    """Regression: cache .npy and checkpoint .npz files were created 0o600 (mkstemp's mode)."""
    from keras_quaternion.training.checkpoint import Checkpointer as _Checkpointer

    old = os.umask(0o027)  # neither mkstemp's 0o600 nor the usual 0o644
    try:
        data = prepare(
            "synthetic",
            clip_seconds=0.3,
            n_mels=16,
            cache_dir=tmp_path / "cache",
            dataset_options={"samples_per_class": 3},
            progress=False,
        )
        _Checkpointer(tmp_path / "run").write({"epoch": 1}, {"w": np.zeros(3, np.float32)})
    finally:
        os.umask(old)
    written = [p for p in data.cache_path.iterdir() if p.is_file()]
    written += [p for p in (tmp_path / "run" / "checkpoint").iterdir()]
    names = {p.name for p in written}
    assert {"train_features.npy", "train_labels.npy", "ckpt-0001.npz"} <= names, names
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in written}
    assert set(modes.values()) == {"0o640"}, modes


def test_features_equal_direct_computation(tmp_path):
    from keras_quaternion import datasets

    data = prepare(
        "synthetic",
        sample_rate=8000,
        clip_seconds=0.5,
        n_mels=24,
        cache_dir=tmp_path,
        dataset_options=SMALL_SYNTH,
        progress=False,
    )
    ds = datasets.load("synthetic", sample_rate=8000, clip_seconds=0.5, seed=0, **SMALL_SYNTH)
    decoded = ds.decode("test", sample_rate=8000, clip_seconds=0.5, progress=False)
    expected = quaternion_features(decoded.waveforms, feature_config_for(8000, 24)).numpy()
    np.testing.assert_allclose(data.features["test"], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(data.labels["test"], decoded.labels)


def test_env_var_sets_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KQ_CACHE_DIR", str(tmp_path / "envcache"))
    assert pipeline_mod.default_cache_dir() == tmp_path / "envcache"
    data = prepare(
        "synthetic",
        clip_seconds=0.3,
        n_mels=16,
        dataset_options={"samples_per_class": 3},
        progress=False,
    )
    assert str(data.cache_path).startswith(str(tmp_path / "envcache"))
    monkeypatch.delenv("KQ_CACHE_DIR")
    assert (
        pipeline_mod.default_cache_dir()
        == pipeline_mod.Path("~/.cache/keras_quaternion").expanduser()
    )


def _write_folder_dataset(root, corrupt=True):
    rng = np.random.default_rng(0)
    for c, (cls, freq) in enumerate((("low", 300.0), ("high", 2500.0))):
        for i in range(6):
            t = np.arange(int(8000 * (0.3 + 0.05 * i))) / 8000.0
            wave = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.05 * c * i) * t)
            wave += 0.01 * rng.standard_normal(t.size)
            (root / cls).mkdir(parents=True, exist_ok=True)
            sf.write(root / cls / f"{cls}_{i}.wav", wave.astype(np.float32), 8000)
    if corrupt:
        (root / "low" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")


def test_prepare_file_dataset_cache_skips_and_invalidation(tmp_path, monkeypatch):
    root = tmp_path / "sounds"
    _write_folder_dataset(root)
    cache = tmp_path / "cache"
    opts = {"test_fraction": 0.3, "validation_fraction": 0.2}
    with pytest.warns(UserWarning, match=r"skipped 1 of 13 .*broken\.wav"):
        data = prepare("folder", root, cache_dir=cache, dataset_options=opts, progress=False)
    # clip length measured from the files (longest 0.55 s), 16 kHz default
    assert data.clip_seconds == pytest.approx(0.6) and data.sample_rate == 16000
    assert sum(data.sizes().values()) == 12
    manifest = json.loads((data.cache_path / "manifest.json").read_text())
    skipped = [name for split in manifest["skipped"].values() for name, _ in split]
    assert len(skipped) == 1 and skipped[0].endswith("broken.wav")
    assert data.class_names == ["high", "low"]

    with monkeypatch.context() as patch:
        _forbid_decoding(patch)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing decoded -> nothing skipped -> no warning
            again = prepare("folder", root, cache_dir=cache, dataset_options=opts, progress=False)
        assert again.cache_path == data.cache_path

    # changing a file changes the fingerprint: the features are computed again
    target = root / "high" / "high_0.wav"
    sf.write(target, np.zeros(4000, np.float32), 8000)
    os.utime(target, ns=(1, 1))
    with pytest.warns(UserWarning, match="broken"):
        changed = prepare("folder", root, cache_dir=cache, dataset_options=opts, progress=False)
    assert changed.cache_path != data.cache_path


def test_a_class_whose_files_all_fail_to_decode_is_a_layout_error(tmp_path):
    """Regression: such a class used to train with 0 examples, with only the skip warning."""
    from keras_quaternion.datasets import DatasetLayoutError

    root = tmp_path / "sounds"
    _write_folder_dataset(root, corrupt=False)
    (root / "noise").mkdir()
    for i in range(5):
        (root / "noise" / f"noise_{i}.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    opts = {"test_fraction": 0.2, "validation_fraction": 0.2}
    with pytest.raises(DatasetLayoutError) as caught:
        prepare("folder", root, cache_dir=tmp_path / "cache", dataset_options=opts, progress=False)
    message = str(caught.value)
    assert "Dataset 'folder': no train example of class 'noise' could be decoded" in message
    assert "'noise' (" in message and "noise/noise_" in message and "remove the class" in message
    assert "low" not in message.split("Expected layout")[0].replace(str(root), "")
    # one undecodable file in a class that keeps others is still only a warning
    (root / "noise").rename(tmp_path / "noise")
    (root / "low" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.warns(UserWarning, match="broken.wav"):
        prepare("folder", root, cache_dir=tmp_path / "cache", dataset_options=opts, progress=False)


def test_one_long_clip_does_not_lengthen_every_clip(tmp_path):
    """Regression: a single 60 s file among 1 s clips made every clip 30 s (the old cap)."""
    root = tmp_path / "sounds"
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            sf.write(root / cls / f"{cls}{i}.wav", 0.1 * rng.standard_normal(8000), 8000)
    sf.write(root / "a" / "long.wav", 0.1 * rng.standard_normal(60 * 8000), 8000)
    opts = {"test_fraction": 0.2, "validation_fraction": 0.2}
    with pytest.warns(
        UserWarning, match=r"cropped to 1 s, the 95th percentile.*long\.wav \(60\.0 s\)"
    ):
        data = prepare(
            "folder", root, cache_dir=tmp_path / "cache", dataset_options=opts, progress=False
        )
    assert data.clip_seconds == 1.0
    assert data.features["train"].shape[1] == data.feature_config.num_frames(16000)


def test_prepare_errors(tmp_path):
    from keras_quaternion.datasets import DatasetLayoutError

    with pytest.raises(ValueError, match="Unknown dataset 'nope'.*synthetic"):
        prepare("nope", cache_dir=tmp_path)
    with pytest.raises(DatasetLayoutError, match="fsdd"):
        prepare("fsdd", tmp_path / "missing", cache_dir=tmp_path)
    coarse = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=320, fmax=8000.0)
    with pytest.raises(ValueError, match="fewer than the 2560"):
        prepare(
            "synthetic",
            clip_seconds=0.1,
            feature_config=coarse,
            cache_dir=tmp_path,
            dataset_options={"samples_per_class": 3},
        )
    with pytest.raises(ValueError, match="clip_seconds"):
        prepare("synthetic", clip_seconds=-1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        prepare("synthetic", cache_dir=tmp_path, dataset_options={"bogus": 1})
    with pytest.raises(TypeError, match="dataset name"):
        prepare(42, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- tf.data


def _toy(n=10, frames=12, mels=8, classes=3, multi_label=False):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, frames, mels, 4)).astype(np.float32)
    x[..., 0] += np.arange(n)[:, None, None]  # example i has log-mel mean ~ i
    if multi_label:
        y = (rng.random((n, classes)) > 0.5).astype(np.float32)
    else:
        y = np.arange(n) % classes
    return PreparedData.from_arrays(
        {"train": (x, y), "validation": (x[:4], y[:4]), "test": (x[4:], y[4:])},
        class_names=[f"c{i}" for i in range(classes)],
        multi_label=multi_label,
    )


def _order(ds):
    return np.concatenate([np.round(xb.numpy()[:, :, :, 0].mean(axis=(1, 2))) for xb, _ in ds])


def test_tf_dataset_channels_shapes_and_labels():
    data = _toy()
    x4, y4 = next(iter(data.tf_dataset("test", batch_size=4, channels=4)))
    assert x4.shape == (4, 12, 8, 4) and y4.dtype.name == "int64"
    np.testing.assert_array_equal(x4.numpy(), data.features["test"][:4])  # no shuffle on test
    x1, _ = next(iter(data.tf_dataset("test", batch_size=4, channels=1)))
    assert x1.shape == (4, 12, 8, 1)
    np.testing.assert_array_equal(x1.numpy()[..., 0], data.features["test"][:4, ..., 0])
    _, yo = next(iter(data.tf_dataset("test", batch_size=4, one_hot=True)))
    assert yo.shape == (4, 3)
    np.testing.assert_array_equal(yo.numpy().argmax(1), data.labels["test"][:4])


def test_tf_dataset_shuffle_is_seeded_per_epoch_and_complete():
    data = _toy()
    a = _order(data.tf_dataset("train", 3, seed=5, epoch=0))
    b = _order(data.tf_dataset("train", 3, seed=5, epoch=0))
    c = _order(data.tf_dataset("train", 3, seed=5, epoch=1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sorted(a.tolist()) == list(range(10)) == sorted(c.tolist())
    dropped = list(data.tf_dataset("train", 3, drop_remainder=True))
    assert len(dropped) == 3 and all(xb.shape[0] == 3 for xb, _ in dropped)


def test_spec_augment_masks_stripes_with_the_mean():
    data = _toy(n=8, frames=100, mels=64)
    plain = np.concatenate([xb.numpy() for xb, _ in data.tf_dataset("train", 8, shuffle=False)])
    aug = np.concatenate(
        [xb.numpy() for xb, _ in data.tf_dataset("train", 8, shuffle=False, spec_augment=True)]
    )
    changed = ~np.isclose(aug, plain)
    assert changed.any()
    mean = plain.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        np.where(changed, aug, 0), np.where(changed, mean + 0 * aug, 0), rtol=1e-5, atol=1e-5
    )
    for i in range(8):
        cells = changed[i].all(axis=2)  # [frames, mels]: all 4 components masked together
        np.testing.assert_array_equal(cells, changed[i].any(axis=2))
        frames_masked = cells.all(axis=1)  # time stripes: 2 of width < round(100 * 64 / 1001)
        bands_masked = cells.all(axis=0)  # mel stripes: 2 of width < 64 // 8
        assert frames_masked.sum() <= 2 * 5 and bands_masked.sum() <= 2 * 7
        np.testing.assert_array_equal(cells, frames_masked[:, None] | bands_masked[None, :])
    again = np.concatenate(
        [xb.numpy() for xb, _ in data.tf_dataset("train", 8, shuffle=False, spec_augment=True)]
    )
    np.testing.assert_array_equal(aug, again)  # deterministic given seed and epoch


@pytest.mark.parametrize("channels", [4, 1])
def test_gain_moves_each_examples_log_mel_by_one_offset(channels):
    data = _toy(n=16, frames=20, mels=8)
    kw = {"channels": channels, "shuffle": False}
    plain = np.concatenate([xb.numpy() for xb, _ in data.tf_dataset("train", 8, **kw)])
    assert plain[..., 0].min() > -80  # no cell near the floor: every one moves
    aug = np.concatenate([xb.numpy() for xb, _ in data.tf_dataset("train", 8, gain_db=6, **kw)])
    offset = aug[..., 0] - plain[..., 0]  # [examples, frames, mels]
    per_example = offset[:, :1, :1]
    np.testing.assert_allclose(offset, np.broadcast_to(per_example, offset.shape), atol=1e-4)
    assert np.all(np.abs(per_example) <= 6) and np.ptp(per_example) > 1  # spread over ±6 dB
    np.testing.assert_array_equal(aug[..., 1:], plain[..., 1:])  # deltas keep their values
    again = np.concatenate([xb.numpy() for xb, _ in data.tf_dataset("train", 8, gain_db=6, **kw)])
    np.testing.assert_array_equal(aug, again)  # deterministic given seed and epoch
    with pytest.raises(ValueError, match="gain_db .* must be >= 0, got -1.0"):
        data.tf_dataset("train", 8, gain_db=-1)


def test_gain_keeps_the_floor_like_a_real_level_change():
    """Padding and digital silence (-100 dB) stay at the floor; softer cells clamp to it."""
    frames, mels = 20, 8
    x = np.full((16, frames, mels, 4), -100.0, np.float32)  # a clip padded after frame 10
    x[:, :10, :, 0] = np.linspace(-99.0, -20.0, 10 * mels).reshape(10, mels)
    x[:, :10, :, 1:] = 0.5
    data = PreparedData.from_arrays(
        {s: (x, np.zeros(16, np.int64)) for s in ("train", "validation", "test")},
        class_names=["a"],
    )
    kw = {"shuffle": False}
    aug = np.concatenate([xb.numpy() for xb, _ in data.tf_dataset("train", 8, gain_db=12, **kw)])
    np.testing.assert_array_equal(aug[:, 10:, :, 0], -100.0)  # the padding does not move
    assert aug[..., 0].min() == -100.0  # nothing below the floor
    offset = aug[:, 9, -1, 0] - x[:, 9, -1, 0]  # the loudest cell (-20 dB) moves freely
    assert np.ptp(offset) > 2 and np.all(np.abs(offset) <= 12)
    moved = np.maximum(x[..., 0] + offset[:, None, None], -100.0)
    expected = np.where(x[..., 0] > -100.0, moved, -100.0)
    np.testing.assert_allclose(aug[..., 0], expected, atol=1e-4)  # clamped, not wrapped
    np.testing.assert_array_equal(aug[..., 1:], x[..., 1:])


def _batches(data, **kw):
    """Every training example and label, in order, from ``data.tf_dataset("train", 8, ...)``."""
    pairs = list(data.tf_dataset("train", 8, shuffle=False, **kw))
    return (
        np.concatenate([xb.numpy() for xb, _ in pairs]),
        np.concatenate([yb.numpy() for _, yb in pairs]),
    )


@pytest.mark.parametrize("channels", [4, 1])
def test_freq_warp_stretches_each_examples_mel_axis_by_one_factor(channels):
    data = _toy(n=16, frames=6, mels=32)
    x = np.asarray(data.features["train"]).copy()
    bands = np.arange(32, dtype=np.float32)
    x[..., 0] = bands  # the log-mel component is its band number: the warp reads positions
    data = PreparedData.from_arrays(
        {s: (x, data.labels["train"]) for s in ("train", "validation", "test")},
        class_names=data.class_names,
    )
    aug, labels = _batches(data, channels=channels, freq_warp=0.2)
    x = x[..., :channels]
    assert aug.shape == x.shape  # cut back to n_mels
    np.testing.assert_array_equal(labels, data.labels["train"])  # labels untouched
    where = aug[:, 0, :, 0]  # [examples, mels]: the input position each band read
    factors = bands[1:8] / where[:, 1:8]  # below the clamp for any factor >= 0.8
    np.testing.assert_allclose(factors, factors[:, :1] + 0 * factors, rtol=1e-4)
    factors = factors[:, 0]
    assert np.all((factors >= 0.8 - 1e-4) & (factors <= 1.2 + 1e-4)) and np.ptp(factors) > 0.1
    np.testing.assert_allclose(where, np.minimum(bands / factors[:, None], 31), atol=1e-3)
    np.testing.assert_array_equal(aug[:, :, 0], x[:, :, 0])  # the lowest band stays
    # the same interpolation in every frame and component: the other components
    for i in range(16):
        low = np.floor(where[i]).astype(int)
        frac = where[i] - low
        high = np.minimum(low + 1, 31)
        expect = x[i][:, low] + frac[None, :, None] * (x[i][:, high] - x[i][:, low])
        np.testing.assert_allclose(aug[i], expect, atol=1e-4)
    again, _ = _batches(data, channels=channels, freq_warp=0.2)
    np.testing.assert_array_equal(aug, again)  # deterministic given seed and epoch
    other, _ = _batches(data, channels=channels, freq_warp=0.2, epoch=1)
    assert not np.allclose(aug, other)  # new draws each epoch
    plain, _ = _batches(data, channels=channels)
    np.testing.assert_array_equal(plain, x)  # off by default


def test_time_shift_moves_each_example_by_whole_frames():
    data = _toy(n=16, frames=20, mels=4)
    x = np.asarray(data.features["train"])
    aug, labels = _batches(data, time_shift=0.2)
    assert aug.shape == x.shape
    np.testing.assert_array_equal(labels, data.labels["train"])
    shifts = []
    for i in range(16):
        found = [
            s
            for s in range(-4, 5)
            if np.array_equal(aug[i], x[i][np.clip(np.arange(20) - s, 0, 19)])
        ]
        assert len(found) == 1, f"example {i} is not a shift of at most 4 frames"
        shifts += found
    assert len(set(shifts)) > 2  # drawn per example
    again, _ = _batches(data, time_shift=0.2)
    np.testing.assert_array_equal(aug, again)  # deterministic given seed and epoch


@pytest.mark.parametrize(
    "option, value, message",
    [
        (
            "freq_warp",
            -0.1,
            r"freq_warp \(the largest stretch .*\) must be in \[0, 0.5\], got -0.1",
        ),
        ("freq_warp", 0.6, r"freq_warp .* must be in \[0, 0.5\], got 0.6"),
        ("freq_warp", float("nan"), r"freq_warp .* must be in \[0, 0.5\], got nan"),
        ("time_shift", 0.9, r"time_shift \(the largest shift, .*\) must be in \[0, 0.5\]"),
    ],
)
def test_freq_warp_and_time_shift_errors_name_the_option(option, value, message):
    with pytest.raises(ValueError, match=message):
        _toy().tf_dataset("train", 8, **{option: value})


def test_mixup_mixes_inputs_and_labels_with_the_same_lambda():
    data = _toy(n=6, classes=3)
    plain_x = np.asarray(data.features["train"])
    onehot = np.eye(3, dtype=np.float32)[data.labels["train"]]
    xb, yb = next(iter(data.tf_dataset("train", 6, shuffle=False, mixup=0.4)))
    xb, yb = xb.numpy(), yb.numpy()
    assert yb.shape == (6, 3)
    np.testing.assert_allclose(yb.sum(1), 1.0, rtol=1e-6)
    partner = plain_x[::-1]
    # recover lambda from the inputs and check the labels used the same one
    for i in range(6):
        diff = plain_x[i] - partner[i]
        lam = float(np.sum((xb[i] - partner[i]) * diff) / np.sum(diff * diff))
        np.testing.assert_allclose(xb[i], lam * plain_x[i] + (1 - lam) * partner[i], atol=1e-4)
        np.testing.assert_allclose(yb[i], lam * onehot[i] + (1 - lam) * onehot[::-1][i], atol=1e-4)


def test_multi_label_dataset_and_errors():
    data = _toy(multi_label=True)
    _, yb = next(iter(data.tf_dataset("train", 4)))
    assert yb.dtype.name == "float32" and yb.shape == (4, 3)
    with pytest.raises(ValueError, match="channels must be 4"):
        data.tf_dataset("train", 4, channels=3)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.tf_dataset("dev", 4)
    with pytest.raises(ValueError, match="batch_size"):
        data.tf_dataset("train", 0)
    with pytest.raises(ValueError, match="mixup"):
        data.tf_dataset("train", 4, mixup=-1)
    empty = PreparedData.from_arrays(
        {"train": (np.zeros((2, 12, 8, 4)), [0, 1])}, class_names=["a", "b"]
    )
    with pytest.raises(ValueError, match="test split is empty"):
        empty.tf_dataset("test", 2)
    with pytest.raises(ValueError, match=r"\[N, frames, mels, 4\] .* or \[N, frames, mels, 1\]"):
        PreparedData.from_arrays(
            {"train": (np.zeros((2, 12, 8, 2)), [0, 1])}, class_names=["a", "b"]
        )
    log_mel = PreparedData.from_arrays(  # log-mel only: a "logmel16" cache's shape
        {"train": (np.zeros((2, 12, 8, 1)), [0, 1])}, class_names=["a", "b"]
    )
    assert log_mel.log_mel_only and log_mel.input_shape(channels=1) == (12, 8, 1)
