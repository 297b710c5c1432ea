"""Degradations (fading, shading, blur, motion, low resolution, noise, JPEG),
drawn up front per image so the text can be rendered to survive them."""
import math
from pathlib import Path

import cv2
import numpy as np

MIN_CONTRAST = 32.0       # least text/background luminance gap after fading

# --------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------


def stroke_thickness(mask):
    """Mean stroke width (px) of a text mask: 2 * ink area / contour length."""
    m = (mask >= 128).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perim = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(m.sum()) / max(perim, 1.0)


def sample_degradation(rng, k, unit):
    """Every random degradation parameter of one image, drawn up front so the
    text can be rendered to survive them. `unit` scales the blur lengths
    (1.0 = text 48 px high)."""
    p = {"fade": rng.uniform(0.45, 0.85) if rng.random() < k.p_fade else 1.0,
         "shade": None, "noise": None, "blur": 0.0, "motion": None, "lowres": None}
    if rng.random() < k.p_shade:  # (base gain, extra gain, cx, cy, radius), relative
        p["shade"] = (rng.uniform(0.45, 0.85), rng.uniform(0.15, 0.55), rng.random(),
                      rng.random(), rng.uniform(0.5, 1.5))
    if rng.random() < k.p_noise:
        p["noise"] = (rng.uniform(2.0, k.noise_std), bool(rng.random() < 0.5))
    blurs = []
    if rng.random() < k.p_blur:
        p["blur"] = rng.uniform(0.3, k.blur_sigma) * unit
        blurs.append("blur")
    if rng.random() < k.p_motion:
        p["motion"] = (rng.uniform(2.5, 3.0 + 4.0 * k.d) * unit, rng.uniform(0, 180))
        blurs.append("motion")
    if rng.random() < k.p_lowres:
        p["lowres"] = (rng.uniform(k.lowres_min, 0.95), bool(rng.random() < 0.7))
        blurs.append("lowres")
    if len(blurs) == 3:  # never all three blurring effects at once
        drop = blurs[int(rng.integers(3))]
        p[drop] = 0.0 if drop == "blur" else None
    p["jpeg"] = int(rng.integers(k.jpeg_min, 96))
    # text must keep MIN_CONTRAST, and 3.5 noise sigmas, after fading/shading
    need = max(MIN_CONTRAST, 3.5 * p["noise"][0] if p["noise"] else 0.0)
    base = p["shade"][0] if p["shade"] else 1.0
    if need / (p["fade"] * base) > 200.0:
        p["fade"] = min(1.0, need / (200.0 * base))
        if need / (p["fade"] * base) > 200.0:
            p["shade"], base = None, 1.0
    p["min_delta"] = min(need / (p["fade"] * base), 200.0)
    return p


def needed_stroke(p):
    """Thinnest stroke (px) that stays legible under the blurs in p."""
    t = 0.0
    if p["blur"]:
        t = max(t, p["blur"] / 0.6)
    if p["motion"]:
        t = max(t, p["motion"][0] / 3.0)
    if p["lowres"]:
        t = max(t, 1.2 / p["lowres"][0])
    return t


def fit_degradation(p, stroke, text_h):
    """Weaken the blurs in p (in place) for a stroke / text height in px."""
    p["blur"] = min(p["blur"], 0.6 * stroke)
    if p["motion"] and p["motion"][0] > 3.0 * stroke:
        p["motion"] = (3.0 * stroke, p["motion"][1]) if 3.0 * stroke >= 2.5 else None
    if p["lowres"]:
        f = max(p["lowres"][0], 1.2 / max(stroke, 1e-3), 12.0 / max(text_h, 1.0))
        p["lowres"] = (f, p["lowres"][1]) if f < 0.95 else None


def scale_degradation(p, s):
    p["blur"] *= s
    if p["motion"]:
        p["motion"] = (p["motion"][0] * s, p["motion"][1])


def degrade(rng, img, p):
    """Apply the degradations p to a float32 image; returns uint8."""
    h, w = img.shape[:2]
    if p["shade"] is not None:  # uneven illumination
        base, extra, cx, cy, rad = p["shade"]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy, rad = cx * w, cy * h, rad * max(h, w)
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad * rad))
        img = img * (base + extra * g)[..., None]
    if p["fade"] < 1.0:  # contrast loss
        m = img.mean()
        img = m + (img - m) * p["fade"]
    if p["blur"] > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), p["blur"])
    if p["motion"]:
        length, angle = p["motion"]
        n = int(math.ceil(length)) | 1
        ker = np.zeros((n, n), np.float32)
        ker[n // 2, :] = 1.0
        c = ((n - 1) / 2.0, (n - 1) / 2.0)
        ker = cv2.warpAffine(ker, cv2.getRotationMatrix2D(c, angle, length / n), (n, n))
        img = cv2.filter2D(img, -1, ker / max(float(ker.sum()), 1e-6))
    if p["lowres"]:
        f, linear = p["lowres"]
        small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))),
                           interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST)
    if p["noise"]:
        std, mono = p["noise"]
        img = img + rng.normal(0, std, (h, w, 1 if mono else 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_jpeg(path, rgb_u8, quality):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"jpeg encoding failed for {path}")
    Path(path).write_bytes(buf.tobytes())

