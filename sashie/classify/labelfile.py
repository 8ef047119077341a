"""Label files: the classes a curator wants every item of a library labelled with.

Each class has a name (the label stored on items) and, optionally, Japanese names, synonyms,
attributes (what it has or is) and similar classes. The file is a CSV, JSON or YAML file; as
CSV, with several values in one cell separated by `|`:

    name,ja,synonyms,attributes,similar
    crane,鶴|たんちょう,red-crowned crane,long legs|白い|bird,heron
    folding screen,屏風,byōbu,painted panels,

A label file may come from another institution, so it is read as hostile input: its size, its
number of classes and the length of each text are bounded, control characters are refused,
YAML is read with `yaml.safe_load`, and every problem is one `LabelFileError` line naming the
file and the row (CSV: the line in the file, the header being row 1; JSON/YAML: "class N").
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from ..errors import SashieError

FIELDS = ("name", "ja", "synonyms", "attributes", "similar")
SUFFIXES = {".csv": "csv", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
SEPARATOR = "|"
MAX_BYTES = 20 * 1024 * 1024
MAX_CLASSES = 100_000
MAX_TEXT = 200
# Line breaks and the bidirectional overrides that can make a text display as another one
# ("Trojan Source"), besides the C0/C1 controls and lone surrogates (JSON can spell those).
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_REFUSED = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


class LabelFileError(SashieError):
    """A label file that cannot be used; the message is one line naming the file and the row."""


@dataclass(frozen=True)
class LabelClass:
    name: str  # the label stored on items, e.g. "crane" or "鳥"
    ja: tuple[str, ...] = ()  # Japanese names (the first is the display name in Japanese)
    synonyms: tuple[str, ...] = ()  # other names, any language
    attributes: tuple[str, ...] = ()  # what it has or is: "long legs", "白い", "bird"
    similar: tuple[str, ...] = ()  # classes it resembles (free text: "heron")

    @property
    def names(self) -> tuple[str, ...]:
        """name, ja names and synonyms, without repeats, in that order."""
        return _unique((self.name, *self.ja, *self.synonyms))


@dataclass(frozen=True)
class LabelSet:
    name: str  # the set's name (default: the file's stem)
    classes: tuple[LabelClass, ...]

    @property
    def version(self) -> str:
        """The first 12 hex digits of the SHA-256 of the classes' canonical JSON: it changes
        when a class does, not with the set's name or the file's format."""
        canonical = json.dumps(
            [_class_json(c) for c in self.classes],
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def as_json(self) -> dict[str, Any]:
        """{"name": ..., "version": ..., "classes": [{"name": ..., "ja": [...], ...}]}."""
        classes = [_class_json(c) for c in self.classes]
        return {"name": self.name, "version": self.version, "classes": classes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelSet:
        """The inverse of `as_json`, checked as a label file is."""
        return _label_set(data, "label set", name=None, default_name=None)

    def find(self, label: str) -> LabelClass | None:
        """The class whose name, Japanese name or synonym equals `label` after NFKC, casefold
        and strip (a class's own name first, then the other names in the classes' order)."""
        return self._index.get(_key(label))

    @cached_property
    def _index(self) -> dict[str, LabelClass]:
        index: dict[str, LabelClass] = {}
        for c in self.classes:
            index.setdefault(_key(c.name), c)
        for c in self.classes:
            for other in c.names:
                index.setdefault(_key(other), c)
        return index


def read_label_file(path: str | os.PathLike, name: str | None = None) -> LabelSet:
    """Read a CSV, JSON or YAML label file (by its suffix: .csv, .json, .yaml/.yml); `name`
    names the set (default: the name inside a JSON/YAML file, else the file's stem)."""
    path = Path(path)
    source = _quote(path.name) if not path.name.isprintable() else path.name
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        _fail(
            source,
            f"unknown kind of label file {_quote(path.suffix)} (use .csv, .json, .yaml or .yml)",
        )
    data = _read_bytes(path, source)
    if kind == "csv":
        text = _decode(data, source, "row")
        classes = _collect(_csv_rows(text, source), source)
        return LabelSet(_set_name(name or path.stem, source), classes)
    text = _decode(data, source, "line")
    document = _parse_json(text, source) if kind == "json" else _parse_yaml(text, source)
    return _label_set(document, source, name=name, default_name=path.stem)


# --- reading ----------------------------------------------------------------------------------


def _read_bytes(path: Path, source: str) -> bytes:
    if not path.exists():
        _fail(source, "no such file")
    if not path.is_file():  # a folder, or a pipe or device that could be read forever
        _fail(source, "not a file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        _fail(source, f"cannot read the file ({e.strerror or type(e).__name__})")
    if len(data) > MAX_BYTES:
        _fail(source, f"larger than {MAX_BYTES // 2**20} MB")
    return data


def _decode(data: bytes, source: str, unit: str) -> str:
    """UTF-8 text without its BOM, or an error naming the line where decoding fails."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8")
        line = before.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
        _fail(f"{source} {unit} {line}", "not UTF-8 text (save the file as UTF-8)")


def _csv_rows(text: str, source: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    """("row N", {column: cell}) for each CSV row that is not blank, N its first line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            _fail(source, "no classes (the file is empty)")
        columns = _columns(header, source)
        line = reader.line_num
        for cells in reader:
            row, line = f"row {line + 1}", reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            for number, cell in enumerate(cells, start=1):
                if cell.strip() and (number > len(columns) or columns[number - 1] is None):
                    _fail(f"{source} {row}", f"a value in column {number}, which has no header")
            yield row, {c: cell for c, cell in zip(columns, cells) if c is not None}
    except csv.Error as e:
        _fail(f"{source} row {reader.line_num}", f"not valid CSV ({_one_line(str(e))})")


def _columns(header: list[str], source: str) -> list[str | None]:
    """The field of each header cell (None for an empty one, allowed if its column is)."""
    columns: list[str | None] = []
    for cell in header:
        column = cell.strip().casefold()
        if column and column not in FIELDS:
            known = ", ".join(FIELDS)
            _fail(f"{source} row 1", f"unknown column {_quote(cell.strip())} (known: {known})")
        if column and column in columns:
            _fail(f"{source} row 1", f"column {column!r} twice")
        columns.append(column or None)
    if "name" not in columns:
        _fail(f"{source} row 1", "the header has no 'name' column (a header row is required)")
    return columns


def _parse_json(text: str, source: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        _fail(f"{source} line {e.lineno}", f"not valid JSON ({e.msg})")
    except ValueError as e:  # a number too long to convert
        _fail(source, f"not valid JSON ({_one_line(str(e))})")
    except RecursionError:
        _fail(source, "not valid JSON (nested too deeply)")


def _parse_yaml(text: str, source: str) -> object:
    import yaml  # only YAML files need PyYAML

    try:
        return yaml.safe_load(text)  # never yaml.load: a file must not build Python objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source} line {mark.line + 1}" if mark else source
        _fail(where, f"not valid YAML ({_one_line(e.problem or e.context or 'unreadable')})")
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line = text[: e.position].count("\n") + 1
        _fail(f"{source} line {line}", f"not valid YAML (character U+{e.character:04X})")
    except yaml.YAMLError as e:
        _fail(source, f"not valid YAML ({_one_line(str(e))})")
    except RecursionError:
        _fail(source, "not valid YAML (nested too deeply)")


# --- checking ---------------------------------------------------------------------------------


def _label_set(
    document: object, source: str, *, name: str | None, default_name: str | None
) -> LabelSet:
    """A JSON/YAML document (a list of classes, or {"name", "classes", "version"}) as a set."""
    inner_name: object = None
    version: object = None
    raw = document
    if isinstance(document, dict):
        for key in document:
            if key not in ("name", "classes", "version"):
                _fail(source, f"unknown key {_quote(key)} (known: name, classes, version)")
        inner_name, version = document.get("name"), document.get("version")
        raw = document.get("classes")
    if raw is None:
        _fail(source, "no classes")
    if not isinstance(raw, list):
        _fail(source, f"expected a list of classes or an object with 'classes', not {_kind(raw)}")
    if not isinstance(inner_name, str | None) or not isinstance(version, str | None):
        _fail(source, "the set's name and version must be text")
    rows = ((f"class {i}", _class_fields(c, f"{source} class {i}")) for i, c in enumerate(raw, 1))
    labels = LabelSet(_set_name(name or inner_name or default_name, source), _collect(rows, source))
    if version is not None and version != labels.version:
        _fail(
            source,
            f"version {_quote(version)} is not that of its classes ({labels.version}); "
            "remove the version to take the classes as they are",
        )
    return labels


def _class_fields(raw: object, where: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        _fail(where, f"a class must be an object with a 'name', not {_kind(raw)}")
    for key in raw:
        if key not in FIELDS:
            _fail(where, f"unknown key {_quote(key)} (known: {', '.join(FIELDS)})")
    return raw


def _collect(
    rows: Iterable[tuple[str, Mapping[str, object]]], source: str
) -> tuple[LabelClass, ...]:
    """The classes of ("row N" or "class N", fields) pairs; names must be unique."""
    classes: list[LabelClass] = []
    first: dict[str, str] = {}  # a name's key -> the row where it came first
    for row, fields in rows:
        where = f"{source} {row}"
        if len(classes) == MAX_CLASSES:
            _fail(where, f"more than {MAX_CLASSES:,} classes")
        label = _make_class(fields, where)
        key = _key(label.name)
        if key in first:
            _fail(where, f"duplicate class {label.name!r} (first at {first[key]})")
        first[key] = row
        classes.append(label)
    if not classes:
        _fail(source, "no classes")
    return tuple(classes)


def _make_class(fields: Mapping[str, object], where: str) -> LabelClass:
    name = fields.get("name")
    if name is not None and not isinstance(name, str):
        _fail(where, f"the name must be text, not {_kind(name)}")
    name = _text(name or "", "name", where)
    if not _key(name):
        _fail(where, "the class has no name")
    _single(name, "name", where)
    lists = {field: _values(fields.get(field), field, where) for field in FIELDS[1:]}
    return LabelClass(name, **lists)


def _values(raw: object, field: str, where: str) -> tuple[str, ...]:
    """A cell or value of several texts: a string split on `|`, or a list of strings."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = raw.split(SEPARATOR)
    elif isinstance(raw, list):
        items = raw
        for item in items:
            if not isinstance(item, str):
                _fail(where, f"{field} must be a list of texts; it holds {_kind(item)}")
            _single(item, field, where)
    else:
        _fail(where, f"{field} must be text or a list of texts, not {_kind(raw)}")
    return _unique(_text(item, field, where) for item in items)


def _text(value: str, field: str, where: str) -> str:
    """One text, stripped, of at most MAX_TEXT characters and without control characters."""
    text = value.strip()
    if len(text) > MAX_TEXT:
        _fail(where, f"a text in {field} has {len(text):,} characters (at most {MAX_TEXT})")
    for char in text:
        if char in _REFUSED or unicodedata.category(char) in _REFUSED_CATEGORIES:
            _fail(where, f"control character U+{ord(char):04X} in {field}")
    return text


def _single(text: str, field: str, where: str) -> str:
    """A text given alone, which must not hold the separator (it would not read back as CSV)."""
    if SEPARATOR in text:
        _fail(where, f"{field} {_quote(text)} contains '|', which separates values")
    return text


def _set_name(name: str | None, source: str) -> str:
    name = _text(name or "", "the set's name", source)
    if not name:
        _fail(source, "the label set has no name")
    return name


# --- small helpers ----------------------------------------------------------------------------


def _key(text: str) -> str:
    """What two names are compared by: NFKC (full-width letters as ASCII), casefold, strip."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    """The texts without empty ones and repeats (by `_key`), the first spelling kept."""
    seen: dict[str, str] = {}
    for text in texts:
        if (key := _key(text)) and key not in seen:
            seen[key] = text
    return tuple(seen.values())


def _class_json(label: LabelClass) -> dict[str, Any]:
    return {"name": label.name} | {field: list(getattr(label, field)) for field in FIELDS[1:]}


def _quote(value: object) -> str:
    """A value from the file, quoted and cut short, on one line whatever it holds."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _fail(where: str, message: str) -> NoReturn:
    raise LabelFileError(f"{where}: {message}")
