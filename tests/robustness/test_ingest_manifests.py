"""Malformed IIIF manifests, in every shape a hostile tester tried: each is a skip with its
reason (the manifest's, or one canvas's), never an exception that stops the run."""

import json

import pytest

from sashie import Library

from conftest import make_pages, run_cli

V2 = "http://iiif.io/api/presentation/2/context.json"
V3 = "http://iiif.io/api/presentation/3/context.json"


def v2(canvases, **manifest):
    sequences = [{"canvases": canvases}]
    return {"@context": V2, "@type": "sc:Manifest", "sequences": sequences} | manifest


def v2_canvas(resource, **canvas):
    return {"@id": "https://example.org/c", "images": [{"resource": resource}]} | canvas


def v3(items, **manifest):
    return {"@context": V3, "type": "Manifest", "items": items} | manifest


def v3_canvas(body, **canvas):
    annotation = {"type": "Annotation", "body": body}
    return {"id": "https://example.org/c", "items": [{"items": [annotation]}]} | canvas


def deep(depth):
    return "[" * depth + "]" * depth


# Each shape is a function of a good image's path, giving the manifest's JSON text.
MALFORMED = {
    "v2 image id a number": lambda good: v2([v2_canvas({"@id": 5})]),
    "v2 image id a list": lambda good: v2([v2_canvas({"@id": [good]})]),
    "v2 image id an object": lambda good: v2([v2_canvas({"@id": {"id": good}})]),
    "v2 service a number": lambda good: v2([v2_canvas({"service": 5})]),
    "v2 service id a number": lambda good: v2([v2_canvas({"service": {"@id": 7}})]),
    "v2 service a list of junk": lambda good: v2([v2_canvas({"service": [None, 3]})]),
    "v2 canvases null": lambda good: v2(None),
    "v2 canvases a number": lambda good: v2(7),
    "v2 canvases strings and nulls": lambda good: v2(["canvas", None, 3]),
    "v2 images a number": lambda good: v2([{"images": 5}]),
    "v2 images of strings": lambda good: v2([{"images": ["a", "b"]}]),
    "v2 sequences an object": lambda good: v2([]) | {"sequences": {"canvases": []}},
    "v3 items a number": lambda good: v3(5),
    "v3 canvas items a number": lambda good: v3([{"items": 5}]),
    "v3 annotation items an object": lambda good: v3([{"items": [{"items": {"a": 1}}]}]),
    "v3 body a number": lambda good: v3([v3_canvas(5)]),
    "v3 body id an object": lambda good: v3([v3_canvas({"id": {"x": 1}, "type": "Image"})]),
    "v3 body id a number": lambda good: v3([v3_canvas({"id": 12, "type": "Image"})]),
    "v3 service a number": lambda good: v3([v3_canvas({"type": "Image", "service": 5})]),
    "a JSON list": lambda good: [v2([v2_canvas({"@id": good})])],
    "not IIIF": lambda good: {"@context": 5, "label": "x"},
    "a good canvas beside bad ones": lambda good: v2(
        [v2_canvas({"@id": good}), v2_canvas({"@id": 5}), None, {"images": {}}]
    ),
}
RAW = {
    "arrays nested 200,000 deep": lambda good: deep(200_000),
    "a label nested 100,000 deep": lambda good: (
        json.dumps(v2([v2_canvas({"@id": good})]))[:-1] + ', "label": ' + deep(100_000) + "}"
    ),
}


@pytest.mark.parametrize("shape", [*MALFORMED, *RAW])
def test_a_malformed_manifest_is_a_skip_not_a_crash(tmp_path, tiny_spec, shape):
    [good] = make_pages(tmp_path / "pages", 1)
    text = RAW[shape](str(good)) if shape in RAW else json.dumps(MALFORMED[shape](str(good)))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(text)
    with Library(tmp_path / "lib", create=True) as lib:
        report = lib.add([str(manifest), str(good)], model=tiny_spec, regions="whole")
    reasons = [s.reason for s in report.skipped]
    assert reasons and all(r.startswith("malformed ") for r in reasons), reasons
    assert report.pages_indexed == 1  # the image named beside it


# Odd but harmless values: the page is indexed, and its metadata holds strings.
ODD = {
    "labels of odd types": lambda good: v2(
        [v2_canvas({"@id": good}, label=[None, 3, {"@value": [1]}, {"en": {"x": [True]}}])],
        label=5.5,
    ),
    "manifest and canvas ids of odd types": lambda good: v2(
        [v2_canvas({"@id": good}, **{"@id": {"a": 1}})], **{"@id": [1, 2]}
    ),
    "v3 labels of odd types": lambda good: v3(
        [v3_canvas({"id": good, "type": "Image"}, label={"en": 3}, id=None)], label=[{}]
    ),
}


@pytest.mark.parametrize("shape", ODD)
def test_odd_labels_and_ids_still_index_the_page(tmp_path, tiny_spec, shape):
    [good] = make_pages(tmp_path / "pages", 1)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(ODD[shape](str(good))))
    with Library(tmp_path / "lib", create=True) as lib:
        report = lib.add([str(manifest)], model=tiny_spec, regions="whole")
        [row] = lib.items()
    assert report.pages_indexed == 1 and not report.skipped
    meta = row.metadata
    assert meta["manifest"] == str(manifest)
    assert meta["canvas"] in (None, "https://example.org/c")
    for key in ("manifest_label", "canvas_label"):
        assert isinstance(meta[key], str)


def test_sashie_index_skips_every_malformed_manifest(tmp_path, tiny_spec):
    [good] = make_pages(tmp_path / "pages", 1)
    names = []
    for i, shape in enumerate(MALFORMED):
        names.append(tmp_path / f"manifest{i}.json")
        names[-1].write_text(json.dumps(MALFORMED[shape](str(good))))
    done = run_cli("index", tmp_path / "lib", *names, good, "--model", tiny_spec, "-q")
    assert "Traceback" not in done.stderr
    assert "malformed manifest" in done.stderr
