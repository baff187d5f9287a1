"""The README's complete studies by name (``python -m bench.study --preset NAME``): each preset is
data, the ``StudyConfig`` fields it sets (every other field keeps its default, the search and
held-out seeds included); explicit command-line options override them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.study.config import StudyConfig
from bench.workload.config import FULL_BATCH

__all__ = ["PRESETS", "Preset", "preset_config"]


@dataclass(frozen=True)
class Preset:
    """A named complete study: what it answers, its ``StudyConfig`` fields, and its cost."""

    name: str
    description: str
    fields: dict[str, Any] = field(default_factory=dict)
    cost: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("softmax", "softmax regression, plain SGD: the default StudyConfig",
           {"name": "softmax"},
           "the default study: B = 1 ... 32768 and the full batch"),
    # The momentum study of results/study/cpu-epyc-2vcpu-momentum (its study_config: these B,
    # numpy and torch, momentum 0.9), now with the default search and held-out seeds.
    Preset("momentum", "softmax regression, SGD with heavy-ball momentum 0.9",
           {"name": "momentum", "batch_sizes": (1, 16, 256, 4096, FULL_BATCH),
            "backends": ("numpy", "torch"),
            "extra_config": (("optimizer", "momentum"), ("momentum", 0.9))},
           "5 B: about a third of the softmax study's trials"),
    # The tutorial MLP (784-500-10, tanh), plain SGD. Settings from a pilot (seed 1234, one
    # thread, 2026-12-05, the shared 2-core EPYC at load 0.5-2.2): the 6 % validation error is
    # reached after about one epoch at small B (B = 16, lr 0.316: 2,184-2,808 steps; lr 0.1:
    # ~3,125), in 288 steps at B = 1,024 (lr 1) and ~264 at B = 2,048 (lr 1.78, oscillating):
    # S(B) ~ 250 + 40,000 / B, so B_crit ~ 160 and B = 1 ... 2,048 (12 sizes) spans 1/160 to
    # 13 x B_crit. Seconds per step, fastest eager backend, one thread: B = 1: 37 us (numba),
    # 4: 118 us (numba), 16: 0.68 ms, 64: 1.9 ms, 256: 6.6 ms, 2,048: 48 ms (numpy); about
    # 25-40 us per example at every B (the other B interpolated at that rate; B = 1,024 gave
    # 54 ms at load 2.2). One validation (10,000 examples, an MLP forward) costs 0.2 s: at 8
    # checks per S_prior(B) it is ~50 % of a trial at B <= 128 (~2 s of training there) and
    # ~11 % at B = 2,048; 15 % at B <= 128 would leave about one check per S_prior (a fixed
    # validation subset would be the way out; not a preset's to choose). Estimate per B = 40
    # trial-equivalents (3 search seeds x ~7 lattice points capped at the best median, ~2
    # slow rates run to the budget, 5 held-out seeds x 1.5 for after_target; an assumption
    # about the walk, not measured) x (S(B) x s/step + 8 x 0.2 s):
    #   B      1    2    4    8   16   32   64  128  256  512  1024  2048
    #   S  40250 20250 10250 5250 2750 1500 875  562  406  328   289   270
    #   s    124  121  112  133  139  136  130  143  171  235   353   582  (per B, one worker)
    # = 2,380 worker-s, ~20 min on 2 workers quiet, plus ~5 min of timing (50,000 examples per
    # timed run). Measured since: a rate that neither diverges nor reaches 6 % runs its whole
    # budget (B = 2,048: 1,348 steps, 150-200 s at load 4), which the estimate left out; so the
    # budget is 2 x S_prior (not 5 x) and B stops at 1,024 (11 sizes, up to 6 x B_crit).
    Preset("mlp", "the tutorial's MLP (784-500-10, tanh), plain SGD",
           {"name": "mlp", "batch_sizes": tuple(2**k for k in range(11)), "budget_factor": 2.0,
            "target_error": 0.06, "prior_s_min": 250.0, "prior_e_min": 40_000.0,
            "validations_per_prior": 8, "timing_examples": 50_000,
            # the noise-scale trajectories use softmax's closed form; the MLP's B_simple is
            # taken on its held-out runs (bench.workload.noise_scale_mlp, ~8 s a run)
            "noise_batch_sizes": (), "extra_config": (("model", "mlp"),)},
           "11 B: 307 trials; measured 1,655 s of wall time (trials on numpy, timing and direct "
           "runs, 2 workers on the 2-core EPYC) after 17 min of an interrupted run's trials"),
)}


def preset_config(preset: str, /, **overrides: Any) -> StudyConfig:
    """The ``StudyConfig`` of ``preset`` with ``overrides`` (StudyConfig fields, ``name``
    included) on top; a ValueError listing the presets for an unknown one."""
    if preset not in PRESETS:
        raise ValueError(f"The preset must be one of {', '.join(PRESETS)}. "
                         f"Got {preset!r} instead.")
    return StudyConfig(**{**PRESETS[preset].fields, **overrides})
