from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_clip import build_tiny_clip


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory) -> Path:
    """What the machine measures (the scan's precisions) is remembered in the test run's own
    folder, never the user's."""
    folder = tmp_path_factory.mktemp("machine-cache")
    os.environ["SASHIE_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIP saved in Hugging Face format, loaded as a user's model is."""
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_spec(tiny_clip) -> str:
    return f"hf:{tiny_clip}"


def make_pages(folder: Path, count: int, *, size=(96, 128), seed: int = 0) -> list[Path]:
    """Small distinct page images: a coloured paper with a shape on it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = np.full((size[1], size[0], 3), rng.integers(0, 256, 3), np.uint8)
        x, y = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        pixels[y : y + size[1] // 3, x : x + size[0] // 3] = rng.integers(0, 256, 3)
        path = folder / f"page{i:04d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def pages(tmp_path) -> Path:
    make_pages(tmp_path / "pages", 12)
    return tmp_path / "pages"


def run_cli(*args, check: bool = True, input: str | None = None):
    """The real `sashie` command line, run in this process (fast: the model stays imported);
    `input` is what a person would type."""
    from click.testing import CliRunner

    from sashie.app.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    if check and result.exit_code != 0:
        raise AssertionError(f"sashie {args} failed ({result.exit_code}):\n{result.stderr}")
    return result


def start_cli_process(*args: str, **kwargs) -> subprocess.Popen:
    """The `sashie` command as its own process, for tests that interrupt it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a suite started in the background (`cmd &`) inherits an ignored SIGINT, and Python then
    # installs no Ctrl-C handler: give the child the default, as a terminal would
    return subprocess.Popen(
        [sys.executable, "-m", "sashie", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def stop_at_first_commit(process: subprocess.Popen, lib: Path, stop, seconds: float = 120) -> int:
    """Call `stop()` as soon as the index run in `process` has committed vectors to `lib`;
    the rows committed then (0 if it ended or timed out first)."""
    import sqlite3
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        try:
            db = sqlite3.connect(f"file:{lib}/catalog.sqlite?mode=ro", uri=True)
            found = db.execute("SELECT rows FROM vector_sets").fetchone()
            db.close()
            rows = found[0] if found else 0
        except sqlite3.Error:
            rows = 0
        if rows > 0:
            stop()
            return rows
        time.sleep(0.005)
    return 0


def finishes(seconds: float, work):
    """What `work()` returns, failing (not hanging) when it takes longer than `seconds`."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _RoutesHandler(http.server.BaseHTTPRequestHandler):
    """Answers from the server's `routes`: a path gives bytes, or a function that answers."""

    def do_GET(self):
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
        elif callable(route):
            route(self)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(route)))
            self.end_headers()
            self.wfile.write(route)

    def log_message(self, *args):
        pass


@contextmanager
def web_server(routes: dict | None = None) -> Iterator[tuple[dict, str]]:
    """A local web server in a thread: (its routes, to fill; its base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RoutesHandler)
    server.daemon_threads = True
    server.routes = {} if routes is None else routes
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.routes, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def cli_json(*args: str) -> dict:
    return json.loads(run_cli(*args).stdout)


def indexed_world(root: Path, *, pages: int, seed: int) -> tuple[Path, Path]:
    """A small evaluation world (400 x 600 pages) indexed with layout + whole and the demo
    model: (world folder, library folder)."""
    from sashie.eval.world import make_world
    from sashie.library import Library

    world = make_world(root / "world", pages=pages, seed=seed, size=(400, 600))
    with Library(root / "lib", create=True) as lib:
        lib.add([str(world / "pages")], regions="layout,whole")
    return world, root / "lib"


@contextmanager
def serving(app) -> Iterator[str]:
    """The app served by uvicorn on a free local port, in a thread: its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from sashie.app.http_protocol import uvicorn_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_settings()
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"  # for a person to look at
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (the `browser` tests)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(
            "the browser tests need Debian's Chromium: scripts/test installs it "
            "(or apt-get install chromium); scripts/test --fast leaves them out",
            pytrace=False,
        )
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
