"""Drawing: backgrounds, clutter, rendered text lines (Line), the homography
helpers that place them, and draw_line, which composites a line legibly."""
import math

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .degrade import MIN_CONTRAST

# --------------------------------------------------------------------------
# Rendering primitives (images are float32 RGB in [0, 255])
# --------------------------------------------------------------------------


def _lum(c):
    return 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]


def _rand_color(rng, lo=0, hi=255):
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _color_with_lum(rng, target):
    """A random hue whose luminance is about `target`."""
    base = rng.uniform(0, 255, 3)
    sat = rng.uniform(0.0, 1.0)
    base = _lum(base) + (base - _lum(base)) * sat
    lum = max(_lum(base), 1e-3)
    if target <= lum:
        c = base * (target / lum)
    else:
        c = 255 - (255 - base) * ((255 - target) / max(255 - lum, 1e-3))
    return np.clip(c, 0, 255).astype(np.float32)


def _bg_color(rng):
    """Background colour: often paper-like neutral, otherwise anything."""
    if rng.random() < 0.45:
        v = rng.uniform(150, 250) if rng.random() < 0.75 else rng.uniform(10, 90)
        return np.clip(v + rng.normal(0, 8, 3), 0, 255).astype(np.float32)
    return _rand_color(rng)


def make_background(rng, h, w, k, clutter):
    r = rng.random()
    if r < 0.3:      # solid
        img = np.empty((h, w, 3), np.float32)
        img[:] = _bg_color(rng)
    elif r < 0.55:   # linear gradient
        c0, c1 = _bg_color(rng), _bg_color(rng)
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(a) + yy * np.sin(a)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        img = c0 + (c1 - c0) * t[..., None]
    elif r < 0.8:    # smooth noise texture
        cell = int(rng.integers(4, 40))
        small = rng.uniform(-1, 1, (max(2, h // cell), max(2, w // cell), 3)).astype(np.float32)
        small[..., 1:] = small[..., :1] + rng.uniform(0, 0.5) * small[..., 1:]  # mostly luminance
        tex = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        amp = rng.uniform(10, 20 + 20 * k.d)
        img = _bg_color(rng) + amp * tex
    else:            # soft blobs
        img = np.empty((h, w, 3), np.float32)
        img[:] = _bg_color(rng)
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rad = rng.uniform(0.15, 0.6) * max(h, w)
            yy, xx = np.ogrid[0:h, 0:w]
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad * rad)).astype(np.float32)
            img += (_rand_color(rng) - img) * (g[..., None] * rng.uniform(0.3, 0.8))
    if rng.random() < 0.5:  # fine grain ("paper")
        img += rng.normal(0, rng.uniform(1, 6), (h, w, 1)).astype(np.float32)
    n = int(rng.poisson(clutter))
    if n:
        img = draw_clutter(rng, img, n)
    return np.clip(img, 0, 255)


def draw_clutter(rng, img, n):
    """Random rectangles, ellipses, lines and polylines (no text)."""
    h, w = img.shape[:2]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    over = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    dr = ImageDraw.Draw(over)
    s = max(h, w)
    for _ in range(n):
        col = tuple(int(v) for v in rng.integers(0, 256, 3)) + (int(rng.integers(60, 256)),)
        x0, y0 = rng.uniform(-0.1 * w, w), rng.uniform(-0.1 * h, h)
        x1, y1 = x0 + rng.uniform(0.02, 0.5) * s, y0 + rng.uniform(0.02, 0.5) * s
        t = int(rng.integers(7))
        lw = int(rng.integers(1, max(2, s // 80)))
        if t == 0:
            if rng.random() < 0.5:
                dr.rectangle([x0, y0, x1, y1], fill=col)
            else:
                dr.rectangle([x0, y0, x1, y1], outline=col, width=lw)
        elif t == 1:
            if rng.random() < 0.5:
                dr.ellipse([x0, y0, x1, y1], fill=col)
            else:
                dr.ellipse([x0, y0, x1, y1], outline=col, width=lw)
        elif t == 2:
            dr.line([x0, y0, rng.uniform(0, w), rng.uniform(0, h)], fill=col, width=lw)
        elif t == 3:
            pts = [(float(x0 + rng.uniform(-0.2, 0.2) * s), float(y0 + rng.uniform(-0.2, 0.2) * s))
                   for _ in range(int(rng.integers(3, 7)))]
            dr.line(pts, fill=col, width=lw)
        elif t == 4:
            pts = [(float(x0 + rng.uniform(-0.15, 0.15) * s), float(y0 + rng.uniform(-0.15, 0.15) * s))
                   for _ in range(3)]
            dr.polygon(pts, fill=col)
        elif t == 5:  # barcode-like bars: a classic detector false positive
            bh = rng.uniform(0.02, 0.1) * s
            x = x0
            for _ in range(int(rng.integers(8, 40))):
                bw = rng.uniform(0.5, 3.0) * max(1.0, s / 400)
                dr.rectangle([x, y0, x + bw, y0 + bh], fill=col)
                x += bw + rng.uniform(0.5, 4.0) * max(1.0, s / 400)
        else:  # dotted / dashed row
            r = rng.uniform(0.6, 2.5) * max(1.0, s / 400)
            step = r * rng.uniform(2.5, 6.0)
            dash = rng.random() < 0.5
            for j in range(int(rng.integers(6, 40))):
                x = x0 + j * step
                if dash:
                    dr.line([x, y0, x + 1.5 * r, y0], fill=col, width=max(1, int(r)))
                else:
                    dr.ellipse([x - r, y0 - r, x + r, y0 + r], fill=col)
    pil = Image.alpha_composite(pil.convert("RGBA"), over).convert("RGB")
    return np.asarray(pil).astype(np.float32)


class Line:
    """One rendered text line: ink masks and the tight ink box."""

    def __init__(self, rng, text, face, size):
        font = face.get(size)
        self.text, self.size = text, size
        stroke = int(max(1, round(size * rng.uniform(0.03, 0.08)))) if rng.random() < 0.12 else 0
        track = size * rng.uniform(-0.02, 0.3) if rng.random() < 0.2 else 0.0
        pad = int(size * 0.6) + stroke + 4
        kw = face.kw
        asc, desc = font.getmetrics()
        adv = [font.getlength(c, **kw) for c in text] if track else None
        width = (sum(adv) + track * (len(text) - 1)) if track else font.getlength(text, **kw)
        W, H = int(math.ceil(width)) + 2 * pad, asc + desc + 2 * pad
        fill = Image.new("L", (W, H), 0)
        outline = Image.new("L", (W, H), 0) if stroke else None
        targets = [(fill, 0)] + ([(outline, stroke)] if stroke else [])
        for im, sw in targets:
            dr = ImageDraw.Draw(im)
            if track:
                x = float(pad)
                for c, a in zip(text, adv):
                    dr.text((x, pad), c, font=font, fill=255, stroke_width=sw, stroke_fill=255, **kw)
                    x += a + track
            else:
                dr.text((pad, pad), text, font=font, fill=255, stroke_width=sw, stroke_fill=255, **kw)
        self.fill = np.asarray(fill)
        self.outline = np.asarray(outline) if stroke else None
        ink = self.outline if stroke else self.fill
        ys, xs = np.nonzero(ink > 40)
        if len(xs) == 0:
            raise ValueError("empty render")
        self.box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        self.word_boxes = self._word_boxes(ink, font, kw, pad, adv, track)
        hanzi = any(ord(c) >= 0x2E80 for c in text)
        self.stroke = face.stroke_ratio(hanzi) * size + 2 * stroke  # px
        self.shadow = None
        if rng.random() < 0.08:
            self.shadow = (rng.uniform(-0.08, 0.08) * size, rng.uniform(0.03, 0.1) * size)

    def _word_boxes(self, ink, font, kw, pad, adv, track):
        """[(word, tight ink box)] for each space-separated word, as ICDAR2015 labels words.

        A word's columns come from the font's advance up to its first and past its last
        character; its box is the ink inside those columns. No random draw, so the data a
        seed gives is the same with line or word labels.
        """
        def x_at(i):  # left edge of character i
            if track:
                return pad + sum(adv[:i]) + track * i
            return pad + font.getlength(self.text[:i], **kw)
        out, start = [], 0
        for word in self.text.split(" "):
            end = start + len(word)
            if word:
                a, b = int(math.floor(x_at(start))), int(math.ceil(x_at(end) - (track if track else 0)))
                cols = ink[:, max(a - 1, 0):b + 1] > 40
                ys, xs = np.nonzero(cols)
                if len(xs):
                    x0 = max(a - 1, 0)
                    out.append((word, (float(x0 + xs.min()), float(ys.min()), float(x0 + xs.max() + 1),
                                       float(ys.max() + 1))))
            start = end + 1
        return out

    @staticmethod
    def box_corners(box):
        x0, y0, x1, y1 = box
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)

    @property
    def corners(self):
        return self.box_corners(self.box)

    @property
    def ink_h(self):
        return self.box[3] - self.box[1]

    @property
    def ink_w(self):
        return self.box[2] - self.box[0]


def _apply_h(M, pts):
    pts = np.asarray(pts, np.float64)
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ M.T
    return p[:, :2] / p[:, 2:3]


def _T(tx, ty):
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def _R(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                    np.float64)


def _paste_mask(canvas, mask, M, color, opacity=1.0, blur=0.0):
    h, w = mask.shape
    H, W = canvas.shape[:2]
    q = _apply_h(M, [[0, 0], [w, 0], [w, h], [0, h]])
    x0, y0 = max(0, int(math.floor(q[:, 0].min()))), max(0, int(math.floor(q[:, 1].min())))
    x1, y1 = min(W, int(math.ceil(q[:, 0].max())) + 1), min(H, int(math.ceil(q[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    warped = cv2.warpPerspective(mask, _T(-x0, -y0) @ M, (x1 - x0, y1 - y0),
                                 flags=cv2.INTER_LINEAR, borderValue=0)
    a = warped.astype(np.float32) * (opacity / 255.0)
    if blur > 0:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    region = canvas[y0:y1, x0:x1]
    region += (np.asarray(color, np.float32) - region) * a[..., None]


def _local_lum(canvas, quad):
    """10th / 90th percentile of the background luminance under a quad."""
    H, W = canvas.shape[:2]
    x0, y0 = max(0, int(quad[:, 0].min())), max(0, int(quad[:, 1].min()))
    x1, y1 = min(W, int(quad[:, 0].max()) + 1), min(H, int(quad[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return 128.0, 128.0
    lo, hi = np.percentile(_lum(canvas[y0:y1, x0:x1]), [10, 90])
    return float(lo), float(hi)


def draw_line(rng, canvas, line, M, k, min_delta=MIN_CONTRAST):
    """Composite `line` onto `canvas` through homography M; returns its quad.

    The text/background luminance difference is at least `min_delta` (where
    the background leaves room for it) so that later fading cannot make a
    labelled line invisible.
    """
    quad = _apply_h(M, line.corners)
    lo, hi = _local_lum(canvas, quad)
    bg = 0.5 * (lo + hi)
    if rng.random() < k.p_low_contrast:
        delta = rng.uniform(MIN_CONTRAST, 2.2 * MIN_CONTRAST)
    else:
        delta = rng.uniform(90, 230)
    delta = max(delta, min_delta)
    # keep the gap to (nearly) all of the background under the text
    room_dn, room_up = lo, 255.0 - hi
    down = room_dn >= room_up
    if rng.random() < 0.1:
        down = not down
    if (room_dn if down else room_up) < min(delta, max(room_dn, room_up)):
        down = room_dn >= room_up  # only the roomier side fits
    target = float(np.clip(lo - delta if down else hi + delta, 0, 255))
    color = _color_with_lum(rng, target)
    if (lo - target if down else target - hi) < 0.8 * min_delta and line.outline is None:
        # background too busy for any single colour: add a contrasting halo
        r = max(1, int(round(0.06 * line.size)))
        halo = cv2.dilate(line.fill, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        hl = min(255.0, target + 160.0) if down else max(0.0, target - 160.0)
        _paste_mask(canvas, halo, M, _color_with_lum(rng, hl))
    if line.shadow is not None:
        sc = _color_with_lum(rng, float(np.clip(bg - 0.6 * (color.mean() - bg), 0, 255)))
        _paste_mask(canvas, line.outline if line.outline is not None else line.fill,
                    M @ _T(*line.shadow), sc,
                    opacity=0.6, blur=max(0.5, line.size * 0.04))
    if line.outline is not None:
        oc = _color_with_lum(rng, float(np.clip(2 * bg - target, 0, 255)))
        _paste_mask(canvas, line.outline, M, oc)
    _paste_mask(canvas, line.fill, M, color)
    return quad



# --------------------------------------------------------------------------
# Quad geometry (det labels)
# --------------------------------------------------------------------------

def _quad_h(q):
    q = np.asarray(q, np.float64)
    return 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))


def _poly_area(q):
    q = np.asarray(q, np.float64)
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))

