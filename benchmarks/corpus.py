"""Gather the benchmark corpus: real photographs shipped by Debian and PyPI packages.

Run ``python benchmarks/corpus.py`` to build (or refresh) the cache and print a table; the
benchmarks call :func:`corpus_paths` / :func:`corpus_entries`, which build it on first use.

Sources (all photographs, no renders or illustrations):

* scikit-image's bundled sample data (PyPI ``scikit-image``): a handful of small color photos.
* Debian ``mate-backgrounds``: the ``nature`` set (macro and landscape photos).
* Debian ``lomiri-wallpapers-16.04``: photo wallpapers by named photographers.

Debian's ``gnome-backgrounds`` (43.x) was checked and left out: it ships 3D renders, SVG art and
flat patterns, not photographs.

Every file in the cache is a JPEG. Originals that are already JPEG and at most
:data:`MAX_MEGAPIXELS` are copied byte for byte (so the corpus keeps the real mix of baseline and
progressive encodings); larger ones and non-JPEG sources are resized to common export sizes and
re-encoded at quality 90. ``manifest.json`` records each file's size in megapixels.

The cache lives in ``benchmarks/.corpus/`` unless ``PALETTE_CORPUS_DIR`` names another folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pyvips

__all__ = [
    "APT_PACKAGES",
    "CorpusMissingError",
    "Photo",
    "build_corpus",
    "corpus_dir",
    "corpus_entries",
    "corpus_paths",
]

#: Debian packages the corpus reads from; CI must install them.
APT_PACKAGES = ("mate-backgrounds", "lomiri-wallpapers-16.04")

MAX_MEGAPIXELS = 5.0
JPEG_QUALITY = 90
# Long-side sizes for photos that must be shrunk, cycled so the corpus covers a spread of
# realistic export sizes (all land between about 1.4 and 4.9 megapixels).
_EXPORT_LONG_SIDES = (2560, 2048, 1600, 1920)
_MANIFEST = "manifest.json"
# Bump when the selection or the conversion changes, so stale caches are rebuilt.
_CORPUS_VERSION = 1

_BACKGROUNDS = Path("/usr/share/backgrounds")
_MATE_NATURE = (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
    "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
)  # fmt: skip
_LOMIRI_PHOTOS = (
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
    "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
    "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
    "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
)  # fmt: skip
# scikit-image sample images that are color photographs (the rest are gray, microscopy,
# astronomy or synthetic).
_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
)


class CorpusMissingError(RuntimeError):
    """A source package of the corpus is not installed."""


@dataclass(frozen=True)
class Photo:
    """One corpus photograph (a JPEG in the cache)."""

    name: str
    path: Path
    source: str
    width: int
    height: int
    bytes: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def corpus_dir() -> Path:
    """Where the cache lives (``PALETTE_CORPUS_DIR`` or ``benchmarks/.corpus``)."""
    env = os.environ.get("PALETTE_CORPUS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / ".corpus"


def _sources() -> list[tuple[str, str, Path]]:
    """(name, source label, file) for every photo."""
    import skimage.data

    skimage_dir = Path(skimage.data.__file__).parent
    missing = [
        pkg
        for pkg, probe in (
            ("mate-backgrounds", _BACKGROUNDS / "mate" / "nature" / "Aqua.jpg"),
            ("lomiri-wallpapers-16.04", _BACKGROUNDS / "Bridge_by_Sander_Klootwijk.jpg"),
        )
        if not probe.is_file()
    ]
    if missing:
        raise CorpusMissingError(
            "benchmark corpus sources are not installed: "
            + ", ".join(missing)
            + f"\ninstall them with: apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    out = [(f"skimage-{Path(n).stem}", "scikit-image", skimage_dir / n) for n in _SKIMAGE_PHOTOS]
    out += [
        (f"mate-{n}", "mate-backgrounds", _BACKGROUNDS / "mate" / "nature" / f"{n}.jpg")
        for n in _MATE_NATURE
    ]
    out += [
        (f"lomiri-{n.split('_by_')[0]}", "lomiri-wallpapers-16.04", _BACKGROUNDS / f"{n}.jpg")
        for n in _LOMIRI_PHOTOS
    ]
    return out


def _write_photo(source: Path, dest: Path, resize_index: int) -> bool:
    """Write one corpus JPEG; return True if it had to be resized."""
    image = pyvips.Image.new_from_file(str(source))
    small = image.width * image.height <= MAX_MEGAPIXELS * 1e6
    if small and image.get("vips-loader").startswith("jpegload"):
        shutil.copyfile(source, dest)
        return False
    if not small:
        long_side = _EXPORT_LONG_SIDES[resize_index % len(_EXPORT_LONG_SIDES)]
        image = pyvips.Image.thumbnail(str(source), long_side, height=long_side, size="down")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    image.jpegsave(str(dest), Q=JPEG_QUALITY, keep="none")
    return not small


def build_corpus(force: bool = False) -> list[Photo]:
    """Create the cache if it is missing or stale; return its photos."""
    folder = corpus_dir()
    manifest = folder / _MANIFEST
    if not force and manifest.is_file():
        data = json.loads(manifest.read_text())
        photos = [Photo(**{**p, "path": folder / p["path"]}) for p in data["photos"]]
        if data.get("version") == _CORPUS_VERSION and all(p.path.is_file() for p in photos):
            return photos
    sources = _sources()
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    resized = 0
    for name, label, source in sources:
        dest = folder / f"{name}.jpg"
        tmp = folder / f".{name}.{os.getpid()}.tmp"  # concurrent builders never share a file
        resized += _write_photo(source, tmp, resized)
        tmp.replace(dest)
        image = pyvips.Image.new_from_file(str(dest))
        photos.append(Photo(name, dest, label, image.width, image.height, dest.stat().st_size))
    records = [{**asdict(p), "path": p.path.name} for p in photos]
    tmp_manifest = folder / f".{_MANIFEST}.{os.getpid()}.tmp"
    tmp_manifest.write_text(json.dumps({"version": _CORPUS_VERSION, "photos": records}, indent=1))
    tmp_manifest.replace(manifest)
    return photos


def corpus_entries(min_mp: float = 0.0, max_mp: float = float("inf")) -> list[Photo]:
    """Corpus photos whose size in megapixels lies in [min_mp, max_mp], building if needed."""
    return [p for p in build_corpus() if min_mp <= p.megapixels <= max_mp]


def corpus_paths(min_mp: float = 0.0, max_mp: float = float("inf")) -> list[Path]:
    """Paths of the corpus JPEGs (see :func:`corpus_entries`)."""
    return [p.path for p in corpus_entries(min_mp, max_mp)]


def main() -> int:
    try:
        photos = build_corpus(force="--force" in sys.argv[1:])
    except CorpusMissingError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{'name':36} {'size':>11} {'MP':>5} {'KiB':>6}  source")
    for p in photos:
        size = f"{p.width}x{p.height}"
        print(f"{p.name:36} {size:>11} {p.megapixels:5.2f} {p.bytes // 1024:6d}  {p.source}")
    in_range = sum(0.5 <= p.megapixels <= MAX_MEGAPIXELS for p in photos)
    print(f"{len(photos)} photos in {corpus_dir()}, {in_range} of 0.5-{MAX_MEGAPIXELS:g} MP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
