"""The HTTP server against hostile requests (issue 17): the token never in a URL, Host and
security headers, bodies refused before they are read, uploads bounded in pixels, request
fields that gave 500s, what /original serves, and links taken from manifest data."""

import asyncio
import io
import json
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sashie.app import http_protocol, server
from sashie.app.api import search as search_api
from sashie.app.decoding import DecodeBudget
from sashie.library import Library
from sashie.store.catalog import Catalog

from conftest import indexed_world, serving


@pytest.fixture(scope="module")
def world_library(tmp_path_factory):
    return indexed_world(tmp_path_factory.mktemp("guarded"), pages=8, seed=41)[1]


@pytest.fixture(scope="module")
def client(world_library):
    return TestClient(server.create_app(world_library))


@pytest.fixture(scope="module")
def an_item(world_library):
    with Library(world_library) as lib:
        return int(lib.item_ids()[0])


def png(size: tuple[int, int], colour="white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


# --- the access token ---------------------------------------------------------------------


def test_the_token_is_refused_in_a_url_and_accepted_in_a_header_or_the_cookie(world_library):
    app = server.create_app(world_library, token="s3cret")
    fresh = TestClient(app)
    assert fresh.get("/api/info?token=s3cret").status_code == 401
    assert fresh.get("/api/items/1/thumbnail?token=s3cret").status_code == 401
    assert fresh.get("/api/info", headers={"X-Sashie-Token": "s3cret"}).status_code == 200
    cookie = TestClient(app, cookies={server.COOKIE: "s3cret"})
    assert cookie.get("/api/info").status_code == 200


def test_the_token_cookie_is_secure_over_https_or_behind_a_proxy_that_says_so(world_library):
    app = TestClient(server.create_app(world_library, token="s3cret"), follow_redirects=False)
    plain = app.get("/?token=s3cret").headers["set-cookie"]
    proxied = app.get("/?token=s3cret", headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in plain.lower() and "Secure" in proxied.headers["set-cookie"]
    direct = TestClient(
        server.create_app(world_library, token="s3cret"),
        base_url="https://testserver",
        follow_redirects=False,
    )
    assert "Secure" in direct.get("/?token=s3cret").headers["set-cookie"]


@pytest.mark.parametrize("given", ["é", "☃" * 40, "s3cre", ""])
def test_a_wrong_or_non_ascii_token_is_a_401_not_a_crash(world_library, given):
    guarded = TestClient(server.create_app(world_library, token="s3cret"))
    header = given.encode("utf-8")  # raw bytes, as they arrive over HTTP
    assert guarded.get("/api/info", headers={"X-Sashie-Token": header}).status_code == 401
    cookie = f"{server.COOKIE}=".encode() + header
    assert guarded.get("/api/info", headers={"Cookie": cookie}).status_code == 401


# --- Host and security headers ---------------------------------------------------------------


def test_a_local_server_answers_only_to_local_host_names(world_library):
    app = server.create_app(world_library, allowed_hosts=server.allowed_hosts("127.0.0.1"))
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    assert local.get("/api/info").status_code == 200
    assert local.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    assert local.get("/api/info", headers={"Host": "[::1]:8000"}).status_code == 200
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", "[::1"):
        assert local.get("/api/info", headers={"Host": host}).status_code == 400, host
    assert server.allowed_hosts("0.0.0.0") is None  # every name: the token guards it then
    assert server.allowed_hosts("0.0.0.0", ["search.example.org"]) == [
        "0.0.0.0",
        "search.example.org",
    ]


def test_every_response_carries_security_headers(client, an_item):
    for response in (
        client.get("/"),
        client.get("/api/info"),
        client.get(f"/api/items/{an_item}/thumbnail"),
        client.get("/api/items/999999999"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy and "script-src 'unsafe-inline'" not in policy


# --- bodies and uploads --------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_it_is_sent(world_library):
    """A 200 MB upload: the answer (413) comes after the headers, not after the body."""
    with serving(server.create_app(world_library)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=x\r\n"
                + f"Content-Length: {200 * 2**20}\r\n\r\n".encode()
                + b"--x\r\n"
            )
            answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def _raw(url: str, request: bytes, wait: float = 10.0) -> str:
    """What a real server answers to these bytes, until it closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer.decode("latin-1")


def test_a_url_of_a_megabyte_gets_a_414_not_a_reset(world_library):
    with serving(server.create_app(world_library)) as url:
        answer = _raw(url, b"GET /api/search?q=" + b"a" * 2**20 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith("HTTP/1.1 414"), answer[:200]
        assert "too long" in answer
        huge_header = b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n"
        assert _raw(url, huge_header).startswith("HTTP/1.1 431")
        assert httpx.get(url + "/api/info").status_code == 200  # the server goes on


def test_a_client_that_never_finishes_its_headers_is_let_go(world_library, monkeypatch):
    monkeypatch.setattr(http_protocol, "HEAD_SECONDS", 0.5)
    with serving(server.create_app(world_library)) as url:
        started = time.monotonic()
        answer = _raw(url, b"GET /api/info HTTP/1.1\r\nHost: x\r\n", wait=20)
        assert answer.startswith("HTTP/1.1 408") and time.monotonic() - started < 10
        with httpx.Client() as http:  # a kept-alive connection still serves requests
            assert http.get(url + "/api/info").status_code == 200
            time.sleep(0.8)
            assert http.get(url + "/api/info").status_code == 200


def test_many_large_example_images_are_refused_from_their_headers(client):
    """20 PNGs of 6300 x 6300 (a 773 KB request that decodes to 3.5 GB)."""
    big = png((6300, 6300))
    files = [("images", (f"{i}.png", big, "image/png")) for i in range(20)]
    answer = client.post("/api/search", files=files)
    assert answer.status_code == 400 and "pixels" in answer.json()["error"]


def test_example_images_wait_for_the_servers_decoding_budget_then_get_a_503(client):
    """Memory for decoding is bounded across requests: when other searches hold the whole
    budget, a search with images waits, then is told to come back (issue 39, point 5)."""
    served = client.app.state.served
    kept = served.decoding
    served.decoding = DecodeBudget(total=64 * 2**20, wait=0.2)
    files = [("images", ("a.png", png((2000, 2000)), "image/png"))]
    try:
        served.decoding.used = served.decoding.total  # others are decoding
        answer = client.post("/api/search", files=files)
        assert answer.status_code == 503 and answer.headers["retry-after"].isdigit()
        assert "busy" in answer.json()["error"]
        served.decoding.used = 0
        assert client.post("/api/search", files=files).status_code == 200
        assert served.decoding.used == 0  # what a search held is given back
    finally:
        served.decoding = kept


def test_a_search_waits_for_the_budget_rather_than_failing_when_it_frees_in_time():
    budget = DecodeBudget(total=100, wait=5.0)
    order = []

    async def search(name: str, amount: int, seconds: float) -> None:
        async with budget.held(amount):
            order.append((name, budget.used))
            await asyncio.sleep(seconds)

    async def both() -> None:
        await asyncio.gather(search("first", 80, 0.2), search("second", 80, 0))

    # in a thread of its own: a browser test's driver may hold this thread's event loop
    runner = threading.Thread(target=asyncio.run, args=(both(),))
    runner.start()
    runner.join(30)
    assert order == [("first", 80), ("second", 80)] and budget.used == 0


def test_an_example_image_is_kept_at_query_size():
    data = png((3000, 2000), "gray")
    image = search_api._decode_upload("big.png", data)
    assert min(image.size) == search_api.QUERY_SIDE and image.size[0] > image.size[1]


# --- request fields that gave tracebacks -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x" * 300,  # a name too long for the file system
        "~nosuchuser",  # expanduser raised
        "~nosuchuser/crane.png",
        "/etc/passwd",
        "crane\x00.png",
    ],
)
def test_query_text_never_reaches_the_file_system(client, text):
    answer = client.post("/api/search", data={"text": text})
    assert answer.status_code == 200, answer.text


def test_an_enormous_weight_is_an_error_line(client):
    answer = client.post("/api/search", data={"text": "1" + "0" * 40 + "*crane"})
    assert answer.status_code == 400 and "weight" in answer.json()["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/adapt", '{"ratio": NaN}'),
        ("/api/adapt", '{"ratio": Infinity}'),
        ("/api/marks", '{"items": [NaN], "keep": true}'),
        ("/api/marks", '{"items": [9223372036854775808], "keep": true}'),
        ("/api/annotations", '{"items": [99999999999999999999999], "caption": "x"}'),
        ("/api/feedback", '{"query": "x", "relevant": [1], "offset": 1000000000000}'),
        ("/api/feedback", '{"query": "x", "relevant": [18446744073709551616]}'),
        ("/api/marks", "[" * 100_000),
        (
            "/api/classify",
            '{"labels": {"name": "s", "classes": [{"name": "a"}]}, "other_below": NaN}',
        ),
        (
            "/api/classify",
            '{"labels": {"name": "s", "classes": [{"name": "a"}]}, "other_below": -1}',
        ),
        (
            "/api/classify",
            '{"labels": {"name": "s", "classes": [{"name": "a"}]}, "other_below": 1e999}',
        ),
        (
            "/api/classify",
            '{"labels": {"name": "s", "classes": [{"name": "a"}]}, "other_below": "x"}',
        ),
    ],
)
def test_hostile_json_is_a_4xx_with_one_line(client, path, body):
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert isinstance(answer.json()["error"], str)


def test_huge_ids_and_offsets_in_urls_are_4xx(client):
    for path in (
        "/api/nosuch",
        "/api/items/9223372036854775808",
        "/api/items/99999999999999999999/thumbnail",
        "/api/items/-1/page",
    ):
        assert 400 <= client.get(path).status_code < 500, path
    key = client.post("/api/search", data={"text": "crane"}).json()["query"]
    assert client.get(f"/api/search/{key}", params={"offset": 10**12}).status_code == 422


# --- what /original serves -------------------------------------------------------------------


def test_original_serves_only_an_image(tmp_path):
    """A page file replaced by something else (or a library naming /etc/passwd) is not
    served, whatever its name says."""
    (tmp_path / "pages").mkdir()
    page = tmp_path / "pages" / "page.png"
    page.write_bytes(png((64, 96), "tan"))
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], regions="whole")
        item = int(lib.item_ids()[0])
    client = TestClient(server.create_app(tmp_path / "lib"))
    served = client.get(f"/api/items/{item}/original")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    page.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert client.get(f"/api/items/{item}/original").status_code == 404


def test_links_from_manifest_data_are_http_only(tmp_path):
    """Metadata a manifest gave (canvas id, image service) becomes a link only when it is an
    http(s) URL: never `javascript:`, `file:` or a protocol-relative `//host`."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "p.png").write_bytes(png((64, 96), "tan"))
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], regions="whole")
        item = int(lib.item_ids()[0])
    catalog = Catalog(tmp_path / "lib" / "catalog.sqlite")
    hostile = {
        "canvas": "javascript:alert(document.cookie)",
        "image_service": "//evil.example/iiif",
    }
    catalog.db.execute("UPDATE pages SET metadata = ?", (json.dumps(hostile),))
    catalog.close()
    links = TestClient(server.create_app(tmp_path / "lib")).get(f"/api/items/{item}").json()
    assert "canvas" not in links["links"] and "iiif_region" not in links["links"]
    assert links["links"]["original"] == f"/api/items/{item}/original"


# --- many users at once ----------------------------------------------------------------------


def test_searches_run_side_by_side_and_info_is_not_held_up(world_library, monkeypatch):
    """Two searches are inside the vector scan at once, and /api/info answers while they
    are (the old server ranked under one lock: the second search and info waited)."""
    from sashie.search.ranking import VectorIndex

    both_inside = threading.Barrier(2, timeout=20)
    info_done = threading.Event()
    scan = VectorIndex.search

    def slow_scan(self, *args, **kwargs):
        both_inside.wait()  # broken (an error) unless the other search gets here too
        info_done.wait(20)
        return scan(self, *args, **kwargs)

    app = server.create_app(world_library)
    client = TestClient(app)
    client.post("/api/search", data={"text": "warm up"})  # the vectors are loaded
    monkeypatch.setattr(VectorIndex, "search", slow_scan)
    answers: list[int] = []

    def one_search(text: str) -> None:
        answers.append(client.post("/api/search", data={"text": text}).status_code)

    searches = [threading.Thread(target=one_search, args=(t,)) for t in ("crane", "pine")]
    for thread in searches:
        thread.start()
    time.sleep(0.5)
    info = client.get("/api/info")
    info_done.set()
    for thread in searches:
        thread.join(30)
    assert info.status_code == 200
    assert answers == [200, 200]


def test_a_search_outlives_many_other_users_searches(client):
    first = client.post("/api/search", data={"text": "crane", "limit": "10"}).json()
    for i in range(100):  # the old server forgot every search after 64 others
        client.post("/api/search", data={"text": f"tree {i}", "limit": "1"})
    items = [r["item"] for r in first["results"]]
    refined = client.post(
        "/api/feedback", json={"query": first["query"], "relevant": items[:2], "limit": 5}
    )
    assert refined.status_code == 200
    assert client.get(f"/api/search/{first['query']}").status_code == 200


def test_search_memory_forgets_by_age_and_by_size():
    import numpy as np

    from sashie.app.api.served import Expired, SearchMemory, StoredQuery
    from sashie.library import Filters
    from sashie.search.query import Query

    def stored() -> StoredQuery:
        return StoredQuery(Query(np.ones(512, np.float32), None, ()), Filters(), "base")

    by_age = SearchMemory(ttl=0.2)
    key = by_age.remember(stored())
    assert by_age.recall(key)
    time.sleep(0.3)
    with pytest.raises(Expired):
        by_age.recall(key)

    size = stored().nbytes
    by_size = SearchMemory(max_bytes=3 * size)
    keys = [by_size.remember(stored()) for _ in range(3)]
    by_size.recall(keys[0])  # used: the least recently used is now keys[1]
    by_size.remember(stored())
    assert len(by_size) == 3
    by_size.recall(keys[0])
    with pytest.raises(Expired):
        by_size.recall(keys[1])


def test_one_client_searching_without_end_expires_nobody_elses_searches(client):
    """Issue 39: one client's 30,000 searches expired everyone's ids. Each client now keeps
    at most its own share; the others' searches stay, and so do its newest."""
    import numpy as np

    from sashie.app.api.served import Expired, SearchMemory, StoredQuery
    from sashie.library import Filters
    from sashie.search.query import Query

    def stored() -> StoredQuery:
        return StoredQuery(Query(np.ones(512, np.float32), None, ()), Filters(), "base")

    size = stored().nbytes
    memory = SearchMemory(max_bytes=100 * size, per_client=10 * size)
    theirs = memory.remember(stored(), "192.0.2.7")
    mine = [memory.remember(stored(), "192.0.2.66") for _ in range(1000)]
    assert memory.recall(theirs) and memory.recall(mine[-1])
    with pytest.raises(Expired):
        memory.recall(mine[0])
    assert len(memory) == 11

    # the search routes remember each search for the client that made it
    first = client.get("/api/search", params={"q": "a page"}).json()["query"]
    for _ in range(3):
        client.get("/api/search", params={"q": "a page"})
    assert client.get(f"/api/search/{first}").status_code == 200
