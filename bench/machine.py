"""What a result must record about the machine: CPU, GPU, library versions, thread counts."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import numpy as np

__all__ = ["VOLATILE", "describe_machine", "split_volatile"]

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


def _nvidia_smi() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    name, driver, memory = ([*out.stdout.strip().splitlines()[0].split(", "), "", "", ""])[:3]
    return {"gpu_name": name, "gpu_driver": driver, "gpu_memory": memory}


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


def describe_machine() -> dict[str, Any]:
    """A flat description: CPU model and count, GPU, driver, CUDA, library versions, threads,
    and the source commit."""
    info: dict[str, Any] = {
        "commit": _commit(),
        "cpu_model": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "versions": _versions(),
        "blas": _blas(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import cpuinfo

        info["cpu_model"] = cpuinfo.get_cpu_info().get("brand_raw", info["cpu_model"])
    except Exception:  # py-cpuinfo can fail on exotic machines; the platform string stays
        pass
    info.update(_nvidia_smi())
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
