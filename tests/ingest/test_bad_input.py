"""Every kind of bad input of the issue in one folder: indexed without a crash, reasons kept."""

import io
import json

import numpy as np
from PIL import Image

from conftest import cli_json, run_cli


def write_bad_inputs(folder):
    folder.mkdir()
    good = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 90, 3), np.uint8))
    buffer = io.BytesIO()
    good.save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    (folder / "good.jpg").write_bytes(jpeg)
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image")
    Image.new("1", (17000, 16000)).save(folder / "bomb.png")  # 272 Mpx of one bit: a small file
    good.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)).save(
        folder / "sixteen.png"
    )
    palette = good.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.gif", transparency=0)
    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "blue")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    rgba = good.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    good.save(folder / "rotated.jpg", exif=exif)
    good.save(folder / "page.tiff")
    good.save(folder / "page.webp")
    good.save(folder / "page.bmp")
    (folder / "list.txt").write_text(
        f"{folder / 'good.jpg'}\nmissing.jpg\nhttp://127.0.0.1:9/unreachable.jpg\n"
    )
    (folder / "manifest.json").write_text("{ this is not a manifest")


def test_bad_inputs_are_skipped_with_reasons_and_the_rest_indexed(tmp_path, tiny_spec):
    folder = tmp_path / "inbox"
    write_bad_inputs(folder)
    lib = tmp_path / "lib"
    done = run_cli(
        "index",
        "--regions",
        "whole",
        lib,
        folder,
        folder / "list.txt",
        folder / "manifest.json",
        "--model",
        tiny_spec,
        "-q",
    )
    assert "Traceback" not in done.stderr
    assert "skipped" in done.stderr and "not an image" in done.stderr

    info = cli_json("info", lib, "--json")
    reasons = {s["uri"].rsplit("/", 1)[-1]: s["reason"] for s in info["skipped_inputs"]}
    assert reasons["truncated.jpg"].startswith("truncated or corrupt image")
    assert reasons["zero.png"] == "empty file"
    assert reasons["text.jpg"] == "not an image"
    assert reasons["bomb.png"].startswith("too many pixels (17000x16000")
    assert reasons["missing.jpg"] == "file not found"
    assert reasons["unreachable.jpg"].startswith("unreachable URL")
    assert reasons["manifest.json"].startswith("malformed manifest")
    assert info["skipped"] == 7
    indexed = {
        "good.jpg",
        "cmyk.jpg",
        "sixteen.png",
        "palette.gif",
        "animated.gif",
        "alpha.png",
        "rotated.jpg",
        "page.tiff",
        "page.webp",
        "page.bmp",
    }
    assert info["pages"] == info["items"] == len(indexed)
    assert info["models"][0]["vectors"] == len(indexed)

    human = run_cli("info", lib).stdout
    assert "truncated or corrupt image" in human and "empty file" in human

    # EXIF orientation is applied: the rotated page is 120 wide and 90 high
    results = cli_json("search", lib, "page", "--k", "50", "--json")["results"]
    boxes = {r["page"].rsplit("/", 1)[-1]: r["bbox"] for r in results}
    assert boxes["rotated.jpg"] == [0, 0, 120, 90]
    assert boxes["good.jpg"] == [0, 0, 90, 120]
    assert set(boxes) == indexed


def test_conversions_give_sensible_rgb():
    from sashie.sources.images import to_rgb

    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert to_rgb(sixteen).getpixel((0, 0)) == (255, 255, 255)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)  # transparent is paper
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_wrong_use_gets_one_line_and_a_nonzero_exit(tmp_path, tiny_spec, pages):
    lib = tmp_path / "lib"
    cases = [
        ("search", tmp_path / "nowhere", "crane"),
        ("index", lib, tmp_path / "no-such-folder", "--model", tiny_spec),
        ("index", lib, pages, "--model", "nonsense-model"),
        ("index", lib, pages, "--model", tiny_spec, "--regions", "nonsense"),
    ]
    for args in cases:
        done = run_cli(*args, check=False)
        assert done.exit_code != 0, args
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)

    run_cli("index", "--regions", "whole", lib, pages, "--model", tiny_spec, "-q")
    for args in [
        ("search", lib),
        ("search", lib, "--image", tmp_path / "missing.jpg"),
        ("search", lib, "--image", pages / "page0000.png", "--dims", "zero"),
        ("export", lib, tmp_path / "out", "--model", "hf:elsewhere"),
    ]:
        done = run_cli(*args, check=False)
        assert done.exit_code != 0, args
        assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert json.loads(run_cli("info", lib, "--json").stdout)["pages"] == 12
