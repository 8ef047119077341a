"""IIIF out: where an item lies on its IIIF canvas, as a region link (`canvas#xywh=`), a
Content State a viewer opens at that region, and an AnnotationPage of many found regions
(Presentation 3). Pure functions from catalog rows to JSON.

Coordinates. An item's box is kept in the pixels of its page as it was downloaded and decoded
(the catalog's page size). A canvas has its own size, and a IIIF Image service its own full
size; both may differ from the download (a 3200 x 4800 canvas painted with a 1600 x 2400
image). A box is scaled from page pixels to each, side by side:

    canvas:   x * canvas_width / page_width    canvas size from the manifest, else the page's
    service:  x * image_width / page_width     the image's size from the manifest, else the
                                               canvas's, else the page's

assuming, as nearly every manifest does, that the image covers the whole canvas and that the
service's full image is the image the manifest describes.

Content State (IIIF Content State API 1.0): an Annotation with the motivation `contentState`
whose target is the region (a SpecificResource: the canvas, the manifest it is part of, and an
`xywh=` FragmentSelector); passed to a viewer as `?iiif-content=` + its content-state encoding
(the JSON, URI-component-encoded, then base64url without padding).
"""

from __future__ import annotations

import base64
import json
import os
import string
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SashieError
from ..sources.images import is_url
from ..store.catalog import Catalog, ItemRow

PRESENTATION_3 = "http://iiif.io/api/presentation/3/context.json"
PRESENTATION_2 = "http://iiif.io/api/presentation/2/context.json"
CURATION = "http://codh.rois.ac.jp/iiif/curation/1/context.json"
MEDIA_FRAGMENTS = "http://www.w3.org/TR/media-frags/"
URI_COMPONENT_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves as it is

Box = tuple[int, int, int, int]  # x, y, width, height
Size = tuple[int, int]


@dataclass(frozen=True)
class Place:
    """Where an item lies in IIIF: its canvas (and that canvas's size), the manifest the
    canvas is part of (None when the manifest has no web id), and its box on the canvas."""

    canvas: str
    manifest: str | None
    canvas_size: Size
    xywh: Box

    @property
    def region(self) -> str:
        """The region as a URI: `canvas#xywh=x,y,w,h`."""
        return f"{self.canvas}#xywh={','.join(map(str, self.xywh))}"


@dataclass(frozen=True)
class AnnotationExport:
    """An AnnotationPage, how many annotations it holds and how many items were left out
    because they are not from a IIIF manifest (a local file has no canvas)."""

    page: dict
    annotations: int
    skipped: int


# --- coordinates -------------------------------------------------------------------------


def scale(bbox: tuple[int, int, int, int], page: Size, to: Size) -> Box:
    """A box (x0, y0, x1, y1) in page pixels as (x, y, w, h) in a space of size `to`."""
    sx, sy = to[0] / page[0], to[1] / page[1]
    x0, y0 = round(bbox[0] * sx), round(bbox[1] * sy)
    x1, y1 = round(bbox[2] * sx), round(bbox[3] * sy)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def canvas_size(row: ItemRow) -> Size:
    return _size(row.metadata, "canvas") or row.page_size


def image_size(row: ItemRow) -> Size:
    """The full size of the page's image as its IIIF Image service serves it."""
    return _size(row.metadata, "image") or canvas_size(row)


def image_service(row: ItemRow) -> str | None:
    return _web(row.metadata.get("image_service"))


def service_box(row: ItemRow) -> Box:
    """The item's box in the pixels of its image service's full image."""
    return scale(row.bbox, row.page_size, image_size(row))


def image_url(service: str, region: str, size: str) -> str:
    """A IIIF Image API request (versions 2 and 3 alike): region `full` or `x,y,w,h`; size
    `max`, `w,` or `!w,h` (the largest that fits, never larger than the region in v3)."""
    return f"{service}/{region}/{size}/0/default.jpg"


def place(row: ItemRow) -> Place | None:
    """Where the item lies on its canvas; None when its page is not a IIIF canvas."""
    canvas = _web(row.metadata.get("canvas"))
    if canvas is None:
        return None
    size = canvas_size(row)
    xywh = scale(row.bbox, row.page_size, size)
    return Place(canvas, _web(row.metadata.get("manifest")), size, xywh)


# --- what is written -----------------------------------------------------------------------


def target(where: Place) -> dict:
    """The region as a Web Annotation target: the canvas (part of its manifest) and an
    `xywh=` selector."""
    source: dict = {"id": where.canvas, "type": "Canvas"}
    if where.manifest:
        source["partOf"] = [{"id": where.manifest, "type": "Manifest"}]
    selector = {
        "type": "FragmentSelector",
        "conformsTo": MEDIA_FRAGMENTS,
        "value": "xywh=" + ",".join(map(str, where.xywh)),
    }
    return {"type": "SpecificResource", "source": source, "selector": selector}


def content_state(where: Place) -> dict:
    """A Content State that opens a viewer at the region."""
    return {
        "@context": PRESENTATION_3,
        "id": _urn(where.region),
        "type": "Annotation",
        "motivation": ["contentState"],
        "target": target(where),
    }


def encode_content_state(state: dict) -> str:
    """The content-state encoding of a Content State, for `?iiif-content=`."""
    text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    quoted = urllib.parse.quote(text, safe=URI_COMPONENT_SAFE)
    return base64.urlsafe_b64encode(quoted.encode("ascii")).decode("ascii").rstrip("=")


VIEWERS = {  # viewer link templates by name (SASHIE_VIEWER: a name or a template)
    "uv": "https://uv-v4.netlify.app/#?manifest={manifest}&cv={canvas_index}&xywh={xywh}",
    "mirador": "https://projectmirador.org/embed/?iiif-content={iiif_content}",
}
DEFAULT_VIEWER = "uv"


def viewer_template() -> str | None:
    """The viewer link template: SASHIE_VIEWER names one of VIEWERS or is an http(s)
    template with {manifest}, {canvas}, {canvas_index}, {xywh}, {iiif_content}; "none": no
    viewer links. One error line for a template that is not an http(s) URL."""
    chosen = os.environ.get("SASHIE_VIEWER", DEFAULT_VIEWER).strip()
    if chosen.lower() == "none":
        return None
    template = VIEWERS.get(chosen.lower(), chosen)
    if not is_url(template):
        raise SashieError(
            f"SASHIE_VIEWER must name a viewer ({', '.join(VIEWERS)}, none) or be an "
            "http(s) link template"
        )
    return template


def viewer_url(template: str | None, where: Place, canvas_index: object) -> str | None:
    """A viewer link that opens the item's region (None: no template, or the template
    asks for what the item lacks: its manifest's id, its canvas's place)."""
    if template is None:
        return None
    values = {
        "manifest": where.manifest,
        "canvas": where.canvas,
        "canvas_index": canvas_index if type(canvas_index) is int else None,
        "xywh": ",".join(map(str, where.xywh)),
        "iiif_content": encode_content_state(content_state(where)),
    }
    try:
        named = {n for _, n, _, _ in string.Formatter().parse(template) if n}
    except ValueError:
        return None
    if not named <= set(values) or any(values[n] is None for n in named):
        return None
    quoted = {k: urllib.parse.quote(str(v), safe="") for k, v in values.items()}
    return template.format(**quoted)


def link(row: ItemRow) -> dict | None:
    """Where an item lies on its IIIF canvas (None: its page has no canvas): {"item",
    "manifest", "canvas", "canvas_size", "xywh" (on the canvas), "region" (canvas#xywh=),
    "image_region" (a IIIF Image API URL, or None), "content_state", "iiif_content" (its
    encoding, for a viewer's ?iiif-content=)}."""
    where = place(row)
    if where is None:
        return None
    service = image_service(row)
    region = ",".join(map(str, service_box(row)))
    state = content_state(where)
    return {
        "item": row.id,
        "manifest": where.manifest,
        "canvas": where.canvas,
        "canvas_size": list(where.canvas_size),
        "xywh": list(where.xywh),
        "region": where.region,
        "image_region": image_url(service, region, "max") if service else None,
        "content_state": state,
        "iiif_content": encode_content_state(state),
    }


def annotation_page(
    rows: Sequence[ItemRow],
    title: str,
    scores: Sequence[float] | None = None,
    captions: dict[int, list[str]] | None = None,
) -> AnnotationExport:
    """An AnnotationPage that highlights each item's region: its captions as tags, and its
    rank and score (when `scores` are given, one per row, best first) in a description.
    Items that are not on a IIIF canvas are counted and left out."""
    items = []
    for rank, row in enumerate(rows, start=1):
        where = place(row)
        if where is None:
            continue
        found = title if scores is None else f"{title}: #{rank}, score {scores[rank - 1]:.4f}"
        bodies = [_text(caption, "tagging") for caption in (captions or {}).get(row.id, [])]
        bodies.append(_text(f"{found} (sashie item {row.id})", "describing"))
        items.append(
            {
                "id": _urn(f"{where.region}\n{title}"),
                "type": "Annotation",
                "motivation": "highlighting",
                "body": bodies,
                "target": target(where),
            }
        )
    return AnnotationExport(_page_of(items, title), len(items), len(rows) - len(items))


def linking_page(groups: Sequence[Sequence[ItemRow]], title: str) -> AnnotationExport:
    """An AnnotationPage with one annotation a group that links its members' regions (the
    printings of one picture); members not on a IIIF canvas are counted and left out, and
    so is a group left with fewer than two."""
    items, left_out = [], 0
    for number, rows in enumerate(groups, start=1):
        places = [(row, where) for row in rows if (where := place(row)) is not None]
        left_out += len(rows) - len(places)
        if len(places) < 2:
            left_out += len(places)
            continue
        shown = ", ".join(str(row.id) for row, _ in places)
        items.append(
            {
                "id": _urn(f"{title}\n" + "\n".join(w.region for _, w in places)),
                "type": "Annotation",
                "motivation": "linking",
                "body": [_text(f"{title}: group {number} (sashie items {shown})", "describing")],
                "target": [target(where) for _, where in places],
            }
        )
    return AnnotationExport(_page_of(items, title), len(items), left_out)


def _page_of(annotations: list[dict], title: str) -> dict:
    """An AnnotationPage holding the annotations, its id from them and its title."""
    return {
        "@context": PRESENTATION_3,
        "id": _urn("\n".join([title, *(str(a["id"]) for a in annotations)])),
        "type": "AnnotationPage",
        "label": {"none": [title]},
        "items": annotations,
    }


def curation(
    rows: Sequence[ItemRow],
    title: str,
    scores: Sequence[float] | None = None,
    captions: dict[int, list[str]] | None = None,
) -> AnnotationExport:
    """A IIIF Curation (CODH's `cr:Curation`, as the IIIF Curation Viewer and Japanese
    projects trade crops): one selection per manifest, its members the regions as
    `canvas#xywh=`, each with its captions (and rank and score when `scores` are given).
    Items not on a IIIF canvas of a manifest with a web id are counted and left out."""
    selections: dict[str, dict] = {}
    kept = 0
    for rank, row in enumerate(rows, start=1):
        where = place(row)
        if where is None or where.manifest is None:
            continue
        said = (captions or {}).get(row.id, [])
        label = "; ".join(said) or (f"#{rank}" if scores is not None else f"item {row.id}")
        metadata = [{"label": "caption", "value": c} for c in said]
        if scores is not None:
            metadata.append({"label": "score", "value": f"{scores[rank - 1]:.4f}"})
        metadata.append({"label": "sashie item", "value": str(row.id)})
        member = {"@id": where.region, "@type": "sc:Canvas", "label": label, "metadata": metadata}
        selection = selections.setdefault(
            where.manifest,
            {
                "@id": _urn(f"{title}\n{where.manifest}"),
                "@type": "sc:Range",
                "label": title,
                "members": [],
                "within": {
                    "@id": where.manifest,
                    "@type": "sc:Manifest",
                    "label": str(row.metadata.get("manifest_label") or where.manifest),
                },
            },
        )
        selection["members"].append(member)
        kept += 1
    page = {
        "@context": [PRESENTATION_2, CURATION],
        "@id": _urn("\n".join([title, *selections])),
        "@type": "cr:Curation",
        "label": title,
        "selections": list(selections.values()),
    }
    return AnnotationExport(page, kept, len(rows) - kept)


def _text(value: str, purpose: str) -> dict:
    return {"type": "TextualBody", "value": value, "format": "text/plain", "purpose": purpose}


def _urn(name: str) -> str:
    """A stable id for what `name` names (the same region and title: the same id)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def _size(metadata: dict, name: str) -> Size | None:
    """A size the page's metadata records (`name_width`, `name_height`), when it is one."""
    sides = metadata.get(f"{name}_width"), metadata.get(f"{name}_height")
    if all(type(side) is int and side > 0 for side in sides):
        return sides  # type: ignore[return-value]
    return None


def _web(value: object) -> str | None:
    """A link taken from data (a manifest): only an http(s) URL is one."""
    return value if isinstance(value, str) and is_url(value) else None


def found_regions(
    catalog: Catalog,
    item_ids: Sequence[int] | None,
    *,
    scores: Sequence[float] | None,
    caption: str | None,
    mark: str | None,
    title: str | None,
    as_curation: bool = False,
) -> AnnotationExport:
    """The AnnotationPage (or, `as_curation`, the IIIF Curation) of the given items, those
    with a caption, or those marked."""
    if sum(x is not None for x in (item_ids, caption, mark)) != 1:
        raise SashieError("name the items: item ids, a caption or a mark")
    if caption is not None:
        caption = " ".join(caption.split())  # as annotations keep it
        item_ids = [a["item"] for a in catalog.annotations() if a["caption"] == caption]
        if not item_ids:
            raise SashieError(f"no item has the caption {caption!r}")
    elif mark is not None:
        if mark not in ("keep", "exclude"):
            raise SashieError("the mark must be keep or exclude")
        marked, keep = catalog.marks()
        item_ids = marked[keep == (mark == "keep")].tolist()
    wanted = [int(i) for i in item_ids or []]
    known = {row.id for row in catalog.items(wanted)}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise SashieError(f"no item {unknown[0]} in this library")
    if not wanted:
        raise SashieError(f"no item is marked {mark}" if mark else "no items to export")
    if scores is not None and len(scores) != len(wanted):
        raise SashieError("one score per item, please")
    captions = _captions(catalog, wanted)
    if title is None:
        title = caption or (f"marked {mark}" if mark else "sashie")
    write = curation if as_curation else annotation_page
    return write(catalog.items(wanted), title, scores, captions)


def _captions(catalog: Catalog, item_ids: list[int]) -> dict[int, list[str]]:
    captions: dict[int, list[str]] = {}
    for a in catalog.annotations(item_ids):
        captions.setdefault(a["item"], []).append(a["caption"])
    return captions
