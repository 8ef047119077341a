import functools
import http.server
import json
import threading

import pytest

from sashie import Library
from sashie.sources.pages import expand_sources

from conftest import make_pages


@pytest.fixture
def web(tmp_path):
    """A local HTTP server over tmp_path/www, as an IIIF provider would be."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def v2_manifest(base, names):
    return {
        "@context": "http://iiif.io/api/presentation/2/context.json",
        "@id": f"{base}/v2/manifest.json",
        "@type": "sc:Manifest",
        "label": "源氏物語 巻一",
        "sequences": [
            {
                "canvases": [
                    {
                        "@id": f"{base}/v2/canvas/{i}",
                        "@type": "sc:Canvas",
                        "label": f"{i + 1}丁",
                        "width": 96,
                        "height": 128,
                        "images": [
                            {
                                "resource": {
                                    "@id": f"{base}/img/{name}",
                                    "service": {"@id": f"{base}/iiif/{i}"},
                                }
                            }
                        ],
                    }
                    for i, name in enumerate(names)
                ]
            }
        ],
    }


def v3_manifest(base, names):
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/v3/manifest.json",
        "type": "Manifest",
        "label": {"ja": ["伊勢物語"], "en": ["Tales of Ise"]},
        "items": [
            {
                "id": f"{base}/v3/canvas/{i}",
                "type": "Canvas",
                "label": {"none": [f"p. {i + 1}"]},
                "items": [
                    {
                        "type": "AnnotationPage",
                        "items": [
                            {
                                "type": "Annotation",
                                "motivation": "painting",
                                "body": {
                                    "id": f"{base}/img/{name}",
                                    "type": "Image",
                                    "service": [
                                        {"id": f"{base}/iiif3/{i}", "type": "ImageService3"}
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
            for i, name in enumerate(names)
        ],
    }


def test_iiif_v2_and_v3_manifests_over_http(tmp_path, web, tiny_spec):
    root, base = web
    names = [p.name for p in make_pages(root / "img", 3)]
    (root / "v2").mkdir()
    (root / "v2" / "manifest.json").write_text(json.dumps(v2_manifest(base, names)))
    (root / "v3").mkdir()
    (root / "v3" / "manifest.json").write_text(json.dumps(v3_manifest(base, names[:2])))

    skips = []
    refs = list(
        expand_sources(
            [f"{base}/v2/manifest.json", f"{base}/v3/manifest.json"], lambda *s: skips.append(s)
        )
    )
    assert not skips and len(refs) == 5
    assert refs[0].uri == f"{base}/img/{names[0]}"
    assert refs[0].metadata == {
        "manifest": f"{base}/v2/manifest.json",
        "manifest_label": "源氏物語 巻一",
        "canvas": f"{base}/v2/canvas/0",
        "canvas_index": 0,
        "canvas_label": "1丁",
        "canvas_width": 96,
        "canvas_height": 128,
        "image_service": f"{base}/iiif/0",
    }
    assert refs[4].metadata["canvas"] == f"{base}/v3/canvas/1"
    assert refs[4].metadata["canvas_label"] == "p. 2"
    assert refs[4].metadata["manifest_label"] == "伊勢物語 / Tales of Ise"
    assert refs[4].metadata["image_service"] == f"{base}/iiif3/1"

    lib = Library(tmp_path / "lib", create=True)
    report = lib.add(
        [f"{base}/v2/manifest.json", f"{base}/v3/manifest.json"], model=tiny_spec, regions="whole"
    )
    # the v3 manifest's two pages are the v2 manifest's first two images: one page each
    assert report.pages_seen == 3 and report.vectors_added == 3 and not report.skipped
    hits = lib.search("a page", k=3)
    assert {h.metadata["canvas_label"] for h in hits} == {"1丁", "2丁", "3丁"}


def test_malformed_and_unreachable_manifests_are_skipped_with_reasons(tmp_path, web):
    root, base = web
    (root / "broken.json").write_text("{ not json")
    (root / "other.json").write_text(json.dumps({"hello": "world"}))
    local = tmp_path / "local.json"
    local.write_text(
        json.dumps(
            {"@context": "http://iiif.io/api/presentation/2/context.json", "sequences": "wrong"}
        )
    )
    skips = []
    refs = list(
        expand_sources(
            [f"{base}/broken.json", f"{base}/other.json", f"{base}/missing.json", str(local)],
            lambda *s: skips.append(s),
        )
    )
    assert refs == []
    reasons = [reason for _, _, reason in skips]
    assert reasons[0].startswith("malformed manifest (not JSON")
    assert reasons[1].startswith("malformed manifest (not a IIIF")
    assert reasons[2] == "unreachable URL (HTTP 404)"
    assert reasons[3].startswith("malformed manifest (v2 without")


def test_folders_and_path_lists(tmp_path):
    make_pages(tmp_path / "books" / "vol1", 2)
    make_pages(tmp_path / "books" / "vol2" / "deep", 1)
    (tmp_path / "books" / "notes.txt").write_text("not an image")
    make_pages(tmp_path / "books" / ".thumbnails", 1)  # hidden: left out
    (tmp_path / "books" / "vol1" / "UPPER.JPG").write_bytes(b"")  # extension case ignored
    refs = list(expand_sources([str(tmp_path / "books")], lambda *s: None))
    names = [r.uri.removeprefix(str(tmp_path / "books") + "/") for r in refs]
    assert names == [
        "vol1/UPPER.JPG",
        "vol1/page0000.png",
        "vol1/page0001.png",
        "vol2/deep/page0000.png",
    ]

    listing = tmp_path / "books" / "list.txt"
    listing.write_text(
        "# my pages\nvol1/page0001.png\n\n/elsewhere/missing.png\nhttps://example.org/a.jpg\n"
    )
    refs = list(expand_sources([str(listing)], lambda *s: None))
    assert [r.uri for r in refs] == [
        str(tmp_path / "books/vol1/page0001.png"),
        "/elsewhere/missing.png",
        "https://example.org/a.jpg",
    ]
    assert all(r.source == str(listing) for r in refs)


def test_a_page_named_again_from_the_library_reaches_public_hosts_unless_allowed(monkeypatch):
    """`reindex --regions` names the library's pages again from its catalog, which may have
    been changed: whatever source it records, a page's URL may not make this machine fetch
    from its own network unless SASHIE_PRIVATE_HOSTS allows the host."""
    from sashie.sources.pages import indexed_page

    monkeypatch.delenv("SASHIE_PRIVATE_HOSTS", raising=False)
    public = indexed_page("https://img.example.org/1.jpg", "https://example.org/m.json", {})
    assert public.public_only
    inside = indexed_page("http://10.0.0.5/1.jpg", "http://10.0.0.5/m.json", {})
    assert inside.public_only  # the catalog's word that it came from your network is not enough
    monkeypatch.setenv("SASHIE_PRIVATE_HOSTS", "intranet.example, 10.0.0.5")
    assert not indexed_page("http://10.0.0.5/1.jpg", "/elsewhere", {}).public_only
    assert not indexed_page("/scans/1.jpg", "/scans", {"canvas": "x"}).public_only
