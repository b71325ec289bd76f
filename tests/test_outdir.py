"""Output folders of the kq-* commands: writability checked first, one command per --out, killed
runs' leftovers removed, and exports replaced as complete sets (keras_quaternion.outdir / files).
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_quaternion import files, models  # noqa: E402
from keras_quaternion.cli.distill import distill_command  # noqa: E402
from keras_quaternion.cli.evaluate import eval_command  # noqa: E402
from keras_quaternion.cli.export import export_command  # noqa: E402
from keras_quaternion.cli.prune import prune_command  # noqa: E402
from keras_quaternion.cli.train import train_command  # noqa: E402
from keras_quaternion.files import staged_folder, sweep_temp_files, temporary_file  # noqa: E402
from keras_quaternion.outdir import (  # noqa: E402
    LOCK_NAME,
    FolderBusyError,
    NotWritableError,
    check_writable,
    claim,
    lock_folder,
)
from keras_quaternion.training import pipeline, prepare  # noqa: E402

#: TensorFlow's start-up text, which no command's output may contain
NOISE = re.compile(r"oneDNN|absl|cpu_feature_guard|^[IWE]\d{4} ", re.MULTILINE)
DATA = ["--option", "samples_per_class=3", "--clip-seconds", "0.5", "--n-mels", "16"]


def _env(repo_root):
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # a user's environment: the commands quiet TF
    return env


def _kq(repo_root, *args, **kwargs):
    """``kq <args>`` as its console script runs it (python -m keras_quaternion.cli)."""
    return subprocess.Popen(
        [sys.executable, "-m", "keras_quaternion.cli", *map(str, args)],
        cwd=repo_root,
        env=_env(repo_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(condition, proc, what, timeout=180):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"exited before {what}: {proc.communicate()}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder on a read-only file system (a read-only tmpfs; root ignores permission bits)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def _tiny_model(path, seed=0, name="tiny"):
    keras.utils.set_random_seed(seed)
    model = models.build("qcnn6", classes=10, n_mels=16, width=0.0625, model_name=name)
    model.save(path)
    return path


# ------------------------------------------------------------------------ writability (item 3)


def test_check_writable_on_a_read_only_file_system(readonly_dir):
    with pytest.raises(NotWritableError, match=r"is not writable: Read-only file system"):
        check_writable(readonly_dir / "run", "--out")
    with pytest.raises(NotWritableError, match="choose a writable --out"):
        check_writable(readonly_dir, "--out")


def test_check_writable_under_a_file_and_without_permission(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotWritableError, match=r"'.*f' is a file, not a folder"):
        check_writable(tmp_path / "f" / "run", "--out")
    with pytest.raises(NotWritableError, match="it is a file"):
        check_writable(tmp_path / "f", "--out")
    assert check_writable(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # what a non-root user sees
    with pytest.raises(NotWritableError, match="permission denied"):
        check_writable(tmp_path, "--cache-dir")


def _no_call(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran before the output folder was checked")

    return fail


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    for needle in needles:
        assert needle in result.output, result.output


def test_unwritable_out_is_one_line_before_any_work(readonly_dir, tmp_path, monkeypatch):
    import keras_quaternion.cli.distill as distill_cli
    import keras_quaternion.cli.prune as prune_cli
    import keras_quaternion.training.dataset_options as dataset_options

    monkeypatch.setattr(dataset_options, "prepare_dataset", _no_call("featurising"))
    monkeypatch.setattr(prune_cli, "load_model_argument", _no_call("loading the model"))
    monkeypatch.setattr(distill_cli, "load_model_argument", _no_call("loading the model"))
    monkeypatch.setattr(
        dataset_options.DatasetOptions, "prepare_for_saved_model", _no_call("loading the model")
    )
    model = _tiny_model(tmp_path / "m.keras")
    out = str(readonly_dir / "run")
    runner = CliRunner()
    for command, args in [
        (train_command, ["--out", out, *DATA]),
        (prune_command, [str(model), "--out", out]),
        (distill_command, ["--teacher", str(model), "--student", "qcnn6", "--out", out]),
        (export_command, [str(model), "--out", out, "--dataset", "synthetic"]),
    ]:
        result = runner.invoke(command, args)
        _one_line_error(result, f"--out '{out}' is not writable: Read-only file system")


def test_unwritable_cache_is_one_line_before_featurising(readonly_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_compute_split", _no_call("featurising"))
    out = tmp_path / "run"
    args = ["--out", str(out), "--cache-dir", str(readonly_dir / "cache"), *DATA]
    result = CliRunner().invoke(train_command, args)
    _one_line_error(result, "feature cache folder", "Read-only file system", "--cache-dir")
    assert not out.exists()  # the folder the command created for nothing is gone again
    model = _tiny_model(tmp_path / "m.keras")
    result = CliRunner().invoke(
        eval_command, [str(model), "--dataset", "synthetic", "--cache-dir", str(readonly_dir)]
    )
    _one_line_error(result, "Read-only file system")
    with pytest.raises(NotWritableError, match="cache_dir"):
        prepare("synthetic", cache_dir=readonly_dir, clip_seconds=0.5, progress=False)


def test_unwritable_out_in_a_real_process_has_no_traceback(repo_root, tmp_path):
    (tmp_path / "f").write_text("")
    started = time.time()
    proc = _kq(repo_root, "train", "--out", tmp_path / "f" / "run")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and stdout == ""
    assert stderr.strip().splitlines() == [
        f"Error: --out '{tmp_path / 'f' / 'run'}' cannot be created: '{tmp_path / 'f'}' is a "
        "file, not a folder; choose another --out."
    ], stderr
    print(f"refused in {time.time() - started:.2f} s")  # before TensorFlow is imported


# ------------------------------------------------------------------------------ lock (item 2)


def test_lock_folder_refuses_a_second_holder_and_releases(tmp_path):
    with lock_folder(tmp_path / "run", "kq-train", "--out") as held:
        assert held.previous == {} and held.holder["pid"] == os.getpid()
        lock = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert lock["command"] == "kq-train"
        with pytest.raises(FolderBusyError, match=rf"in use by kq-train \(pid {os.getpid()} on"):
            with lock_folder(tmp_path / "run", "kq-prune", "--out"):
                pass
        (tmp_path / "run" / "model.keras").write_text("")
    assert sorted(os.listdir(tmp_path / "run")) == ["model.keras"]
    with lock_folder(tmp_path / "run", "kq-prune") as held:  # free again
        assert held.previous == {}


def test_every_writing_command_refuses_a_held_out(tmp_path):
    model = tmp_path / "m.keras"
    model.write_text("not loaded: the lock is checked first")
    out = str(tmp_path / "run")
    runner = CliRunner()
    with lock_folder(out, "kq-train", "--out"):
        for command, args in [
            (train_command, ["--out", out]),
            (prune_command, [str(model), "--out", out]),
            (distill_command, ["--teacher", str(model), "--student", "qcnn6", "--out", out]),
            (export_command, [str(model), "--out", out, "--dataset", "synthetic"]),
        ]:
            result = runner.invoke(command, args)
            _one_line_error(result, f"--out '{out}' is in use by kq-train (pid {os.getpid()}")


def test_two_kq_train_runs_on_one_out(repo_root, tmp_path):
    """The second run, started while the first one trains, exits 1 naming the folder and the
    first process; the first one finishes and its results are the ones in --out."""
    out = tmp_path / "run"
    common = ["--width", "0.0625", "--cache-dir", tmp_path / "cache", *DATA]
    # long enough to outlast the second command's start-up (TensorFlow's import takes seconds)
    first = _kq(repo_root, "train", "--out", out, "--seed", "1", "--epochs", "40", *common)
    _wait_for(lambda: (out / LOCK_NAME).exists(), first, "lock")
    time.sleep(0.5)
    second = _kq(repo_root, "train", "--out", out, "--seed", "2", "--epochs", "2", *common)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 1, stderr
    assert f"--out '{out}' is in use by kq train (pid {first.pid} on" in stderr, stderr
    assert "Traceback" not in stderr and stdout == ""
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert "Test accuracy" in stdout
    assert not NOISE.search(stderr), stderr  # no TensorFlow, absl or oneDNN start-up text
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1
    assert not (out / LOCK_NAME).exists()


def test_a_killed_holders_lock_and_temp_files_are_taken_over(repo_root, tmp_path):
    """kq-prune after a run killed while writing --out: lock taken over, temp file removed."""
    out = tmp_path / "pruned"
    code = (
        "import sys, time\n"
        "from keras_quaternion.files import temporary_file\n"
        "from keras_quaternion.outdir import lock_folder\n"
        "with lock_folder(sys.argv[1], 'kq-prune'), temporary_file(sys.argv[1] + '/model.keras'):\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)],
        cwd=repo_root,
        env=_env(repo_root),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "writing\n"
    leftovers = [p.name for p in out.iterdir() if p.name != LOCK_NAME]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.")
    assert sweep_temp_files(out) == []  # alive: its temp file is locked
    _kill(holder)
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, *leftovers])

    model = _tiny_model(tmp_path / "m.keras")
    result = CliRunner().invoke(prune_command, [str(model), "--out", str(out), "--ratio", "0.25"])
    assert result.exit_code == 0, result.output
    assert f"kq-prune (pid {holder.pid} on" in result.output and "took it over" in result.output
    assert sorted(os.listdir(out)) == ["model.keras", "pruning_report.json", "pruning_report.md"]


# ------------------------------------------------------------------- temp files (item 4)


def test_killed_featurising_leaves_no_temp_file_after_the_rerun(repo_root, tmp_path):
    cache = tmp_path / "cache"
    code = (
        "import sys, time\n"
        "import keras_quaternion.features as f\n"
        "real = f.quaternion_features\n"
        "def slow(*a, **k):\n"
        "    time.sleep(600)\n"
        "f.quaternion_features = slow\n"
        "from keras_quaternion.training import prepare\n"
        "prepare('synthetic', clip_seconds=0.5, n_mels=16, cache_dir=sys.argv[1],\n"
        "        dataset_options={'samples_per_class': 3}, progress=False)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(cache)], cwd=repo_root, env=_env(repo_root)
    )

    def temp_files():
        return [p for p in cache.rglob(".*") if files.TEMP_NAME.match(p.name)]

    _wait_for(temp_files, proc, "temporary features file")
    _kill(proc)
    (left,) = temp_files()
    assert left.name.startswith(".train_features.")
    legacy = left.parent / ".train_features.npy.abcd1234.tmp"  # named as before this fix
    legacy.write_bytes(b"\0" * 1024)
    time.sleep(pipeline.CONCURRENT_TEMP_AGE)
    data = prepare(
        "synthetic",
        clip_seconds=0.5,
        n_mels=16,
        cache_dir=cache,
        dataset_options={"samples_per_class": 3},
        progress=False,
    )
    assert data.cache_path == left.parent
    assert temp_files() == []


def test_live_temp_files_survive_a_sweep_and_dead_ones_do_not(tmp_path):
    (tmp_path / ".model.abcdefgh.tmp.keras").write_bytes(b"partial")  # nobody holds it
    (tmp_path / ".hidden").write_text("not ours")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".w.abcdefgh.tmp.h5").write_text("")
    with temporary_file(tmp_path / "metrics.json") as live:
        removed = sweep_temp_files(tmp_path, recursive=True)
        assert live.exists()
    assert sorted(p.name for p in removed) == [".model.abcdefgh.tmp.keras", ".w.abcdefgh.tmp.h5"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "sub"]
    fresh = tmp_path / ".x.abcdefgh.tmp"
    fresh.write_text("")
    assert sweep_temp_files(tmp_path, min_age=60) == []  # too young to judge in a shared folder


# ----------------------------------------------------------------- export sets (item 1)


def test_staged_folder_replaces_the_old_set_keeps_the_rest(tmp_path, monkeypatch):
    dest = tmp_path / "ex"
    dest.mkdir()
    for name in ("model_int8.tflite", "export_report.json", "model_data.cc", "README.txt"):
        (dest / name).write_text("A")
    (dest / "sub").mkdir()
    (dest / "sub" / "keep.txt").write_text("A")
    replaced = {"model_int8.tflite", "export_report.json", "model_data.cc"}
    with pytest.raises(RuntimeError, match="conversion failed"):
        with staged_folder(dest, replaces=replaced) as stage:
            (stage / "model_int8.tflite").write_text("B")
            raise RuntimeError("conversion failed")
    assert (dest / "model_int8.tflite").read_text() == "A"
    assert [p.name for p in tmp_path.iterdir()] == ["ex"]  # the staging folder is gone
    for exchange in (True, False):  # renameat2, and the two-rename fallback
        if not exchange:
            monkeypatch.setattr(files, "_exchange", lambda a, b: False)
        with staged_folder(dest, replaces=replaced) as stage:
            (stage / "model_float.tflite").write_text("B")
            (stage / "export_report.json").write_text("B")
        assert sorted(os.listdir(dest)) == [
            "README.txt",
            "export_report.json",
            "model_float.tflite",
            "sub",
        ]
        assert (dest / "export_report.json").read_text() == "B"
        assert (dest / "sub" / "keep.txt").read_text() == "A"
        assert [p.name for p in tmp_path.iterdir()] == ["ex"]


def _export_args(model, out, cache):
    return [
        str(model),
        "--dataset",
        "synthetic",
        *DATA,
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--micro",
        "--calibration-samples",
        "8",
        "--verify-samples",
        "4",
    ]


def _export_set(folder):
    """(model name in the report, whether the .tflite and model_data.cc are the report's)."""
    report = json.loads((folder / "export_report.json").read_text())
    tflite = (folder / report["export"]["tflite"]).read_bytes()
    cc = (folder / "model_data.cc").read_text()
    consistent = len(tflite) == report["export"]["flatbuffer_bytes"] and f"= {len(tflite)};" in cc
    return report["model"]["name"], consistent


def test_a_killed_export_leaves_the_previous_complete_set(repo_root, tmp_path):
    cache = tmp_path / "cache"
    a = _tiny_model(tmp_path / "a.keras", seed=0, name="model_a")
    b = _tiny_model(tmp_path / "b.keras", seed=1, name="model_b")
    ex = tmp_path / "ex"
    result = CliRunner().invoke(export_command, _export_args(a, ex, cache))
    assert result.exit_code == 0, result.output
    assert _export_set(ex) == ("model_a", True)
    before = {p.name: p.read_bytes() for p in ex.iterdir()}

    def staged_tflite(out):
        return lambda: list(tmp_path.glob(f".{out.name}.*.tmp/model_int8.tflite"))

    for out in (ex, tmp_path / "new"):  # a re-export, and a first export to a new folder
        proc = _kq(repo_root, "export", *_export_args(b, out, cache))
        _wait_for(staged_tflite(out), proc, "flatbuffer")
        _kill(proc)
    assert {p.name: p.read_bytes() for p in ex.iterdir() if p.name != LOCK_NAME} == before
    assert not list((tmp_path / "new").glob("*.tflite"))  # no .tflite without its report

    result = CliRunner().invoke(export_command, _export_args(b, ex, cache))
    assert result.exit_code == 0, result.output
    assert _export_set(ex) == ("model_b", True)
    assert sorted(os.listdir(ex)) == sorted(before)
    assert not list(tmp_path.glob(".ex.*"))  # the killed run's staging folder was removed


def test_claim_removes_staging_folders_and_temp_files(tmp_path):
    ex = tmp_path / "ex"
    (tmp_path / ".ex.abcdefgh.tmp").mkdir()
    (tmp_path / ".other.abcdefgh.tmp").mkdir()  # another folder's: not ours to remove
    ex.mkdir()
    (ex / ".model_int8.abcdefgh.tmp.tflite").write_bytes(b"")
    with claim(ex, "kq-export"):
        assert os.listdir(ex) == [LOCK_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.abcdefgh.tmp", "ex"]


@contextlib.contextmanager
def _chdir(path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def test_relative_out_and_existing_empty_out_are_kept(tmp_path):
    with _chdir(tmp_path):
        Path("keep").mkdir()
        with lock_folder("keep", "kq-train"):
            pass
        assert Path("keep").is_dir()  # it existed before: not removed
        with lock_folder("a/b", "kq-train"):
            pass
        assert not Path("a").exists()  # created for nothing: removed with its parent
