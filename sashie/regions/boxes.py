"""Boxes people drew on pages, read as hostile input: Pascal VOC folders (NDL-DocL's format)
and COCO JSON files, the two ways a curator may hand us the illustrations of a collection.

A VOC file names a page image and, for each object, a label and a box (xmin, ymin, xmax,
ymax in the image's pixels). Here:
- the image is the file with the XML's own name beside it (`page12.xml` -> `page12.jpg`):
  the `<filename>` and `<path>` inside are never used as paths;
- a document with a DOCTYPE or entities is refused (no entity is ever expanded), as is one
  over MAX_XML_BYTES or with more than MAX_OBJECTS objects;
- numbers must be finite and under MAX_COORDINATE; a box is clipped to the image and dropped
  when nothing of it is left, so a box outside the image never becomes a region.

A COCO file lists images (`file_name`, read only as a plain relative path inside the JSON's
own folder: no absolute path, no "..", no link), annotations (`image_id`, `bbox` as x, y,
width, height) and categories (their names become the labels); the same limits hold.
`read_boxes(path)` takes any of the three: a folder of VOC files, a COCO JSON file, or an
AnnotationPage (below).

A IIIF AnnotationPage (Presentation 3; a v2 AnnotationList too) boxes canvases rather than
files: each annotation's target is a canvas with an `xywh=` fragment (a string
`canvas#xywh=x,y,w,h`, or a SpecificResource with a FragmentSelector) and its body's text, if
any, is the label. The library finds the canvases among its pages
(sashie/library/region_model.py).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import BadInput
from ..sources.images import IMAGE_EXTENSIONS
from .base import BBox

MAX_XML_BYTES = 4 << 20
MAX_JSON_BYTES = 32 << 20
MAX_OBJECTS = 20_000
MAX_COORDINATE = 1_000_000  # pixels: a larger number is no page's
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class BoxedPage:
    """A page image and the boxes drawn on it, each with its label; `picture`, when the
    page was read already (a library's canvas), else the image is read from `image`."""

    image: Path | str
    size: tuple[int, int]  # width, height
    boxes: tuple[tuple[str, BBox], ...]
    dropped: int = 0  # boxes wholly outside the image, or empty
    picture: Image.Image | None = field(default=None, compare=False, repr=False)

    def labelled(self, labels: set[str] | frozenset[str]) -> list[BBox]:
        """The boxes whose label is one of `labels`."""
        return [box for label, box in self.boxes if label in labels]


def read_voc(xml_path: str | Path) -> BoxedPage:
    """One VOC file and the page image beside it (BadInput, with the reason, when either
    cannot be used)."""
    path = Path(xml_path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_XML_BYTES + 1)
    except OSError as e:
        raise BadInput(f"cannot read {path.name} ({e.strerror or e})") from None
    if len(data) > MAX_XML_BYTES:
        raise BadInput(f"{path.name} is over {MAX_XML_BYTES >> 20} MB")
    if _DECLARATION.search(data):
        raise BadInput(f"{path.name} declares a DOCTYPE or entities, which are refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BadInput(f"{path.name} is not well-formed XML ({e})") from None
    image = _image_beside(path)
    size = _size(root, image, path.name)
    objects = root.findall("object")
    if len(objects) > MAX_OBJECTS:
        raise BadInput(f"{path.name} has over {MAX_OBJECTS:,} objects")
    boxes, dropped = [], 0
    for number, obj in enumerate(objects, 1):
        label = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not label or box is None:
            raise BadInput(f"{path.name}: object {number} has no name or no bndbox")
        corners = [_number(box, key, path.name, number) for key in ("xmin", "ymin", "xmax", "ymax")]
        clipped = clip_box(corners, size)
        if clipped is None:
            dropped += 1
        else:
            boxes.append((label[:200], clipped))
    return BoxedPage(image, size, tuple(boxes), dropped)


def read_voc_folder(folder: str | Path) -> tuple[list[BoxedPage], list[tuple[str, str]]]:
    """Every VOC file of a folder (not below it), sorted: the pages, and (file, reason) for
    each that could not be used."""
    pages, skipped = [], []
    for path in sorted(Path(folder).glob("*.xml")):
        if path.is_symlink() or not path.is_file():
            skipped.append((path.name, "not a plain file"))
            continue
        try:
            pages.append(read_voc(path))
        except BadInput as e:
            skipped.append((path.name, str(e)))
    return pages, skipped


@dataclass(frozen=True)
class CanvasBox:
    """A box drawn on a IIIF canvas: the canvas's id, a label, and x, y, w, h in the
    canvas's units; `captions`: every text its annotation (or curation member) gave it."""

    canvas: str
    label: str
    xywh: tuple[float, float, float, float]
    captions: tuple[str, ...] = ()


def read_canvas_boxes(json_path: str | Path) -> tuple[list[CanvasBox], list[tuple[str, str]]]:
    """The boxes of a IIIF AnnotationPage or AnnotationList, and (annotation, reason) for each
    annotation that could not be used (BadInput when the file itself cannot be)."""
    path = Path(json_path)
    doc = _read_json(path)
    if not isinstance(doc, dict) or _annotation_kind(doc) is None:
        raise BadInput(f"{path.name} is not a IIIF AnnotationPage or AnnotationList")
    return _canvas_boxes(doc, path.name)


def read_regions(
    json_path: str | os.PathLike,
) -> tuple[list[CanvasBox], list[tuple[str, str]]]:
    """The captioned regions of a IIIF Curation (CODH's cr:Curation), a IIIF AnnotationPage or
    AnnotationList, or a list of W3C Web Annotations (a JSON list, or an AnnotationCollection
    with its first page inline), and (entry, reason) for each that could not be used."""
    path = Path(json_path)
    doc = _read_json(path)
    if isinstance(doc, dict) and doc.get("@type") == "cr:Curation":
        return _curation_boxes(doc, path.name)
    if isinstance(doc, dict) and doc.get("type") == "AnnotationCollection":
        first = doc.get("first")
        doc = first.get("items", []) if isinstance(first, dict) else []
    if isinstance(doc, list):
        return _canvas_boxes({"type": "AnnotationPage", "items": doc}, path.name)
    if not isinstance(doc, dict) or _annotation_kind(doc) is None:
        raise BadInput(
            f"{path.name} is not a IIIF Curation, AnnotationPage or AnnotationList, or a list "
            "of Web Annotations"
        )
    return _canvas_boxes(doc, path.name)


def _curation_boxes(doc: dict, name: str) -> tuple[list[CanvasBox], list[tuple[str, str]]]:
    """The members of a Curation's selections: `canvas#xywh=` ids, captioned by their
    `caption` or `tag` metadata, else by their label."""
    members = [
        member
        for selection in _list(doc.get("selections"))
        if isinstance(selection, dict)
        for member in _list(selection.get("members"))
    ]
    if len(members) > MAX_OBJECTS:
        raise BadInput(f"{name} has over {MAX_OBJECTS:,} members")
    boxes, skipped = [], []
    for number, member in enumerate(members, 1):
        try:
            if not isinstance(member, dict):
                raise BadInput("not a JSON object")
            canvas, fragment = _canvas_target(member.get("@id"))
            captions = _member_captions(member)
            label = captions[0] if captions else "illustration"
            boxes.append(CanvasBox(canvas, label, _xywh(fragment), captions))
        except BadInput as e:
            skipped.append((f"member {number}", str(e)))
    return boxes, skipped


def _member_captions(member: dict) -> tuple[str, ...]:
    """A curation member's captions: its `caption`/`tag` metadata values, else its label
    (unless sashie wrote it as a placeholder for an uncaptioned item)."""
    tagged, ours = [], False
    for pair in _list(member.get("metadata")):
        if not isinstance(pair, dict):
            continue
        name = str(pair.get("label", "")).strip().lower()
        ours = ours or name == "sashie item"
        if name in ("caption", "tag", "tags", "タグ", "キャプション") and isinstance(
            pair.get("value"), str
        ):
            tagged.append(pair["value"])
    label = member.get("label")
    if not tagged and not ours and isinstance(label, str):
        tagged.append(label)
    return _captions(tagged)


def _captions(texts: list[str]) -> tuple[str, ...]:
    """Texts as captions: one line each, bounded, without repeats."""
    out: list[str] = []
    for text in texts:
        line = " ".join(re.sub(r"<[^>]{0,500}>", " ", text).split())[:200]  # HTML: its text
        if line and line not in out:
            out.append(line)
    return tuple(out[:20])


def _canvas_boxes(doc: dict, name: str) -> tuple[list[CanvasBox], list[tuple[str, str]]]:
    entries = _list(doc.get(_annotation_kind(doc) or ""))
    if len(entries) > MAX_OBJECTS:
        raise BadInput(f"{name} has over {MAX_OBJECTS:,} annotations")
    boxes, skipped = [], []
    for number, entry in enumerate(entries, 1):
        try:
            if not isinstance(entry, dict):
                raise BadInput("not a JSON object")
            target = entry.get("target", entry.get("on"))
            canvas, fragment = _canvas_target(target)
            body = entry.get("body", entry.get("resource"))
            label = _body_text(body) or "illustration"
            boxes.append(CanvasBox(canvas, label, _xywh(fragment), _body_captions(body)))
        except BadInput as e:
            skipped.append((f"annotation {number}", str(e)))
    return boxes, skipped


def _annotation_kind(doc: dict) -> str | None:
    """The key holding a document's annotations: `items` (v3) or `resources` (v2)."""
    if doc.get("type") == "AnnotationPage":
        return "items"
    if doc.get("@type") == "sc:AnnotationList":
        return "resources"
    return None


def _canvas_target(target: object) -> tuple[str, str]:
    """(canvas id, `xywh=` fragment) of an annotation's target."""
    if isinstance(target, list) and target:
        target = target[0]
    fragment: object = None
    canvas: object = None
    if isinstance(target, str):
        canvas, _, fragment = target.partition("#")
    elif isinstance(target, dict):
        source = target.get("source", target.get("full"))
        canvas = source.get("id", source.get("@id")) if isinstance(source, dict) else source
        selector = target.get("selector")
        if isinstance(selector, list):
            selector = next((s for s in selector if isinstance(s, dict)), None)
        fragment = selector.get("value") if isinstance(selector, dict) else None
    else:
        raise BadInput("its target is not a canvas")
    if not isinstance(canvas, str) or not canvas or len(canvas) > 2000:
        raise BadInput("its target names no canvas")
    if not isinstance(fragment, str) or not fragment.startswith("xywh="):
        raise BadInput("its target has no xywh= region")
    return canvas, fragment


def _xywh(fragment: str) -> tuple[float, float, float, float]:
    value = fragment[len("xywh=") :]
    if value.startswith("percent:"):
        raise BadInput("a region in percent is not read; give canvas pixels")
    value = value.removeprefix("pixel:")
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        raise BadInput(f"xywh={value[:40]!r} is not four numbers") from None
    if len(numbers) != 4 or not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in numbers):
        raise BadInput(f"xywh={value[:40]!r} is not four numbers under {MAX_COORDINATE:,}")
    x, y, w, h = numbers
    if w <= 0 or h <= 0:
        raise BadInput("its region is empty")
    return x, y, w, h


def _body_text(body: object) -> str:
    """The first text of an annotation's body (a TextualBody's value, a v2 resource's chars)."""
    for part in body if isinstance(body, list) else [body]:
        if isinstance(part, dict):
            text = part.get("value", part.get("chars"))
            if isinstance(text, str) and text.strip():
                return text.strip()[:200]
    return ""


def _body_captions(body: object) -> tuple[str, ...]:
    """Every text of an annotation's bodies that names or tags what it marks (not the
    descriptions sashie writes of a search's rank and score)."""
    texts = []
    for part in body if isinstance(body, list) else [body]:
        if not isinstance(part, dict):
            continue
        text = part.get("value", part.get("chars"))
        if isinstance(text, str) and not re.search(r"\(sashie item \d+\)$", text.strip()):
            texts.append(text)
    return _captions(texts)


def _read_json(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise BadInput(f"{path.name} is over {MAX_JSON_BYTES >> 20} MB")
        return json.loads(data)
    except OSError as e:
        raise BadInput(f"cannot read {path.name} ({e.strerror or e})") from None
    except (ValueError, RecursionError):
        raise BadInput(f"{path.name} is not JSON") from None


def read_coco(json_path: str | Path) -> tuple[list[BoxedPage], list[tuple[str, str]]]:
    """A COCO file's pages with their boxes, and (image, reason) for each image that could
    not be used (BadInput when the file itself cannot be)."""
    path = Path(json_path)
    return _coco(_read_json(path), path)


def _coco(coco: object, path: Path) -> tuple[list[BoxedPage], list[tuple[str, str]]]:
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise BadInput(f"{path.name} is not a COCO file (no images list)")
    names = {
        _id(c.get("id")): str(c.get("name", ""))[:200]
        for c in _list(coco.get("categories"))
        if isinstance(c, dict) and _id(c.get("id")) is not None
    }
    by_image: dict[int | str, list[dict]] = {}
    for a in _list(coco.get("annotations")):
        key = _id(a.get("image_id")) if isinstance(a, dict) else None
        if key is not None:
            by_image.setdefault(key, []).append(a)
    pages, skipped = [], []
    for entry in coco["images"]:
        name = str(entry.get("file_name", ""))[:300] if isinstance(entry, dict) else "?"
        try:
            if not isinstance(entry, dict):
                raise BadInput("an image entry is not an object")
            image = _image_inside(path.parent, name)
            size = _size(None, image, name)
            image_id = _id(entry.get("id"))
            objects = by_image.get(image_id, []) if image_id is not None else []
            if len(objects) > MAX_OBJECTS:
                raise BadInput(f"{name} has over {MAX_OBJECTS:,} annotations")
            boxes, dropped = [], 0
            for number, a in enumerate(objects, 1):
                x, y, w, h = _coco_box(a.get("bbox"), name, number)
                clipped = clip_box([x, y, x + w, y + h], size)
                if clipped is None:
                    dropped += 1
                else:
                    label = names.get(_id(a.get("category_id")), "") or "illustration"
                    boxes.append((label, clipped))
            pages.append(BoxedPage(image, size, tuple(boxes), dropped))
        except BadInput as e:
            skipped.append((name, str(e)))
    return pages, skipped


def read_boxes(
    path: str | Path,
) -> tuple[list[BoxedPage], list[CanvasBox], list[tuple[str, str]]]:
    """Boxes from a folder of VOC files, a COCO JSON file or a IIIF AnnotationPage (read
    once): (boxed page images, boxes on canvases, (name, reason) for what was skipped)."""
    path = Path(path)
    if path.is_dir():
        pages, skipped = read_voc_folder(path)
        return pages, [], skipped
    if path.suffix.lower() == ".json" and path.is_file():
        doc = _read_json(path)
        if isinstance(doc, dict) and _annotation_kind(doc) is not None:
            on_canvases, skipped = _canvas_boxes(doc, path.name)
            return [], on_canvases, skipped
        pages, skipped = _coco(doc, path)
        return pages, [], skipped
    raise BadInput(
        f"{path} is neither a folder of VOC files nor a COCO or IIIF AnnotationPage .json file"
    )


def _image_inside(folder: Path, name: str) -> Path:
    """A COCO `file_name` as a file inside `folder`, never outside it."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise BadInput(f"{name!r} is not a plain relative file name")
    if relative.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BadInput(f"{name!r} is not an image file name")
    image = folder / relative
    for part in [image, *image.parents]:
        if part == folder:
            break
        if part.is_symlink():
            raise BadInput(f"{name!r} goes through a link, which is not followed")
    if not image.is_file():
        raise BadInput(f"no image {name!r} beside the COCO file")
    return image


def _id(value: object) -> int | str | None:
    """A COCO id as a key: an integer or a string; anything else (a list, an object, a
    boolean) names nothing."""
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _coco_box(value: object, name: str, number: int) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise BadInput(f"{name}: annotation {number}'s bbox is not [x, y, width, height]")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BadInput(f"{name}: annotation {number}'s bbox holds a non-number")
        if not math.isfinite(v) or abs(v) > MAX_COORDINATE:
            raise BadInput(f"{name}: annotation {number}'s bbox is out of range")
        numbers.append(float(v))
    x, y, w, h = numbers
    return x, y, w, h


def _image_beside(path: Path) -> Path:
    for candidate in sorted(path.parent.glob(f"{glob.escape(path.stem)}.*")):
        if candidate.suffix.lower() in IMAGE_EXTENSIONS and candidate.is_file():
            if candidate.is_symlink():
                raise BadInput(f"{candidate.name} is a link, which is not followed")
            return candidate
    raise BadInput(f"no page image beside {path.name} (looked for {path.stem}.jpg, .png, ...)")


def _size(root: ET.Element | None, image: Path, name: str) -> tuple[int, int]:
    """The image's own size (its header); the XML's <size> is only checked against it."""
    try:
        with Image.open(image) as opened:
            width, height = opened.size
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        raise BadInput(f"cannot read {image.name} ({type(e).__name__})") from None
    said = root.find("size") if root is not None else None
    if said is not None:
        w, h = said.findtext("width"), said.findtext("height")
        if w and h and (w.strip(), h.strip()) != (str(width), str(height)):
            raise BadInput(f"{name} says the page is {w} x {h}; {image.name} is {width} x {height}")
    return width, height


def _number(box: ET.Element, key: str, name: str, number: int) -> float:
    text = (box.findtext(key) or "").strip()
    try:
        value = float(text[:40])
    except ValueError:
        raise BadInput(f"{name}: object {number}'s {key} is not a number ({text[:20]!r})") from None
    if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
        raise BadInput(f"{name}: object {number}'s {key} is out of range ({text[:20]!r})")
    return value


def clip_box(corners: list[float], size: tuple[int, int]) -> BBox | None:
    """Corners (x0, y0, x1, y1) as a box inside an image of `size`; None when nothing of it
    is inside."""
    x0, y0, x1, y1 = corners
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    width, height = size
    box = (
        max(0, round(x0)),
        max(0, round(y0)),
        min(width, round(x1)),
        min(height, round(y1)),
    )
    return box if box[2] > box[0] and box[3] > box[1] else None
