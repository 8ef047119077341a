"""Years from the free-text dates catalogues give (issue 40): real-world strings, English and
Japanese, and malformed ones that must give no year (their text is kept beside it)."""

import pytest

from sashie.sources.dates import parse_years

DATES = [
    # Japanese era dates, as NDL, NIJL and university catalogues write them
    ("寛政8年", (1796, 1796)),
    ("寛政八年", (1796, 1796)),
    ("寛政８年", (1796, 1796)),  # full-width digits
    ("寛政元年", (1789, 1789)),
    ("寛政8年刊", (1796, 1796)),
    ("寛政十三年", (1801, 1801)),  # the era changed in its thirteenth year
    ("寛政年間", (1789, 1800)),
    ("[寛政]", (1789, 1800)),
    ("享保十三年戊申", (1728, 1728)),  # with its sexagenary year
    ("延宝9年序", (1681, 1681)),
    ("明治十二年十月", (1879, 1879)),
    ("明治12", (1879, 1879)),
    ("慶長年間", (1596, 1614)),
    ("令和元年", (2019, 2019)),
    ("天保3年（1832）", (1832, 1832)),  # the western year given too wins
    ("西暦1796年", (1796, 1796)),
    ("江戸後期", (1781, 1867)),
    ("江戸時代", (1603, 1868)),
    ("19世紀", (1801, 1900)),
    ("19世紀後半", (1851, 1900)),
    # English and library-catalogue forms
    ("1796", (1796, 1796)),
    ("[1796]", (1796, 1796)),
    ("c. 1800", (1800, 1800)),
    ("ca.1800", (1800, 1800)),
    ("1800?", (1800, 1800)),
    ("1796-98", (1796, 1798)),
    ("1796–1800", (1796, 1800)),
    ("between 1789 and 1801", (1789, 1801)),
    ("1796 or 1797", (1796, 1797)),
    ("printed 1796, reprinted 1850", (1796, 1796)),
    ("1796-01-01T00:00:00Z", (1796, 1796)),  # a IIIF navDate
    ("18th century", (1701, 1800)),
    ("late 18th century", (1767, 1800)),
    ("1790s", (1790, 1799)),
    ("1700s", (1700, 1799)),
    ("17--", (1700, 1799)),  # MARC's unknown digits
    ("179?", (1790, 1799)),
    ("Kansei 8", (1796, 1796)),
    ("Kan'ei 3", (1626, 1626)),
    ("Kyōhō 13", (1728, 1728)),
    ("Meiji 12 [1879]", (1879, 1879)),
    ("Edo period", (1603, 1868)),
    # malformed or no date at all: no year
    ("寛政99年", None),  # past the era's end
    ("寛政ヌ年", None),  # not a number
    ("刊年不明", None),
    ("不明", None),
    ("n.d.", None),
    ("sine anno", None),
    ("2568591", None),  # an id, not a year
    ("12345", None),
    ("", None),
    ("1796-1700", (1796, 1796)),  # a range backwards: its first year only
    ("0450", None),  # before any book sashie reads
]


@pytest.mark.parametrize(("text", "years"), DATES, ids=[t or "empty" for t, _ in DATES])
def test_a_free_text_date_gives_its_years_or_none(text, years):
    assert parse_years(text) == years


@pytest.mark.parametrize("value", [None, 1796, ["1796"], {"@value": "1796"}, "x" * 10_000])
def test_what_is_not_a_date_string_gives_no_year(value):
    assert parse_years(value) is None
