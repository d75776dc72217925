"""The one exception hierarchy of palette_native.

Every error carries a stable snake_case ``code`` (the service maps it one-to-one to a
problem+json ``code``) and ``details``: extra fields such as the limit that was exceeded.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArchiveError",
    "BadParameterError",
    "CanceledError",
    "DecodeError",
    "ImageTooLargeError",
    "PaletteError",
    "UnsupportedFormatError",
]


class PaletteError(Exception):
    """Base class of every error raised by palette_native."""

    code: str = "palette_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class DecodeError(PaletteError):
    """The input could not be decoded: corrupt, truncated or not an image."""

    code = "decode_error"


class UnsupportedFormatError(DecodeError):
    """The input is a file type palette_native does not read."""

    code = "unsupported_format"


class ImageTooLargeError(PaletteError):
    """The image has more pixels than allowed (checked from the header, before decoding)."""

    code = "image_too_large"


class ArchiveError(PaletteError):
    """A ZIP archive is malformed or breaks a limit (size, ratio, entry count, unsafe names...)."""

    code = "archive_error"


class BadParameterError(PaletteError, ValueError):
    """An option has a wrong type or a value outside its allowed range."""

    code = "bad_parameter"


class CanceledError(PaletteError):
    """Work was stopped because the caller's ``should_cancel`` callback returned True."""

    code = "canceled"
