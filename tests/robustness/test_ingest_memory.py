"""Memory per page: a reader thread needs a few bytes per pixel of the page it decodes (the
decoded RGB page itself, no full-size copies), and very large pages are decoded one at a time
across reader threads."""

import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sashie import Library
from sashie.ingest import cutting

from conftest import make_pages

MEASURE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from PIL import Image, ImageDraw
    from sashie import Library

    def page(path, side):
        image = Image.new("RGB", (side, side), "white")
        draw = ImageDraw.Draw(image)
        for i in range(6):  # framed pictures, for layout to find
            x, y = (i % 3) * side // 3 + side // 12, (i // 3) * side // 2 + side // 8
            box, ink = (x, y, x + side // 6, y + side // 4), (30, 30 + 20 * i, 40)
            draw.rectangle(box, outline=ink, width=side // 300)
            draw.line(box, fill=ink, width=side // 300)
        path.parent.mkdir(parents=True)
        image.save(path)

    def peak():
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:", 1)[1].split()[0]) * 1024

    folder, model, side = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    page(folder / "small" / "small.png", 800)
    page(folder / "large" / "large.png", side)
    with Library(folder / "lib", create=True) as lib:
        lib.add([str(folder / "small")], model=model, workers=1)
        baseline = peak()
        report = lib.add([str(folder / "large")], model=model, workers=1)
    print(json.dumps({"above": peak() - baseline, "items": report.items_added}))
    """
)


@pytest.mark.slow
def test_a_large_page_needs_a_few_bytes_per_pixel(tmp_path, tiny_spec):
    side = 6000
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), tiny_spec, str(side)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{figures['above'] / side**2:.2f} bytes per pixel")
    assert figures["items"] >= 2  # the page and the pictures layout found on it
    # the decoded page takes 4 bytes a pixel (Pillow keeps RGB in 32 bits); copies took 10
    assert figures["above"] / side**2 < 6


@pytest.mark.slow
def test_very_large_pages_are_decoded_one_at_a_time(tmp_path, tiny_spec, monkeypatch):
    make_pages(tmp_path / "pages", 6)  # 96 x 128: 12,288 pixels each
    decode = cutting.decode_image
    lock = threading.Lock()
    now = most = 0

    def slow_decode(*args, **kwargs):
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        time.sleep(0.3)
        try:
            return decode(*args, **kwargs)
        finally:
            with lock:
                now -= 1

    monkeypatch.setattr(cutting, "decode_image", slow_decode)
    for threshold, expected in ((10_000, 1), (100_000, 2)):
        monkeypatch.setattr(cutting, "LARGE_PAGE_PIXELS", threshold)
        most = 0
        with Library(tmp_path / f"lib{threshold}", create=True) as lib:
            lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole", workers=2)
        assert most == expected, (threshold, most)
