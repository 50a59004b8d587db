"""What machine a benchmark ran on: CPU name and flags, memory, load (Linux's
/proc files; None or a generic name elsewhere). Shared by the benchmark scripts."""

import os
import pathlib
import platform


def _proc_line(file, prefix):
    """The value after ':' of the first line of /proc/<file> starting with `prefix`."""
    try:
        for line in pathlib.Path("/proc", file).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name():
    return _proc_line("cpuinfo", "model name") or platform.processor() or platform.machine()


def cpu_flags():
    """The vector-unit flags that decide matmul speed (AVX2/AVX-512/AMX, FMA)."""
    flags = (_proc_line("cpuinfo", "flags") or "").split()
    return sorted({f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))})


def memory_gb():
    total = _proc_line("meminfo", "MemTotal")  # "24576000 kB"
    return round(int(total.split()[0]) / 2**20, 1) if total else None


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def bf16_units():
    """Whether the CPU has AVX512-BF16 and AMX (the bfloat16 matmul units)."""
    flags = set((_proc_line("cpuinfo", "flags") or "").split())
    return {"avx512_bf16": "avx512_bf16" in flags, "amx": any(f.startswith("amx") for f in flags)}


# The packages whose versions a benchmark's numbers depend on (those installed are reported).
PACKAGES = ("keras", "keras-hub", "jax", "jaxlib", "torch", "tensorflow", "transformers", "timm", "grain",
            "av", "opencv-python-headless", "numpy", "onnxruntime", "openvino", "ai-edge-litert")


def package_versions(names=PACKAGES):
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe():
    """The machine of a benchmark run, as its documentation page states it."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "memory_gb": memory_gb(), **bf16_units(),
            "cpu_flags": cpu_flags(), "load_average": load_average(),
            "platform": platform.platform(), "python": platform.python_version()}
