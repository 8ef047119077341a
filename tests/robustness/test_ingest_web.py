"""Indexing from the web, against a hostile server: a manifest from another host may name only
web images, never local files; downloads refuse other schemes and redirects to them, and a
server that sends its bytes too slowly is cut off at a deadline."""

import json
import time

import pytest

from sashie import Library
from sashie.errors import BadInput
from sashie.sources import images, pages
from sashie.sources.images import fetch

from conftest import finishes, make_pages, web_server

FROM_THE_WEB = "not an http(s) URL (a manifest from the web may not name local files)"


@pytest.fixture
def web():
    """A local web server: (routes to fill, its base URL)."""
    with web_server() as served:
        yield served


def redirect(location):
    def answer(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def trickle(headers_too=False):
    """An answer that sends one byte every 0.2 s (for at most 20 s), the headers too if asked."""

    def answer(handler):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
        body = head if headers_too else b""
        if not headers_too:
            handler.wfile.write(head)
        try:
            for _ in range(100):
                handler.wfile.write(body[:1] or b"x")
                handler.wfile.flush()
                body = body[1:]
                time.sleep(0.2)
        except OSError:
            pass  # the client gave up

    return answer


def v2_manifest(base, images):
    """A v2 manifest with one canvas per (image id, service id)."""
    return {
        "@context": "http://iiif.io/api/presentation/2/context.json",
        "@id": f"{base}/manifest.json",
        "@type": "sc:Manifest",
        "sequences": [
            {
                "canvases": [
                    {
                        "@id": f"{base}/canvas/{i}",
                        "label": f"p. {i}",
                        "images": [
                            {"resource": {"@id": image, "service": {"@id": service}}}
                            if service
                            else {"resource": {"@id": image}}
                        ],
                    }
                    for i, (image, service) in enumerate(images)
                ]
            }
        ],
    }


def v3_manifest(base, image):
    body = {"id": image, "type": "Image"}
    annotation = {"type": "Annotation", "motivation": "painting", "body": body}
    canvas = {"id": f"{base}/canvas/0", "type": "Canvas"}
    canvas["items"] = [{"type": "AnnotationPage", "items": [annotation]}]
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/v3.json",
        "type": "Manifest",
        "items": [canvas],
    }


def test_a_manifest_from_the_web_may_not_name_local_files(tmp_path, web, tiny_spec):
    routes, base = web
    good, secret = make_pages(tmp_path / "pages", 2)
    routes["/img/good.png"] = good.read_bytes()
    missing = tmp_path / "pages" / "missing.png"
    named = [
        (f"{base}/img/good.png", f"{base}/iiif/0"),
        (str(secret), None),  # a picture on the indexing machine
        (str(missing), None),  # a path that does not exist: the same reason
        ("/etc/passwd", None),
        ("../../pages/page0001.png", None),
        (secret.as_uri(), None),  # file:///...
        ("", secret.as_uri()),  # the image only by its service, a local one
        ("", f"file://{tmp_path}/iiif"),
        (f"{base}/img/good.png", "/etc"),  # a good image with a local service
        ("ftp://127.0.0.1:9/page.png", None),
    ]
    routes["/manifest.json"] = json.dumps(v2_manifest(base, named)).encode()
    routes["/v3.json"] = json.dumps(v3_manifest(base, str(secret))).encode()

    with Library(tmp_path / "lib", create=True) as lib:
        report = lib.add([f"{base}/manifest.json", f"{base}/v3.json"], model=tiny_spec)
        pages = {row.page for row in lib.items()}
    assert pages == {f"{base}/img/good.png"}
    assert report.pages_indexed == 1
    reasons = [s.reason for s in report.skipped]
    assert len(reasons) == len(named), reasons  # all but the good one, and the v3 canvas
    assert all(r == FROM_THE_WEB or r == "image service not an http(s) URL" for r in reasons)
    # whether a named file exists is not told
    by_canvas = {s.uri.rsplit("#", 1)[-1]: s.reason for s in report.skipped}
    assert by_canvas["canvas=1"] == by_canvas["canvas=2"] == FROM_THE_WEB


def test_a_local_manifest_names_files_beside_it(tmp_path, monkeypatch, tiny_spec):
    book = tmp_path / "book"
    first, second, third = make_pages(book / "img", 3)
    manifest = book / "manifest.json"
    named = [("img/page0000.png", None), (str(second), None), (third.as_uri(), None)]
    manifest.write_text(json.dumps(v2_manifest("https://example.org", named)))
    monkeypatch.chdir(tmp_path)  # relative paths are the manifest's, not the working folder's

    with Library(tmp_path / "lib", create=True) as lib:
        report = lib.add([str(manifest)], model=tiny_spec, regions="whole")
        pages = {row.page for row in lib.items()}
    assert pages == {str(first), str(second)}
    assert [s.reason for s in report.skipped] == ["not an http(s) URL or a local path"]


def test_fetch_refuses_other_schemes_and_redirects_to_them(tmp_path, web):
    routes, base = web
    secret = tmp_path / "secret.txt"
    secret.write_text("a local secret")
    routes["/page.png"] = b"bytes of a page"
    routes["/moved"] = redirect(f"{base}/page.png")
    routes["/to-file"] = redirect(secret.as_uri())
    routes["/to-ftp"] = redirect("ftp://127.0.0.1:9/page.png")

    assert fetch(f"{base}/moved") == b"bytes of a page"  # redirects on the web are followed
    for url in (secret.as_uri(), "ftp://127.0.0.1:9/page.png", str(secret)):
        with pytest.raises(BadInput, match=r"^not an http\(s\) URL$"):
            fetch(url)
    with pytest.raises(BadInput, match=r"^redirected to a URL that is not http\(s\)$"):
        fetch(f"{base}/to-ftp")  # urllib would follow it
    with pytest.raises(BadInput, match=r"^unreachable URL \(HTTP 302\)$"):
        fetch(f"{base}/to-file")  # urllib refuses it itself


@pytest.mark.slow
def test_a_download_that_never_ends_is_cut_at_its_deadline(tmp_path, web, tiny_spec, monkeypatch):
    routes, base = web
    routes["/slow.png"] = trickle()
    routes["/slow-headers.png"] = trickle(headers_too=True)
    routes["/big.png"] = b"x" * 5000
    for path in ("/slow.png", "/slow-headers.png"):
        started = time.monotonic()
        with pytest.raises(BadInput, match=r"^download took longer than 1 s$"):
            finishes(10, lambda path=path: fetch(f"{base}{path}", deadline=1.0))
        assert time.monotonic() - started < 3
    with pytest.raises(BadInput, match=r"^download larger than 1000 bytes$"):
        fetch(f"{base}/big.png", max_bytes=1000)

    # a run uses the module's deadline
    monkeypatch.setattr(images, "DOWNLOAD_DEADLINE", 1.0)
    with Library(tmp_path / "lib", create=True) as lib:
        report = finishes(
            30, lambda: lib.add([f"{base}/slow.png"], model=tiny_spec, regions="whole")
        )
    assert [s.reason for s in report.skipped] == ["download took longer than 1 s"]


def test_a_manifest_on_the_internet_may_not_name_this_machines_network(
    tmp_path, web, tiny_spec, monkeypatch
):
    """Its images on 127.0.0.1 (or redirected there) are refused at the connection; the same
    manifest from an internal server (this one: 127.0.0.1) may name its own images."""
    routes, base = web
    (page,) = make_pages(tmp_path / "pages", 1)
    routes["/img/p.png"] = page.read_bytes()
    routes["/manifest.json"] = json.dumps(v2_manifest(base, [(f"{base}/img/p.png", None)])).encode()

    with Library(tmp_path / "internal", create=True) as lib:
        assert lib.add([f"{base}/manifest.json"], model=tiny_spec).pages_indexed == 1

    monkeypatch.setattr(pages, "is_public_host", lambda url: True)  # as if on the internet
    with Library(tmp_path / "public", create=True) as lib:
        report = lib.add([f"{base}/manifest.json"], model=tiny_spec)
    assert report.pages_indexed == 0
    assert [s.reason for s in report.skipped] == [images.PRIVATE_ADDRESS]
    with pytest.raises(BadInput, match="may not name this machine"):
        fetch(f"{base}/img/p.png", public_only=True)
    assert images.is_public_address("93.184.216.34") and not images.is_public_address("10.0.0.1")
    assert not images.is_public_address("169.254.169.254")  # a cloud's metadata service
    assert not images.is_public_address("::1") and not images.is_public_address("fe80::1%eth0")


def test_a_private_address_is_refused_before_connecting_open_port_or_closed(web):
    """The refusal comes before any connection, so its reason does not tell an open port of
    this machine from a closed one."""
    routes, base = web
    routes["/page.png"] = lambda handler: handler.send_error(404)
    reasons = []
    for url in (f"{base}/page.png", "http://127.0.0.1:9/page.png"):
        with pytest.raises(BadInput) as refused:
            fetch(url, public_only=True)
        reasons.append(str(refused.value))
    assert reasons[0] == reasons[1] == images.PRIVATE_ADDRESS
