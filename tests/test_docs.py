"""The docs hold together and match the code.

Links: every relative link in README.md, docs/*.md and ocr_data/README.md reaches a file and,
for a `#anchor`, a heading of that file (GitHub's anchor rule).
Flags: every `--flag` of the commands' argument parsers has its line in docs/cli.md under that
command, and every `--flag` the docs name is one of those commands' (or of another tool, on a
short allow-list). The parsers are caught as the commands build them, without running anything.
Fast: text, imports, no model work."""
import argparse
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "ocr_data/README.md", *sorted(os.path.relpath(p, ROOT)
                                                   for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")  # "#1932 asks" is not a heading
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")


def prose_lines(text):
    """(line number, line) outside fenced code blocks: a `# comment` in a bash block is no heading
    and `[a](b)` in code is no link."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: the rendered text (links keep their text, code its
    content), lower-cased, every character but letters, digits, spaces, '-' and '_' dropped,
    spaces turned into '-'."""
    text = LINK.sub(lambda m: m.group(1), heading)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags render to nothing
    text = text.strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(text):
    """Every anchor the headings of a markdown text produce; a repeated slug gets -1, -2, ..."""
    seen, out = {}, set()
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text):
    """(line number, target) of every link and reference definition outside code."""
    for number, line in prose_lines(text):
        m = REF_DEF.match(line)
        if m:
            yield number, m.group(1)
            continue
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, m.group(2)


def broken_links(path, root=ROOT):
    """One message per relative link of the file at root/path that points nowhere."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        text = f.read()
    problems = []
    for number, target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http(s), mailto: not checked
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        where = f"{path}:{number}: ({target})"
        if not os.path.exists(os.path.join(root, dest)):
            problems.append(f"{where} {dest} does not exist")
            continue
        if anchor and dest.endswith(".md"):
            with open(os.path.join(root, dest), encoding="utf-8") as f:
                if anchor not in anchors(f.read()):
                    problems.append(f"{where} no heading of {dest} makes #{anchor}")
    return problems


def test_slug_follows_githubs_rule():
    # hand-computed as GitHub renders them (the old README's own links used these)
    assert slug("Deploy and measure: `bench.py` and `eval.py --e2e`") == "deploy-and-measure-benchpy-and-evalpy---e2e"
    assert slug("Other formats: PaddleOCR 3.x and ONNX") == "other-formats-paddleocr-3x-and-onnx"
    assert slug("Strategies: `qat`, `ptq`, `prune`, `prune_qat`") == "strategies-qat-ptq-prune-prune_qat"
    assert slug("Results per CPU kind (`make bench`, 2 threads)") == "results-per-cpu-kind-make-bench-2-threads"
    assert slug("See [the docs](docs/cli.md) now") == "see-the-docs-now"


def test_anchors_skip_code_and_number_repeats():
    text = "# Title\n\n```bash\n# not a heading\n```\n#1932 is no heading\n## Notes\n## Notes\n### Notes\n"
    assert anchors(text) == {"title", "notes", "notes-1", "notes-2"}


def test_the_check_finds_broken_links(tmp_path):
    (tmp_path / "a.md").write_text("# A\n## Part two\n", encoding="utf-8")
    (tmp_path / "b.md").write_text(
        "[ok](a.md#part-two) [self](#b) [web](https://example.com/x#y) `[code](nowhere.md)`\n"
        "[gone](missing.md) [bad anchor](a.md#part-three)\n\n```\n[fenced](nowhere.md)\n```\n# B\n",
        encoding="utf-8")
    problems = broken_links("b.md", root=str(tmp_path))
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "#part-three" in problems[1]


@pytest.mark.parametrize("path", DOCS)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


# ------------------------------------------------------------------ flags: docs against code

class _Caught(Exception):
    def __init__(self, parser):
        super().__init__(parser.prog)
        self.parser = parser


def _run_cli(argv):
    from ocrslim.run_cli import parse_args
    parse_args(argv)


def _eval_cli(argv):
    from ocrslim.eval_cli import parse_args
    parse_args(argv)


def _bench(argv):
    from ocrslim.deploy.bench import parse_args
    parse_args(argv)


def _report(argv):
    from ocrslim.deploy.report import main
    main(argv)


def _profile(argv):
    from ocrslim.deploy.profile import parse_args
    parse_args(argv)


def _deploy(argv):
    from ocrslim.deploy.paddle_passes import main  # what python -m ocrslim.deploy runs
    main(argv)


def _gpu_check(argv):
    from ocrslim.gpu_check import parse_args
    parse_args(argv)


def _synth(argv):
    from ocr_data.synth.cli import parse_args
    parse_args(argv)


def _icdar2015(op):
    def call(argv):
        from ocr_data import icdar2015
        icdar2015.main(([op] if op else []) + argv)  # main picks the parser by the first word
    return call


# The heading of each command's section in docs/cli.md, and how the command builds its parser.
COMMANDS = {
    "`run.py` (`ocrslim-run`)": _run_cli,
    "`eval.py` (`ocrslim-eval`)": _eval_cli,
    "`bench.py` (`ocrslim-bench`)": _bench,
    "`python -m ocrslim.deploy.report`": _report,
    "`python -m ocrslim.deploy.profile`": _profile,
    "`python -m ocrslim.deploy`": _deploy,
    "`python -m ocrslim.gpu_check`": _gpu_check,
    "`python -m ocr_data.synth`": _synth,
    "`python ocr_data/icdar2015.py`": _icdar2015(None),
    "`python ocr_data/icdar2015.py crop`": _icdar2015("crop"),
    "`python ocr_data/icdar2015.py split`": _icdar2015("split"),
}

# Flags of other tools that the docs quote; none of them is ours.
OTHER_TOOLS = {
    "--gpus",  # python -m paddle.distributed.launch: the cards of each machine (docs/many-gpus.md)
    "--ips",   # python -m paddle.distributed.launch: the machines (docs/many-gpus.md)
}

FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*\*?")  # not the '---e2e' inside an anchor
CELL = re.compile(r"(?<!\\)\|")                     # a table cell border, not an escaped \|


def doc_flags(text):
    """Every --flag a text names; '--det_*' stands for a group and names none."""
    return {m.group(0) for m in FLAG.finditer(text) if not m.group(0).endswith("*")}


@pytest.fixture(scope="module")
def parsers():
    """{cli.md heading: the command's option strings}, from the parser each command builds:
    parse_args is stopped the moment it is called, so nothing runs."""
    def caught(self, args=None, namespace=None):
        raise _Caught(self)
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", caught)
        for heading, call in COMMANDS.items():
            with pytest.raises(_Caught) as got:
                call([])
            # argparse lists its options only in _actions; every option string starting '--'
            found[heading] = {s for a in got.value.parser._actions for s in a.option_strings
                              if s.startswith("--")}
    return found


def cli_sections():
    """{heading: text} of docs/cli.md's '## ' sections."""
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def documented_rows(section):
    """{flag: meaning} from a section's table rows: the flags of the first cell, the last cell."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in CELL.split(line.strip())]
        if len(cells) < 4 or not line.lstrip().startswith("|") or set(cells[1]) <= set("-: "):
            continue
        for flag in doc_flags(cells[1]):
            rows[flag] = cells[-2]
    return rows


def test_flag_pattern():
    text = "`--max_drop 1.0`, `--det_*` and [e2e](deploy.md#whole-pipeline-evalpy---e2e), openvino-bf16"
    assert doc_flags(text) == {"--max_drop"}


def test_parsers_are_caught(parsers):
    # spot checks by hand: the catch sees the real parsers, --help included
    assert {"--save_dir", "--max_drop", "--config_path", "--help"} <= parsers["`run.py` (`ocrslim-run`)"]
    assert {"--dev_percent", "--rec_label"} <= parsers["`python ocr_data/icdar2015.py split`"]
    assert "--det_gt_dir" not in parsers["`python ocr_data/icdar2015.py split`"]


def test_every_flag_has_its_line_in_cli_md(parsers):
    sections = cli_sections()
    missing = [h for h in COMMANDS if h not in sections]
    assert not missing, f"docs/cli.md has no '## ' section for {missing}"
    for heading, flags in parsers.items():
        rows = documented_rows(sections[heading])
        undocumented = sorted(f for f in flags - {"--help"} if not rows.get(f))  # --help: the page's intro
        assert not undocumented, f"docs/cli.md, {heading}: no table line says what {undocumented} do"
        foreign = sorted(set(rows) - flags)
        assert not foreign, f"docs/cli.md, {heading}: {foreign} are not flags of this command"


def test_every_flag_the_docs_name_exists(parsers):
    known = set().union(*parsers.values()) | OTHER_TOOLS
    for path in DOCS:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            unknown = sorted(doc_flags(f.read()) - known)
        assert not unknown, f"{path} names {unknown}, a flag of none of the commands (nor in OTHER_TOOLS)"
