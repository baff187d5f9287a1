"""Which machine a row was measured on: what makes its numbers differ (CPU model and count,
GPU), never the folder pytest-benchmark saved it in. Benchmark rows and study records map to
the same key, so each machine's numbers are reported together and only together."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pandas as pd

__all__ = ["Machine", "bench_machines", "study_machine"]


@dataclass(frozen=True, order=True)
class Machine:
    """A machine: its CPU model and logical CPU count, and its GPU ('' for none)."""

    cpu: str
    cpus: int
    gpu: str = ""

    @property
    def name(self) -> str:
        """``AMD EPYC, 2 CPUs`` or ``NVIDIA H200 (host Intel Xeon, 16 CPUs)``."""
        host = f"{self.cpu}, {self.cpus} CPUs"
        return f"{self.gpu} (host {host})" if self.gpu else host

    @property
    def slug(self) -> str:
        """A file name: ``amd-epyc-2cpu``, ``nvidia-h200-16cpu``."""
        text = re.sub(r"\((r|tm)\)|cpu @.*|processor", "", (self.gpu or self.cpu).lower())
        return re.sub(r"[^a-z0-9]+", "-", text).strip("-") + f"-{self.cpus}cpu"


def _text(v: object) -> str:
    return v.strip() if isinstance(v, str) else ""


def bench_machines(df: pd.DataFrame) -> pd.Series:
    """The ``Machine`` of each benchmark row (``machine_cpu``, ``machine_cpu_count``,
    ``machine_gpu``)."""
    def one(r: pd.Series) -> Machine:
        count = r.get("machine_cpu_count")
        return Machine(_text(r.get("machine_cpu")) or "unknown CPU",
                       int(count) if pd.notna(count) else 0, _text(r.get("machine_gpu")))
    return df.apply(one, axis=1) if len(df) else pd.Series(dtype=object)


def study_machine(context: dict) -> Machine:
    """The ``Machine`` of a study's context record: its host, and the GPU where the study
    timed one (``gpu_name``)."""
    raw = context.get("machine_json")
    info = json.loads(raw) if isinstance(raw, str) and raw else {}
    count = info.get("cpu_count")
    return Machine(_text(info.get("cpu_model")) or "unknown CPU", int(count or 0),
                   _text(context.get("gpu_name")))
