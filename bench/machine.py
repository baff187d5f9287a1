"""What a result must record about the machine: CPU, GPU, memory, library versions, thread
counts; and the machine's id, the name of what makes its numbers differ."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VOLATILE", "describe_machine", "machine_id", "split_volatile"]

#: Parts of the description that change between runs on the same machine (the source commit,
#: the thread pools loaded so far, the OpenMP setting): kept out of pytest-benchmark's
#: ``machine_info``, which ``--benchmark-compare`` checks for equality.
VOLATILE = ("commit", "blas", "omp_num_threads")


def _blas() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for info in threadpool_info()]


def _versions() -> dict[str, str | None]:
    """Installed versions of the libraries a result can depend on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("numpy", "scipy", "pandas", "torch", "cupy-cuda12x", "cupy-cuda13x", "numba",
                 "scikit-learn", "pytest-benchmark"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _nvidia_smi() -> dict[str, Any]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {}
    name, driver, memory = ([*lines[0].split(", "), "", "", ""])[:3]
    return {"gpu_name": name, "gpu_driver": driver, "gpu_memory": memory, "gpu_count": len(lines)}


def _memory_bytes() -> int | None:
    """Physical memory, bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _commit() -> str | None:
    """The source commit: ``$GDBENCH_COMMIT`` (for copies without git metadata), else git's."""
    if os.environ.get("GDBENCH_COMMIT"):
        return os.environ["GDBENCH_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@cache
def _hardware() -> dict[str, Any]:
    """CPU model and count, physical memory and the GPUs (nvidia-smi): what ``machine_id``
    reads (asked once per process)."""
    info: dict[str, Any] = {"cpu_model": _cpu_model(),
                            "cpu_count": os.cpu_count(), "memory_bytes": _memory_bytes()}
    return {**info, **_nvidia_smi()}


def _cpu_model() -> str:
    """The CPU's brand string: Linux's ``/proc/cpuinfo`` (read here: py-cpuinfo answers the
    same from a child process that takes about a second and outlives an interrupted parent),
    else py-cpuinfo, else the platform's processor or machine string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info()["brand_raw"]
    except Exception:  # py-cpuinfo can fail on exotic machines; the platform string stays
        return platform.processor() or platform.machine()


def describe_machine() -> dict[str, Any]:
    """A flat description: CPU model and count, memory, GPU, driver, CUDA, library versions,
    threads, and the source commit."""
    info: dict[str, Any] = {
        "commit": _commit(),
        **_hardware(),
        "numpy": np.__version__,
        "versions": _versions(),
        "blas": _blas(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu_name"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    try:
        import cupy

        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    except Exception:  # not installed, or no CUDA runtime
        info["cupy"] = None
    return info


def split_volatile(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``describe_machine()`` as (stable part, volatile part): see ``VOLATILE``."""
    stable = {k: v for k, v in info.items() if k not in VOLATILE}
    return stable, {k: info[k] for k in VOLATILE if k in info}


def _slug(text: str) -> str:
    """'Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz' -> 'intel-xeon-platinum-8480'."""
    text = re.sub(r"\((r|tm)\)|\b(cpu|processor)\b|@.*$", " ", str(text).lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def _gib(value: Any, unit: float) -> int | None:
    """``value`` (a number, or text such as '143771 MiB') in ``unit`` bytes, as whole GiB."""
    found = re.match(r"\s*([0-9.]+)", str(value)) if value is not None else None
    return math.floor(float(found.group(1)) * unit / 2**30) if found else None


def machine_id(info: Mapping[str, Any] | None = None) -> str:
    """The id of the machine ``info`` describes (``describe_machine()``, or the ``gdbench``
    block of a result file's ``machine_info``): what makes its numbers differ, and nothing that
    changes between runs on it.

    ``cpu-<model>-<count>c-<memory>g`` (``cpu-amd-epyc-2c-23g``), prefixed on a GPU machine by
    ``[<count>x-]<gpu>-<gpu memory>g-`` (``nvidia-h200-140g-intel-xeon-16c-…``); memory in whole
    GiB (2^30 bytes). A part the description lacks (files saved before memory was recorded) is
    left out, never guessed, so such a run's id is shorter than a new run's on the same
    machine. Without ``info``: this machine.
    """
    info = _hardware() if info is None else info
    memory = _gib(info.get("memory_bytes"), 1)
    cpu = f"cpu-{_slug(info.get('cpu_model') or 'unknown')}-{info.get('cpu_count') or 0}c" + (
        f"-{memory}g" if memory else "")
    if not info.get("gpu_name"):
        return cpu
    count = int(info.get("gpu_count") or 1)
    gpu_memory = _gib(info.get("gpu_memory"), 2**20)  # nvidia-smi's MiB
    gpu = (f"{count}x-" if count > 1 else "") + _slug(info["gpu_name"]) + (
        f"-{gpu_memory}g" if gpu_memory else "")
    return f"{gpu}-{cpu.removeprefix('cpu-')}"
