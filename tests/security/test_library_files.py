"""A library folder may come from anyone: the names its manifest gives folders never lead out
of it, and the composer files it holds are data checked before use (one error line)."""

import json

import pytest
from safetensors.torch import load_file, save_file

from sashie.compose.settings import ComposeSettings
from sashie.errors import SashieError
from sashie.library import Asked, Filters, Library

from conftest import make_pages

QUICK = ComposeSettings(steps=3, batch=8, negatives=8, light=False)


@pytest.fixture
def small_library(tmp_path):
    make_pages(tmp_path / "pages", 16)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], regions="whole")
    return tmp_path / "lib"


def _set(library, change) -> None:
    path = library / "manifest.json"
    data = json.loads(path.read_text())
    change(next(iter(data["models"].values())))
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(active="../../elsewhere"),
        lambda m: m.update(active="/tmp"),
        lambda m: m.update(versions={"../x": {}}),
        lambda m: m.update(vectors="vectors/../../elsewhere"),
        lambda m: m.update(vectors="/etc"),
    ],
)
def test_a_manifest_name_that_leads_out_of_the_library_is_refused(small_library, change):
    _set(small_library, change)
    with pytest.raises(SashieError, match="not a plain name"):
        Library(small_library)


def test_a_composer_with_hostile_settings_or_shapes_is_one_error_line(small_library, tmp_path):
    lib = Library(small_library)
    folder = lib.composer.train(QUICK).folder
    picture = str(sorted((tmp_path / "pages").iterdir())[0])
    record_path, weights_path = folder / "composer.json", folder / "composer.safetensors"
    record = json.loads(record_path.read_text())
    weights = load_file(str(weights_path))
    hostile = [
        ({**record, "settings": {**record["settings"], "tokens": 10**6}}, weights),
        ({**record, "settings": {**record["settings"], "light_side": 10**6}}, weights),
        ({**record, "settings": {**record["settings"], "run": "rm -rf /"}}, weights),
        ({**record, "settings": "all"}, weights),
        (record, {k: v[..., :1] for k, v in weights.items()}),  # tensors of other sizes
        (record, {}),
    ]
    for bad_record, bad_weights in hostile:
        record_path.write_text(json.dumps(bad_record))
        save_file({k: v.contiguous() for k, v in bad_weights.items()}, str(weights_path))
        with pytest.raises(SashieError, match="cannot read the composer"):
            lib.query(Asked(images=[picture], modify="red", modify_method="tokens"))
    record_path.write_text("[1, 2]")  # not an object: no composer, and info still answers
    assert Library(small_library).info()["models"][0]["composers"] == {}


@pytest.mark.parametrize(
    "classes",
    [
        "not json {",  # garbage where the classes' JSON should be
        json.dumps([{"name": "cat\u202e"}]),  # a bidi override: would display as another text
        json.dumps([{"name": "a" * 5000}]),  # longer than any label file may hold
        json.dumps({"nested": [[[[]]]]}),  # not a list of classes
    ],
)
def test_a_damaged_label_set_in_a_library_is_one_error_line(small_library, classes):
    """The classes a library folder says it was labelled with are checked as a label file
    is: a search that asks for a label gets one error line; a plain search still works."""
    import sqlite3

    from sashie.classify.labelfile import LabelClass, LabelSet

    Library(small_library).labels.classify(LabelSet("s", (LabelClass("cat"), LabelClass("dog"))))
    with sqlite3.connect(small_library / "catalog.sqlite") as db:
        db.execute("UPDATE label_sets SET classes = ?", (classes,))
    lib = Library(small_library)
    assert len(lib.search("a picture", k=3)) == 3
    with pytest.raises(SashieError) as error:
        lib.search("a picture", where=Filters(label="cat"))
    assert "\n" not in str(error.value)


def test_a_version_text_file_that_is_damaged_or_misshapen_is_one_error_line(tmp_path, tiny_spec):
    """A version's tuned text tensors are loaded whenever its folder has them (an image
    version with Re-A too): garbage bytes or tensors of the wrong shape in a library someone
    sent give one error line, never a traceback or a half-changed model."""
    import torch

    from sashie.adapt.settings import AdaptSettings
    from sashie.adapt.version_files import TEXT_FILE

    make_pages(tmp_path / "pages", 8, seed=7)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:4], "zorblat")
    lib.annotations.add(items[4:], "quix")
    report = lib.versions.adapt(settings=AdaptSettings(min_steps=2, train_adapter=False))
    text_file = report.folder / TEXT_FILE
    state = {k: v.clone() for k, v in load_file(text_file).items()}  # not a map of the file
    name = next(iter(state))
    for damage in ("garbage", "shape"):
        if damage == "garbage":
            text_file.write_bytes(b"\x00not a tensor file" * 10)
        else:
            save_file({**state, name: torch.zeros(3, 3)}, text_file)
        with pytest.raises(SashieError, match=r"not a readable tensor file|does not fit"):
            Library(tmp_path / "lib").search("zorblat")


@pytest.mark.parametrize("metadata", ["[1, 2]", "not json {", '"a string"'])
def test_damaged_page_metadata_in_a_library_is_read_as_none(small_library, tmp_path, metadata):
    """What a catalog records of its pages is data from whoever sent the folder: metadata
    that is not a JSON object reads as empty. Items still list, and boxes drawn on canvases
    the library has none of give one error line, not a traceback."""
    import sqlite3

    with sqlite3.connect(small_library / "catalog.sqlite") as db:
        db.execute("UPDATE pages SET metadata = ?", (metadata,))
    lib = Library(small_library)
    assert all(row.metadata == {} for row in lib.items())
    annotations = tmp_path / "annotations.json"
    annotations.write_text(
        json.dumps(
            {
                "type": "AnnotationPage",
                "items": [{"target": "https://example.org/canvas/1#xywh=1,2,30,40"}],
            }
        )
    )
    with pytest.raises(SashieError, match="no page of the library is on this canvas") as error:
        lib.regions.train(annotations, steps=1)
    assert "\n" not in str(error.value)
