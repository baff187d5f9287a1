"""The benchmark grid: which points a profile runs (backend x device x model x B x placement x
kernel x order), each one a ``Case`` that knows its ``RunConfig``, its id and why it cannot run
here. The pytest plugin parametrizes the benchmarks from it."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.profiles import Profile
from bench.workload.backends import BACKENDS
from bench.workload.config import RunConfig, batch_sizes_for, placement_applies, variant_of
from bench.workload.datasets import DEFAULT, get_dataset

__all__ = ["BATCH_GATHER_FROM", "BATCH_GATHER_KERNELS", "FAST_KERNELS", "IN_ORDER_FROM_BATCH",
           "Case", "cases"]

#: GPU fast paths by backend: (kernel, the smallest and largest B the grid runs it at (None:
#: up to full batch), the models it runs or None for all), each one run where it applies.
#: CuPy's "rows" kernel runs any B but is built for large minibatches (two launches a step).
FAST_KERNELS: dict[str, tuple[tuple[str, int, int | None, tuple[str, ...] | None], ...]] = {
    "torch": (("cuda-graph", 1, None, None),),
    "cupy": (("fused", 1, 32, ("softmax",)), ("persistent", 1, 32, ("softmax",)),
             ("rows", 600, None, ("softmax",))),
}
#: From this B on, CPU epochs are also run in order: the reference for the products-only floor
#: and for the reshuffle's cost (per model; other models: at full batch only).
IN_ORDER_FROM_BATCH = {"softmax": 600, "mlp": 100}
#: From this B on, shuffled resident epochs are also run with ``gather="batch"`` (each
#: minibatch gathered through the permutation instead of one gather per epoch), by the
#: backends and kernels that gather (Numba and the sparse-row kernels read through the
#: permutation and gather nothing).
BATCH_GATHER_FROM = {"softmax": 600}
BATCH_GATHER_KERNELS = {"numpy": ("eager",), "torch": ("eager", "cuda-graph"),
                        "cupy": ("eager",)}


@dataclass(frozen=True)
class Case:
    """One benchmark point."""

    backend: str
    device: str
    batch_size: int
    placement: str = "resident"
    pinned: bool = False
    kernel: str = "eager"
    order: str = "shuffle"
    model: str = "softmax"
    gather: str = "epoch"
    dataset: str = DEFAULT

    @property
    def id(self) -> str:
        where = ""
        if placement_applies(self.device):
            where = f"-{self.placement}" + ("-pinned" if self.pinned else "")
        fast = "" if self.kernel == "eager" else f"-{self.kernel}"
        order = "" if self.order == "shuffle" else f"-{self.order}"
        model = "" if self.model == "softmax" else f"-{self.model}"
        gather = "" if self.gather == "epoch" else f"-{self.gather}-gather"
        data = "" if self.dataset == DEFAULT else f"-{self.dataset}"
        return (f"{self.backend}-{self.device}{data}{model}-B{self.batch_size}{where}{gather}"
                f"{fast}{order}")

    @property
    def variant(self) -> str:
        return variant_of(self.batch_size, get_dataset(self.dataset).n_train)

    def config(self, **overrides: Any) -> RunConfig:
        """The case's RunConfig (the variant follows from B), with ``overrides``."""
        base = RunConfig(backend=self.backend, device=self.device, dataset=self.dataset,
                         model=self.model, batch_size=self.batch_size,
                         placement=self.placement, pinned=self.pinned, kernel=self.kernel,
                         order=self.order, gather=self.gather)
        return replace(base, **overrides)

    def skip_reason(self) -> str | None:
        from impls.registry import unavailable_reason

        return unavailable_reason(self.backend, self.device, self.model)


def _placements(device: str) -> list[tuple[str, bool]]:
    if not placement_applies(device):
        return [("resident", False)]
    return [("resident", False), ("streamed", False), ("streamed", True)]


def cases(profile: Profile, batch_sizes: Sequence[int | str], *,
          gpu_batch_sizes: Sequence[int | str] | None = None,
          model_batch_sizes: Mapping[str, Sequence[int | str]] | None = None,
          variations: bool = False) -> list[Case]:
    """Every point of the grid, usable or not (unusable ones skip with the reason): the
    profile's models x backends x devices x ``batch_sizes`` (``gpu_batch_sizes`` on a GPU where
    given), each resolved for the profile's dataset (``batch_sizes_for``), with the placements.
    A model other than softmax regression runs only at its ``model_batch_sizes``.
    ``variations`` adds the epoch benchmarks' extra points: in-order references, GPU fast
    kernels, per-minibatch gathers."""
    n_train = get_dataset(profile.dataset).n_train
    model_batch_sizes = model_batch_sizes or {}
    out = []
    for model in profile.models:
        for backend, (_, devices) in BACKENDS.items():
            for device in devices:
                if device not in profile.devices:
                    continue
                gpu = placement_applies(device)
                sizes = gpu_batch_sizes if gpu and gpu_batch_sizes is not None else batch_sizes
                sizes = batch_sizes_for(sizes, n_train)
                if model != "softmax":
                    allowed = batch_sizes_for(model_batch_sizes.get(model, ()), n_train)
                    sizes = [B for B in sizes if B in allowed]
                for B in sizes:
                    case = functools.partial(Case, backend, device, B, model=model,
                                             dataset=profile.dataset)
                    out += [case(placement, pinned) for placement, pinned in _placements(device)]
                    if not variations:
                        continue
                    if not gpu and B >= IN_ORDER_FROM_BATCH.get(model, n_train):
                        out.append(case(order="in-order"))
                    for kernel, lo, hi, models in FAST_KERNELS.get(backend, ()) if gpu else ():
                        if lo <= B <= (hi or n_train) and (models is None or model in models):
                            out.append(case("resident", False, kernel))
                    if B >= BATCH_GATHER_FROM.get(model, math.inf):
                        for k in BATCH_GATHER_KERNELS.get(backend, ()):
                            if k == "eager" or gpu:
                                out.append(case(kernel=k, gather="batch"))
    return out
