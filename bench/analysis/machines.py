"""Which machine a row was measured on: what makes its numbers differ, never the folder a file
was saved in. The key is the one machine id (``bench.machine.machine_id``: CPU model and count,
memory, GPU); benchmark rows and study records map to it, so each machine's numbers are reported
together and only together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from bench.machine import machine_id

__all__ = ["Machine", "bench_machines", "describe", "study_machine"]


@dataclass(frozen=True, order=True)
class Machine:
    """A machine: its id (equality and order), its name in prose and its GPU ('' for none)."""

    id: str
    name: str = field(default="", compare=False)
    gpu: str = field(default="", compare=False)

    @property
    def slug(self) -> str:
        """A file name: the machine id."""
        return self.id


def describe(cpu: str, cpus: int, gpu: str = "", memory_bytes: object = None) -> str:
    """``AMD EPYC, 2 CPUs, 23 GiB`` or ``NVIDIA H200 (host Intel Xeon, 16 CPUs)``: the memory
    where the run recorded it."""
    host = f"{cpu}, {cpus} CPUs"
    if isinstance(memory_bytes, (int, float)) and pd.notna(memory_bytes) and memory_bytes > 0:
        host += f", {int(memory_bytes) // 2**30} GiB"
    return f"{gpu} (host {host})" if gpu else host


def _text(v: object) -> str:
    return v.strip() if isinstance(v, str) else ""


def _machine(info: dict, given_id: object) -> Machine:
    count = info.get("cpu_count")
    cpu, gpu = _text(info.get("cpu_model")) or "unknown CPU", _text(info.get("gpu_name"))
    mid = given_id if isinstance(given_id, str) and given_id else machine_id(info)
    return Machine(mid, describe(cpu, int(count) if pd.notna(count) and count else 0, gpu,
                                 info.get("memory_bytes")), gpu)


def bench_machines(df: pd.DataFrame) -> pd.Series:
    """The ``Machine`` of each benchmark row (``machine_id``; ``machine_cpu``,
    ``machine_cpu_count``, ``machine_memory_bytes``, ``machine_gpu`` for its name)."""
    def one(r: pd.Series) -> Machine:
        return _machine({"cpu_model": r.get("machine_cpu"), "cpu_count": r.get("machine_cpu_count"),
                         "memory_bytes": r.get("machine_memory_bytes"),
                         "gpu_name": r.get("machine_gpu")}, r.get("machine_id"))
    return df.apply(one, axis=1) if len(df) else pd.Series(dtype=object)


def study_machine(context: dict) -> Machine:
    """The ``Machine`` of a study's context record: its host, and the GPU where the study
    timed one (``gpu_name``)."""
    raw = context.get("machine_json")
    info = json.loads(raw) if isinstance(raw, str) and raw else {}
    if _text(context.get("gpu_name")):
        info.setdefault("gpu_name", context["gpu_name"])
    return _machine(info, context.get("machine_id"))
