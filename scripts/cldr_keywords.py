"""Write sashie/eval/world/cldr_keywords.json: the Unicode CLDR emoji keywords, English and
Japanese, of every concept of the evaluation world (the text banks of `sashie bench --classify`).

    python scripts/cldr_keywords.py [/usr/share/unicode/cldr/common/annotations]

The annotations come from Debian's unicode-cldr-core package (`apt-get install
unicode-cldr-core`, or `apt-get download` it and unpack it with `dpkg-deb -x`); the Unicode
licence is in sashie/eval/world/CLDR-LICENSE.txt. Run once; the JSON is committed.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from sashie.eval.world.artists import load_concepts

HERE = Path(__file__).resolve().parent.parent / "sashie" / "eval" / "world"


def keywords(path: Path) -> dict[str, list[str]]:
    """Each emoji's keywords (not its spoken name), by the emoji without variation selectors."""
    out: dict[str, list[str]] = {}
    for node in ET.parse(path).getroot().iter("annotation"):
        if node.get("type") == "tts" or not node.text:
            continue
        words = [w.strip() for w in node.text.split("|") if w.strip()]
        out[node.get("cp", "").replace("\ufe0f", "")] = words
    return out


def main() -> None:
    folder = Path(
        sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode/cldr/common/annotations"
    )
    en, ja = keywords(folder / "en.xml"), keywords(folder / "ja.xml")
    table = {c.key: {"en": en.get(c.char, []), "ja": ja.get(c.char, [])} for c in load_concepts()}
    lines = [
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(table.items())
    ]
    text = "{\n" + ",\n".join(lines) + "\n}\n"  # a concept a line: diffs stay readable
    (HERE / "cldr_keywords.json").write_text(text, encoding="utf-8")
    missing = sum(1 for v in table.values() if not v["en"] or not v["ja"])
    print(f"{len(table)} concepts, {missing} without keywords in a language")


if __name__ == "__main__":
    main()
