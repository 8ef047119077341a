"""Write sashie/sources/japanese_eras.tsv: the Japanese era names (nengō) and the year each
began, from the Unicode CLDR (what sashie/sources/dates.py reads 寛政8年 and "Kansei 8" with).

    python scripts/cldr_eras.py [/usr/share/unicode/cldr/common]

The data come from Debian's unicode-cldr-core package (`apt-get install unicode-cldr-core`):
the era start dates from supplemental/supplementalData.xml, the names in kanji from
main/ja.xml and in romaji from main/root.xml. The Unicode licence is in
sashie/sources/CLDR-LICENSE.txt. Run once; the table is committed.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "sashie" / "sources" / "japanese_eras.tsv"


def _japanese(root: ET.Element) -> ET.Element:
    for calendar in root.iter("calendar"):
        if calendar.get("type") == "japanese" and calendar.find("eras") is not None:
            return calendar
    raise SystemExit("no Japanese calendar's eras in this CLDR file")


def names(path: Path) -> dict[str, str]:
    """Each era's abbreviated name by its number."""
    abbreviations = _japanese(ET.parse(path).getroot()).find("eras/eraAbbr")
    assert abbreviations is not None
    return {e.get("type", ""): (e.text or "").split(" (")[0] for e in abbreviations}


def main() -> None:
    cldr = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode/cldr/common")
    eras = _japanese(ET.parse(cldr / "supplemental" / "supplementalData.xml").getroot())
    starts = {e.get("type", ""): e.get("start", "") for e in eras.iter("era")}
    kanji, romaji = names(cldr / "main" / "ja.xml"), names(cldr / "main" / "root.xml")
    lines = ["# era\tkanji\tromaji\tstart (from the Unicode CLDR; scripts/cldr_eras.py)"]
    for number in sorted(starts, key=int):
        lines.append(f"{number}\t{kanji[number]}\t{romaji[number]}\t{starts[number]}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines) - 1} eras to {OUT}")


if __name__ == "__main__":
    main()
