"""Verified, resumable downloads of the file datasets, unpacked atomically into their layout.

:func:`download_dataset` fetches a dataset's archives (:mod:`keras_quaternion.datasets.sources`),
checks each against its published checksum (SHA-256, or MD5 where only that is published) and
size, unpacks them into a temporary folder next to the destination, checks that the dataset's
loader reads the result, and only then renames it to its final name. At every step a failure
leaves nothing under a final name:

* a transfer is written to ``NAME.part`` and resumed from there with an HTTP ``Range`` request
  when the connection drops (a bounded number of retries, with a growing pause);
* a checksum or size mismatch deletes the ``.part`` file;
* a corrupted archive, a full disk or a wrong layout removes the temporary folder.

Only the standard library talks to the network (:mod:`urllib.request`); tqdm shows progress.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from keras_quaternion.datasets.sources import Source, source

__all__ = [
    "DATA_DIR_ENV",
    "DownloadError",
    "default_data_dir",
    "describe",
    "download_dataset",
    "ensure_dataset",
    "extract",
    "fetch",
]

#: environment variable naming the default download folder
DATA_DIR_ENV = "KQ_DATA_DIR"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download, its verification or its unpacking failed; the message names the URL or file,
    what went wrong and what to do. Nothing is left under a final name when it is raised.

    Example:
        >>> isinstance(DownloadError("'x.zip': SHA-256 mismatch"), RuntimeError)
        True
    """


class _Retry(Exception):
    """A transfer failure worth retrying (connection refused or dropped, timeout, HTTP 5xx)."""


def default_data_dir() -> Path:
    """Where datasets are downloaded: ``$KQ_DATA_DIR`` if set, else ``~/kq_datasets``.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {DATA_DIR_ENV: "~/data"}):
        ...     default_data_dir() == Path.home() / "data"
        True
    """
    return Path(os.environ.get(DATA_DIR_ENV) or "~/kq_datasets").expanduser()


# ------------------------------------------------------------------------------ the transfer


def _is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _check_space(folder: Path, needed: int | None, what: str) -> None:
    """Raise before writing when ``folder``'s disk has less than ``needed`` bytes free."""
    if not needed or needed <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"Not enough disk space for {what}: it needs {needed / 1e6:,.1f} MB and the disk "
            f"holding '{folder}' has {free / 1e6:,.1f} MB free. Free some space or choose "
            "another folder (--to)."
        )


def _open(url: str, offset: int, timeout: float):
    """Open ``url`` from byte ``offset``; HTTP errors become DownloadError or _Retry."""
    headers = {"User-Agent": "keras-quaternion", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None  # nothing after offset: the .part file already holds everything
        if err.code in (408, 429) or err.code >= 500:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        hint = (
            "the file is not on the server (moved or removed); check the URL, or lay the "
            "dataset out by hand (see docs/datasets.md)"
            if err.code in (404, 410)
            else "the server refused the request"
        )
        raise DownloadError(
            f"Download of '{url}' failed: HTTP {err.code} {err.reason}; {hint}."
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Retry(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None


def _range_start_and_total(resp, offset: int) -> tuple[int, int | None]:
    """Where the body starts and the whole file's size, from a 200 or 206 answer."""
    if offset and resp.status == 206:
        unit, _, spec = (resp.headers.get("Content-Range") or "").partition(" ")
        first, total = spec.partition("-")[0], spec.rpartition("/")[2]
        if unit != "bytes" or not first.isdigit() or int(first) != offset:
            raise _Retry(f"the server resumed at {spec!r} instead of byte {offset}")
        return offset, int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _stream(resp, part: Path, start: int, total: int | None, progress: bool) -> None:
    """Append the response body to ``part`` (rewritten from 0 when ``start`` is 0)."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name[: -len(".part")],
        disable=not progress,
    )
    with bar, open(part, "ab" if start else "wb") as handle:
        try:
            while chunk := resp.read(_CHUNK):
                handle.write(chunk)
                bar.update(len(chunk))
        except OSError as err:
            if _is_disk_full(err):
                raise DownloadError(
                    f"The disk holding '{part.parent}' is full ({part.stat().st_size:,} bytes "
                    f"of '{part.name}' written). Free some space and run again: the transfer "
                    "resumes from there."
                ) from None
            raise _Retry(f"{type(err).__name__}: {err}") from None
        except http.client.HTTPException as err:  # IncompleteRead: the connection dropped
            raise _Retry(f"{type(err).__name__}: {err}") from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retry(f"the connection closed after {got:,} of {total:,} bytes")


def _transfer(url: str, part: Path, size: int | None, timeout: float, progress: bool):
    """One attempt: fetch the rest of ``url`` into ``part``; returns the announced total size."""
    offset = part.stat().st_size if part.is_file() else 0
    resp = _open(url, offset, timeout)
    if resp is None:
        return offset
    with resp:
        start, total = _range_start_and_total(resp, offset)
        _check_space(part.parent, (total or size or 0) - start, f"'{part.name[:-5]}'")
        _stream(resp, part, start, total, progress)
    return total


def _digests(path: Path, sha256: bool, md5: bool) -> dict[str, str]:
    hashes = {}
    if sha256:
        hashes["SHA-256"] = hashlib.sha256()
    if md5:
        hashes["MD5"] = hashlib.md5(usedforsecurity=False)
    if hashes:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                for h in hashes.values():
                    h.update(chunk)
    return {k: h.hexdigest() for k, h in hashes.items()}


def _verify(path: Path, url: str, expected: dict, announced: int | None) -> None:
    """Check size and checksums of a finished transfer; on a mismatch delete it and raise."""
    got = path.stat().st_size
    problems = []
    for what, size in (("published size", expected.get("size")), ("announced size", announced)):
        if size is not None and got != size:
            problems.append(f"{got:,} bytes instead of the {what} {size:,}")
    digests = _digests(path, bool(expected.get("SHA-256")), bool(expected.get("MD5")))
    for algo, value in digests.items():
        if value != expected[algo].lower():
            problems.append(f"{algo} {value} instead of the published {expected[algo]}")
    if problems:
        path.unlink()
        raise DownloadError(
            f"Download of '{url}' does not match: {'; '.join(problems)}. The file was deleted. "
            "Run again; if it keeps differing, the server now serves another file: report it "
            "(the checksums are in keras_quaternion/datasets/sources.py)."
        )


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, resumably, and verify it before it gets its name.

    The bytes go to ``dest + ".part"``; a dropped connection, a timeout or an HTTP 5xx is retried
    up to ``retries`` times (pausing ``backoff``, then twice as long, ... at most 30 s), each
    retry resuming with an HTTP ``Range`` request (a server that ignores it sends everything
    again). The finished file must have the announced size and the given ``size`` /
    checksums, else it is deleted. An existing ``dest`` is verified and kept.

    Args:
        url: ``http(s)://`` address.
        dest: the final file.
        size: expected size in bytes, or ``None``.
        sha256: expected SHA-256 (hex), or ``None``.
        md5: expected MD5 (hex), or ``None``.
        retries: further attempts after the first (0 disables retrying).
        timeout: seconds to wait for the server at each step.
        backoff: seconds before the first retry.
        progress: show a tqdm progress bar.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP 4xx (a missing file), no connection after every retry, a full disk,
            or a size / checksum mismatch (the partial file is deleted).

    Example:
        >>> _ = Path("served.bin").write_bytes(b"0123456789")
        >>> url = Path("served.bin").resolve().as_uri()      # any URL urllib opens
        >>> good = hashlib.sha256(b"0123456789").hexdigest()
        >>> fetch(url, "got/copy.bin", size=10, sha256=good, progress=False).read_bytes()
        b'0123456789'
        >>> try:
        ...     fetch(url, "got/bad.bin", sha256="0" * 64, progress=False)
        ... except DownloadError as err:
        ...     print("does not match: SHA-256" in str(err), Path("got/bad.bin.part").exists())
        True False
    """
    dest = Path(dest)
    expected = {"size": size, "SHA-256": sha256, "MD5": md5}
    if dest.is_file():
        _verify(dest, url, expected, None)  # deletes a file that no longer matches
        if dest.is_file():
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(int(retries) + 1):
        try:
            total = _transfer(url, part, size, timeout, progress)
            break
        except _Retry as err:
            if attempt == int(retries):
                raise DownloadError(
                    f"Could not download '{url}' after {attempt + 1} attempt(s) ({err}). Check "
                    "the network connection (and any proxy) and run again: the transfer resumes "
                    f"from '{part}'."
                ) from None
            time.sleep(min(30.0, float(backoff) * 2**attempt))
    _verify(part, url, expected, total)
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------------------ unpacking


def _unpack_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        _check_space(into, sum(i.file_size for i in zf.infolist()), f"unpacking '{archive.name}'")
        for info in zf.infolist():
            parts = Path(info.filename).parts
            if Path(info.filename).is_absolute() or ".." in parts:
                raise DownloadError(
                    f"Archive '{archive}' holds an unsafe path {info.filename!r}; not unpacked."
                )
        zf.extractall(into)  # reads every member and checks its CRC


def _unpack_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()  # reads the whole stream: checks gzip CRC and tar headers
        for m in members:
            target = (into / m.name).resolve()
            unsafe = not target.is_relative_to(into.resolve()) or m.isdev()
            if m.issym() or m.islnk():
                link = (target.parent / m.linkname).resolve()
                unsafe = unsafe or not link.is_relative_to(into.resolve())
            if unsafe:
                raise DownloadError(
                    f"Archive '{archive}' holds an unsafe member {m.name!r}; not unpacked."
                )
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, members=members, filter="data")
        else:  # Python < 3.11.4: members were checked above
            tf.extractall(into, members=members)


def _unpack(archive: Path, kind: str, into: Path) -> None:
    """Unpack one archive; corruption and a full disk become DownloadError."""
    try:
        (_unpack_zip if kind == "zip" else _unpack_tar)(archive, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DownloadError(
            f"Archive '{archive}' is corrupted ({type(err).__name__}: {err}); nothing was "
            "unpacked. Delete it and download again."
        ) from None
    except OSError as err:
        if _is_disk_full(err):
            raise DownloadError(
                f"The disk holding '{into.parent}' filled up while unpacking '{archive.name}'; "
                "the partly unpacked files were removed. Free some space and run again."
            ) from None
        raise


def _check_layout(dataset: str, folder: Path) -> None:
    """Load ``folder`` with the dataset's loader; a layout problem becomes DownloadError."""
    from keras_quaternion.datasets.registry import load

    try:
        load(dataset, folder)
    except ValueError as err:  # DatasetLayoutError, or a loader's own check
        raise DownloadError(
            f"The downloaded archive(s) did not unpack into the layout '{dataset}' expects, so "
            f"nothing was written there: {err}"
        ) from None


def extract(archives, dest: str | os.PathLike, *, root: str | None = None, dataset=None) -> Path:
    """Unpack archives into ``dest`` atomically: into a temporary sibling, then one rename.

    Args:
        archives: ``[(path, kind), ...]`` with kind ``"zip"`` or ``"tar"``, unpacked in order
            into the same folder.
        dest: the dataset folder to create (must not exist).
        root: the archives' top folder holding the layout (``None``: their root).
        dataset: a registry name whose loader must read the result, or ``None``.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: ``dest`` exists, an archive is corrupted or unsafe, the disk fills up,
            ``root`` is missing, or the loader does not read the result. The temporary folder
            is removed and ``dest`` is not created.

    Example:
        >>> with zipfile.ZipFile("a.zip", "w") as zf:
        ...     zf.writestr("top/readme.txt", "hi")
        >>> extract([("a.zip", "zip")], "data", root="top").joinpath("readme.txt").read_text()
        'hi'
    """
    dest = Path(dest)
    if dest.exists():
        raise DownloadError(f"'{dest}' already exists; remove it or unpack somewhere else.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent))
    try:
        for path, kind in archives:
            _unpack(Path(path), kind, tmp)
        top = tmp / root if root else tmp
        if not top.is_dir():
            raise DownloadError(
                f"The archive(s) {[Path(p).name for p, _ in archives]} have no top folder "
                f"'{root}'; they hold {sorted(p.name for p in tmp.iterdir())}."
            )
        if dataset is not None:
            _check_layout(dataset, top)
        os.rename(top, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ------------------------------------------------------------------------------ datasets


def _existing(src: Source, dest: Path) -> bool:
    """True when ``dest`` already holds the dataset; raise when it holds something else."""
    if not dest.exists():
        return False
    try:
        _check_layout(src.dataset, dest)
    except DownloadError as err:
        raise DownloadError(
            f"'{dest}' exists but is not a complete '{src.dataset}' folder ({err}); remove it "
            "and run again."
        ) from None
    return True


def download_dataset(
    name: str | Source,
    to: str | os.PathLike | None = None,
    *,
    keep_archives: bool = False,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack a file dataset into ``to/<folder>``, in its loader's layout.

    Archives are fetched into ``to/downloads/`` (:func:`fetch`: resumable, checked against the
    published checksum and size), unpacked atomically (:func:`extract`, checked by the
    dataset's loader) and deleted unless ``keep_archives``. A folder that already holds the
    dataset is returned as it is.

    Args:
        name: a dataset with a download source (``"esc50"``, ``"urbansound8k"``, ``"ravdess"``,
            ``"gtzan"``, ``"fsdd"``, ``"speech_commands"``) or a :class:`Source`.
        to: the download folder (default :func:`default_data_dir`).
        keep_archives: keep the downloaded archives in ``to/downloads/``.
        retries: further attempts per archive after a dropped or failed connection.
        timeout: seconds to wait for the server at each step.
        backoff: seconds before the first retry (doubling, at most 30).
        progress: show progress bars.

    Returns:
        The dataset folder, to pass as ``data_dir`` / ``--data-dir``.

    Raises:
        ValueError: the dataset has no public archive.
        DownloadError: see :func:`fetch` and :func:`extract`; also a folder that exists with
            something else in it.

    Example:
        >>> folder = download_dataset("esc50", "data")  # doctest: +SKIP
    """
    src = name if isinstance(name, Source) else source(name)
    to = Path(to).expanduser() if to is not None else default_data_dir()
    dest = to / src.folder
    if _existing(src, dest):
        return dest
    got = []
    for a in src.archives:
        path = fetch(
            a.url,
            to / "downloads" / a.filename,
            size=a.size,
            sha256=a.sha256,
            md5=a.md5,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            progress=progress,
        )
        got.append((path, a.kind))
    extract(got, dest, root=src.archives[0].root, dataset=src.dataset)
    if not keep_archives:
        for path, _ in got:
            with contextlib.suppress(OSError):
                path.unlink()
    return dest


def _holds(dataset: str, folder: Path) -> bool:
    """Whether ``folder`` holds ``dataset`` in its loader's layout."""
    from keras_quaternion.datasets.registry import load

    if not folder.is_dir():
        return False
    try:
        load(dataset, folder)
    except ValueError:
        return False
    return True


def ensure_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    **kwargs,
) -> tuple[Path, bool]:
    """The folder of ``name``'s data, downloaded first when ``data_dir`` does not hold it.

    What ``kq-train --download`` does: ``data_dir`` holding the dataset (or holding it in the
    sub-folder its archive unpacks into) is used as it is; otherwise the dataset is downloaded
    with :func:`download_dataset` into ``data_dir`` (as the download folder; default
    :func:`default_data_dir`), verified and unpacked.

    Args:
        name: a dataset with a download source (:data:`~keras_quaternion.datasets.sources.SOURCES`).
        data_dir: the dataset folder or the download folder, or ``None``.
        progress: progress bars.
        **kwargs: more :func:`download_dataset` arguments (``retries``, ``timeout``...).

    Returns:
        ``(folder, downloaded)``: the dataset folder to load, and whether it was downloaded now.

    Raises:
        ValueError: the dataset has no download source (the message lists those that have).
        DownloadError: the download or its check failed (see :func:`download_dataset`).

    Example:
        >>> ensure_dataset("audioset", "data")
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'audioset' has no public archive to download (its clips are YouTube videos); ...
    """  # noqa: E501
    src = source(name)  # ValueError for a dataset without a download source
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        for folder in (given, given / src.folder):
            if _holds(src.dataset, folder):
                return folder, False
    to = Path(data_dir).expanduser() if data_dir is not None else None
    if to is None and _holds(src.dataset, default_data_dir() / src.folder):
        return default_data_dir() / src.folder, False
    return download_dataset(src, to, progress=progress, **kwargs), True


def describe(src: Source) -> str:
    """One paragraph on a source: folder, archives, checksums and where they were published.

    Example:
        >>> print(describe(source("fsdd")).splitlines()[0])
        fsdd -> fsdd/  (CC BY-SA 4.0; release v1.0.9, 12 MB)
    """
    lines = [f"{src.dataset} -> {src.folder}/  ({src.license}; {src.note})"]
    for a in src.archives:
        size = f"{a.size:,} bytes" if a.size else "size as announced by the server"
        lines.append(f"  {a.url}\n    {size}; checked by {a.verified_by}")
        lines.append(f"    checksum: {a.checksum_source}")
    return "\n".join(lines)
