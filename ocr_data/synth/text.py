"""What the text says: word lists and TextSampler, which draws transcriptions
(English, numbers, dates, prices, Chinese, mixed) and keeps train and eval apart."""
import zlib

import numpy as np

EVAL_BUCKETS = 5          # crc32(text) % EVAL_BUCKETS == 0 -> eval-only text

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


def has_cjk(text):
    """True if `text` holds a hanzi or a full-width form (code points from U+2E80 on)."""
    return any(ord(c) >= 0x2E80 for c in text)


class TextSampler:
    """Draws transcriptions from a mix of English, numeric and Chinese kinds.

    Every result only uses dictionary characters (plus single inner spaces).
    """

    KINDS = (("en_words", 0.22), ("en_code", 0.05), ("number", 0.05),
             ("date", 0.06), ("time", 0.03), ("price", 0.06), ("phone", 0.04),
             ("web", 0.03), ("zh_words", 0.24), ("zh_random", 0.12),
             ("mixed", 0.10))

    # English-only text, as in ICDAR2015's street images (--det_text latin): the Latin kinds
    # with their weights, word phrases first
    LATIN_KINDS = (("en_words", 0.50), ("en_code", 0.08), ("number", 0.08), ("date", 0.06),
                   ("time", 0.04), ("price", 0.10), ("phone", 0.07), ("web", 0.07))

    def __init__(self, res, latin_only=False):
        self.res = res
        self.latin_only = latin_only
        kinds = self.LATIN_KINDS if latin_only else self.KINDS
        self.kinds = [k for k, _ in kinds]
        p = np.array([w for _, w in kinds])
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
            if self.latin_only and has_cjk(text):  # "2024年1月2日", "￥"
                continue
            if (zlib.crc32(text.encode("utf-8")) % EVAL_BUCKETS == 0) != want_eval:
                continue
            return text, face
        raise RuntimeError("text sampler failed to produce a text")

