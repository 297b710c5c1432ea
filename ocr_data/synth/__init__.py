"""Deterministic synthetic OCR data (det images + rec crops, PaddleOCR labels).
Run `python -m ocr_data.synth --help`; this file re-exports the public names.

Modules: fonts (dictionary, fonts, Resources), text (TextSampler), render
(backgrounds, Line, draw_line), degrade (degradations, JPEG), generate (Knobs,
Generator, label writing), cli (parse_args, main).
"""
from .cli import main, parse_args
from .fonts import FontFace, Resources, load_char_dict
from .generate import DEFAULT_DIFFICULTY, DONT_CARE, Generator, Knobs
from .text import TextSampler

__all__ = ["DEFAULT_DIFFICULTY", "DONT_CARE", "FontFace", "Generator", "Knobs", "Resources",
           "TextSampler", "load_char_dict", "main", "parse_args"]
