"""The settings of one study (``StudyConfig``) and the harness settings they imply per B."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from bench.study.storage import check_name
from bench.study.trial import LR_UNITS_PER_DECADE, N_TRAIN
from bench.workload.config import RunConfig

__all__ = ["FULL_GRID", "StudyConfig", "base_kw", "extra_tag"]

#: B = 1, 2, 4, ..., 32768 and the full batch.
FULL_GRID: tuple[int, ...] = (*(2**k for k in range(16)), N_TRAIN)


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Every setting of one study; the defaults are the complete study of the README."""

    name: str = "default"
    batch_sizes: tuple[int, ...] = FULL_GRID
    seeds: tuple[int, ...] = (1234, 1, 2)
    target_error: float = 0.08
    backends: tuple[str, ...] = ("numpy", "torch", "numba")
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
    noise_batch_sizes: tuple[int, ...] = (4, 16, 64, 256, 1024, N_TRAIN)
    noise_points: int = 24              # geometric checkpoints up to 1.5 x steps-to-target
    noise_dense: int = 11               # even checkpoints over 0.5-1.5 x steps-to-target
    extra_config: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name)
        bad = [B for B in self.batch_sizes if not (isinstance(B, int) and 1 <= B <= N_TRAIN)]
        if bad or not self.batch_sizes:
            raise ValueError(f"The 'batch_sizes' of StudyConfig must be ints in [1, {N_TRAIN}]. "
                             f"Got {self.batch_sizes!r} instead.")
        if not self.seeds:
            raise ValueError("The 'seeds' of StudyConfig must name at least one seed. Got ().")
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

    def prior_steps(self, B: int) -> float:
        return self.prior_s_min + self.prior_e_min / B

    def budget(self, B: int) -> int:
        return math.ceil(self.budget_factor * self.prior_steps(B))

    def validations_per_epoch(self, B: int) -> int:
        nb = max(1, N_TRAIN // B)
        interval = max(1, int(self.prior_steps(B) // self.validations_per_prior))
        return max(1, nb // interval)

    def start_units(self, B: int) -> int:
        """The search's first lattice point: the half-decade nearest ``0.01 B ** 0.7``
        clipped to [1e-3, 30] (linear-then-sublinear scaling seen in a pilot)."""
        lr = min(max(0.01 * B**0.7, 1e-3), 30.0)
        return 4 * round(LR_UNITS_PER_DECADE * math.log10(lr) / 4)


def base_kw(cfg: StudyConfig, B: int) -> dict[str, Any]:
    variant = {1: "sgd", N_TRAIN: "full"}.get(B, "minibatch")
    kw: dict[str, Any] = {"variant": variant, "dtype": cfg.dtype, "init": cfg.init,
                          "order": cfg.order, **dict(cfg.extra_config)}
    if variant == "minibatch":
        kw["batch_size"] = B
    return kw


def extra_tag(cfg: StudyConfig) -> str:
    """A file-name-safe tag of ``extra_config``: 'default', or a hash of its JSON."""
    if not cfg.extra_config:
        return "default"
    text = json.dumps(dict(cfg.extra_config), sort_keys=True)
    return "x" + hashlib.sha1(text.encode()).hexdigest()[:10]
