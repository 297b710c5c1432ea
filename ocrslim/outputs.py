"""Where results go: never onto a user's file, one writer per folder, published atomically.

Every path the tool writes (run.py's --save_dir, eval.py/bench.py --json,
bench.py --report, report --out) is checked before any work against the run's
inputs (model dir, data dirs, label files, config files, dictionary): it may
not be one of them or hold one. An existing output is replaced only when the
tool wrote it: folders carry a manifest (MANIFEST) of the files the tool put
there, JSON results carry an "ocrslim" key.

A run writes its folder into a hidden sibling (.NAME.partial-XXXX) and renames
it to save_dir only once the model, config and report are complete, so an
interrupted run never leaves a half-written model that looks finished. A lock
file beside save_dir (.NAME.lock) keeps a second run out while one writes.
"""
import datetime
import fcntl
import glob
import json
import logging
import os
import shutil
import socket
import tempfile

from .errors import UserError

log = logging.getLogger("ocrslim")

MANIFEST = ".ocrslim.json"  # in every folder the tool publishes: what kind, which files
# what bench.py --report and report --out write into a folder (also run.py's step 5)
# report.md, its plot, the bench results and the pictures of what int8 changed (deploy/examples.py)
REPORT_FILES = ("report.md", "report.png", "bench.json", "report_det_examples.jpg", "report_rec_examples.png")
# the first files of each folder kind, for folders written before manifests existed
LEGACY_KINDS = {"report.json": "run", "sensitivity.json": "analyze", "prune_sensitivity.json": "analyze",
                "bench.json": "report"}


def is_inside(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------
# the run's inputs
# --------------------------------------------------------------------------

def config_inputs(config):
    """[(kind, path)] of every file and folder a config makes the tool read."""
    from .config import resolve_path
    g = config.get("Global") or {}
    out = [("model dir", resolve_path(g["model_dir"]))] if g.get("model_dir") else []
    out += [("config file", p) for p in g.get("config_files") or [g.get("config_path")] if p]
    if g.get("character_dict_path"):
        out.append(("dictionary", resolve_path(g["character_dict_path"])))
    for section in ("Eval", "Train", "Test"):
        dataset = (config.get(section) or {}).get("dataset") or {}
        if dataset.get("data_dir"):
            out.append((f"{section} data dir", dataset["data_dir"]))
        out += [(f"{section} label file", p) for p in dataset.get("label_file_list") or [] if isinstance(p, str)]
    sensitivity = (config.get("Prune") or {}).get("sensitivity")
    if sensitivity:
        out.append(("Prune.sensitivity file", sensitivity))
    return [(kind, path) for kind, path in out if isinstance(path, str) and path]


def _clash(out, inputs):
    """How writing `out` would touch one of the inputs, or None."""
    for kind, path in inputs:
        if not os.path.exists(path):
            continue
        if is_inside(path, out):
            verb = "is" if os.path.realpath(path) == os.path.realpath(out) else "holds"
            return f"{verb} the {kind} {path}"
        if kind == "model dir" and is_inside(out, path):
            return f"is inside the model dir {path} (a model dir is only ever read)"
    return None


def _refuse_clash(flag, out, inputs):
    why = _clash(out, inputs)
    if why:
        raise UserError(f"{flag} {out} {why}: choose a path that is not and does not hold any of the run's "
                        "inputs (model, data, labels, config)")


# --------------------------------------------------------------------------
# what the tool wrote: manifests and JSON markers
# --------------------------------------------------------------------------

def _files_below(folder):
    out = []
    for base, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(base, f), folder) for f in files]
    return sorted(f for f in out if f != MANIFEST)


def read_manifest(folder):
    """The folder's manifest ({"ocrslim": kind, "files": [...]}), or None."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def write_manifest(folder, kind):
    """Record every file now in `folder` (a staging folder, about to be published) as the tool's
    own; kind: run, analyze, report, deploy."""
    write_json(os.path.join(folder, MANIFEST), {"ocrslim": kind, "files": _files_below(folder)})


def add_to_manifest(folder, names, kind):
    """Record files the tool just wrote into an existing folder (a report into a save_dir). A
    folder from before manifests existed gets none: all of it already counts as ours."""
    manifest = read_manifest(folder)
    if manifest is None:
        if set(_files_below(folder)) - set(names):
            return
        manifest = {"ocrslim": kind, "files": []}
    manifest["files"] = sorted(set(manifest["files"]) | set(names))
    write_json(os.path.join(folder, MANIFEST), manifest)


def folder_kind(folder):
    """What kind of ocrslim output `folder` is (its manifest, or the files older versions wrote), or None."""
    manifest = read_manifest(folder)
    if manifest:
        return manifest.get("ocrslim")
    for name, kind in LEGACY_KINDS.items():
        path = os.path.join(folder, name)
        if os.path.isfile(path) and is_our_json(path):
            return kind
    return None


def foreign_files(folder):
    """Files in an ocrslim folder that the tool did not write (not in its manifest)."""
    manifest = read_manifest(folder)
    if manifest is None:  # written before manifests: all of it counts as ours
        return []
    ours = set(manifest["files"])
    return [f for f in _files_below(folder) if f not in ours]


def is_our_json(path):
    """Whether a JSON file holds a result the tool wrote: its "ocrslim" key, or (older results)
    the keys that eval.py, bench.py, eval.py --e2e and run.py write."""
    try:
        if os.path.getsize(path) > 200 * 2 ** 20:
            return False
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    items = data if isinstance(data, list) and data else [data]
    signatures = ({"ocrslim"}, {"model_type", "metrics", "per_item"}, {"models", "fastest_fp32"},
                  {"det_model_dir", "rec_model_dir", "metrics"}, {"model_type", "baseline", "compressed"},
                  {"model_type", "main_indicator", "rows"}, {"model_type", "groups"})
    return all(isinstance(d, dict) and any(s <= set(d) for s in signatures) for d in items)


def _describe(names, limit=3):
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------
# the checks, one per kind of output
# --------------------------------------------------------------------------

def check_save_dir(save_dir, inputs, overwrite=False, flag="--save_dir"):
    """Refuse a save_dir that is or holds an input, lies in a model dir, is a file, or holds
    anything but an earlier ocrslim output (which only --overwrite replaces)."""
    if not save_dir:
        raise UserError(f"{flag} is required: the folder that will receive the result")
    _refuse_clash(flag, save_dir, inputs)
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise UserError(f"{flag} {save_dir} is a file: choose a folder")
    if os.path.isdir(save_dir) and os.listdir(save_dir):
        kind = folder_kind(save_dir)
        if kind is None:
            raise UserError(f"{flag} {save_dir} holds files ocrslim did not write ({_describe(sorted(os.listdir(save_dir)))}): "
                            "choose a new or empty folder (--overwrite only replaces ocrslim's own output)")
        foreign = foreign_files(save_dir)
        if foreign:
            raise UserError(f"{flag} {save_dir} is an earlier ocrslim output, but {_describe(foreign)} in it was "
                            "not written by ocrslim: move that out or choose another folder")
        if not overwrite:
            raise UserError(f"{flag} {save_dir} holds an earlier ocrslim result ({kind}): pass --overwrite to "
                            "replace it, or choose another folder")
    check_writable(save_dir, flag)


def check_json_out(path, inputs, flag="--json"):
    """A JSON result path: not an input, not in a model dir, and if it exists, a result of ours."""
    _refuse_clash(flag, path, inputs)
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder: give a file name, e.g. {os.path.join(path, 'result.json')}")
    if os.path.exists(path) and not is_our_json(path):
        raise UserError(f"{flag} {path} exists and is not an ocrslim result: choose another file name "
                        "(only ocrslim's own JSON results are replaced)")
    check_writable(path, flag)


def check_report_dir(report_dir, inputs, overwrite, flag="--report"):
    """A folder for report.md/.png and bench.json: new, empty or an ocrslim output folder (a
    run.py save_dir takes its own report), never an input; old report files need --overwrite."""
    _refuse_clash(flag, report_dir, [(k, p) for k, p in inputs if not (
        k == "model dir" and os.path.realpath(p) == os.path.realpath(report_dir) and folder_kind(p) == "run")])
    if os.path.exists(report_dir) and not os.path.isdir(report_dir):
        raise UserError(f"{flag} {report_dir} is a file: choose a folder")
    if os.path.isdir(report_dir) and os.listdir(report_dir):
        if folder_kind(report_dir) is None:
            raise UserError(f"{flag} {report_dir} holds files ocrslim did not write "
                            f"({_describe(sorted(os.listdir(report_dir)))}): choose a new or empty folder")
        existing = [n for n in REPORT_FILES if os.path.exists(os.path.join(report_dir, n))]
        foreign = [n for n in existing if n in foreign_files(report_dir)]
        if foreign:
            raise UserError(f"{flag} {report_dir}: {foreign[0]} there was not written by ocrslim: move it out "
                            "or choose another folder")
        if existing and not overwrite:
            raise UserError(f"{report_dir} already has {existing[0]}: pass --overwrite to replace the report")
    check_writable(report_dir, flag)


def check_writable(path, flag):
    """The nearest existing folder at or above path's parent must take new files (probed, since
    permission bits say nothing for root or a read-only file system)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: {parent} is a file, so no folder can be made there")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ocrslim-probe-", dir=parent)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write in {parent} ({err.strerror}): choose a folder you can write")


# --------------------------------------------------------------------------
# one writer per folder
# --------------------------------------------------------------------------

def _process_start(pid):
    """The process's start time in clock ticks since boot (/proc), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class FolderLock:
    """An exclusive lock on an output folder: a file .NAME.lock beside it holding the owner's pid.

    The lock is an flock on that file, so the kernel drops it when the owner dies, kill -9
    included; the pid written in it is how a later run names the run that died (a clean exit
    removes the file). Taken atomically: of two runs started together, one gets it."""

    def __init__(self, folder):
        folder = os.path.abspath(folder)
        self.folder = folder
        self.path = os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.lock")
        self.fd = None

    def acquire(self, flag="--save_dir"):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(5):  # retried only when the file was replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise UserError(f"{flag} {self.folder} is being written by another run ({_owner_text(owner)}): "
                                "wait for it to finish or choose another folder")
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the owner removed the file as it finished: lock the new one
        else:
            raise UserError(f"could not lock {self.path}: it keeps being replaced")
        stale = _read_owner(fd)
        if stale:
            log.warning("a run that wrote %s is gone without finishing (%s): took over its lock",
                        self.folder, _owner_text(stale))
        me = {"pid": os.getpid(), "start": _process_start(os.getpid()), "host": socket.gethostname(),
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # while still holding it: a waiting run then locks a new file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_owner(fd):
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None


def _owner_text(owner):
    if not owner:
        return "owner unknown"
    return f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('since')}"


def leftover_partials(save_dir):
    """Staging folders of earlier runs into save_dir that died before publishing."""
    save_dir = os.path.abspath(save_dir)
    pattern = os.path.join(os.path.dirname(save_dir), "." + glob.escape(os.path.basename(save_dir)) + ".partial-*")
    return sorted(p for p in glob.glob(pattern) if os.path.isdir(p))


def handle_leftovers(save_dir, remove):
    """Name the leftover staging folders in one warning; remove them when asked (--overwrite).
    Called with the folder's lock held, so no live run is writing any of them."""
    found = leftover_partials(save_dir)
    if not found:
        return
    names = _describe([os.path.basename(p) for p in found])
    if remove:
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
        log.warning("removed %d folder(s) left by interrupted runs into %s: %s", len(found), save_dir, names)
    else:
        log.warning("%d folder(s) left by interrupted runs into %s: %s (--overwrite removes them)",
                    len(found), save_dir, names)


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

def staging_dir(save_dir):
    """A fresh hidden folder next to save_dir (same filesystem, so rename is atomic)."""
    parent = os.path.dirname(os.path.abspath(save_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    name = "." + os.path.basename(os.path.abspath(save_dir)) + ".partial-"
    return tempfile.mkdtemp(prefix=name, dir=parent)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def readable_by_umask(folder):
    """Give the folder the modes a plain mkdir/open would have: mkdtemp makes 0700 folders (and
    mkstemp 0600 files), which would hide a published model from colleagues on the machine."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for base, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(base, d), 0o777 & ~mask)
        for f in files:
            path = os.path.join(base, f)
            if not os.path.islink(path):
                os.chmod(path, (os.stat(path).st_mode & 0o111 | 0o666) & ~mask)


def publish(staging, save_dir, kind=None):
    """Move the finished staging folder to save_dir, replacing an old one only now. With kind,
    the manifest records every file as the tool's own first."""
    if kind:
        write_manifest(staging, kind)
    readable_by_umask(staging)
    old = None
    if os.path.exists(save_dir):
        old = staging + ".old"
        os.rename(save_dir, old)
    os.rename(staging, save_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path, text):
    """Write via a .tmp file and rename, so a reader never sees half a file."""
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False))


def write_result(path, data, kind):
    """A JSON result of eval.py / bench.py (--json), marked as ours ("ocrslim": kind, set in `data`
    too, so what a command returns is what it wrote) so that a later run may replace it."""
    data["ocrslim"] = kind
    write_json(path, data)
    folder = os.path.dirname(os.path.abspath(path))
    if read_manifest(folder):  # into an ocrslim folder (a save_dir): it stays all ocrslim's own
        add_to_manifest(folder, [os.path.basename(path)], kind)
