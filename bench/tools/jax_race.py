"""JAX's compiled epochs against the suite's own fastest path, paired in one process.

For each (model, B): every backend's trainer is prepared once on the real MNIST (compilation
and the upload outside the timing), then each round trains one shuffled epoch (or its first
``--max-steps`` steps) on each backend in turn, alternating the order between rounds so drift
falls on both sides; the ratio of a round is (the fastest own path's epoch) / (JAX's epoch), and
the table shows its median and interquartile range. Ratios only: the machine is shared.

    python -m bench.tools.jax_race --models softmax,mlp --batch-sizes 1,20,600 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from bench.benchmarks.bench_training import SETTLE_S
from bench.harness import prepare, reset, train
from bench.profiles import BENCHMARK_GRID
from bench.workload.config import RunConfig, batch_sizes_for
from bench.workload.datasets import DEFAULT, get_dataset, load
from impls.registry import BACKENDS, unavailable_reason

__all__ = ["race"]

PEER = "jax"
CPU_BACKENDS = [b for b, (_, devices) in BACKENDS.items() if "cpu" in devices]


def race(model: str, B: int, rounds: int, max_steps: int | None, data,
         backends: list[str] = CPU_BACKENDS) -> dict:
    """Per-round epoch seconds of every usable backend of ``backends`` (JAX and at least one
    other) at (model, B) and the paired ratios."""
    base = RunConfig(model=model, variant="minibatch", batch_size=B, max_epochs=1,
                     max_steps=max_steps, learning_rate=0.13 if model == "softmax" else 0.01)
    trainers = {}
    for backend in backends:
        if unavailable_reason(backend, "cpu", model):
            continue
        config = replace(base, backend=backend)
        trainers[backend] = (prepare(config, data), config)
    seconds: dict[str, list[float]] = {b: [] for b in trainers}
    for r in range(rounds + 1):  # round 0 warms up (first touches, OpenBLAS threads, JIT)
        order = list(trainers) if r % 2 else list(reversed(trainers))
        for backend in order:
            (trainer, upload_s), config = trainers[backend]
            reset(trainer, config)
            epoch_s = train(trainer, config, upload_s).train_epoch_s
            time.sleep(SETTLE_S)  # the last library's spinning threads leave the cores
            if r:
                seconds[backend].append(epoch_s)
    own = np.min([seconds[b] for b in seconds if b != PEER], axis=0)
    ratio = own / np.asarray(seconds[PEER])
    fastest = {b: float(np.median(s)) for b, s in seconds.items()}
    return {"model": model, "B": B, "seconds": fastest,
            "compile_s": trainers[PEER][0][0].compile_s,
            "ratio": float(np.median(ratio)),
            "iqr": tuple(float(q) for q in np.percentile(ratio, [25, 75]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="softmax,mlp")
    p.add_argument("--batch-sizes", default=",".join(map(str, batch_sizes_for(
        BENCHMARK_GRID, get_dataset(DEFAULT).n_train))))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backends", default=",".join(CPU_BACKENDS),
                   help="the CPU backends raced, JAX among them (default: all)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cut each epoch after this many steps (per-step cost, small B)")
    args = p.parse_args()
    backends = args.backends.split(",")
    if PEER not in backends or len(set(backends)) < 2 or set(backends) - set(CPU_BACKENDS):
        p.error(f"--backends {args.backends!r}: name {PEER} and at least one other of "
                f"{', '.join(CPU_BACKENDS)}, comma-separated.")
    data = load(DEFAULT)
    print(f"load before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| model | B | " + " | ".join(CPU_BACKENDS) + " | compile_s | fastest own "
          "/ JAX (median, IQR) |")
    for model in args.models.split(","):
        for B in map(int, args.batch_sizes.split(",")):
            out = race(model, B, args.rounds, args.max_steps, data, backends)
            cells = " | ".join(f"{1e3 * out['seconds'][b]:.0f} ms" if b in out["seconds"]
                               else "-" for b in CPU_BACKENDS)
            print(f"| {model} | {B} | {cells} | {out['compile_s']:.2f} | {out['ratio']:.2f} "
                  f"({out['iqr'][0]:.2f}-{out['iqr'][1]:.2f}) |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
