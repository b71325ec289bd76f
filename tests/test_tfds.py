"""``tfds:NAME`` datasets: TensorFlow Datasets builders through the registry and ``prepare``.

Real builders (spoken_digit, gtzan, crema_d, nsynth, ...) are exercised with
``tfds.testing.mock_data``, which generates examples from each builder's features without any
download; a tiny builder defined here is prepared for real by TFDS (``download_and_prepare``
writes its records into a temporary folder, no network) to cover multi-label classes and the
prepared/not-prepared paths.
"""

import errno
import sys

import numpy as np
import pytest

from keras_quaternion import datasets
from keras_quaternion.datasets.tfds import (
    TFDSError,
    TFDSMissingError,
    compact_waveform,
    resolve_splits,
)

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")


def tone_dataset(rate, seconds, labels, extra=None):
    """An ``as_dataset_fn`` for mock_data: one int64 PCM tone per label, pitch set by the label."""
    extra = extra or {}

    def as_dataset(self, split, **kwargs):
        t = np.arange(int(rate * seconds)) / rate

        def gen():
            for i, label in enumerate(labels):
                wave = 12000 * np.sin(2 * np.pi * (200 + 150 * label) * t)
                yield {
                    "audio": wave.astype(np.int64),
                    "label": label,
                    **{k: f"{v}{i % 3}" for k, v in extra.items()},
                }

        signature = {
            "audio": tf.TensorSpec([None], tf.int64),
            "label": tf.TensorSpec([], tf.int64),
            **{k: tf.TensorSpec([], tf.string) for k in extra},
        }
        return tf.data.Dataset.from_generator(gen, output_signature=signature)

    return as_dataset


class KqToyTags(tfds.core.GeneratorBasedBuilder):
    """A tiny multi-label audio builder TFDS prepares locally (nothing is downloaded)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict(
            {
                "audio": tfds.features.Audio(sample_rate=8000, dtype=np.int16),
                "tags": tfds.features.Sequence(
                    tfds.features.ClassLabel(names=["low", "mid", "high"])
                ),
                "speaker": tfds.features.Text(),
            }
        )
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(24, 0), "test": self._generate_examples(6, 100)}

    def _generate_examples(self, n, offset):
        t = np.arange(800) / 8000
        for i in range(n):
            tags = [k for k in range(3) if (i >> k) & 1] or [0]
            wave = sum(np.sin(2 * np.pi * (300 + 900 * k) * t) for k in tags) / len(tags)
            audio = (8000 * wave).astype(np.int16)
            yield offset + i, {"audio": audio, "tags": tags, "speaker": f"s{i % 3}"}


# ---------------------------------------------------------------------------------- registry


def test_tfds_names_resolve_without_importing_tfds():
    assert "tfds:gtzan" in datasets.names()
    assert "tfds:gtzan" not in list(datasets.names())
    spec = datasets.spec("tfds:gtzan")
    assert spec.name == "tfds:gtzan" and spec.needs_data_dir
    assert spec.options["train_split"] == "train" and spec.options["download"] is True
    with pytest.raises(ValueError, match="Unknown dataset 'tfds:'"):
        datasets.spec("tfds:")
    with pytest.raises(ValueError, match="unknown option.*label_keys"):
        datasets.load("tfds:gtzan", label_keys="x")


def test_kq_train_accepts_a_tfds_name():
    from keras_quaternion.training.dataset_options import check_dataset_name

    check_dataset_name("tfds:spoken_digit")  # no UsageError


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(TFDSMissingError, match=r"pip install 'keras-quaternion\[tfds\]'") as err:
        datasets.load("tfds:gtzan")
    assert isinstance(err.value, ImportError) and isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------ mocked builders


def test_prepare_spoken_digit_resamples_and_caches(tmp_path):
    from keras_quaternion.training.pipeline import prepare

    labels = [i % 10 for i in range(40)]
    with tfds.testing.mock_data(as_dataset_fn=tone_dataset(8000, 0.3, labels)):
        data = prepare(
            "tfds:spoken_digit",
            tmp_path / "tfds",
            sample_rate=16000,
            clip_seconds=0.25,
            n_mels=16,
            cache_dir=tmp_path / "cache",
            dataset_options={"validation_fraction": 0.25, "test_fraction": 0.25},
            progress=False,
        )
        again = prepare(
            "tfds:spoken_digit",
            tmp_path / "tfds",
            sample_rate=16000,
            clip_seconds=0.25,
            n_mels=16,
            cache_dir=tmp_path / "cache",
            dataset_options={"validation_fraction": 0.25, "test_fraction": 0.25},
            progress=False,
        )
    assert data.sizes() == {"train": 20, "validation": 10, "test": 10}
    assert data.class_names == [str(d) for d in range(10)] and not data.multi_label
    assert data.sample_rate == 16000 and data.features["train"].shape[1:] == (26, 16, 4)
    assert sorted(np.concatenate([data.labels[s] for s in data.labels]).tolist()) == sorted(labels)
    assert again.cache_path == data.cache_path


def test_waveforms_keep_int16_and_decode_to_the_native_scale(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=tone_dataset(8000, 0.1, [0, 1, 2] * 4)):
        ds = datasets.load("tfds:spoken_digit", tmp_path)
    ex = ds.splits["train"][0]
    assert ex.source.dtype == np.int16 and ex.sample_rate == 8000 and ds.sample_rate_hint == 8000
    wave = ds.waveform(ex, 16000)
    assert wave.dtype == np.float32 and wave.shape == (1600,)
    assert 0.3 < np.abs(wave).max() < 0.4  # 12000 / 32768
    assert (
        ex.meta["id"].startswith("spoken_digit:1.0.9/train[") and ex.meta["tfds_split"] == "train"
    )


def test_builder_splits_are_used_and_meta_kept(tmp_path):
    labels = [i % 6 for i in range(12)]
    fn = tone_dataset(16000, 0.05, labels, extra={"speaker_id": "spk"})
    with tfds.testing.mock_data(as_dataset_fn=fn):
        ds = datasets.load(
            "tfds:crema_d", tmp_path, validation_split="validation", test_split="test"
        )
    assert {s: len(v) for s, v in ds.splits.items()} == {"train": 12, "validation": 12, "test": 12}
    assert ds.class_names == ["NEU", "HAP", "SAD", "ANG", "FEA", "DIS"]
    assert ds.splits["test"][0].meta["speaker_id"] == "spk0"
    assert "validation = TFDS 'validation'" in ds.info["protocol"]
    assert ds.info["tfds"]["splits"] == {
        "train": "train",
        "validation": "validation",
        "test": "test",
    }


def test_gtzan_random_mock_and_seeded_carve(tmp_path):
    with tfds.testing.mock_data(num_examples=30):
        a = datasets.load("tfds:gtzan", tmp_path, seed=3)
        b = datasets.load("tfds:gtzan", tmp_path, seed=3)
    assert a.class_names[:2] == ["blues", "classical"] and a.sample_rate_hint == 22050
    assert [e.name for e in a.splits["test"]] == [e.name for e in b.splits["test"]]
    assert sum(len(v) for v in a.splits.values()) == 30


def test_nested_label_needs_label_key(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        with pytest.raises(TFDSError, match=r"several class label.*instrument/family.*label_key"):
            datasets.load("tfds:nsynth", tmp_path)
        ds = datasets.load("tfds:nsynth", tmp_path, label_key="instrument/family")
        with pytest.raises(TFDSError, match=r"label_key='colour' is not class label.*pitch"):
            datasets.load("tfds:nsynth", tmp_path, label_key="colour")
    assert ds.num_classes == 11 and ds.splits["train"][0].source.dtype == np.float32


@pytest.mark.parametrize(
    "name, message",
    [
        ("tfds:mnist", r"'tfds:mnist': the builder has no audio feature \(its features: image"),
        ("tfds:librispeech", r"no class label feature \(its features: speech \(Audio\), text"),
        ("tfds:gtzna", r"has no builder 'gtzna'; did you mean gtzan\?"),
    ],
)
def test_unusable_builders_are_named(tmp_path, name, message):
    with tfds.testing.mock_data(num_examples=2), pytest.raises(TFDSError, match=message):
        datasets.load(name, tmp_path)


def test_bad_split_options(tmp_path):
    with tfds.testing.mock_data(num_examples=2), pytest.raises(TFDSError, match="test_split"):
        datasets.load("tfds:gtzan", tmp_path, test_split=["a", "b"])
    with pytest.raises(TFDSError, match=r"names no split of the builder; its splits: \['train'\]"):
        resolve_splits("tfds:x", ["train"], "train", None, "test")
    with pytest.raises(ValueError, match="test_fraction \\+ validation_fraction must be < 0.9"):
        datasets.load("tfds:gtzan", validation_fraction=0.5, test_fraction=0.45)


def test_memory_limit_stops_with_a_slice_hint(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=tone_dataset(8000, 1.0, [0, 1] * 10)):
        with pytest.raises(TFDSError, match=r"max_memory_gb.*train_split='train\[:25%\]'"):
            datasets.load("tfds:spoken_digit", tmp_path, max_memory_gb=1e-4)


def test_compact_waveform_widths():
    assert compact_waveform(np.array([70000, -70000], np.int64)).dtype == np.float32
    stereo = np.array([[100, 300], [-100, -300]], np.int64)
    assert compact_waveform(stereo).tolist() == [200, -200]


# ---------------------------------------------------------------------- a builder TFDS prepares


def test_real_prepare_multi_label_and_download_false(tmp_path):
    with pytest.raises(TFDSError, match="is not prepared in .*download=False"):
        datasets.load("tfds:kq_toy_tags", tmp_path, download=False)
    ds = datasets.load("tfds:kq_toy_tags", tmp_path, validation_fraction=0.25)
    assert ds.multi_label and ds.class_names == ["low", "mid", "high"]
    assert {s: len(v) for s, v in ds.splits.items()} == {"train": 18, "validation": 6, "test": 6}
    assert ds.labels("test").shape == (6, 3) and set(np.unique(ds.labels("test"))) <= {0.0, 1.0}
    assert (tmp_path / "kq_toy_tags" / "1.0.0" / "dataset_info.json").is_file()
    again = datasets.load("tfds:kq_toy_tags", tmp_path, download=False)  # prepared: no download
    assert [e.name for e in again.splits["test"]] == [e.name for e in ds.splits["test"]]


def test_failed_download_names_the_folder(tmp_path, monkeypatch):
    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(KqToyTags, "download_and_prepare", full_disk)
    with pytest.raises(TFDSError, match=r"could not download and prepare it into .*No space left"):
        datasets.load("tfds:kq_toy_tags", tmp_path / "full")


def test_kq_data_prepares_a_tfds_builder(tmp_path):
    from click.testing import CliRunner

    from keras_quaternion.cli.data import data_group as main

    result = CliRunner().invoke(main, ["download", "tfds:kq_toy_tags", "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (
        f"tfds:kq_toy_tags is prepared in '{tmp_path / 'kq_toy_tags' / '1.0.0'}'" in result.output
    )
    assert f"kq-train --dataset tfds:kq_toy_tags --data-dir {tmp_path}\n" in result.output
    assert datasets.load("tfds:kq_toy_tags", tmp_path, download=False).multi_label
    with tfds.testing.mock_data(num_examples=2):
        result = CliRunner().invoke(main, ["download", "tfds:mnist", "--to", str(tmp_path)])
    assert result.exit_code == 1 and "Error: Dataset 'tfds:mnist': the builder has no audio" in (
        result.output
    )
