"""The README's picture of the web page (docs/images/web.jpg): the demo library searched by
three example pictures of a calendar, drawn by another artist than the books' (Twemoji), at
1366 px wide.

    python scripts/web_screenshot.py [--demo sashie-demo] [--out docs/images/web.jpg]

Makes the demo first (as `sashie demo --no-serve` does: a few minutes on a laptop CPU) when
the folder has none, serves its library on a free local port and drives Chromium with
Playwright (the `test` extra; Debian's /usr/bin/chromium), as the browser tests do. The
screenshot is saved as a JPEG of quality 80 (about 200 KB).
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from sashie.app.demo import example_query, run_demo
from sashie.app.server import create_app
from sashie.eval.references import reference_pictures
from sashie.eval.world.artists import Artists
from sashie.eval.world.vocab import vocabulary

CONCEPT = "calendar"  # the demo's picture query (vocabulary().query_seen[3])
SIZE = (1366, 820)


def pictures(folder: Path) -> list[str]:
    """The demo's three query pictures of the concept (drawn again if missing)."""
    concept = next(c for c in vocabulary().concepts if c.en == CONCEPT)
    paths = [folder / "queries" / f"{CONCEPT}-{i}.png" for i in range(3)]
    if not all(p.is_file() for p in paths):
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path, picture in zip(paths, reference_pictures(Artists(), concept, 3, seed=1)):
            picture.save(path)
    return [str(p) for p in paths]


def serve(library: Path) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(library, example_query=example_query())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}/"


def screenshot(url: str, examples: list[str]) -> bytes:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
        page.request.get(f"{url}api/search?q=a+calendar&limit=1")  # the model loaded first
        page.goto(url)
        page.wait_for_selector("#libinfo:has-text('items')")
        page.set_input_files("#files", examples)
        page.click("#go")
        page.wait_for_selector("#status:has-text('results in')")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not page.evaluate(
            """() => [...document.querySelectorAll('.card img')].slice(0, 24)
                   .every((img) => img.classList.contains('loaded'))"""
        ):
            time.sleep(0.1)
        page.mouse.move(0, SIZE[1] - 1)  # no hover state in the picture
        shot = page.screenshot()
        browser.close()
    return shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("sashie-demo"), help="demo folder")
    parser.add_argument("--out", type=Path, default=Path("docs/images/web.jpg"))
    args = parser.parse_args()
    if not (args.demo / "library").is_dir():
        run_demo(args.demo)
    server, url = serve(args.demo / "library")
    try:
        shot = screenshot(url, pictures(args.demo))
    finally:
        server.should_exit = True
    Image.open(io.BytesIO(shot)).convert("RGB").save(args.out, "JPEG", quality=80, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB, {SIZE[0]} x {SIZE[1]}")


if __name__ == "__main__":
    main()
