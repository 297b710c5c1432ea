"""The instruction sets of this CPU, read once from /proc/cpuinfo.

Int8 speed and int8 accuracy as deployed both depend on them: oneDNN and
onnxruntime pick different int8 kernels with and without VNNI (without it,
u8 x s8 products are summed in pairs into 16 bits with saturation), and
Paddle 2.6.2 ships AVX-512 code that dies with SIGILL on AVX2-only CPUs.
So every report names the CPU, and the runtimes look up their settings by
`kind()`.

OCRSLIM_CPU_FLAGS="avx2 fma" replaces the flags read from /proc/cpuinfo: for
emulators (qemu-user shows the host's /proc/cpuinfo while it emulates another
CPU's cpuid) and for checking what the tool would do on another CPU.
"""
import functools
import os
import platform

# the flags that decide kernels and settings, in /proc/cpuinfo's spelling
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16",
         "amx_bf16")

# CPU kinds, best first: (kind, flags it needs)
KINDS = (
    ("amx", ("avx512_vnni", "amx_int8")),
    ("avx512_vnni", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")),
    ("avx512", ("avx512f", "avx512bw", "avx512vl")),
    ("avx_vnni", ("avx2", "avx_vnni")),
    ("avx2", ("avx2", "fma")),
)
# Kinds whose accuracy and speed were measured; others get the safe choice (deploy.backends).
# amx has its own row since OpenVINO came in: its bf16 FP32 runs there and nowhere else
# measured (AMX), and change which runtime is fastest.
MEASURED_AS = {"amx": "amx", "avx512_vnni": "avx512_vnni", "avx2": "avx2"}


def _read_cpuinfo(path="/proc/cpuinfo"):
    model, flags = platform.processor() or "unknown", set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("unknown", "", "x86_64"):
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break  # every core lists the same flags
    except OSError:
        pass
    return model, flags


@functools.lru_cache(maxsize=None)
def info():
    """{"model", "flags" (the ones in FLAGS that this CPU has), "kind", "source"}."""
    model, flags = _read_cpuinfo()
    source = "/proc/cpuinfo"
    override = os.environ.get("OCRSLIM_CPU_FLAGS")
    if override is not None:
        flags, source = set(override.replace(",", " ").split()), "OCRSLIM_CPU_FLAGS"
    kind = next((name for name, need in KINDS if set(need) <= flags), "other")
    return {"model": model, "flags": [f for f in FLAGS if f in flags], "kind": kind, "source": source}


def kind():
    return info()["kind"]


def has(flag):
    return flag in info()["flags"]


def measured_kind():
    """The measured kind this CPU's settings come from, or None if never measured."""
    return MEASURED_AS.get(kind())


def describe():
    """This CPU in one line: model, cores, kind and the flags that matter."""
    source = info()["source"]
    return line(summary()) + ("" if source == "/proc/cpuinfo" else f" (flags from {source})")


def summary():
    """The CPU as a JSON object for bench.json / report.json."""
    return {**info(), "cores": os.cpu_count(), "measured_as": measured_kind()}


def line(summary_dict):
    """One line for a summary() dict, as bench.json and report.json keep it (None: not recorded)."""
    if not summary_dict:
        return "not recorded"
    measured = "" if summary_dict.get("measured_as") else ", never measured: safe runtime choices"
    return (f"{summary_dict['model']}, {summary_dict['cores']} cores, kind {summary_dict['kind']} "
            f"({' '.join(summary_dict['flags'])}){measured}")


def cache_clear():
    """Forget the flags read (tests that set OCRSLIM_CPU_FLAGS)."""
    info.cache_clear()


if __name__ == "__main__":
    print(describe())
