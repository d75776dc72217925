"""ZIP streaming with limits (palette_native.archive).

Every archive is built here: normal ones with ``zipfile``, hostile ones (bombs, overlapping
entries, encrypted flags, unsafe names) byte by byte with the small writer below.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from palette_native.archive import (
    ArchiveEntry,
    ArchiveLimits,
    ArchiveReader,
    declared_entry_count,
    is_zip,
    iter_archive,
    scan_directory,
    sniff,
)
from palette_native.errors import ArchiveError, BadParameterError, PaletteError
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MiB = 1 << 20
GiB = 1 << 30


# --- a tiny ZIP writer for hand-made archives ----------------------------------------------


def local_header(
    name: bytes,
    *,
    method: int,
    crc: int,
    csize: int,
    usize: int,
    flags: int = 0,
    extra: bytes = b"",
) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            flags,
            method,
            0,
            0x21,
            crc,
            csize,
            usize,
            len(name),
            len(extra),
        )
        + name
        + extra
    )


def central_header(
    name: bytes, *, method: int, crc: int, csize: int, usize: int, offset: int, flags: int = 0
) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            flags,
            method,
            0,
            0x21,
            crc,
            csize,
            usize,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def end_record(count: int, directory: bytes, directory_offset: int) -> bytes:
    return struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(directory), directory_offset, 0
    )


def raw_zip(entries: list[tuple[bytes, bytes]], *, flags: int = 0, method: int = 0) -> bytes:
    """A valid archive of (name, plain bytes) entries, stored or deflated, with ``flags``."""
    body = b""
    directory = b""
    for name, plain in entries:
        payload = plain
        if method == zipfile.ZIP_DEFLATED:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = compressor.compress(plain) + compressor.flush()
        fields: dict[str, Any] = dict(
            method=method,
            crc=zlib.crc32(plain),
            csize=len(payload),
            usize=len(plain),
            flags=flags,
        )
        directory += central_header(name, offset=len(body), **fields)
        body += local_header(name, **fields) + payload
    return body + directory + end_record(len(entries), directory, len(body))


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in files.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def zero_bomb(total_bytes: int, prefix: bytes = PNG_SIGNATURE) -> tuple[bytes, int]:
    """A raw deflate stream of ``prefix`` + zeros, ``total_bytes`` long, and its CRC.

    Built from one compressed MiB of zeros repeated: after a full flush the compressor starts
    afresh, so every flushed MiB of zeros compresses to the same bytes.
    """
    assert total_bytes % MiB == 0
    zeros = bytes(MiB)
    first_plain = prefix + bytes(MiB - len(prefix))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(first_plain) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert repeat == again, "flushed blocks of zeros should compress identically"
    count = total_bytes // MiB - 1
    stream = first + repeat * count + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(first_plain)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    return stream, crc


def bomb_zip(total_bytes: int, name: bytes = b"bomb.png") -> bytes:
    stream, crc = zero_bomb(total_bytes)
    fields: dict[str, Any] = dict(method=8, crc=crc, csize=len(stream), usize=total_bytes)
    body = local_header(name, **fields) + stream
    directory = central_header(name, offset=0, **fields)
    return body + directory + end_record(1, directory, len(body))


# --- normal archives ----------------------------------------------------------------------


RED = png_bytes((220, 20, 30))
BLUE = png_bytes((10, 40, 200), size=(30, 20))


def mixed_archive() -> bytes:
    return zip_bytes(
        {
            "photos/": b"",
            "photos/red.png": RED,
            "photos/blue.data": BLUE,  # an image whatever the extension says
            "readme.jpg": b"this is text, not a JPEG",  # not an image whatever the extension
            "__MACOSX/photos/._red.png": b"\x00\x05\x16\x07 resource fork",
            "photos/.hidden.png": RED,
            "inner.zip": zip_bytes({"deep.png": RED}),
            "notes.tar.gz.bin": b"\x1f\x8b\x08\x00" + bytes(40),
            "empty.png": b"",
        }
    )


EXPECTED = [
    ("photos/red.png", hashlib.sha256(RED).hexdigest(), None),
    ("photos/blue.data", hashlib.sha256(BLUE).hexdigest(), None),
    ("readme.jpg", None, "not_image"),
    ("__MACOSX/photos/._red.png", None, "metadata"),
    ("photos/.hidden.png", None, "metadata"),
    ("inner.zip", None, "nested_archive"),
    ("notes.tar.gz.bin", None, "nested_archive"),
    ("empty.png", None, "not_image"),
]


def summarize(entries: list[ArchiveEntry]) -> list[tuple[str, str | None, str | None]]:
    return [
        (
            e.name,
            hashlib.sha256(e.data).hexdigest() if e.data is not None else None,
            e.skipped_reason,
        )
        for e in entries
    ]


@pytest.mark.parametrize(
    "kind", ["path", "str_path", "bytes", "bytearray", "memoryview", "bytesio", "open_file"]
)
def test_entries_from_every_source_kind(kind: str, tmp_path: Path) -> None:
    data = mixed_archive()
    path = tmp_path / "mixed.zip"
    path.write_bytes(data)
    if kind == "open_file":
        with open(path, "rb") as handle:
            entries = list(iter_archive(handle))
            assert not handle.closed  # the caller's file is left open
    else:
        source: Any = {
            "path": path,
            "str_path": str(path),
            "bytes": data,
            "bytearray": bytearray(data),
            "memoryview": memoryview(data),
            "bytesio": io.BytesIO(data),
        }[kind]
        entries = list(iter_archive(source))
    assert summarize(entries) == EXPECTED
    assert entries[0].format == "png" and entries[5].format == "zip"


def test_nested_archive_is_not_recursed() -> None:
    entries = list(iter_archive(mixed_archive()))
    assert "deep.png" not in {e.name for e in entries}


def test_stored_entries_and_empty_archive() -> None:
    entries = list(iter_archive(zip_bytes({"a.png": RED}, method=zipfile.ZIP_STORED)))
    assert [(e.name, e.data) for e in entries] == [("a.png", RED)]
    assert list(iter_archive(zip_bytes({}))) == []


def test_bzip2_entries_are_skipped_not_inflated() -> None:
    data = zip_bytes({"a.png": RED, "b.png": BLUE}, method=zipfile.ZIP_BZIP2)
    entries = list(iter_archive(data))
    assert [e.skipped_reason for e in entries] == ["unsupported_compression"] * 2


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ("image", "jpeg")),
        (PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR", ("image", "png")),
        (b"GIF89a\x01\x00", ("image", "gif")),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", ("image", "webp")),
        (b"II*\x00\x08\x00\x00\x00", ("image", "tiff")),
        (b"MM\x00*\x00\x00\x00\x08", ("image", "tiff")),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", ("image", "avif")),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", ("image", "heif")),
        (b"BM" + bytes(12) + b"\x28" + bytes(20), ("image", "bmp")),
        (b"BMW trip notes, definitely text", None),
        (b"PK\x03\x04\x14\x00", ("archive", "zip")),
        (b"\x1f\x8b\x08\x00", ("archive", "gzip")),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", ("archive", "7z")),
        (b"\xff\x0a\xfa\x7f", ("image", "jxl")),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", ("image", "jxl")),
        (b"PK\x05\x06" + bytes(18), ("archive", "zip")),
        (b"BZh91AY&SY", ("archive", "bzip2")),
        (b"\xfd7zXZ\x00\x00", ("archive", "xz")),
        (b"Rar!\x1a\x07\x01\x00", ("archive", "rar")),
        (b"\x28\xb5\x2f\xfd\x04", ("archive", "zstd")),
        (bytes(257) + b"ustar\x0000", ("archive", "tar")),
        (b"%PDF-1.7", None),
        (b"", None),
        (b"GIF87a\x01\x00", ("image", "gif")),
        (b"II+\x00\x08\x00\x00\x00", ("image", "tiff")),  # BigTIFF, both byte orders
        (b"MM\x00+\x00\x08\x00\x00", ("image", "tiff")),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF but a sound
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", None),  # ISO-BMFF but an MP4 video
        (b"\x00\x00\x00\x1cftypavis\x00\x00\x00\x00", ("image", "avif")),  # an AVIF sequence
        # BM + each DIB header size (BITMAPCOREHEADER ... BITMAPV5HEADER), 26 bytes in all
        *[
            (b"BM" + bytes(12) + bytes([n]) + bytes(11), ("image", "bmp"))
            for n in (12, 40, 52, 56, 64, 108, 124)
        ],
        (b"BM" + bytes(12) + b"\x28" + bytes(10), None),  # too short for a DIB header
        (b"BM" + bytes(12) + b"\x29" + bytes(11), None),  # no DIB header is 41 bytes
        (b"PK\x07\x08\x00\x00", ("archive", "zip")),  # a split archive's first part
    ],
    # Hex ids: a backslash-escaped repr in a test id is not found again when the id is selected
    # by name (mutmut runs tests by id).
    ids=lambda v: f"{v[:16].hex() or 'empty'}-{len(v)}" if isinstance(v, bytes) else str(v),
)
def test_sniff(head: bytes, expected: tuple[str, str] | None) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    "head, expected",
    [
        (zip_bytes({"a.png": RED})[:4], True),  # a local header
        (zip_bytes({})[:4], True),  # an empty archive is only its end record
        (b"PK\x03\x04\x14\x00", True),
        (b"PK\x05\x06" + bytes(18), True),
        (b"pk\x03\x04\x14\x00", False),
        (b"pk\x05\x06" + bytes(18), False),
        (b"PK\x01\x02", False),  # a central directory record is not where a ZIP starts
        (b"PK", False),
        (PNG_SIGNATURE, False),
        (b"", False),
    ],
    ids=lambda v: (v[:12].hex() or "empty") if isinstance(v, bytes) else str(v),
)
def test_is_zip(head: bytes, expected: bool) -> None:
    assert is_zip(head) is expected


# --- limits ------------------------------------------------------------------------------


def test_too_many_entries() -> None:
    data = zip_bytes({f"{i}.png": RED for i in range(6)})
    assert len(list(iter_archive(data, ArchiveLimits(max_entries=6)))) == 6
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data, ArchiveLimits(max_entries=5)))
    assert info.value.code == "archive_too_many_entries"
    assert info.value.details["limit_entries"] == 5
    assert info.value.details["actual_entries"] == 6


def test_entry_too_large() -> None:
    data = zip_bytes({"small.png": RED, "big.png": BLUE})
    limit = len(RED) + 1
    assert len(BLUE) > limit
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data, ArchiveLimits(max_entry_bytes=limit)))
    assert info.value.code == "archive_entry_too_large"
    assert info.value.details["name"] == "big.png"
    assert info.value.details["limit_bytes"] == limit
    assert info.value.details["actual_bytes"] == len(BLUE)
    assert "big.png" in str(info.value)


def test_total_too_large() -> None:
    data = zip_bytes({f"{i}.png": RED for i in range(4)})
    limit = len(RED) * 3 + 10
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data, ArchiveLimits(max_total_bytes=limit)))
    assert info.value.code == "archive_too_large"
    assert info.value.details["limit_bytes"] == limit
    assert info.value.details["actual_bytes"] == len(RED) * 4
    assert str(info.value) == (
        f"archive entries declare {len(RED) * 4} bytes in all, over the limit of {limit}"
    )


def test_a_folder_entry_does_not_end_the_size_checks() -> None:
    data = zip_bytes({"photos/": b"", "photos/big.png": BLUE})
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data, ArchiveLimits(max_entry_bytes=len(BLUE) - 1)))
    assert info.value.code == "archive_entry_too_large"
    assert info.value.details["name"] == "photos/big.png"


@pytest.fixture(scope="module")
def gigabyte_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    path.write_bytes(bomb_zip(GiB))
    return path


def test_gigabyte_bomb_is_valid_and_tiny(gigabyte_bomb: Path) -> None:
    # The bomb is a real, valid archive: zipfile agrees on its size and the first bytes.
    assert gigabyte_bomb.stat().st_size < 2 * MiB
    with zipfile.ZipFile(gigabyte_bomb) as archive:
        (info,) = archive.infolist()
        assert info.file_size == GiB
        with archive.open(info) as stream:
            assert stream.read(16) == PNG_SIGNATURE + bytes(8)


def test_gigabyte_bomb_refused_before_inflating(gigabyte_bomb: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(gigabyte_bomb))
    assert time.perf_counter() - started < 1.0
    assert info.value.code == "archive_entry_too_large"
    assert info.value.details["actual_bytes"] == GiB
    assert info.value.details["limit_bytes"] == ArchiveLimits().max_entry_bytes


def test_gigabyte_bomb_ratio_caught_while_inflating(gigabyte_bomb: Path) -> None:
    # Size limits wide open: only the ratio, counted on bytes actually inflated, can stop it.
    limits = ArchiveLimits(max_entry_bytes=2 * GiB, max_total_bytes=2 * GiB)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError) as info:
            list(iter_archive(gigabyte_bomb, limits))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "archive_ratio_exceeded"
    details = info.value.details
    assert details["limit_ratio"] == 100
    assert details["actual_ratio"] > 100
    assert details["inflated_bytes"] < 32 * MiB  # stopped early, nowhere near 1 GiB
    assert peak < 48 * MiB


def test_ratio_floor_spares_small_compressible_files() -> None:
    # A 512 KiB very compressible "image" is under the floor; 4 MiB of it is not.
    small = PNG_SIGNATURE + bytes(512 * 1024)
    large = PNG_SIGNATURE + bytes(4 * MiB)
    (entry,) = list(iter_archive(zip_bytes({"small.png": small})))
    assert entry.data == small
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(zip_bytes({"large.png": large})))
    assert info.value.code == "archive_ratio_exceeded"
    assert info.value.details["name"] == "large.png"
    # And a higher limit lets it through.
    (entry,) = list(iter_archive(zip_bytes({"large.png": large}), ArchiveLimits(max_ratio=1e6)))
    assert entry.data == large


def test_the_ratio_error_reports_what_was_read_and_the_limit_itself_is_allowed() -> None:
    """The compressed bytes are the entry's own (not its local header, nor an earlier entry's),
    the ratio is theirs to one decimal, and a ratio exactly at the limit passes."""
    entry = PNG_SIGNATURE + bytes(4096 - len(PNG_SIGNATURE))
    data = zip_bytes({"first.txt": b"hello", "dense.png": entry})
    [info] = [i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if i.filename == "dense.png"]
    with pytest.raises(ArchiveError) as caught:
        list(iter_archive(data, ArchiveLimits(ratio_floor_bytes=4096, chunk_bytes=4096)))
    details = caught.value.details
    assert details["compressed_bytes"] == info.compress_size  # the small entry, read whole
    assert details["inflated_bytes"] == 4096
    assert details["actual_ratio"] == round(4096 / info.compress_size, 1) > 100
    at_limit = 4096 / info.compress_size
    assert at_limit * info.compress_size == 4096  # so the check compares equal numbers
    limits = ArchiveLimits(max_ratio=at_limit, ratio_floor_bytes=4096, chunk_bytes=4096)
    assert [e.data for e in iter_archive(data, limits)][1] == entry


def test_lying_size_header_is_caught() -> None:
    # The directory claims half the real size of a stored entry: zipfile stops there and the
    # CRC of what came out does not match, so the archive is reported corrupt.
    plain = RED
    fields: dict[str, Any] = dict(method=0, crc=zlib.crc32(plain), csize=len(plain))
    body = local_header(b"a.png", usize=len(plain) // 2, **fields) + plain
    directory = central_header(b"a.png", usize=len(plain) // 2, offset=0, **fields)
    data = body + directory + end_record(1, directory, len(body))
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_corrupt"
    assert info.value.details["name"] == "a.png"


def test_overlapping_entries_full_overlap() -> None:
    # Two directory records pointing at one local header: the classic overlap bomb.
    plain = RED
    fields: dict[str, Any] = dict(
        method=0, crc=zlib.crc32(plain), csize=len(plain), usize=len(plain)
    )
    body = local_header(b"a.png", **fields) + plain
    directory = central_header(b"a.png", offset=0, **fields) + central_header(
        b"b.png", offset=0, **fields
    )
    data = body + directory + end_record(2, directory, len(body))
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_overlapping_entries"
    assert {info.value.details["name"], info.value.details["other"]} == {"a.png", "b.png"}


@pytest.mark.parametrize(
    "extra",
    [b"", struct.pack("<HH", 0xCAFE, 4000) + bytes(4000)],
    ids=["no extra field", "long local extra field"],
)
def test_overlapping_entries_quoted_overlap(extra: bytes) -> None:
    # The first entry's data span swallows the second entry's local header (a "quoted" overlap,
    # as in Fifield's non-recursive zip bomb). Its data starts after the local extra field, so
    # the span is measured past it.
    second_plain = BLUE
    second_fields: dict[str, Any] = dict(
        method=0, crc=zlib.crc32(second_plain), csize=len(second_plain), usize=len(second_plain)
    )
    second = local_header(b"b.png", **second_fields) + second_plain
    first_plain = RED + second
    first_fields: dict[str, Any] = dict(
        method=0, crc=zlib.crc32(first_plain), csize=len(first_plain), usize=len(first_plain)
    )
    first_header = local_header(b"a.png", extra=extra, **first_fields)
    body = first_header + RED + second
    second_offset = len(first_header) + len(RED)
    directory = central_header(b"a.png", offset=0, **first_fields) + central_header(
        b"b.png", offset=second_offset, **second_fields
    )
    data = body + directory + end_record(2, directory, len(body))
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_overlapping_entries"
    assert info.value.details["name"] == "a.png"
    assert info.value.details["other"] == "b.png"
    assert info.value.details["other_start"] == second_offset
    assert info.value.details["entry_end"] == len(first_header) + len(first_plain)
    assert str(info.value) == (
        f"entry 'a.png' (bytes 0-{len(first_header) + len(first_plain)}) overlaps 'b.png' "
        f"(starting at byte {second_offset}); overlapping entries are a zip bomb technique"
    )


def test_entry_running_into_the_directory() -> None:
    plain = RED
    fields: dict[str, Any] = dict(method=0, crc=zlib.crc32(plain), usize=len(plain))
    body = local_header(b"a.png", csize=len(plain), **fields) + plain
    directory = central_header(b"a.png", csize=len(plain) + 40, offset=0, **fields)
    data = body + directory + end_record(1, directory, len(body))
    for entries in (None, range(0, 1)):  # the whole archive, or that entry alone
        with pytest.raises(ArchiveError) as info:
            list(iter_archive(data, entries=entries))
        assert info.value.code == "archive_overlapping_entries"
        assert info.value.details["other"] == "central directory"


def test_a_directory_record_pointing_at_no_local_header() -> None:
    plain = RED
    fields: dict[str, Any] = dict(
        method=0, crc=zlib.crc32(plain), csize=len(plain), usize=len(plain)
    )
    body = local_header(b"a.png", **fields) + plain
    directory = central_header(b"a.png", offset=1, **fields)
    data = body + directory + end_record(1, directory, len(body))
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_corrupt"
    assert info.value.details["name"] == "a.png"
    assert str(info.value) == "entry 'a.png': no local header at offset 1"


def test_well_formed_raw_zip_passes() -> None:
    # The hand-made writer itself makes archives that iter_archive and zipfile accept.
    data = raw_zip([(b"a.png", RED), (b"b.png", BLUE)], method=zipfile.ZIP_DEFLATED)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert [(e.name, e.data) for e in iter_archive(data)] == [("a.png", RED), ("b.png", BLUE)]


@pytest.mark.parametrize("flag", [0x1, 0x41], ids=["zipcrypto", "strong"])
def test_encrypted_entry(flag: int) -> None:
    data = raw_zip([(b"a.png", RED)], flags=flag)
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_encrypted_entry"
    assert info.value.details["name"] == "a.png"
    assert str(info.value) == "entry 'a.png' is encrypted; encrypted archives are not supported"


@pytest.mark.parametrize(
    "name",
    [
        b"../evil.png",
        b"photos/../../evil.png",
        b"/etc/evil.png",
        b"\\server\\evil.png",
        b"C:/evil.png",
        b"c:evil.png",
        b"..\\evil.png",
        b"nul\x00.png",
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "backslash-absolute",
        "drive",
        "drive-relative",
        "backslash-dotdot",
        "nul",
    ],
)
def test_unsafe_names(name: bytes) -> None:
    data = raw_zip([(b"fine.png", RED), (name, RED)])
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_unsafe_name"
    assert info.value.details["name"] == name.decode("cp437")
    reason = UNSAFE_REASONS[name]
    assert info.value.details["reason"] == reason
    assert str(info.value) == f"unsafe entry name {name.decode('cp437')!r}: it {reason}"


UNSAFE_REASONS = {
    b"../evil.png": "contains a '..' component",
    b"photos/../../evil.png": "contains a '..' component",
    b"/etc/evil.png": "is an absolute path",
    b"\\server\\evil.png": "is an absolute path",
    b"C:/evil.png": "starts with a drive letter",
    b"c:evil.png": "starts with a drive letter",
    b"..\\evil.png": "contains a '..' component",
    b"nul\x00.png": "contains a NUL byte",
}


def test_names_with_dots_that_are_safe() -> None:
    data = raw_zip([(b"a..b.png", RED), (b"dir.v2/x.png", BLUE)])
    assert [e.name for e in iter_archive(data)] == ["a..b.png", "dir.v2/x.png"]


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all" * 10, b"PK\x03\x04" + bytes(100)],
    ids=["empty", "text", "header-only"],
)
def test_not_a_zip_is_corrupt(data: bytes) -> None:
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_corrupt"


def test_truncated_zip_is_corrupt() -> None:
    data = mixed_archive()
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data[: len(data) // 2]))
    assert info.value.code == "archive_corrupt"


def test_damaged_entry_data_is_corrupt() -> None:
    data = bytearray(raw_zip([(b"a.png", RED)]))
    data[40] ^= 0xFF  # inside a.png's stored bytes
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(bytes(data)))
    assert info.value.code == "archive_corrupt"
    assert info.value.details["name"] == "a.png"


def test_damaged_deflate_stream_is_corrupt() -> None:
    data = bytearray(raw_zip([(b"a.png", bytes(range(256)) * 64)], method=8))
    for i in range(40, 60):
        data[i] = 0xFF
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(bytes(data)))
    assert info.value.code == "archive_corrupt"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(tmp_path / "nope.zip"))
    assert info.value.code == "archive_unreadable"
    assert isinstance(info.value, PaletteError)


class Unseekable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def test_bad_sources() -> None:
    with pytest.raises(BadParameterError, match="seekable"):
        list(iter_archive(Unseekable()))
    with pytest.raises(BadParameterError, match="path, bytes or a binary file"):
        list(iter_archive(12345))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_entries", 0),
        ("max_entry_bytes", -1),
        ("chunk_bytes", 0),
        ("max_ratio", 0.5),
        ("max_total_bytes", 1.5),
        ("ratio_floor_bytes", -1),
    ],
)
def test_limits_validation(field: str, value: Any) -> None:
    with pytest.raises(BadParameterError, match=field) as caught:
        ArchiveLimits(**{field: value})
    assert caught.value.details == {"parameter": field, "actual": repr(value)}


@pytest.mark.parametrize(
    "field, value",
    [("ratio_floor_bytes", 0), ("max_ratio", 1.0), ("max_ratio", 1.5), ("max_entries", 1)],
)
def test_limits_at_their_edges_are_accepted(field: str, value: Any) -> None:
    assert getattr(ArchiveLimits(**{field: value}), field) == value


def test_memory_stays_flat_over_a_large_archive(tmp_path: Path) -> None:
    # 48 incompressible 1 MiB "images" (48 MiB archive on disk); reading them one at a time
    # must never hold much more than one entry.
    path = tmp_path / "big.zip"
    digests = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(48):
            data = PNG_SIGNATURE + os.urandom(MiB - len(PNG_SIGNATURE))
            digests.append(hashlib.sha256(data).hexdigest())
            archive.writestr(f"img{i:02d}.png", data)
    tracemalloc.start()
    try:
        seen = [hashlib.sha256(e.data or b"").hexdigest() for e in iter_archive(path)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == digests
    assert peak < 4 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


def test_limits_stop_partway_after_earlier_entries() -> None:
    # Directory checks pass (sizes are declared honestly), the ratio trips on the second entry:
    # the first one has already been yielded.
    data = zip_bytes({"ok.png": RED, "flat.png": PNG_SIGNATURE + bytes(4 * MiB)})
    iterator = iter_archive(data)
    first = next(iterator)
    assert first.name == "ok.png" and first.data == RED
    with pytest.raises(ArchiveError, match="flat.png"):
        next(iterator)


# --- extract_archive (needs the native core) ---------------------------------------------


def test_extract_archive_results() -> None:
    from palette_native.archive import extract_archive

    broken = RED[:40]
    data = zip_bytes({"red.png": RED, "notes.txt": b"hello", "broken.png": broken, "b.png": BLUE})
    results = list(extract_archive(data, colors=4))
    assert [r.name for r in results] == ["red.png", "notes.txt", "broken.png", "b.png"]
    red, notes, bad, blue = results
    assert red.ok and red.palette is not None
    assert [c.hex for c in red.palette.colors] == ["#dc141e"]
    assert blue.palette is not None and [c.hex for c in blue.palette.colors] == ["#0a28c8"]
    assert not notes.ok and notes.skipped_reason == "not_image" and notes.error is None
    assert not bad.ok and isinstance(bad.error, PaletteError) and bad.palette is None
    assert bad.error.code != "archive_corrupt"  # the image is bad, not the archive


def test_extract_archive_defaults_to_the_palette_extract_gives() -> None:
    from palette_native import extract
    from palette_native.archive import extract_archive

    # Sixteen flat stripes: more colors than the default palette size, so the size shows.
    stripes = Image.new("RGB", (64, 16))
    for n in range(16):
        stripes.paste((n * 16, 255 - n * 16, (n * 40) % 256), (n * 4, 0, n * 4 + 4, 16))
    buffer = io.BytesIO()
    stripes.save(buffer, format="PNG")
    image = buffer.getvalue()
    (result,) = list(extract_archive(zip_bytes({"stripes.png": image})))
    alone = extract(image)
    assert result.palette is not None and len(alone.colors) == 8
    assert [c.hex for c in result.palette.colors] == [c.hex for c in alone.colors]
    assert result.palette.options == alone.options


def test_extract_archive_passes_options_and_raises_caller_errors() -> None:
    from palette_native.archive import extract_archive
    from palette_native.errors import CanceledError

    data = zip_bytes({"red.png": RED, "b.png": BLUE})
    (first, _) = list(extract_archive(data, colors=3, exact=True))
    assert first.palette is not None and first.palette.options["exact"] is True
    with pytest.raises(BadParameterError):
        list(extract_archive(data, colors=0))
    with pytest.raises(CanceledError):
        list(extract_archive(data, should_cancel=lambda: True))
    with pytest.raises(ArchiveError) as info:
        list(extract_archive(data, limits=ArchiveLimits(max_entries=1)))
    assert info.value.code == "archive_too_many_entries"


def test_declared_entry_count(tmp_path: Path) -> None:
    from palette_native.archive import declared_entry_count

    data = mixed_archive()
    assert declared_entry_count(data) == 9  # the folder entry counts too
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    assert declared_entry_count(path) == 9
    assert declared_entry_count(b"not a zip") is None
    assert declared_entry_count(tmp_path / "missing.zip") is None


# ---- the central directory, checked before anything parses it ------------------------------
def _tiny_zip(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.writestr(name, b"x")
    return out.getvalue()


def _forge_records(archive: bytes, copies: int, declared: int) -> bytes:
    """The archive's one central directory record repeated ``copies`` times, under an end
    record that declares ``declared`` entries: the shape of a directory amplification attack."""
    end = archive.rindex(b"PK\x05\x06")
    directory_size, directory_offset = struct.unpack("<II", archive[end + 12 : end + 20])
    record = archive[directory_offset : directory_offset + directory_size]
    directory = record * copies
    tail = bytearray(archive[end:])
    struct.pack_into("<HHII", tail, 8, declared, declared, len(directory), directory_offset)
    return archive[:directory_offset] + directory + bytes(tail)


def test_a_forged_entry_count_is_not_trusted() -> None:
    forged = _forge_records(_tiny_zip(["a.txt"]), copies=300_000, declared=10)
    assert len(forged) > 10_000_000
    tracemalloc.start()
    with pytest.raises(ArchiveError) as caught:
        scan_directory(forged)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert caught.value.code == "archive_too_many_entries"
    assert caught.value.details["actual_entries"] == 300_000
    assert peak < 8 * 1024 * 1024  # the records are counted, never held as objects
    with pytest.raises(ArchiveError, match="300000 entries"):
        next(iter_archive(forged))


def test_a_directory_far_bigger_than_the_entry_limit_needs_is_refused() -> None:
    forged = _forge_records(_tiny_zip(["a.txt"]), copies=30_000, declared=1)
    with pytest.raises(ArchiveError) as caught:
        scan_directory(forged, ArchiveLimits(max_entries=100))
    assert caught.value.code == "archive_too_large"


def test_counts_come_from_the_directory_itself() -> None:
    archive = _tiny_zip(["a.png", "dir/", "dir/b.png", "c.txt"])
    summary = scan_directory(archive)
    assert (summary.entries, summary.files) == (4, 3)
    with pytest.raises(ArchiveError) as caught:
        scan_directory(archive, ArchiveLimits(max_entries=3))
    assert caught.value.details["actual_entries"] == 4


def test_zip64_archives_are_read(tmp_path: Path) -> None:
    """Over 65,535 entries the classic count field holds 0xFFFF and the real count lives in the
    ZIP64 end record."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n in range(70_000):
            zf.writestr(f"{n}.txt", b"")
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")
    assert struct.unpack("<H", data[end + 10 : end + 12]) == (0xFFFF,)
    assert declared_entry_count(path) == 70_000
    summary = scan_directory(path, ArchiveLimits(max_entries=100_000))
    assert (summary.entries, summary.files) == (70_000, 70_000)
    with pytest.raises(ArchiveError, match="70000 entries"):
        scan_directory(path)


def test_a_truncated_archive_ending_in_a_stored_archive_is_corrupt() -> None:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 40)).save(image, "PNG")
    inner = _tiny_zip(["inner.txt"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("photo.png", image.getvalue())
        zf.writestr("inner.zip", inner)
    whole = out.getvalue()
    truncated = whole[: whole.index(inner) + len(inner)]  # cut right after the inner archive
    assert truncated.endswith(inner[-22:])  # its tail is now the inner archive's end record
    for check in (scan_directory, lambda data: next(iter_archive(data))):
        with pytest.raises(ArchiveError) as caught:
            check(truncated)
        assert caught.value.code == "archive_corrupt"
    assert [e.name for e in iter_archive(whole)] == ["photo.png", "inner.zip"]


def test_iter_archive_reads_only_the_entries_asked_for() -> None:
    """A chunk of a job reads its own entries: the right ones, and not the others' bytes."""
    payload = [bytes([n]) * 200_000 for n in range(10)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("folder/", b"")
        for n, data in enumerate(payload):
            zf.writestr(f"folder/{n}.bin", data)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

    source = Counting(buffer.getvalue())
    names = [entry.name for entry in iter_archive(source, entries=range(3, 6))]
    assert names == ["folder/3.bin", "folder/4.bin", "folder/5.bin"]  # folders not counted
    assert Counting.read_bytes < 4 * 200_000  # three entries and the directory, not ten
    everything = [entry.name for entry in iter_archive(io.BytesIO(buffer.getvalue()))]
    assert len(everything) == 10


def _directory_bounds(archive: bytes) -> tuple[int, int, int]:
    """(end record position, directory offset, directory size)."""
    end = archive.rindex(b"PK\x05\x06")
    size, offset = struct.unpack("<II", archive[end + 12 : end + 20])
    return end, offset, size


def test_a_damaged_directory_record_is_corrupt() -> None:
    archive = bytearray(_tiny_zip(["a.txt", "b.txt"]))
    _, offset, _ = _directory_bounds(bytes(archive))
    archive[offset : offset + 4] = b"XX\x01\x02"
    with pytest.raises(ArchiveError, match="record 1 is damaged") as caught:
        scan_directory(bytes(archive))
    assert caught.value.code == "archive_corrupt"


def test_a_record_running_past_the_directory_is_corrupt() -> None:
    archive = bytearray(_tiny_zip(["a.txt", "b.txt"]))
    _, offset, _ = _directory_bounds(bytes(archive))
    second = archive.index(b"PK\x01\x02", offset + 4)
    struct.pack_into("<H", archive, second + 28, 0xFFF0)  # a name longer than the directory
    with pytest.raises(ArchiveError, match="^central directory record 2 runs past the directory"):
        scan_directory(bytes(archive))


@pytest.mark.parametrize("cut", [1, 2, 5, 12, 21])
def test_an_end_record_cut_short_is_no_end_record(cut: int) -> None:
    """The last bytes of the file hold the end record's signature but not the whole record."""
    archive = _tiny_zip(["a.txt"])[:-cut]
    with pytest.raises(ArchiveError, match="no end-of-central-directory record") as caught:
        scan_directory(archive)
    assert caught.value.code == "archive_corrupt"
    assert declared_entry_count(archive) is None


def test_the_longest_archive_comment_is_read_past() -> None:
    """The end record is looked for in the last 22 + 65,535 bytes: with a comment of the
    largest size it sits at the very first of them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"x")
        zf.writestr("dir/b.txt", b"y")
        zf.comment = b"c" * 0xFFFF
    archive = out.getvalue()
    assert archive.rindex(b"PK\x05\x06") == len(archive) - 22 - 0xFFFF
    summary = scan_directory(archive)
    assert (summary.entries, summary.files) == (2, 2)
    assert declared_entry_count(archive) == 2
    assert [e.name for e in iter_archive(archive)] == ["a.txt", "dir/b.txt"]


def test_an_entry_count_over_32767_is_read_unsigned() -> None:
    archive = bytearray(_tiny_zip(["a.txt"]))
    end, _, _ = _directory_bounds(bytes(archive))
    struct.pack_into("<HH", archive, end + 8, 40_000, 40_000)  # forged: declared, not checked
    assert declared_entry_count(bytes(archive)) == 40_000


def test_a_comment_that_looks_like_a_zip64_locator_is_only_a_comment() -> None:
    """A locator is trusted only when the record it points at is a ZIP64 end record: here the
    last directory record's comment happens to end with locator bytes pointing at byte 0."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("a.txt")
        info.comment = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)
        zf.writestr(info, b"x" * 100)
    archive = out.getvalue()
    end = archive.rindex(b"PK\x05\x06")
    assert archive[end - 20 : end - 16] == b"PK\x06\x07"
    summary = scan_directory(archive)
    assert (summary.entries, summary.files) == (1, 1)
    assert declared_entry_count(archive) == 1
    assert [e.name for e in iter_archive(archive)] == ["a.txt"]


def test_a_zip64_locator_pointing_at_nothing_is_not_trusted() -> None:
    archive = _tiny_zip(["a.txt"])
    end, _, _ = _directory_bounds(archive)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)  # "the ZIP64 record is at byte 0"
    forged = archive[:end] + locator + archive[end:]
    with pytest.raises(ArchiveError) as caught:
        scan_directory(forged)  # classic fields kept: the directory no longer ends at the record
    assert caught.value.code == "archive_corrupt"


@pytest.mark.parametrize("damage", ["wrong signature", "cut short"])
def test_an_entry_without_its_local_header_is_corrupt(damage: str) -> None:
    archive = bytearray(_tiny_zip(["a.txt", "b.txt"]))
    end, offset, _ = _directory_bounds(bytes(archive))
    second = archive.index(b"PK\x01\x02", offset + 4)
    if damage == "wrong signature":
        archive[archive.index(b"PK\x03\x04", 4) : archive.index(b"PK\x03\x04", 4) + 4] = b"JUNK"
    else:  # point the second entry's header at the last ten bytes of the file
        struct.pack_into("<I", archive, second + 42, len(archive) - 10)
    with pytest.raises(ArchiveError) as caught:
        list(iter_archive(bytes(archive)))
    assert caught.value.code == "archive_corrupt", caught.value


# ---- chunks: the directory is walked once, each part checked against that walk ------------
def test_a_part_read_with_the_scanned_summary_does_not_walk_the_directory_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from palette_native import archive as module

    data = _tiny_zip(["dir/", "a.txt", "b.txt", "dir/c.txt"])
    summary = scan_directory(data)
    walks: list[int] = []
    real_walk = module._scan_directory

    def counting_walk(fp: Any, limits: ArchiveLimits) -> Any:
        walks.append(1)
        return real_walk(fp, limits)

    monkeypatch.setattr(module, "_scan_directory", counting_walk)
    parts = [
        [e.name for e in iter_archive(data, entries=range(n, n + 1), directory=summary)]
        for n in range(3)
    ]
    assert parts == [["a.txt"], ["b.txt"], ["dir/c.txt"]]
    assert walks == []  # the summary stood in for the walk in every part
    assert [e.name for e in iter_archive(data, entries=range(0, 2))] == ["a.txt", "b.txt"]
    assert walks == [1]  # without one, each read walks it


def test_one_reader_loads_the_directory_once_and_reads_any_parts_in_any_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = mixed_archive()
    whole = summarize(list(iter_archive(data)))
    loads: list[int] = []
    real = zipfile.ZipFile._RealGetContents

    def counting(self: zipfile.ZipFile) -> None:
        loads.append(1)
        real(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    path = tmp_path / "mixed.zip"
    path.write_bytes(data)
    summary = scan_directory(data)
    files_open = len(os.listdir("/proc/self/fd"))
    with ArchiveReader(path, directory=summary) as reader:
        later, first = list(reader.entries(range(3, 99))), list(reader.entries(range(0, 3)))
        again = list(reader.entries())
        assert len(os.listdir("/proc/self/fd")) == files_open + 1  # it opened the path itself
    assert len(os.listdir("/proc/self/fd")) == files_open  # and closed it on leaving the block
    assert loads == [1]
    assert summarize(first + later) == whole == summarize(again)


class PrefetchingFile(io.BytesIO):
    """A file that, like a blob read over the network, takes a ``prefetch`` hint; it records
    each hint and the byte range of every read after it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.hints: list[tuple[int, int]] = []
        self.reads: list[tuple[int, int]] = []

    def prefetch(self, start: int, stop: int) -> None:
        self.hints.append((start, stop))
        self.reads.clear()

    def read(self, size: int | None = -1) -> bytes:
        at = self.tell()
        data = super().read(size)
        self.reads.append((at, at + len(data)))
        return data


def test_a_part_tells_a_prefetching_file_its_span_and_reads_only_inside_it() -> None:
    data = mixed_archive()
    offsets = sorted(i.header_offset for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    directory_start = _directory_bounds(data)[1]
    whole = summarize(list(iter_archive(data)))
    f = PrefetchingFile(data)
    with ArchiveReader(f) as reader:
        assert f.hints == []  # opening reads the directory, not a part
        got = []
        # File entries 1-2 are records 2-3 (the folder "photos/" is record 0); the last part
        # runs to the central directory.
        for part, span in ((range(1, 3), (offsets[2], offsets[4])),
                           (range(6, 8), (offsets[7], directory_start)),
                           (range(0, 1), (offsets[1], offsets[2]))):
            f.hints.clear()
            got += list(reader.entries(part))
            assert f.hints == [span], part
            assert f.reads and all(span[0] <= a and b <= span[1] for a, b in f.reads), f.reads
        f.hints.clear()
        assert summarize(list(reader.entries())) == whole
        assert f.hints == []  # a whole read goes front to back without a hint
        assert f.reads  # (and it read)
    assert summarize(got) == [whole[n] for n in (1, 2, 6, 7, 0)]
    with ArchiveReader(f) as reader:  # past the end: nothing to read, and no hint
        assert list(reader.entries(range(50, 60))) == [] and f.hints == []


def test_a_reader_refuses_a_bad_directory_when_opened_and_a_bad_part_when_read() -> None:
    with pytest.raises(ArchiveError) as caught:
        ArchiveReader(_tiny_zip(["a.txt", "../b.txt"]))
    assert caught.value.code == "archive_unsafe_name"  # every record, before any part
    good = _tiny_zip(["a.txt", "b.txt", "c.txt"])
    broken = bytearray(good)
    offset = zipfile.ZipFile(io.BytesIO(good)).getinfo("b.txt").header_offset
    broken[offset : offset + 4] = b"XXXX"
    with ArchiveReader(bytes(broken)) as reader:
        with pytest.raises(ArchiveError) as caught:
            list(reader.entries(range(1, 2)))
        assert caught.value.details == {"name": "b.txt"}
        # The other parts still read: the damage is b.txt's own.
        assert [e.name for e in reader.entries(range(2, 3))] == ["c.txt"]
        assert [e.name for e in reader.entries(range(0, 1))] == ["a.txt"]


def test_a_summary_of_another_directory_is_refused_before_it_is_loaded() -> None:
    small = _tiny_zip(["a.txt"])
    forged = _forge_records(small, copies=300_000, declared=1)
    with pytest.raises(ArchiveError) as caught:
        next(iter_archive(forged, entries=range(0, 1), directory=scan_directory(small)))
    assert caught.value.code == "archive_corrupt"
    assert "scanned before" in str(caught.value)
    scanned = scan_directory(small).directory_bytes
    assert caught.value.details == {
        "directory_size": 300_000 * scanned,
        "scanned_directory_size": scanned,
    }


def test_a_chunk_checks_only_its_own_entries_and_ignores_numbers_past_the_end() -> None:
    good = _tiny_zip(["a.txt", "b.txt", "c.txt"])
    broken = bytearray(good)
    offset = zipfile.ZipFile(io.BytesIO(good)).getinfo("c.txt").header_offset
    broken[offset : offset + 4] = b"XXXX"  # c.txt's local header is gone
    # A chunk of the first two never reads c.txt's header; the whole archive does.
    assert [e.name for e in iter_archive(bytes(broken), entries=range(0, 2))] == ["a.txt", "b.txt"]
    with pytest.raises(ArchiveError) as caught:
        list(iter_archive(bytes(broken)))
    assert caught.value.code == "archive_corrupt" and caught.value.details == {"name": "c.txt"}
    with pytest.raises(ArchiveError):
        list(iter_archive(bytes(broken), entries=range(2, 3)))
    assert [e.name for e in iter_archive(good, entries=range(2, 9))] == ["c.txt"]
    assert list(iter_archive(good, entries=range(3, 5))) == []


def test_a_folder_entry_whose_data_overlaps_the_next_is_refused_in_a_whole_read() -> None:
    """Folders are never read, but their declared extent is part of the layout check."""
    good = _tiny_zip(["d/", "a.txt"])
    record = good.index(b"PK\x01\x02")  # the folder's central directory record comes first
    assert good[record + 46 : record + 48] == b"d/"
    forged = bytearray(good)
    forged[record + 20 : record + 24] = struct.pack("<I", 100)  # compressed size: 100 bytes
    with pytest.raises(ArchiveError) as caught:
        list(iter_archive(bytes(forged)))
    assert caught.value.code == "archive_overlapping_entries"
    assert caught.value.details["name"] == "d/" and caught.value.details["other"] == "a.txt"


def test_a_directory_over_its_size_limit_is_refused_with_its_figures() -> None:
    """The limit is 4 KiB of directory per allowed entry, plus one: exactly at it passes."""
    small = _tiny_zip(["a" * 14 + ".txt"])
    record = scan_directory(small).directory_bytes
    assert record == 64  # 46 bytes and the 18-byte name: 128 of them make 8,192 bytes
    limits = ArchiveLimits(max_entries=1)  # (1 + 1) * 4 KiB = 8,192 bytes of directory
    at_limit = _forge_records(small, copies=8192 // record, declared=1)
    over = _forge_records(small, copies=8192 // record + 1, declared=1)
    with pytest.raises(ArchiveError) as caught:
        scan_directory(over, limits=limits)
    assert caught.value.code == "archive_too_large"
    assert caught.value.details == {
        "limit_directory_bytes": 8192,
        "actual_directory_bytes": (8192 // record + 1) * record,
    }
    with pytest.raises(ArchiveError) as fine:  # passes the size check, then counts entries
        scan_directory(at_limit, limits=limits)
    assert "limit_directory_bytes" not in fine.value.details


def test_an_archive_with_data_before_it_is_refused_with_the_directory_figures() -> None:
    data = _tiny_zip(["a.txt"])
    with pytest.raises(ArchiveError) as caught:
        scan_directory(b"junk" + data)
    end = len(data) + 4 - 22  # where the end record starts
    size = scan_directory(data).directory_bytes
    assert caught.value.code == "archive_corrupt"
    assert caught.value.details == {
        "directory_offset": end - 4 - size,
        "directory_size": size,
        "directory_end": end,
    }
    assert str(caught.value).endswith("the archive is truncated or has data before it")
    with pytest.raises(ArchiveError) as none:
        scan_directory(b"no archive here")
    assert str(none.value) == "not a ZIP archive: no end-of-central-directory record"


def test_a_summary_whose_counts_do_not_match_is_refused() -> None:
    data = _tiny_zip(["a.txt", "b.txt"])
    other = _tiny_zip(["c.txt", "dddd/"])  # the same directory size, a folder in place of a file
    assert scan_directory(other).directory_bytes == scan_directory(data).directory_bytes
    with pytest.raises(ArchiveError, match="scanned before") as caught:
        next(iter_archive(data, entries=range(0, 1), directory=scan_directory(other)))
    assert caught.value.code == "archive_corrupt"
    assert caught.value.details == {"entries": 2, "scanned_entries": 2}
    assert "holds 2 entries (2 files), not the 2 (1) scanned before" in str(caught.value)


@pytest.mark.parametrize("max_entries", [2, 3], ids=["one-over", "at-the-limit"])
def test_a_summary_is_held_to_the_limits_of_the_read(max_entries: int) -> None:
    data = _tiny_zip(["a.txt", "b.txt", "c.txt"])
    summary = scan_directory(data)  # under the default limits
    limits = ArchiveLimits(max_entries=max_entries)
    if max_entries >= summary.entries:  # as many entries as the limit allows is fine
        assert [e.name for e in iter_archive(data, limits, directory=summary)] == [
            "a.txt", "b.txt", "c.txt"
        ]
        return
    with pytest.raises(ArchiveError) as caught:
        next(iter_archive(data, limits, directory=summary))
    assert caught.value.code == "archive_too_many_entries"
    assert caught.value.details == {"limit_entries": 2, "actual_entries": 3}


def test_a_part_is_still_held_to_the_end_record_checks() -> None:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 40)).save(image, "PNG")
    inner = _tiny_zip(["inner.txt"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("photo.png", image.getvalue())
        zf.writestr("inner.zip", inner)
    whole = out.getvalue()
    truncated = whole[: whole.index(inner) + len(inner)]
    with pytest.raises(ArchiveError) as caught:
        next(iter_archive(truncated, entries=range(0, 1), directory=scan_directory(inner)))
    assert caught.value.code == "archive_corrupt"


def test_images_in_the_macos_metadata_folder_are_skipped() -> None:
    entries = list(iter_archive(zip_bytes({"__MACOSX/red.png": RED, "red.png": RED})))
    assert summarize(entries) == [
        ("__MACOSX/red.png", None, "metadata"),  # an image, but macOS's metadata folder
        ("red.png", hashlib.sha256(RED).hexdigest(), None),
    ]


def test_a_directory_record_pointing_past_the_last_local_header() -> None:
    plain = RED
    fields: dict[str, Any] = dict(
        method=0, crc=zlib.crc32(plain), csize=len(plain), usize=len(plain)
    )
    body = local_header(b"a.png", **fields) + plain
    size = len(body) + len(central_header(b"a.png", offset=0, **fields)) + 22
    directory = central_header(b"a.png", offset=size - 10, **fields)  # 10 bytes before the end
    data = body + directory + end_record(1, directory, len(body))
    assert len(data) == size
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data))
    assert info.value.code == "archive_corrupt"
    assert info.value.details == {"name": "a.png"}
    assert str(info.value) == "entry 'a.png': truncated local header"


def test_the_ratio_is_checked_from_the_floor_itself() -> None:
    entry = PNG_SIGNATURE + bytes(4096 - len(PNG_SIGNATURE))  # 4,096 very compressible bytes
    data = zip_bytes({"dense.png": entry})
    at_floor = ArchiveLimits(ratio_floor_bytes=4096, chunk_bytes=4096)
    with pytest.raises(ArchiveError) as info:
        list(iter_archive(data, at_floor))
    assert info.value.code == "archive_ratio_exceeded"
    assert info.value.details["inflated_bytes"] == 4096
    just_under = ArchiveLimits(ratio_floor_bytes=4097, chunk_bytes=4096)
    assert [e.data for e in iter_archive(data, just_under)] == [entry]
