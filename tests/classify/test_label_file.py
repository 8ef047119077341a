"""Label files: the same classes read the same from CSV, JSON and YAML; the version follows the
classes and not the format; a hostile or broken file is one LabelFileError line naming the
file and the row, never a traceback."""

from __future__ import annotations

import json

import pytest

from sashie.classify import labelfile
from sashie.classify.labelfile import LabelClass, LabelFileError, LabelSet, read_label_file
from sashie.errors import SashieError

CSV = """name,ja,synonyms,attributes,similar
crane, 鶴 | たんちょう ,red-crowned crane|| Crane ,long legs|白い|bird|long legs,heron
folding screen,屏風,byōbu,painted panels,
鳥,,bird of prey|猛禽,,
"""

CLASSES = [
    {
        "name": "crane",
        "ja": ["鶴", "たんちょう"],
        "synonyms": "red-crowned crane | Crane",
        "attributes": ["long legs", "白い", " ", "bird"],
        "similar": "heron",
    },
    {
        "name": " folding screen ",
        "ja": "屏風",
        "synonyms": ["byōbu"],
        "attributes": "painted panels",
    },
    {"name": "鳥", "synonyms": ["bird of prey", "猛禽"], "similar": None},
]

YAML = """\
name: ignored when the caller names the set
classes:
  - name: crane
    ja: [鶴, たんちょう]
    synonyms: red-crowned crane|Crane
    attributes:
      - long legs
      - 白い
      - bird
    similar: heron
  - name: folding screen
    ja: 屏風
    synonyms: byōbu
    attributes: [painted panels]
  - name: 鳥
    synonyms: bird of prey|猛禽
    similar:
"""

EXPECTED = LabelSet(
    "birds",
    (
        LabelClass(
            "crane",
            ja=("鶴", "たんちょう"),
            synonyms=("red-crowned crane", "Crane"),
            attributes=("long legs", "白い", "bird"),
            similar=("heron",),
        ),
        LabelClass(
            "folding screen", ja=("屏風",), synonyms=("byōbu",), attributes=("painted panels",)
        ),
        LabelClass("鳥", synonyms=("bird of prey", "猛禽")),
    ),
)


def write(folder, name: str, content: str | bytes):
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read_error(path, **kwargs) -> str:
    with pytest.raises(LabelFileError) as caught:
        read_label_file(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def test_every_format_reads_to_the_same_set(tmp_path):
    sets = [
        read_label_file(write(tmp_path, "birds.csv", CSV)),
        read_label_file(write(tmp_path, "birds.json", json.dumps(CLASSES, ensure_ascii=False))),
        read_label_file(
            write(tmp_path, "a.json", json.dumps({"name": "birds", "classes": CLASSES}))
        ),
        read_label_file(write(tmp_path, "birds.yaml", YAML), name="birds"),
        read_label_file(write(tmp_path, "BIRDS.YML", YAML), name="birds"),
    ]
    for labels in sets:
        assert labels == EXPECTED
    assert len({labels.version for labels in sets}) == 1


def test_csv_columns_in_any_order_and_case_and_a_byte_order_mark(tmp_path):
    text = "\ufeff Synonyms ,NAME,Ja\nCrane,crane,鶴\n"
    for name, content in [("bom.csv", text), ("bom.json", '\ufeff[{"name": "crane"}]')]:
        labels = read_label_file(write(tmp_path, name, content))
        assert labels.name == "bom"
        assert labels.classes[0].name == "crane"
    labels = read_label_file(tmp_path / "bom.csv")
    assert labels.classes[0] == LabelClass("crane", ja=("鶴",), synonyms=("Crane",))


def test_blank_rows_are_skipped_and_rows_are_numbered_by_line(tmp_path):
    text = "name,ja\r\n\r\ncrane,鶴\r\n,,\r\nheron,鷺\r\ncrane,\r\n"
    message = read_error(write(tmp_path, "labels.csv", text))
    assert message == "labels.csv row 6: duplicate class 'crane' (first at row 3)"


def test_the_version_follows_the_classes_and_not_the_name_or_format(tmp_path):
    base = read_label_file(write(tmp_path, "birds.csv", CSV))
    assert len(base.version) == 12 and int(base.version, 16) >= 0
    renamed = LabelSet("another name", base.classes)
    assert renamed.version == base.version
    changed = [
        CSV.replace("heron", "egret"),
        CSV.replace("painted panels", "painted panels|gold"),
        CSV.replace("folding screen", "screen"),
        CSV.replace("鳥,,", "鳥,とり,"),
    ]
    versions = {read_label_file(write(tmp_path, "birds.csv", text)).version for text in changed}
    assert len(versions) == len(changed) and base.version not in versions


def test_as_json_and_from_json_are_inverses(tmp_path):
    labels = read_label_file(write(tmp_path, "birds.csv", CSV))
    data = labels.as_json()
    assert data["name"] == "birds" and data["version"] == labels.version
    assert data["classes"][0] == {
        "name": "crane",
        "ja": ["鶴", "たんちょう"],
        "synonyms": ["red-crowned crane", "Crane"],
        "attributes": ["long legs", "白い", "bird"],
        "similar": ["heron"],
    }
    assert LabelSet.from_json(data) == labels
    assert LabelSet.from_json(json.loads(json.dumps(data))) == labels
    # the JSON saved as a file reads back too, its version checked
    saved = write(tmp_path, "saved.json", json.dumps(data, ensure_ascii=False))
    assert read_label_file(saved) == labels


def test_from_json_checks_like_a_file():
    data = EXPECTED.as_json()
    data["classes"][1]["name"] = "CRANE"
    with pytest.raises(
        LabelFileError, match=r"class 2: duplicate class 'CRANE' \(first at class 1\)"
    ):
        LabelSet.from_json(data)
    data = EXPECTED.as_json()
    data["classes"][0]["synonyms"] = ["heron"]
    with pytest.raises(LabelFileError, match="version"):
        LabelSet.from_json(data)
    with pytest.raises(LabelFileError, match="no name"):
        LabelSet.from_json({"classes": [{"name": "crane"}]})


def test_find_by_name_japanese_name_and_synonym():
    labels = EXPECTED
    crane = labels.classes[0]
    assert labels.find("crane") is crane
    assert labels.find("たんちょう") is crane
    assert labels.find(" ＣＲＡＮＥ ") is crane  # full-width, another case, spaces
    assert labels.find("Red-Crowned Crane") is crane
    assert labels.find("猛禽") is labels.classes[2]
    assert labels.find("heron") is None  # similar is not a name
    assert labels.find("bird") is None  # nor an attribute
    assert labels.find("") is None


def test_a_class_name_is_found_before_another_class_synonym():
    labels = LabelSet("s", (LabelClass("bird", synonyms=("crane",)), LabelClass("crane")))
    assert labels.find("crane") is labels.classes[1]


def test_names_are_the_name_ja_and_synonyms_without_repeats():
    assert EXPECTED.classes[0].names == ("crane", "鶴", "たんちょう", "red-crowned crane")
    assert LabelClass("鳥", ja=("鳥", "とり"), synonyms=("bird", "Bird")).names == (
        "鳥",
        "とり",
        "bird",
    )


KNOWN = "(known: name, ja, synonyms, attributes, similar)"
BAD_FILES = [
    # (file name, content, what the message must say)
    ("labels.csv", "name,ja\ncrane,鶴\n  ,鷺\n", "labels.csv row 3: the class has no name"),
    ("labels.csv", "ja\n鶴\n", "labels.csv row 1: the header has no 'name' column"),
    (
        "labels.csv",
        "name\ncrane\nheron\nowl\nＣＲＡＮＥ \n",
        "labels.csv row 5: duplicate class 'ＣＲＡＮＥ' (first at row 2)",
    ),
    (
        "labels.csv",
        "name,colour\ncrane,red\n",
        "labels.csv row 1: unknown column 'colour' " + KNOWN,
    ),
    ("labels.csv", "name,ja,JA\ncrane,鶴,鶴\n", "labels.csv row 1: column 'ja' twice"),
    ("labels.csv", "name,ja\ncrane,鶴,extra\n", "labels.csv row 2: a value in column 3"),
    (
        "labels.csv",
        b"name,ja\ncrane,\xe9\xb6\xb4\n\nheron\nowl\nbat\n" + "鳥".encode("shift_jis") + b"\n",
        "labels.csv row 7: not UTF-8 text (save the file as UTF-8)",
    ),
    ("labels.csv", "name\ncrane\n" + "x" * 201 + "\n", "labels.csv row 3: a text in name has 201"),
    ("labels.csv", "name,ja\ncrane,鶴|" + "鶴" * 201 + "\n", "labels.csv row 2: a text in ja has"),
    ("labels.csv", "name,ja\ncrane,鶴\tつる\n", "labels.csv row 2: control character U+0009 in ja"),
    ("labels.csv", 'name\n"cra\nne"\n', "labels.csv row 2: control character U+000A in name"),
    ("labels.csv", "name\ncr\u202eane\n", "labels.csv row 2: control character U+202E in name"),
    ("labels.csv", "name\ndog|puppy\n", "labels.csv row 2: name 'dog|puppy' contains '|'"),
    ("labels.csv", "name,ja\n", "labels.csv: no classes"),
    ("labels.csv", "", "labels.csv: no classes"),
    (
        "labels.json",
        '[{"name": "crane"}, {"ja": "鶴"}]',
        "labels.json class 2: the class has no name",
    ),
    (
        "labels.json",
        '[{"name": "crane"}, {"name": "heron"}, {"name": " Crane"}]',
        "labels.json class 3: duplicate class 'Crane' (first at class 1)",
    ),
    (
        "labels.json",
        '[{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d", "colour": "red"}]',
        "labels.json class 4: unknown key 'colour' " + KNOWN,
    ),
    ("labels.json", '[{"name": 7}]', "labels.json class 1: the name must be text, not int"),
    (
        "labels.json",
        '[{"name": "crane", "ja": {"a": 1}}]',
        "labels.json class 1: ja must be text or a list of texts, not an object",
    ),
    (
        "labels.json",
        '[{"name": "crane", "synonyms": ["heron", ["egret"]]}]',
        "labels.json class 1: synonyms must be a list of texts; it holds a list",
    ),
    ("labels.json", '[{"name": "crane", "ja": ["a|b"]}]', "labels.json class 1: ja 'a|b' contains"),
    ("labels.json", '[{"name": "cr\\u0007ane"}]', "labels.json class 1: control character U+0007"),
    ("labels.json", '[{"name": "\\ud800"}]', "labels.json class 1: control character U+D800"),
    ("labels.json", '["crane"]', "labels.json class 1: a class must be an object"),
    (
        "labels.json",
        '[{"name": "crane"},\n {"name": "heron"]',
        "labels.json line 2: not valid JSON",
    ),
    ("labels.json", "[" * 100_000, "labels.json"),
    ("labels.json", '"crane"', "labels.json: expected a list of classes"),
    ("labels.json", '{"name": "birds", "clases": []}', "labels.json: unknown key 'clases'"),
    ("labels.json", "[]", "labels.json: no classes"),
    ("labels.json", '{"name": "birds"}', "labels.json: no classes"),
    (
        "labels.json",
        '{"version": "000000000000", "classes": [{"name": "crane"}]}',
        "labels.json: version '000000000000' is not that of its classes",
    ),
    ("labels.json", b'[{"name": "crane"},\n{"name": "\x82\xa0"}]', "labels.json line 2: not UTF-8"),
    ("labels.yaml", "- name: crane\n- name: 1868\n", "labels.yaml class 2: the name must be text"),
    (
        "labels.yaml",
        "- name: crane\n- name: heron\n- name: CRANE\n",
        "labels.yaml class 3: duplicate class 'CRANE' (first at class 1)",
    ),
    ("labels.yaml", "- name: crane\n  colour: red\n", "labels.yaml class 1: unknown key 'colour'"),
    ("labels.yaml", "- name: crane\n  ja: [鶴, 1]\n", "labels.yaml class 1: ja must be a list"),
    (
        "labels.yaml",
        "- name: crane\n  ja: [鶴\n- name: heron\n",
        "labels.yaml line 3: not valid YAML",
    ),
    (
        "labels.yaml",
        "- name: !!python/object/apply:os.system [echo hacked]\n",
        "labels.yaml line 1: not valid YAML",
    ),
    ("labels.yaml", "- name: crane\n- name: he\x07ron\n", "labels.yaml line 2: not valid YAML"),
    ("labels.yml", "", "labels.yml: no classes"),
    ("labels.txt", "name\ncrane\n", "labels.txt: unknown kind of label file '.txt'"),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    BAD_FILES,
    ids=[f"{n}-{i}" for i, (n, *_) in enumerate(BAD_FILES)],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_row(tmp_path, name, content, expected):
    message = read_error(write(tmp_path, name, content))
    assert message.startswith(expected), message
    assert len(message) < 300


def test_a_missing_file_a_folder_and_a_huge_file(tmp_path):
    assert read_error(tmp_path / "labels.csv") == "labels.csv: no such file"
    (tmp_path / "folder.json").mkdir()
    assert read_error(tmp_path / "folder.json") == "folder.json: not a file"
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as f:
        f.write(b"name\n")
        f.truncate(20 * 1024 * 1024 + 1)  # sparse: no 20 MB written
    assert read_error(huge) == "huge.csv: larger than 20 MB"


def test_too_many_classes(tmp_path, monkeypatch):
    monkeypatch.setattr(labelfile, "MAX_CLASSES", 3)
    path = write(tmp_path, "labels.csv", "name\na\nb\n\nc\nd\n")
    assert read_error(path) == "labels.csv row 6: more than 3 classes"
    path = write(tmp_path, "labels.json", json.dumps([{"name": n} for n in "abcd"]))
    assert read_error(path) == "labels.json class 4: more than 3 classes"
    assert len(read_label_file(write(tmp_path, "ok.csv", "name\na\nb\nc\n")).classes) == 3


def test_a_file_name_that_is_not_printable_stays_on_one_line(tmp_path):
    message = read_error(write(tmp_path, "bad\nname.csv", "name\n"))
    assert message.startswith("'bad\\nname.csv': no classes")


def test_the_error_is_a_sashie_error(tmp_path):
    assert issubclass(LabelFileError, SashieError)
    with pytest.raises(SashieError):
        read_label_file(tmp_path / "nothing.yaml")
