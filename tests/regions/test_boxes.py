"""Boxes people drew, read from Pascal VOC files as hostile input (sashie/regions/boxes.py)."""

import pytest
from PIL import Image

from sashie.errors import BadInput
from sashie.regions.boxes import MAX_XML_BYTES, read_voc, read_voc_folder


def voc(objects: str, size: str = "<size><width>200</width><height>100</height></size>") -> str:
    return f"<annotation><filename>/etc/passwd</filename>{size}{objects}</annotation>"


def box(name: str, x0, y0, x1, y1) -> str:
    return (
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (200, 100), "white").save(tmp_path / "page_1.jpg")
    return tmp_path


def test_a_voc_file_gives_its_page_and_labelled_boxes(folder):
    (folder / "page_1.xml").write_text(
        voc(box("4_illustration", 10, 20, 60.4, 80) + box("2_handwritten", 150, 0, 170, 100))
    )
    page = read_voc(folder / "page_1.xml")
    assert page.image == folder / "page_1.jpg"  # the file beside it, never <filename>
    assert page.size == (200, 100)
    assert page.boxes == (
        ("4_illustration", (10, 20, 60, 80)),
        ("2_handwritten", (150, 0, 170, 100)),
    )
    assert page.labelled({"4_illustration"}) == [(10, 20, 60, 80)]


def test_boxes_outside_the_image_are_clipped_or_dropped(folder):
    (folder / "page_1.xml").write_text(
        voc(box("a", -50, -5, 30, 40) + box("b", 250, 10, 300, 50) + box("c", 90, 90, 80, 30))
    )
    page = read_voc(folder / "page_1.xml")
    assert page.boxes == (("a", (0, 0, 30, 40)), ("c", (80, 30, 90, 90)))
    assert page.dropped == 1


@pytest.mark.parametrize(
    "text, reason",
    [
        (
            '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]>'
            + voc(box("&y;", 1, 1, 5, 5)),
            "DOCTYPE or entities",
        ),
        (voc(box("a", 1, 1, "1e308", 5)), "out of range"),
        (voc(box("a", 1, 1, "nan", 5)), "out of range"),
        (voc(box("a", 1, 1, "12abc", 5)), "not a number"),
        (voc("<object><name>a</name></object>"), "no name or no bndbox"),
        (voc(box("a", 1, 1, 5, 5), "<size><width>9999</width><height>1</height></size>"), "says"),
        ("<annotation><object>", "not well-formed"),
    ],
)
def test_hostile_or_broken_files_are_refused_with_a_reason(folder, text, reason):
    (folder / "page_1.xml").write_text(text)
    with pytest.raises(BadInput, match=reason):
        read_voc(folder / "page_1.xml")


def test_a_huge_file_is_refused_without_being_parsed(folder):
    (folder / "page_1.xml").write_bytes(b"<annotation>" + b" " * MAX_XML_BYTES + b"</annotation>")
    with pytest.raises(BadInput, match="over 4 MB"):
        read_voc(folder / "page_1.xml")


def test_a_folder_reads_what_it_can_and_says_why_not_the_rest(folder, tmp_path_factory):
    (folder / "page_1.xml").write_text(voc(box("4_illustration", 1, 1, 50, 50)))
    (folder / "lonely.xml").write_text(voc(box("a", 1, 1, 5, 5)))  # no image beside it
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    Image.new("RGB", (200, 100)).save(elsewhere / "linked.png")
    (folder / "linked.png").symlink_to(elsewhere / "linked.png")
    (folder / "linked.xml").write_text(voc(box("a", 1, 1, 5, 5)))
    pages, skipped = read_voc_folder(folder)
    assert [p.image.name for p in pages] == ["page_1.jpg"]
    reasons = dict(skipped)
    assert "no page image beside lonely.xml" in reasons["lonely.xml"]
    assert "is a link" in reasons["linked.xml"]


def coco(images, annotations, categories=({"id": 1, "name": "illustration"},)) -> str:
    import json

    return json.dumps(
        {"images": list(images), "annotations": list(annotations), "categories": list(categories)}
    )


def test_a_coco_file_gives_its_pages_and_boxes_clipped(folder):
    from sashie.regions.boxes import read_boxes, read_coco

    (folder / "boxes.json").write_text(
        coco(
            [{"id": 7, "file_name": "page_1.jpg", "width": 200, "height": 100}],
            [
                {"image_id": 7, "bbox": [10, 20, 50, 60], "category_id": 1},
                {"image_id": 7, "bbox": [180, 50, 100, 100], "category_id": 1},  # clipped
                {"image_id": 7, "bbox": [500, 500, 10, 10], "category_id": 1},  # outside
            ],
        )
    )
    pages, skipped = read_coco(folder / "boxes.json")
    assert skipped == [] and len(pages) == 1
    assert pages[0].boxes == (
        ("illustration", (10, 20, 60, 80)),
        ("illustration", (180, 50, 200, 100)),
    )
    assert pages[0].dropped == 1 and pages[0].size == (200, 100)
    assert read_boxes(folder / "boxes.json")[0] == pages


@pytest.mark.parametrize(
    "file_name",
    ["/etc/passwd.jpg", "../page_1.jpg", "sub/../../page_1.jpg", "page_1.xml", "", "a\\b.jpg"],
)
def test_a_coco_file_never_names_a_path_outside_its_folder(folder, file_name):
    from sashie.regions.boxes import read_coco

    (folder / "boxes.json").write_text(coco([{"id": 1, "file_name": file_name}], []))
    pages, skipped = read_coco(folder / "boxes.json")
    assert pages == [] and len(skipped) == 1


def test_a_coco_image_through_a_link_or_with_bad_numbers_is_skipped(folder, tmp_path_factory):
    from sashie.regions.boxes import read_coco

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    Image.new("RGB", (10, 10)).save(elsewhere / "secret.jpg")
    (folder / "linked").symlink_to(elsewhere)
    (folder / "boxes.json").write_text(
        coco(
            [{"id": 1, "file_name": "linked/secret.jpg"}, {"id": 2, "file_name": "page_1.jpg"}],
            [{"image_id": 2, "bbox": [0, 0, 1e300, 5]}],
        )
    )
    pages, skipped = read_coco(folder / "boxes.json")
    assert pages == [] and [name for name, _ in skipped] == ["linked/secret.jpg", "page_1.jpg"]
    for bad in ("[1, 2]", '{"images": 5}', "{" * 100_000, "nan"):
        (folder / "bad.json").write_text(bad)
        with pytest.raises(BadInput):
            read_coco(folder / "bad.json")


def test_a_coco_file_with_ids_of_any_shape_is_read_or_skipped_never_a_crash(folder):
    from sashie.regions.boxes import read_coco

    (folder / "boxes.json").write_text(
        coco(
            [{"id": [1], "file_name": "page_1.jpg"}, {"id": 2, "file_name": "page_1.jpg"}],
            [
                {"image_id": [1], "bbox": [0, 0, 5, 5], "category_id": {"x": 1}},
                {"image_id": {"a": 2}, "bbox": [0, 0, 5, 5]},
                {"image_id": 2, "bbox": [1, 2, 10, 20], "category_id": [1]},
            ],
            categories=[{"id": [1], "name": "x"}, {"id": 1, "name": "illustration"}],
        )
    )
    pages, skipped = read_coco(folder / "boxes.json")
    assert [p.boxes for p in pages] == [(), (("illustration", (1, 2, 11, 22)),)]
    assert skipped == []


def test_a_iiif_annotation_page_gives_canvas_boxes_and_says_why_not_the_rest(tmp_path):
    """IIIF Presentation 3 (target a string or a SpecificResource), a v2 AnnotationList, and
    hostile annotations: each unusable one is skipped with its reason, never a crash."""
    import json

    from sashie.regions.boxes import CanvasBox, read_boxes, read_canvas_boxes

    canvas = "https://example.org/canvas/1"
    selector = {"type": "FragmentSelector", "value": "xywh=pixel:10,20,30,40"}
    items = [
        {"type": "Annotation", "target": f"{canvas}#xywh=1,2,3,4"},
        {
            "body": [{"type": "TextualBody", "value": "crane"}],
            "target": {"source": {"id": canvas, "type": "Canvas"}, "selector": [selector]},
        },
        {"target": f"{canvas}#xywh=percent:1,2,3,4"},
        {"target": f"{canvas}#xywh=1,2,nan,4"},
        {"target": f"{canvas}#xywh=1,2,1e308,4"},
        {"target": f"{canvas}#xywh=1,2,0,4"},
        {"target": canvas},
        {"target": {"source": ["not", "a", "canvas"], "selector": selector}},
        {"target": 7},
        "not an object",
    ]
    page = tmp_path / "boxes.json"
    page.write_text(json.dumps({"type": "AnnotationPage", "items": items}))
    boxes, skipped = read_canvas_boxes(page)
    assert read_boxes(page) == ([], boxes, skipped)
    assert boxes == [
        CanvasBox(canvas, "illustration", (1, 2, 3, 4)),
        CanvasBox(canvas, "crane", (10, 20, 30, 40), ("crane",)),
    ]
    assert [name for name, _ in skipped] == [f"annotation {n}" for n in range(3, 11)]
    assert "percent" in skipped[0][1] and "empty" in skipped[3][1]

    v2 = tmp_path / "list.json"
    v2.write_text(
        json.dumps(
            {
                "@type": "sc:AnnotationList",
                "resources": [
                    {
                        "resource": {"@type": "cnt:ContentAsText", "chars": "a screen"},
                        "on": {"full": canvas, "selector": {"value": "xywh=5,6,7,8"}},
                    }
                ],
            }
        )
    )
    assert read_canvas_boxes(v2) == (
        [CanvasBox(canvas, "a screen", (5, 6, 7, 8), ("a screen",))],
        [],
    )
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": []}))
    assert read_boxes(coco)[1] == [] and read_boxes(tmp_path)[1] == []
    with pytest.raises(BadInput, match="AnnotationPage"):
        read_canvas_boxes(coco)
