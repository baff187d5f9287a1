"""Fixtures of the benchmarks: the data (loaded once) and a pool of placed trainers."""

from __future__ import annotations

from typing import Any

import pytest

from bench.grid import Case
from bench.harness import prepare, reset
from bench.profiles import Profile
from bench.workload.config import RunConfig
from bench.workload.datasets import Data, get_dataset


@pytest.fixture(scope="session")
def data(profile: Profile) -> Data:
    """The profile's dataset (MNIST: ``$GDBENCH_DATA_DIR``, the cache, or a download), loaded
    once; a dataset that cannot load here skips with the reason."""
    dataset = get_dataset(profile.dataset)
    reason = dataset.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return dataset.load()


class TrainerPool:
    """Keeps the most recently placed trainer, so a sweep over B does not re-upload the data.

    One trainer at a time bounds memory (each holds the training set and a shuffle buffer).
    """

    def __init__(self, data: Data) -> None:
        self.data = data
        self.key: tuple[Any, ...] | None = None
        self.trainer = None
        self.upload_s: float | None = None

    def get(self, config: RunConfig):
        key = (config.backend, config.device, config.dataset, config.dtype, config.placement,
               config.pinned, config.gather, config.kernel, config.model, config.optimizer,
               config.momentum)
        if key != self.key:
            self.trainer = None
            self.trainer, self.upload_s = prepare(config, self.data)
            self.key = key
        reset(self.trainer, config)
        return self.trainer, self.upload_s


@pytest.fixture(scope="session")
def trainer_pool(data: Data) -> TrainerPool:
    return TrainerPool(data)


@pytest.fixture(autouse=True)
def _profile_devices(request: pytest.FixtureRequest) -> None:
    """Skip a ``@pytest.mark.measures(device)`` benchmark whose device the profile leaves out
    (the ``gpu`` profile measures the card only)."""
    marker = request.node.get_closest_marker("measures")
    if marker is None:
        return
    profile = request.getfixturevalue("profile")
    if marker.args[0] not in profile.devices:
        pytest.skip(f"the {profile.name!r} profile measures {'/'.join(profile.devices)} only")


def skip_unusable(case: Case) -> None:
    reason = case.skip_reason()
    if reason:
        pytest.skip(reason)
