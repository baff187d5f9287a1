"""Benchmark profiles: how much of the grid to run and with what budget.

Chosen by ``pytest --gdbench-profile NAME`` or ``GDBENCH_PROFILE=NAME``; ``standard`` by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from bench.workload.config import FULL_BATCH as F
from bench.workload.datasets import DATASETS, DEFAULT

__all__ = ["ENV_PROFILE", "PROFILES", "Profile", "get_profile"]

ENV_PROFILE = "GDBENCH_PROFILE"
#: The benchmarks' batch sizes (the study searches its own grid, ``bench.study.core``).
BENCHMARK_GRID = (1, 10, 20, 50, 100, 200, 600, 1000, 5000, F)


@dataclass(frozen=True)
class Profile:
    """Budgets and grids of one benchmark profile, on one dataset.

    Batch sizes are numbers, or ``F`` (``FULL_BATCH``): all n training examples of the
    dataset; ``bench.grid`` resolves them against it (sizes above its n_train are left out).

    ``epochs`` / ``max_steps``: the fixed budget of each epoch benchmark (fresh init each round).
    ``ttt_*``: time-to-target runs (train until the validation error <= target), scored
    ``ttt_validations_per_epoch`` times per epoch so steps-to-target is not rounded to epochs.
    Time-to-target runs train at the tuned study's best rate for their B
    (``bench.benchmarks.bench_training.study_rate``).
    ``paired_rounds``: rounds of the epoch benchmarks a target judges against a reference timed
    before each round (``bench.analysis.targets.side_reference``); at least ``rounds``: the
    median of their per-round ratios is what a target reports.
    """

    name: str
    batch_sizes: tuple[int | str, ...]
    epochs: int
    max_steps: int | None
    rounds: int
    warmup_rounds: int
    step_batch_sizes: tuple[int | str, ...]
    step_rounds: int
    ttt_batch_sizes: tuple[int | str, ...]
    ttt_max_epochs: int
    ttt_max_steps: int
    ttt_validations_per_epoch: int = 10
    target_error: float = 0.08
    learning_rate: float = 0.13
    gpu_batch_sizes: tuple[int | str, ...] = (1, 20, 600, 5000, F)
    transfer_batch_sizes: tuple[int | str, ...] = (1, 20, 600, 5000, F)
    peer_batch_sizes: tuple[int | str, ...] = (1, 20, 600)
    progress: bool = True
    paired_rounds: int = 7
    #: Models benchmarked, and the batch sizes of each model other than softmax regression.
    models: tuple[str, ...] = ("softmax", "mlp")
    model_batch_sizes: dict[str, tuple[int | str, ...]] = field(
        default_factory=lambda: {"mlp": (20, 100, 600, 5000, F)})
    #: ... of its step benchmarks (with ``step_batch_sizes``; not B = 1: ~20,000 single steps
    #: there, and PyTorch's MLP step took 6.6 ms at B = 20 in the 22ec28b standard run) ...
    model_step_batch_sizes: dict[str, tuple[int | str, ...]] = field(
        default_factory=lambda: {"mlp": (20, 100, 600, 5000, F)})
    #: ... and of its time-to-target runs (a full-batch MLP does not reach 8 % in a budget
    #: worth spending).
    model_ttt_batch_sizes: dict[str, tuple[int | str, ...]] = field(
        default_factory=lambda: {"mlp": (20, 600)})
    #: Epochs per round where a model's budget differs from ``epochs`` (an MLP epoch costs
    #: about 60x a softmax-regression one).
    model_epochs: dict[str, int] = field(default_factory=lambda: {"mlp": 1})
    #: A step cap per round of a model (with ``max_steps``, the lower holds): the same for
    #: every backend at a B, so the epoch seconds (scaled from the steps run,
    #: ``bench.analysis.views.epoch_seconds``) and the paired ratios compare like with like.
    #: 5,000 MLP steps are a tenth of an epoch at B = 1 (dense per-sample steps cost seconds
    #: per epoch in NumPy and PyTorch) and a whole one at B = 10: only B = 1 is cut.
    model_max_steps: dict[str, int] = field(default_factory=lambda: {"mlp": 5000})
    world_sizes: tuple[int | str, ...] = (1, 2)  # data-parallel ranks (bench_distributed.py)
    #: Devices benchmarked: ``gpu`` measures the card only (its machine's CPU is not the one
    #: the CPU results describe, and device time is scarce).
    devices: tuple[str, ...] = ("cpu", "cuda")
    #: The data the benchmarks train on (``--gdbench-dataset``).
    dataset: str = DEFAULT

    def budget(self, model: str) -> tuple[int, int | None]:
        """``(epochs, max_steps)`` of one round of an epoch benchmark of ``model``."""
        caps = [c for c in (self.max_steps, self.model_max_steps.get(model)) if c is not None]
        return self.model_epochs.get(model, self.epochs), min(caps, default=None)


PROFILES = {
    "quick": Profile(
        name="quick", batch_sizes=(1, 20, 600, F), epochs=1, max_steps=300, rounds=2,
        warmup_rounds=1, step_batch_sizes=(1, 600), step_rounds=5, ttt_batch_sizes=(600,),
        ttt_max_epochs=2, ttt_max_steps=200, gpu_batch_sizes=(1, 600, F),
        transfer_batch_sizes=(1, 600, F), peer_batch_sizes=(20,), progress=False,
        paired_rounds=2, model_batch_sizes={"mlp": (600,)},
        model_ttt_batch_sizes={"mlp": ()},
    ),
    "standard": Profile(
        name="standard", batch_sizes=BENCHMARK_GRID, epochs=2, max_steps=None, rounds=3,
        warmup_rounds=1, step_batch_sizes=(1, 20, 600, F), step_rounds=20,
        ttt_batch_sizes=(10, 20, 100, 600, 5000, F), ttt_max_epochs=40,
        ttt_max_steps=100_000, model_batch_sizes={"mlp": BENCHMARK_GRID},
    ),
    # The GPU machine's check: every variant, placement and kernel on the card at five batch
    # sizes, short budgets; the card's floors; data parallelism over NCCL.
    "gpu": Profile(
        name="gpu", batch_sizes=(1, 20, 600, 5000, F), epochs=1, max_steps=5000,
        rounds=3, warmup_rounds=1, step_batch_sizes=(1, 20, 600, F), step_rounds=10,
        ttt_batch_sizes=(20, 600), ttt_max_epochs=20, ttt_max_steps=50_000,
        progress=False, paired_rounds=3, devices=("cuda",),
    ),
    "full": Profile(
        name="full", batch_sizes=BENCHMARK_GRID, epochs=5, max_steps=None, rounds=5,
        warmup_rounds=1, step_batch_sizes=BENCHMARK_GRID, step_rounds=50,
        ttt_batch_sizes=BENCHMARK_GRID, ttt_max_epochs=200, ttt_max_steps=500_000,
        paired_rounds=9, model_batch_sizes={"mlp": BENCHMARK_GRID},
    ),
}


def get_profile(name: str | None = None, dataset: str | None = None) -> Profile:
    """The named profile, else ``$GDBENCH_PROFILE``, else ``standard``; on ``dataset`` where
    given (else the profile's)."""
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r} (from --gdbench-dataset); choose one of "
                         f"{', '.join(DATASETS)} (check the spelling).")
    where = "--gdbench-profile" if name else f"${ENV_PROFILE}"
    name = name or os.environ.get(ENV_PROFILE) or "standard"
    if name not in PROFILES:
        hint = f" Did you mean {name.lower()!r}? Names are lower-case." \
            if name.lower() in PROFILES else ""
        raise ValueError(f"Unknown benchmark profile {name!r} (from {where}); choose one of "
                         f"{', '.join(PROFILES)}.{hint}")
    profile = PROFILES[name]
    return profile if dataset is None else replace(profile, dataset=dataset)
