"""Where each file dataset can be downloaded from, and how its download is checked.

A :class:`Source` lists a dataset's public archive(s) and how they unpack into the layout its
loader reads. Every :class:`Archive` records the checksum **as published**, and where: a SHA-256
where one is published (TensorFlow Datasets records SHA-256 and size for the archives its own
builders fetch), an MD5 where only that is published, and nothing where nothing is; an archive
without a checksum is still checked for its size (the server's announced length) and its
integrity (every zip member's CRC, the gzip CRC, the tar structure) while it unpacks, and the
unpacked folder is then loaded by the dataset's loader before it gets its final name.

AudioSet has no entry: its clips are YouTube videos, not an archive.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SOURCES", "Archive", "Source", "source"]

#: TFDS checksum files: the size and SHA-256 TensorFlow Datasets recorded for these archives
_TFDS = "TensorFlow Datasets' recorded size and SHA-256 (tensorflow_datasets/{}/checksums.tsv)"


@dataclass(frozen=True)
class Archive:
    """One downloadable archive of a dataset.

    Attributes:
        url: where to download it.
        filename: the archive's file name (``.zip``, ``.tar.gz`` / ``.tgz`` or ``.tar``).
        size: its exact size in bytes where published, else ``None`` (the server's announced
            length is checked instead).
        sha256: its published SHA-256 (hex), or ``None`` when none is published.
        md5: its published MD5 (hex), where no SHA-256 is published but an MD5 is.
        checksum_source: where the size / checksum were published, or why there is none.
        root: the archive's top folder that holds the dataset's layout (``None``: its root).

    Example:
        >>> a = Archive("https://example.org/x.zip", "x.zip", None, None, checksum_source="none")
        >>> a.kind, a.verified_by
        ('zip', 'size and archive integrity (no published checksum)')
    """

    url: str
    filename: str
    size: int | None
    sha256: str | None
    md5: str | None = None
    checksum_source: str = ""
    root: str | None = None

    @property
    def kind(self) -> str:
        """``"zip"`` or ``"tar"`` (from the file name)."""
        return "zip" if self.filename.lower().endswith(".zip") else "tar"

    @property
    def verified_by(self) -> str:
        """How a download of this archive is checked, in words."""
        if self.sha256:
            return "SHA-256 and size" if self.size else "SHA-256"
        if self.md5:
            return "MD5 (no published SHA-256), size and archive integrity"
        return "size and archive integrity (no published checksum)"


@dataclass(frozen=True)
class Source:
    """A dataset's download: its archives and the folder they unpack into.

    Attributes:
        dataset: the registry name of the loader that reads the result (``"esc50"``).
        folder: the dataset folder created under the download folder (``"ESC-50"``).
        archives: the archives, unpacked into the same folder (all share one ``root``).
        homepage: the dataset's page.
        license: its license, in words.
        note: anything a user should know (size, availability).
    """

    dataset: str
    folder: str
    archives: tuple[Archive, ...]
    homepage: str
    license: str
    note: str = ""

    def __post_init__(self):
        if len({a.root for a in self.archives}) > 1:
            raise ValueError(f"Source '{self.dataset}': all archives must share one root folder.")


SOURCES: dict[str, Source] = {
    "esc50": Source(
        dataset="esc50",
        folder="ESC-50",
        archives=(
            Archive(
                url="https://github.com/karolpiczak/ESC-50/archive/master.zip",
                filename="ESC-50-master.zip",
                size=None,
                sha256=None,
                checksum_source="none published: the dataset is distributed as GitHub's archive "
                "of its master branch, whose bytes are not fixed",
                root="ESC-50-master",
            ),
        ),
        homepage="https://github.com/karolpiczak/ESC-50",
        license="CC BY-NC 3.0 (the ESC-10 subset: CC BY)",
        note="2000 WAV clips, about 880 MB unpacked",
    ),
    "urbansound8k": Source(
        dataset="urbansound8k",
        folder="UrbanSound8K",
        archives=(
            Archive(
                url="https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz",
                filename="UrbanSound8K.tar.gz",
                size=None,
                sha256=None,
                md5="9aa69802bbf37fb986f71ec1483a196e",
                checksum_source="no SHA-256 published; MD5 as published by the soundata project "
                "(soundata/datasets/urbansound8k.py) for this Zenodo file",
                root="UrbanSound8K",
            ),
        ),
        homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
        license="CC BY-NC 3.0",
        note="8732 WAV clips, several GB",
    ),
    "ravdess": Source(
        dataset="ravdess",
        folder="RAVDESS",
        archives=tuple(
            Archive(
                url=f"https://zenodo.org/record/1188976/files/Audio_{part}_Actors_01-24.zip",
                filename=f"Audio_{part}_Actors_01-24.zip",
                size=None,
                sha256=None,
                checksum_source="none published as SHA-256 (Zenodo record 1188976 gives sizes "
                "in MB only)",
            )
            for part in ("Speech", "Song")
        ),
        homepage="https://zenodo.org/record/1188976",
        license="CC BY-NC-SA 4.0",
        note="audio-only speech and song archives, about 200 MB each",
    ),
    "gtzan": Source(
        dataset="gtzan",
        folder="gtzan",
        archives=(
            Archive(
                url="http://opihi.cs.uvic.ca/sound/genres.tar.gz",
                filename="genres.tar.gz",
                size=1225571541,
                sha256="24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6",
                checksum_source=_TFDS.format("audio/gtzan"),
            ),
        ),
        homepage="http://marsyas.info/index.html",
        license="research use (no license stated)",
        note="the original .au copy, 1.2 GB",
    ),
    "fsdd": Source(
        dataset="fsdd",
        folder="fsdd",
        archives=(
            Archive(
                url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz",
                filename="free-spoken-digit-dataset-1.0.9.tar.gz",
                size=11975353,
                sha256="8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0",
                checksum_source=_TFDS.format("datasets/spoken_digit"),
                root="free-spoken-digit-dataset-1.0.9",
            ),
        ),
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        license="CC BY-SA 4.0",
        note="release v1.0.9, 12 MB",
    ),
    "speech_commands": Source(
        dataset="speech_commands",
        folder="speech_commands_v0.02",
        archives=(
            Archive(
                url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
                filename="speech_commands_v0.02.tar.gz",
                size=2428923189,
                sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
                checksum_source=_TFDS.format("datasets/speech_commands"),
            ),
        ),
        homepage="https://arxiv.org/abs/1804.03209",
        license="CC BY 4.0",
        note="v0.02, 2.4 GB",
    ),
}


def source(name: str) -> Source:
    """The download :class:`Source` of a registered file dataset.

    Args:
        name: a dataset name (``"esc50"``, ...).

    Returns:
        Its :class:`Source`.

    Raises:
        ValueError: the dataset has no public archive (the message says which ones do).

    Example:
        >>> source("fsdd").archives[0].verified_by
        'SHA-256 and size'
        >>> source("audioset")
        Traceback (most recent call last):
        ...
        ValueError: Dataset 'audioset' has no public archive to download (its clips are ...
    """
    if name not in SOURCES:
        why = " (its clips are YouTube videos)" if name == "audioset" else ""
        raise ValueError(
            f"Dataset '{name}' has no public archive to download{why}; downloadable: "
            f"{', '.join(sorted(SOURCES))}, or tfds:NAME for a TensorFlow Datasets builder. "
            "Otherwise lay the files out by hand (see docs/datasets.md)."
        )
    return SOURCES[name]
