"""Tests for keras_quaternion.datasets: every loader on a tiny fixture in its real layout."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_quaternion import datasets
from keras_quaternion.datasets import DatasetLayoutError, Example, stratified_holdout
from keras_quaternion.datasets.speech_commands import COMMAND_WORDS

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_FSDD = REPO_ROOT.parent / "shared" / "data" / "fsdd"
SR = 8000


def wav(path, seconds=0.1, freq=440.0, sr=SR):
    """Write a real 16-bit WAV of a tone (frequency tagged so files differ)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
    return path


def corrupt(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage bytes, not a RIFF header" * 4)
    return path


def write_csv(path, header, rows, comments=()):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        for c in comments:
            f.write(c + "\n")
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def all_examples(ds):
    return [e for s in ("train", "validation", "test") for e in ds.splits[s]]


# ----------------------------------------------------------------------------- registry


def test_names_and_unknown_name():
    assert datasets.names() == sorted(
        [
            "audioset",
            "csv",
            "esc50",
            "folder",
            "fsdd",
            "gtzan",
            "ravdess",
            "speech_commands",
            "synthetic",
            "urbansound8k",
        ]
    )
    with pytest.raises(ValueError, match="Unknown dataset 'nope'.*esc50.*synthetic"):
        datasets.load("nope")


def test_unknown_option_and_needless_data_dir(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['folds'\].*fold=1"):
        datasets.load("esc50", tmp_path, folds=2)
    with pytest.raises(ValueError, match="takes no data_dir"):
        datasets.load("synthetic", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["fsdd", "esc50", "gtzan", "audioset", "folder"])
def test_missing_data_dir_and_missing_folder(name, tmp_path):
    with pytest.raises(DatasetLayoutError, match="needs data_dir") as err:
        datasets.load(name)
    assert "Expected layout" in str(err.value)
    with pytest.raises(DatasetLayoutError, match="does not exist") as err:
        datasets.load(name, tmp_path / "absent")
    assert str(tmp_path / "absent") in str(err.value)
    assert datasets.expected_layout(name) in str(err.value)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_options():
    a = datasets.load("synthetic", samples_per_class=5, sample_rate=8000, clip_seconds=0.3, seed=4)
    b = datasets.load("synthetic", samples_per_class=5, sample_rate=8000, clip_seconds=0.3, seed=4)
    c = datasets.load("synthetic", samples_per_class=5, sample_rate=8000, clip_seconds=0.3, seed=5)
    assert a.num_classes >= 8 and a.sample_rate_hint == 8000
    assert [len(a.splits[s]) for s in ("train", "validation", "test")] == [30, 10, 10]
    for x, y, z in zip(all_examples(a), all_examples(b), all_examples(c)):
        assert x.source.shape == (2400,) and x.source.dtype == np.float32
        np.testing.assert_array_equal(x.source, y.source)
        assert x.label == y.label == z.label
        assert not np.allclose(x.source, z.source)
    peaks = [np.max(np.abs(e.source)) for e in all_examples(a)]
    assert 0.04 < min(peaks) and max(peaks) < 0.91
    wave = a.waveform(a.splits["test"][0], 16000, clip_seconds=0.5)
    assert wave.shape == (8000,)
    assert not wave[4900:].any()  # padded after the resampled 0.3 s
    with pytest.raises(ValueError, match=r"samples_per_class=2 is out of range 3..100000"):
        datasets.load("synthetic", samples_per_class=2)
    with pytest.raises(ValueError, match="clip_seconds"):
        datasets.load("synthetic", clip_seconds=0.01)
    with pytest.raises(ValueError, match="sample_rate"):
        datasets.load("synthetic", sample_rate=4000)


def _features(w, sr):
    """Simple hand features: spectral shape, flatness, centroid slope, envelope variability."""
    n, hop = 256, 128
    frames = np.lib.stride_tricks.sliding_window_view(w, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10
    edges = np.unique(np.geomspace(2, power.shape[1], 20).astype(int))
    bands = 10 * np.log10(
        np.stack([power[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1)
    )
    energy = 10 * np.log10(power.sum(1))
    active = energy > energy.max() - 15
    shape = bands[active].mean(0)
    shape -= shape.mean()
    p = power[active]
    flatness = np.mean(np.log(p), 1) - np.log(np.mean(p, 1))
    centroid = (p * np.arange(p.shape[1])).sum(1) / p.sum(1)
    t = np.arange(len(centroid)) - (len(centroid) - 1) / 2
    slope = (t @ centroid) / max(t @ t, 1.0) * len(centroid) / p.shape[1]
    env = energy[active]
    wobble = np.std(np.diff(env)) if len(env) > 2 else 0.0
    extra = [flatness.mean(), 5 * slope, wobble / 5, np.std(env) / 5]
    return np.nan_to_num(np.concatenate([shape / 10, extra]))


def test_synthetic_classes_are_learnable():
    ds = datasets.load("synthetic", samples_per_class=20, sample_rate=SR, clip_seconds=0.5, seed=0)
    train = ds.splits["train"]
    held = ds.splits["validation"] + ds.splits["test"]
    x_tr = np.stack([_features(e.source, SR) for e in train])
    x_ev = np.stack([_features(e.source, SR) for e in held])
    y_tr = np.array([e.label for e in train])
    y_ev = np.array([e.label for e in held])
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    centroids = np.stack([((x_tr - mu) / sd)[y_tr == c].mean(0) for c in range(ds.num_classes)])
    dist = ((((x_ev - mu) / sd)[:, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = np.mean(np.argmin(dist, 1) == y_ev)
    assert accuracy >= 3.0 / ds.num_classes, accuracy  # chance is 0.1 with 40 held-out clips


# ----------------------------------------------------------------------------- fsdd


@pytest.fixture
def fsdd_dir(tmp_path):
    root = tmp_path / "fsdd"
    for d in range(10):
        for speaker in ("theo", "george", "jackson"):
            for take in (0, 3, 5, 6, 7):
                wav(root / "recordings" / f"{d}_{speaker}_{take}.wav", 0.05, 200 + 50 * d)
    (root / "recordings" / "README.txt").write_text("not audio")
    (root / "speakers.json").write_text('{"theo": {"gender": "male", "accent": "USA/neutral"}}')
    return root


def test_fsdd_takes_split(fsdd_dir):
    ds = datasets.load("fsdd", fsdd_dir)
    assert ds.class_names == [str(d) for d in range(10)] and ds.sample_rate_hint == 8000
    assert len(ds.splits["test"]) == 10 * 3 * 2
    assert {e.meta["take"] for e in ds.splits["test"]} == {0, 3}
    assert len(ds.splits["validation"]) == 9  # round(0.1 * 90)
    assert len(ds.splits["train"]) == 81
    theo = next(e for e in ds.splits["test"] if e.meta["speaker"] == "theo")
    assert theo.meta["accent"] == "USA/neutral"
    again = datasets.load("fsdd", fsdd_dir)
    assert [e.source for e in again.splits["validation"]] == [
        e.source for e in ds.splits["validation"]
    ]
    # data_dir may also be the recordings/ folder itself
    assert len(datasets.load("fsdd", fsdd_dir / "recordings").splits["test"]) == 60


def test_fsdd_speaker_split_and_errors(fsdd_dir, tmp_path):
    ds = datasets.load("fsdd", fsdd_dir, split="speaker", validation_speakers=["jackson"])
    assert {e.meta["speaker"] for e in ds.splits["test"]} == {"theo"}
    assert {e.meta["speaker"] for e in ds.splits["validation"]} == {"jackson"}
    assert {e.meta["speaker"] for e in ds.splits["train"]} == {"george"}
    with pytest.raises(ValueError, match=r"unknown speaker\(s\) \['bob'\].*george"):
        datasets.load("fsdd", fsdd_dir, split="speaker", test_speakers="bob")
    with pytest.raises(ValueError, match="overlap"):
        datasets.load("fsdd", fsdd_dir, split="speaker", validation_speakers="theo")
    with pytest.raises(ValueError, match="split='random' is not allowed"):
        datasets.load("fsdd", fsdd_dir, split="random")
    (tmp_path / "wrong").mkdir()
    with pytest.raises(DatasetLayoutError, match="no 'recordings/' folder") as err:
        datasets.load("fsdd", tmp_path / "wrong")
    assert "{digit}_{speaker}_{take}.wav" in str(err.value)


@pytest.mark.skipif(
    not (REAL_FSDD / "recordings").is_dir(),
    reason=f"real FSDD recordings not found at {REAL_FSDD} (shared data folder absent)",
)
def test_fsdd_real_recordings():
    ds = datasets.load("fsdd", REAL_FSDD)
    assert sum(len(v) for v in ds.splits.values()) == 3000
    assert len(ds.splits["test"]) == 300
    assert len(ds.splits["validation"]) == 270
    speaker = datasets.load("fsdd", REAL_FSDD, split="speaker")
    assert len(speaker.splits["test"]) == 500 and len(speaker.splits["validation"]) == 500
    subset = Example(ds.splits["test"][0].source, 0)
    wave = ds.waveform(subset, 16000, clip_seconds=1.0)
    assert wave.shape == (16000,) and 0.01 < np.max(np.abs(wave)) <= 1.0
    ds.splits["test"] = ds.splits["test"][:20]
    batch = ds.decode("test", sample_rate=8000, clip_seconds=1.0, progress=False)
    assert batch.waveforms.shape == (20, 8000) and batch.skipped == []


# ----------------------------------------------------------------------------- gtzan


def test_gtzan_skips_unreadable_jazz_00054(tmp_path):
    root = tmp_path / "gtzan"
    from keras_quaternion.datasets.gtzan import GENRES

    for g_i, genre in enumerate(GENRES):
        for n in range(5):
            wav(root / "genres_original" / genre / f"{genre}.{n:05d}.wav", 0.05, 300 + 40 * g_i)
    corrupt(root / "genres_original" / "jazz" / "jazz.00054.wav")
    ds = datasets.load("gtzan", root, seed=3)
    assert ds.class_names == list(GENRES)
    sizes = [len(ds.splits[s]) for s in ("train", "validation", "test")]
    assert sum(sizes) == 51 and sizes[1] >= 5 and sizes[2] >= 5
    tracks = {e.meta["track"]: s for s in ds.splits for e in ds.splits[s]}
    split_of_bad = tracks["jazz.00054"]
    with pytest.warns(UserWarning, match="jazz.00054.wav"):
        batch = ds.decode(split_of_bad, sample_rate=SR, clip_seconds=0.05, progress=False)
    assert [Path(name).name for name, _ in batch.skipped] == ["jazz.00054.wav"]
    assert len(batch.examples) == len(ds.splits[split_of_bad]) - 1
    assert batch.labels.shape == (len(batch.examples),)
    # plain <genre>/ folders work too; a missing genre is a layout error naming it
    plain = tmp_path / "plain"
    for genre in GENRES[:-1]:
        wav(plain / genre / f"{genre}.00000.wav", 0.05)
    with pytest.raises(DatasetLayoutError, match=r"\['rock'\] are missing"):
        datasets.load("gtzan", plain)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.load("gtzan", root, test_fraction=1.5)


# ----------------------------------------------------------------------------- esc50


@pytest.fixture
def esc50_dir(tmp_path):
    root = tmp_path / "ESC-50"
    rows = []
    classes = [(0, "dog", True), (1, "rooster", True), (19, "thunderstorm", False)]
    for fold in range(1, 6):
        for target, category, esc10 in classes:
            for take in "AB":
                src = f"{fold}{target}00"
                name = f"{fold}-{src}-{take}-{target}.wav"
                wav(root / "audio" / name, 0.05, 200 + 20 * target)
                rows.append([name, fold, target, category, esc10, src, take])
    corrupt(root / "audio" / "2-3000-A-19.wav")
    (root / "audio" / "3-3001-A-19.wav").write_bytes(b"")
    rows += [
        ["2-3000-A-19.wav", 2, 19, "thunderstorm", False, "3000", "A"],
        ["3-3001-A-19.wav", 3, 19, "thunderstorm", False, "3001", "A"],
    ]
    write_csv(
        root / "meta" / "esc50.csv",
        ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
        rows,
    )
    return root


def test_esc50_folds_and_subset(esc50_dir):
    ds = datasets.load("esc50", esc50_dir, fold=4)
    assert ds.class_names == ["dog", "rooster", "thunderstorm"]
    assert {e.meta["fold"] for e in ds.splits["test"]} == {4}
    assert len(ds.splits["test"]) == 6
    train_src = {e.meta["src_file"] for e in ds.splits["train"]}
    val_src = {e.meta["src_file"] for e in ds.splits["validation"]}
    assert val_src and not train_src & val_src  # grouped by source recording
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 26
    ten = datasets.load("esc50", esc50_dir, fold=1, esc10=True)
    assert ten.class_names == ["dog", "rooster"]
    assert set(ten.labels("test").tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"fold=6 is out of range 1..5"):
        datasets.load("esc50", esc50_dir, fold=6)
    with pytest.raises(ValueError, match="fold must be an integer"):
        datasets.load("esc50", esc50_dir, fold="2")


def test_esc50_corrupt_and_empty_files_are_reported(esc50_dir):
    ds = datasets.load("esc50", esc50_dir, fold=1)
    ds.splits["train"] = ds.splits["train"] + ds.splits["validation"]
    with pytest.warns(UserWarning, match=r"Skipped 2 of 26") as rec:
        batch = ds.decode("train", sample_rate=SR, clip_seconds=0.1, progress=False)
    message = str(rec[0].message)
    assert "2-3000-A-19.wav" in message and "3-3001-A-19.wav" in message
    reasons = dict((Path(n).name, r) for n, r in batch.skipped)
    assert "empty (0 bytes)" in reasons["3-3001-A-19.wav"]
    assert "not a readable WAV" in reasons["2-3000-A-19.wav"]
    assert batch.waveforms.shape == (24, 800)


def test_esc50_wrong_layout(esc50_dir):
    os.remove(esc50_dir / "meta" / "esc50.csv")
    with pytest.raises(DatasetLayoutError, match="'esc50.csv' is missing") as err:
        datasets.load("esc50", esc50_dir)
    assert "meta/" in str(err.value) and str(esc50_dir) in str(err.value)
    write_csv(esc50_dir / "meta" / "esc50.csv", ["filename", "fold"], [["a.wav", 1]])
    with pytest.raises(DatasetLayoutError, match=r"lacks the column\(s\) \['target'"):
        datasets.load("esc50", esc50_dir)


# ----------------------------------------------------------------------------- ravdess


def test_ravdess_actor_split(tmp_path):
    root = tmp_path / "RAVDESS" / "Audio_Speech_Actors_01-24"
    for actor in (1, 2, 3, 19, 20, 21, 24):
        for emotion in (1, 5, 8):
            for vocal in (1, 2):
                name = f"03-{vocal:02d}-{emotion:02d}-01-01-01-{actor:02d}.wav"
                wav(root / f"Actor_{actor:02d}" / name, 0.05, 100 * emotion)
        wav(root / f"Actor_{actor:02d}" / f"01-01-01-01-01-01-{actor:02d}.wav", 0.05)  # AV
    ds = datasets.load("ravdess", tmp_path / "RAVDESS")
    assert ds.class_names[4] == "angry" and ds.num_classes == 8
    assert {e.meta["actor"] for e in ds.splits["test"]} == {21, 24}
    assert {e.meta["actor"] for e in ds.splits["validation"]} == {19, 20}
    assert {e.meta["actor"] for e in ds.splits["train"]} == {1, 2, 3}
    assert {e.meta["vocal_channel"] for e in all_examples(ds)} == {"speech"}
    assert sorted({e.label for e in ds.splits["train"]}) == [0, 4, 7]
    assert len(ds.splits["train"]) == 9
    both = datasets.load(
        "ravdess", tmp_path / "RAVDESS", vocal_channel="both", test_actors=[1], validation_actors=[]
    )
    assert len(both.splits["test"]) == 6 and not both.splits["validation"]
    with pytest.raises(ValueError, match=r"outside 1..24: \[25\]"):
        datasets.load("ravdess", tmp_path / "RAVDESS", test_actors=[25])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no 'Actor_XX' folders"):
        datasets.load("ravdess", tmp_path / "empty")


# ----------------------------------------------------------------------------- urbansound8k


def test_urbansound8k_folds(tmp_path):
    root = tmp_path / "UrbanSound8K"
    rows = []
    classes = {0: "air_conditioner", 3: "dog_bark", 6: "gun_shot"}
    for fold in (1, 2, 3):
        for cid, cname in classes.items():
            for fs in range(3):
                fsid = 1000 * fold + 10 * cid + fs
                for sl in range(2):
                    name = f"{fsid}-{cid}-0-{sl}.wav"
                    wav(root / "audio" / f"fold{fold}" / name, 0.05, 150 + 30 * cid)
                    rows.append([name, fsid, sl, sl + 1, 1, fold, cid, cname])
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    write_csv(root / "metadata" / "UrbanSound8K.csv", header, rows)
    ds = datasets.load("urbansound8k", root, fold=3, validation_fraction=0.2)
    assert ds.class_names == ["air_conditioner", "dog_bark", "gun_shot"]
    assert ds.sample_rate_hint is None
    assert {e.meta["fold"] for e in ds.splits["test"]} == {3} and len(ds.splits["test"]) == 18
    tr = {e.meta["fsID"] for e in ds.splits["train"]}
    va = {e.meta["fsID"] for e in ds.splits["validation"]}
    assert va and not tr & va
    assert set(ds.labels("validation").tolist()) == {0, 1, 2}  # stratified
    batch = ds.decode("test", sample_rate=16000, clip_seconds=0.1, progress=False)
    assert batch.waveforms.shape == (18, 1600)
    with pytest.raises(ValueError, match=r"fold=11 is out of range 1..10"):
        datasets.load("urbansound8k", root, fold=11)
    with pytest.raises(DatasetLayoutError, match="no rows of fold 7"):
        datasets.load("urbansound8k", root, fold=7)


# ----------------------------------------------------------------------------- speech_commands


@pytest.fixture
def speech_dir(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    val, test = [], []
    for w_i, word in enumerate([*COMMAND_WORDS, "bed", "cat"]):
        for n, spk in enumerate(["aa11", "bb22", "cc33", "dd44"]):
            wav(root / word / f"{spk}_nohash_0.wav", 0.05, 200 + 37 * w_i)
            if n == 2:
                val.append(f"{word}/{spk}_nohash_0.wav")
            if n == 3:
                test.append(f"{word}/{spk}_nohash_0.wav")
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = np.linspace(-0.5, 0.5, 10 * SR, dtype=np.float32)  # ramp: offset is visible
    (root / "_background_noise_").mkdir()
    sf.write(str(root / "_background_noise_" / "ramp.wav"), noise, SR, subtype="FLOAT")
    (root / "_background_noise_" / "README.md").write_text("noise")
    return root


def test_speech_commands_35_and_12(speech_dir):
    ds = datasets.load("speech_commands", speech_dir)
    assert ds.class_names == sorted([*COMMAND_WORDS, "bed", "cat"])
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [24, 12, 12]
    assert {e.meta["speaker"] for e in ds.splits["test"]} == {"dd44"}

    ds12 = datasets.load(
        "speech_commands", speech_dir, task=12, silence_fraction=0.2, unknown_fraction=0.1, seed=1
    )
    assert ds12.class_names == [*COMMAND_WORDS, "_unknown_", "_silence_"]
    counts = ds12.counts()
    assert counts["train"]["_silence_"] == 4 and counts["train"]["_unknown_"] == 2
    assert counts["test"]["_silence_"] == 2 and counts["test"]["_unknown_"] == 1
    assert counts["test"]["yes"] == 1
    silence = [e for e in all_examples(ds12) if e.label == 11]
    for e in silence:
        split = next(s for s in ds12.splits if e in ds12.splits[s])
        lo, hi = {"train": (0, 8), "validation": (8, 9), "test": (9, 10)}[split]
        assert lo <= e.offset and e.offset + e.duration <= hi + 1e-9
        wave = ds12.waveform(e, SR, clip_seconds=1.0)
        expected = -0.5 + (e.offset + np.arange(SR) / SR) / 10.0
        np.testing.assert_allclose(wave, expected, atol=2e-4)
    all_unknown = datasets.load("speech_commands", speech_dir, task=12, unknown_fraction=None)
    assert all_unknown.counts()["train"]["_unknown_"] == 4
    with pytest.raises(ValueError, match=r"task=20 is not allowed; choose one of \[35, 12\]"):
        datasets.load("speech_commands", speech_dir, task=20)


def test_speech_commands_layout_errors(speech_dir):
    for p in (speech_dir / "_background_noise_").iterdir():
        p.unlink()
    (speech_dir / "_background_noise_").rmdir()
    assert datasets.load("speech_commands", speech_dir).num_classes == 12  # 35-task needs no noise
    with pytest.raises(DatasetLayoutError, match="needs the '_background_noise_/' folder"):
        datasets.load("speech_commands", speech_dir, task=12)
    os.remove(speech_dir / "testing_list.txt")
    with pytest.raises(DatasetLayoutError, match="'testing_list.txt' is missing"):
        datasets.load("speech_commands", speech_dir)


# ----------------------------------------------------------------------------- audioset


def _class_csv(root, n=527):
    rows = [[i, f"/m/{i:05d}", f"Class {i}"] for i in range(n)]
    return write_csv(root / "class_labels_indices.csv", ["index", "mid", "display_name"], rows)


def _h5(path, n, rate, rng):
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    target = np.zeros((n, 527), bool)
    for i in range(n):
        target[i, rng.choice(527, size=1 + i % 3, replace=False)] = True
    target[:, 0] = True  # a frequent class, like Speech
    waveform = rng.integers(-20000, 20000, size=(n, rate // 10), dtype=np.int16)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "audio_name", data=np.array([f"Yclip{i:03d}.wav".encode() for i in range(n)])
        )
        f.create_dataset("waveform", data=waveform)
        f.create_dataset("target", data=target)
        f.attrs["sample_rate"] = rate
    return waveform, target


def test_audioset_hdf5(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "audioset"
    _class_csv(root / "metadata")
    h5dir = root / "hdf5s" / "waveforms"
    _h5(h5dir / "balanced_train_segments.h5", 20, 16000, rng)
    eval_wave, eval_target = _h5(h5dir / "eval_segments.h5", 5, 16000, rng)
    ds = datasets.load("audioset", root)
    assert ds.multi_label and ds.num_classes == 527 and ds.class_names[3] == "Class 3"
    assert ds.info["layout"] == "hdf5" and ds.sample_rate_hint == 16000
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 20
    assert len(ds.splits["validation"]) == 2
    np.testing.assert_array_equal(ds.labels("test"), eval_target.astype(np.float32))
    batch = ds.decode("test", sample_rate=16000, clip_seconds=0.1, progress=False)
    np.testing.assert_allclose(batch.waveforms, eval_wave / 32768.0, atol=1e-7)
    assert batch.labels.shape == (5, 527) and batch.labels.dtype == np.float32
    down = ds.waveform(ds.splits["test"][0], 8000)
    assert down.shape == (800,)
    assert "Class 0" in ds.describe(max_classes=5) and "... and 522 more classes" in ds.describe(5)
    with pytest.raises(ValueError, match="train='all' is not allowed"):
        datasets.load("audioset", root, train="all")
    with pytest.raises(DatasetLayoutError, match="unbalanced_train"):
        datasets.load("audioset", root, train="full")


def test_audioset_clips_layout(tmp_path):
    root = tmp_path / "audioset"
    _class_csv(root)
    header = [
        "# Segments csv created Sun Mar  5 10:54:31 2017",
        "# num_ytids=4, num_segs=4, num_unique_labels=3, num_positive_labels=5",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    for set_name, ids in (("balanced_train_segments", "abcdefghij"), ("eval_segments", "xyz")):
        lines = list(header)
        for k, c in enumerate(ids):
            lines.append(f'-{c}_{c}{c}, {k}0.000, {k + 1}0.000, "/m/00000,/m/{k % 4 + 1:05d}"')
            if c != "j" and c != "z":  # one segment of each set has no clip on disk
                wav(root / "audio" / set_name / f"Y-{c}_{c}{c}.wav", 0.05)
        lines.append('-q_qq, 0.000, 10.000, "/m/unknown_mid"')
        (root / f"{set_name}.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as rec:
        ds = datasets.load("audioset", root, seed=2)
    messages = " | ".join(str(r.message) for r in rec)
    assert "1 of 11 segments of 'eval_segments.csv' have no clip" not in messages
    assert "2 of 11 segments of 'balanced_train_segments.csv' have no clip" in messages
    assert "2 of 4 segments of 'eval_segments.csv' have no clip" in messages
    assert "['/m/unknown_mid']" in messages
    assert ds.info["layout"] == "clips"
    assert len(ds.splits["test"]) == 2
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 9
    first = ds.splits["test"][0]
    assert first.meta["ytid"] == "-x_xx" and Path(first.source).name == "Y-x_xx.wav"
    assert np.flatnonzero(first.label).tolist() == [0, 1]
    os.remove(root / "eval_segments.csv")
    with (
        pytest.warns(UserWarning, match="balanced_train_segments"),
        pytest.raises(DatasetLayoutError, match="'eval_segments.csv' is missing"),
    ):
        datasets.load("audioset", root)


# ----------------------------------------------------------------------------- folder / csv


def test_folder_classes_and_splits(tmp_path):
    root = tmp_path / "mine"
    for c in ("cat", "dog"):
        for i in range(10):
            wav(root / c / ("deep" if i % 2 else "") / f"{c}{i}.flac", 0.05)
    (root / "dog" / "notes.txt").write_text("not audio")
    ds = datasets.load("folder", root)
    assert ds.class_names == ["cat", "dog"]
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [14, 2, 4]
    assert any(e.meta["relpath"].startswith("deep/") for e in all_examples(ds))

    split_root = tmp_path / "split"
    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(6):
                wav(split_root / split / c / f"{i}.wav", 0.05)
    ds2 = datasets.load("folder", split_root)
    assert ds2.info["options"]["layout"] == "splits"
    assert len(ds2.splits["test"]) == 12
    assert len(ds2.splits["train"]) + len(ds2.splits["validation"]) == 12
    assert ds2.splits["validation"]
    (root / "bird").mkdir()
    with pytest.raises(DatasetLayoutError, match="class folder 'bird' has no audio files"):
        datasets.load("folder", root)


def test_csv_loader(tmp_path):
    root = tmp_path / "own"
    rows = []
    for i in range(12):
        label = "yes" if i % 2 else "no"
        wav(root / "clips" / f"{i}.wav", 0.05)
        rows.append([f"clips/{i}.wav", label, "test" if i < 4 else "train"])
    path = write_csv(root / "labels.csv", ["path", "label", "split"], rows)
    ds = datasets.load("csv", root)  # the folder holding one CSV
    assert ds.class_names == ["no", "yes"]
    assert len(ds.splits["test"]) == 4 and ds.splits["validation"]
    assert Path(ds.splits["test"][0].source) == root / "clips" / "0.wav"
    assert datasets.load("csv", path, classes=["yes", "no"]).splits["test"][0].label == 1
    with pytest.raises(DatasetLayoutError, match=r"row 1 has label\(s\) \['no'\] not in classes"):
        datasets.load("csv", path, classes=["yes"])

    multi = write_csv(
        root / "multi" / "m.csv",
        ["path", "label"],
        [[str(root / "clips" / f"{i}.wav"), "a;b" if i % 3 == 0 else "c"] for i in range(12)],
    )
    dm = datasets.load("csv", multi, multi_label=True)
    assert dm.multi_label and dm.class_names == ["a", "b", "c"]
    labels = np.concatenate([dm.labels(s) for s in ("train", "validation", "test")])
    assert labels.shape == (12, 3) and labels.sum() == 16
    bad = write_csv(root / "bad" / "b.csv", ["path", "label", "split"], [["x.wav", "a", "dev2"]])
    with pytest.raises(DatasetLayoutError, match="split 'dev2'"):
        datasets.load("csv", bad)
    with pytest.raises(DatasetLayoutError, match="expected exactly one .csv"):
        datasets.load("csv", tmp_path)


# ----------------------------------------------------------------------------- helpers


def test_stratified_holdout_groups_and_determinism():
    exs = [Example(f"f{i}.wav", i % 3, {"spk": i // 6}) for i in range(60)]
    kept, held = stratified_holdout(exs, 0.2, seed=7, group=lambda e: e.meta["spk"])
    assert len(kept) + len(held) == 60 and 6 <= len(held) <= 18
    assert not {e.meta["spk"] for e in kept} & {e.meta["spk"] for e in held}
    again = stratified_holdout(exs, 0.2, seed=7, group=lambda e: e.meta["spk"])[1]
    assert [e.source for e in held] == [e.source for e in again]
    kept, held = stratified_holdout(exs, 0.1, seed=1)
    assert len(held) == 6 and sorted(e.label for e in held) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="fraction must be in"):
        stratified_holdout(exs, 1.0, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=60),
    fraction=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**16),
    grouped=st.booleans(),
)
def test_stratified_holdout_properties(labels, fraction, seed, grouped):
    exs = [Example(f"{i}.wav", lab, {"g": i // 3}) for i, lab in enumerate(labels)]
    group = (lambda e: e.meta["g"]) if grouped else None
    kept, held = stratified_holdout(exs, fraction, seed=seed, group=group)
    assert sorted(e.source for e in kept + held) == sorted(e.source for e in exs)
    again = stratified_holdout(exs, fraction, seed=seed, group=group)
    assert [e.source for e in again[1]] == [e.source for e in held]
    if grouped:
        assert not {e.meta["g"] for e in kept} & {e.meta["g"] for e in held}
    else:
        assert len(held) <= max(1, round(fraction * len(exs)))
        assert {e.label for e in kept} == set(labels)  # no class is emptied


def test_describe_and_counts():
    ds = datasets.load("synthetic", samples_per_class=3, sample_rate=8000, clip_seconds=0.1)
    text = ds.describe()
    assert "synthetic: 10 classes" in text and "up_chirp" in text
    assert ds.counts()["test"]["beeps"] == 1
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ds.labels("dev")
