"""Request bodies: size-limited reads and a streaming multipart reader.

Multipart file parts go straight into a sink (a blob writer for jobs, memory for the sync
endpoint) as the bytes arrive, so a job upload is never held whole in memory. The parser and the
sinks run on a worker thread, chunk by chunk, so disk writes never stall the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import blake3
import orjson
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from .offload import Offload
from .problems import Problem

__all__ = [
    "Body",
    "FilePart",
    "MultipartResult",
    "PartSink",
    "admit",
    "content_hasher",
    "read_body",
    "read_json_object",
    "read_multipart",
    "request_too_large",
]

_MAX_FIELD_BYTES = 8192
_MAX_FIELDS = 64
_SNIFF_BYTES = 512

Sniffer = Callable[[bytes], "tuple[str, str] | None"]


def request_too_large(limit: int, actual: int | None, what: str = "request body") -> Problem:
    detail = f"The {what} is larger than the limit of {limit:,} bytes."
    if actual is None:
        return Problem(413, "request_too_large", detail, limit_bytes=limit)
    return Problem(413, "request_too_large", detail, limit_bytes=limit, actual_bytes=actual)


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "bad_content_length", "Content-Length is not a number.") from None
    return value if value >= 0 else None


def content_hasher() -> blake3.blake3:
    """The hash that names uploaded content (palette addresses, upload fingerprints): BLAKE3,
    about four times cheaper than SHA-256 here, which matters on the event loop."""
    return blake3.blake3()


Kind = tuple[str, str]
"""What the first bytes say a body is: ("image", "jpeg"), ("archive", "zip") ..."""


@dataclass(frozen=True)
class Body:
    data: bytes
    digest: str
    """BLAKE3 of ``data``, hex."""
    kind: Kind | None
    """Decided once, from the first bytes, when the body was read; None: not recognised."""


async def read_body(
    request: Request, limit: int, sniff: Sniffer, reserve: Callable[[int], None] = lambda n: None
) -> Body:
    """The whole body (for the sync endpoint), its digest and its kind, refusing more than
    ``limit`` bytes early; ``reserve`` is told of each chunk before it is kept (it raises to
    refuse). Chunks are hashed as they arrive, while still in cache, and joined
    once."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise request_too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    digest = content_hasher()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise request_too_large(limit, None)
        reserve(len(chunk))
        digest.update(chunk)
        chunks.append(chunk)
    data = b"".join(chunks)
    return Body(data, digest.hexdigest(), sniff(data[:_SNIFF_BYTES]) if data else None)


async def read_json_object(request: Request, *, limit: int, required: bool) -> dict[str, Any]:
    """A JSON object body of at most ``limit`` bytes; an empty body is ``{}`` unless
    ``required``. The body is read only up to the limit, and parsed by orjson, which refuses
    nesting deeper than 1,024 levels with an error instead of exhausting the stack."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _json_too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _json_too_large(limit, None)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise Problem(400, "invalid_json", "A JSON object body is required.")
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", f"The body is not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise Problem(400, "invalid_json", "The body must be a JSON object.")
    return value


def _json_too_large(limit: int, actual: int | None) -> Problem:
    problem = Problem(413, "body_too_large", "The JSON body is too large.", limit_bytes=limit)
    if actual is not None:
        problem.extra["actual_bytes"] = actual
    return problem


def admit(kind: Kind | None, label: str, accept_archives: bool) -> Kind:
    """The one allow-list of what the service decodes, for every path: the formats the
    library recognises from the first bytes, plus ZIP archives where jobs take them. Anything
    else (SVG, PDF, text ...) is refused before a decoder sees it."""
    if kind is not None and (kind[0] == "image" or (kind == ("archive", "zip") and accept_archives)):
        return kind
    what = "an image or a ZIP archive" if accept_archives else "an image"
    found = f" (found {kind[1]})" if kind else ""
    # Only where archives are refused: a job upload is already at POST /v1/jobs.
    refused_archive = kind is not None and kind[0] == "archive" and not accept_archives
    hint = "; send archives to POST /v1/jobs" if refused_archive else ""
    raise Problem(
        415,
        "unsupported_format",
        f"{label!r} is not {what}{found}; types are detected from the bytes{hint}.",
        part=label,
    )


class PartSink(Protocol):
    def write(self, chunk: bytes) -> None: ...
    def close(self) -> str:
        """Finish the part; return an opaque handle (a blob key, or '' for memory)."""
        ...

    def abort(self) -> None: ...


@dataclass
class FilePart:
    field_name: str
    filename: str
    kind: str  # "image" or "archive"
    format: str
    size: int
    digest: str
    handle: str


@dataclass
class MultipartResult:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""


SinkFactory = Callable[[int, str], PartSink]


class _Collector:
    """python-multipart callbacks -> parts, sinks, limits and a content fingerprint."""

    def __init__(
        self,
        new_sink: SinkFactory,
        sniff: Sniffer,
        max_files: int,
        accept_archives: bool,
    ) -> None:
        self.new_sink = new_sink
        self.sniff = sniff
        self.max_files = max_files
        self.accept_archives = accept_archives
        self.result = MultipartResult()
        self.fingerprint = content_hasher()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._name = ""
        self._filename: str | None = None
        self._sink: PartSink | None = None
        self._hash = content_hasher()
        self._size = 0
        self._head = bytearray()
        self._kind: tuple[str, str] | None = None
        self._value = bytearray()
        self.open_sinks: list[PartSink] = []
        self.ended = False

    def on_end(self) -> None:
        self.ended = True

    # header callbacks
    def on_part_begin(self) -> None:
        self._headers = {}
        self._name, self._filename = "", None
        self._hash = content_hasher()
        self._size = 0
        self._head = bytearray()
        self._kind = None
        self._value = bytearray()
        self._sink = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        # Header bytes are kept one-to-one as latin-1; names are decoded as UTF-8 below.
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value.decode(
            "latin-1"
        )
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", "")
        try:
            _, params = parse_options_header(disposition)
        except (ValueError, UnicodeError):
            raise Problem(
                400, "malformed_multipart", "A part has an unreadable Content-Disposition header."
            ) from None
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._name = name
        self._filename = None if filename is None else filename.decode("utf-8", "replace")
        if self.is_file:
            if len(self.result.files) >= self.max_files:
                if self.max_files == 1:
                    raise Problem(400, "too_many_files", "Send exactly one 'file' part.")
                raise Problem(
                    422,
                    "too_many_images",
                    f"A job takes at most {self.max_files:,} images.",
                    limit_images=self.max_files,
                    actual_images_at_least=self.max_files + 1,
                )
        elif len(self.result.fields) >= _MAX_FIELDS:
            raise Problem(400, "too_many_fields", f"At most {_MAX_FIELDS} form fields.")

    @property
    def is_file(self) -> bool:
        return self._filename is not None or self._name == "file"

    # body callbacks
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self.is_file:
            self._value += chunk
            if len(self._value) > _MAX_FIELD_BYTES:
                raise Problem(
                    400,
                    "field_too_large",
                    f"Form field {self._name!r} is over {_MAX_FIELD_BYTES} bytes.",
                    limit_bytes=_MAX_FIELD_BYTES,
                )
            return
        self._hash.update(chunk)
        self._size += len(chunk)
        if self._sink is None:
            self._head += chunk
            if len(self._head) >= _SNIFF_BYTES:
                self._start_sink()
        else:
            self._sink.write(chunk)

    def _start_sink(self) -> None:
        head = bytes(self._head)
        kind = admit(self.sniff(head), self._filename or self._name, self.accept_archives)
        self._kind = kind
        self._sink = self.new_sink(len(self.result.files), kind[0])
        self.open_sinks.append(self._sink)
        self._sink.write(head)
        self._head = bytearray()

    def on_part_end(self) -> None:
        if not self.is_file:
            value = self._value.decode("utf-8", "replace")
            self.result.fields[self._name] = value
            self.fingerprint.update(
                b"V%d:%s=%d:%s;"
                % (len(self._name), self._name.encode(), len(value), value.encode())
            )
            return
        if self._sink is None:
            if self._size == 0:
                raise Problem(
                    400,
                    "empty_file",
                    f"File part {self._filename or self._name!r} is empty.",
                    part=self._filename or self._name,
                )
            self._start_sink()
        assert self._sink is not None and self._kind is not None
        handle = self._sink.close()
        self.open_sinks.remove(self._sink)
        digest = self._hash.hexdigest()
        filename = self._filename or f"file-{len(self.result.files)}"
        self.result.files.append(
            FilePart(self._name, filename, self._kind[0], self._kind[1], self._size, digest, handle)
        )
        self.fingerprint.update(b"F%d:%s=%s;" % (len(filename), filename.encode(), digest.encode()))
        self._sink = None

    def abort(self) -> None:
        for sink in self.open_sinks:
            sink.abort()
        self.open_sinks.clear()


async def read_multipart(
    request: Request,
    *,
    limit: int,
    new_sink: SinkFactory,
    sniff: Sniffer,
    max_files: int,
    accept_archives: bool,
    offload: Offload,
) -> MultipartResult:
    """Stream a multipart/form-data body into sinks; raise Problem on any limit or syntax error.

    On error, sinks opened for this request are aborted; parts already closed are left for the
    caller to remove (it knows their handles from its own bookkeeping).
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(
            415,
            "unsupported_media_type",
            "Send multipart/form-data with one or more 'file' parts.",
        )
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise request_too_large(limit, declared)
    collector = _Collector(new_sink, sniff, max_files, accept_archives)
    callbacks = {
        "on_part_begin": collector.on_part_begin,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
        "on_end": collector.on_end,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            received += len(chunk)
            if received > limit:
                raise request_too_large(limit, declared)
            await offload(parser.write, chunk)
        await offload(parser.finalize)
    except MultipartParseError as exc:
        collector.abort()
        raise Problem(
            400, "malformed_multipart", f"The multipart body is malformed: {exc}"
        ) from None
    except BaseException:
        await offload(collector.abort)
        raise
    if not collector.ended or collector.open_sinks:
        collector.abort()
        raise Problem(400, "malformed_multipart", "The multipart body ended inside a part.")
    collector.result.fingerprint = collector.fingerprint.hexdigest()
    return collector.result
