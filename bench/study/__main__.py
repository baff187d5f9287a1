"""``python -m bench.study``: run (or complete) the fair race and print its summary."""

from __future__ import annotations

import argparse
import sys

from bench.study.core import FULL_GRID, StudyConfig, run_study
from bench.study.runners import RAY_ADDRESS_ENV, make_runner
from bench.study.storage import DEFAULT_ROOT, load_study
from bench.study.summary import b_simple_near_target, fit_study, per_batch_size


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    p.add_argument("--name", default="default", help="the study's folder under --out")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="where studies are stored")
    p.add_argument("--batch-sizes", type=_ints, default=FULL_GRID,
                   help="comma-separated B (default: 1, 2, 4, ..., 32768, 50000)")
    p.add_argument("--seeds", type=_ints, default=(1234, 1, 2))
    p.add_argument("--target-error", type=float, default=0.08)
    p.add_argument("--backends", default="numpy,torch,numba")
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
        kw = {"batch_sizes": a.batch_sizes, "seeds": a.seeds}
    cfg = StudyConfig(name=a.name, target_error=a.target_error, timing_threads=a.timing_threads,
                      backends=tuple(a.backends.split(",")), extra_config=extra, **kw)
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
