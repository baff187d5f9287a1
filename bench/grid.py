"""The benchmark grid: which points a profile runs (backend x device x model x B x placement x
kernel x order), each one a ``Case`` that knows its ``RunConfig``, its id and why it cannot run
here. The pytest plugin parametrizes the benchmarks from it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bench.profiles import Profile
from bench.workload.config import N_TRAIN, RunConfig, placement_applies, variant_of

__all__ = ["BATCH_GATHER_FROM", "BATCH_GATHER_KERNELS", "FAST_KERNELS", "IN_ORDER_FROM_BATCH",
           "Case", "cases"]

#: GPU fast paths by backend: (kernel, the smallest and largest B the grid runs it at, the
#: models it runs or None for all), each one run where it applies. CuPy's "rows" kernel runs
#: any B but is built for large minibatches (two launches a step).
FAST_KERNELS: dict[str, tuple[tuple[str, int, int, tuple[str, ...] | None], ...]] = {
    "torch": (("cuda-graph", 1, N_TRAIN, None),),
    "cupy": (("fused", 1, 32, ("softmax",)), ("persistent", 1, 32, ("softmax",)),
             ("rows", 600, N_TRAIN, ("softmax",))),
}
#: From this B on, CPU epochs are also run in order: the reference for the products-only floor
#: and for the reshuffle's cost (per model).
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

    @property
    def id(self) -> str:
        where = ""
        if placement_applies(self.device):
            where = f"-{self.placement}" + ("-pinned" if self.pinned else "")
        fast = "" if self.kernel == "eager" else f"-{self.kernel}"
        order = "" if self.order == "shuffle" else f"-{self.order}"
        model = "" if self.model == "softmax" else f"-{self.model}"
        gather = "" if self.gather == "epoch" else f"-{self.gather}-gather"
        return (f"{self.backend}-{self.device}{model}-B{self.batch_size}{where}{gather}{fast}"
                f"{order}")

    @property
    def variant(self) -> str:
        return variant_of(self.batch_size)

    def config(self, **overrides: Any) -> RunConfig:
        """The case's RunConfig (the variant follows from B), with ``overrides``."""
        variant = self.variant
        base = RunConfig(backend=self.backend, device=self.device, model=self.model,
                         variant=variant,
                         batch_size=self.batch_size if variant == "minibatch" else None,
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


def cases(profile: Profile, batch_sizes: str = "batch_sizes") -> list[Case]:
    """Every point of the profile for one benchmark kind, usable or not (unusable ones skip
    with the reason). ``batch_sizes`` names the profile's grid: ``batch_sizes`` (epochs, with
    placements, fast kernels and in-order references), ``step_batch_sizes``,
    ``ttt_batch_sizes`` or ``transfer_batch_sizes``."""
    from impls.registry import BACKENDS

    epochs = batch_sizes == "batch_sizes"
    out = []
    for model in profile.models:
        for backend, (_, devices) in BACKENDS.items():
            for device in devices:
                if device not in profile.devices:
                    continue
                gpu = placement_applies(device)
                sizes = getattr(profile, batch_sizes)
                if epochs and gpu:
                    sizes = profile.gpu_batch_sizes
                if model != "softmax":
                    allowed = (profile.model_ttt_batch_sizes if batch_sizes == "ttt_batch_sizes"
                               else profile.model_batch_sizes).get(model, ())
                    if batch_sizes == "transfer_batch_sizes":
                        allowed = ()  # a copy does not depend on the model
                    sizes = [B for B in sizes if B in allowed]
                for B in sizes:
                    for placement, pinned in _placements(device):
                        out.append(Case(backend, device, B, placement, pinned, model=model))
                    if not epochs:
                        continue
                    if not gpu and B >= IN_ORDER_FROM_BATCH.get(model, N_TRAIN):
                        out.append(Case(backend, device, B, order="in-order", model=model))
                    for kernel, lo, hi, models in FAST_KERNELS.get(backend, ()) if gpu else ():
                        if lo <= B <= hi and (models is None or model in models):
                            out.append(Case(backend, device, B, "resident", False, kernel,
                                            model=model))
                    if B >= BATCH_GATHER_FROM.get(model, N_TRAIN + 1):
                        for k in BATCH_GATHER_KERNELS.get(backend, ()):
                            if k == "eager" or gpu:
                                out.append(Case(backend, device, B, kernel=k, model=model,
                                                gather="batch"))
    return out
