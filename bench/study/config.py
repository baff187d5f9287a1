"""The settings of one study (``StudyConfig``) and the harness settings they imply per B."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from bench.study.storage import check_name
from bench.study.trial import LR_UNITS_PER_DECADE
from bench.workload.config import FULL_BATCH, RunConfig, batch_sizes_for
from bench.workload.datasets import DATASETS, DEFAULT, get_dataset

__all__ = ["STUDY_GRID", "StudyConfig", "base_kw", "extra_tag"]

#: The study's batch sizes: B = 1, 2, 4, ..., 32768 and the full batch (sizes above the
#: dataset's n_train left out).
STUDY_GRID: tuple[int | str, ...] = (*(2**k for k in range(16)), FULL_BATCH)


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Every setting of one study; the defaults are the complete study of the README.

    ``batch_sizes`` and ``noise_batch_sizes`` may hold ``FULL_BATCH`` (the dataset's n_train);
    they are resolved against ``dataset`` once, here (``batch_sizes_for``).
    """

    name: str = "default"
    dataset: str = DEFAULT
    batch_sizes: tuple[int | str, ...] = STUDY_GRID
    seeds: tuple[int, ...] = (1234, 1, 2)          # the search seeds: they choose the rate
    held_out_seeds: tuple[int, ...] = (11, 12, 13, 14, 15)  # ... these measure S(B) at it
    after_target: float = 0.5           # held-out runs go on to 1.5 x steps-to-target
    target_error: float = 0.08
    backends: tuple[str, ...] = ("numpy", "torch", "numba", "jax")
    trial_backend: str | None = None    # every trial on this one (None: the fastest per B)
    dtype: str = "float32"
    init: str = "zeros"
    order: str = "shuffle"
    prior_s_min: float = 150.0          # steps: the prior S_prior(B) = s_min + e_min / B
    prior_e_min: float = 60_000.0       # examples
    budget_factor: float = 5.0          # step budget per trial = factor * S_prior(B)
    validations_per_prior: int = 100    # validations within S_prior(B) steps
    grid: tuple[int, ...] | None = None  # lattice offsets instead of the adaptive search
    timing: bool = True
    timing_examples: int = 200_000      # examples per timed run: max(5, min(20000, n / B)) steps
    timing_repeats: int = 3
    timing_threads: int = 1             # see the README: 2 threads on a shared 2-core box lose
    timing_max_seconds: float | None = None  # bound on the whole timing phase (s); see timing
    direct_top: int = 3
    direct_repeats: int = 3
    noise_batch_sizes: tuple[int | str, ...] = (4, 16, 64, 256, 1024, FULL_BATCH)
    noise_points: int = 6               # checkpoints per noise trajectory (bench.study.noise)
    extra_config: tuple[tuple[str, Any], ...] = ()
    purpose: str = "full"               # or "small": the CI's smoke study, never reported

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.purpose not in ("full", "small"):
            raise ValueError(f"The 'purpose' of StudyConfig must be 'full' or 'small'. "
                             f"Got {self.purpose!r} instead.")
        if self.dataset not in DATASETS:
            raise ValueError(f"The 'dataset' of StudyConfig must be one of {tuple(DATASETS)} "
                             f"(check the spelling). Got {self.dataset!r} instead.")
        n = self.n_train
        bad = [B for B in self.batch_sizes if not (B == FULL_BATCH or (
            isinstance(B, int) and not isinstance(B, bool) and B >= 1))]
        if bad or not self.batch_sizes:
            raise ValueError(f"The 'batch_sizes' of StudyConfig must be ints in [1, {n}] or "
                             f"{FULL_BATCH!r}. Got {self.batch_sizes!r} instead.")
        for name in ("batch_sizes", "noise_batch_sizes"):
            object.__setattr__(self, name, batch_sizes_for(getattr(self, name), n))
        if not self.batch_sizes:
            raise ValueError(f"The 'batch_sizes' of StudyConfig leave none within the {n} "
                             f"training examples of dataset {self.dataset!r}. Add smaller ones "
                             f"or {FULL_BATCH!r}.")
        if not self.seeds:
            raise ValueError("The 'seeds' of StudyConfig must name at least one seed. Got ().")
        for name in ("seeds", "held_out_seeds"):
            seeds = getattr(self, name)
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"The '{name}' of StudyConfig must be distinct. Got {seeds!r}.")
        shared = sorted(set(self.seeds) & set(self.held_out_seeds))
        if shared:
            raise ValueError(f"Seeds {shared} are both search seeds ('seeds') and held-out seeds "
                             f"('held_out_seeds') of StudyConfig: a held-out seed must not take "
                             f"part in choosing the rate. Drop them from one of the two.")
        if self.timing_max_seconds is not None and not self.timing_max_seconds > 0:
            raise ValueError(f"The 'timing_max_seconds' of StudyConfig must be None or > 0. "
                             f"Got {self.timing_max_seconds!r} instead.")
        # Fail now, not in a worker, if a field (e.g. an optimizer of a newer tree) is unknown.
        try:
            RunConfig(learning_rate=0.1, batch_size=2, **dict(self.extra_config))
        except TypeError as exc:
            raise ValueError(f"The 'extra_config' {dict(self.extra_config)!r} of StudyConfig "
                             f"names a field RunConfig does not have in this tree ({exc}); "
                             f"drop it or update the tree.") from exc

    @property
    def n_train(self) -> int:
        """Training examples of the study's dataset."""
        return get_dataset(self.dataset).n_train

    def prior_steps(self, B: int) -> float:
        return self.prior_s_min + self.prior_e_min / B

    def budget(self, B: int) -> int:
        return math.ceil(self.budget_factor * self.prior_steps(B))

    def validations_per_epoch(self, B: int) -> int:
        nb = max(1, self.n_train // B)
        interval = max(1, int(self.prior_steps(B) // self.validations_per_prior))
        return max(1, nb // interval)

    def start_units(self, B: int) -> int:
        """The search's first lattice point: the half-decade nearest ``0.01 B ** 0.7``
        clipped to [1e-3, 30] (linear-then-sublinear scaling seen in a pilot)."""
        lr = min(max(0.01 * B**0.7, 1e-3), 30.0)
        return 4 * round(LR_UNITS_PER_DECADE * math.log10(lr) / 4)


def base_kw(cfg: StudyConfig, B: int) -> dict[str, Any]:
    return {"dataset": cfg.dataset, "batch_size": B, "dtype": cfg.dtype, "init": cfg.init,
            "order": cfg.order, **dict(cfg.extra_config)}


def extra_tag(cfg: StudyConfig) -> str:
    """A file-name-safe tag of ``extra_config`` (and of the dataset unless it is the default):
    'default', or a hash of its JSON."""
    data = "" if cfg.dataset == DEFAULT else f"{cfg.dataset}_"
    if not cfg.extra_config:
        return data + "default"
    text = json.dumps(dict(cfg.extra_config), sort_keys=True)
    return data + "x" + hashlib.sha1(text.encode()).hexdigest()[:10]
