"""The tutorial's patience-based early stopping, as a reusable object.

From ``logistic_sgd.py``: look at the validation error every ``validation_frequency`` minibatch
iterations; a new best that beats the old one by the factor ``improvement_threshold`` extends
the patience to ``iteration * patience_increase``; stop once ``patience <= iteration``. The test
error is recorded at each new best validation error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["EarlyStopping"]


@dataclass
class EarlyStopping:
    """Patience counted in minibatch iterations (0-based), as in the tutorial.

    Parameters
    ----------
    n_train_batches : minibatches per epoch.
    patience : look at this many iterations regardless (tutorial: 5000).
    patience_increase : wait this much longer (a factor) when a new best is found (2).
    improvement_threshold : a relative improvement below ``1 - threshold`` is not significant
        enough to extend the patience (0.995).
    validations_per_epoch : look this many times per epoch (1, the tutorial's rule).
    """

    n_train_batches: int
    patience: int = 5000
    patience_increase: int = 2
    improvement_threshold: float = 0.995
    validations_per_epoch: int = 1
    best_valid_error: float = math.inf
    best_iteration: int | None = None
    test_error_at_best: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("n_train_batches", "patience", "patience_increase",
                     "validations_per_epoch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"The '{name}' parameter of EarlyStopping must be an int >= 1. "
                                 f"Got {value!r} instead.")
        if not 0.0 < self.improvement_threshold <= 1.0:
            raise ValueError("The 'improvement_threshold' parameter of EarlyStopping must be a "
                             f"float in (0, 1]. Got {self.improvement_threshold!r} instead.")

    @property
    def validation_frequency(self) -> int:
        """``min(n_train_batches // validations_per_epoch, patience // 2)``, at least 1."""
        return max(1, min(self.n_train_batches // self.validations_per_epoch,
                          self.patience // 2))

    def should_validate(self, iteration: int) -> bool:
        """Whether the validation error is due after (0-based) ``iteration``."""
        return (iteration + 1) % self.validation_frequency == 0

    def next_validation(self, iteration: int) -> int:
        """The first iteration >= ``iteration`` after which validation is due."""
        f = self.validation_frequency
        return ((iteration + 1 + f - 1) // f) * f - 1

    def update(self, iteration: int, valid_error: float) -> bool:
        """Record a validation error; return True when it is a new best (then score the test)."""
        self.history.append((iteration, valid_error))
        if valid_error < self.best_valid_error:
            if valid_error < self.best_valid_error * self.improvement_threshold:
                self.patience = max(self.patience, iteration * self.patience_increase)
            self.best_valid_error = valid_error
            self.best_iteration = iteration
            return True
        return False

    def record_test(self, test_error: float) -> None:
        """The test error at the current best validation error."""
        self.test_error_at_best = test_error

    def should_stop(self, iteration: int) -> bool:
        """The tutorial's ``patience <= iter``."""
        return self.patience <= iteration
