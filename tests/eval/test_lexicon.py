"""The readers of real language resources (sashie/eval/lexicon/), on small files written here
in each resource's own format (no text of the resources themselves)."""

import lzma
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sashie.errors import SashieError
from sashie.eval.lexicon import jmdict, openclipart, wordnet

WORDNET_LINES = [
    "  1 This is a made-up licence header, as the real files start with one.\n",
    "00000100 03 n 01 thing 0 000 | a made-up root\n",
    "00000200 05 n 02 wader 0 wading_bird 0 001 @ 00000100 n 0000 | a bird that walks in "
    'water; "waders stood in the marsh"\n',
    "00000300 05 n 01 crane 0 002 @ 00000200 n 0000 ~ 00000400 n 0000 | a tall wader\n",
    "00000400 05 n 01 whooper 0 001 @i 00000300 n 0000 | a loud crane\n",
    "00000500 00 s 01 tall(p) 0 000 | great in height\n",
    "not a synset line at all\n",
    "00000600 05 n 03 two 0 001 @ 00000100 n 0000 | says three words, gives one\n",
]


def test_wordnet_synsets_words_hypernyms_and_glosses(tmp_path):
    (tmp_path / "data.noun").write_text("".join(WORDNET_LINES[:5] + WORDNET_LINES[6:]))
    (tmp_path / "data.adj").write_text(WORDNET_LINES[5])
    synsets = wordnet.read_synsets("na", root=tmp_path)
    assert set(synsets) == {"n00000100", "n00000200", "n00000300", "n00000400", "a00000500"}
    wader = synsets["n00000200"]
    assert wader.words == ("wader", "wading bird") and wader.hypernyms == ("n00000100",)
    assert wader.gloss == "a bird that walks in water"  # the example is not the gloss
    assert synsets["n00000300"].hypernyms == ("n00000200",)  # ~ (a hyponym) is not above it
    assert synsets["n00000400"].hypernyms == ("n00000300",)  # an instance of
    assert synsets["a00000500"].words == ("tall",)  # a satellite adjective, its mark dropped
    whooper = synsets["n00000400"]
    assert wordnet.hypernym_words(synsets, whooper, depth=5) == ["crane", "wader", "thing"]
    with pytest.raises(SashieError, match="wordnet-base"):
        wordnet.read_synsets("v", root=tmp_path)


def small_jmdict(path):
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE Entry (idseq INTEGER NOT NULL UNIQUE);
        CREATE TABLE Kanji (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT);
        CREATE TABLE Kana (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT, nokanji BOOLEAN);
        CREATE TABLE Sense (ID INTEGER PRIMARY KEY, idseq INTEGER);
        CREATE TABLE SenseGloss (sid INTEGER, lang TEXT, gend TEXT, text TEXT);
        INSERT INTO Entry VALUES (20), (10), (30);
        INSERT INTO Kanji VALUES (1, 10, '鶴'), (2, 10, '田鶴');
        INSERT INTO Kana VALUES (1, 10, 'つる', 0), (2, 10, 'たず', 0), (3, 20, 'まつ', 0);
        INSERT INTO Sense VALUES (1, 10), (2, 10), (3, 20), (4, 30);
        INSERT INTO SenseGloss VALUES (1, 'eng', NULL, 'crane'), (1, 'eng', NULL, 'tall bird'),
            (2, 'eng', NULL, 'long life'), (3, 'eng', NULL, 'pine'), (4, 'ger', NULL, 'Wort');
        """
    )
    db.commit()
    db.close()


def test_jmdict_entries_from_the_compressed_database(tmp_path):
    small_jmdict(tmp_path / "jamdict.db")
    (tmp_path / "pkg").mkdir()
    with lzma.open(tmp_path / "pkg" / "jamdict.db.xz", "wb") as out:
        out.write((tmp_path / "jamdict.db").read_bytes())
    database = jmdict.decompressed(tmp_path / "pkg" / "jamdict.db.xz", tmp_path / "work")
    assert jmdict.decompressed(tmp_path / "pkg" / "jamdict.db.xz", tmp_path / "work") == database
    found = list(jmdict.entries(database))
    senses = (("crane", "tall bird"), ("long life",))
    crane = jmdict.Entry(10, ("鶴", "田鶴"), ("つる", "たず"), senses)
    assert found == [crane, jmdict.Entry(20, (), ("まつ",), (("pine",),))]  # 30: no English
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(SashieError, match="not a JMdict database"):
        list(jmdict.entries(tmp_path / "junk.db"))


def test_jmdict_not_installed_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(jmdict, "PACKAGE", "no_such_package_here")
    with pytest.raises(SashieError, match="pip install jamdict-data"):
        jmdict.installed_database(tmp_path)


SVG = """<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 20010904//EN" "http://www.w3.org/TR/svg10.dtd">
<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://web.resource.org/cc/">
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:title>Crane   by the
      pine</dc:title>
    <dc:description>a bird standing</dc:description>
    <dc:subject><rdf:Bag><rdf:li>crane</rdf:li><rdf:li>bird</rdf:li><rdf:li>crane</rdf:li>
    </rdf:Bag></dc:subject>
  </cc:Work></rdf:RDF></metadata>
  <path d="M0 0 L10 10"/>
</svg>"""

LAUGHS = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg"><metadata><!DOCTYPE x [<!ENTITY a "aaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><dc:title>&b;</dc:title></metadata></svg>"""


def test_openclipart_titles_keywords_and_hostile_files(tmp_path):
    birds = tmp_path / "animals" / "birds"
    birds.mkdir(parents=True)
    (birds / "crane.svg").write_text(SVG)
    (birds / "sheep-md-v0.1.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (birds / "laughs.svg").write_text(LAUGHS)
    (birds / "broken_metadata.svg").write_text("<svg><metadata><dc:title>x</metadata></svg>")
    (tmp_path / "secret.txt").write_text("not a drawing")
    (birds / "link.svg").symlink_to(tmp_path / "secret.txt")
    found = {d.path.name: d for d in openclipart.drawings(tmp_path)}
    assert set(found) == {"crane.svg", "sheep-md-v0.1.svg", "laughs.svg", "broken_metadata.svg"}
    crane = found["crane.svg"]
    assert (crane.title, crane.description) == ("Crane by the pine", "a bird standing")
    assert crane.keywords == ("crane", "bird") and crane.folders == ("animals", "birds")
    assert found["sheep-md-v0.1.svg"].title == "sheep"  # no metadata: the file's name
    assert found["laughs.svg"].title == "laughs"  # an entity is never expanded
    assert found["broken_metadata.svg"].keywords == ()


def test_an_unpacked_jmdict_package_is_read_where_it_lies(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_jamdict_data"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    small_jmdict(package / "jamdict.db")  # as pip leaves the sdist: not compressed
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(jmdict, "PACKAGE", "fake_jamdict_data")
    database = jmdict.installed_database(tmp_path / "work")
    assert database == package / "jamdict.db" and not (tmp_path / "work").exists()
    assert [e.id for e in jmdict.entries(database)] == [10, 20]


ICONS = SVG.replace("Crane   by the\n      pine", "Part of the Flat Icon Collection (Wed Aug 25)")


def test_clipart_captions_skip_icon_noise_and_held_out_names(tmp_path):
    from sashie.eval.world.artists import Concept
    from sashie.eval.world.clipart import captioned_drawings, clipart_caption
    from sashie.eval.world.wordings import names_heldout

    (tmp_path / "crane.svg").write_text(
        SVG.replace("<rdf:li>bird</rdf:li>", "<rdf:li>bird</rdf:li><rdf:li>hash(0x85c8)</rdf:li>")
    )
    (tmp_path / "folder-html.svg").write_text(ICONS)
    (tmp_path / "heron.svg").write_text(SVG.replace("Crane   by the", "A grey heron by the"))
    (tmp_path / "x1.svg").write_text(ICONS)  # neither title nor file name says anything
    unseen = names_heldout([Concept("k2", "h", "heron", "鷺")])
    found = {Path(d.path).name: d for d in captioned_drawings(unseen, tmp_path)}
    kept_back = captioned_drawings(unseen, tmp_path, unread={"bird", "folder html"})
    assert [(Path(d.path).name, d.keywords) for d in kept_back] == [("crane.svg", ("crane",))]
    assert set(found) == {"crane.svg", "folder-html.svg"}
    assert found["crane.svg"].title == "crane by the pine"
    assert found["crane.svg"].keywords == ("crane", "bird")  # hash(...) dropped
    assert found["folder-html.svg"].title == "folder html"  # the icon set's title gives way
    rng = np.random.default_rng(0)
    captions = {clipart_caption(rng, found["crane.svg"]) for _ in range(60)}
    assert "a drawing of crane by the pine" in captions
    assert {"crane, bird", "bird, crane"} & captions
