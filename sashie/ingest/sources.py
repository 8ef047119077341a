"""Sources: folders, path lists, IIIF manifests and single images, expanded into page references.

A source is what the user names on the command line; a page is one image to index. Each page
records where it came from (`source`) and what the source says of it (`metadata`: for IIIF the
manifest, canvas id and labels, and the Image API service to cut regions from).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, SashieError
from .images import IMAGE_EXTENSIONS, fetch, is_url

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PageRef:
    """One page to index: its image (absolute path or URL) and what its source says of it."""

    uri: str
    source: str
    metadata: dict = field(default_factory=dict, hash=False, compare=False)


SkipFn = Callable[[str, str, str], None]  # (uri, source, reason)


def check_sources(sources: list[str]) -> None:
    """Refuse, before any work starts, a local source that does not exist."""
    for source in sources:
        if not is_url(source) and not Path(source).exists():
            raise SashieError(f"source not found: {source}")


def expand_sources(sources: list[str], skip: SkipFn) -> Iterator[PageRef]:
    """Every page of every source, in a stable order; unusable sources are passed to `skip`."""
    for source in sources:
        try:
            yield from _expand(source)
        except BadInput as e:
            skip(source, source, str(e))


def _expand(source: str) -> Iterator[PageRef]:
    if is_url(source):
        if _has_image_extension(source):
            yield PageRef(source, source)
            return
        yield from manifest_pages(_parse_json(fetch(source, max_bytes=MAX_MANIFEST_BYTES)), source)
        return
    path = Path(source).resolve()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if _is_image_file(p, path)):
            yield PageRef(str(file), str(path))
    elif path.suffix.lower() == ".json":
        yield from manifest_pages(_parse_json(_read_local(path)), str(path))
    elif path.suffix.lower() in LIST_EXTENSIONS:
        yield from _list_pages(path)
    else:
        yield PageRef(str(path), str(path))


def _has_image_extension(uri: str) -> bool:
    tail = uri.split("?", 1)[0].rsplit("/", 1)[-1]
    return Path(tail).suffix.lower() in IMAGE_EXTENSIONS


def _is_image_file(path: Path, root: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    return not hidden and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _read_local(path: Path) -> bytes:
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BadInput("manifest too large")
    return path.read_bytes()


def _list_pages(path: Path) -> Iterator[PageRef]:
    """A text file with one path or URL a line; relative paths are relative to the list."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if is_url(entry):
            yield PageRef(entry, str(path))
        else:
            yield PageRef(str((path.parent / entry).resolve()), str(path))


def _parse_json(data: bytes) -> dict:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"malformed manifest (not JSON: {e})") from None
    if not isinstance(doc, dict):
        raise BadInput("malformed manifest (not a JSON object)")
    return doc


# --- IIIF Presentation API, versions 2 and 3 -------------------------------------------------


def manifest_pages(doc: dict, source: str) -> Iterator[PageRef]:
    """One page per canvas of a IIIF Presentation v2 or v3 manifest."""
    context = doc.get("@context", "")
    contexts = context if isinstance(context, list) else [context]
    if any("presentation/3" in str(c) for c in contexts) or doc.get("type") == "Manifest":
        pages = list(_v3_pages(doc, source))
    elif any("presentation/2" in str(c) for c in contexts) or doc.get("@type") == "sc:Manifest":
        pages = list(_v2_pages(doc, source))
    else:
        raise BadInput("malformed manifest (not a IIIF Presentation v2 or v3 manifest)")
    if not pages:
        raise BadInput("malformed manifest (no canvas with an image)")
    yield from pages


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
            return str(value["@value"])
        return " / ".join(filter(None, (_label(v) for v in value.values())))
    return str(value)


def _service_id(service) -> str | None:
    if isinstance(service, list):
        service = service[0] if service else None
    if isinstance(service, dict):
        return service.get("@id") or service.get("id")
    return None


def _v2_pages(doc: dict, source: str) -> Iterator[PageRef]:
    manifest = {"manifest": doc.get("@id", source), "manifest_label": _label(doc.get("label"))}
    try:
        canvases = doc["sequences"][0]["canvases"]
    except (KeyError, IndexError, TypeError):
        raise BadInput("malformed manifest (v2 without sequences[0].canvases)") from None
    for index, canvas in enumerate(canvases):
        if not isinstance(canvas, dict):
            continue
        for image in canvas.get("images") or []:
            resource = image.get("resource") if isinstance(image, dict) else None
            if not isinstance(resource, dict):
                continue
            ref = _canvas_page(source, manifest, canvas, index, resource, "@id", "full/full")
            if ref:
                yield ref
                break


def _v3_pages(doc: dict, source: str) -> Iterator[PageRef]:
    manifest = {"manifest": doc.get("id", source), "manifest_label": _label(doc.get("label"))}
    items = doc.get("items")
    if not isinstance(items, list):
        raise BadInput("malformed manifest (v3 without items)")
    for index, canvas in enumerate(items):
        if not isinstance(canvas, dict):
            continue
        for page in canvas.get("items") or []:
            annotations = page.get("items") if isinstance(page, dict) else None
            body = _first_image_body(annotations or [])
            if body is None:
                continue
            ref = _canvas_page(source, manifest, canvas, index, body, "id", "full/max")
            if ref:
                yield ref
                break


def _canvas_page(
    source: str, manifest: dict, canvas: dict, index: int, image: dict, id_key: str, full_size: str
) -> PageRef | None:
    """A canvas's page: its image's URL, else the full image from the image's IIIF service."""
    service = _service_id(image.get("service"))
    uri = image.get(id_key) or (f"{service}/{full_size}/0/default.jpg" if service else None)
    if not uri:
        return None
    return PageRef(uri, source, manifest | _canvas_meta(canvas, index, service, id_key))


def _first_image_body(annotations: list) -> dict | None:
    for annotation in annotations:
        if not isinstance(annotation, dict):
            continue
        body = annotation.get("body")
        bodies = body if isinstance(body, list) else [body]
        for candidate in bodies:
            if isinstance(candidate, dict) and candidate.get("type", "Image") == "Image":
                return candidate
    return None


def _canvas_meta(canvas: dict, index: int, service: str | None, id_key: str) -> dict:
    meta = {
        "canvas": canvas.get(id_key),
        "canvas_index": index,
        "canvas_label": _label(canvas.get("label")),
    }
    if service:
        meta["image_service"] = service
    return meta
