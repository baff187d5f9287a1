"""One benchmark point, one record: the fields every benchmark kind writes into pytest-benchmark's
``extra_info``, declared once (name -> meaning and unit), and time per epoch defined once.

Writers call ``write(benchmark, config=..., kind=..., **measured)``: the identity of the point
comes from its ``RunConfig`` (and the trainer's chosen fast path), never assembled by hand, and
a field that is not declared here is an error, so the readers (``bench.results``, the report)
can rely on the names. Nothing here imports an implementation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from bench.workload.config import N_TRAIN, RunConfig, placement_applies, variant_of

__all__ = ["FIELDS", "NOT_APPLICABLE", "identity", "per_epoch_seconds", "write"]

#: The one spelling of "this does not apply here" (e.g. placement on a CPU).
NOT_APPLICABLE = "n/a"

#: Identity of a benchmark point: what was run, where.
IDENTITY = {
    "kind": "benchmark kind: epoch, step, time_to_target, transfer, floor, peer, distributed, "
            "allreduce",
    "profile": "benchmark profile (quick, standard, gpu, full)",
    "backend": "implementation (numpy, torch, cupy, numba; a peer's name for peers)",
    "device": "cpu or cuda",
    "model": "model spec (softmax, mlp)",
    "optimizer": "update rule (sgd, momentum, nesterov, asgd)",
    "batch_size": "examples per step, B",
    "variant": "full (B = n), sgd (B = 1) or minibatch",
    "placement": "resident or streamed (n/a on a CPU, where data placement does not apply)",
    "pinned": "streamed from page-locked (pinned) host memory",
    "gather": "how a shuffled epoch's examples reach the step: epoch (one gather of the training "
              "set per epoch) or batch (each minibatch gathered through the permutation); a "
              "fast path that reads through the permutation itself gathers nothing",
    "kernel": "eager or a GPU fast path (cuda-graph, fused, rows, persistent)",
    "order": "data order: shuffle or in-order",
    "dtype": "float32 or float64",
    "fast_path": "the specialisations that ran ('+'-joined), or null for the generic step",
}

#: Measurements, with units.
MEASURED = {
    "seconds_per_step": "compute seconds per optimizer step (median over rounds)",
    "steps_per_round": "optimizer steps timed per round (step benchmarks)",
    "side_reference": "the reference timed before each round: products, in-order, sklearn, "
                      "dataloader, fastest-own (the fastest own backend's epoch, named in note)",
    "compile_s": "seconds compiling the configuration's steps before anything timed (a JIT "
                 "backend's warm-up, e.g. JAX; null where nothing is compiled ahead)",
    "side_reference_s": "median seconds per epoch of that reference",
    "side_ratio": "median over rounds of (this epoch / the reference's), dimensionless",
    "lr_grid_time_to_target_s": "learning rate -> training seconds to the target (null: not "
                                "reached)",
    "copy": "transfer kind: pageable, pinned (host to device) or d2d",
    "rows": "training rows copied",
    "bytes": "bytes moved by one timed call: read (reads, transfers) or read + written "
             "(copy floors)",
    "event_median_s": "median seconds of one call (a copy; a floor's call: round / "
                      "calls_per_round), from device events",
    "gb_per_s": "throughput, 1e9 bytes per second (floors: the best round; transfers: the "
                "median)",
    "floor": "which floor: peak_matmul, read_bandwidth, copy_bandwidth, matmul_epoch (CPU and "
             "GPU); on the GPU also peak_matmul_tf32, read_bandwidth_large, "
             "copy_bandwidth_large (2 GiB), launch_empty, launch_op, launch_graph, "
             "h2d_pageable, h2d_pinned, d2h_pageable, d2h_pinned (see bench.gpu_floors)",
    "flop": "floating-point operations of one timed call",
    "gflop_per_s": "1e9 floating-point operations per second (best round)",
    "gflop_per_s_median": "1e9 floating-point operations per second, median over rounds",
    "gflop_per_s_iqr": "interquartile range over rounds of the rate, 1e9 FLOP per second",
    "gb_per_s_median": "throughput, 1e9 bytes per second, median over rounds",
    "gb_per_s_iqr": "interquartile range over rounds of the throughput, 1e9 bytes per second",
    "event_times_s": "seconds of each timed round from device events (calls_per_round calls "
                     "each; warm-up rounds left out)",
    "calls_per_round": "calls timed between the two device events of one round",
    "event_best_s": "seconds of one call in the fastest round (round / calls_per_round), from "
                    "device events: the floor (launch floors: seconds per launch or replay)",
    "event_iqr_s": "interquartile range over rounds of the seconds of one call, device events",
    "tf32": "torch.backends.cuda.matmul.allow_tf32 while the product was timed",
    "read_floor_epoch_s": "GPU: seconds of one read of the 157 MB training set, the fastest "
                          "round of torch.sum over the resident set (floor read_bandwidth)",
    "copy_floor_epoch_s": "GPU: seconds of one device-to-device copy of the training set "
                          "(fastest round; floor copy_bandwidth)",
    "launch_floor_epoch_s": "GPU: 50,000 x the best seconds per launch or graph replay: a "
                            "per-sample SGD epoch of one launch per step",
    "transfer_floor_epoch_s": "GPU: seconds of one host-to-device copy of the training set "
                              "(fastest round; floors h2d_pageable, h2d_pinned)",
    "epoch_flop": "floating-point operations of one softmax-regression epoch",
    "flop_floor_epoch_s": "seconds of one epoch at the peak product rate",
    "bandwidth_floor_epoch_s": "seconds of one read of the training set",
    "batches": "minibatches per epoch",
    "mm_epoch_s": "seconds of an epoch's matrix products alone (best round)",
    "peer": "the peer's name (sklearn-sgdclassifier, torch-dataloader)",
    "seconds_per_epoch": "seconds per epoch of a peer (median over rounds)",
    "learning_rate": "a peer's learning rate",
    "sklearn": "scikit-learn version",
    "note": "a remark on the row",
    "world_size": "processes of a data-parallel run, P",
    "threads_per_rank": "intra-op threads of each process",
    "dist_backend": "torch.distributed backend: gloo (CPU) or nccl (CUDA)",
    "local_batch_size": "examples per rank and step, ceil(B / P)",
    "gradient_bytes": "bytes of the flat gradient buffer all-reduced each step",
    "rounds": "timed rounds behind the medians",
    "compute_s_per_step": "compute seconds per step, all-reduce excluded (median)",
    "allreduce_s_per_step": "all-reduce seconds per step (median)",
    "allreduce_share": "all-reduce / (compute + all-reduce) per step (median)",
    "allreduce_s_per_epoch": "all-reduce seconds per epoch's worth of steps (median)",
    "load_avg_1min": "the machine's 1-minute load average after the benchmark",
    "message_bytes": "all-reduce message sizes, bytes",
    "seconds": "median seconds of one all-reduce per message size",
    "repeats": "all-reduces timed per message size",
    "alpha_s": "ring-model latency alpha, seconds (T(n) = 2(P-1) alpha + 2(P-1)/P n beta)",
    "beta_s_per_byte": "ring-model inverse bandwidth beta, seconds per byte",
    "bandwidth_GBps": "1 / beta, 1e9 bytes per second",
    "fit_rms_relative": "root-mean-square relative residual of the ring fit",
    "fit_min_bytes": "smallest message size in the ring fit, bytes",
}


@cache
def _run_fields() -> dict[str, str]:
    """The fields of ``RunResult.to_dict`` (the harness's record of a run) and the medians over
    rounds; they are declared by those dataclasses, so they are read from them, not copied."""
    from dataclasses import fields

    from bench.harness import RunResult, TimeSplit

    out = {f"cfg_{f.name}": "the run's configuration (RunConfig)" for f in
           fields(RunConfig)}
    out.update({f.name: "see bench.harness.RunResult" for f in fields(RunResult)
                if f.name not in ("config", "times", "curve")})
    out.update({f.name: "seconds; see bench.harness.TimeSplit" for f in fields(TimeSplit)})
    out.update({f"median_{f.name}": "median over rounds, seconds" for f in fields(TimeSplit)})
    out.update({k: "see bench.harness.RunResult.to_dict" for k in (
        "diverged", "examples_per_second", "epoch_equivalents", "curve_epoch", "curve_steps",
        "curve_valid_error", "curve_train_nll", "curve_wall_s")})
    return out


FIELDS: dict[str, str] = {**IDENTITY, **MEASURED}


def identity(kind: str, profile: str, config: RunConfig, fast_path: str | None = None,
             batch_size: int | None = None) -> dict[str, Any]:
    """The identity fields of a benchmark point from its configuration."""
    B = batch_size if batch_size is not None else (
        config.batch_size if config.variant == "minibatch" else
        {"sgd": 1}.get(config.variant, N_TRAIN))
    where = placement_applies(config.device)
    return {"kind": kind, "profile": profile, "backend": config.backend,
            "device": config.device or "cpu", "model": config.model,
            "optimizer": config.optimizer, "batch_size": B, "variant": variant_of(B),
            "placement": config.placement if where else NOT_APPLICABLE,
            "pinned": config.pinned, "gather": config.gather, "kernel": config.kernel,
            "order": config.order, "dtype": config.dtype, "fast_path": fast_path}


def write(benchmark: Any, *, kind: str, profile: str, config: RunConfig | None = None,
          fast_path: str | None = None, **measured: Any) -> dict[str, Any]:
    """Put one record into ``benchmark.extra_info``: the identity from ``config`` (when the
    point has one; ``batch_size`` among the measurements overrides the configuration's) and
    the measurements, each a declared field."""
    batch_size = measured.pop("batch_size", None)
    record = identity(kind, profile, config, fast_path, batch_size) if config else {
        "kind": kind, "profile": profile}
    if config is None and batch_size is not None:
        record["batch_size"] = batch_size
    unknown = set(measured) - set(FIELDS) - set(_run_fields())
    if unknown:
        raise KeyError(f"bench.record.write: undeclared field(s) {sorted(unknown)}; declare "
                       "them in bench.record.MEASURED with their meaning and unit.")
    record.update(measured)
    benchmark.extra_info.update(record)
    return record


def per_epoch_seconds(per_step_s: Any, once_s: Any, epoch_equivalents: Any, epochs: Any) -> Any:
    """Seconds per epoch, the one definition: the step-proportional time (compute, copies,
    read-backs) over the epochs' worth of steps run, plus the once-per-epoch time (the
    reshuffle; evaluation where counted) over the epochs begun. Exact for whole epochs, pro
    rata when a step budget cut one short; floats or pandas Series alike."""
    return per_step_s / epoch_equivalents + once_s / np.maximum(epochs, 1)
