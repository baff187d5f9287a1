"""The learning-rate search at one batch size, as a generator of trial batches, and the
held-out runs at the rate it chose.

The scheme (deterministic, so a rerun asks for exactly the same trials and finds them stored):

1. **Coarse**: half-decades on the lattice ``lr = 10 ** (units / 8)`` (4 units apart), starting
   at the three points around a prior guess (``start_units``, from linear scaling
   ``lr ~ 0.01 B ** 0.7``, clipped); while none reaches the target the bracket widens by a
   half-decade on both sides; then it walks up or down, a half-decade at a time, while the
   score keeps falling (the steps are assumed unimodal in log lr, which every search in the
   committed studies shows).
2. **Refine**: the quarter-decades either side of the best, then the eighth-decades either side
   of the new best (so the chosen rate is known to a factor 10 ** (1/8) = 1.33).
3. **Held out**: the chosen rate on every held-out seed, allowed the full budget and trained on
   past first passage (``after_target``): these runs, and only these, measure S(B).

A lattice point runs on every **search seed**, and its score is the **median** of their
steps-to-target (+inf for a seed that diverged or missed the target): the choice is
``bench.analysis.race.choose_learning_rate`` (ties to the smaller rate). The minimum over
trials, the old score, rewards the rate whose one seed got lucky and reports that luck as
S(B): biased low wherever the runs oscillate. Search trials are capped at the best median so
far (status ``capped``): exact for the choice, since a capped seed is known to be slower than
that median and a point's median can only fall to it through seeds that were not capped.
The held-out seeds never take part in the choice, so their median is an unbiased S(B).

Why a bracketing walk and not quasi-random log-uniform sampling (Shallue et al.): the steps are
a smooth unimodal function of log lr for this convex model, so the walk finds the minimum to a
factor 1.33 in about 8 points per B, where random sampling needs several times more for the same
resolution, and the cap makes the losing trials cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.analysis.race import choose_learning_rate

__all__ = ["SearchOutcome", "lr_search"]

HALF_DECADE = 4
Record = dict[str, Any]
# make_spec(units, max_steps, phase, seed, after_target) -> a TrialSpec (after_target None: the
# study's own)
MakeSpec = Callable[[int, int, str, int, float | None], Any]


@dataclass
class SearchOutcome:
    """What the search at one B found: the chosen lattice point and its search median (None:
    no point reached the target on half its seeds), the held-out runs at it."""

    batch_size: int
    best_units: int | None = None
    best_steps: float | None = None
    records: list[Record] = field(default_factory=list)
    held_out: list[Record] = field(default_factory=list)

    @property
    def race_steps(self) -> float | None:
        """S(B): the held-out seeds' median steps (+inf where half of them missed), or the
        search median where the study has no held-out seeds."""
        if not self.held_out:
            return self.best_steps
        return float(np.median([_steps(r) for r in self.held_out]))

    def median_run(self) -> Record | None:
        """The run whose steps are S(B) (the lower median of the held-out runs; of the search
        seeds' runs at the chosen point where there are none): the trajectory a direct timed
        run follows. None where that run missed the target."""
        runs = self.held_out or [r for r in self.records if r["lr_units"] == self.best_units]
        if not runs:
            return None
        run = sorted(runs, key=lambda r: (_steps(r), r["seed"]))[(len(runs) - 1) // 2]
        return run if run["status"] == "reached" else None


def _steps(rec: Record) -> float:
    return float(rec["steps_to_target"]) if rec["status"] == "reached" else math.inf


def lr_search(batch_size: int, start_units: int, budget: int, make_spec: MakeSpec,
              seeds: tuple[int, ...], held_out: tuple[int, ...] = (),
              bounds: tuple[int, int] = (-32, 24), grid: tuple[int, ...] | None = None,
              ) -> Generator[list[Any], list[Record], SearchOutcome]:
    """Yield lists of trial specs; receive their records (same order); return the outcome.

    ``seeds``: the search seeds (every point runs on each); ``held_out``: the seeds that
    measure S(B) at the chosen point. ``grid``: evaluate exactly these lattice points (offsets
    from ``start_units``) instead of the adaptive walk (the CI's small study).
    """
    out = SearchOutcome(batch_size)
    done: dict[int, list[float]] = {}
    lo, hi = bounds

    def cap() -> int:
        return math.ceil(out.best_steps) if out.best_steps is not None else budget

    def trials(units: list[int], phase: str) -> Generator[list[Any], list[Record], bool]:
        """Run the new points among ``units`` on every search seed; True when one of them is
        the new best."""
        units = [u for u in dict.fromkeys(units) if lo <= u <= hi and u not in done]
        if not units:
            return False
        c = cap()
        recs = yield [make_spec(u, c, phase, seed, 0.0) for u in units for seed in seeds]
        out.records.extend(recs)
        for i, u in enumerate(units):
            done[u] = [_steps(r) for r in recs[i * len(seeds):(i + 1) * len(seeds)]]
        try:                                        # keyed by units: monotone in the rate
            choice = choose_learning_rate(done, min_seeds=1)
        except ValueError:                            # no point reached on half its seeds
            return False
        improved = choice.learning_rate != out.best_units
        out.best_units, out.best_steps = int(choice.learning_rate), choice.median_steps
        return improved

    if grid is not None:
        yield from trials([start_units + g for g in grid], "grid")
    else:
        width = HALF_DECADE
        yield from trials([start_units - width, start_units, start_units + width], "coarse")
        while out.best_units is None and (start_units - width > lo or start_units + width < hi):
            width += HALF_DECADE
            yield from trials([start_units - width, start_units + width], "coarse")
        if out.best_units is not None:
            for direction in (+1, -1):
                while (yield from trials([out.best_units + direction * HALF_DECADE], "coarse")):
                    pass
            for step in (HALF_DECADE // 2, HALF_DECADE // 4):
                b = out.best_units
                yield from trials([b - step, b + step], "refine")
    if out.best_units is not None and held_out:
        out.held_out = (yield [make_spec(out.best_units, budget, "held-out", seed, None)
                               for seed in held_out])
    return out
