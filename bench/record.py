"""One measurement, one record: the one schema of every row gdbench stores, declared once
(field -> meaning and unit), and time per epoch defined once.

Each record has a kind, the ``record`` field (``RECORDS``): a benchmark round (``epoch``,
``step``, ``time_to_target``, ``transfer``, ``floor``, ``peer``, ``distributed``,
``allreduce``), kept in pytest-benchmark's storage as a benchmark's ``extra_info``; or a study
record (``context``, ``trial``, ``timing``, ``skip``, ``direct``, ``noise``), one JSON line of
``bench.study.storage``. Both writers go through ``checked``: an unknown kind or a field not
declared here is an error, so the one reader (``bench.results``) and the report can rely on
the names. The fields: ``IDENTITY`` (what ran, where), ``MEASURED`` (the benchmarks'
measurements), ``STUDY`` (the study's), ``RUN`` (what one training run produced, with its
``TIME_SPLIT``); ``READ`` declares the columns the reader adds, ``RENAMED`` the old names it
maps.

Benchmarks call ``write(benchmark, config=..., kind=..., **measured)``: the identity of the
point comes from its ``RunConfig`` (and the trainer's chosen fast path), never assembled by
hand. Files saved before this schema named the benchmark kind ``kind``: the reader maps it.
Nothing here imports an implementation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bench.workload.config import RunConfig, placement_applies, variant_of
from bench.workload.datasets import get_dataset

__all__ = ["FIELDS", "NOT_APPLICABLE", "READ", "RECORDS", "RENAMED", "STATS", "checked",
           "columns", "identity", "per_epoch_seconds", "suite_of", "write"]

#: The one spelling of "this does not apply here" (e.g. placement on a CPU).
NOT_APPLICABLE = "n/a"

#: The kinds of record: kind -> (the suite that writes it, what one record is).
RECORDS: dict[str, tuple[str, str]] = {
    "epoch": ("benchmark", "training epochs of one configuration, timed per round"),
    "step": ("benchmark", "optimizer steps of one configuration, timed per round"),
    "time_to_target": ("benchmark", "training to the target validation error at the tuned "
                                    "study's best rate for its B"),
    "transfer": ("benchmark", "one host-device or device-device copy of training rows"),
    "floor": ("benchmark", "a machine floor: peak product, memory bandwidth, launch, copy"),
    "peer": ("benchmark", "an epoch of a tool users would pick instead (scikit-learn, a "
                          "DataLoader loop)"),
    "distributed": ("benchmark", "a data-parallel training step over world_size processes"),
    "allreduce": ("benchmark", "all-reduces of several message sizes and their ring fit"),
    "context": ("study", "one run of a study: its machine, commit, versions and settings"),
    "trial": ("study", "one training run of the learning-rate search (B, rate, seed)"),
    "timing": ("study", "time per step of one backend spec at one B"),
    "skip": ("study", "why a backend spec (at one B, or at every B) was not timed"),
    "direct": ("study", "a directly measured time-to-target, against its composition"),
    "noise": ("study", "both exact gradient noise scales at one checkpoint of a trajectory"),
}

#: Identity of a record: what was run, where.
IDENTITY = {
    "record": "the kind of record (see RECORDS); older benchmark files call it 'kind'",
    "profile": "benchmark profile (quick, standard, gpu, full)",
    "dataset": "the data trained on (bench.workload.datasets: mnist, fashion-mnist, digits)",
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
    "lr_source": "where a time-to-target run's learning rate came from (the tuned study, and "
                 "the B whose best rates gave it)",
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
    "learning_rate": "learning rate of the run (a peer's, a trial's)",
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

#: The study's fields (``bench.study``) that the harness's record of a run does not declare.
STUDY = {
    "key": "the record's file name under its kind: a hash or a readable id of what determines "
           "its outcome",
    "spec": "backend spec backend[:device[:kernel]] (bench.study.timing)",
    "seed": "the run's random seed (initialisation and data order)",
    "init": "parameter initialisation (zeros, ...)",
    "target_error": "target validation error, fraction",
    "max_steps": "the trial's step budget, lowered to the fewest steps found at its B",
    "budget": "the full step budget of a trial at its B",
    "lr_units": "the rate on the search's log lattice: lr = 10 ** (lr_units / 8)",
    "phase": "why a trial ran: coarse, refine or grid (the search seeds), held-out (a held-out "
             "seed at the chosen rate); seed in studies before held-out seeds",
    "after_target": "a held-out run trains on to (1 + after_target) x its steps-to-target",
    "oscillation_share": "of the validation checks after first passage, the share above the "
                         "target (fraction)",
    "post_passage_checks": "validation checks after first passage",
    "valid_curve": "JSON [[step, validation error], ...] of a held-out run's checks",
    "run_steps": "steps-to-target of the median run a direct run follows",
    "steps_match": "whether every direct run reached the target at the followed run's step",
    "validations_per_epoch": "validation scorings per epoch",
    "validation_interval": "steps between validation scorings",
    "validations": "validation scorings run",
    "extra_config": "JSON of the RunConfig fields the study set beyond its own (model, "
                    "optimizer, momentum)",
    "train_s": "training seconds of a trial (compute, copies, reshuffles; no evaluation)",
    "wall_s": "wall-clock seconds of a trial, or of a study run (context)",
    "pid": "the process that ran a trial",
    "grad_sq_norm": "|G|^2, the squared norm of the full training-set gradient",
    "trace_cov": "tr S, the trace of the per-example gradient covariance",
    "b_simple": "the simple noise scale tr S / |G|^2, examples",
    "grad_hess_grad": "G^T H G, the full training-set gradient against the exact Hessian",
    "trace_hess_cov": "tr(H S), the per-example gradient covariance against the exact Hessian",
    "b_noise": "McCandlish et al.'s noise scale tr(H S) / G^T H G, examples",
    "trajectory": "the run a noise record's checkpoint lies on (B and rate), unique in a study",
    "trajectory_rule": "why that run is a noise trajectory, and its rate's reason "
                       "(bench.study.noise)",
    "valid_error": "validation error at a checkpoint, fraction",
    "threads": "threads of a timed or direct run",
    "steps_per_run": "steps of each timed run",
    "step_s": "training seconds per step (compute + read-back), median over timed runs",
    "step_s_min": "fastest timed run's seconds per step",
    "step_s_max": "slowest timed run's seconds per step",
    "step_s_all": "seconds per step of each timed run",
    "epoch_move_s": "seconds per epoch of the reshuffle gather, median over timed runs",
    "epoch_move_s_all": "seconds per epoch of the reshuffle gather, each timed run",
    "cell_budget_s": "seconds the timing phase's budget gave this (spec, B), or null",
    "load_average": "the machine's 1-minute load average after the record was measured",
    "reason": "why a spec was not timed, in words",
    "error": "the exception type (or 'unusable', 'budget') behind a skip",
    "composed_s": "time-to-target composed as S(B) x step_s + epochs x epoch_move_s, seconds",
    "study_steps": "S(B), the steps-to-target the composition used",
    "measured_s": "median measured time-to-target, seconds",
    "measured_s_all": "each measured time-to-target, seconds",
    "measured_steps_all": "steps-to-target of each direct run",
    "composition_error": "composed / measured - 1 (the timing phase's figures)",
    "paired_composition_error": "median over rounds of composed / measured - 1, each round "
                                "timed right before its run",
    "paired_composition_error_all": "each round's paired composition error",
    "started_utc": "when a study run started, ISO 8601 UTC",
    "finished_utc": "when a study run finished, ISO 8601 UTC",
    "commit": "the source commit",
    "machine_id": "the machine's id (bench.machine.machine_id)",
    "machine_label": "the machine in words: CPU model x count, or the GPU (host ...)",
    "machine_json": "JSON of bench.machine.describe_machine()",
    "gpu_name": "the GPU a study timed",
    "runner": "how the trials ran (pool, Ray, in process)",
    "study_config": "JSON of the StudyConfig",
    "purpose": "what a study run is for: full (the tuned study the report answers from), "
               "small (--small, the CI's smoke study), test (run under pytest) or timing-only",
    "load_average_start": "1-minute load average when a study run started",
    "load_average_end": "1-minute load average when a study run ended",
    "timing_only": "a study run of the timing phase only",
    "timing_wall_s": "wall-clock seconds of a timing-only run's timing phase",
    "steps_from": "the study whose S(B) a timing-only study is composed with",
    "steps_from_steps": "JSON {B: S(B)} of that study, as it was when timed",
}


#: The time split of a run (``bench.harness.TimeSplit``: its module docstring says how each
#: part is measured), seconds; ``median_<part>``: the median over rounds.
TIME_SPLIT = {
    "compute_s": "the optimizer steps (host clock around synchronised steps, less the copies "
                 "timed among them), seconds",
    "h2d_s": "host-to-device copies inside the run (device events), seconds; null on a CPU",
    "d2h_s": "reading the accumulated cost back to the host, seconds",
    "eval_s": "scoring validation (and test at each new best), seconds",
    "data_move_s": "putting each epoch's examples in order (the reshuffle gather), seconds",
    "other_s": "the harness's own bookkeeping, seconds",
    "total_s": "the whole run, seconds (the parts add up to it)",
    "allreduce_s": "all-reduces of a data-parallel run, seconds; null otherwise",
}

#: What one run produced (``bench.harness.RunResult.to_dict``): its configuration as
#: ``cfg_<field>`` (``RunConfig``), these fields, and its time split (``TIME_SPLIT``).
RUN = {
    "batches_per_epoch": "optimizer steps in one epoch",
    "n_train": "training examples",
    "status": "how the run ended: ok, diverged or oom (a study trial: reached, capped, "
              "budget, diverged or oom)",
    "message": "why the run ended as it did, in words",
    "epochs": "epochs begun",
    "steps": "optimizer steps run (a noise record: the checkpoint's step)",
    "examples": "training examples processed",
    "diverged_epoch": "the epoch in which the loss stopped being finite, or null",
    "final_valid_error": "validation error at the end, fraction",
    "best_valid_error": "lowest validation error seen, fraction",
    "test_error_at_best": "test error at the lowest validation error, fraction",
    "best_epoch": "the epoch of the lowest validation error",
    "target_reached": "the validation error reached target_error (null: no target)",
    "time_to_target_s": "training seconds to the target, evaluation excluded",
    "time_to_target_wall_s": "wall-clock seconds to the target, evaluation included",
    "steps_to_target": "optimizer steps to the target",
    "upload_s": "seconds placing the data before the run (outside it)",
    "diverged": "status == 'diverged'",
    "examples_per_second": "training examples per second of compute_s",
    "epoch_equivalents": "steps / batches_per_epoch: epochs' worth of steps run",
    "curve_epoch": "at each validation: the epoch",
    "curve_steps": "at each validation: optimizer steps so far",
    "curve_valid_error": "at each validation: the validation error, fraction",
    "curve_train_nll": "at each validation: mean training NLL of the steps since the last one",
    "curve_wall_s": "at each validation: wall-clock seconds since the run began",
    **{f"cfg_{f.name}": f"the run's configuration: RunConfig.{f.name}"
       for f in dataclasses.fields(RunConfig)},
    **TIME_SPLIT,
    **{f"median_{k}": f"median over rounds of {k}" for k in TIME_SPLIT},
}


FIELDS: dict[str, str] = {**IDENTITY, **MEASURED, **STUDY, **RUN}

#: pytest-benchmark's statistics over a benchmark's rounds (``stat_<name>`` when read).
STATS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds", "iterations",
         "ops")

#: Columns the reader (``bench.results``) adds to the records' rows.
READ: dict[str, str] = {
    "suite": "where the record is kept: benchmark (pytest-benchmark storage) or study",
    "file": "the result file a benchmark row was read from",
    "datetime": "when pytest-benchmark saved the run, ISO 8601",
    "commit_dirty": "the run's working tree had uncommitted changes",
    "machine": "a study's machine in words (its newest context's machine_label)",
    "machine_memory_bytes": "the machine's physical memory, bytes",
    "machine_node": "the machine's host name",
    "machine_cpu": "the CPU model",
    "machine_cpu_count": "logical CPUs",
    "machine_gpu": "the GPU, or null",
    "machine_python": "Python version",
    "machine_numpy": "NumPy version",
    "machine_torch": "PyTorch version",
    "machine_cupy": "CuPy version",
    "machine_profile": "the benchmark profile of the run",
    "run_complete": "the run ran its whole profile (null: saved before runs were marked)",
    "run_status": "complete, or partial and why",
    "run_loaded": "other work loaded the machine when the run started",
    "name": "pytest-benchmark's benchmark name",
    "fullname": "pytest-benchmark's node id of the benchmark",
    "group": "pytest-benchmark's group",
    **{f"stat_{k}": ("timed rounds" if k == "rounds" else "calls per round"
                     if k == "iterations" else "calls per second" if k == "ops" else
                     f"{k} over rounds of one call's seconds") for k in STATS},
    "stat_data": "seconds of each round (files saved with --benchmark-save-data)",
    "rel_iqr": "stat_iqr / stat_median, dimensionless",
    "noisy": "rel_iqr above bench.results.NOISY_REL_IQR",
    "study": "the study's folder name",
    "kind": "the record kind, as files before the one schema named it (= record)",
}

#: Fields of older files, and their names now (the reader renames them).
RENAMED = {"curve_train_cost": "curve_train_nll"}


def columns() -> dict[str, str]:
    """Every column the reader may return, with its meaning: the records' fields and the
    reader's own (files older than a rename read with today's name; see RENAMED), plus
    ``lr_grid_time_to_target_s`` of time-to-target rows saved before the rate came from the
    study."""
    return {**FIELDS, **READ,
            "lr_grid_time_to_target_s": "files before the rate came from the study: learning "
                                        "rate -> training seconds to the target (null: not "
                                        "reached)"}


def suite_of(kind: str) -> str:
    """'benchmark' or 'study': where records of ``kind`` are kept."""
    return RECORDS[kind][0]


def checked(kind: str, fields: dict[str, Any], where: str = "bench.record") -> dict[str, Any]:
    """``fields`` as a record of ``kind`` (its ``record`` field set): a KeyError names an
    unknown kind, a ``record`` field that disagrees, or undeclared fields."""
    if kind not in RECORDS:
        raise KeyError(f"{where}: unknown record kind {kind!r}; the kinds are "
                       f"{sorted(RECORDS)} (declare a new one in bench.record.RECORDS).")
    if fields.get("record", kind) != kind:
        raise KeyError(f"{where}: a {kind!r} record says record={fields['record']!r}.")
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise KeyError(f"{where}: undeclared field(s) {sorted(unknown)} in a {kind!r} record; "
                       "declare them in bench.record (MEASURED, STUDY, RUN) with their "
                       "meaning and unit.")
    return {"record": kind, **fields}


def identity(kind: str, profile: str, config: RunConfig, fast_path: str | None = None,
             batch_size: int | None = None) -> dict[str, Any]:
    """The identity fields of a benchmark point from its configuration."""
    n_train = get_dataset(config.dataset).n_train
    B = batch_size if batch_size is not None else config.effective_batch_size(n_train)
    where = placement_applies(config.device)
    return {"record": kind, "profile": profile, "dataset": config.dataset,
            "backend": config.backend, "device": config.device or "cpu", "model": config.model,
            "optimizer": config.optimizer, "batch_size": B, "variant": variant_of(B, n_train),
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
        "profile": profile}
    if config is None and batch_size is not None:
        record["batch_size"] = batch_size
    record = checked(kind, {**record, **measured}, "bench.record.write")
    benchmark.extra_info.update(record)
    return record


def per_epoch_seconds(per_step_s: Any, once_s: Any, epoch_equivalents: Any, epochs: Any) -> Any:
    """Seconds per epoch, the one definition: the step-proportional time (compute, copies,
    read-backs) over the epochs' worth of steps run, plus the once-per-epoch time (the
    reshuffle; evaluation where counted) over the epochs begun. Exact for whole epochs, pro
    rata when a step budget cut one short; floats or pandas Series alike."""
    return per_step_s / epoch_equivalents + once_s / np.maximum(epochs, 1)
