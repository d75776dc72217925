"""The ``palette`` command line.

``palette extract FILES_OR_ZIPS...`` prints or writes palettes; ZIP arguments stand for the
images inside them (streamed, never unpacked to disk). ``palette quantize IN OUT`` writes an
indexed PNG. ``palette analyze FILES...`` prints quality, subject, crops and the three palettes
of each image; ``palette theme FILE`` prints or writes a theme (ramps, schemes, contrast pairs). Other installed packages add commands through the ``palette_native.commands``
entry points (the HTTP service adds ``palette serve`` and ``palette worker``).

Exit status: 0 when every image gave a palette (skipped archive entries are not failures),
1 when any input failed (each failure is named on stderr), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from .errors import BadParameterError, PaletteError
from .exports import EXTENSIONS, FORMATS

if TYPE_CHECKING:
    from ._palette import Palette
    from .analyze import Analysis
    from .theme import Theme

__all__ = ["main"]

PROG = "palette"
OUTPUT_FORMATS: tuple[str, ...] = ("text", *FORMATS)
ANALYZE_FORMATS: tuple[str, ...] = ("text", "json")
THEME_FORMATS: tuple[str, ...] = ("text", "css", "tailwind", "tokens", "json")
# Formats that render one palette as a whole document: several images need a directory.
_DOCUMENT_FORMATS = ("css", "gpl", "ase", "svg")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


@dataclass(frozen=True)
class Item:
    """One image's outcome: a palette, an error, or why it was skipped."""

    name: str
    """``FILE``, or ``ARCHIVE:ENTRY`` for an image inside a ZIP."""
    palette: Palette | None = None
    error: PaletteError | None = None
    skipped: str | None = None
    path: str = ""
    """The command-line argument it came from."""
    entry: str | None = None
    """The entry name inside the ZIP ``path``, if any."""


# --- terminal helpers --------------------------------------------------------------------


def _is_tty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _use_color(stream: IO[Any]) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colors off.
    return _is_tty(stream) and not os.environ.get("NO_COLOR")


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO, *, enabled: bool) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.enabled = enabled
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.05 and self.done < self.total:
            return  # at most 20 redraws a second
        self._last_draw = now
        columns = shutil.get_terminal_size((80, 24)).columns
        shown = min(self.done, self.total)
        counter = f" {shown}/{self.total} "
        width = max(10, min(30, columns - len(counter) - 20))
        filled = width * shown // self.total
        bar = "[" + "#" * filled + "-" * (width - filled) + "]"
        room = max(columns - len(bar) - len(counter) - 2, 0)
        label = name if len(name) <= room else "…" + name[-(room - 1) :] if room > 1 else ""
        self.stream.write("\r\x1b[K" + bar + counter + label)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def message(self, text: str) -> None:
        """Print a line on stderr without garbling the bar."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()


# --- inputs ------------------------------------------------------------------------------


def _is_zip_file(path: str) -> bool:
    from .archive import is_zip

    try:
        with open(path, "rb") as handle:
            return is_zip(handle.read(4))
    except OSError:
        return False  # extract() reports the problem with the file


def _count_items(path: str, is_archive: bool) -> int:
    """Roughly how many items an input gives (for the progress bar): 1 for a file, the
    declared entry count for a ZIP, read from its end record only."""
    if not is_archive:
        return 1
    from .archive import declared_entry_count

    return max(declared_entry_count(path) or 1, 1)


def _iter_items(inputs: Sequence[str], zips: set[str], options: dict[str, Any]) -> Iterator[Item]:
    from . import extract
    from .archive import extract_archive

    for path in inputs:
        if path in zips:
            try:
                for result in extract_archive(path, **options):
                    yield Item(
                        f"{path}:{result.name}",
                        palette=result.palette,
                        error=result.error,
                        skipped=result.skipped_reason,
                        path=path,
                        entry=result.name,
                    )
            except BadParameterError:
                raise
            except PaletteError as exc:
                yield Item(path, error=exc, path=path)
            continue
        try:
            yield Item(path, palette=extract(path, **options), path=path)
        except BadParameterError:
            raise
        except PaletteError as exc:
            yield Item(path, error=exc, path=path)


def _error_line(name: str, error: PaletteError) -> str:
    message = error.message
    if message.startswith(f"{name}: "):  # the library often names the file already
        message = message[len(name) + 2 :]
    return f"{PROG}: error: {name}: {message} [{error.code}]"


# --- rendering ---------------------------------------------------------------------------


def _render_text(item: Item, *, color: bool) -> str:
    palette = item.palette
    assert palette is not None
    lines = [f"{item.name}  ({palette.width}x{palette.height})"]
    for entry in palette.colors:
        r, g, b = entry.rgb
        swatch = f"\x1b[48;2;{r};{g};{b}m      \x1b[0m " if color else ""
        lines.append(f"  {swatch}{entry.hex}  {entry.fraction * 100:5.1f}%")
    return "\n".join(lines) + "\n"


def _json_record(item: Item) -> dict[str, Any]:
    if item.palette is not None:
        return {"file": item.name, "palette": item.palette.to_dict()}
    if item.error is not None:
        return {
            "file": item.name,
            "error": {
                "code": item.error.code,
                "message": item.error.message,
                "details": item.error.details,
            },
        }
    return {"file": item.name, "skipped": item.skipped}


def _document_name(item: Item, extension: str, used: set[str]) -> str:
    """A file name for one image's document in an output directory, unique within the run:
    ``photo.css`` for ``photo.jpg``, ``album_dir_photo.css`` for ``album.zip:dir/photo.jpg``."""
    base = Path(item.path).stem
    if item.entry is not None:
        base += "_" + str(Path(item.entry).with_suffix("")).replace("/", "_")
    base = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base).lstrip(".") or "image"
    candidate, counter = base + extension, 2
    while candidate in used:
        candidate, counter = f"{base}-{counter}{extension}", counter + 1
    used.add(candidate)
    return candidate


# --- commands ----------------------------------------------------------------------------


def _cmd_extract(args: argparse.Namespace) -> int:
    fmt: str = args.format or ("text" if _is_tty(sys.stdout) else "json")
    inputs: list[str] = args.inputs
    zips = {path for path in inputs if _is_zip_file(path)}
    several = len(inputs) > 1 or bool(zips)
    output: str | None = args.output
    out_dir = Path(output) if output is not None and Path(output).is_dir() else None

    if fmt in _DOCUMENT_FORMATS and several and out_dir is None:
        raise UsageError(
            f"--format {fmt} renders one palette per document; with several images "
            "(or a ZIP) pass --output DIR, an existing directory, to get one file per image"
        )
    if fmt in ("text", "json") and out_dir is not None:
        raise UsageError(f"--output for --format {fmt} must be a file, not a directory")
    if fmt == "ase" and output is None and _is_tty(sys.stdout):
        raise UsageError("ASE is binary; redirect stdout or pass --output FILE")

    options: dict[str, Any] = {"colors": args.colors}
    if args.exact:
        options["exact"] = True
    show_progress = _is_tty(sys.stderr)
    total = sum(_count_items(path, path in zips) for path in inputs) if show_progress else 0
    progress = Progress(total, sys.stderr, enabled=show_progress and total > 1)

    stream: Any  # a text stream, or a binary one for ASE
    close_stream = False
    if out_dir is not None:
        stream = sys.stdout
    elif output is not None:
        try:
            # Closed in the finally below.
            stream = open(output, "wb") if fmt == "ase" else open(output, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
        close_stream = True
    else:
        stream = sys.stdout.buffer if fmt == "ase" else sys.stdout
    color = fmt == "text" and _use_color(stream)

    used_names: set[str] = set()

    def emit(item: Item) -> None:
        if item.error is not None:
            progress.message(_error_line(item.name, item.error))
        elif item.skipped is not None:
            progress.message(f"{PROG}: skipped {item.name}: {item.skipped}")
        if fmt == "json":
            stream.write(json.dumps(_json_record(item), default=str) + "\n")
            stream.flush()
            return
        if item.palette is None:
            return
        if fmt == "text":
            stream.write(_render_text(item, color=color))
            stream.flush()
        elif out_dir is not None:
            name = _document_name(item, EXTENSIONS[fmt], used_names)
            document = item.palette.export(fmt)
            target = out_dir / name
            if isinstance(document, bytes):
                target.write_bytes(document)
            else:
                target.write_text(document, encoding="utf-8")
        else:
            stream.write(item.palette.export(fmt))
            stream.flush()

    failures = 0
    try:
        for item in _iter_items(inputs, zips, options):
            # Stdout and stderr may share the terminal: take the bar down while writing.
            progress.clear()
            emit(item)
            failures += item.error is not None
            progress.advance(item.name)
    finally:
        progress.clear()
        if close_stream:
            stream.close()
    if failures:
        noun = "input" if failures == 1 else "inputs"
        sys.stderr.write(f"{PROG}: {failures} {noun} failed\n")
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_quantize(args: argparse.Namespace) -> int:
    from . import quantize

    try:
        result = quantize(args.input, colors=args.colors, dither=args.dither, output=args.output)
    except BadParameterError:
        raise
    except PaletteError as exc:
        sys.stderr.write(_error_line(args.input, exc) + "\n")
        return EXIT_FAILURE
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot write {args.output}: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    psnr = result.palette.metrics.psnr
    sys.stdout.write(
        f"{args.output}: {len(result.palette.colors)} colors"
        + (f", PSNR {psnr:.1f} dB" if math.isfinite(psnr) else "")
        + ("" if not args.dither else ", dithered")
        + "\n"
    )
    return EXIT_OK


def _swatch(hex_color: str, *, color: bool, width: int = 7) -> str:
    """A block of ``width`` cells in ``hex_color`` (truecolor), or nothing without color."""
    if not color:
        return ""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"\x1b[48;2;{r};{g};{b}m{' ' * width}\x1b[0m"


def _swatch_row(label: str, hexes: Sequence[str], *, color: bool, indent: int = 2,
                captions: Sequence[str] | None = None) -> list[str]:
    """A labelled row of swatches with the hex codes (or ``captions``) under them, each column
    8 cells wide; without color only the codes."""
    head = " " * indent + f"{label:<{20 - indent}}"
    codes = head + " ".join(f"{h:<7}" for h in hexes)
    lines = []
    if color:
        lines.append(head + " ".join(_swatch(h, color=True) for h in hexes))
        codes = " " * len(head) + " ".join(f"{h:<7}" for h in hexes)
    lines.append(codes.rstrip())
    if captions is not None:
        lines.append((" " * len(head) + " ".join(f"{c:<7}" for c in captions)).rstrip())
    return lines


def _box_text(box: Sequence[int]) -> str:
    left, top, width, height = box
    return f"{width}x{height} at ({left}, {top})"


def _render_analysis(name: str, analysis: Analysis, *, color: bool) -> str:
    from .analyze import CROP_ASPECTS

    quality = analysis.quality
    lines = [f"{name}  ({analysis.width}x{analysis.height})",
             f"  quality  {quality.score:5.1f} / 100"]
    for component in quality.components.values():
        lines.append(f"    {component.name:<13} {component.value:5.3f}   "
                     f"{component.raw:.4g} ({component.unit})")
    lines.append(f"  subject  {_box_text(analysis.subject.box)}, "
                 f"{analysis.subject.share * 100:.0f}% of the saliency")
    for aspect in CROP_ASPECTS:
        lines.append(f"  crop {aspect:<5} {_box_text(analysis.crop(aspect))}")
    for label, palette in (("palette", analysis.palette),
                           ("subject palette", analysis.subject_palette),
                           ("background", analysis.background_palette)):
        lines += _swatch_row(label, [c.hex for c in palette.colors], color=color)
    return "\n".join(lines) + "\n"


def _render_theme(theme: Theme, *, color: bool) -> str:
    from .theme import TONES

    lines = [f"theme from {theme.source} ({theme.variant})", "", "tonal ramps (tone = CIE L*)"]
    for name, ramp in theme.ramps.items():
        tones = ramp.tones
        lines += _swatch_row(name, [tones[t] for t in TONES], color=color,
                             captions=[f"T{t}" for t in TONES])
    for scheme in (theme.light, theme.dark):
        lines += ["", f"{scheme.name} scheme"]
        for role, value in scheme.colors.items():
            lines.append(f"  {role:<28} {_swatch(value, color=color, width=4)} {value}".rstrip()
                         if color else f"  {role:<28} {value}")
    lines += ["", "contrast pairs (WCAG 2: 4.5 text, 3.0 large text and UI)"]
    for pair in theme.pairs:
        sample = (f"\x1b[38;2;{';'.join(str(int(pair.foreground[i:i + 2], 16)) for i in (1, 3, 5))}"
                  f";48;2;{';'.join(str(int(pair.background[i:i + 2], 16)) for i in (1, 3, 5))}m"
                  " Aa \x1b[0m " if color else "")
        verdict = "ok" if pair.ratio >= pair.required_ratio else "FAILS"
        lines.append(f"  {sample}{pair.role:<52} {pair.foreground} on {pair.background}  "
                     f"{pair.ratio:5.2f} >= {pair.required_ratio:.1f}  {verdict}")
    return "\n".join(lines) + "\n"


def _cmd_analyze(args: argparse.Namespace) -> int:
    from . import analyze

    fmt: str = args.format or ("text" if _is_tty(sys.stdout) else "json")
    inputs: list[str] = args.inputs
    color = fmt == "text" and _use_color(sys.stdout)
    progress = Progress(len(inputs), sys.stderr,
                        enabled=_is_tty(sys.stderr) and len(inputs) > 1)
    failures = 0
    try:
        for path in inputs:
            try:
                result = analyze(path, args.colors)
            except BadParameterError:
                raise
            except PaletteError as exc:
                failures += 1
                progress.message(_error_line(path, exc))
                if fmt == "json":
                    sys.stdout.write(json.dumps(_json_record(Item(path, error=exc))) + "\n")
                    sys.stdout.flush()
                progress.advance(path)
                continue
            progress.clear()
            if fmt == "json":
                sys.stdout.write(json.dumps({"file": path, "analysis": result.to_dict()}) + "\n")
            else:
                sys.stdout.write(_render_analysis(path, result, color=color))
            sys.stdout.flush()
            progress.advance(path)
    finally:
        progress.clear()
    if failures:
        noun = "input" if failures == 1 else "inputs"
        sys.stderr.write(f"{PROG}: {failures} {noun} failed\n")
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_theme(args: argparse.Namespace) -> int:
    from . import theme

    fmt: str = args.format or ("text" if _is_tty(sys.stdout) else "json")
    source: str = args.input
    # "#rrggbb" names a seed color, unless a file of that name exists.
    seed = source.startswith("#") and not os.path.exists(source)
    try:
        result = theme(source if seed else Path(source), variant=args.variant)
    except BadParameterError:
        raise  # a bad seed color: a usage error
    except PaletteError as exc:
        sys.stderr.write(_error_line(source, exc) + "\n")
        if fmt == "json":
            sys.stdout.write(json.dumps(_json_record(Item(source, error=exc))) + "\n")
        return EXIT_FAILURE
    if fmt == "text":
        document = _render_theme(result, color=_use_color(sys.stdout))
    elif fmt == "json":
        document = json.dumps({"file": source, "theme": result.to_dict()}) + "\n"
    else:
        document = result.export(fmt)
    if args.output is None:
        sys.stdout.write(document)
        return EXIT_OK
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    return EXIT_OK


PLUGIN_GROUP = "palette_native.commands"
"""Entry points in this group are called with the sub-command parsers and add their own;
each command sets ``handler`` (args -> exit status) as its default."""


def _add_plugin_commands(commands: Any) -> None:
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            add_commands = entry.load()
        except ImportError as exc:
            # A broken add-on must not take the library's own commands down with it.
            sys.stderr.write(f"{PROG}: note: commands from {entry.value} unavailable ({exc})\n")
            continue
        add_commands(commands)


# --- parser ------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="Accurate color palettes from images, ZIPs of images, or a service."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract",
        help="print or write the palette of images and ZIPs of images",
        description=(
            "Extract a palette from each image. A ZIP stands for the images inside it "
            "(entries are named ARCHIVE:ENTRY; non-images are skipped and reported). "
            "--format text shows swatches (in color on a terminal); json writes JSON Lines, "
            'one object per image: {"file", "palette"} or {"file", "error"} or '
            '{"file", "skipped"}. The default is text on a terminal and json otherwise. '
            "css, gpl, ase and svg write one document per image: with several images, "
            "--output must be an existing directory."
        ),
    )
    extract.add_argument("inputs", nargs="+", metavar="FILE_OR_ZIP")
    extract.add_argument("-k", "--colors", type=_positive_int, default=8, help="default: 8")
    extract.add_argument(
        "-f", "--format", choices=OUTPUT_FORMATS, default=None, help="default: text or json"
    )
    extract.add_argument(
        "--exact", action="store_true", help="analyse every pixel instead of a shrunk image"
    )
    extract.add_argument(
        "-o", "--output", metavar="PATH", help="write to this file (or directory) not stdout"
    )
    extract.set_defaults(handler=_cmd_extract)

    quantize = commands.add_parser(
        "quantize",
        help="reduce an image to N colors and write an indexed PNG",
        description="Map IN to its own N-color palette and write OUT as an indexed PNG.",
    )
    quantize.add_argument("input", metavar="IN")
    quantize.add_argument("output", metavar="OUT")
    quantize.add_argument("-k", "--colors", type=_positive_int, default=8, help="default: 8")
    quantize.add_argument("--dither", action="store_true", help="Floyd-Steinberg dithering")
    quantize.set_defaults(handler=_cmd_quantize)

    analyze = commands.add_parser(
        "analyze",
        help="quality score, subject box, crops and palettes of images",
        description=(
            "Analyze each image: the quality score (0-100) and its components, the subject "
            "box, the 1:1 and 16:9 crops that keep the subject, and the palettes of the whole "
            "image, its subject and its background. --format text shows swatches (in color on "
            'a terminal); json writes JSON Lines, one object per image: {"file", "analysis"} '
            '(palette_native.Analysis.to_dict()) or {"file", "error"}. The default is text '
            "on a terminal and json otherwise."
        ),
    )
    analyze.add_argument("inputs", nargs="+", metavar="FILE")
    analyze.add_argument("-k", "--colors", type=_positive_int, default=8,
                         help="colors in each palette (default: 8)")
    analyze.add_argument(
        "-f", "--format", choices=ANALYZE_FORMATS, default=None, help="default: text or json"
    )
    analyze.set_defaults(handler=_cmd_analyze)

    from .theme import VARIANTS

    theme = commands.add_parser(
        "theme",
        help="a theme (tonal ramps, light and dark schemes) from an image or a color",
        description=(
            "Build a theme from an image (or a seed color written #rrggbb): tonal ramps of "
            "the key colors, light and dark schemes, and every foreground/background pair with "
            "its WCAG contrast ratio (each meets 4.5:1 for text, 3:1 for large text and UI). "
            "--format text shows swatch strips and tables (in color on a terminal); css "
            "(custom properties), tailwind (a config fragment) and tokens (W3C Design Tokens "
            'JSON) write the export; json writes one line {"file", "theme"}. The default is '
            "text on a terminal and json otherwise."
        ),
    )
    theme.add_argument("input", metavar="FILE")
    theme.add_argument(
        "-f", "--format", choices=THEME_FORMATS, default=None, help="default: text or json"
    )
    theme.add_argument("--variant", choices=VARIANTS, default=VARIANTS[0],
                       help=f"default: {VARIANTS[0]}")
    theme.add_argument("-o", "--output", metavar="PATH", help="write to this file, not stdout")
    theme.set_defaults(handler=_cmd_theme)

    _add_plugin_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``palette`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
        return status
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"{PROG} {args.command}: error: {exc}\n")
    except BadParameterError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {exc.message}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `palette extract ... | head`): stop quietly, and point
        # stdout at devnull so the interpreter's final flush does not complain again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
