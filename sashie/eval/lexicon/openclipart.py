"""Openclipart's drawings as Debian's `openclipart-svg` installs them, with what each author
said of a drawing: its title, description and keywords (the SVG's RDF metadata). A drawing's
file is read as untrusted XML: only its `<metadata>` element is parsed, from the file's start,
never a DOCTYPE or an entity."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

ROOT = Path("/usr/share/openclipart/svg")
CREDIT = "Openclipart drawings (Debian package openclipart-svg), public domain (CC0)"
HEAD_BYTES = 64 << 10  # the metadata comes before the drawing's paths
_METADATA = re.compile(rb"<metadata[\s>].*?</metadata>", re.DOTALL)
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_SPACES = re.compile(r"\s+")
_VERSION = re.compile(r"v?\d+(\.\d+)*$", re.IGNORECASE)
_WRAPPER = (
    b'<wrapper xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns:cc="http://creativecommons.org/ns#" xmlns:svg="http://www.w3.org/2000/svg" '
    b'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
    b'xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" '
    b'xmlns:xlink="http://www.w3.org/1999/xlink">'
)


@dataclass(frozen=True)
class Drawing:
    path: Path
    title: str  # the author's title, else words of the file's name ("cormorant-md": cormorant)
    description: str
    keywords: tuple[str, ...]
    folders: tuple[str, ...]  # where Debian filed it, e.g. ("animals", "birds")


def drawings(root: Path = ROOT) -> Iterator[Drawing]:
    """Every drawing under `root`, in a fixed order."""
    for path in sorted(root.rglob("*.svg")):
        if path.is_symlink() or not path.is_file():
            continue
        folders = tuple(part.replace("_", " ") for part in path.relative_to(root).parts[:-1])
        yield read_drawing(path, folders)


def read_drawing(path: Path, folders: tuple[str, ...] = ()) -> Drawing:
    """What a drawing's file says of it (its metadata; unreadable metadata says nothing)."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    title, description, keywords = _metadata(head)
    return Drawing(path, title or _name_words(path.stem), description, keywords, folders)


def _metadata(head: bytes) -> tuple[str, str, tuple[str, ...]]:
    """(title, description, keywords) from a file's start; empty when it has none."""
    found = _METADATA.search(head)
    if found is None or _DECLARATION.search(found.group(0)):
        return "", "", ()  # only the metadata is parsed: a DOCTYPE before it is never read
    xml = found.group(0)
    try:  # the prefixes the metadata uses are declared on the <svg>, outside it
        root = ET.fromstring(_WRAPPER + xml + b"</wrapper>")
    except ET.ParseError:
        return "", "", ()
    keywords = tuple(
        dict.fromkeys(
            word
            for li in root.iterfind(f".//{_DC}subject//{_RDF}li")
            if (word := _text(li)) and len(word) <= 60
        )
    )
    description = _text(root.find(f".//{_DC}description"))
    return _text(root.find(f".//{_DC}title")), description, keywords


def _name_words(stem: str) -> str:
    """A file name as words: separators as spaces, Openclipart's size and version marks
    dropped (`sheep-md-v0.1`: sheep)."""
    words = re.split(r"[-_\s]+", stem)
    kept = [w for w in words if w and w.lower() not in ("md", "lg", "sm") and not _VERSION.match(w)]
    return " ".join(kept)


def _text(element: ET.Element | None) -> str:
    """An element's text (its own and its children's), on one line."""
    if element is None:
        return ""
    return _SPACES.sub(" ", "".join(element.itertext())).strip()[:500]
