"""JMdict, the Japanese-multilingual dictionary, as PyPI's `jamdict-data` packages it (an
xz-compressed SQLite database): each entry's written forms (kanji), readings (kana) and
English senses. The dictionary's text is never copied into this repository; the trainer
reads the installed package (`pip install jamdict-data`)."""

from __future__ import annotations

import importlib.util
import lzma
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import SashieError

CREDIT = (
    "JMdict (the Electronic Dictionary Research and Development Group, CC BY-SA 4.0; "
    "https://www.edrdg.org/edrdg/licence.html), read from PyPI's jamdict-data"
)
PACKAGE = "jamdict_data"
COMPRESSED = "jamdict.db.xz"
UNPACKED = "jamdict.db"


@dataclass(frozen=True)
class Entry:
    id: int  # JMdict's entry sequence number
    kanji: tuple[str, ...]  # written forms, most common first
    kana: tuple[str, ...]  # readings
    senses: tuple[tuple[str, ...], ...]  # each sense's English glosses


def installed_database(workdir: Path) -> Path:
    """The installed package's database: as installed when pip unpacked it (its sdist
    does), else decompressed into `workdir` once (about 330 MB)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SashieError(f"JMdict is not installed: pip install jamdict-data ({PACKAGE})")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if (folder / COMPRESSED).is_file():
        return decompressed(folder / COMPRESSED, workdir)
    if (folder / UNPACKED).is_file():
        return folder / UNPACKED
    raise SashieError(f"no JMdict database in {folder}: pip install --force-reinstall jamdict-data")


def decompressed(compressed: Path, workdir: Path) -> Path:
    """An xz file decompressed into `workdir` (kept there: a second call reuses it)."""
    target = workdir / compressed.with_suffix("").name
    if target.is_file() and not target.is_symlink():
        return target
    workdir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with lzma.open(compressed) as source, open(partial, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(partial, target)
    return target


def entries(database: Path) -> Iterator[Entry]:
    """Every entry with at least one English sense, in sequence order."""
    db = sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True)
    try:
        kanji = _forms(db, "SELECT idseq, text FROM Kanji ORDER BY ID")
        kana = _forms(db, "SELECT idseq, text FROM Kana ORDER BY ID")
        senses: dict[int, dict[int, list[str]]] = {}
        for idseq, sense, text in db.execute(
            "SELECT s.idseq, s.ID, g.text FROM Sense s JOIN SenseGloss g ON g.sid = s.ID "
            "WHERE g.lang = 'eng' ORDER BY s.ID"
        ):
            senses.setdefault(idseq, {}).setdefault(sense, []).append(text)
        ids = [row[0] for row in db.execute("SELECT idseq FROM Entry ORDER BY idseq")]
    except sqlite3.DatabaseError as e:
        raise SashieError(f"{database} is not a JMdict database ({e})") from None
    finally:
        db.close()
    for idseq in ids:
        if idseq in senses:
            yield Entry(
                idseq,
                tuple(kanji.get(idseq, ())),
                tuple(kana.get(idseq, ())),
                tuple(tuple(glosses) for glosses in senses[idseq].values()),
            )


def _forms(db: sqlite3.Connection, query: str) -> dict[int, list[str]]:
    forms: dict[int, list[str]] = {}
    for idseq, text in db.execute(query):
        if text:
            forms.setdefault(idseq, []).append(text)
    return forms
