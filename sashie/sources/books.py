"""Books: what a page belongs to, as researchers know collections. Each source becomes one
book or several: a IIIF manifest is a book; in a folder, each folder that holds images is one
(its pages in name order); a list file is one; an image named alone is one of a page.

What a book records comes from its manifest (v2 and v3: label, metadata pairs, navDate,
requiredStatement or attribution, rights or license, homepage or related, seeAlso) or, for
folders and lists, from a sidecar CSV or JSON file the user names (`--metadata books.csv`,
keyed by folder or file). Both may come from anyone: every value is bounded text, links are
http(s) only, and nothing names a file. The fields sashie reads are normalised (title,
creator, date and its years, place, rights, homepage); all others are kept as they came.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SashieError
from .dates import Years, parse_years
from .images import is_url, read_file

MAX_TEXT = 2000  # characters of one value
MAX_FIELDS = 100  # kept of one book
MAX_SIDECAR_BYTES = 20 * 2**20
MAX_SIDECAR_ROWS = 100_000
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
TAG = re.compile(r"<[^>]{0,500}>")
HREF = re.compile(r"""href\s*=\s*["'](https?://[^"'<>\s]{1,2000})["']""", re.IGNORECASE)

# what catalogues call the fields sashie normalises (lower case, English and Japanese)
NAMES = {
    "title": ("title", "タイトル", "書名", "題名", "資料名", "name"),
    "creator": (
        *("creator", "author", "authors", "artist"),
        *("著者", "作者", "著者名", "編著者", "画工", "絵師"),
    ),
    "date": (
        *("date", "dates", "published", "publication date", "date of publication", "year"),
        *("出版年", "刊年", "出版年月日", "年代", "成立年", "刊行年"),
    ),
    "place": (
        *("place", "publication place", "place of publication"),
        *("出版地", "刊行地", "出版地・頒布地"),
    ),
    "rights": ("rights", "license", "licence", "権利", "利用条件", "ライセンス"),
    "homepage": ("homepage", "url", "link", "web page", "ウェブページ"),
}
FIELD_OF = {name.lower(): key for key, names in NAMES.items() for name in names}


@dataclass(frozen=True)
class Book:
    """One book: its key (the manifest, folder, list or file it is), the normalised fields,
    and every other field its source gave."""

    key: str
    title: str = ""
    creator: str = ""
    date: str = ""  # as the source wrote it
    years: Years | None = None  # parsed from it (sashie/sources/dates.py)
    place: str = ""
    rights: str = ""
    homepage: str | None = None  # an http(s) URL
    fields: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "title": self.title,
            "creator": self.creator,
            "date": self.date,
            "year_from": self.years[0] if self.years else None,
            "year_to": self.years[1] if self.years else None,
            "place": self.place,
            "rights": self.rights,
            "homepage": self.homepage,
            "fields": self.fields,
        }


def book_from(key: str, values: dict[str, object], *, default_title: str = "") -> Book:
    """A book from named values (a manifest's, a sidecar row's): those sashie normalises by
    their usual names in English or Japanese, the others kept as bounded text."""
    normal: dict[str, str] = {}
    kept: dict[str, str] = {}
    for name, value in list(values.items())[: 4 * MAX_FIELDS]:
        text = plain_text(value)
        name = plain_text(name)[:200]
        if not text or not name:
            continue
        key_name = FIELD_OF.get(name.lower().strip())
        if key_name == "homepage":
            text = _link_in(value) or text
        if key_name is not None and key_name not in normal:
            normal[key_name] = text
        elif len(kept) < MAX_FIELDS:
            kept[name] = text
    homepage = normal.get("homepage")
    date = normal.get("date", "") or kept.get("navDate", "")
    return Book(
        key=key,
        title=normal.get("title", default_title),
        creator=normal.get("creator", ""),
        date=date,
        years=parse_years(date),
        place=normal.get("place", ""),
        rights=normal.get("rights", ""),
        homepage=homepage if homepage and is_url(homepage) else None,
        fields=kept,
    )


def plain_text(value: object) -> str:
    """A value as one line of bounded text: IIIF language maps and lists joined, HTML tags
    and control characters dropped."""
    if isinstance(value, dict):
        if "@value" in value:
            value = value["@value"]
        elif "id" in value or "@id" in value:
            value = value.get("id") or value.get("@id")
        else:
            value = list(value.values())[:20]
    if isinstance(value, list):
        value = " / ".join(filter(None, (plain_text(v) for v in value[:20])))
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = CONTROL.sub("", TAG.sub("", str(value)))
    return " ".join(text.split())[:MAX_TEXT]


def _link_in(value: object) -> str | None:
    """The http(s) URL a value is, or the first an HTML link in it names."""
    if not isinstance(value, str):
        return None
    if is_url(value.strip()):
        return value.strip()
    found = HREF.search(value)
    return found.group(1) if found and is_url(found.group(1)) else None


# --- IIIF manifests ----------------------------------------------------------------------------


def manifest_book(doc: dict, key: str) -> Book:
    """The book a IIIF Presentation v2 or v3 manifest describes."""
    values: dict[str, object] = {"title": doc.get("label")}
    for pair in (
        doc.get("metadata", [])[: 4 * MAX_FIELDS] if isinstance(doc.get("metadata"), list) else []
    ):
        if isinstance(pair, dict):
            values.setdefault(plain_text(pair.get("label")), pair.get("value"))
    statement = doc.get("requiredStatement")
    if isinstance(statement, dict):
        values["requiredStatement"] = statement.get("value")
    if doc.get("attribution") is not None:  # v2
        values["requiredStatement"] = doc.get("attribution")
    for name in ("rights", "license"):  # v3, v2
        if doc.get(name) is not None:
            values.setdefault("rights", doc.get(name))
    for name in ("homepage", "related"):  # v3, v2
        link = _first_link(doc.get(name))
        if link:
            values.setdefault("homepage", link)
    if doc.get("navDate") is not None:
        values["navDate"] = doc.get("navDate")
    see_also = _first_link(doc.get("seeAlso"))
    if see_also:
        values["seeAlso"] = see_also
    return book_from(key, values)


def _first_link(value: object) -> str | None:
    """The first http(s) URL a v2 or v3 link value names (a string, an object, a list)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("id") or value.get("@id")
    return value if isinstance(value, str) and is_url(value) else None


# --- sidecar files for folders and lists ----------------------------------------------------


def read_sidecar(path: str | os.PathLike) -> dict[str, dict[str, object]]:
    """A user's CSV or JSON of book metadata: rows keyed by `key` (or `folder`, `file`,
    `path`, `id`), each a folder's or a file's name or path; one error line when the file
    cannot be used."""
    path = Path(path)
    data = read_file(path, max_bytes=MAX_SIDECAR_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SashieError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        rows = _json_rows(path, text)
    else:
        rows = list(csv.DictReader(io.StringIO(text)))[: MAX_SIDECAR_ROWS + 1]
    if len(rows) > MAX_SIDECAR_ROWS:
        raise SashieError(f"{path}: more than {MAX_SIDECAR_ROWS:,} rows")
    table: dict[str, dict[str, object]] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SashieError(f"{path}: row {number} is not a record")
        key = next(
            (plain_text(row.get(k)) for k in ("key", "folder", "file", "path", "id") if row.get(k)),
            "",
        )
        if not key:
            raise SashieError(f"{path}: row {number} has no key (a folder or file name)")
        table[key] = {k: v for k, v in row.items() if k not in ("key", "folder", "file", "path")}
    return table


def _json_rows(path: Path, text: str) -> list:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise SashieError(f"{path}: not JSON") from None
    if isinstance(doc, dict):  # {key: {field: value}}
        return [{"key": k, **v} if isinstance(v, dict) else v for k, v in doc.items()]
    if isinstance(doc, list):
        return doc
    raise SashieError(f"{path}: not a list or an object of books")


def sidecar_values(table: dict[str, dict[str, object]], place: Path, root: Path) -> dict | None:
    """The sidecar row of a folder or file: keyed by its path, its path under the source
    folder, or its name (None: the sidecar has none)."""
    names = [str(place), place.name]
    if place.is_relative_to(root):
        names.insert(1, place.relative_to(root).as_posix())
    return next((table[n] for n in names if n in table), None)
