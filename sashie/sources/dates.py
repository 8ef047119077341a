"""Years from the free-text dates that catalogues give books: "1796", "c. 1800", "18th
century", "17--", "Kansei 8 [1796]", 寛政8年, 寛政八年刊, 天保3年（1832）, 寛政年間, 江戸後期,
19世紀, an ISO navDate. Each becomes a range of years (first, last), or None when the text
names no year sashie can trust; the text itself is always kept beside it.

A year written out in western digits wins over an era's reckoning (a catalogue that gives
both has checked them). Japanese era names (nengō) and the years they began come from the
Unicode CLDR (japanese_eras.tsv, scripts/cldr_eras.py); year N of an era is its first year
+ N - 1, 元年 its first. An era year past the era's end, a year outside 600-2100, or an era
followed by something that is not a number is not trusted.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

FIRST_YEAR, LAST_YEAR = 600, 2100
Years = tuple[int, int]

# periods catalogues name instead of a date: (first, last) year
PERIODS = {
    "飛鳥時代": (592, 710),
    "奈良時代": (710, 794),
    "平安時代": (794, 1185),
    "鎌倉時代": (1185, 1333),
    "南北朝時代": (1336, 1392),
    "室町時代": (1336, 1573),
    "安土桃山時代": (1573, 1603),
    "江戸時代": (1603, 1868),
    "江戸前期": (1603, 1680),
    "江戸初期": (1603, 1650),
    "江戸中期": (1681, 1780),
    "江戸後期": (1781, 1867),
    "江戸末期": (1830, 1867),
    "幕末": (1853, 1867),
    "明治時代": (1868, 1912),
    "大正時代": (1912, 1926),
    "昭和時代": (1926, 1989),
    "edo period": (1603, 1868),
    "meiji period": (1868, 1912),
}

_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_KANJI_DIGITS |= {"七": 7, "八": 8, "九": 9}
_KANJI_TENS = {"十": 10, "廿": 20, "卄": 20, "卅": 30, "丗": 30}
_NUMBER = r"(?:元|\d{1,2}|[〇零一二三四五六七八九十廿卄卅丗]{1,4})"
_WESTERN = re.compile(r"(?<![\d])(1[0-9]{3}|20[0-9]{2})(?![\d]|s\b)")  # not 1790s
_ISO = re.compile(r"(?<![\d])(\d{4})-\d{2}-\d{2}")  # a navDate, 1796-01-01T00:00:00Z
_RANGE = re.compile(r"(?<![\d])(\d{4})\s*(?:-|–|—|〜|~|to|or|and)\s*(\d{4}|\d{2})(?![\d])")
_CENTURY_EN = re.compile(
    r"\b(early|mid|middle|late)?[-\s]*(\d{1,2})(?:st|nd|rd|th)[-\s]+cent", re.IGNORECASE
)
_CENTURY_JA = re.compile(r"(\d{1,2})世紀(前半|後半|初頭|末)?")
_DECADES = re.compile(r"(?<![\d])(1[0-9]|20)(\d)0s\b")  # 1790s
_HUNDREDS = re.compile(r"(?<![\d])(1[0-9]|20)00s\b")  # 1700s
_UNKNOWN_DIGITS = re.compile(r"(?<![\d])(1[0-9]|20)(\d|[-?uUxX])[-?uUxX](?![\d])")  # 17--, 179?


def parse_years(text: object) -> Years | None:
    """The years a free-text date names, first and last (equal for one year); None when it
    names none sashie can trust."""
    if not isinstance(text, str) or not text.strip() or len(text) > 500:
        return None
    plain = unicodedata.normalize("NFKC", text).replace("’", "'").replace("`", "'")
    for read in (_western, _era, _period, _century, _decade):
        found = read(plain)
        if found is not None:
            return found if _plausible(found) else None
    return None


def _plausible(years: Years) -> bool:
    return FIRST_YEAR <= years[0] <= years[1] <= LAST_YEAR


def _western(text: str) -> Years | None:
    """Years written in western digits: "1796", "1796-1800", "c. 1800", "[1796]", navDate."""
    iso = _ISO.search(text)
    if iso:
        return int(iso.group(1)), int(iso.group(1))
    span = _RANGE.search(text)
    if span:
        first, last = span.group(1), span.group(2)
        if len(last) == 2:  # 1796-98
            last = first[:2] + last
        if int(first) <= int(last):
            return int(first), int(last)
    years = [int(y) for y in _WESTERN.findall(text)]
    if not years:
        return None
    # two years near each other bound one date; far apart, the first is the printing
    return (min(years), max(years)) if max(years) - min(years) <= 10 else (years[0], years[0])


def _era(text: str) -> Years | None:
    """An era's year (寛政8年, 寛政八年, 寛政元年, Kansei 8) or the whole era (寛政年間, 寛政)."""
    romaji = _without_marks(text.lower())
    for name, (first, last) in _eras_by_name(text).items():
        within = romaji if name.isascii() else text
        rest = within[within.find(name) + len(name) :].lstrip(" ")
        number = re.match(_NUMBER, rest)
        if number:
            year = _era_year(number.group(0))
            if year is None or first + year - 1 > last + 1:
                return None  # 寛政99年: not a year of the era
            return first + year - 1, first + year - 1
        if not rest or re.match(r"(年間|年中|期|頃|ごろ|period|era|\W)", rest, re.IGNORECASE):
            return first, last
        return None  # 寛政ヌ年: the era followed by what is not a number
    return None


def _era_year(number: str) -> int | None:
    """A year of an era written 元, in digits or in kanji (八, 十二, 廿三, 二十三)."""
    if number == "元":
        return 1
    if number.isdigit():
        return int(number) or None
    total, digit = 0, None
    for char in number:
        if char in _KANJI_TENS:
            total += _KANJI_TENS[char] * (digit or 1) if char == "十" else _KANJI_TENS[char]
            digit = None
        elif char in _KANJI_DIGITS:
            if digit is not None:
                return None  # 八八: not a year
            digit = _KANJI_DIGITS[char]
    total += digit or 0
    return total or None


def _period(text: str) -> Years | None:
    lowered = text.lower()
    for name, years in PERIODS.items():
        if name in lowered:
            return years
    return None


def _century(text: str) -> Years | None:
    """ "18th century" (early, mid, late: its thirds), 19世紀 (前半, 後半)."""
    english = _CENTURY_EN.search(text)
    japanese = _CENTURY_JA.search(text)
    if english:
        part, number = (english.group(1) or "").lower(), int(english.group(2))
    elif japanese:
        number = int(japanese.group(1))
        part = {"前半": "first half", "初頭": "early", "後半": "second half", "末": "late"}.get(
            japanese.group(2) or "", ""
        )
    else:
        return None
    first = (number - 1) * 100 + 1
    return {
        "early": (first, first + 32),
        "mid": (first + 33, first + 65),
        "middle": (first + 33, first + 65),
        "late": (first + 66, first + 99),
        "first half": (first, first + 49),
        "second half": (first + 50, first + 99),
    }.get(part, (first, first + 99))


def _decade(text: str) -> Years | None:
    """ "1790s", "1700s", "17--", "179?" (catalogues' unknown digits)."""
    hundreds = _HUNDREDS.search(text)
    if hundreds:
        first = int(hundreds.group(1)) * 100
        return first, first + 99
    decades = _DECADES.search(text)
    if decades:
        first = int(decades.group(1)) * 100 + int(decades.group(2)) * 10
        return first, first + 9
    unknown = _UNKNOWN_DIGITS.search(text)
    if unknown:
        century, decade = int(unknown.group(1)) * 100, unknown.group(2)
        if decade.isdigit():
            return century + int(decade) * 10, century + int(decade) * 10 + 9
        return century, century + 99
    return None


def _eras_by_name(text: str) -> dict[str, Years]:
    """The eras whose name (kanji, or romaji without its marks) the text holds, longest
    name first: 寛政 before 寛."""
    romaji = _without_marks(text.lower())
    return {
        name: years
        for name, years in _eras()
        if (_romaji_in(name, romaji) if name.isascii() else name in text)
    }


def _romaji_in(name: str, text: str) -> bool:
    return re.search(rf"(?<![a-z']){re.escape(name)}(?![a-z'])", text) is not None


def _without_marks(text: str) -> str:
    """Romaji without its macrons (Kyōhō → kyoho)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _eras() -> list[tuple[str, Years]]:
    """(name, (first year, last year)) of every era, by kanji and by romaji, longest first."""
    text = (resources.files("sashie.sources") / "japanese_eras.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    starts = [int(row[3].split("-")[0]) for row in rows]
    out = []
    for i, (_, kanji, romaji, _start) in enumerate(rows):
        last = starts[i + 1] - 1 if i + 1 < len(rows) else LAST_YEAR
        years = (starts[i], max(starts[i], last))
        out += [(kanji, years), (_without_marks(romaji.lower()).replace("’", "'"), years)]
    return sorted(out, key=lambda pair: -len(pair[0]))
