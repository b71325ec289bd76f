"""A feature cache that scales: float16 log-mel in shards, Δ, Δ², Δ³ computed in the model.

The ``"logmel16"`` cache format stores the log-mel component alone, as float16, in shards of a
few thousand clips (about 125 KiB per ten-second clip at 64 mel bands instead of the float32
cache's 1 MB), and a model trained on it starts with
:class:`~keras_quaternion.layers.deltas.QuaternionDeltas`, which computes Δ, Δ², Δ³ exactly as
the float32 cache did. Shards are independent, so several processes (``workers``) and several
machines (a range of shard numbers each) can build one cache together.

Layout, in the folder :func:`keras_quaternion.training.pipeline.prepare` names after the
cache key::

    plan.json              # the shards: split, rows of the split, global number (same everywhere)
    train-00000.npy        # float16 [rows, frames, mels] log-mel of the shard's decodable clips
    train-00000.json       # the shard's record, written last: rows, labels, bytes, skipped clips
    ...
    manifest.json          # written once every shard has its record

Each ``.npy`` is written under a temporary name (``.train-00000.<random>.tmp.npy``, locked while
its worker lives) and renamed into place, then its record is written the same way. A shard whose
worker was interrupted is therefore one of: a temporary file no live process holds, a ``.npy``
without a record, or a ``.npy`` whose size is not what its record says. :func:`shard_problems`
names each; building again removes and rebuilds them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_quaternion.files import atomic_write, publish, sweep_temp_files, temporary_file

__all__ = [
    "CACHE_FORMATS",
    "DEFAULT_SHARD_SIZE",
    "CacheDiskFullError",
    "Shard",
    "ShardError",
    "ShardedArray",
    "build_shards",
    "load_sharded",
    "parse_shard_range",
    "plan_shards",
    "shard_problems",
]

#: the cache formats :func:`~keras_quaternion.training.pipeline.prepare` writes
CACHE_FORMATS = ("float32", "logmel16")
#: clips per shard unless told otherwise (256 MiB of float16 log-mel for ten-second clips)
DEFAULT_SHARD_SIZE = 2048
#: bump when the shard layout or content changes for the same inputs
SHARDS_VERSION = 1
#: seconds a shard file without a record must be old before it counts as abandoned (its worker
#: renames the data, then writes the record a moment later)
ABANDONED_AGE = 5.0
#: seconds a temporary shard file must be left unmodified (besides its lock being free) before
#: it counts as an interrupted worker's: ``flock`` does not reach across machines on every
#: network file system, so another machine's live writer is told apart by its file's age
ABANDONED_TEMP_AGE = 60.0
SPLITS = ("train", "validation", "test")


class ShardError(RuntimeError):
    """A shard of a sharded feature cache is missing, incomplete or damaged.

    Attributes:
        shard: the shard's name (``"train-00003"``), or ``None`` for the cache as a whole.
        folder: the cache folder.
    """

    def __init__(self, message: str, shard: str | None = None, folder: str | None = None):
        super().__init__(message)
        self.shard = shard
        self.folder = folder


class CacheDiskFullError(OSError):
    """The disk filled up while a shard was written; nothing was left under its final name."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard: rows ``start:stop`` of a split, numbered ``number`` across all splits.

    Example:
        >>> Shard("train", 3, 6144, 8192, 3).name
        'train-00003'
    """

    split: str
    index: int
    start: int
    stop: int
    number: int

    @property
    def name(self) -> str:
        """``<split>-<index, 5 digits>``: the stem of the shard's files."""
        return f"{self.split}-{self.index:05d}"

    @property
    def rows(self) -> int:
        """Clips assigned to the shard (before undecodable ones are skipped)."""
        return self.stop - self.start


def plan_shards(sizes: dict[str, int], shard_size: int) -> list[Shard]:
    """Cut each split into shards of ``shard_size`` clips, numbered train, validation, test.

    Args:
        sizes: clips per split, e.g. ``{"train": 5000, "validation": 500, "test": 500}``.
        shard_size: clips per shard (the last shard of a split may be smaller).

    Returns:
        The shards in order; their ``number`` is the position in this list.

    Raises:
        ValueError: ``shard_size`` is not a positive integer.

    Example:
        >>> [(s.name, s.start, s.stop, s.number) for s in plan_shards({"train": 5, "test": 2}, 2)]
        [('train-00000', 0, 2, 0), ('train-00001', 2, 4, 1), ('train-00002', 4, 5, 2), ('test-00000', 0, 2, 3)]
    """  # noqa: E501
    if isinstance(shard_size, bool) or not isinstance(shard_size, int | np.integer):
        raise ValueError(f"shard_size must be a positive integer of clips, got {shard_size!r}.")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 clip, got {shard_size}.")
    shards: list[Shard] = []
    for split in SPLITS:
        n = int(sizes.get(split, 0))
        for index, start in enumerate(range(0, n, int(shard_size))):
            stop = min(n, start + int(shard_size))
            shards.append(Shard(split, index, start, stop, len(shards)))
    return shards


def parse_shard_range(text: str | None, total: int) -> range:
    """The shard numbers ``A:B`` (``A`` included, ``B`` not), ``A:`` or ``A`` of ``total``.

    Args:
        text: ``"A:B"``, ``"A:"``, ``":B"``, ``"A"`` or ``None`` (all shards).
        total: the number of shards in the plan.

    Returns:
        A ``range`` within ``0..total``.

    Raises:
        ValueError: not of that form, or outside ``0..total``.

    Example:
        >>> parse_shard_range("2:5", 10), parse_shard_range("7", 10), parse_shard_range(None, 3)
        (range(2, 5), range(7, 8), range(0, 3))
        >>> parse_shard_range("4:12", 10)
        Traceback (most recent call last):
        ...
        ValueError: --shards '4:12' is outside the plan's 10 shards (numbers 0..9); use A:B with 0 <= A < B <= 10.
    """  # noqa: E501
    if text is None or str(text).strip() in ("", ":"):
        return range(total)
    text = str(text).strip()
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = int(parts[0])
            hi = lo + 1
        elif len(parts) == 2:
            lo = int(parts[0]) if parts[0] else 0
            hi = int(parts[1]) if parts[1] else total
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"--shards {text!r} is not a shard range; use A:B (shards A to B-1), A: or a single "
            "number A."
        ) from None
    if not 0 <= lo < hi <= total:
        raise ValueError(
            f"--shards {text!r} is outside the plan's {total} shards (numbers 0..{total - 1}); "
            f"use A:B with 0 <= A < B <= {total}."
        )
    return range(lo, hi)


# --------------------------------------------------------------------------- reading


class ShardedArray:
    """The float16 log-mel of a split's shards as one read-only array ``[N, frames, mels, 1]``.

    Rows are gathered from the memory-mapped shard files on demand, so a split larger than
    memory can be read batch by batch (``x[indices]``), as
    :meth:`~keras_quaternion.training.pipeline.PreparedData.tf_dataset` does.

    Args:
        parts: the shards' arrays, each ``[rows, frames, mels]`` (memory maps or arrays).
        frames: frames per clip (needed when there are no parts).
        mels: mel bands per frame.
        shard_names: one name per part, for messages.

    Example:
        >>> a = ShardedArray([np.zeros((2, 5, 3), "float16"), np.ones((3, 5, 3), "float16")], 5, 3)
        >>> a.shape, len(a), a[np.array([4, 0])][:, 0, 0, 0].tolist()
        ((5, 5, 3, 1), 5, [1.0, 0.0])
        >>> a.worker_rows(1, 2).tolist()   # worker 1 of 2 owns the second shard
        [2, 3, 4]
    """

    def __init__(self, parts: Sequence[np.ndarray], frames: int, mels: int, shard_names=None):
        self.parts = list(parts)
        self.shard_names = list(shard_names or [f"part {i}" for i in range(len(self.parts))])
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)
        self.frames, self.mels = int(frames), int(mels)
        self.dtype = np.dtype(np.float16)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, frames, mels, 1)``."""
        return (int(self.offsets[-1]), self.frames, self.mels, 1)

    @property
    def ndim(self) -> int:
        """Always 4."""
        return 4

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        out = np.empty((rows.size, self.frames, self.mels), self.dtype)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for p in np.unique(part_of):
            where = np.flatnonzero(part_of == p)
            local = rows[where] - self.offsets[p]
            order = np.argsort(local, kind="stable")  # ascending reads from the memory map
            out[where[order]] = self.parts[p][local[order]]
        return out[..., np.newaxis]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # x[rows, ...] or x[..., :1]: rows first, then the rest
            head, rest = key[0], key[1:]
            if head is Ellipsis:
                return np.asarray(self)[key]
            return self[head][(slice(None), *rest)]
        if isinstance(key, slice):
            return self._take(np.arange(len(self))[key])
        if isinstance(key, int | np.integer):
            return self._take(np.array([key]))[0]
        return self._take(np.asarray(key))

    def __array__(self, dtype=None, copy=None):
        whole = self._take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def worker_rows(self, worker: int, workers: int) -> np.ndarray:
        """Row numbers of the shards ``worker, worker + workers, ...``: one worker's share.

        Whole shards go to each worker, so a worker reads its own files only.
        """
        if workers <= 1:
            return np.arange(len(self), dtype=np.int64)
        own = [np.arange(self.offsets[p], self.offsets[p + 1]) for p in range(len(self.parts))]
        mine = own[worker::workers]
        if not mine or not sum(len(m) for m in mine):
            raise ShardError(
                f"Worker {worker} of {workers} has no shard to read: the split has only "
                f"{len(self.parts)} shard(s) ({', '.join(self.shard_names) or 'none'}). Use fewer "
                "workers or a smaller shard size (kq-data prepare --shard-size)."
            )
        return np.concatenate(mine).astype(np.int64)

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, shards={len(self.parts)})"


def _record_path(folder: Path, shard: Shard) -> Path:
    return folder / f"{shard.name}.json"


def _data_path(folder: Path, shard: Shard) -> Path:
    return folder / f"{shard.name}.npy"


def _expected_bytes(rows: int, frames: int, mels: int, header: int) -> int:
    return header + rows * frames * mels * 2


def _check_shard(folder: Path, shard: Shard, plan: dict, now: float) -> str | None:
    """What is wrong with one shard (``None``: complete, ``"missing"``: not built yet)."""
    data, record_path = _data_path(folder, shard), _record_path(folder, shard)
    if not record_path.is_file():
        if data.is_file() and now - data.stat().st_mtime >= ABANDONED_AGE:
            return (
                f"'{data.name}' has no record '{record_path.name}': the worker that wrote it "
                "was interrupted before finishing the shard"
            )
        return "missing"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        size = data.stat().st_size
    except FileNotFoundError:
        return f"its record exists but '{data.name}' is missing"
    except (OSError, ValueError) as err:
        return f"its record '{record_path.name}' is unreadable ({err})"
    want = _expected_bytes(record["rows"], plan["frames"], plan["mels"], record["header_bytes"])
    if size != want or record.get("bytes") != size:
        return (
            f"'{data.name}' holds {size} bytes but its record says {record.get('bytes')} "
            f"({record['rows']} clips): the file was truncated or replaced"
        )
    return None


def _abandoned_temps(folder: Path, shards: Sequence[Shard]) -> dict[str, list[Path]]:
    """Temporary shard files that no live worker holds, by shard name (removed)."""
    names = {s.name for s in shards}
    found: dict[str, list[Path]] = {}
    for path in sweep_temp_files(folder, min_age=ABANDONED_TEMP_AGE):
        stem = path.name[1:].split(".")[0]
        if stem in names:
            found.setdefault(stem, []).append(path)
    return found


def shard_problems(folder: str | os.PathLike, shards: Sequence[Shard] | None = None):
    """Check shards of a cache folder: ``(complete, missing, broken)``.

    ``broken`` maps shard names to what is wrong (an interrupted worker's leftovers, a
    truncated file...); ``missing`` lists shards not built yet. Abandoned temporary files of
    interrupted workers are removed and reported under their shard.

    Args:
        folder: the cache folder (with ``plan.json``).
        shards: the shards to check (default: all of the plan).

    Returns:
        ``(complete: list[Shard], missing: list[Shard], broken: dict[str, str])``.

    Raises:
        ShardError: the folder has no readable ``plan.json``.
    """
    folder = Path(folder)
    plan = _read_plan(folder)
    shards = plan_from_json(plan) if shards is None else list(shards)
    now = time.time()
    complete, missing, broken = [], [], {}
    for shard, temps in _abandoned_temps(folder, shards).items():
        broken[shard] = (
            f"a worker was interrupted while writing it (its temporary file "
            f"'{temps[0].name}' was left behind and has been removed)"
        )
    for shard in shards:
        problem = _check_shard(folder, shard, plan, now)
        if problem is None:
            complete.append(shard)
            broken.pop(shard.name, None)  # rebuilt since: the leftover was an older attempt
        elif problem == "missing":
            missing.append(shard)
        else:
            broken[shard.name] = problem
    missing = [s for s in missing if s.name not in broken]
    return complete, missing, broken


def _read_plan(folder: Path) -> dict:
    try:
        return json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ShardError(
            f"The sharded feature cache in '{folder}' has no readable plan.json ({err}); build it "
            "with kq-data prepare (or prepare(..., cache_format='logmel16')).",
            folder=str(folder),
        ) from None


def plan_from_json(plan: dict) -> list[Shard]:
    """The :class:`Shard` list stored in a ``plan.json`` dictionary."""
    return [
        Shard(s["split"], s["index"], s["start"], s["stop"], s["number"]) for s in plan["shards"]
    ]


def rebuild_hint(plan: dict, shard: Shard) -> str:
    """The command that rebuilds one shard (for messages)."""
    dataset = plan.get("dataset", "DATASET")
    return f"kq-data prepare {dataset} ... --shards {shard.number}:{shard.number + 1}"


def load_sharded(folder: str | os.PathLike):
    """Read a complete sharded cache as :class:`~keras_quaternion.training.pipeline.PreparedData`.

    The features are :class:`ShardedArray` s ``[N, frames, mels, 1]`` float16 (log-mel only),
    memory-mapped.

    Raises:
        ShardError: a shard is missing, was left by an interrupted worker or is damaged; the
            message names the shard(s) and the command that builds them.
    """
    from keras_quaternion.features import FeatureConfig
    from keras_quaternion.training.pipeline import PreparedData

    folder = Path(folder)
    plan = _read_plan(folder)
    complete, missing, broken = shard_problems(folder)
    if missing or broken:
        raise _incomplete_error(folder, plan, missing, broken)
    features, labels, skipped = {}, {}, {}
    for split in SPLITS:
        shards = [s for s in complete if s.split == split]
        records = [json.loads(_record_path(folder, s).read_text("utf-8")) for s in shards]
        parts = [_open_part(folder, s, r) for s, r in zip(shards, records)]
        features[split] = ShardedArray(
            parts, plan["frames"], plan["mels"], [s.name for s in shards]
        )
        labels[split] = _stack_labels(records, plan)
        skipped[split] = [item for r in records for item in r["skipped"]]
    return PreparedData(
        dataset=plan["dataset"],
        class_names=list(plan["class_names"]),
        multi_label=bool(plan["multi_label"]),
        feature_config=FeatureConfig.from_dict(plan["feature_config"]),
        clip_seconds=float(plan["clip_seconds"]),
        features=features,
        labels=labels,
        cache_path=folder,
        info={
            **{k: plan.get(k) for k in ("options", "data_dir", "protocol", "created")},
            "skipped": skipped,
            "cache_format": "logmel16",
        },
    )


def _open_part(folder: Path, shard: Shard, record: dict) -> np.ndarray:
    if record["rows"] == 0:
        return np.zeros((0, 1, 1), np.float16)
    return np.load(_data_path(folder, shard), mmap_mode="r")


def _stack_labels(records: list[dict], plan: dict) -> np.ndarray:
    classes = len(plan["class_names"])
    if not plan["multi_label"]:
        return np.asarray([y for r in records for y in r["labels"]], dtype=np.int64)
    rows = [y for r in records for y in r["labels"]]
    out = np.zeros((len(rows), classes), np.float32)
    for i, positive in enumerate(rows):
        out[i, positive] = 1.0
    return out


def _incomplete_error(folder: Path, plan: dict, missing, broken) -> ShardError:
    shards = {s.name: s for s in plan_from_json(plan)}
    lines = [
        f"  {name}: {why}; rebuild it: {rebuild_hint(plan, shards[name])}"
        for name, why in sorted(broken.items())[:10]
    ]
    if missing:
        numbers = ", ".join(str(s.number) for s in missing[:20])
        more = " ..." if len(missing) > 20 else ""
        lines.append(f"  {len(missing)} shard(s) not built yet (numbers {numbers}{more})")
    first = next(iter(sorted(broken)), None) or missing[0].name
    return ShardError(
        f"The sharded feature cache in '{folder}' is incomplete ({len(broken)} damaged, "
        f"{len(missing)} missing of {len(shards)} shards):\n" + "\n".join(lines) + "\n"
        "Run the same kq-data prepare command again (or kq-train without --shards): it removes "
        "the damaged shards and builds what is missing.",
        shard=first,
        folder=str(folder),
    )


# --------------------------------------------------------------------------- writing


def _write_array(handle, array: np.ndarray) -> None:
    """``np.save`` into an open file (a seam the tests use to simulate a full disk)."""
    np.save(handle, array)


def _header_bytes(shape: tuple[int, ...]) -> int:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
            "fortran_order": False,
            "shape": shape,
        },
    )
    return buf.tell()


def _disk_full(folder: Path, shard: Shard, nbytes: int, err: OSError) -> CacheDiskFullError:
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    return CacheDiskFullError(
        f"No space left on the device while writing shard {shard.name} ({nbytes / 1e6:.1f} MB) "
        f"to '{folder}' ({free / 1e6:.1f} MB free): nothing was left under the shard's name. "
        "Free some space or pass another cache folder (--cache-dir / $KQ_CACHE_DIR), then run "
        "the same command again; the shards already built are kept."
    )


def write_shard(folder: Path, shard: Shard, logmel: np.ndarray, labels: list, skipped: list):
    """Write one shard atomically: the float16 array, then its record (the completion mark).

    Raises:
        CacheDiskFullError: the disk filled up (``ENOSPC`` / ``EDQUOT``); no file is left
            under the shard's names.
    """
    array = np.ascontiguousarray(logmel, dtype=np.float16)
    final = _data_path(folder, shard)
    try:
        with temporary_file(final) as tmp:
            with open(tmp, "wb") as handle:
                _write_array(handle, array)
                handle.flush()
                os.fsync(handle.fileno())
            size = tmp.stat().st_size
            record = {
                "version": SHARDS_VERSION,
                "split": shard.split,
                "index": shard.index,
                "number": shard.number,
                "examples": [shard.start, shard.stop],
                "rows": int(array.shape[0]),
                "bytes": int(size),
                "header_bytes": _header_bytes(array.shape),
                "labels": labels,
                "skipped": [list(item) for item in skipped],
            }
            publish(tmp, final)
        atomic_write(_record_path(folder, shard), json.dumps(record))
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            with contextlib.suppress(OSError):
                final.unlink()
            full = _disk_full(folder, shard, array.nbytes, err)
            full.errno = err.errno
            raise full from None
        raise
    return record


def _labels_json(examples, multi_label: bool) -> list:
    if multi_label:
        return [np.flatnonzero(np.asarray(e.label) > 0).tolist() for e in examples]
    return [int(e.label) for e in examples]


def build_one(task: dict) -> dict:
    """Decode and featurise one shard's clips and write the shard (runs in a worker process).

    Args:
        task: ``{"folder", "shard", "dataset", "config", "clip_seconds"}``, where ``dataset``
            is an :class:`~keras_quaternion.datasets.AudioDataset` holding the shard's examples
            as its ``train`` split and ``config`` a feature-config dict.

    Returns:
        ``{"shard", "rows", "bytes", "start", "end", "cpu"}``: ``time.time()`` around the work
        and the CPU seconds it took (every thread of the process).
    """
    from keras_quaternion.features import FeatureConfig, log_mel

    begun, cpu = time.time(), time.process_time()
    config = FeatureConfig.from_dict(task["config"])
    ds, shard, clip = task["dataset"], task["shard"], task["clip_seconds"]
    examples = ds.splits["train"]
    frames = config.num_frames(int(round(clip * config.sample_rate)))
    chunk = max(1, min(64, int(64e6 // (clip * config.sample_rate * 4 * 6))))
    parts, kept, skipped = [], [], []
    chunks = ds.decode_chunks(
        examples, sample_rate=config.sample_rate, clip_seconds=clip, chunk=chunk
    )
    for start, waves, ok, bad in chunks:  # skipped files are reported in the record
        skipped.extend(bad)
        kept.extend(start + k for k in ok)
        if waves:
            parts.append(log_mel(np.stack(waves), config).numpy().astype(np.float16))
    logmel = np.concatenate(parts) if parts else np.zeros((0, frames, config.n_mels), np.float16)
    labels = _labels_json([examples[i] for i in kept], ds.multi_label)
    record = write_shard(Path(task["folder"]), shard, logmel, labels, skipped)
    return {
        "shard": shard.name,
        "rows": record["rows"],
        "bytes": record["bytes"],
        "start": begun,
        "end": time.time(),
        "cpu": time.process_time() - cpu,  # this process's CPU seconds (a worker runs one task)
    }


def _init_worker(threads: int) -> None:
    """Start of a worker process: one TensorFlow thread each, so N workers use N cores."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised (cannot happen when spawned)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _tasks(ds, folder: Path, shards: Sequence[Shard], config, clip_seconds) -> list[dict]:
    from keras_quaternion.datasets import AudioDataset

    tasks = []
    for shard in shards:
        part = AudioDataset(
            ds.name,
            list(ds.class_names),
            ds.multi_label,
            ds.sample_rate_hint,
            {"train": ds.splits[shard.split][shard.start : shard.stop]},
        )
        tasks.append(
            {
                "folder": str(folder),
                "shard": shard,
                "dataset": part,
                "config": config.to_dict(),
                "clip_seconds": float(clip_seconds),
            }
        )
    return tasks


def run_tasks(
    tasks: list[dict], workers: int, *, processes: bool | None = None, progress: bool = True
) -> list[dict]:
    """Build shards: in this process (one worker) or in ``workers`` spawned processes.

    Args:
        tasks: from :func:`_tasks`.
        workers: worker processes (>= 1).
        processes: force worker processes even for one worker (benchmarks: every worker then
            uses one thread); default: processes only when ``workers > 1``.
        progress: a progress bar over shards.

    Returns:
        One :func:`build_one` result per task, in completion order.
    """
    from tqdm.auto import tqdm

    use_processes = workers > 1 if processes is None else bool(processes)
    bar = tqdm(total=len(tasks), desc="shards", unit="shard", disable=not progress or not tasks)
    results = []
    with bar:
        if not use_processes:
            for task in tasks:
                results.append(build_one(task))
                bar.update(1)
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(1,)
        ) as pool:
            futures = [pool.submit(build_one, task) for task in tasks]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(1)
    return results


def write_plan(folder: Path, plan: dict) -> None:
    """Write ``plan.json`` unless an identical plan is there; refuse a different one."""
    path = folder / "plan.json"
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("shards") == plan["shards"]:
                return
    atomic_write(path, json.dumps(plan, indent=1))


def build_shards(
    ds,
    folder: str | os.PathLike,
    plan: dict,
    *,
    shard_range: range | None = None,
    workers: int = 1,
    processes: bool | None = None,
    progress: bool = True,
) -> dict:
    """Build the shards of ``shard_range`` that are missing or broken, with ``workers``.

    Broken shards (left by an interrupted worker, truncated) are named in a warning, removed
    and rebuilt.

    Args:
        ds: the :class:`~keras_quaternion.datasets.AudioDataset` the plan was made from.
        folder: the cache folder.
        plan: the plan (see :func:`keras_quaternion.training.pipeline.prepare`).
        shard_range: shard numbers to build (default: all).
        workers: worker processes (>= 1).
        processes: see :func:`run_tasks`.
        progress: progress bar.

    Returns:
        ``{"built": [...], "kept": [...], "rebuilt": {name: why}, "results": [...],
        "complete": bool}`` (``complete``: every shard of the plan is done).
    """
    from keras_quaternion.features import FeatureConfig

    folder = Path(folder)
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be a positive integer of processes, got {workers!r}.")
    write_plan(folder, plan)
    shards = plan_from_json(plan)
    chosen = [shards[i] for i in (shard_range or range(len(shards)))]
    done, missing, broken = shard_problems(folder, chosen)
    if broken:
        warnings.warn(
            "Rebuilding shard(s) left incomplete by an interrupted worker or damaged in "
            f"'{folder}': " + "; ".join(f"{n}: {why}" for n, why in sorted(broken.items())),
            UserWarning,
            stacklevel=2,
        )
        for name in broken:
            for suffix in (".json", ".npy"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / f"{name}{suffix}").unlink()
    todo = missing + [s for s in chosen if s.name in broken]
    todo.sort(key=lambda s: s.number)
    config = FeatureConfig.from_dict(plan["feature_config"])
    tasks = _tasks(ds, folder, todo, config, plan["clip_seconds"])
    results = run_tasks(tasks, workers, processes=processes, progress=progress)
    _, left, still = shard_problems(folder)
    complete = not left and not still
    if complete:
        finish(folder, plan)
    return {
        "built": [s.name for s in todo],
        "kept": [s.name for s in done],
        "rebuilt": broken,
        "results": results,
        "complete": complete,
    }


def finish(folder: Path, plan: dict) -> None:
    """Write ``manifest.json`` (every shard is complete) with the totals."""
    rows = bytes_ = 0
    for shard in plan_from_json(plan):
        record = json.loads(_record_path(folder, shard).read_text("utf-8"))
        rows += record["rows"]
        bytes_ += record["bytes"]
    manifest = {
        "format": "logmel16",
        "shards": len(plan["shards"]),
        "clips": rows,
        "bytes": bytes_,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write(folder / "manifest.json", json.dumps(manifest, indent=1))


def make_plan(ds, config, clip_seconds: float, shard_size: int, extra: dict[str, Any]) -> dict:
    """The ``plan.json`` content for a dataset: shards, shapes, classes, provenance."""
    sizes = {s: len(ds.splits[s]) for s in SPLITS}
    frames = config.num_frames(int(round(clip_seconds * config.sample_rate)))
    return {
        "version": SHARDS_VERSION,
        "format": "logmel16",
        "dataset": ds.name,
        "class_names": list(ds.class_names),
        "multi_label": bool(ds.multi_label),
        "feature_config": config.to_dict(),
        "clip_seconds": float(clip_seconds),
        "frames": int(frames),
        "mels": int(config.n_mels),
        "shard_size": int(shard_size),
        "sizes": sizes,
        "shards": [dataclasses.asdict(s) for s in plan_shards(sizes, shard_size)],
        "protocol": ds.info.get("protocol", ""),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }


def describe_build(report: dict) -> str:
    """What ``kq-data prepare`` prints after building: the plan, what was built, what is left.

    Args:
        report: the result of :func:`keras_quaternion.training.pipeline.build_cache`.

    Example:
        >>> print(describe_build({"folder": "cache/x", "shards": 7, "range": range(0, 2),
        ...     "built": ["train-00000"], "kept": ["train-00001"], "rebuilt": {},
        ...     "results": [{"rows": 16, "bytes": 52000, "start": 0.0, "end": 2.0}],
        ...     "complete": False}))
        Shards 0:2 of 7 in 'cache/x': built 1 (16 clips, 52.0 kB, 8.0 clips/s), 1 already complete.
        The cache is not complete yet: build the other shards (kq-data prepare ... --shards A:B on each machine, or without --shards).
    """  # noqa: E501
    results = report["results"]
    clips = sum(r["rows"] for r in results)
    size = sum(r["bytes"] for r in results)
    rate = ""
    if results:
        seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
        rate = f", {clips / max(seconds, 1e-9):.1f} clips/s"
    chosen = report["range"]
    lines = [
        f"Shards {chosen.start}:{chosen.stop} of {report['shards']} in '{report['folder']}': "
        f"built {len(report['built'])} ({clips} clips, {size / 1000:.1f} kB{rate}), "
        f"{len(report['kept'])} already complete."
    ]
    if report["rebuilt"]:
        lines.append("Rebuilt after an interrupted worker: " + ", ".join(sorted(report["rebuilt"])))
    if report["complete"]:
        lines.append("The cache is complete: train with kq-train ... --cache-format logmel16.")
    else:
        lines.append(
            "The cache is not complete yet: build the other shards (kq-data prepare ... "
            "--shards A:B on each machine, or without --shards)."
        )
    return "\n".join(lines)
