"""Benchmark profiles: how much of the grid to run and with what budget.

Chosen by ``pytest --gdbench-profile NAME`` or ``GDBENCH_PROFILE=NAME``; ``standard`` by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["ENV_PROFILE", "PROFILES", "Profile", "get_profile"]

ENV_PROFILE = "GDBENCH_PROFILE"
#: The benchmarks' batch sizes (the study searches its own grid, ``bench.study.core``).
BENCHMARK_GRID = (1, 10, 20, 50, 100, 200, 600, 1000, 5000, 50_000)


@dataclass(frozen=True)
class Profile:
    """Budgets and grids of one benchmark profile.

    ``epochs`` / ``max_steps``: the fixed budget of each epoch benchmark (fresh init each round).
    ``ttt_*``: time-to-target runs (train until the validation error <= target), scored
    ``ttt_validations_per_epoch`` times per epoch so steps-to-target is not rounded to epochs.
    ``lr_grid``: learning rates tried per batch size in time-to-target runs (best kept).
    ``paired_rounds``: rounds of the epoch benchmarks a target judges against a reference timed
    before each round (``bench.analysis.targets.side_reference``); at least ``rounds``: the
    median of their per-round ratios is what a target reports.
    """

    name: str
    batch_sizes: tuple[int, ...]
    epochs: int
    max_steps: int | None
    rounds: int
    warmup_rounds: int
    step_batch_sizes: tuple[int, ...]
    step_rounds: int
    ttt_batch_sizes: tuple[int, ...]
    ttt_max_epochs: int
    ttt_max_steps: int
    ttt_validations_per_epoch: int = 10
    target_error: float = 0.08
    learning_rate: float = 0.13
    lr_grid: tuple[float, ...] = (0.13,)
    gpu_batch_sizes: tuple[int, ...] = (1, 20, 600, 5000, 50_000)
    transfer_batch_sizes: tuple[int, ...] = (1, 20, 600, 5000, 50_000)
    peer_batch_sizes: tuple[int, ...] = (1, 20, 600)
    progress: bool = True
    paired_rounds: int = 7
    #: Models benchmarked, and the batch sizes of each model other than softmax regression.
    models: tuple[str, ...] = ("softmax", "mlp")
    model_batch_sizes: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {"mlp": (20, 100, 600, 5000, 50_000)})
    #: ... and of its time-to-target runs (a full-batch MLP does not reach 8 % in a budget
    #: worth spending).
    model_ttt_batch_sizes: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {"mlp": (20, 600)})
    #: Epochs per round where a model's budget differs from ``epochs`` (an MLP epoch costs
    #: about 60x a softmax-regression one).
    model_epochs: dict[str, int] = field(default_factory=lambda: {"mlp": 1})
    world_sizes: tuple[int, ...] = (1, 2)  # data-parallel ranks (bench_distributed.py)
    #: Devices benchmarked: ``gpu`` measures the card only (its machine's CPU is not the one
    #: the CPU results describe, and device time is scarce).
    devices: tuple[str, ...] = ("cpu", "cuda")


PROFILES = {
    "quick": Profile(
        name="quick", batch_sizes=(1, 20, 600, 50_000), epochs=1, max_steps=300, rounds=2,
        warmup_rounds=1, step_batch_sizes=(1, 600), step_rounds=5, ttt_batch_sizes=(600,),
        ttt_max_epochs=2, ttt_max_steps=200, gpu_batch_sizes=(1, 600, 50_000),
        transfer_batch_sizes=(1, 600, 50_000), peer_batch_sizes=(20,), progress=False,
        paired_rounds=2, model_batch_sizes={"mlp": (600,)},
        model_ttt_batch_sizes={"mlp": ()},
    ),
    "standard": Profile(
        name="standard", batch_sizes=BENCHMARK_GRID, epochs=2, max_steps=None, rounds=3,
        warmup_rounds=1, step_batch_sizes=(1, 20, 600, 50_000), step_rounds=20,
        ttt_batch_sizes=(10, 20, 100, 600, 5000, 50_000), ttt_max_epochs=40,
        ttt_max_steps=100_000, lr_grid=(0.01, 0.13),
    ),
    # The GPU machine's check: every variant, placement and kernel on the card at five batch
    # sizes, short budgets; the card's floors; data parallelism over NCCL.
    "gpu": Profile(
        name="gpu", batch_sizes=(1, 20, 600, 5000, 50_000), epochs=1, max_steps=5000,
        rounds=3, warmup_rounds=1, step_batch_sizes=(1, 20, 600, 50_000), step_rounds=10,
        ttt_batch_sizes=(20, 600), ttt_max_epochs=20, ttt_max_steps=50_000,
        lr_grid=(0.01, 0.13), progress=False, paired_rounds=3, devices=("cuda",),
    ),
    "full": Profile(
        name="full", batch_sizes=BENCHMARK_GRID, epochs=5, max_steps=None, rounds=5,
        warmup_rounds=1, step_batch_sizes=BENCHMARK_GRID, step_rounds=50,
        ttt_batch_sizes=BENCHMARK_GRID, ttt_max_epochs=200, ttt_max_steps=500_000,
        lr_grid=(0.03, 0.13, 0.5, 2.0), paired_rounds=9,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile, else ``$GDBENCH_PROFILE``, else ``standard``."""
    where = "--gdbench-profile" if name else f"${ENV_PROFILE}"
    name = name or os.environ.get(ENV_PROFILE) or "standard"
    if name not in PROFILES:
        hint = f" Did you mean {name.lower()!r}? Names are lower-case." \
            if name.lower() in PROFILES else ""
        raise ValueError(f"Unknown benchmark profile {name!r} (from {where}); choose one of "
                         f"{', '.join(PROFILES)}.{hint}")
    return PROFILES[name]
