"""The Deep Learning Tutorials' logistic regression, reproduced to the published digits."""

from __future__ import annotations

import pytest

from bench.harness import run
from bench.workload.datasets.mnist import load_mnist
from bench.workload.protocols import PUBLISHED, protocol
from impls.registry import unavailable_reason


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_tutorial_protocol_reproduces_the_published_numbers(real_mnist, backend):
    if unavailable_reason(backend, "cpu"):
        pytest.skip(unavailable_reason(backend, "cpu"))
    config = protocol("tutorial", backend=backend)
    result = run(config, load_mnist(pixel_scale=config.pixel_scale))
    published = PUBLISHED["tutorial"]
    assert result.status == "ok"
    assert f"{100 * result.best_valid_error:.6f}" == "7.500000"
    assert f"{100 * result.test_error_at_best:.6f}" == "7.489583"
    assert result.epochs == published["epochs"] == 74
    assert result.best_valid_error == published["best_valid_error"]
    assert result.test_error_at_best == published["test_error_at_best"]
