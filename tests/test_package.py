"""pip install . : the wheel holds the packages, the shipped configs and three commands, and an
installed copy works from outside the repository (pyproject.toml)."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {"ocrslim-run": "ocrslim.commands:run", "ocrslim-eval": "ocrslim.commands:evaluate",
            "ocrslim-bench": "ocrslim.commands:bench"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from the files git sees (tracked or not ignored) only (a copy: building in place would leave build/
    and *.egg-info in the checkout, and the generated data must not end up in it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if rel.startswith(("tests/", ".ci/")) or not os.path.isfile(os.path.join(ROOT, rel)):
            continue
        os.makedirs(src / os.path.dirname(rel), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), src / rel)
    # a generated data folder beside the code, as in a user's checkout: it must not ship
    os.makedirs(src / "ocr_data" / "demo" / "det")
    (src / "ocr_data" / "demo" / "det" / "eval.txt").write_text("x\t[]\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp / "dist").glob("ocrslim-*.whl")
    return path


def test_wheel_holds_the_packages_configs_and_commands(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tracked_configs = sorted(os.path.relpath(os.path.join(d, f), ROOT).replace("configs", "ocrslim/configs", 1)
                             for d, _, files in os.walk(os.path.join(ROOT, "configs")) for f in files
                             if f.endswith(".yaml"))
    assert tracked_configs and set(tracked_configs) <= set(names)
    for module in ("ocrslim/__init__.py", "ocrslim/commands.py", "ocrslim/compress/qat.py", "ocrslim/deploy/bench.py",
                   "ocrslim/formats/pir.py", "ocr_data/icdar2015.py", "ocr_data/synth/cli.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("ocr_data/demo", "ocr_data/icdar2015/", "tests/", "output/"))]
    meta = zipfile.ZipFile(wheel)
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = meta.read(info).decode()
    for command, target in COMMANDS.items():
        assert f"{command} = {target}" in entry_points
    requires = [line.split(": ", 1)[1] for line in
                meta.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
                if line.startswith("Requires-Dist: ")]
    pins = [line.split("#")[0].strip() for line in open(os.path.join(ROOT, "requirements.txt"))]
    assert sorted(requires) == sorted(p for p in pins if p)


@pytest.mark.slow
def test_installed_package_runs_the_readme_example_from_outside(wheel, compressed_det, tmp_path):
    """Installed into a throwaway venv (its dependencies from this environment, so the test
    downloads nothing): the commands start, a shipped config is found from any folder, and the
    README's load_predictor example runs in a folder outside the repository."""
    from helpers import readme_example
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # after the venv's own site-packages: the installed ocrslim wins over nothing else
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def call(*argv):
        return subprocess.run(argv, cwd=outside, env=env, capture_output=True, text=True, timeout=300)

    where = call(python, "-c", "import ocrslim; print(ocrslim.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(str(venv)), where.stdout + where.stderr
    for command in COMMANDS:
        proc = call(str(venv / "bin" / command), "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-1000:]
    # the shipped config is read from here (no "config file not found"); its data, relative to the
    # current folder as documented, is what stops it
    proc = call(str(venv / "bin" / "ocrslim-eval"), "-c", "configs/ppocrv4/det_mobile.yaml")
    assert proc.returncode == 2 and "config file not found" not in proc.stderr, proc.stderr
    assert "'ocr_data/demo/det' is not a folder" in proc.stderr, proc.stderr
    code = readme_example().replace("output/demo/det", compressed_det[0])
    code += "\nassert maps.shape == (1, 1, 320, 320), maps.shape\nprint('ok', predict.info['backend'])\n"
    proc = call(python, "-c", code)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
