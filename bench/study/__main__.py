"""``python -m bench.study``: run (or complete) the fair race and print its summary; with
``--timing-only``, only time per step on this machine (e.g. a GPU), composed with the S(B) of
a stored study (``--steps-from``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bench.study.core import FULL_GRID, StudyConfig, run_study, run_timing_only
from bench.study.runners import RAY_ADDRESS_ENV, make_runner
from bench.study.storage import DEFAULT_ROOT, load_study
from bench.study.summary import b_simple_near_target, fit_study, per_batch_size
from bench.study.timing import VARIANT_NAMES, fastest_variant, project, steps_to_target

#: The time bound of ``--timing-only`` when ``--max-seconds`` is not given (seconds).
TIMING_ONLY_SECONDS = 90.0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


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
    raise SystemExit(f"--steps-from {text!r}: no stored study with steps-to-target at "
                     f"{', '.join(str(c) for c in candidates)} (a folder under results/study "
                     "with trial/ records)")


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    p.add_argument("--name", default="default", help="the study's folder under --out")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="where studies are stored")
    p.add_argument("--batch-sizes", type=_ints, default=FULL_GRID,
                   help="comma-separated B (default: 1, 2, 4, ..., 32768, 50000)")
    p.add_argument("--seeds", type=_ints, default=(1234, 1, 2))
    p.add_argument("--target-error", type=float, default=0.08)
    p.add_argument("--backends", default="numpy,torch,numba,jax",
                   help="comma-separated backend specs backend[:device[:kernel]], e.g. "
                        "numpy,torch:cuda,torch:cuda:cuda-graph,cupy:cuda:fused; one this tree "
                        "or machine cannot run is skipped with the reason")
    p.add_argument("--timing-only", action="store_true",
                   help="only time per step (no searches, noise or direct runs); with "
                        "--steps-from, print the composed time-to-target per B")
    p.add_argument("--steps-from", default=None,
                   help="a stored study (name under --steps-root or --out, or its folder) "
                        "whose S(B) the timings are composed with")
    p.add_argument("--steps-root", default=str(DEFAULT_ROOT),
                   help="where --steps-from is looked up by name first")
    p.add_argument("--max-seconds", type=float, default=None,
                   help=f"bound on the whole timing phase in seconds (default: none; "
                        f"{TIMING_ONLY_SECONDS:g} with --timing-only)")
    p.add_argument("--timing-repeats", type=int, default=3,
                   help="timed runs per (spec, B), after a warm-up (default 3)")
    p.add_argument("--small", action="store_true",
                   help="the CI's small study: B = 32, 256, 2048; 3 learning rates each "
                        "(a half-decade apart); one seed; 1 timing repeat; no noise runs")
    p.add_argument("--runner", choices=("pool", "inprocess", "ray"), default="pool")
    p.add_argument("--workers", type=int, default=None, help="pool size (default: CPU count)")
    p.add_argument("--ray-address", default=None,
                   help=f"run trials as Ray tasks: 'auto', 'ray://host:10001' or 'local' "
                        f"(default: ${RAY_ADDRESS_ENV} when set)")
    p.add_argument("--optimizer", default=None, help="RunConfig.optimizer, where it exists")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--model", default=None, help="RunConfig.model, where it exists")
    p.add_argument("--timing-threads", type=int, default=1,
                   help="threads for the time-per-step and direct runs (default 1; trials "
                        "always run on one)")
    p.add_argument("--no-direct", action="store_true", help="skip the direct time-to-target")
    p.add_argument("--no-noise", action="store_true", help="skip the noise-scale runs")
    a = p.parse_args(argv)
    extra = tuple((k, v) for k, v in (("model", a.model), ("optimizer", a.optimizer),
                                      ("momentum", a.momentum)) if v is not None)
    kw = {}
    if a.small:
        kw = {"batch_sizes": (32, 256, 2048), "seeds": a.seeds[:1], "grid": (-4, 0, 4),
              "validations_per_prior": 20, "timing_repeats": 1, "timing_examples": 20_000,
              "direct_top": 1, "direct_repeats": 1, "noise_batch_sizes": ()}
    else:
        kw = {"batch_sizes": a.batch_sizes, "seeds": a.seeds, "timing_repeats": a.timing_repeats}
    max_s = a.max_seconds if a.max_seconds is not None or not a.timing_only \
        else TIMING_ONLY_SECONDS
    cfg = StudyConfig(name=a.name, target_error=a.target_error, timing_threads=a.timing_threads,
                      backends=tuple(b.strip() for b in a.backends.split(",") if b.strip()),
                      extra_config=extra, timing_max_seconds=max_s, **kw)
    if a.timing_only:
        steps_from, steps = (None, {})
        if a.steps_from:
            steps_from, steps = _steps_source(a.steps_from, [Path(a.steps_root), Path(a.out)])
            print(f"S(B) from study {steps_from!r}: {len(steps)} batch sizes")
        store = run_timing_only(cfg, a.out, steps_from, steps)
        _print_timing(store.name, a.out, steps_from, steps)
        return 0
    runner = make_runner(a.runner, a.workers, a.ray_address)
    try:
        store = run_study(cfg, runner, a.out, noise=not a.no_noise, direct=not a.no_direct)
    finally:
        runner.close()
    df = load_study(a.out)
    df = df[df["study"] == store.name]
    per_b = per_batch_size(df)
    cols = [c for c in ("batch_size", "backend", "best_lr", "steps_to_target", "seed_steps_min",
                        "seed_steps_max", "trials", "diverged", "b_simple_at_target", "why_not")
            if c in per_b]
    print(per_b[cols].to_string(index=False))
    fit = fit_study(per_b)
    if fit:
        print(f"S_min = {fit.s_min:.1f} steps, E_min = {fit.e_min:.0f} examples, "
              f"B_crit = {fit.b_crit:.0f} (fit, rms log residual {fit.rms_log_residual:.3f}); "
              f"B_simple near target: {b_simple_near_target(df, per_b)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
