"""Sources: folders, path lists, IIIF manifests and single images, expanded into page references.

A source is what the user names on the command line; a page is one image to index. Each page
records where it came from (`source`) and what the source says of it (`metadata`: for IIIF the
manifest, canvas id and labels, and the Image API service to cut regions from).

Local paths come only from what the user typed: a folder, a list file, a local manifest (its
relative paths are relative to it). A manifest from the web names http(s) URLs only: it may not
make sashie read, or tell of, the files of the machine that indexes it. Whatever shape a
manifest's JSON takes, it is read or skipped with a reason, never a crash.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BadInput, SashieError
from .books import Book, book_from, manifest_book, sidecar_values
from .images import (
    IMAGE_EXTENSIONS,
    fetch,
    is_public_host,
    is_url,
    read_file,
    stat_file,
    stored_url_public_only,
)

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
FROM_THE_WEB = "not an http(s) URL (a manifest from the web may not name local files)"
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # file:, ftp:, data: ... (not a path)


@dataclass(frozen=True)
class PageRef:
    """One page to index: its image (absolute path or URL) and what its source says of it."""

    uri: str
    source: str
    metadata: dict = field(default_factory=dict, hash=False, compare=False)
    public_only: bool = field(default=False, compare=False)  # named by a public manifest
    book: Book | None = field(default=None, compare=False)  # the book it is a page of
    page_number: int | None = field(default=None, compare=False)  # 1, 2, ... in its book


SkipFn = Callable[[str, str, str], None]  # (uri, source, reason)
Sidecar = dict[str, dict[str, object]]  # a sidecar's rows by key (sashie/sources/books.py)


def check_sources(sources: list[str]) -> None:
    """Refuse, before any work starts, a local source that does not exist."""
    for source in sources:
        if not is_url(source) and not Path(source).exists():
            raise SashieError(f"source not found: {source}")


def indexed_page(uri: str, source: str, metadata: dict) -> PageRef:
    """A page the library holds, read back from its catalog (which may have been changed):
    a URL reaches public hosts only, unless SASHIE_PRIVATE_HOSTS allows its host."""
    return PageRef(uri, source, metadata, public_only=is_url(uri) and stored_url_public_only(uri))


def expand_sources(
    sources: list[str], skip: SkipFn, books: Sidecar | None = None
) -> Iterator[PageRef]:
    """Every page of every source, in a stable order, each with its book and page number;
    unusable sources and the parts of a source that cannot be used (a canvas, a folder's
    entry) are passed to `skip`. `books`: a sidecar's rows of book metadata for folders,
    lists and files (sashie/sources/books.py)."""
    for source in sources:
        try:
            yield from _expand(source, skip, books or {})
        except BadInput as e:
            skip(source, source, str(e))


def _expand(source: str, skip: SkipFn, books: Sidecar) -> Iterator[PageRef]:
    if is_url(source):
        if _has_image_extension(source):
            yield PageRef(source, source, book=Book(source, title=_tail(source)), page_number=1)
            return
        pages = _manifest(fetch(source, max_bytes=MAX_MANIFEST_BYTES), source, skip, None)
        # a manifest on the internet may not make this machine fetch from its own network
        # (an internal IIIF server's manifest may name that server's images)
        public_only = is_public_host(source)
        yield from (replace(page, public_only=public_only) for page in pages)
        return
    path = Path(source).resolve()
    if path.is_dir():
        yield from _in_books(_folder_pages(path, skip), path, books)
    elif path.suffix.lower() == ".json":
        data = read_file(path, max_bytes=MAX_MANIFEST_BYTES)
        yield from _manifest(data, str(path), skip, path.parent)
    elif path.suffix.lower() in LIST_EXTENSIONS:
        yield from _in_books(list(_list_pages(path)), path.parent, books, one=path)
    else:
        yield from _in_books([PageRef(str(path), str(path))], path.parent, books, one=path)


def _in_books(
    pages: list[PageRef], root: Path, books: Sidecar, one: Path | None = None
) -> Iterator[PageRef]:
    """Pages with their books: `one` book (a list, a single image) or one a folder; a page
    the sidecar names by its own file is a book of its own (a single print)."""
    numbers: dict[str, int] = {}
    made: dict[Path, Book] = {}
    for page in pages:
        own = None
        if one is not None:  # a list's pages (URLs too) are its book
            place = one
        else:  # a folder's page: its folder's book, or its own that the sidecar names
            file = Path(page.uri)
            own = sidecar_values(books, file, root)
            place = file if own is not None else file.parent
        if place not in made:
            values = own if own is not None else sidecar_values(books, place, root)
            title = place.stem or place.name
            made[place] = book_from(str(place), values or {}, default_title=title)
        number = numbers[str(place)] = numbers.get(str(place), 0) + 1
        yield replace(page, book=made[place], page_number=number)


def _tail(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _has_image_extension(uri: str) -> bool:
    tail = uri.split("?", 1)[0].rsplit("/", 1)[-1]
    return Path(tail).suffix.lower() in IMAGE_EXTENSIONS


def _folder_pages(root: Path, skip: SkipFn) -> list[PageRef]:
    """The images under a folder, sorted by path; hidden files and folders are left out.
    Links to folders are not followed; an entry that cannot be read (a folder without
    permission, a dangling link, a link loop, a FIFO) goes to `skip` with its reason."""
    source = str(root)

    def refused(error: OSError) -> None:
        why = "permission denied" if isinstance(error, PermissionError) else error.strerror
        skip(str(error.filename), source, f"unreadable folder ({why})")

    files: list[Path] = []
    for folder, folders, names in os.walk(root, onerror=refused):
        subfolders = sorted(name for name in folders if not name.startswith("."))
        folders.clear()  # what is left in it is walked
        for name in subfolders:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                skip(path, source, _folder_link(path, folder))
            else:
                folders.append(name)
        for name in sorted(name for name in names if not name.startswith(".")):
            path = os.path.join(folder, name)
            image = Path(name).suffix.lower() in IMAGE_EXTENSIONS
            if image or os.path.islink(path):
                try:
                    stat_file(path)
                except BadInput as e:
                    skip(path, source, str(e))
                    continue
                if image:
                    files.append(Path(path))
    return [PageRef(str(path), source) for path in sorted(files)]


def _folder_link(link: str, folder: str) -> str:
    """Why a link to a folder is left out: a loop (it leads to a folder it is in), or any
    other link to a folder (not followed, so that no folder is indexed under two names)."""
    if Path(folder).resolve().is_relative_to(Path(link).resolve()):
        return "symbolic link loop"
    return "symbolic link to a folder (not followed: name the folder itself)"


def _list_pages(path: Path) -> Iterator[PageRef]:
    """A text file with one path or URL a line; relative paths are relative to the list."""
    text = read_file(path, max_bytes=MAX_MANIFEST_BYTES).decode("utf-8", errors="replace")
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if is_url(entry):
            yield PageRef(entry, str(path))
        else:
            yield PageRef(str((path.parent / entry).resolve()), str(path))


def _manifest(data: bytes, source: str, skip: SkipFn, folder: Path | None) -> list[PageRef]:
    """The pages of a manifest's bytes. A manifest of any unforeseen shape is malformed (one
    skip for the whole manifest, none for its canvases)."""
    skipped: list[tuple[str, str, str]] = []
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise BadInput("malformed manifest (not a JSON object)")
        pages = list(manifest_pages(doc, source, lambda *s: skipped.append(s), folder))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"malformed manifest (not JSON: {e})") from None
    except RecursionError:
        raise BadInput("malformed manifest (nested too deeply)") from None
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
        raise BadInput(f"malformed manifest ({e})") from None
    for uri, at, reason in skipped:
        skip(uri, at, reason)
    return pages


# --- IIIF Presentation API, versions 2 and 3 -------------------------------------------------


def manifest_pages(
    doc: dict, source: str, skip: SkipFn, folder: Path | None = None
) -> Iterator[PageRef]:
    """One page per canvas of a IIIF Presentation v2 or v3 manifest; a canvas that cannot be
    used goes to `skip`. `folder`: where a local manifest is (its relative paths are relative
    to it); None for a manifest from the web, whose images must be http(s) URLs."""
    context = doc.get("@context", "")
    contexts = context if isinstance(context, list) else [context]
    if any("presentation/3" in str(c) for c in contexts) or doc.get("type") == "Manifest":
        id_key, full_size, canvases = "id", "full/max", _v3_canvases(doc)
    elif any("presentation/2" in str(c) for c in contexts) or doc.get("@type") == "sc:Manifest":
        id_key, full_size, canvases = "@id", "full/full", _v2_canvases(doc)
    else:
        raise BadInput("malformed manifest (not a IIIF Presentation v2 or v3 manifest)")
    manifest = {
        "manifest": _web_id(doc.get(id_key)) or source,
        "manifest_label": _label(doc.get("label")),
    }
    book = manifest_book(doc, manifest["manifest"])
    found = False
    for index, canvas in enumerate(canvases):
        try:
            if not isinstance(canvas, dict):
                raise BadInput("malformed canvas (not a JSON object)")
            image = _v3_image(canvas) if id_key == "id" else _v2_image(canvas)
            service = _service_id(image.get("service")) if image else None
            uri = _image_uri(image.get(id_key), folder) if image else None
        except BadInput as e:
            found = True
            skip(f"{source}#canvas={index}", source, str(e))
            continue
        if uri is None and service:
            uri = f"{service}/{full_size}/0/default.jpg"
        if uri is None:
            continue  # a canvas without an image (a blank leaf, a placeholder)
        found = True
        meta = {
            "canvas": _web_id(canvas.get(id_key)),
            "canvas_index": index,
            "canvas_label": _label(canvas.get("label")),
            **_size(canvas, "canvas"),
            **_size(image, "image"),
        }
        if service:
            meta["image_service"] = service
        yield PageRef(uri, source, manifest | meta, book=book, page_number=index + 1)
    if not found:
        raise BadInput("malformed manifest (no canvas with an image)")


def _v2_canvases(doc: dict) -> list:
    sequences = doc.get("sequences")
    first = sequences[0] if isinstance(sequences, list) and sequences else None
    canvases = first.get("canvases") if isinstance(first, dict) else None
    if not isinstance(canvases, list):
        raise BadInput("malformed manifest (v2 without sequences[0].canvases)")
    return canvases


def _v3_canvases(doc: dict) -> list:
    items = doc.get("items")
    if not isinstance(items, list):
        raise BadInput("malformed manifest (v3 without items)")
    return items


def _v2_image(canvas: dict) -> dict | None:
    """The first image resource of a v2 canvas with an id or a service."""
    for image in _list(canvas, "images"):
        resource = image.get("resource") if isinstance(image, dict) else None
        if isinstance(resource, dict) and (resource.get("@id") or resource.get("service")):
            return resource
    return None


def _v3_image(canvas: dict) -> dict | None:
    """The first image body of a v3 canvas's annotations with an id or a service."""
    for page in _list(canvas, "items"):
        for annotation in _list(page, "items") if isinstance(page, dict) else []:
            body = annotation.get("body") if isinstance(annotation, dict) else None
            for candidate in body if isinstance(body, list) else [body]:
                if (
                    isinstance(candidate, dict)
                    and candidate.get("type", "Image") == "Image"
                    and (candidate.get("id") or candidate.get("service"))
                ):
                    return candidate
    return None


def _list(value: dict, key: str) -> list:
    """`value[key]`, a list (empty when absent)."""
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadInput(f"malformed canvas ({key} is not a list)")
    return items


def _image_uri(value, folder: Path | None) -> str | None:
    """The page an image id names: an http(s) URL, or in a local manifest a path (relative to
    the manifest's folder); None when there is no id. What is refused is refused unread."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInput("malformed canvas (image id is not a string)")
    if is_url(value):
        return value
    if folder is None:
        raise BadInput(FROM_THE_WEB)
    if SCHEME.match(value):
        raise BadInput("not an http(s) URL or a local path")
    return str((folder / value).resolve())


def _service_id(service) -> str | None:
    """The id of an image's IIIF Image API service (the first, when a list), an http(s) URL."""
    if isinstance(service, list):
        service = service[0] if service else None
    if service is None:
        return None
    if not isinstance(service, dict):
        raise BadInput("malformed canvas (image service is not an object)")
    value = service.get("@id") or service.get("id")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInput("malformed canvas (image service id is not a string)")
    if not is_url(value):
        raise BadInput("image service not an http(s) URL")
    return value


def _size(value: dict | None, name: str) -> dict:
    """{name_width, name_height} of a canvas or an image that gives both as positive
    integers; empty when it does not (its size is then unknown)."""
    sides = [value.get(key) for key in ("width", "height")] if value else []
    if len(sides) < 2 or not all(type(side) is int and side > 0 for side in sides):
        return {}
    return {f"{name}_width": sides[0], f"{name}_height": sides[1]}


def _web_id(value) -> str | None:
    """A manifest's or canvas's id, kept when it is an http(s) URL (it is shown as a link)."""
    return value if isinstance(value, str) and is_url(value) else None


def _label(value) -> str:
    """A IIIF label (v2 string, list or {@value}; v3 language map) as one string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " / ".join(filter(None, (_label(v) for v in value)))
    if isinstance(value, dict):
        if "@value" in value:
            return _label(value["@value"])
        return " / ".join(filter(None, (_label(v) for v in value.values())))
    return str(value)
