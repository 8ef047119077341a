"""Local files that are not what they seem: FIFOs and devices that never end, symbolic-link
loops, dangling links and folders that cannot be read. Each is a skip with its reason; none
hangs a run or is silently left out."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from sashie import Library
from sashie.errors import BadInput
from sashie.sources.images import read_bytes
from sashie.sources.pages import expand_sources

from conftest import finishes, make_pages


@pytest.fixture
def fifo(tmp_path):
    """A FIFO named like a page; a reader stuck on it is let go at the end of the test."""
    path = tmp_path / "pages" / "pipe.png"
    path.parent.mkdir()
    os.mkfifo(path)
    yield path
    try:  # a reader blocked in open() gets an empty file instead of waiting forever
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody was waiting


def test_fifos_and_devices_are_skipped_not_waited_on(tmp_path, tiny_spec, fifo):
    make_pages(tmp_path / "pages", 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{fifo}\n/dev/zero\n{tmp_path / 'pages' / 'page0000.png'}\n")
    with Library(tmp_path / "lib", create=True) as lib:
        report = finishes(
            30, lambda: lib.add([str(listing), str(fifo.parent)], model=tiny_spec, regions="whole")
        )
    reasons = {s.uri: s.reason for s in report.skipped}
    assert reasons == {str(fifo): "not a regular file", "/dev/zero": "not a regular file"}
    assert report.pages_indexed == 2


def test_reading_a_device_or_fifo_stops_at_once(fifo):
    for path in ("/dev/zero", "/dev/urandom", str(fifo)):
        with pytest.raises(BadInput, match=r"^not a regular file$"):
            finishes(5, lambda path=path: read_bytes(path, max_bytes=1000))


def skips_of(folder):
    skips = []
    refs = list(expand_sources([str(folder)], lambda *skip: skips.append(skip)))
    return [r.uri for r in refs], {uri: reason for uri, _, reason in skips}


def test_links_that_lead_nowhere_or_in_circles_are_skipped_with_reasons(tmp_path):
    books = tmp_path / "books"
    make_pages(books / "vol1", 1)
    make_pages(tmp_path / "elsewhere", 1)
    (books / "vol1" / "loop").symlink_to(books)  # a folder inside itself
    (books / "self.png").symlink_to(books / "self.png")  # a link to itself
    (books / "gone.png").symlink_to(tmp_path / "deleted.png")
    (books / "linked.png").symlink_to(tmp_path / "elsewhere" / "page0000.png")  # a good link
    (books / "other").symlink_to(tmp_path / "elsewhere")
    (books / ".hidden-loop").symlink_to(books)  # hidden: left out, as hidden files are

    pages, reasons = finishes(10, lambda: skips_of(books))
    assert pages == [str(books / "linked.png"), str(books / "vol1" / "page0000.png")]
    assert reasons == {
        str(books / "vol1" / "loop"): "symbolic link loop",
        str(books / "self.png"): "symbolic link loop",
        str(books / "gone.png"): "dangling symbolic link",
        str(books / "other"): "symbolic link to a folder (not followed: name the folder itself)",
    }


def drop_root_powers():
    """Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, root too is refused a mode-000 folder."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for capability in (1, 2):
        if prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def test_an_unreadable_folder_is_skipped_with_its_reason(tmp_path):
    books = tmp_path / "books"
    make_pages(books / "open", 1)
    make_pages(books / "locked", 1)
    (books / "locked").chmod(0)
    script = (
        "import json, sys; from test_ingest_files import skips_of; "
        "print(json.dumps(skips_of(sys.argv[1])))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(books)],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(__file__),
            env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
            preexec_fn=drop_root_powers if os.geteuid() == 0 else None,
            timeout=60,
        )
    except subprocess.SubprocessError as e:
        if "preexec_fn" not in str(e):
            raise
        pytest.skip("running as root, without the right to drop capabilities")
    finally:
        (books / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr
    pages, reasons = json.loads(done.stdout)
    assert pages == [str(books / "open" / "page0000.png")]
    assert reasons == {str(books / "locked"): "unreadable folder (permission denied)"}
