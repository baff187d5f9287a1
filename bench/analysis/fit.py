"""Fit McCandlish et al.'s steps/batch-size trade-off to measured steps-to-target.

    S(B) = S_min + E_min / B,     equivalently (S / S_min - 1)(E / E_min - 1) = 1 with E = B S,

S_min: the fewest steps any batch size needs (the large-batch limit); E_min: the fewest
examples (the small-batch limit, E = B S -> E_min as B -> 0); B_crit = E_min / S_min: the batch
size where both are spent twice over (S = 2 S_min, E = 2 E_min).

The least squares are taken in **log space**, ``sum_i (log S_i - log S(B_i))^2``: the measured
steps span four decades, and a linear fit would be decided by the smallest B alone; a relative
error is what a log-log figure shows and what the noise of steps-to-target looks like.

The three regimes (this module's convention, from the fitted curve):

* **perfect scaling** for B <= B_crit / 10: S is within 10 % of E_min / B (doubling B halves S);
* **diminishing returns** for B_crit / 10 < B < 10 B_crit;
* **maximal data parallelism** for B >= 10 B_crit: S is within 10 % of S_min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

__all__ = ["StepsFit", "fit_steps", "regime"]


@dataclass(frozen=True)
class StepsFit:
    """``S(B) = s_min + e_min / B`` (steps; examples) and its log-space RMS residual."""

    s_min: float
    e_min: float
    rms_log_residual: float
    n_points: int

    @property
    def b_crit(self) -> float:
        """``E_min / S_min``, in examples."""
        return self.e_min / self.s_min

    @property
    def perfect_scaling_max_b(self) -> float:
        """The end of the perfect-scaling regime: ``B_crit / 10``."""
        return self.b_crit / 10

    @property
    def max_parallelism_min_b(self) -> float:
        """The start of the maximal-data-parallelism regime: ``10 B_crit``."""
        return self.b_crit * 10

    def steps(self, batch_size: float | np.ndarray) -> float | np.ndarray:
        """The fitted S(B), in steps."""
        return self.s_min + self.e_min / np.asarray(batch_size, dtype=np.float64)


def fit_steps(batch_sizes: np.ndarray, steps: np.ndarray) -> StepsFit:
    """Least squares of ``log S = log(S_min + E_min / B)`` over (B_i, S_i), S_min, E_min > 0.

    Needs at least two distinct batch sizes with positive steps; the start point is the linear
    regression of S on 1 / B (clipped positive), the parameters are optimised as logs.
    """
    B = np.asarray(batch_sizes, dtype=np.float64)
    S = np.asarray(steps, dtype=np.float64)
    ok = np.isfinite(B) & np.isfinite(S) & (B > 0) & (S > 0)
    B, S = B[ok], S[ok]
    if len(np.unique(B)) < 2:
        raise ValueError(f"fit_steps needs steps-to-target at two or more distinct batch sizes; "
                         f"got {len(np.unique(B))} (batch sizes {sorted(set(B.tolist()))}). "
                         f"Run the study over more batch sizes or check why trials missed "
                         f"the target.")
    slope, intercept = np.polyfit(1.0 / B, S, 1)
    x0 = np.log([max(intercept, S.min() * 0.5), max(slope, S.max() * B.min() * 0.5)])

    def residual(theta: np.ndarray) -> np.ndarray:
        s_min, e_min = np.exp(theta)
        return np.log(S) - np.log(s_min + e_min / B)

    sol = least_squares(residual, x0, method="lm" if len(B) > 2 else "trf")
    s_min, e_min = np.exp(sol.x)
    rms = float(np.sqrt(np.mean(residual(sol.x) ** 2)))
    return StepsFit(s_min=float(s_min), e_min=float(e_min), rms_log_residual=rms,
                    n_points=len(B))


def regime(fit: StepsFit, batch_size: float) -> str:
    """The regime of ``batch_size`` under ``fit`` (see the module docstring)."""
    if batch_size <= fit.perfect_scaling_max_b:
        return "perfect scaling"
    if batch_size >= fit.max_parallelism_min_b:
        return "maximal data parallelism"
    return "diminishing returns"
