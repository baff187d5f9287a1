"""The learning-rate search at one batch size, as a generator of trial batches.

The scheme (deterministic, so a rerun asks for exactly the same trials and finds them stored):

1. **Coarse**: half-decades on the lattice ``lr = 10 ** (units / 8)`` (4 units apart), starting
   at the three points around a prior guess (``start_units``, from linear scaling
   ``lr ~ 0.01 B ** 0.7``, clipped); while none reaches the target the bracket widens by a
   half-decade on both sides; then it walks up or down, a half-decade at a time, while the
   steps-to-target keep falling (the steps are assumed unimodal in log lr, which every search
   in the committed study shows). The walk ends at a trial that diverges, misses the target, or
   needs more steps than the best.
2. **Refine**: the quarter-decades either side of the best, then the eighth-decades either side
   of the new best (so the best rate is known to a factor 10 ** (1/8) = 1.33).
3. **Seeds**: the best rate with the other seeds (full budget, not capped), for the spread.

Every trial after the first batch is capped at the fewest steps found so far at its B (Shallue
et al.'s steps-to-target is the minimum over trials, so a trial past it cannot lower it): it is
recorded with status ``capped``. Diverged trials are kept with status ``diverged``.

Why this and not quasi-random log-uniform sampling (Shallue et al.): the steps are a smooth
unimodal function of log lr for this convex model, so a bracketing walk finds the minimum to
a factor 1.33 in about 8 trials per B, where random sampling needs several times more for
the same resolution, and the cap makes the losing trials cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SearchOutcome", "lr_search"]

HALF_DECADE = 4
Record = dict[str, Any]
# make_spec(units, max_steps, phase, seed) -> a TrialSpec
MakeSpec = Callable[[int, int, str, int], Any]


@dataclass
class SearchOutcome:
    """What the search at one B found: the best lattice point and its steps (None: none)."""

    batch_size: int
    best_units: int | None = None
    best_steps: int | None = None
    records: list[Record] = field(default_factory=list)


def _steps(rec: Record) -> int | None:
    return rec["steps_to_target"] if rec["status"] == "reached" else None


def lr_search(batch_size: int, start_units: int, budget: int, make_spec: MakeSpec,
              seeds: tuple[int, ...], bounds: tuple[int, int] = (-32, 24),
              grid: tuple[int, ...] | None = None,
              ) -> Generator[list[Any], list[Record], SearchOutcome]:
    """Yield lists of trial specs; receive their records (same order); return the outcome.

    ``grid``: evaluate exactly these lattice points (offsets from ``start_units``) instead of
    the adaptive walk (the CI's small study). ``seeds[0]`` is the search's seed.
    """
    out = SearchOutcome(batch_size)
    done: dict[int, Record] = {}
    lo, hi = bounds

    def cap() -> int:
        return out.best_steps if out.best_steps is not None else budget

    def trials(units: list[int], phase: str) -> Generator[list[Any], list[Record], bool]:
        """Run the new points among ``units``; True when one of them is the new best."""
        units = [u for u in dict.fromkeys(units) if lo <= u <= hi and u not in done]
        if not units:
            return False
        recs = yield [make_spec(u, cap(), phase, seeds[0]) for u in units]
        improved = False
        for u, rec in zip(units, recs, strict=True):
            done[u] = rec
            out.records.append(rec)
            s = _steps(rec)
            if s is not None and (out.best_steps is None or s < out.best_steps):
                out.best_units, out.best_steps, improved = u, s, True
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
    if out.best_units is not None and len(seeds) > 1:
        recs = yield [make_spec(out.best_units, budget, "seed", s) for s in seeds[1:]]
        out.records.extend(recs)
    return out
