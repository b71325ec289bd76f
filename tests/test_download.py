"""Verified downloads (keras_quaternion.datasets.download) against a local HTTP server.

The server is ``http.server`` in a thread on 127.0.0.1 (an ephemeral port), serving fixture
archives built here in each dataset's official layout; it honours ``Range`` requests, can drop
a connection half-way once, and stops with the test. Every client loop is bounded (a few
retries, no pause).
"""

import errno
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_quaternion import datasets
from keras_quaternion.datasets import download as dl
from keras_quaternion.datasets.download import DownloadError, download_dataset, fetch
from keras_quaternion.datasets.sources import SOURCES, Archive, Source

# ------------------------------------------------------------------------------ the server


class Server:
    """Files by URL path; ``drop[path] = n`` cuts the next answer for ``path`` after n bytes."""

    def __init__(self):
        self.files, self.drop, self.ranges, self.requests = {}, {}, True, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                spec = self.headers.get("Range") or ""
                if outer.ranges and spec.startswith("bytes="):
                    start = int(spec[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = outer.drop.pop(self.path, None)
                self.wfile.write(data[start : start + cut] if cut is not None else data[start:])
                self.wfile.flush()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(timeout=5)


# ---------------------------------------------------------------------- fixture archives


def wav_bytes(freq, sr=8000, seconds=0.05):
    buf = io.BytesIO()
    t = np.arange(int(sr * seconds)) / sr
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def esc50_files(prefix="ESC-50-master/"):
    """ESC-50's layout: 2 classes x 5 folds x 2 takes, meta/esc50.csv."""
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    files = {}
    for fold in range(1, 6):
        for target, cat in enumerate(["dog", "rain"]):
            for take in "AB":
                name = f"{fold}-{100 + 10 * fold + target}-{take}-{target}.wav"
                files[f"{prefix}audio/{name}"] = wav_bytes(300 + 200 * target + 10 * fold)
                rows.append(f"{name},{fold},{target},{cat},False,{100 + 10 * fold + target},{take}")
    files[f"{prefix}meta/esc50.csv"] = ("\n".join(rows) + "\n").encode()
    return files


def urbansound_files():
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    files = {}
    for fold in range(1, 11):
        for cid, cls in enumerate(["dog_bark", "siren"]):
            name = f"{1000 + fold}-{cid}-0-0.wav"
            files[f"UrbanSound8K/audio/fold{fold}/{name}"] = wav_bytes(400 + 300 * cid + fold)
            rows.append(f"{name},{1000 + fold},0,1,1,{fold},{cid},{cls}")
    files["UrbanSound8K/metadata/UrbanSound8K.csv"] = ("\n".join(rows) + "\n").encode()
    return files


def make_zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tgz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def one_archive_source(server, dataset, folder, data, filename, root, **checks):
    server.files[f"/{filename}"] = data
    archive = Archive(
        server.url(f"/{filename}"),
        filename,
        checksum_source="test",
        root=root,
        **{"size": None, "sha256": None, **checks},
    )
    return Source(dataset, folder, (archive,), homepage="", license="test")


def leftovers(folder):
    """Temporary or partial files anywhere under ``folder``."""
    return sorted(
        str(p.relative_to(folder))
        for p in Path(folder).rglob("*")
        if p.name.endswith((".part", ".unpacking")) or p.name.startswith(".")
    )


# ---------------------------------------------------------------------------------- tests


def test_good_transfer_unpacks_into_the_loader_layout(server, tmp_path):
    data = make_zip(esc50_files())
    src = one_archive_source(
        server,
        "esc50",
        "ESC-50",
        data,
        "ESC-50-master.zip",
        "ESC-50-master",
        size=len(data),
        sha256=sha256(data),
    )
    folder = download_dataset(src, tmp_path / "data", progress=False)
    assert folder == tmp_path / "data" / "ESC-50"
    ds = datasets.load("esc50", folder)
    assert ds.class_names == ["dog", "rain"] and len(ds.splits["test"]) == 4
    assert not list((tmp_path / "data" / "downloads").iterdir())  # archive removed
    assert leftovers(tmp_path / "data") == []
    assert download_dataset(src, tmp_path / "data", progress=False) == folder  # already there
    assert len(server.requests) == 1


def test_dropped_transfer_resumes_with_range(server, tmp_path):
    data = make_tgz(urbansound_files())
    md5 = hashlib.md5(data).hexdigest()
    src = one_archive_source(
        server, "urbansound8k", "UrbanSound8K", data, "UrbanSound8K.tar.gz", "UrbanSound8K", md5=md5
    )
    half = len(data) // 2
    server.drop["/UrbanSound8K.tar.gz"] = half
    folder = download_dataset(src, tmp_path, progress=False, backoff=0, keep_archives=True)
    assert server.requests == [
        ("/UrbanSound8K.tar.gz", None),
        ("/UrbanSound8K.tar.gz", f"bytes={half}-"),
    ]
    assert (tmp_path / "downloads" / "UrbanSound8K.tar.gz").read_bytes() == data
    assert datasets.load("urbansound8k", folder, fold=3).num_classes == 2
    assert leftovers(tmp_path) == []


def test_server_ignoring_range_starts_over(server, tmp_path):
    data = bytes(range(256)) * 400
    server.files["/blob.bin"] = data
    server.ranges = False
    server.drop["/blob.bin"] = 1000
    got = fetch(
        server.url("/blob.bin"),
        tmp_path / "blob.bin",
        sha256=sha256(data),
        backoff=0,
        progress=False,
    )
    assert got.read_bytes() == data and server.requests[1][1] == "bytes=1000-"


def test_checksum_mismatch_leaves_nothing_under_the_final_name(server, tmp_path):
    data = make_zip(esc50_files())
    src = one_archive_source(
        server, "esc50", "ESC-50", data, "ESC-50-master.zip", "ESC-50-master", sha256="0" * 64
    )
    with pytest.raises(
        DownloadError,
        match=r"does not match: SHA-256 [0-9a-f]{64} instead of "
        r"the published 0{64}\. The file was deleted",
    ):
        download_dataset(src, tmp_path, progress=False)
    assert not (tmp_path / "ESC-50").exists()
    assert list((tmp_path / "downloads").iterdir()) == []  # neither the archive nor its .part


def test_size_mismatch_is_refused(server, tmp_path):
    server.files["/x.bin"] = b"x" * 100
    with pytest.raises(DownloadError, match="100 bytes instead of the published size 99"):
        fetch(server.url("/x.bin"), tmp_path / "x.bin", size=99, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_the_server(server, tmp_path):
    with pytest.raises(
        DownloadError,
        match=r"/gone\.zip' failed: HTTP 404 Not Found; the file "
        r"is not on the server",
    ):
        fetch(server.url("/gone.zip"), tmp_path / "gone.zip", progress=False)
    assert list(tmp_path.iterdir()) == [] and len(server.requests) == 1  # 404: no retry


def test_no_network_gives_up_after_bounded_retries(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\) \(URLError: .*refused.*network"):
        fetch(
            f"http://127.0.0.1:{port}/a.zip",
            tmp_path / "a.zip",
            retries=2,
            backoff=0,
            timeout=5,
            progress=False,
        )
    assert not (tmp_path / "a.zip").exists()


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_corrupted_archive_is_reported_and_cleaned_up(server, tmp_path, kind):
    if kind == "zip":
        raw = bytearray(make_zip(esc50_files()))
        raw[len(raw) // 3 : len(raw) // 3 + 64] = bytes(64)  # damage a member: CRC mismatch
        name, dataset, folder, root = "ESC-50-master.zip", "esc50", "ESC-50", "ESC-50-master"
    else:
        raw = bytearray(make_tgz(urbansound_files())[:-200])  # truncated stream
        name, dataset, folder, root = "UrbanSound8K.tar.gz", "urbansound8k", "UrbanSound8K", None
    src = one_archive_source(server, dataset, folder, bytes(raw), name, root)
    with pytest.raises(DownloadError, match=rf"Archive '.*{name}' is corrupted \("):
        download_dataset(src, tmp_path, progress=False)
    assert not (tmp_path / folder).exists() and leftovers(tmp_path) == []


def test_wrong_layout_is_refused(server, tmp_path):
    files = {k: v for k, v in esc50_files().items() if not k.endswith(".csv")}
    src = one_archive_source(server, "esc50", "ESC-50", make_zip(files), "e.zip", "ESC-50-master")
    with pytest.raises(DownloadError, match=r"layout 'esc50' expects.*esc50\.csv' is missing"):
        download_dataset(src, tmp_path, progress=False)
    assert not (tmp_path / "ESC-50").exists() and leftovers(tmp_path) == []


def test_missing_root_folder_and_unsafe_member(server, tmp_path):
    src = one_archive_source(
        server, "esc50", "ESC-50", make_zip(esc50_files("other/")), "a.zip", "ESC-50-master"
    )
    with pytest.raises(
        DownloadError, match=r"no top folder 'ESC-50-master'; they hold \['other'\]"
    ):
        download_dataset(src, tmp_path / "a", progress=False)
    src = one_archive_source(
        server, "esc50", "ESC-50", make_tgz({"../evil.txt": b"x"}), "b.tgz", None
    )
    with pytest.raises(DownloadError, match=r"unsafe member '\.\./evil\.txt'"):
        download_dataset(src, tmp_path / "b", progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_full_disk_before_and_during_the_transfer(server, tmp_path, monkeypatch):
    data = b"y" * 300_000
    server.files["/big.bin"] = data
    real_usage = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1000))
    with pytest.raises(
        DownloadError, match=r"Not enough disk space for 'big.bin': it needs 0\.3 MB"
    ):
        fetch(server.url("/big.bin"), tmp_path / "big.bin", progress=False)
    monkeypatch.setattr(dl.shutil, "disk_usage", real_usage)

    class FullDisk(io.FileIO):
        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl, "open", lambda path, mode: FullDisk(path, mode), raising=False)
    with pytest.raises(DownloadError, match=r"is full \(0 bytes of 'big.bin.part' written\)"):
        fetch(server.url("/big.bin"), tmp_path / "big.bin", progress=False)
    assert not (tmp_path / "big.bin").exists()  # the .part stays, for resuming


def test_two_archives_merge_into_one_folder(server, tmp_path):
    names = {
        "speech": "03-01-{e:02d}-01-01-01-{a:02d}.wav",
        "song": "03-02-{e:02d}-01-01-01-{a:02d}.wav",
    }
    archives = []
    for part, pattern in names.items():
        files = {
            f"Actor_{a:02d}/{pattern.format(e=e, a=a)}": wav_bytes(200 + 50 * e)
            for a in range(1, 25)
            for e in (1, 3)
        }
        data = make_zip(files)
        server.files[f"/{part}.zip"] = data
        archives.append(Archive(server.url(f"/{part}.zip"), f"{part}.zip", len(data), sha256(data)))
    src = Source("ravdess", "RAVDESS", tuple(archives), homepage="", license="test")
    folder = download_dataset(src, tmp_path, progress=False)
    ds = datasets.load("ravdess", folder, vocal_channel="both")
    assert sum(len(v) for v in ds.splits.values()) == 96


def test_existing_folder_with_other_content_is_not_touched(server, tmp_path):
    (tmp_path / "ESC-50").mkdir()
    (tmp_path / "ESC-50" / "mine.txt").write_text("keep")
    src = one_archive_source(server, "esc50", "ESC-50", b"", "e.zip", "ESC-50-master")
    with pytest.raises(DownloadError, match=r"exists but is not a complete 'esc50' folder"):
        download_dataset(src, tmp_path, progress=False)
    assert (tmp_path / "ESC-50" / "mine.txt").read_text() == "keep" and server.requests == []


def test_every_source_states_its_checksum_and_where_it_was_published():
    assert set(SOURCES) == {"esc50", "urbansound8k", "ravdess", "gtzan", "fsdd", "speech_commands"}
    for name, src in SOURCES.items():
        assert src.dataset == name and name in datasets.names()
        for a in src.archives:
            assert a.checksum_source
            if a.sha256:
                assert len(a.sha256) == 64 and a.size and "TensorFlow Datasets" in a.checksum_source
            elif a.md5:
                assert len(a.md5) == 32 and "no SHA-256 published" in a.checksum_source
            else:
                assert "none published" in a.checksum_source
    with pytest.raises(ValueError, match="'audioset' has no public archive.*YouTube"):
        download_dataset("audioset")


# ------------------------------------------------------------------------------ kq-data


def test_kq_data_download_and_list(server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from keras_quaternion.cli.data import data_group as main

    data = make_zip(esc50_files())
    src = one_archive_source(
        server,
        "esc50",
        "ESC-50",
        data,
        "ESC-50-master.zip",
        "ESC-50-master",
        size=len(data),
        sha256=sha256(data),
    )
    monkeypatch.setitem(SOURCES, "esc50", src)
    result = CliRunner().invoke(main, ["download", "esc50", "--to", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"Train on it with: kq-train --dataset esc50 --data-dir {tmp_path / 'ESC-50'}\n"
    )
    listing = CliRunner().invoke(main, ["list"]).output
    assert "checked by SHA-256 and size" in listing and "tfds:NAME" in listing

    monkeypatch.setitem(
        SOURCES,
        "esc50",
        one_archive_source(
            server, "esc50", "ESC-50", data, "other.zip", "ESC-50-master", sha256="1" * 64
        ),
    )
    result = CliRunner().invoke(main, ["download", "esc50", "--to", str(tmp_path / "b"), "--quiet"])
    assert result.exit_code == 1 and "Error: Download of 'http://127.0.0.1:" in result.output
    assert "does not match: SHA-256" in result.output
    result = CliRunner().invoke(main, ["download", "fsdd", "--config", "x"])
    assert result.exit_code == 2 and "only tfds:NAME datasets take a config" in result.output


def test_kq_data_imports_neither_tensorflow_nor_keras(repo_root):
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['/bin/kq-data', 'list']\n"
        "from keras_quaternion.cli import data_main as main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('heavy:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "esc50 -> ESC-50/" in out and out.rstrip().endswith("heavy: []")


def test_missing_data_dir_points_at_kq_data():
    with pytest.raises(datasets.DatasetLayoutError, match=r"kq-data download esc50 fetches them"):
        datasets.load("esc50")
    with pytest.raises(datasets.DatasetLayoutError) as err:
        datasets.load("audioset")
    assert "kq-data" not in str(err.value)


def test_ensure_dataset_downloads_only_when_the_folder_lacks_the_data(
    server, tmp_path, monkeypatch
):
    from keras_quaternion.datasets.download import ensure_dataset

    data = make_zip(esc50_files())
    src = one_archive_source(
        server, "esc50", "ESC-50", data, "ESC-50-master.zip", "ESC-50-master", sha256=sha256(data)
    )
    monkeypatch.setitem(SOURCES, "esc50", src)
    folder, downloaded = ensure_dataset("esc50", tmp_path / "data", progress=False)
    assert (folder, downloaded) == (tmp_path / "data" / "ESC-50", True)
    assert len(server.requests) == 1
    # the dataset folder itself, or the download folder above it: used as they are
    assert ensure_dataset("esc50", folder, progress=False) == (folder, False)
    assert ensure_dataset("esc50", tmp_path / "data", progress=False) == (folder, False)
    assert len(server.requests) == 1
    with pytest.raises(ValueError, match="'audioset' has no public archive to download"):
        ensure_dataset("audioset", tmp_path / "data")
    with pytest.raises(ValueError, match="'folder' has no public archive to download"):
        ensure_dataset("folder", tmp_path / "data")


def test_kq_train_download_uses_the_verified_download(server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from keras_quaternion.cli.train import train_command
    from keras_quaternion.training.dataset_options import download_data_dir

    data = make_zip(esc50_files())
    src = one_archive_source(
        server, "esc50", "ESC-50", data, "ESC-50-master.zip", "ESC-50-master", sha256=sha256(data)
    )
    monkeypatch.setitem(SOURCES, "esc50", src)
    folder = download_data_dir("esc50", tmp_path / "data", progress=False)
    assert folder == tmp_path / "data" / "ESC-50" and datasets.load("esc50", folder)
    assert download_data_dir("esc50", folder, progress=False) == folder
    assert len(server.requests) == 1
    # no download source: a clear one-line error before anything is computed
    out = tmp_path / "run"
    args = ["--dataset", "audioset", "--download", "--data-dir", str(tmp_path), "--out", str(out)]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 1
    assert "Error: --download: Dataset 'audioset' has no public archive to download" in (
        result.output
    )
