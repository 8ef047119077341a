"""A library's own region detector: the `learned` network fine-tuned on boxes a curator drew
around a few illustrations of the collection (`sashie regions train`).

The boxes come as a folder of Pascal VOC files, a COCO JSON file, or a IIIF AnnotationPage
whose targets are canvases of the library's pages (read as hostile input:
sashie/regions/boxes.py; a canvas's page is fetched as indexing fetched it); or they were
drawn on the web page's view of a page and kept in the catalog (`drawn_boxes`). Every page given
is taken as boxed in full: what is not in a box is taught as "no illustration here", so box
every illustration of a page given. Training starts from the library's current detector (its
own, else the shipped one) and is saved in LIB/regions/learned/ (config.json,
model.safetensors, TRAINING.json); from then on the library indexes with it wherever
`learned` is asked for.
"""

from __future__ import annotations

import json
import math
import numbers
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BadInput, SashieError
from ..regions.boxes import MAX_COORDINATE, BoxedPage, CanvasBox, clip_box, read_boxes
from ..sources.images import decode_image, load_image, read_bytes
from ..sources.pages import indexed_page
from ..store.catalog import Box, ItemRow

FOLDER = Path("regions") / "learned"
ILLUSTRATION_WORDS = ("illustration", "figure", "picture", "image")  # labels taken by default
STEPS = 300
BATCH = 8
CROP = 256
LR = 1e-3
MAX_CANVAS_SIDE = 2000  # a canvas's page is read this large at most (the detector reads 640)
MAX_DRAWN = 200  # boxes drawn on one page
PageRow = tuple[int, str, str, dict]  # a catalog page: id, uri, source, metadata


def own_model(root: Path) -> Path | None:
    """The library's fine-tuned detector, when it has one (a library folder from elsewhere
    may not point it outside itself through a link)."""
    folder = root / FOLDER
    files = [folder.parent, folder, folder / "model.safetensors", folder / "config.json"]
    if any(path.is_symlink() for path in files):
        raise SashieError(f"{folder} is or holds a link; a library's region model is not followed")
    return folder if (folder / "model.safetensors").is_file() else None


def is_illustration(label: str, labels: Collection[str] | None) -> bool:
    """Whether a box's label names an illustration: one of `labels`, or by default any label
    holding one of ILLUSTRATION_WORDS (NDL-DocL's "4_illustration", COCO's "figure")."""
    if labels:
        return label in labels
    return any(word in label.lower() for word in ILLUSTRATION_WORDS)


@dataclass
class RegionTuning:
    pages: int
    boxes: int
    skipped: list[tuple[str, str]]
    steps: int
    seconds: float
    loss_first: float
    loss_last: float
    base: str  # the detector it started from
    folder: Path

    def summary(self) -> str:
        return (
            f"region detector tuned on {self.boxes} boxes of {self.pages} pages in "
            f"{self.seconds:.0f} s ({self.steps} steps, loss {self.loss_first:.3f} -> "
            f"{self.loss_last:.3f}); saved in {self.folder}; `sashie index` uses it for "
            "`--regions learned` and `--regions hybrid`"
            + (
                f"\n{len(self.skipped)} skipped (files, annotations or canvases)"
                if self.skipped
                else ""
            )
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder), "seconds": round(self.seconds, 1)}


def boxes_from(
    source: str | Path, library_pages: Callable[[], list[PageRow]] = list
) -> tuple[list[BoxedPage], list[tuple[str, str]]]:
    """The boxed pages of a VOC folder, a COCO file or a IIIF AnnotationPage (whose
    canvases are looked for in `library_pages`), and what was skipped."""
    pages, on_canvases, skipped = read_boxes(source)
    if on_canvases:
        pages = canvas_pages(on_canvases, library_pages(), skipped)
    if not pages:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise SashieError(f"no boxed pages in {source}" + (f" ({reasons})" if reasons else ""))
    return pages, skipped


def drawn_pages(
    drawn: dict[int, list[Box]],
    rows: list[ItemRow],
    picture: Callable[[ItemRow, int], Image.Image],
) -> tuple[list[BoxedPage], list[tuple[str, str]]]:
    """The pages a curator boxed on the web page (`drawn`, by page id; `rows` those pages),
    read with `picture` and the boxes scaled to what it gave; a page that cannot be read is
    skipped."""
    if not drawn:
        raise SashieError(
            "no boxes drawn on this library's pages yet: open a result on the web page and "
            "press Draw boxes, or give --boxes"
        )
    pages, skipped = [], []
    for row in rows:
        try:
            image = picture(row, MAX_CANVAS_SIDE)
        except BadInput as e:
            skipped.append((row.page[:200], str(e)))
            continue
        boxes = [("illustration", box) for box in drawn.get(row.page_id, [])]
        pages.append(_scaled_page(row.page, image, row.page_size, boxes))
    if not pages:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise SashieError(f"none of the boxed pages could be read ({reasons})")
    return pages, skipped


def checked_boxes(boxes: object, page_size: tuple[int, int]) -> list[Box]:
    """Boxes sent for a page (a request's field, hostile): at most MAX_DRAWN, each four
    finite numbers x0, y0, x1, y1 in page pixels, clipped to the page."""
    if not isinstance(boxes, list | tuple) or len(boxes) > MAX_DRAWN:
        raise BadInput(f"boxes must be a list of at most {MAX_DRAWN} boxes")
    checked = []
    for number, box in enumerate(boxes, 1):
        if not (
            isinstance(box, list | tuple | np.ndarray)
            and len(box) == 4
            and all(
                isinstance(v, numbers.Real)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and abs(float(v)) <= MAX_COORDINATE
                for v in box
            )
        ):
            raise BadInput(f"box {number} is not four numbers x0, y0, x1, y1 in page pixels")
        clipped = clip_box([float(v) for v in box], page_size)
        if clipped is None:
            raise BadInput(f"box {number} lies outside the page")
        checked.append(clipped)
    return checked


def tune_region_model(
    root: Path,
    pages: list[BoxedPage],
    skipped: list[tuple[str, str]],
    *,
    labels: Collection[str] | None = None,
    steps: int = STEPS,
    seed: int = 0,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> RegionTuning:
    """Fine-tune the library's detector on these boxed pages and save it (call under the
    library's write lock)."""
    from ..regions.learned import DEFAULT_MODEL, model_folder, save_model  # OpenCV, on use

    if not 1 <= steps <= 100_000:
        raise SashieError("--steps must be between 1 and 100000")
    base = own_model(root) or model_folder(DEFAULT_MODEL)
    started = time.perf_counter()
    net, config, boxes, losses = fine_tune(
        base, pages, labels=labels, steps=steps, seed=seed, progress=progress, on_step=on_step
    )
    seconds = time.perf_counter() - started
    folder = root / FOLDER
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    save_model(net, config, staging)
    report = RegionTuning(
        pages=len(pages),
        boxes=boxes,
        skipped=skipped,
        steps=steps,
        seconds=seconds,
        loss_first=float(np.mean(losses[:10])),
        loss_last=float(np.mean(losses[-10:])),
        base="library" if base == folder else DEFAULT_MODEL,
        folder=folder,
    )
    record = {k: v for k, v in report.as_dict().items() if k not in ("folder", "skipped")}
    record["trained"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (staging / "TRAINING.json").write_text(json.dumps(record, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return report


def canvas_pages(
    drawn: list[CanvasBox], library_pages: list[PageRow], skipped: list[tuple[str, str]]
) -> list[BoxedPage]:
    """The library's pages on the boxes' canvases, read, with the boxes in their pixels; a
    canvas that is none of its pages, or whose page cannot be read, goes to `skipped`."""
    on_canvas: dict[str, list[CanvasBox]] = {}
    for box in drawn:
        on_canvas.setdefault(box.canvas, []).append(box)
    held = {meta.get("canvas"): (uri, source, meta) for _, uri, source, meta in library_pages}
    pages = []
    for canvas, boxes in on_canvas.items():
        if canvas not in held:
            skipped.append((canvas[:200], "no page of the library is on this canvas"))
            continue
        ref = indexed_page(*held[canvas])
        try:
            image = decode_image(read_bytes(ref.uri, public_only=ref.public_only))
        except BadInput as e:
            skipped.append((canvas[:200], str(e)))
            continue
        width, height = ref.metadata.get("canvas_width"), ref.metadata.get("canvas_height")
        if not (type(width) is int and type(height) is int and width > 0 and height > 0):
            width, height = image.size  # no canvas size recorded: the canvas is the image
        image.thumbnail((MAX_CANVAS_SIDE, MAX_CANVAS_SIDE))
        corners = [(b.label, (x, y, x + w, y + h)) for b in boxes for x, y, w, h in [b.xywh]]
        pages.append(_scaled_page(canvas, image, (width, height), corners))
    return pages


def _scaled_page(
    name: str,
    image: Image.Image,
    drawn_on: tuple[float, float],
    boxes: Sequence[tuple[str, tuple[float, float, float, float]]],
) -> BoxedPage:
    """A page's picture and its labelled boxes, given in a space `drawn_on` wide and high,
    scaled to the picture and clipped to it (a box wholly outside is counted as dropped)."""
    sx, sy = image.width / drawn_on[0], image.height / drawn_on[1]
    kept, dropped = [], 0
    for label, (x0, y0, x1, y1) in boxes:
        clipped = clip_box([x0 * sx, y0 * sy, x1 * sx, y1 * sy], image.size)
        if clipped is None:
            dropped += 1
        else:
            kept.append((label, clipped))
    return BoxedPage(name, image.size, tuple(kept), dropped, picture=image)


def fine_tune(
    base: Path,
    pages: list[BoxedPage],
    *,
    labels: Collection[str] | None = None,
    steps: int = STEPS,
    seed: int = 0,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
):
    """The detector in `base` trained further on `pages`: (network, config, the number of
    illustration boxes taught, the loss curve)."""
    from ..regions.detector_training import train, training_sample
    from ..regions.learned import load_model

    chosen = [_illustration_boxes(page, labels) for page in pages]
    boxes = sum(map(len, chosen))
    if boxes == 0:
        raise SashieError(
            "none of the boxes given is labelled as an illustration; name their label with --label"
        )
    net, config = load_model(base)
    images, targets = [], []
    for page, page_boxes in zip(pages, chosen):
        image = page.picture if page.picture is not None else load_image(str(page.image))
        array, target = training_sample(image, page_boxes, config)
        images.append(array)
        targets.append(target)
    net, losses = train(
        images, targets, config, steps=steps, batch_size=BATCH, crop=CROP, lr=LR, seed=seed,
        net=net, progress=progress, on_step=on_step,
    )  # fmt: skip
    return net, config, boxes, losses


def _illustration_boxes(page: BoxedPage, labels: Collection[str] | None) -> list:
    return [box for label, box in page.boxes if is_illustration(label, labels)]
