"""ocr_data/synth.py (synthetic det/rec data) and ocr_data/icdar2015.py
(ICDAR2015 converter). Fast, no paddle."""
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


# ---------------------------------------------------------------- synth.py


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
    assert "python ocr_data/synth.py --out ocr_data/demo" in capsys.readouterr().out


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
