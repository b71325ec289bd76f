"""PANNs checkpoints without PyTorch: the restricted reader, the key mapping, golden outputs."""

import collections
import os
import pickle
import sys
import types
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO_ROOT  # noqa: E402

from keras_quaternion import models  # noqa: E402
from keras_quaternion.features import FeatureConfig, log_mel  # noqa: E402
from keras_quaternion.models import CheckpointError, from_panns  # noqa: E402
from keras_quaternion.models.torch_checkpoint import read_torch_checkpoint  # noqa: E402

PANNS_DIR = REPO_ROOT.parent / "shared" / "data" / "panns"


# --- a writer of PyTorch's zip format, for checkpoints the tests make ---------------------------


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def _fake_torch():
    """Modules named like torch's, so that pickle writes torch's global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: the reader has its own
        raise AssertionError("not for reading")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storages = {}
    for name in ("FloatStorage", "LongStorage"):
        storages[name] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storages[name])
    torch._utils = utils
    return torch, utils, storages


class _Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        hooks = collections.OrderedDict()
        return self.rebuild, (self.storage, 0, tuple(self.shape), stride, False, hooks)


def write_torch_checkpoint(path, obj_of_arrays, monkeypatch, name="ckpt"):
    """``torch.save`` of ``obj_of_arrays`` (a dict with a state dict of numpy arrays), no torch."""
    torch, utils, storages = _fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    blobs = {}

    def tensor(array):
        key = str(len(blobs))
        blobs[key] = np.ascontiguousarray(array)
        return _Tensor(_Storage(key, blobs[key]), array.shape, utils._rebuild_tensor_v2)

    state = collections.OrderedDict((k, tensor(v)) for k, v in obj_of_arrays["model"].items())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                kind = "LongStorage" if obj.array.dtype == np.int64 else "FloatStorage"
                return ("storage", storages[kind], obj.key, "cpu", obj.array.size)
            return None

    with zipfile.ZipFile(path, "w") as archive:
        with archive.open(f"{name}/data.pkl", "w") as handle:
            Pickler(handle, protocol=2).dump({**obj_of_arrays, "model": state})
        for key, array in blobs.items():
            archive.writestr(
                f"{name}/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes()
            )
        archive.writestr(f"{name}/version", "3\n")
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    return path


def panns_state_of(model, rng):
    """A PANNs-format state dict with random values for every weight of a registry model."""
    state = collections.OrderedDict()
    state["spectrogram_extractor.stft.conv_real.weight"] = rng.normal(size=(3, 1, 4)).astype("f4")
    state["logmel_extractor.melW"] = rng.normal(size=(3, 64)).astype("f4")
    for layer in model.layers:
        if not layer.weights:
            continue
        module = _panns_module(layer.name)
        kind = type(layer).__name__
        shapes = [tuple(w.shape) for w in layer.weights]
        if kind == "BatchNormalization":
            for param in ("weight", "bias", "running_mean", "running_var"):
                state[f"{module}.{param}"] = rng.uniform(0.5, 1.5, size=shapes[0]).astype("f4")
            state[f"{module}.num_batches_tracked"] = np.array(7, np.int64)
        else:
            kernel = rng.normal(size=shapes[0]).astype("f4")
            order = (3, 2, 0, 1) if kind == "Conv2D" else (1, 0)
            state[f"{module}.weight"] = kernel.transpose(order)
            if len(shapes) > 1:
                state[f"{module}.bias"] = rng.normal(size=shapes[1]).astype("f4")
    return state


def _panns_module(layer_name):
    """The PANNs module path of a registry layer name (the inverse of the converter's map)."""
    import re

    name = re.sub(
        r"^resnet_layer(\d)_block(\d+)_",
        lambda m: f"resnet.layer{m.group(1)}.{int(m.group(2)) - 1}.",
        layer_name,
    )
    name = name.replace("downsample_conv", "downsample.1").replace("downsample_bn", "downsample.2")
    return re.sub(r"^(conv_block\d+|conv_block_after1)_", r"\1.", name)


# --- golden files made with PANNs' own code -----------------------------------------------------


@pytest.fixture(scope="module")
def panns_dir():
    if not (PANNS_DIR / "waveform_32k.npy").is_file():
        pytest.skip(f"PANNs golden files not found at {PANNS_DIR} (see its DATA.md)")
    return PANNS_DIR


@pytest.mark.parametrize("name", ["Cnn6", "Cnn10"])
def test_converted_checkpoints_give_panns_outputs(panns_dir, name):
    import keras

    wave = np.load(panns_dir / "waveform_32k.npy")
    x = np.asarray(log_mel(wave, FeatureConfig.panns()))[None, :, :, None]
    model = from_panns(panns_dir / f"{name}_random.pth", model=name.lower())
    out = np.asarray(model(x, training=False))[0]
    np.testing.assert_allclose(out, np.load(panns_dir / f"{name}_clipwise.npy"), atol=1e-4)
    embed = keras.Model(model.inputs, model.get_layer("fc1").output)
    np.testing.assert_allclose(np.asarray(embed(x, training=False))[0],
                               np.load(panns_dir / f"{name}_embedding.npy"), atol=1e-4)  # fmt: skip


def test_panns_feature_preset_matches_the_checkpoint_front_end(panns_dir):
    from keras_quaternion.features import mel_filterbank

    state = read_torch_checkpoint(panns_dir / "Cnn6_random.pth")["model"]
    np.testing.assert_allclose(mel_filterbank(FeatureConfig.panns()),
                               state["logmel_extractor.melW"], atol=1e-7)  # fmt: skip


# --- the mapping, on checkpoints of every architecture ------------------------------------------


@pytest.mark.parametrize("arch", ["cnn14", "resnet22", "resnet38"])
def test_every_key_fills_exactly_one_weight(arch, tmp_path, monkeypatch):
    reference = models.build(arch, classes=5, n_mels=64, width=0.0625, multi_label=True)
    state = panns_state_of(reference, np.random.default_rng(0))
    path = write_torch_checkpoint(tmp_path / "c.pth", {"model": state, "iteration": 3}, monkeypatch)
    model = from_panns(path, model=arch)
    weights = {w.path: np.asarray(w) for layer in model.layers for w in layer.weights}
    assert len(weights) == len(reference.weights)
    conv = model.get_layer("conv_block1_conv1").kernel
    np.testing.assert_array_equal(
        np.asarray(conv), state["conv_block1.conv1.weight"].transpose(2, 3, 1, 0)
    )
    bn = model.get_layer("fc1")
    np.testing.assert_array_equal(np.asarray(bn.kernel), state["fc1.weight"].T)
    if arch.startswith("resnet"):
        down = model.get_layer("resnet_layer2_block1_downsample_bn").moving_variance
        np.testing.assert_array_equal(
            np.asarray(down), state["resnet.layer2.0.downsample.2.running_var"]
        )


def test_checkpoint_problems_name_the_key(tmp_path, monkeypatch):
    reference = models.build("cnn6", classes=4, n_mels=64, width=0.0625, multi_label=True)
    state = panns_state_of(reference, np.random.default_rng(1))
    missing = {k: v for k, v in state.items() if not k.startswith("conv_block3.bn1.")}
    with pytest.raises(CheckpointError, match=r"no weights for 1 layer.*conv_block3_bn1"):
        from_panns({"model": missing}, model="cnn6")
    extra = {**state, "fc1.extra": np.zeros(3, "f4")}
    with pytest.raises(CheckpointError, match=r"\['fc1.extra'\] are unused"):
        from_panns({"model": extra}, model="cnn6")
    with pytest.raises(CheckpointError, match=r"'conv_block1.conv1.weight' has shape .*expects"):
        from_panns({"model": state}, model="cnn10")
    with pytest.raises(CheckpointError, match="no layer 'conv_block1_conv2'"):
        from_panns({"model": {**state, "conv_block1.conv2.weight": np.zeros((4, 4, 3, 3), "f4")}},
                   model="cnn6")  # fmt: skip
    with pytest.raises(CheckpointError, match="Not a PANNs checkpoint"):
        from_panns({"state_dict": state}, model="cnn6")


def test_a_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"asks for '(posix|os)\.system'.*refused"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "a.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint"):
        read_torch_checkpoint(text)
    other = tmp_path / "b.pth"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_torch_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_panns(tmp_path / "missing.pth")


def test_reader_round_trips_arrays(tmp_path, monkeypatch):
    state = {"a": np.arange(12, dtype="f4").reshape(3, 4), "n": np.array(5, np.int64)}
    path = write_torch_checkpoint(tmp_path / "r.pth", {"model": state}, monkeypatch)
    back = read_torch_checkpoint(path)["model"]
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["n"].shape == () and int(back["n"]) == 5
