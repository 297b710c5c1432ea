"""ocr_data/synth/ (synthetic det/rec data, `python -m ocr_data.synth`) and
ocr_data/icdar2015.py (ICDAR2015 converter). Fast, no paddle."""
import json
import os

import pytest
from PIL import Image

from ocr_data import icdar2015, synth

SMALL = ["--det_train", "2", "--det_eval", "2", "--rec_train", "12", "--rec_eval", "12",
         "--det_size", "320", "--quiet"]


def _gen(out, seed, *extra):
    return synth.main(["--out", str(out), "--seed", str(seed), *SMALL, *extra])


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _labels(out, kind, split):
    rows = []
    for line in _read(out / kind / f"{split}.txt").splitlines():
        path, label = line.split("\t", 1)
        rows.append((path, json.loads(label) if kind == "det" else label))
    return rows


def _texts(out, split):
    texts = {t for _, t in _labels(out, "rec", split)}
    for _, boxes in _labels(out, "det", split):
        texts |= {b["transcription"] for b in boxes if b["transcription"] != "###"}
    return texts


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    res = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        res[name] = _gen(root / name, seed)
    return root, res


# ------------------------------------------------------------------- synth


def test_layout_and_counts(gen):
    root, res = gen
    out = root / "a"
    for kind, n_train, n_eval in (("det", 2, 2), ("rec", 12, 12)):
        for split, n in (("train", n_train), ("eval", n_eval)):
            rows = _labels(out, kind, split)
            assert len(rows) == n == res["a"][kind][split]["count"]
            prefix = "img_" if kind == "det" else "word_"
            for i, (path, _) in enumerate(rows):
                assert path == f"{split}/{prefix}{i:05d}.jpg"
                assert (out / kind / path).is_file()  # relative to the split's data_dir
    assert not list(out.rglob("*.tmp"))


def test_same_seed_is_byte_identical_other_seed_differs(gen):
    root, _ = gen
    for kind in ("det", "rec"):
        for split in ("train", "eval"):
            a = (root / "a" / kind / f"{split}.txt").read_bytes()
            assert a == (root / "b" / kind / f"{split}.txt").read_bytes()
            assert a != (root / "c" / kind / f"{split}.txt").read_bytes()
    img = "det/eval/img_00000.jpg"
    assert (root / "a" / img).read_bytes() == (root / "b" / img).read_bytes()


def test_train_and_eval_texts_are_disjoint(gen):
    root, _ = gen
    for name in ("a", "c"):
        train, ev = _texts(root / name, "train"), _texts(root / name, "eval")
        assert train and ev
        assert not train & ev


def test_det_labels_are_valid_quads_inside_the_image(gen):
    root, _ = gen
    n_boxes = 0
    for split in ("train", "eval"):
        for path, boxes in _labels(root / "a", "det", split):
            w, h = Image.open(root / "a" / "det" / path).size
            assert isinstance(boxes, list) and boxes
            for b in boxes:
                assert set(b) == {"transcription", "points"}
                assert isinstance(b["transcription"], str) and b["transcription"]
                pts = b["points"]
                assert len(pts) == 4
                for x, y in pts:
                    assert isinstance(x, int) and isinstance(y, int)
                    assert 0 <= x < w and 0 <= y < h
                # clockwise on screen (y down) -> positive shoelace area
                area = sum(pts[i][0] * pts[(i + 1) % 4][1] - pts[(i + 1) % 4][0] * pts[i][1]
                           for i in range(4))
                assert area > 0
                n_boxes += 1
    assert n_boxes >= 8


def test_labels_only_use_dictionary_characters(gen):
    root, _ = gen
    allowed = set(synth.load_char_dict()) | {" "}
    texts = _texts(root / "a", "train") | _texts(root / "a", "eval")
    for t in texts:
        assert t == t.strip() and "  " not in t
        assert set(t) <= allowed, t
    # Latin and Chinese both show up, even in this tiny set
    assert any(any(ord(c) >= 0x4E00 for c in t) for t in texts)
    assert any(any(c.isascii() and c.isalpha() for c in t) for t in texts)


def test_word_labels_split_lines_into_words_of_the_same_images(gen, tmp_path):
    from shapely.geometry import Polygon
    root, _ = gen
    line_out, word_out = root / "a", tmp_path / "words"
    _gen(word_out, 0, "--det_labels", "word")
    split_lines = 0
    for split in ("train", "eval"):
        for (path, lines), (_, words) in zip(_labels(line_out, "det", split), _labels(word_out, "det", split)):
            # the labels change, the pixels do not
            assert (line_out / "det" / path).read_bytes() == (word_out / "det" / path).read_bytes()
            for line in lines:
                shape = Polygon(line["points"]).buffer(2)
                inside = [w for w in words if Polygon(w["points"]).intersection(shape).area
                          >= 0.9 * Polygon(w["points"]).area]
                parts = line["transcription"].split()
                if line["transcription"] != "###" and len(parts) > 1:
                    split_lines += 1
                    cared = [w["transcription"] for w in inside if w["transcription"] != "###"]
                    assert set(cared) <= set(parts), (line, inside)
            assert all(" " not in w["transcription"] for w in words)
    assert split_lines, "no multi-word line in the test set: the test checks nothing"
    meta = json.loads(_read(word_out / "synth_meta.json"))
    assert meta["det_labels"] == "word"


def test_latin_det_text_has_no_hanzi_and_leaves_rec_alone(gen, tmp_path):
    root, _ = gen
    out = tmp_path / "latin"
    _gen(out, 0, "--det_text", "latin")
    det = [b["transcription"] for split in ("train", "eval") for _, boxes in _labels(out, "det", split)
           for b in boxes if b["transcription"] != "###"]
    assert det and not [t for t in det if any(ord(c) >= 0x2E80 for c in t)]
    default = [b["transcription"] for _, boxes in _labels(root / "a", "det", "train") for b in boxes]
    assert any(ord(c) >= 0x2E80 for t in default for c in t), "the default mix has Chinese"
    assert _read(out / "rec" / "train.txt") == _read(root / "a" / "rec" / "train.txt")
    assert json.loads(_read(out / "synth_meta.json"))["det_text"] == "latin"


def test_refuses_non_empty_out_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as e:
        _gen(out, 0)
    assert str(e.value).startswith("error:") and "--overwrite" in str(e.value)
    assert not (out / "det").exists()
    res = synth.main(["--out", str(out), "--overwrite", "--det_train", "1", "--det_eval", "0",
                      "--rec_train", "2", "--rec_eval", "0", "--det_size", "256", "--quiet"])
    assert res["det"]["train"]["count"] == 1
    assert (out / "keep.txt").exists()  # only det/ and rec/ are replaced


def test_difficulty_zero_and_bad_args(tmp_path):
    res = synth.main(["--out", str(tmp_path / "clean"), "--difficulty", "0", "--det_train", "1",
                      "--det_eval", "1", "--rec_train", "3", "--rec_eval", "3",
                      "--det_size", "256", "--quiet"])
    assert res["rec"]["eval"]["count"] == 3
    with pytest.raises(SystemExit) as e:
        synth.main(["--out", str(tmp_path / "x"), "--difficulty", "-1"])
    assert str(e.value).startswith("error:")


def test_help_shows_usage(capsys):
    with pytest.raises(SystemExit) as e:
        synth.main(["--help"])
    assert e.value.code == 0
    assert "python -m ocr_data.synth --out ocr_data/demo" in capsys.readouterr().out


# ------------------------------------------------------------ icdar2015.py

BOM = "\ufeff"


@pytest.fixture
def ic15(tmp_path):
    root = tmp_path / "icdar2015"
    gt, imgs, words = root / "gt", root / "ch4_test_images", root / "words"
    for d in (gt, imgs, words):
        d.mkdir(parents=True)
    (gt / "gt_img_1.txt").write_text(
        BOM + "377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "493,115,519,115,519,131,493,131,[06]\r\n"
        "374,155,409,155,409,170,374,170,###\r\n", encoding="utf-8")
    (gt / "gt_img_2.txt").write_text("1,2,30,2,30,20,1,20,Hello, world,again\n\n", encoding="utf-8")
    (gt / "gt_img_10.txt").write_text("5,5,50,5,50,25,5,25,###\n", encoding="utf-8")
    (gt / "readme.txt").write_text("not a gt file")
    for n in (1, 2, 10):
        (imgs / f"img_{n}.jpg").write_bytes(b"")
    (words / "gt.txt").write_text(
        BOM + 'word_1.png, "Genaxis Theatre"\r\n'
        'word_2.png, "a, b"\r\n'
        'word_3.png, "\\"HOUSE\\""\r\n'
        'word_4.png, "C:\\\\"\r\n', encoding="utf-8")
    for n in range(1, 5):
        (words / f"word_{n}.png").write_bytes(b"")
    return root


def _det_args(root, out):
    return ["--det_gt_dir", str(root / "gt"), "--det_img_dir", str(root / "ch4_test_images"),
            "--det_out_label", str(out)]


def test_icdar2015_det(ic15):
    out = ic15 / "det" / "test.txt"
    res = icdar2015.main(_det_args(ic15, out))
    assert res["det"] == {"label": str(out), "images": 3, "boxes": 5, "ignored": 2}
    rows = [ln.split("\t") for ln in _read(out).splitlines()]
    assert [p for p, _ in rows] == ["../ch4_test_images/img_1.jpg", "../ch4_test_images/img_2.jpg",
                                    "../ch4_test_images/img_10.jpg"]
    for p, _ in rows:  # relative to the label file's directory
        assert os.path.isfile(os.path.join(out.parent, p))
    boxes = [json.loads(lb) for _, lb in rows]
    assert boxes[0][0] == {"transcription": "Genaxis Theatre",
                           "points": [[377, 117], [463, 117], [465, 130], [378, 130]]}
    assert [b["transcription"] for b in boxes[0]] == ["Genaxis Theatre", "[06]", "###"]
    assert boxes[1] == [{"transcription": "Hello, world,again",
                         "points": [[1, 2], [30, 2], [30, 20], [1, 20]]}]
    assert boxes[2][0]["transcription"] == "###"


def test_icdar2015_rec(ic15):
    out = ic15 / "rec" / "test.txt"
    res = icdar2015.main(["--rec_gt", str(ic15 / "words" / "gt.txt"), "--rec_out_label", str(out)])
    assert res == {"rec": {"label": str(out), "words": 4}}
    assert _read(out).splitlines() == [
        "../words/word_1.png\tGenaxis Theatre",
        "../words/word_2.png\ta, b",
        '../words/word_3.png\t"HOUSE"',
        "../words/word_4.png\tC:\\",
    ]


def test_icdar2015_malformed_lines_name_file_and_line(ic15):
    (ic15 / "gt" / "gt_img_2.txt").write_text("1,2,30,2,30,20,1,20,ok\n1,2,3,4,oops\n",
                                              encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        icdar2015.main(_det_args(ic15, ic15 / "det.txt"))
    msg = str(e.value)
    assert msg.startswith("error:") and "gt_img_2.txt:2" in msg and "\n" not in msg
    assert not (ic15 / "det.txt").exists()

    (ic15 / "words" / "gt.txt").write_text('word_1.png, "fine"\nword_2.png, no quotes\n',
                                           encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        icdar2015.main(["--rec_gt", str(ic15 / "words" / "gt.txt"),
                        "--rec_out_label", str(ic15 / "rec.txt")])
    assert str(e.value).startswith("error:") and "gt.txt:2" in str(e.value)


def test_icdar2015_missing_inputs(ic15, tmp_path):
    with pytest.raises(SystemExit) as e:
        icdar2015.main(["--det_gt_dir", str(tmp_path / "nope"), "--det_img_dir", str(ic15),
                        "--det_out_label", str(tmp_path / "o.txt")])
    assert str(e.value).startswith("error:") and "nope" in str(e.value)
    (ic15 / "ch4_test_images" / "img_10.jpg").unlink()
    with pytest.raises(SystemExit) as e:
        icdar2015.main(_det_args(ic15, tmp_path / "o.txt"))
    assert "img_10" in str(e.value)
    with pytest.raises(SystemExit) as e:
        icdar2015.main(["--rec_gt", str(tmp_path / "missing.txt"),
                        "--rec_out_label", str(tmp_path / "r.txt")])
    assert str(e.value).startswith("error:")
    with pytest.raises(SystemExit) as e:
        icdar2015.main(["--det_gt_dir", str(ic15 / "gt")])  # incomplete group
    assert str(e.value).startswith("error:")


# ------------------------------------- icdar2015.py crop / split (PaddleOCR labels)

def _gradient(w=64, h=48):
    import numpy as np
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)  # BGR, all < 256


def _rotated_quad(cx, cy, half_w, half_h, degrees):
    import math
    a = math.radians(degrees)
    ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
    return [[cx + sx * half_w * ux + sy * half_h * vx, cy + sx * half_w * uy + sy * half_h * vy]
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # TL, TR, BR, BL


RECT, TALL, EDGE = [[10, 5], [40, 5], [40, 20], [10, 20]], [[50, 2], [58, 2], [58, 40], [50, 40]], \
    [[-5, -5], [10, -5], [10, 5], [-5, 5]]


@pytest.fixture
def det_set(tmp_path):
    """root/det/train.txt over root/det/imgs/img_{1,2}.png (lossless, so crops compare exactly)."""
    import cv2
    root = tmp_path / "data"
    (root / "det" / "imgs").mkdir(parents=True)
    img = _gradient()
    cv2.imwrite(str(root / "det" / "imgs" / "img_1.png"), img)
    cv2.imwrite(str(root / "det" / "imgs" / "img_2.png"), img)
    boxes1 = [{"transcription": "ABC", "points": RECT},                                  # k=1
              {"transcription": "###", "points": [[1, 30], [9, 30], [9, 40], [1, 40]]},  # k=2
              {"transcription": "rot", "points": _rotated_quad(32, 30, 12, 4, 20)},      # k=3
              {"transcription": "TALL", "points": TALL},                                 # k=4
              {"transcription": "flat", "points": [[5, 44], [20, 44], [30, 44], [5, 44]]},  # k=5
              {"transcription": "edge", "points": EDGE}]                                 # k=6
    boxes2 = [{"transcription": "###", "points": RECT}]
    (root / "det" / "train.txt").write_text(
        f"imgs/img_1.png\t{json.dumps(boxes1)}\nimgs/img_2.png\t{json.dumps(boxes2)}\n",
        encoding="utf-8")
    return root, img


def _crop_args(root, out_dir, out_label, *extra):
    return ["crop", "--det_label", str(root / "det" / "train.txt"), "--out_dir", str(out_dir),
            "--out_label", str(out_label), *extra]


def _rows(label):
    return [ln.split("\t", 1) for ln in _read(label).splitlines()]


def test_crop_names_counts_and_relative_paths(det_set, tmp_path):
    root, _ = det_set
    out_label, out_dir = root / "rec" / "train.txt", root / "crops"
    res = icdar2015.main(_crop_args(root, out_dir, out_label))["crop"]
    assert res == {"label": str(out_label), "crop_dir": str(out_dir), "images": 2, "crops": 4,
                   "skipped_dont_care": 2, "skipped_degenerate": 1}
    rows = _rows(out_label)
    assert rows == [["../crops/img_1_0.png", "ABC"], ["../crops/img_1_2.png", "rot"],
                    ["../crops/img_1_3.png", "TALL"], ["../crops/img_1_5.png", "edge"]]
    for path, _ in rows:  # relative to the rec label file's directory
        assert os.path.isfile(os.path.join(out_label.parent, path))
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "img_1_0.png", "img_1_2.png", "img_1_3.png", "img_1_5.png"]
    with pytest.raises(SystemExit) as e:  # existing outputs are kept without --overwrite
        icdar2015.main(_crop_args(root, out_dir, out_label))
    assert str(e.value).startswith("error:") and "--overwrite" in str(e.value)
    assert icdar2015.main(_crop_args(root, out_dir, out_label, "--overwrite"))["crop"]["crops"] == 4
    with pytest.raises(SystemExit) as e:
        icdar2015.main(_crop_args(root, tmp_path / "c2", root / "det" / "train.txt", "--overwrite"))
    assert "det label file itself" in str(e.value)


def test_crop_content_size_and_orientation(det_set):
    import cv2
    import numpy as np
    root, img = det_set
    icdar2015.main(_crop_args(root, root / "crops", root / "crops.txt"))
    crop = {k + 1: cv2.imread(str(root / "crops" / f"img_1_{k}.png")) for k in (0, 2, 3, 5)}
    # an axis-aligned rectangle is exactly the sub-image
    assert np.array_equal(crop[1], img[5:20, 10:40])
    # a tall box (8 x 38) comes out rotated 90 degrees counter-clockwise, as np.rot90
    assert crop[4].shape == (8, 38, 3)
    assert np.array_equal(crop[4], np.rot90(img[2:40, 50:58]))
    # a rotated 24 x 8 box: upright 24 x 8 crop, centre pixel = the image at the box centre
    assert crop[3].shape == (8, 24, 3)
    assert np.abs(crop[3][4, 12].astype(int) - img[30, 32].astype(int)).max() <= 3
    # points outside the image: the border is replicated
    ys, xs = np.clip(np.arange(-5, 5), 0, None), np.clip(np.arange(-5, 10), 0, None)
    assert np.array_equal(crop[6], img[ys][:, xs])


def test_crop_box_rules():
    import numpy as np
    img = _gradient()
    assert icdar2015.crop_box(img, [[0, 0], [10, 0], [20, 0], [5, 0]]) is None  # zero area
    assert icdar2015.crop_box(img, [[3, 3], [3, 3], [9, 9], [3, 9]]) is None    # repeated corner
    # size = longer opposite edges, truncated; 14 x 20 (ratio 1.43) is not rotated, 10 x 15 is
    assert icdar2015.crop_box(img, [[0, 0], [14, 0], [14.4, 20], [0, 20.4]]).shape == (20, 14, 3)
    assert icdar2015.crop_box(img, [[0, 0], [10, 0], [10, 15], [0, 15]]).shape == (10, 15, 3)
    assert icdar2015.crop_box(img, [[0, 0], [12.6, 0], [12.6, 9.6], [0, 9.6]]).shape == (9, 12, 3)
    tiny = icdar2015.crop_box(img, [[5, 5], [5.3, 5], [5.3, 5.2], [5, 5.2]])
    assert tiny.shape == (1, 1, 3)
    assert np.array_equal(icdar2015.crop_box(img[..., 0], RECT), img[5:20, 10:40, 0])  # gray


def test_crop_bad_det_labels_are_one_line_errors(det_set):
    root, _ = det_set
    label = root / "det" / "train.txt"
    for text, expect in (("imgs/img_1.png [1]", "train.txt:1"),
                         ("imgs/img_1.png\t{not json", "not valid JSON"),
                         ('imgs/img_9.png\t[]', "img_9.png not found"),
                         ('imgs/img_1.png\t[{"transcription": "a", "points": [[1, 2], [3, 4], [5, 6]]}]',
                          "3 points"),
                         ('imgs/img_1.png\t[{"transcription": "", "points": ' + json.dumps(RECT) + "}]",
                          "empty transcription")):
        label.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(SystemExit) as e:
            icdar2015.main(_crop_args(root, root / "crops", root / "crops.txt"))
        msg = str(e.value)
        assert msg.startswith("error:") and expect in msg and "\n" not in msg, msg
    assert not (root / "crops.txt").exists()


def test_split_rule_deterministic_and_about_the_fraction():
    import hashlib
    names = [f"img_{i}.jpg" for i in range(200)]
    dev = {n for n in names if icdar2015.is_dev(n)}
    assert dev == {n for n in names if icdar2015.is_dev(n, seed=0, dev_percent=20)}
    assert 0.10 <= len(dev) / len(names) <= 0.30
    assert dev != {n for n in names if icdar2015.is_dev(n, seed=1)}
    for n in names[:20]:  # the documented formula
        h = int(hashlib.sha256(f"0:{n}".encode()).hexdigest()[:16], 16) / 16 ** 16
        assert icdar2015.is_dev(n) == (h < 0.2)
    assert {n for n in names if icdar2015.is_dev(n, dev_percent=40)} >= dev  # nested


@pytest.fixture
def paddle_set(tmp_path):
    """30 det images (img_1.jpg ... img_30.jpg; seed 0 / 20 % puts 7, 20, 30 in dev) and their
    crops img_N_1.png, img_N_2.png (empty files: the split only rewrites paths)."""
    root = tmp_path / "src"
    for d in ("det/imgs", "rec/imgs"):
        (root / d).mkdir(parents=True)
    det, rec = [], []
    for n in range(1, 31):
        (root / "det" / "imgs" / f"img_{n}.jpg").write_bytes(b"")
        boxes = [{"transcription": "a", "points": RECT}, {"transcription": "###", "points": RECT},
                 {"transcription": f"w{n}", "points": RECT}]
        det.append(f"imgs/img_{n}.jpg\t{json.dumps(boxes)}")
        for k in (1, 3):
            (root / "rec" / "imgs" / f"img_{n}_{k}.png").write_bytes(b"")
            rec.append(f"imgs/img_{n}_{k}.png\tw{n}")
    (root / "det" / "train.txt").write_text("\n".join(det) + "\n", encoding="utf-8")
    (root / "rec" / "train.txt").write_text("\n".join(rec) + "\n", encoding="utf-8")
    return root


def _split_args(src, out, *extra, rec=True):
    args = ["split", "--det_label", str(src / "det" / "train.txt"), "--out", str(out), *extra]
    return args + (["--rec_label", str(src / "rec" / "train.txt")] if rec else [])


def _split_images(out, kind):
    """{split: set of image stems} of OUT/kind/{train,dev}.txt; checks that every path resolves."""
    res = {}
    for s in ("train", "dev"):
        label = out / kind / f"{s}.txt"
        res[s] = []
        for path, _ in _rows(label):
            assert os.path.isfile(os.path.join(label.parent, path)), path
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            res[s].append(stem if kind == "det" else stem.rsplit("_", 1)[0])
    return res


def test_split_writes_disjoint_labels_and_crops_follow_their_image(paddle_set, tmp_path):
    out = tmp_path / "out"
    res = icdar2015.main(_split_args(paddle_set, out))["split"]
    assert res["dev"] == {"images": 3, "boxes": 9, "cared": 6, "crops": 6}
    assert res["train"] == {"images": 27, "boxes": 81, "cared": 54, "crops": 54}
    det, rec = _split_images(out, "det"), _split_images(out, "rec")
    assert sorted(det["dev"]) == ["img_20", "img_30", "img_7"]
    assert not set(det["train"]) & set(det["dev"])
    assert len(det["train"]) + len(det["dev"]) == 30
    assert set(rec["dev"]) == set(det["dev"]) and set(rec["train"]) == set(det["train"])
    first = _read(out / "det" / "dev.txt").splitlines()[0]
    assert first.startswith("../../src/det/imgs/img_7.jpg\t[{")  # box JSON kept as it was
    before = {p: p.read_bytes() for p in out.rglob("*.txt")}
    icdar2015.main(_split_args(paddle_set, out, "--overwrite"))  # deterministic
    assert before == {p: p.read_bytes() for p in out.rglob("*.txt")}
    other = icdar2015.main(_split_args(paddle_set, tmp_path / "s1", "--seed", "1",
                                       "--dev_percent", "50", rec=False))["split"]
    assert "crops" not in other["dev"] and not (tmp_path / "s1" / "rec").exists()
    assert other["dev"]["images"] + other["train"]["images"] == 30


def test_split_refuses_existing_outputs_and_the_source_labels(paddle_set, tmp_path):
    out = tmp_path / "out"
    (out / "rec").mkdir(parents=True)
    (out / "rec" / "dev.txt").write_text("old\n")
    with pytest.raises(SystemExit) as e:
        icdar2015.main(_split_args(paddle_set, out))
    assert str(e.value).startswith("error:") and "dev.txt" in str(e.value)
    assert "--overwrite" in str(e.value) and not (out / "det").exists()
    assert _read(out / "rec" / "dev.txt") == "old\n"
    for extra in ((), ("--overwrite",)):  # OUT = the source folder would replace det/train.txt
        with pytest.raises(SystemExit) as e:
            icdar2015.main(_split_args(paddle_set, paddle_set, *extra))
        assert "source label file" in str(e.value)
    assert len(_read(paddle_set / "det" / "train.txt").splitlines()) == 30
    with pytest.raises(SystemExit) as e:
        icdar2015.main(_split_args(paddle_set, out, "--dev_percent", "0"))
    assert str(e.value).startswith("error:")


def test_split_bad_crop_names_are_one_line_errors(paddle_set, tmp_path):
    rec = paddle_set / "rec" / "train.txt"
    (paddle_set / "rec" / "imgs" / "word_x.png").write_bytes(b"")
    (paddle_set / "rec" / "imgs" / "img_99_1.png").write_bytes(b"")
    for line, expect in (("imgs/word_x.png\tx", "word_x.png is not named <image stem>_<k>.<ext>"),
                         ("imgs/img_99_1.png\tx", "img_99_1.png: its image img_99.* is not in"),
                         ("imgs/img_1_7.png\tx", "img_1_7.png not found")):
        rec.write_text("imgs/img_1_1.png\tw1\n" + line + "\n", encoding="utf-8")
        with pytest.raises(SystemExit) as e:
            icdar2015.main(_split_args(paddle_set, tmp_path / "out"))
        msg = str(e.value)
        assert msg.startswith("error:") and "train.txt:2" in msg and expect in msg, msg
        assert "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_crop_then_split(det_set, tmp_path):
    root, _ = det_set
    icdar2015.main(_crop_args(root, root / "rec" / "crops", root / "rec" / "train.txt"))
    out = tmp_path / "out"
    res = icdar2015.main(_split_args(root, out, "--dev_percent", "50"))["split"]
    assert res["train"]["crops"] + res["dev"]["crops"] == 4
    det, rec = _split_images(out, "det"), _split_images(out, "rec")
    for s in ("train", "dev"):
        assert set(rec[s]) <= set(det[s])


def test_convert_word_and_usage(ic15, capsys):
    out = ic15 / "det" / "test.txt"
    assert icdar2015.main(["convert", *_det_args(ic15, out)])["det"]["images"] == 3
    with pytest.raises(SystemExit) as e:
        icdar2015.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "icdar2015.py crop --det_label" in text and "icdar2015.py split --det_label" in text


def test_split_real_data(tmp_path):
    """The real ICDAR2015 training set in PaddleOCR format (a folder with det/ and rec/)."""
    root = os.environ.get("OCRSLIM_REAL_DATA")
    if not root:
        pytest.skip("set OCRSLIM_REAL_DATA to a folder holding det/train.txt and rec/train.txt")
    from pathlib import Path
    root = Path(root)
    res = icdar2015.main(_split_args(root, tmp_path / "out"))["split"]
    det, rec = _split_images(tmp_path / "out", "det"), _split_images(tmp_path / "out", "rec")
    n_images = len(det["train"]) + len(det["dev"])
    assert n_images == len(_read(root / "det" / "train.txt").splitlines())
    assert not set(det["train"]) & set(det["dev"])
    crops = {s: {p for p, _ in _rows(tmp_path / "out" / "rec" / f"{s}.txt")} for s in det}
    assert not crops["train"] & crops["dev"]
    assert set(rec["dev"]) <= set(det["dev"]) and set(rec["train"]) <= set(det["train"])
    assert 0.15 <= len(det["dev"]) / n_images <= 0.25
    assert res["dev"]["crops"] == len(crops["dev"]) and res["dev"]["images"] == len(det["dev"])
