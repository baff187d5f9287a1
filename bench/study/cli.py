"""The options of ``python -m bench.study`` (``parse``: all validated before any work) and the
run they ask for (``main``); ``bench.study.__main__`` runs it under ``bench.cli``'s error and
interrupt policy."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench import cli
from bench.analysis import (
    VARIANT_NAMES,
    fastest_variant,
    fit_study,
    per_batch_size,
    steps_to_target,
)
from bench.analysis import project_time_to_target as project
from bench.analysis.noise import noise_table
from bench.study.core import StudyConfig, run_study, run_timing_only
from bench.study.presets import PRESETS, preset_config
from bench.study.runners import RAY_ADDRESS_ENV, RUNNERS, make_runner
from bench.study.storage import DEFAULT_ROOT, NAME_RULE, check_name, load_study
from bench.study.timing import SpecError, parse_spec
from bench.workload.backends import BACKENDS
from bench.workload.datasets import DATASETS, DEFAULT, get_dataset

#: The time bound of ``--timing-only`` when ``--max-seconds`` is not given (seconds).
TIMING_ONLY_SECONDS = 90.0


def _steps_source(text: str, roots: list[Path]) -> tuple[str, dict[int, int]]:
    """(name, {B: S(B)}) of the stored study ``text``: a study folder, or a name under one of
    ``roots``; a SystemExit naming where it looked when none has steps-to-target."""
    path = Path(text)
    candidates = ([path] if (path / "trial").is_dir() else []) + [r / text for r in roots]
    for c in candidates:
        if (c / "trial").is_dir():
            steps = steps_to_target(load_study(c.parent), c.name)
            if steps:
                return c.name, steps
    raise cli.UsageError("--steps-from", text, "no stored study with steps-to-target at "
                         f"{', '.join(str(c) for c in candidates)} (give a folder under "
                         "results/study with trial/ records, or its name)")


def _fmt_range(v: float, lo: float, hi: float, scale: float = 1.0, unit: str = "s") -> str:
    return f"{v * scale:.3g} [{lo * scale:.3g}-{hi * scale:.3g}] {unit}"


def _print_timing(store_name: str, out: str, steps_from: str | None,
                  steps: dict[int, int]) -> None:
    """Time per step per (B, spec) and, with S(B), the composed time-to-target per B and the
    fastest variant on this machine."""
    df = load_study(out)
    df = df[df["study"] == store_name]
    timing = df[df["record"] == "timing"] if "record" in df else df[:0]
    skips = df[df["record"] == "skip"] if "record" in df else df[:0]
    for r in skips.itertuples():
        where = f" B={int(r.batch_size)}" if pd.notna(r.batch_size) else ""
        print(f"not timed: {r.spec}{where}: {r.reason}")
    if timing.empty:
        print("no time per step was measured")
        return
    timing = timing.astype({"batch_size": int})
    us = timing.pivot_table(index="batch_size", columns="spec", values="step_s") * 1e6
    print("time per step (us, median of the repeats):")
    print(us.round(2).to_string())
    if not steps_from:
        return
    proj = project(timing, steps)
    if proj.empty:
        print(f"no timed B has a steps-to-target in study {steps_from!r}")
        return
    ctx = df[df["record"] == "context"].sort_values("started_utc").iloc[-1]
    print(f"\ncomposed time-to-target on this machine ({ctx.get('machine_label')}) = S(B) x "
          f"time per step + reshuffles, with S(B) from study {steps_from!r}:")
    missing = sorted(set(timing["batch_size"]) - set(proj["batch_size"]))
    if missing:
        print(f"  no S(B) in study {steps_from!r} at B = {', '.join(map(str, missing))}")
    for B, g in proj.groupby("batch_size"):
        best = g.loc[g["projected_s"].idxmin()]
        others = ", ".join(f"{r.spec} {r.projected_s:.3g} s" for r in
                           g.drop(index=best.name).sort_values("projected_s").itertuples())
        print(f"  B={B:6d} S={best['steps']:7,d}  best {best['spec']}: "
              f"{_fmt_range(best['projected_s'], best['projected_s_min'], best['projected_s_max'])}"
              + (f"; {others}" if others else ""))
    fv = fastest_variant(proj)
    if fv:
        w = fv["winner"]
        line = (f"fastest to the target here: {VARIANT_NAMES[w['variant']]} B={w['batch_size']} "
                f"{w['spec']} "
                f"{_fmt_range(w['projected_s'], w['projected_s_min'], w['projected_s_max'])}")
        if fv["tied"]:
            line += "; tied (ranges overlap) with " + ", ".join(
                f"{VARIANT_NAMES[t['variant']]} B={t['batch_size']} {t['spec']} "
                f"{_fmt_range(t['projected_s'], t['projected_s_min'], t['projected_s_max'])}"
                for t in fv["tied"])
        print(line)


#: Defaults of the options whose explicit use other options can make meaningless.
DEFAULTS: dict[str, Any] = {"seeds": (1234, 1, 2), "target_error": 0.08, "timing_repeats": 3,
                            "backends": ("numpy", "torch", "numba", "jax")}
SMALL = {"batch_sizes": (32, 256, 2048), "grid": (-4, 0, 4), "validations_per_prior": 20,
         "timing_repeats": 1, "timing_examples": 20_000, "direct_top": 1, "direct_repeats": 1,
         "noise_batch_sizes": (), "purpose": "small"}


def _study_name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {NAME_RULE}") from None


def _backend_specs(text: str) -> tuple[str, ...]:
    specs = tuple(b.strip() for b in text.split(","))
    if not text.strip() or not all(specs):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of backend "
                                         "specs backend[:device[:kernel]], e.g. numpy,torch")
    for b in specs:
        try:
            parse_spec(b)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return specs


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m bench.study", description=__doc__)
    p.add_argument("--name", default=None, type=_study_name,
                   help="the study's folder under --out (letters, digits, '.', '_', '-'; "
                        "default: the preset's name, else 'default')")
    p.add_argument("--preset", default=None, type=cli.choice(tuple(PRESETS)),
                   help="a complete study of the README: " + "; ".join(
                       f"{p.name}: {p.description}" for p in PRESETS.values())
                   + " (bench.study.presets); explicit options override its settings")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="where studies are stored")
    p.add_argument("--batch-sizes", type=cli.ints_in(1, 10**9), default=None,
                   help="comma-separated B, at most the dataset's n_train (default: 1, 2, 4, "
                        "..., 32768 below n_train, and n_train: full batch; with --small 32, "
                        "256, 2048)")
    p.add_argument("--dataset", default=DEFAULT, type=cli.choice(tuple(DATASETS)),
                   help=f"the data trained on (default: {DEFAULT})")
    p.add_argument("--seeds", type=cli.ints_in(0, 2**32 - 1), default=None,
                   help="comma-separated seeds (default 1234,1,2; with --small 1234)")
    p.add_argument("--held-out-seeds", type=cli.ints_in(0, 2**32 - 1), default=None,
                   help="comma-separated seeds that measure S(B) at the rate the search seeds "
                        "chose, disjoint from --seeds (default 11,12,13,14,15; with --small "
                        "none)")
    cpu = tuple(b for b, (_, devices) in BACKENDS.items() if "cpu" in devices)
    p.add_argument("--trial-backend", type=cli.choice(cpu), default=None,
                   help="run every trial on this CPU backend (default: the fastest per B in "
                        "the timing phase); lets the trials run apart from the timing")
    p.add_argument("--target-error", type=cli.float_in(0, 1, lo_open=True), default=None,
                   help="the validation error to reach, a fraction in (0, 1] (default 0.08)")
    p.add_argument("--backends", type=_backend_specs, default=None,
                   help="comma-separated backend specs backend[:device[:kernel]], e.g. "
                        "numpy,torch:cuda,torch:cuda:cuda-graph,cupy:cuda:fused (default "
                        "numpy,torch,numba,jax); one this machine cannot run is skipped with the "
                        "reason")
    p.add_argument("--timing-only", action="store_true",
                   help="only time per step (no searches, noise or direct runs); with "
                        "--steps-from, print the composed time-to-target per B")
    p.add_argument("--steps-from", default=None,
                   help="with --timing-only: a stored study (name under --steps-root or --out, "
                        "or its folder) whose S(B) the timings are composed with")
    p.add_argument("--steps-root", default=None,
                   help=f"where --steps-from is looked up by name first (default {DEFAULT_ROOT})")
    p.add_argument("--max-seconds", type=cli.float_in(0, None, lo_open=True), default=None,
                   help=f"bound on the whole timing phase in seconds (default: none; "
                        f"{TIMING_ONLY_SECONDS:g} with --timing-only)")
    p.add_argument("--timing-repeats", type=cli.int_in(1, 1000), default=None,
                   help="timed runs per (spec, B), after a warm-up (default 3; --small 1)")
    p.add_argument("--small", action="store_true",
                   help="the CI's small study: B = 32, 256, 2048 (or --batch-sizes); 3 learning "
                        "rates each (a half-decade apart); seed 1234 (or --seeds); 1 timing "
                        "repeat; no noise runs")
    p.add_argument("--runner", type=cli.choice(RUNNERS), default=None,
                   help=f"where trials run: pool (default), inprocess or ray; an explicit "
                        f"runner wins over ${RAY_ADDRESS_ENV}")
    p.add_argument("--workers", type=cli.int_in(1, 4096), default=None,
                   help="pool size (default: the CPU count); with --ray-address local, its CPUs")
    p.add_argument("--ray-address", default=None,
                   help=f"run trials as Ray tasks: 'auto', 'host:6379', 'ray://host:10001' or "
                        f"'local' (default: ${RAY_ADDRESS_ENV} when set and --runner is not "
                        f"given). Trusted: results from the cluster are unpickled here")
    p.add_argument("--optimizer", default=None, help="RunConfig.optimizer, where it exists")
    p.add_argument("--momentum", type=cli.float_in(0, 1), default=None)
    p.add_argument("--model", default=None, help="RunConfig.model, where it exists")
    p.add_argument("--timing-threads", type=cli.int_in(1, 1024), default=1,
                   help="threads for the time-per-step and direct runs (default 1; trials "
                        "always run on one)")
    p.add_argument("--no-timing", action="store_true",
                   help="skip the timing phase (needs --trial-backend; implies --no-direct): "
                        "rerun without it on a quiet machine, the stored trials are reused")
    p.add_argument("--no-direct", action="store_true", help="skip the direct time-to-target")
    p.add_argument("--no-noise", action="store_true", help="skip the noise-scale runs")
    return p


@dataclass(frozen=True)
class Plan:
    """What ``python -m bench.study`` was asked to do, validated (nothing run yet)."""

    cfg: StudyConfig
    out: Path
    timing_only: bool
    steps_from: str | None = None
    steps: dict[int, int] = field(default_factory=dict)
    runner: str | None = None
    workers: int | None = None
    ray_address: str | None = None
    noise: bool = True
    direct: bool = True


def parse(argv: list[str] | None = None) -> Plan:
    """Parse and validate every argument (a ``cli.UsageError`` or argparse's one-line error
    for a bad one or a meaningless combination); runs nothing."""
    p = _parser()
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        p.refuse("--out", a.out, "must be a folder (or not exist yet), not a file")
    only_with = {"--steps-from": ("timing_only", a.steps_from),
                 "--steps-root": ("steps_from", a.steps_root)}
    for option, (needs, value) in only_with.items():
        if value is not None and not getattr(a, needs):
            p.refuse(option, value, f"only means something with --{needs.replace('_', '-')}")
    if a.timing_only:
        for option, value in (("--seeds", a.seeds), ("--target-error", a.target_error),
                              ("--held-out-seeds", a.held_out_seeds),
                              ("--trial-backend", a.trial_backend),
                              ("--no-timing", a.no_timing or None),
                              ("--runner", a.runner), ("--workers", a.workers),
                              ("--ray-address", a.ray_address), ("--small", a.small or None),
                              ("--no-direct", a.no_direct or None),
                              ("--no-noise", a.no_noise or None)):
            if value is not None:
                p.refuse(option, value, "means nothing with --timing-only (no trials run)")
    if a.ray_address is not None and a.runner in ("pool", "inprocess"):
        p.refuse("--ray-address", a.ray_address, f"means nothing with --runner {a.runner}")
    if a.workers is not None and a.runner == "inprocess":
        p.refuse("--workers", a.workers, "means nothing with --runner inprocess (one trial "
                 "at a time, here)")
    if a.workers is not None and a.ray_address not in (None, "local"):
        p.refuse("--workers", a.workers, "means nothing on a Ray cluster (its CPUs decide); "
                 "it sizes --ray-address local only")
    if a.no_timing and a.trial_backend is None:
        p.refuse("--no-timing", True, "needs --trial-backend (without the timing phase no "
                 "backend is known to be fastest)")
    preset = dict(PRESETS[a.preset].fields) if a.preset else {}
    backends = a.backends or preset.get("backends") or DEFAULTS["backends"]
    if not a.timing_only and not any(parse_spec(b).device == "cpu" and parse_spec(b).kernel
                                     == "eager" for b in backends):
        p.refuse("--backends", ",".join(backends), "the searches' trials run on a CPU backend: "
                 "name at least one, e.g. numpy (GPU specs are timed only, --timing-only)")
    n_train = get_dataset(a.dataset).n_train
    if a.batch_sizes and max(a.batch_sizes) > n_train:
        p.refuse("--batch-sizes", ",".join(map(str, a.batch_sizes)),
                 f"each B at most the {n_train:,} training examples of dataset {a.dataset!r} "
                 f"(B = {n_train} is full-batch GD)")
    extra = tuple({**dict(preset.get("extra_config", ())), **{
        k: v for k, v in (("model", a.model), ("optimizer", a.optimizer),
                          ("momentum", a.momentum)) if v is not None}}.items())
    # over StudyConfig's defaults and the preset's fields: --small's, then the options given
    kw: dict[str, Any] = {**(SMALL if a.small else {}), "backends": backends,
                          "extra_config": extra}
    if a.small:     # a preset's smoke study is kept apart from the complete one
        kw.update(seeds=DEFAULTS["seeds"][:1], held_out_seeds=(),
                  **({"name": f"{a.preset}-small"} if a.preset else {}))
    kw.update({k: v for k, v in (("name", a.name), ("target_error", a.target_error),
                                 ("seeds", a.seeds), ("batch_sizes", a.batch_sizes),
                                 ("timing_repeats", a.timing_repeats),
                                 ("held_out_seeds", a.held_out_seeds),
                                 ("trial_backend", a.trial_backend)) if v is not None})
    if a.no_timing:
        kw["timing"] = False
    max_s = a.max_seconds if a.max_seconds is not None or not a.timing_only \
        else TIMING_ONLY_SECONDS
    try:
        kw.update(dataset=a.dataset, timing_threads=a.timing_threads, timing_max_seconds=max_s)
        cfg = preset_config(a.preset, **kw) if a.preset else StudyConfig(**kw)
    except ValueError as exc:       # the model, optimizer and momentum, checked by RunConfig
        p.error(str(exc))
    steps_from, steps = None, {}
    if a.steps_from:
        roots = [Path(a.steps_root or DEFAULT_ROOT), out]
        steps_from, steps = _steps_source(a.steps_from, roots)
    return Plan(cfg=cfg, out=out, timing_only=a.timing_only, steps_from=steps_from,
                steps=steps, runner=a.runner, workers=a.workers, ray_address=a.ray_address,
                noise=not a.no_noise, direct=not (a.no_direct or a.no_timing))


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m bench.study`` with ``argv`` (exceptions propagate: ``bench.cli.run``
    turns them into one line and an exit status)."""
    plan = parse(argv)
    cfg, out = plan.cfg, str(plan.out)
    if plan.timing_only:
        if plan.steps_from:
            print(f"S(B) from study {plan.steps_from!r}: {len(plan.steps)} batch sizes")
        store = run_timing_only(cfg, out, plan.steps_from, plan.steps)
        _print_timing(store.name, out, plan.steps_from, plan.steps)
        return 0
    runner = make_runner(plan.runner, plan.workers, plan.ray_address)
    finished = False
    try:
        store = run_study(cfg, runner, out, noise=plan.noise, direct=plan.direct)
        finished = True
    finally:
        runner.close(cancel=not finished)
    df = load_study(out)
    df = df[df["study"] == store.name]
    per_b = per_batch_size(df)
    cols = [c for c in ("batch_size", "backend", "best_lr", "steps_to_target", "seed_steps_min",
                        "seed_steps_max", "trials", "diverged", "b_simple_at_target", "why_not")
            if c in per_b]
    print(per_b[cols].to_string(index=False))
    fit = fit_study(per_b)
    if fit:
        print(f"S_min = {fit.s_min:.1f} steps, E_min = {fit.e_min:.0f} examples, "
              f"B_crit = {fit.b_crit:.0f} (fit, rms log residual {fit.rms_log_residual:.3f})")
    table = noise_table(df)
    if not table.empty:
        print(table[["trajectory", "quantity", "step", "value", "ratio"]].to_string(index=False))
    return 0

