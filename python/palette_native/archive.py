"""Stream the images out of a ZIP archive, safely, without extracting anything to disk.

The archive is read with the standard library's ``zipfile``, one entry at a time, in chunks.
Before any entry is inflated the central directory is checked: entry count, names, encryption,
declared sizes, and the layout (no two entries may share bytes, the trick behind
"overlapping" zip bombs). While an entry inflates, the decompressed bytes actually produced are
counted against the per-entry and total limits and the compression ratio, so a header that lies
about sizes buys nothing. Memory holds at most one entry (bounded by ``max_entry_bytes``).

Any breach raises ``ArchiveError`` for the whole archive (its ``code`` says which limit, its
``details`` name the limit and the value found). Entries that are not images (by magic bytes),
nested archives, metadata (``__MACOSX/``, dotfiles) and entries in a compression method that
cannot be inflated in bounded memory are skipped and reported with a ``skipped_reason``.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Union, cast

from .errors import ArchiveError, BadParameterError, CanceledError, PaletteError

if TYPE_CHECKING:
    from ._palette import Palette

__all__ = [
    "ArchiveEntry",
    "ArchiveReader",
    "ArchiveLimits",
    "ArchiveResult",
    "ArchiveSource",
    "DirectorySummary",
    "declared_entry_count",
    "extract_archive",
    "is_zip",
    "iter_archive",
    "scan_directory",
    "sniff",
]

ArchiveSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO, IO[bytes]]

_KiB = 1024
_MiB = 1024 * _KiB
_GiB = 1024 * _MiB

# Skip reasons (stable strings, like error codes).
SKIP_NOT_IMAGE = "not_image"
SKIP_NESTED_ARCHIVE = "nested_archive"
SKIP_METADATA = "metadata"
SKIP_UNSUPPORTED_COMPRESSION = "unsupported_compression"

# Only these can be inflated in bounded memory through zipfile: its bzip2 and LZMA readers
# decompress each compressed chunk with no output bound, so one small chunk can inflate to GBs.
_BOUNDED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_EOCD_SIZE = 22
_DIRECTORY_SIGNATURE = b"PK\x01\x02"
# A central directory record: 46 fixed bytes; name, extra and comment lengths at 28, 30, 32.
_DIRECTORY_RECORD_SIZE = 46
_DIRECTORY_RECORD = struct.Struct("<28xHHH12x")
_MAX_COMMENT = 0xFFFF
_ENCRYPTED_FLAG = 0x1
_STRONG_ENCRYPTION_FLAG = 0x40

# A generous allowance per entry for the central directory (46-byte record + name + extras), so
# that zipfile is never asked to load a directory far bigger than the entry limit needs.
_DIRECTORY_BYTES_PER_ENTRY = 4 * _KiB


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits applied to every archive; all sizes count decompressed bytes.

    - ``max_entries`` (10 000): entries in the central directory, folders included.
    - ``max_entry_bytes`` (64 MiB): one entry, inflated. Also bounds the memory held at once.
    - ``max_total_bytes`` (4 GiB): all entries together, inflated.
    - ``max_ratio`` (100): inflated bytes per compressed byte read, checked as the entry
      inflates once it has produced ``ratio_floor_bytes`` (1 MiB), so small, very compressible
      files (a text file, a flat BMP icon) do not trip it. Photos in ZIPs are close to 1.
    - ``chunk_bytes`` (64 KiB): how much is inflated per read. A smaller chunk notices a
      compression bomb sooner; 64 KiB keeps the overhead per read negligible.
    """

    max_entries: int = 10_000
    max_entry_bytes: int = 64 * _MiB
    max_total_bytes: int = 4 * _GiB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * _MiB
    chunk_bytes: int = 64 * _KiB

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_entry_bytes", "max_total_bytes", "chunk_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadParameterError(
                    f"ArchiveLimits.{name} must be a positive integer, got {value!r}",
                    parameter=name,
                    actual=repr(value),
                )
        if not isinstance(self.ratio_floor_bytes, int) or self.ratio_floor_bytes < 0:
            raise BadParameterError(
                f"ArchiveLimits.ratio_floor_bytes must be a non-negative integer, "
                f"got {self.ratio_floor_bytes!r}",
                parameter="ratio_floor_bytes",
                actual=repr(self.ratio_floor_bytes),
            )
        if not isinstance(self.max_ratio, (int, float)) or not self.max_ratio >= 1.0:
            raise BadParameterError(
                f"ArchiveLimits.max_ratio must be a number >= 1, got {self.max_ratio!r}",
                parameter="max_ratio",
                actual=repr(self.max_ratio),
            )


@dataclass(frozen=True)
class ArchiveEntry:
    """One file entry: its bytes when it is an image, else ``data`` is None and
    ``skipped_reason`` says why (``not_image``, ``nested_archive``, ``metadata``,
    ``unsupported_compression``)."""

    name: str
    data: bytes | None
    skipped_reason: str | None = None
    format: str | None = None
    """What the magic bytes say: ``jpeg``, ``png``, ``zip``... (None when not read)."""

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


@dataclass(frozen=True)
class ArchiveResult:
    """The outcome for one entry: a palette, an error for that image, or a skip reason."""

    name: str
    palette: Palette | None = None
    error: PaletteError | None = None
    skipped_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.palette is not None


# --- magic bytes -------------------------------------------------------------------------

_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
}


def sniff(head: bytes) -> tuple[str, str] | None:
    """Classify the first bytes of a file: ``("image", fmt)``, ``("archive", fmt)`` or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return ("image", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("image", "png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ("image", "gif")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ("image", "webp")
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return ("image", "tiff")
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return ("image", "avif" if head[8:12] in (b"avif", b"avis") else "heif")
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return ("image", "jxl")
    if head.startswith(b"BM") and len(head) >= 26 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return ("image", "bmp")  # BM + a known DIB header size, so "BM..." text is not a bitmap
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return ("archive", "zip")
    if head.startswith(b"\x1f\x8b"):
        return ("archive", "gzip")
    if head.startswith(b"BZh"):
        return ("archive", "bzip2")
    if head.startswith(b"\xfd7zXZ\x00"):
        return ("archive", "xz")
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return ("archive", "7z")
    if head.startswith(b"Rar!\x1a\x07"):
        return ("archive", "rar")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return ("archive", "zstd")
    if head[257:262] == b"ustar":
        return ("archive", "tar")
    return None


def is_zip(head: bytes) -> bool:
    """Whether bytes start like a ZIP archive (a local header, or an empty archive)."""
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


# --- names -------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name_reason(raw_name: str) -> str | None:
    if "\x00" in raw_name:
        return "contains a NUL byte"
    if raw_name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(raw_name):
        return "starts with a drive letter"
    if any(part == ".." for part in re.split(r"[\\/]", raw_name)):
        return "contains a '..' component"
    return None


def _is_metadata(name: str) -> bool:
    parts = [p for p in name.split("/") if p]
    return bool(parts) and (parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts))


# --- the archive file --------------------------------------------------------------------


class _CountingFile:
    """Wraps the archive file and counts the bytes zipfile reads from it, which gives the
    compressed bytes an entry has consumed so far (for the ratio check)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True


@contextmanager
def _open_source(source: ArchiveSource) -> Iterator[IO[bytes]]:
    if isinstance(source, (str, os.PathLike)):
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ArchiveError(
                f"cannot open archive {os.fspath(source)!r}: {exc.strerror or exc}",
                code="archive_unreadable",
                path=os.fspath(source),
            ) from exc
        with handle:
            yield handle
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source)
    elif hasattr(source, "read") and hasattr(source, "seek"):
        seekable = getattr(source, "seekable", None)
        if seekable is not None and not seekable():
            raise BadParameterError(
                "the archive file object must be seekable (ZIP keeps its index at the end)",
                parameter="source",
            )
        yield source
    else:
        raise BadParameterError(
            "archive source must be a path, bytes or a binary file object, "
            f"not {type(source).__name__}",
            parameter="source",
            actual=type(source).__name__,
        )


@dataclass(frozen=True)
class _EndRecord:
    entries: int          # as declared (a hint only: it can lie)
    directory_offset: int
    directory_size: int
    directory_end: int    # where the directory must end: the ZIP64 end record or the end record


def _end_record(fp: IO[bytes]) -> _EndRecord | None:
    """The end-of-central-directory record (ZIP64 when the classic fields overflow); None when
    there is none (zipfile then reports the file as corrupt)."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
    fp.seek(size - tail_size)
    tail = fp.read(tail_size)
    pos = tail.rfind(_EOCD_SIGNATURE)
    if pos < 0 or pos + _EOCD_SIZE > len(tail):
        return None
    count, directory_size, directory_offset = struct.unpack("<HII", tail[pos + 10 : pos + 20])
    directory_end = size - tail_size + pos
    locator = pos - 20
    if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR_SIGNATURE:
        (record_offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        fp.seek(record_offset)
        record = fp.read(56)
        if len(record) == 56 and record.startswith(_ZIP64_EOCD_SIGNATURE):
            count, directory_size, directory_offset = struct.unpack("<QQQ", record[32:56])
            directory_end = record_offset
    return _EndRecord(count, directory_offset, directory_size, directory_end)


@dataclass(frozen=True)
class DirectorySummary:
    """What the central directory holds, counted from its records (not from the end record's
    count, which can lie)."""

    entries: int          # every record, folders included
    files: int            # records that are not folders
    directory_bytes: int


def scan_directory(source: ArchiveSource, limits: ArchiveLimits | None = None) -> DirectorySummary:
    """Check a ZIP's central directory against ``limits`` and count its entries, walking the
    records without building anything per entry (so a forged end record cannot make a parser
    load millions of them). Raises ``ArchiveError``: ``archive_too_many_entries``,
    ``archive_too_large`` (a directory far bigger than the entry limit needs) or
    ``archive_corrupt`` (no end record; a directory that is not where the end record says,
    which is also what a truncated archive ending in a stored inner archive looks like; a
    record that is not one). Every path that opens an archive checks this first."""
    limits = limits or ArchiveLimits()
    with _open_source(source) as raw:
        try:
            return _scan_directory(raw, limits)
        except (OSError, struct.error, ValueError) as exc:
            raise _corrupt(f"not a readable ZIP archive: {exc}") from exc


def _directory_bounds(fp: IO[bytes], limits: ArchiveLimits) -> _EndRecord:
    """The checks that need only the end record (constant time): there is one, the directory
    it declares is within the size limit and ends where the end record starts."""
    end = _end_record(fp)
    if end is None:
        raise _corrupt("not a ZIP archive: no end-of-central-directory record")
    directory_limit = (limits.max_entries + 1) * _DIRECTORY_BYTES_PER_ENTRY
    if end.directory_size > directory_limit:
        raise ArchiveError(
            f"archive directory is {end.directory_size} bytes, over the limit of "
            f"{directory_limit} ({_DIRECTORY_BYTES_PER_ENTRY} bytes per allowed entry)",
            code="archive_too_large",
            limit_directory_bytes=directory_limit,
            actual_directory_bytes=end.directory_size,
        )
    if end.directory_offset + end.directory_size != end.directory_end:
        # Data before the archive (a self-extractor), or the end record of another archive
        # stored at the end of a truncated one: either way not a ZIP read from its start.
        raise _corrupt(
            f"the central directory is not where the end record puts it (offset "
            f"{end.directory_offset} + size {end.directory_size} != {end.directory_end}); "
            "the archive is truncated or has data before it",
            directory_offset=end.directory_offset,
            directory_size=end.directory_size,
            directory_end=end.directory_end,
        )
    return end


def _scan_directory(fp: IO[bytes], limits: ArchiveLimits) -> DirectorySummary:
    end = _directory_bounds(fp, limits)
    # Walk the records in 1 MiB reads: memory stays small whatever the directory size, and
    # the time is bounded by the size limit above.
    fp.seek(end.directory_offset)
    remaining = end.directory_size
    buffer = b""
    at = entries = files = 0
    while True:
        if len(buffer) - at < _DIRECTORY_RECORD_SIZE + 3 * 0xFFFF and remaining:
            chunk = fp.read(min(remaining, _MiB))  # inside the file: it ends at the end record
            buffer, at = buffer[at:] + chunk, 0
            remaining -= len(chunk)
        if at >= len(buffer):
            break
        if buffer[at : at + 4] != _DIRECTORY_SIGNATURE or at + _DIRECTORY_RECORD_SIZE > len(buffer):
            raise _corrupt(f"central directory record {entries + 1} is damaged")
        name_length, extra_length, comment_length = _DIRECTORY_RECORD.unpack_from(buffer, at)
        name_end = at + _DIRECTORY_RECORD_SIZE + name_length
        if name_end + extra_length + comment_length > len(buffer):
            raise _corrupt(f"central directory record {entries + 1} runs past the directory")
        entries += 1
        if not buffer[at + _DIRECTORY_RECORD_SIZE : name_end].endswith(b"/"):
            files += 1
        at = name_end + extra_length + comment_length
    if entries > limits.max_entries:
        raise _too_many_entries(entries, limits)
    return DirectorySummary(entries, files, end.directory_size)


def _too_many_entries(entries: int, limits: ArchiveLimits) -> ArchiveError:
    return ArchiveError(
        f"archive has {entries} entries, more than the limit of {limits.max_entries}",
        code="archive_too_many_entries",
        limit_entries=limits.max_entries,
        actual_entries=entries,
    )


def _check_summary(end: _EndRecord, directory: DirectorySummary, limits: ArchiveLimits) -> None:
    """A summary from an earlier :func:`scan_directory` stands in for the walk: it must be of
    a directory of this size, and within these limits."""
    if directory.directory_bytes != end.directory_size:
        raise _corrupt(
            f"the central directory is {end.directory_size} bytes, not the "
            f"{directory.directory_bytes} of the directory scanned before",
            directory_size=end.directory_size,
            scanned_directory_size=directory.directory_bytes,
        )
    if directory.entries > limits.max_entries:
        raise _too_many_entries(directory.entries, limits)


def declared_entry_count(source: ArchiveSource) -> int | None:
    """The entry count an archive's end record declares (folders included), read without
    loading the central directory; None when the source is not a readable ZIP. Cheap enough
    for sizing a progress bar; not a validation (see :func:`scan_directory`)."""
    try:
        with _open_source(source) as raw:
            end = _end_record(raw)
    except (PaletteError, OSError, struct.error, ValueError):
        return None
    return None if end is None else end.entries


def _corrupt(message: str, **details: Any) -> ArchiveError:
    return ArchiveError(message, code="archive_corrupt", **details)


def _check_records(infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    """Every check that needs only the central directory: names, encryption, declared sizes
    (the directory check has already held the number of records to the limit)."""
    declared_total = 0
    for info in infos:
        reason = _unsafe_name_reason(info.orig_filename)
        if reason is not None:
            raise ArchiveError(
                f"unsafe entry name {info.orig_filename!r}: it {reason}",
                code="archive_unsafe_name",
                name=info.orig_filename,
                reason=reason,
            )
        if info.flag_bits & (_ENCRYPTED_FLAG | _STRONG_ENCRYPTION_FLAG):
            raise ArchiveError(
                f"entry {info.filename!r} is encrypted; encrypted archives are not supported",
                code="archive_encrypted_entry",
                name=info.filename,
            )
        if info.is_dir():
            continue
        if info.file_size > limits.max_entry_bytes:
            raise ArchiveError(
                f"entry {info.filename!r} declares {info.file_size} bytes, over the limit of "
                f"{limits.max_entry_bytes}",
                code="archive_entry_too_large",
                name=info.filename,
                limit_bytes=limits.max_entry_bytes,
                actual_bytes=info.file_size,
            )
        declared_total += info.file_size
        if declared_total > limits.max_total_bytes:
            raise ArchiveError(
                f"archive entries declare {declared_total} bytes in all, over the limit of "
                f"{limits.max_total_bytes}",
                code="archive_too_large",
                limit_bytes=limits.max_total_bytes,
                actual_bytes=declared_total,
            )


def _span(in_order: list[zipfile.ZipInfo], positions: list[int], directory_start: int
          ) -> tuple[int, int]:
    """The bytes reading the entries at ``positions`` (sorted) of ``in_order`` touches: from
    the first one's local header to where the entry after the last one starts (or the central
    directory)."""
    last = positions[-1] + 1
    stop = in_order[last].header_offset if last < len(in_order) else directory_start
    return in_order[positions[0]].header_offset, stop


def _check_layout(
    fp: IO[bytes],
    in_order: list[zipfile.ZipInfo],
    directory_start: int,
    checked: Iterable[int],
) -> dict[int, int]:
    """The local headers of the entries at positions ``checked`` of ``in_order`` (the records
    sorted by header offset): each must be where the directory says, and its data must end
    before the next entry in file order starts (the last one's, before the central
    directory). Checking every part of an archive once checks the whole archive.
    Returns each read entry's local header length, keyed by its header offset."""
    header_lengths: dict[int, int] = {}
    spans: list[tuple[int, int, str, int, str]] = []  # (start, end, name, next start, its name)
    for position in checked:
        info = in_order[position]
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise _corrupt(f"entry {info.filename!r}: truncated local header", name=info.filename)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        if signature != _LOCAL_HEADER_SIGNATURE:
            raise _corrupt(
                f"entry {info.filename!r}: no local header at offset {info.header_offset}",
                name=info.filename,
            )
        header_length = _LOCAL_HEADER.size + name_length + extra_length
        header_lengths[info.header_offset] = header_length
        if position + 1 < len(in_order):
            after = in_order[position + 1]
            following = (after.header_offset, after.filename)
        else:
            following = (directory_start, "central directory")
        spans.append(
            (info.header_offset, info.header_offset + header_length + info.compress_size,
             info.filename, *following)
        )
    for start, end, name, next_start, next_name in spans:
        if next_start < end:
            raise ArchiveError(
                f"entry {name!r} (bytes {start}-{end}) overlaps {next_name!r} "
                f"(starting at byte {next_start}); overlapping entries are a zip bomb technique",
                code="archive_overlapping_entries",
                name=name,
                other=next_name,
                entry_end=end,
                other_start=next_start,
            )
    return header_lengths


def _read_entry(
    zf: zipfile.ZipFile,
    counter: _CountingFile,
    info: zipfile.ZipInfo,
    header_length: int,
    limits: ArchiveLimits,
) -> ArchiveEntry:
    name = info.filename
    buffer = io.BytesIO()
    inflated = 0
    kind: tuple[str, str] | None = None
    start = counter.bytes_read  # before the local header, which open() reads
    with zf.open(info) as stream:
        while True:
            chunk = stream.read(limits.chunk_bytes)
            if not chunk:
                break
            # zipfile stops at the declared size (checked against the limits up front) and
            # checks the CRC, so an entry cannot inflate past what it declares; the ratio of
            # what came out to what went in is checked as it goes.
            inflated += len(chunk)
            if inflated >= limits.ratio_floor_bytes:
                consumed = max(counter.bytes_read - start - header_length, 1)
                if inflated > limits.max_ratio * consumed:
                    raise ArchiveError(
                        f"entry {name!r} inflated {inflated} bytes from {consumed} compressed "
                        f"bytes, a ratio over the limit of {limits.max_ratio:g}",
                        code="archive_ratio_exceeded",
                        name=name,
                        limit_ratio=limits.max_ratio,
                        actual_ratio=round(inflated / consumed, 1),
                        inflated_bytes=inflated,
                        compressed_bytes=consumed,
                    )
            if buffer.tell() == 0:
                kind = sniff(chunk)
                if kind is None:
                    return ArchiveEntry(name, None, SKIP_NOT_IMAGE)
                if kind[0] == "archive":
                    return ArchiveEntry(name, None, SKIP_NESTED_ARCHIVE, kind[1])
            buffer.write(chunk)
    if kind is None:
        return ArchiveEntry(name, None, SKIP_NOT_IMAGE)  # empty entry
    return ArchiveEntry(name, buffer.getvalue(), None, kind[1])


class ArchiveReader:
    """A ZIP archive open for reading in parts.

    Opening it runs the directory checks once (:func:`scan_directory`'s, or the end-record
    checks against ``directory``, then names, encryption and declared sizes of every entry);
    each :meth:`entries` call then reads only the local headers and data of the entries it
    asks for. A job's worker keeps one open while it runs chunk after chunk of the same
    archive, so a chunk costs its own entries rather than a walk over a directory of many
    thousands. ``source`` as for :func:`iter_archive`; a path is opened here and closed by
    :meth:`close` (or leaving a ``with`` block), a file object is left open. A file object
    with a ``prefetch(start, stop)`` method is told, before each part is read, the bytes that
    part spans (its first local header up to the next entry after its last), so a file read
    over a network can fetch them in one request.
    Not for use by several threads at once.
    """

    def __init__(
        self,
        source: ArchiveSource,
        limits: ArchiveLimits | None = None,
        *,
        directory: DirectorySummary | None = None,
    ) -> None:
        self.limits = limits or ArchiveLimits()
        self._resources = ExitStack()
        try:
            self._open(self._resources.enter_context(_open_source(source)), directory)
        except BaseException:
            self._resources.close()
            raise

    def _open(self, raw: IO[bytes], directory: DirectorySummary | None) -> None:
        limits = self.limits
        self._raw = raw
        self._counter = counter = _CountingFile(raw)
        try:
            if directory is None:
                _scan_directory(raw, limits)
            else:
                _check_summary(_directory_bounds(raw, limits), directory, limits)
        except (OSError, struct.error, ValueError) as exc:
            raise _corrupt(f"not a readable ZIP archive: {exc}") from exc
        try:
            zf = zipfile.ZipFile(cast(IO[bytes], counter))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
            raise _corrupt(f"not a valid ZIP archive: {exc}") from exc
        self._zf = self._resources.enter_context(zf)
        infos = zf.infolist()
        self._files = [info for info in infos if not info.is_dir()]
        if directory is not None and (
            len(infos) != directory.entries or len(self._files) != directory.files
        ):
            raise _corrupt(
                f"the central directory holds {len(infos)} entries "
                f"({len(self._files)} files), not the {directory.entries} ({directory.files}) "
                "scanned before",
                entries=len(infos),
                scanned_entries=directory.entries,
            )
        _check_records(infos, limits)
        self._in_order = sorted(infos, key=lambda i: i.header_offset)
        self._position = {id(info): n for n, info in enumerate(self._in_order)}

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._resources.close()

    def entries(self, part: range | None = None) -> Iterator[ArchiveEntry]:
        """The file entries in directory order, or only those at positions ``part`` (counted
        from 0 over the file entries); see :func:`iter_archive`."""
        files = self._files
        if part is not None:
            files = [files[n] for n in part if 0 <= n < len(files)]
            positions = sorted(self._position[id(info)] for info in files)
            prefetch = getattr(self._raw, "prefetch", None)
            if prefetch is not None and positions:
                prefetch(*_span(self._in_order, positions, self._zf.start_dir))
            checked: Iterable[int] = positions
        else:
            checked = range(len(self._in_order))
        try:
            header_lengths = _check_layout(
                self._raw, self._in_order, self._zf.start_dir, checked
            )
        except (OSError, EOFError, struct.error) as exc:
            raise _corrupt(f"archive layout is unreadable: {exc}") from exc
        for info in files:
            if _is_metadata(info.filename):
                yield ArchiveEntry(info.filename, None, SKIP_METADATA)
                continue
            if info.compress_type not in _BOUNDED_METHODS:
                yield ArchiveEntry(info.filename, None, SKIP_UNSUPPORTED_COMPRESSION)
                continue
            try:
                entry = _read_entry(
                    self._zf, self._counter, info, header_lengths[info.header_offset],
                    self.limits,
                )
            except ArchiveError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                raise _corrupt(
                    f"entry {info.filename!r} is corrupt: {exc}", name=info.filename
                ) from exc
            yield entry


def iter_archive(
    source: ArchiveSource,
    limits: ArchiveLimits | None = None,
    *,
    entries: range | None = None,
    directory: DirectorySummary | None = None,
) -> Iterator[ArchiveEntry]:
    """Yield the file entries of a ZIP archive in directory order, one at a time.

    ``source`` is a path, bytes, or a seekable binary file object (left open). Image entries
    carry their bytes; other entries come with ``data=None`` and a ``skipped_reason``; folders
    are left out. The directory checks (:func:`scan_directory`'s, then names, encryption,
    declared sizes and layout) run before the first entry is yielded; the ratio check may raise
    ``ArchiveError`` part way through, after earlier entries were yielded.

    ``entries``: only the file entries at these positions (counted as above, from 0). Only
    their local headers and data are read, found through the central directory's offsets, so
    one part of a large archive costs its own bytes (what a chunk of a job reads). The declared
    sizes of every entry are still checked against the limits. To read several parts of one
    archive, open an :class:`ArchiveReader` once instead.

    ``directory``: what :func:`scan_directory` returned for this archive earlier (a job checks
    it once at submit; each of its chunks then reads a part). The walk over the directory's
    records is not repeated; the end-record checks are, and the directory must match the
    summary (its size before it is loaded, its entry counts after), else ``archive_corrupt``.
    """
    with ArchiveReader(source, limits, directory=directory) as reader:
        yield from reader.entries(entries)


def extract_archive(
    source: ArchiveSource,
    colors: int = 8,
    limits: ArchiveLimits | None = None,
    **extract_options: Any,
) -> Iterator[ArchiveResult]:
    """Extract a palette from every image in a ZIP, one entry at a time.

    Yields one ``ArchiveResult`` per file entry: the palette, or the ``PaletteError`` that
    image raised (a corrupt image does not stop the others), or the reason it was skipped.
    ``extract_options`` go to ``palette_native.extract``. Errors about the archive itself
    (``ArchiveError``), about the options (``BadParameterError``) and cancellation
    (``CanceledError``) are raised, since they would hit every entry alike.
    """
    from . import extract  # the core is imported lazily so this module works without it

    for entry in iter_archive(source, limits):
        if entry.data is None:
            yield ArchiveResult(entry.name, skipped_reason=entry.skipped_reason)
            continue
        try:
            palette = extract(entry.data, colors=colors, **extract_options)
        except (BadParameterError, CanceledError):
            raise
        except PaletteError as exc:
            yield ArchiveResult(entry.name, error=exc)
            continue
        yield ArchiveResult(entry.name, palette=palette)
