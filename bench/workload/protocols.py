"""Named training protocols: configurations with a published reference behind them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.workload.config import RunConfig

__all__ = ["PROTOCOLS", "PUBLISHED", "protocol"]

#: The LISA-lab Deep Learning Tutorials' ``logistic_sgd.py``: zero init, lr 0.13, B = 600,
#: in-order sweep with the partial batch dropped, validation and test scored on whole
#: 600-batches only (9,600 of each 10,000), patience 5000 / 2 / 0.995, at most 1000 epochs,
#: pixels / 256 as its mnist.pkl.gz had. Published: best validation error 7.500000 %, test
#: error 7.489583 %, after 74 epochs. float64 is Theano's default floatX on the CPU; the
#: stopping rule is discrete, so float32 rounding can move the stop by a few epochs.
PROTOCOLS: dict[str, RunConfig] = {
    "tutorial": RunConfig(
        variant="minibatch", batch_size=600, learning_rate=0.13, dtype="float64",
        init="zeros", order="in-order", drop_last=True, early_stopping=True, patience=5000,
        patience_increase=2, improvement_threshold=0.995, max_epochs=1000,
        eval_batch_size=600, eval_drop_last=True, pixel_scale=256.0,
    ),
    #: The Deep Learning Tutorials' ``mlp.py``: 784 -> 500 (tanh) -> 10, hidden weights from
    #: RandomState(1234), output layer zero, lr 0.01, B = 20 in order, L1 0.00 and L2 0.0001
    #: over both weight matrices, patience 10,000 / 2 / 0.995 (validation once per epoch:
    #: min(2,500 batches, 10,000 // 2)), at most 1,000 epochs, the same /256 pixels. Published
    #: in the tutorial: best validation error 1.69 % at iteration 2,070,000 (epoch 828), test
    #: error 1.65 %.
    "mlp": RunConfig(
        model="mlp", variant="minibatch", batch_size=20, learning_rate=0.01, l1=0.0, l2=1e-4,
        dtype="float64", init="zeros", seed=1234, order="in-order", drop_last=True,
        early_stopping=True, patience=10_000, patience_increase=2, improvement_threshold=0.995,
        max_epochs=1000, eval_batch_size=20, eval_drop_last=True, pixel_scale=256.0,
    ),
}

#: What each protocol's source published, for checks and reports.
PUBLISHED = {
    "tutorial": {"best_valid_error": 720 / 9600, "test_error_at_best": 719 / 9600,
                 "epochs": 74},
    "mlp": {"best_valid_error": 0.0169, "test_error_at_best": 0.0165, "best_epoch": 828},
}


def protocol(name: str, **overrides: Any) -> RunConfig:
    """The named protocol's configuration, with ``overrides`` (e.g. backend='torch')."""
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}.")
    return replace(PROTOCOLS[name], **overrides)
