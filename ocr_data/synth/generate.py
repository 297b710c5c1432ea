"""Knobs (difficulty -> degradation strengths) and Generator, which turns
(seed, det|rec, split, index) into one image and its label; plus the writers."""
import math
import os
from pathlib import Path

import cv2
import numpy as np

from .degrade import (degrade, fit_degradation, needed_stroke, sample_degradation,
                      scale_degradation)
from .fonts import Resources
from .render import (Line, _apply_h, _poly_area, _quad_h, _R, _rand_color, _T, draw_line,
                     make_background)
from .text import TextSampler, has_cjk

# --difficulty 1.0 (the default) is the tuned level: the FP32 PP-OCRv4 mobile
# det/rec models land in the 0.6-0.9 band on the eval split (measured numbers
# in ocr_data/README.md). Knobs see d = DIFFICULTY_SCALE * --difficulty.
DEFAULT_DIFFICULTY = 1.0
DIFFICULTY_SCALE = 1.5

DET_BLUR_UNIT = 0.4       # det blur lengths, relative to rec's 48 px text
TINY_PX = 6               # det boxes thinner than this are labelled "###"
DONT_CARE = "###"
# det label unit: one box per text line, or per space-separated word as ICDAR2015 labels them
# (PP-OCR det finds lines, so word labels lower the hmean the way real ICDAR2015 images do)
LABEL_UNITS = ("line", "word")
# det text: the Chinese + Latin mix that rec uses too, or English only (as ICDAR2015 street text)
DET_TEXTS = ("mixed", "latin")

# Seed-stream ids, so det/rec and train/eval never share random numbers.
_KIND_ID = {"det": 1, "rec": 2}
_SPLIT_ID = {"train": 1, "eval": 2}

# --------------------------------------------------------------------------
# Difficulty knobs
# --------------------------------------------------------------------------


class Knobs:
    """Every degradation strength as a function of d = 1.5 * --difficulty.

    d = 0 gives clean renders (fonts, colours and backgrounds still vary);
    probabilities grow linearly with d (capped at 1), magnitudes too.
    """

    def __init__(self, difficulty):
        self.d = d = DIFFICULTY_SCALE * max(0.0, float(difficulty))
        cap = lambda x: float(min(1.0, max(0.0, x)))  # noqa: E731
        self.p_hard_font = cap(0.20 * d)
        self.p_low_contrast = cap(0.20 * d)
        self.p_rotate = cap(0.5 * d)
        self.det_max_angle = 2.0 + 6.0 * d           # degrees
        self.rec_max_angle = 1.0 + 2.5 * d
        self.p_warp = cap(0.6 * d)
        self.det_warp = 0.05 * d                       # corner jitter / side
        self.rec_warp = 0.10 * d                       # corner jitter / text height
        self.clutter = 1.0 + 6.0 * d                   # mean shapes per det canvas
        self.p_strike = cap(0.12 * d)                  # line crossing a rec crop
        self.p_neighbor = cap(0.2 * d)                 # cut-off line in a rec margin
        self.p_occlude = cap(0.05 * d)                 # det line hidden -> ###
        self.det_min_size = max(7.0, 16.0 - 6.0 * d)   # font px
        self.p_det_small = cap(0.4 * d)               # size in [min, 1.6 min]
        self.p_blur = cap(0.45 * d)
        self.blur_sigma = 0.4 + 0.9 * d                # at 48 px text height
        self.p_motion = cap(0.12 * d)
        self.p_lowres = cap(0.30 * d)
        self.lowres_min = max(0.3, 0.85 - 0.4 * d)     # downscale factor
        self.p_noise = cap(0.5 * d)
        self.noise_std = 3.0 + 8.0 * d
        self.p_fade = cap(0.3 * d)                     # global contrast loss
        self.p_shade = cap(0.3 * d)                    # uneven illumination
        self.jpeg_min = int(max(20, 90 - 50 * d))


# --------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------


class Generator:
    def __init__(self, seed=0, difficulty=DEFAULT_DIFFICULTY, det_size=640,
                 dict_path=None, font_dir=None, labels="line", det_text="mixed"):
        if labels not in LABEL_UNITS:
            raise ValueError(f"labels must be one of {LABEL_UNITS}, not {labels!r}")
        self.labels = labels
        self.seed = int(seed)
        self.k = Knobs(difficulty)
        self.det_size = int(det_size)
        self.res = Resources(dict_path, font_dir)
        self.sampler = TextSampler(self.res)
        if det_text not in DET_TEXTS:
            raise ValueError(f"det_text must be one of {DET_TEXTS}, not {det_text!r}")
        self.det_sampler = self.sampler if det_text == "mixed" else TextSampler(self.res, latin_only=True)

    def rng(self, kind, split, idx):
        return np.random.default_rng([self.seed, _KIND_ID[kind], _SPLIT_ID[split], idx])

    def font_for(self, rng, text):
        """A font face that can draw `text` (hanzi always get the CJK face)."""
        if has_cjk(text):
            return self.res.cjk  # hanzi, full-width forms
        if rng.random() < 0.12:
            return self.res.cjk  # the CJK face has Latin glyphs too
        pool = self.res.latin_hard if rng.random() < self.k.p_hard_font else self.res.latin_regular
        face = pool[int(rng.integers(len(pool)))]
        return face if face.covers(text) else self.res.cjk

    # -- detection --------------------------------------------------------
    # One det image is composed by the steps below, which share a _DetPage.
    # Their order is the order of the image's random draws: reordering them,
    # or the draws inside them, changes the data a seed gives.
    def det_sample(self, split, idx):
        rng = self.rng("det", split, idx)
        page = self._det_page(rng, split)
        self._det_layout(page)
        self._det_occlude(page)
        self._det_warp(page)
        return self._det_finish(page)

    def _det_page(self, rng, split):
        """Canvas size and background, the image's degradation, and the text
        size and margin limits that follow from them."""
        k = self.k
        aspect = float(np.exp(rng.uniform(-0.45, 0.45)))
        W = int(round(self.det_size * math.sqrt(aspect)))
        H = int(round(self.det_size / math.sqrt(aspect)))
        canvas = make_background(rng, H, W, k, k.clutter)
        deg = sample_degradation(rng, k, DET_BLUR_UNIT)
        return _DetPage(rng, split, W, H, canvas, deg, k)

    def _det_layout(self, page):
        """Lay out 3-12 text lines (fewer fit at times): paragraph blocks and single lines."""
        rng = page.rng
        n_lines = int(rng.integers(3, 13))
        made = 0
        while made < n_lines:
            if rng.random() < 0.25 and n_lines - made >= 2:  # paragraph block
                nb = int(min(n_lines - made, rng.integers(2, 5)))
                self._det_paragraph(page, nb)
                made += nb
            else:
                made += 1
                self._det_single(page)

    def _det_paragraph(self, page, nb):
        """Up to nb horizontal lines, left-aligned, in the first line's face and size."""
        rng = page.rng
        first, face = self._det_new_line(page)
        if first is None:
            return
        M = self._det_place(page, first, 0.0)
        if M is None:
            return
        self._det_draw(page, first, M)
        x = _apply_h(M, first.corners)[:, 0].min()
        y = _apply_h(M, first.corners)[:, 1].min()
        step = first.size * rng.uniform(1.05, 1.9)
        for j in range(1, nb):
            ln, _ = self._det_new_line(page, first.size, face)
            if ln is None:
                break
            Mj = self._det_place(page, ln, 0.0, (x, y + j * step))
            if Mj is None:
                break
            self._det_draw(page, ln, Mj)

    def _det_single(self, page):
        """One line on its own, rotated with probability k.p_rotate."""
        rng, k = page.rng, self.k
        ln, _ = self._det_new_line(page)
        if ln is None:
            return
        angle = rng.uniform(-1, 1) * k.det_max_angle if rng.random() < k.p_rotate else 0.0
        M = self._det_place(page, ln, angle)
        if M is None:
            return
        self._det_draw(page, ln, M)

    def _det_new_line(self, page, size_hint=None, face=None):
        """(Line, face) that fits the canvas width and survives the image's
        blurs, or (None, None) after 10 tries; `face` is kept if it can draw the text."""
        rng, k, W, margin = page.rng, self.k, page.W, page.margin
        for _ in range(10):
            text, f = self.det_sampler.sample(rng, page.split, self.font_for, max_len=36)
            if face is not None and face.covers(text) and not (face.caps_only and text != text.upper()):
                f = face
            top = 1.6 * k.det_min_size if rng.random() < k.p_det_small else page.max_size
            size = size_hint or float(np.exp(rng.uniform(math.log(k.det_min_size), math.log(top))))
            max_w = 0.85 * W - 2 * margin
            width = f.get(size).getlength(text, **f.kw)
            if width > max_w:
                size = size * max_w / width
                if size < k.det_min_size:
                    continue
            try:
                ln = Line(rng, text, f, int(size))
                # grow the text until it survives this image's blurs
                grow = 1.1 * max(page.need_stroke / ln.stroke, page.need_h / ln.ink_h, 1.0 / 1.1)
                if grow > 1.0:
                    size = int(math.ceil(size * grow))
                    if f.get(size).getlength(text, **f.kw) > max_w:
                        continue
                    ln = Line(rng, text, f, size)
                    if ln.stroke < page.need_stroke or ln.ink_h < page.need_h:
                        continue
                return ln, f
            except ValueError:
                continue
        return None, None

    def _det_place(self, page, line, angle, fixed_xy=None):
        """Homography that puts `line` (rotated by `angle`) inside the margins
        without touching a line already placed, at a random spot (25 tries) or
        with its top-left at fixed_xy; None if there is no room."""
        rng, W, H, margin, taken = page.rng, page.W, page.H, page.margin, page.taken
        c = np.array([(line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2])
        M0 = _R(angle) @ _T(-c[0], -c[1])
        q0 = _apply_h(M0, line.corners)
        gap = 0.25 * line.ink_h + 2
        lo_x, hi_x = margin - q0[:, 0].min(), W - margin - q0[:, 0].max()
        lo_y, hi_y = margin - q0[:, 1].min(), H - margin - q0[:, 1].max()
        if hi_x < lo_x or hi_y < lo_y:
            return None
        for _ in range(1 if fixed_xy is not None else 25):
            if fixed_xy is not None:
                px, py = fixed_xy[0] - q0[:, 0].min(), fixed_xy[1] - q0[:, 1].min()
                if not (lo_x <= px <= hi_x and lo_y <= py <= hi_y):
                    return None
            else:
                px, py = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
            q = q0 + [px, py]
            r = (q[:, 0].min() - gap, q[:, 1].min() - gap, q[:, 0].max() + gap, q[:, 1].max() + gap)
            if all(r[2] <= t[0] or r[0] >= t[2] or r[3] <= t[1] or r[1] >= t[3] for t in taken):
                taken.append(r)
                return _T(px, py) @ M0
        return None

    def _det_draw(self, page, line, M):
        quad = draw_line(page.rng, page.canvas, line, M, self.k, page.deg["min_delta"])
        words = [[_apply_h(M, line.box_corners(box)), word] for word, box in line.word_boxes]
        page.items.append([quad, line.text, words])

    def _det_occlude(self, page):
        """Heavy occlusion -> don't care."""
        rng, k, canvas = page.rng, self.k, page.canvas
        for it in page.items:
            if rng.random() < k.p_occlude:
                q = it[0]
                ex = q[1] - q[0]
                ey = q[3] - q[0]
                f0 = rng.uniform(0.0, 0.4)
                f1 = min(1.0, f0 + rng.uniform(0.45, 0.7))
                poly = np.array([q[0] + f0 * ex - 0.15 * ey, q[0] + f1 * ex - 0.15 * ey,
                                 q[0] + f1 * ex + 1.15 * ey, q[0] + f0 * ex + 1.15 * ey])
                mask = np.zeros(canvas.shape[:2], np.uint8)
                cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 255)
                canvas[mask > 0] = _rand_color(rng)
                it[1] = DONT_CARE

    def _det_warp(self, page):
        """Global perspective warp of the canvas and every quad."""
        rng, k, W, H = page.rng, self.k, page.W, page.H
        if rng.random() < k.p_warp:
            src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
            jit = rng.uniform(-1, 1, (4, 2)) * k.det_warp * np.array([W, H])
            Hm = cv2.getPerspectiveTransform(src, np.float32(src + jit))
            page.canvas = cv2.warpPerspective(page.canvas, Hm, (W, H), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_REPLICATE)
            for it in page.items:
                it[0] = _apply_h(Hm, it[0])
                for word in it[2]:
                    word[0] = _apply_h(Hm, word[0])

    def _det_finish(self, page):
        """Degrade the canvas; integer quads, tiny ones "###", degenerate ones dropped."""
        W, H = page.W, page.H
        img = degrade(page.rng, page.canvas, page.deg)
        labels = []
        for quad, text, words in self._label_units(page.items):
            quad = np.clip(np.round(quad), [0, 0], [W - 1, H - 1]).astype(int)
            if _quad_h(quad) < TINY_PX:
                text = DONT_CARE
            if _poly_area(quad) < 4:
                continue
            labels.append({"transcription": text, "points": quad.tolist()})
        return img, page.deg["jpeg"], labels

    def _label_units(self, items):
        """(quad, text, words) per label: each line, or with word labels each word of a line
        (an occluded line's words all don't care)."""
        for quad, text, words in items:
            if self.labels == "line" or len(words) < 2:
                yield quad, text, words
                continue
            for word_quad, word in words:
                yield word_quad, (DONT_CARE if text == DONT_CARE else word), []

    # -- recognition ------------------------------------------------------
    def rec_sample(self, split, idx):
        rng, k = self.rng("rec", split, idx), self.k
        for _ in range(20):
            text, face = self.sampler.sample(rng, split, self.font_for, max_len=24)
            size = int(rng.integers(26, 64))
            try:
                line = Line(rng, text, face, size)
                break
            except ValueError:
                continue
        else:
            raise RuntimeError("could not render a rec sample")
        ih, iw = line.ink_h, line.ink_w
        pad = int(1.0 * size) + 8
        Wc, Hc = int(iw + 2 * pad), int(ih + 2 * pad)
        canvas = make_background(rng, Hc, Wc, k, rng.uniform(0, 0.5 + 1.5 * k.d))
        angle = rng.uniform(-1, 1) * k.rec_max_angle if rng.random() < k.p_rotate else 0.0
        c = np.array([(line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2])
        M = _T(Wc / 2, Hc / 2) @ _R(angle) @ _T(-c[0], -c[1])
        if rng.random() < k.p_warp:
            src = _apply_h(M, line.corners)
            dst = src + rng.uniform(-1, 1, (4, 2)) * k.rec_warp * ih
            M = cv2.getPerspectiveTransform(np.float32(src), np.float32(dst)).astype(np.float64) @ M
        deg = sample_degradation(rng, k, 1.0)
        quad = draw_line(rng, canvas, line, M, k, deg["min_delta"])
        my0, my1 = rng.uniform(0.04, 0.3, 2) * ih
        mx0, mx1 = rng.uniform(0.04, 0.5, 2) * ih
        if rng.random() < k.p_neighbor:
            # part of the previous / next text line pokes into the crop margin
            above = rng.random() < 0.5
            margin = my0 if above else my1
            ntext, nface = self.sampler.sample(rng, split, self.font_for, max_len=30)
            try:
                nb = Line(rng, ntext, nface, max(10, int(size * rng.uniform(0.8, 1.2))))
            except ValueError:
                nb = None
            if nb is not None:
                gap = margin * rng.uniform(0.0, 0.7)  # the rest of the margin shows it
                dx = line.box[0] - nb.box[0] + rng.uniform(-0.5, 0.3) * iw
                dy = (line.box[1] - gap - nb.box[3]) if above else (line.box[3] + gap - nb.box[1])
                draw_line(rng, canvas, nb, M @ _T(dx, dy), k, deg["min_delta"])
        if rng.random() < k.p_strike:  # a line crossing the word
            y = rng.uniform(quad[:, 1].min(), quad[:, 1].max())
            col = _rand_color(rng)
            cv2.line(canvas, (0, int(y + rng.uniform(-0.3, 0.3) * ih)),
                     (Wc, int(y + rng.uniform(-0.3, 0.3) * ih)), col.tolist(),
                     int(max(1, min(ih * rng.uniform(0.03, 0.08), 0.6 * line.stroke))), cv2.LINE_AA)
        x0 = int(max(0, quad[:, 0].min() - mx0))
        x1 = int(min(Wc, quad[:, 0].max() + mx1 + 1))
        y0 = int(max(0, quad[:, 1].min() - my0))
        y1 = int(min(Hc, quad[:, 1].max() + my1 + 1))
        crop = canvas[y0:y1, x0:x1]
        th = int(rng.integers(32, 65))
        tw = max(8, int(round((x1 - x0) * th / (y1 - y0))))
        interp = cv2.INTER_AREA if th < (y1 - y0) else cv2.INTER_CUBIC
        crop = np.clip(cv2.resize(crop, (tw, th), interpolation=interp), 0, 255)
        text_h = ih * th / (y1 - y0)
        scale_degradation(deg, text_h / 48.0)
        fit_degradation(deg, line.stroke * th / (y1 - y0), text_h)
        img = degrade(rng, crop, deg)
        return img, deg["jpeg"], line.text


class _DetPage:
    """One det image while Generator composes it: canvas, degradation, the
    limits that follow from them, and the lines placed so far."""

    def __init__(self, rng, split, W, H, canvas, deg, k):
        self.rng, self.split = rng, split
        self.W, self.H = W, H
        self.canvas, self.deg = canvas, deg
        self.need_stroke = needed_stroke(deg)
        self.need_h = 8.0 / deg["lowres"][0] if deg["lowres"] else 0.0
        self.margin = 0.03 * min(W, H) + 0.6 * k.det_warp * min(W, H)
        self.taken = []   # axis-aligned rects already used
        self.items = []   # [quad, text, [[word quad, word], ...]]
        self.max_size = max(k.det_min_size + 4, min(0.11 * min(W, H), 80.0))


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _write_label_file(path, lines):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for ln in lines:
            f.write(ln + "\n")
    os.replace(tmp, path)


def _progress(total, quiet):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in requirements.txt, but do not insist
        tqdm = None
    if tqdm is None or quiet:
        class _Null:
            def update(self, n=1):
                pass

            def set_description(self, s):
                pass

            def close(self):
                pass
        return _Null()
    return tqdm(total=total, unit="img", dynamic_ncols=True)

