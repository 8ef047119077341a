"""A library folder sent by another institution, or one tampered with: each kind of damage
the hostile test found gives one clear error line or a library that works around it, never a
traceback or an HTTP 500, never a read or a deletion outside the folder; `sashie info` and
`sashie check` tell what is damaged, and `check --repair` repairs what it safely can
(issue 39, point 3)."""

import json
import random
import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient

from sashie.adapt.settings import AdaptSettings
from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Library

from conftest import make_pages, run_cli

QUICK = AdaptSettings(epochs=2, batch=4, min_steps=2)
SECRET = "the password file"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """A small library with an adapted version (active) and ANN indexes of both versions."""
    root = tmp_path_factory.mktemp("damaged")
    make_pages(root / "pages", 16, seed=5)
    with Library(root / "lib", create=True) as lib:
        lib.add([str(root / "pages")], regions="whole")
        items = lib.item_ids().tolist()
        lib.annotations.add(items[:4], "zorblat")
        lib.annotations.add(items[4:8], "quix")
        lib.versions.adapt(settings=QUICK)
        lib.reindex(kind="hnsw", version="base")
        lib.reindex(kind="hnsw")
    return root / "lib"


def _model_folder(lib):
    return next((lib / "vectors").iterdir())


def _version_folder(lib):
    return lib / "adapters" / _model_folder(lib).name / "v1"


def _sql(lib, *statements):
    db = sqlite3.connect(lib / "catalog.sqlite")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _garble(path):
    path.write_bytes(random.Random(path.name).randbytes(max(path.stat().st_size, 64)))


def _cut(path, share=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def _link_out(path, outside):
    """Replace `path` by a link to a copy of it (or to the secret) outside the library."""
    target = outside / path.name
    if path.is_dir():
        shutil.rmtree(path)
        target = outside
    elif path.exists():
        shutil.copy(path, target)
        path.unlink()
    path.symlink_to(target)


def _manifest(lib, change):
    path = lib / "manifest.json"
    data = json.loads(path.read_text())
    change(data, next(iter(data["models"].values())))
    path.write_text(json.dumps(data))


DAMAGE = {
    "a manifest nested 200,000 deep": lambda lib, out: (lib / "manifest.json").write_text(
        '{"models": ' + "[" * 200_000 + "]" * 200_000 + "}"
    ),
    "a manifest with a huge dimension": lambda lib, out: _manifest(
        lib, lambda data, model: model.update(dim=10**12)
    ),
    "a manifest whose model is a list": lambda lib, out: _manifest(
        lib, lambda data, model: data["models"].update({k: [] for k in data["models"]})
    ),
    "vectors linked out of the library": lambda lib, out: _link_out(_model_folder(lib), out),
    "a catalog of random bytes": lambda lib, out: _garble(lib / "catalog.sqlite"),
    "a truncated catalog": lambda lib, out: _cut(lib / "catalog.sqlite"),
    "a catalog linked elsewhere": lambda lib, out: _link_out(lib / "catalog.sqlite", out),
    "the items table a view": lambda lib, out: _sql(
        lib,
        "ALTER TABLE items RENAME TO kept_items",
        "CREATE VIEW items AS SELECT * FROM kept_items",
    ),
    "vector rows of 10,000,000": lambda lib, out: _sql(lib, "UPDATE vector_sets SET rows=1e7"),
    "vector rows as text": lambda lib, out: _sql(lib, "UPDATE vector_sets SET rows='many'"),
    "extreme boxes": lambda lib, out: _sql(
        lib, "UPDATE items SET x0=-9223372036854775808, y0=-1e18, x1=1e300, y1='wide'"
    ),
    "pages of no sane size": lambda lib, out: _sql(lib, "UPDATE pages SET width=-5, height=1e11"),
    "a garbage items.i64": lambda lib, out: _garble(_model_folder(lib) / "items.i64"),
    "a truncated vectors.f16": lambda lib, out: _cut(_model_folder(lib) / "vectors.f16"),
    "a garbage adapter": lambda lib, out: _garble(_version_folder(lib) / "adapter.safetensors"),
    "an adapter with an oversized header": lambda lib, out: (
        _version_folder(lib) / "adapter.safetensors"
    ).write_bytes((2**60).to_bytes(8, "little") + b"{}"),
    "a truncated examples file": lambda lib, out: _cut(
        _version_folder(lib) / "examples.safetensors"
    ),
    "a garbage version.json": lambda lib, out: _garble(_version_folder(lib) / "version.json"),
    "a version.json with a hostile ratio": lambda lib, out: (
        _version_folder(lib) / "version.json"
    ).write_text(json.dumps({"settings": {"ratio": "all"}})),
    "a garbage text encoder": lambda lib, out: _garble(
        _version_folder(lib) / "text-encoder.safetensors"
    ),
    "truncated version vectors": lambda lib, out: _cut(_version_folder(lib) / "vectors.f16"),
    "garbage version item ids": lambda lib, out: _garble(_version_folder(lib) / "items.i64"),
    "a garbage ANN index": lambda lib, out: _garble(_version_folder(lib) / "ann.index"),
    "a loss curve linked to a secret": lambda lib, out: (
        (_version_folder(lib) / "loss.png").unlink(missing_ok=True),
        (_version_folder(lib) / "loss.png").symlink_to(out / "secret.txt"),
    ),
}


@pytest.fixture(params=list(DAMAGE), ids=list(DAMAGE))
def damaged(request, whole, tmp_path):
    """A copy of the whole library with one kind of damage, and the folder beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "keep.me").write_bytes(b"x" * 10_000)
    lib = tmp_path / "lib"
    shutil.copytree(whole, lib, symlinks=True)
    assert (_version_folder(lib) / "ann.index").is_file()  # what a variant damages exists
    DAMAGE[request.param](lib, outside)
    return lib, outside


def _one_line_or_works(result) -> str:
    """The command's error line, or "" when it worked; never a traceback."""
    if result.exit_code == 0:
        return ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_damage_is_one_line_or_read_around_never_a_traceback_or_a_500(damaged):
    lib, outside = damaged
    info_error = _one_line_or_works(run_cli("info", lib, "--json", check=False))
    _one_line_or_works(run_cli("search", lib, "zorblat", "--json", check=False))
    if not info_error:  # info tells what is damaged, and check says the same
        told = json.loads(run_cli("info", lib, "--json").stdout)["damaged"]
        checked = run_cli("check", lib, "--json", check=False)
        assert told and json.loads(checked.stdout)["problems"]
    try:
        app = server.create_app(lib)
    except SashieError:  # the library cannot be opened: `sashie serve` says so in one line
        app = None
    if app is not None:
        client = TestClient(app, raise_server_exceptions=False)
        for url in (
            "/api/info",
            "/api/search?q=zorblat",
            "/api/items/1",
            "/api/items/1/thumbnail",
            "/api/items/1/page",
            "/api/adapt",
            "/api/adapt/loss/v1",
        ):
            answer = client.get(url)
            assert answer.status_code != 500, (url, answer.text)
            assert SECRET not in answer.text
            if answer.status_code >= 400:
                assert set(answer.json()) >= {"error"}
    assert (outside / "keep.me").is_file() and (outside / "secret.txt").read_text() == SECRET


REPAIRABLE = [
    "a garbage adapter",
    "a truncated examples file",
    "a garbage version.json",
    "truncated version vectors",
    "garbage version item ids",
    "a garbage ANN index",
]


@pytest.mark.parametrize("kind", REPAIRABLE)
def test_check_repairs_what_it_safely_can_and_the_library_searches_again(whole, tmp_path, kind):
    lib = tmp_path / "lib"
    shutil.copytree(whole, lib, symlinks=True)
    annotations = Library(lib).annotations.list()
    DAMAGE[kind](lib, tmp_path)
    found = run_cli("check", lib, check=False)
    assert found.exit_code == 1 and "--repair would" in found.stdout
    repaired = run_cli("check", lib, "--repair", "--json")
    assert json.loads(repaired.stdout)["left"] == 0
    assert run_cli("check", lib).exit_code == 0
    with Library(lib) as again:
        assert again.search("zorblat", k=3)
        assert again.annotations.list() == annotations  # what people made stays


def test_a_sound_library_checks_clean(whole):
    result = run_cli("check", whole)
    assert "no problems found" in result.stderr
    assert json.loads(run_cli("info", whole, "--json").stdout)["damaged"] == []
