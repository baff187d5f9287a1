"""The fair race: the fit, the learning-rate search, resuming, determinism across runners, and
a small study on the real data (the CI's version of the complete study)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.study import fit_study, per_batch_size
from bench.study.core import StudyConfig, run_study
from bench.study.runners import InProcessRunner, PoolRunner
from bench.study.search import lr_search
from bench.study.storage import StudyStore, load_study
from bench.study.trial import TrialSpec, run_trial

# ---------------------------------------------------------------- the search (synthetic)


def _synthetic_steps(B: int, units: int, seed: int) -> int | None:
    """Unimodal in log lr with its minimum at u*(B); diverges 9 units above it."""
    u_opt = round(8 * math.log10(0.01 * B**0.75))
    if units > u_opt + 9:
        return None
    return int((150 + 60_000 / B) * (1 + 0.05 * (units - u_opt) ** 2) * (1 + 0.01 * (seed % 3)))


def _fake_record(spec: TrialSpec) -> dict:
    s = _synthetic_steps(spec.batch_size, spec.lr_units, spec.seed)
    if s is None:
        status, steps, to_target = "diverged", 3, None
    elif s <= spec.max_steps:
        status, steps, to_target = "reached", s, s
    else:
        status, steps, to_target = ("capped" if spec.max_steps < spec.budget else "budget",
                                    spec.max_steps, None)
    return {"record": "trial", "key": spec.key(), **asdict(spec), "extra_config": "{}",
            "learning_rate": spec.learning_rate, "variant": spec.variant, "status": status,
            "steps_to_target": to_target, "steps": steps, "validation_interval": 1,
            "wall_s": 0.0}


def _search(B: int, cfg: StudyConfig, held_out: tuple[int, ...] = (11, 12, 13, 14, 15),
            answer=_fake_record):
    """Drive ``lr_search`` at B with ``answer`` for each spec: (outcome, every record)."""
    def make(units, max_steps, phase, seed, after_target):
        return TrialSpec(batch_size=B, lr_units=units, seed=seed, backend="numpy",
                         max_steps=max_steps, budget=cfg.budget(B), validations_per_epoch=1,
                         phase=phase, after_target=0.5 if after_target is None else after_target)

    gen = lr_search(B, cfg.start_units(B), cfg.budget(B), make, (1234, 1, 2), held_out)
    seen, send = [], None
    try:
        while True:
            specs = gen.send(send) if send is not None else next(gen)
            send = [answer(s) for s in specs]
            seen.extend(send)
    except StopIteration as stop:
        return stop.value, seen


@pytest.mark.parametrize("B", [1, 64, 4096, 50_000])
def test_search_chooses_by_the_search_median_and_measures_on_held_out_seeds(B):
    cfg = StudyConfig(batch_sizes=(B,))
    u_opt = round(8 * math.log10(0.01 * B**0.75))
    outcome, seen = _search(B, cfg)
    assert outcome.best_units == u_opt
    median = sorted(_synthetic_steps(B, u_opt, s) for s in (1234, 1, 2))[1]
    assert outcome.best_steps == median
    search = [r for r in seen if r["phase"] != "held-out"]
    points = {r["lr_units"] for r in search}
    assert len(points) <= 16, f"{len(points)} points: the walk should need about 8-12"
    for u in points:             # every point on every search seed, never on a held-out one
        assert sorted(r["seed"] for r in search if r["lr_units"] == u) == [1, 2, 1234]
    # every search trial after the first batch is capped at the best median found before it
    assert all(r["max_steps"] < cfg.budget(B) for r in search[9:])
    assert all(r["max_steps"] >= median for r in search)
    held = [r for r in seen if r["phase"] == "held-out"]
    assert sorted(r["seed"] for r in held) == [11, 12, 13, 14, 15]
    assert all(r["lr_units"] == u_opt and r["max_steps"] == cfg.budget(B)
               and r["after_target"] == 0.5 for r in held)
    assert outcome.race_steps == sorted(_synthetic_steps(B, u_opt, s)
                                        for s in (11, 12, 13, 14, 15))[2]
    run = outcome.median_run()
    assert run["phase"] == "held-out" and run["steps_to_target"] == outcome.race_steps


def test_held_out_seeds_never_sway_the_choice():
    """Held-out seeds that would favour another rate change S(B), never the chosen rate."""
    B, cfg = 256, StudyConfig(batch_sizes=(256,))

    def adversarial(spec):
        if spec.seed not in held_out:
            return _fake_record(spec)
        return _fake_record(dataclasses.replace(spec, lr_units=spec.lr_units - 6))

    held_out = (101, 102, 103, 104, 105)
    plain, _ = _search(B, cfg, held_out=held_out)
    swayed, seen = _search(B, cfg, held_out=held_out, answer=adversarial)
    assert swayed.best_units == plain.best_units
    assert swayed.race_steps > plain.race_steps
    assert all(r["seed"] not in held_out for r in seen if r["phase"] != "held-out")


def test_a_lucky_seed_does_not_choose_the_rate():
    """The minimum over trials would take the rate whose one seed got lucky; the median not."""
    B, cfg = 64, StudyConfig(batch_sizes=(64,))
    u_opt = round(8 * math.log10(0.01 * B**0.75))
    _, plain = _search(B, cfg)
    u_lucky = max(r["lr_units"] for r in plain)           # a point the walk visits anyway
    assert u_lucky != u_opt

    def lucky(spec):
        rec = _fake_record(spec)
        if spec.lr_units == u_lucky and spec.seed == 1:     # one seed, far below the rest
            rec.update(status="reached", steps_to_target=10, steps=10)
        return rec

    outcome, seen = _search(B, cfg, answer=lucky)
    assert min(r["steps_to_target"] or math.inf for r in seen) == 10
    assert outcome.best_units == u_opt


# ---------------------------------------------------------------- resuming


class _FakeRunner:
    """Answers trials from the synthetic objective; raises after ``fail_after`` submissions."""

    workers = 1

    def __init__(self, fail_after: int | None = None) -> None:
        self.submitted = 0
        self.fail_after = fail_after

    def submit(self, spec: TrialSpec) -> Future:
        if self.fail_after is not None and self.submitted >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.submitted += 1
        fut: Future = Future()
        fut.set_result(_fake_record(spec))
        return fut

    def close(self) -> None:
        pass


def test_an_interrupted_study_resumes_computing_only_what_is_missing(tmp_path):
    cfg = StudyConfig(name="resume", batch_sizes=(1, 256, 50_000), timing=False)
    full = _FakeRunner()
    run_study(cfg, full, tmp_path / "complete", noise=False, direct=False)
    total = full.submitted
    assert total >= 3 * 8

    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, _FakeRunner(fail_after=11), tmp_path, noise=False, direct=False)
    kept = StudyStore(tmp_path, "resume")
    assert len([r for r in kept.records() if r["record"] == "trial"]) == 11

    rerun = _FakeRunner()
    run_study(cfg, rerun, tmp_path, noise=False, direct=False)
    assert rerun.submitted == total - 11
    df = load_study(tmp_path)
    assert (df["record"] == "trial").sum() == total
    per_b = per_batch_size(df)
    assert per_b["steps_to_target"].notna().all()
    assert (tmp_path / "resume" / "study.csv").exists()
    assert not list(tmp_path.glob("resume/**/*.json")), "the report's loader globs *.json"


# ---------------------------------------------------------------- determinism (real data)

_SPEC = TrialSpec(batch_size=2048, lr_units=4, seed=7, backend="numpy", max_steps=400,
                  budget=400, validations_per_epoch=24, target_error=0.08)


def _outcome(rec: dict) -> tuple:
    return (rec["status"], rec["steps_to_target"], rec["steps"], rec["best_valid_error"])


@pytest.fixture(scope="module")
def in_process_record(real_mnist):
    return run_trial(_SPEC, noise=False)


@pytest.mark.realdata
def test_a_trial_gives_the_same_steps_in_process_and_in_the_pool(in_process_record):
    assert in_process_record["status"] == "reached"
    pool = PoolRunner(workers=2)
    try:
        recs = [f.result() for f in [pool.submit(_SPEC), pool.submit(_SPEC)]]
    finally:
        pool.close()
    assert {_outcome(r) for r in recs} == {_outcome(in_process_record)}
    assert InProcessRunner().submit(_SPEC).result()["steps_to_target"] == \
        in_process_record["steps_to_target"]


@pytest.mark.realdata
def test_a_trial_gives_the_same_steps_on_a_local_ray_instance(in_process_record):
    pytest.importorskip("ray", reason="the 'ray' extra is not installed: pip install -e '.[ray]'")
    from bench.study.runners import RayRunner

    runner = RayRunner("local", num_cpus=2)
    try:
        assert runner.workers == 2
        rec = runner.submit(_SPEC).result(timeout=300)
    finally:
        runner.close()
    assert _outcome(rec) == _outcome(in_process_record)


# ---------------------------------------------------------------- the CI's small study


@pytest.mark.realdata
def test_small_study_on_real_data(real_mnist, tmp_path):
    """3 batch sizes x 3 learning rates (a half-decade apart), one search seed and two
    held-out ones, on the real data: every B reaches 8 %, fewer steps at larger B, a fit,
    timings and one direct run that follows the median run's trajectory."""
    cfg = StudyConfig(name="small", batch_sizes=(32, 256, 2048), seeds=(1234,),
                      held_out_seeds=(11, 12),
                      grid=(-4, 0, 4), backends=("numpy",), timing_repeats=1,
                      validations_per_prior=20,
                      timing_examples=20_000, direct_top=1, direct_repeats=1,
                      noise_batch_sizes=(256,), noise_points=2)
    runner = PoolRunner(workers=2)
    try:
        run_study(cfg, runner, tmp_path)
    finally:
        runner.close()
    df = load_study(tmp_path)
    per_b = per_batch_size(df).set_index("batch_size")
    assert (per_b["trials"] == 5).all()
    held = df[(df["record"] == "trial") & (df["phase"] == "held-out")]
    assert sorted(held["seed"].unique()) == [11, 12] and len(held) == 6
    assert (held["steps"] > held["steps_to_target"]).all()        # trained on past the target
    assert held["oscillation_share"].between(0, 1).all()
    assert (held["max_steps"] == held["budget"]).all()
    assert per_b["steps_to_target"].notna().all(), per_b.get("why_not")
    steps = per_b["steps_to_target"]
    assert steps[32] > steps[256] > steps[2048]
    assert (per_b["b_simple_at_target"] > 0).all()
    fit = fit_study(per_batch_size(df))
    assert fit is not None and fit.s_min > 0 and fit.e_min > 0
    timing = df[df["record"] == "timing"]
    assert set(timing["batch_size"]) == {32, 256, 2048}
    direct = df[df["record"] == "direct"]
    assert len(direct) >= 1 and direct["measured_s"].notna().all()
    assert direct["seed"].isin([11, 12]).all() and direct["steps_match"].all()
    noise = df[df["record"] == "noise"]
    assert len(noise) == cfg.noise_points and (noise[["b_simple", "b_noise"]] > 0).all().all()


# ---------------------------------------------------------------- the optimizer axis


def test_an_unknown_extra_config_field_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"names a field RunConfig does not have"):
        StudyConfig(extra_config=(("no_such_field", 1),))


@pytest.mark.realdata
def test_momentum_is_an_axis_where_the_tree_has_it(real_mnist):
    from dataclasses import fields

    from bench.workload.config import RunConfig

    if "optimizer" not in {f.name for f in fields(RunConfig)}:
        pytest.skip("RunConfig has no 'optimizer' field in this tree (the architecture issue "
                    "adds momentum/Nesterov); the study passes it through extra_config")
    spec = dataclasses.replace(_SPEC, extra_config=(("momentum", 0.9),
                                                    ("optimizer", "momentum")),
                               lr_units=-4)
    rec = run_trial(spec, noise=False)
    assert rec["status"] in ("reached", "budget", "capped", "diverged")
    assert json.loads(rec["extra_config"]) == {"momentum": 0.9, "optimizer": "momentum"}


# ---------------------------------------------------------------- the report


def test_report_section_and_figures_from_a_stored_study(tmp_path):
    from reports.study import section
    from reports.study_figures import figures

    cfg = StudyConfig(name="report", batch_sizes=(1, 16, 256, 4096, 50_000), timing=False,
                      held_out_seeds=())     # an old-scheme study: no held-out seeds
    run_study(cfg, _FakeRunner(), tmp_path, noise=False, direct=False)
    df = load_study(tmp_path)
    text = section(df)
    fit = fit_study(per_batch_size(df))
    assert f"S_min = {fit.s_min:,.0f} steps" in text
    assert f"B_crit = E_min/S_min = {fit.b_crit:,.0f}" in text
    assert "| 50,000 | full-batch GD" in text
    made = figures(df, tmp_path / "figs")
    assert [p.name for _, p in made] == ["study_steps_to_target.png", "study_best_lr.png"]
    assert all(p.stat().st_size > 10_000 for _, p in made)
    assert "No study results found" in section(load_study(tmp_path / "nothing"))
    assert "**Not a race (one seed's minimum, biased low).**" in text   # no held-out seeds


# ---------------------------------------------------------------- time per step on a card


def test_backend_specs_parse_and_the_unknown_ones_say_why():
    from bench.study.timing import BackendSpec, SpecError, parse_spec

    assert parse_spec("torch") == BackendSpec("torch", "cpu", "eager")
    assert parse_spec("numpy").key_prefix == "numpy"          # the keys of older studies
    graph = parse_spec("torch:cuda:cuda-graph")
    assert (graph.device, graph.kernel, graph.label) == ("cuda", "cuda-graph",
                                                         "torch:cuda:cuda-graph")
    assert graph.key_prefix == "torch-cuda-cuda-graph"
    assert parse_spec("cupy") == parse_spec("cupy:cuda") == BackendSpec("cupy", "cuda")
    assert parse_spec("cupy:cuda:fused").label == "cupy:cuda:fused"
    for text, why in [("bogus", "unknown backend 'bogus'"),
                      ("torch:tpu", "does not run on device 'tpu'"),
                      ("cupy:cuda:no-such-kernel", "unknown kernel 'no-such-kernel' in this tree"),
                      ("torch:cpu:cuda-graph", "runs only on a GPU"),
                      ("torch::cuda-graph", "is not 'backend[:device[:kernel]]'"),
                      ("a:b:c:d", "is not 'backend[:device[:kernel]]'")]:
        with pytest.raises(SpecError, match=re.escape(why)):
            parse_spec(text)


def test_specs_this_machine_or_backend_cannot_run_are_skipped_with_the_reason(monkeypatch):
    import torch

    import impls.registry as registry
    from bench.study.timing import parse_spec, resolve_specs, unusable_reason

    usable, skipped = resolve_specs(["numpy", "torch:cpu", "numpy:cpu", "cupy:cuda:persistent-x",
                                     "bogus", " "])
    assert [s.label for s in usable] == ["numpy:cpu", "torch:cpu"]     # duplicates dropped
    assert dict(skipped)["cupy:cuda:persistent-x"].startswith("unknown kernel")
    assert dict(skipped)["bogus"].startswith("unknown backend")
    cuda_reason = unusable_reason(parse_spec("torch:cuda"))
    assert (cuda_reason is None) == torch.cuda.is_available(), cuda_reason
    # a kernel the tree knows but this backend lacks (as if the GPU were there)
    monkeypatch.setattr(registry, "unavailable_reason", lambda *a, **k: None)
    assert "has no kernel 'fused'" in unusable_reason(parse_spec("torch:cuda:fused"))
    assert unusable_reason(parse_spec("torch:cuda:cuda-graph")) is None


def _small_data(monkeypatch, n_train: int = 2048):
    """The timing runs' data: random MNIST-shaped arrays instead of the files (fast)."""
    import bench.study.core
    from tests.conftest import random_mnist

    data = random_mnist(n_train=n_train, n_valid=256, n_test=64)
    monkeypatch.setattr(bench.study.core, "load", lambda *a, **k: data)
    return data


def test_timing_only_stores_device_kernel_and_skips_with_reasons(monkeypatch, tmp_path):
    from bench.study.core import run_timing_only
    from impls.numpy_backend import NumpyTrainer
    from impls.torch_backend import TorchTrainer

    _small_data(monkeypatch)
    configure_np, configure_torch = NumpyTrainer.configure, TorchTrainer.configure

    def np_limited(self, **kw):       # like kernel='fused': a ValueError above B = 16
        if kw["batch_size"] > 16:
            raise ValueError(f"runs batches of at most 16; got {kw['batch_size']}")
        configure_np(self, **kw)

    def torch_failing(self, **kw):    # a run that breaks: recorded, the study goes on
        if kw["batch_size"] == 16:
            raise RuntimeError("simulated device error")
        configure_torch(self, **kw)

    monkeypatch.setattr(NumpyTrainer, "configure", np_limited)
    monkeypatch.setattr(TorchTrainer, "configure", torch_failing)
    cfg = StudyConfig(name="card", batch_sizes=(1, 16, 2048), timing_repeats=2,
                      timing_examples=4000, timing_max_seconds=20,
                      backends=("numpy", "torch:cpu", "cupy:cuda:no-such-kernel", "bogus"))
    store = run_timing_only(cfg, tmp_path, "ref", {1: 5000, 16: 400})
    df = load_study(tmp_path)
    timing = df[df["record"] == "timing"].set_index(["spec", "batch_size"])
    assert sorted(timing.index) == [("numpy:cpu", 1), ("numpy:cpu", 16), ("torch:cpu", 1),
                                    ("torch:cpu", 2048)]
    assert set(timing["device"]) == {"cpu"} and set(timing["kernel"]) == {"eager"}
    assert (timing["step_s"] > 0).all() and (timing["step_s_min"] <= timing["step_s_max"]).all()
    assert timing.loc[("numpy:cpu", 1), "key"].startswith("numpy_B1_t1_n4000_r2_")
    assert (timing["steps_per_run"] >= 5).all() and (timing["steps_per_run"] <= 4000).all()
    skip = df[df["record"] == "skip"].set_index("spec")
    assert skip.loc["numpy:cpu", "batch_size"] == 2048
    assert "at most 16" in skip.loc["numpy:cpu", "reason"]
    assert skip.loc["torch:cpu", "batch_size"] == 16
    assert "RuntimeError: simulated device error" in skip.loc["torch:cpu", "reason"]
    assert pd.isna(skip.loc["bogus", "batch_size"])
    assert "unknown kernel" in skip.loc["cupy:cuda:no-such-kernel", "reason"]
    ctx = next(r for r in store.records() if r["record"] == "context")
    assert ctx["timing_only"] and ctx["steps_from"] == "ref"
    assert json.loads(ctx["steps_from_steps"]) == {"1": 5000, "16": 400}
    assert ctx["timing_wall_s"] < 20 + 5
    assert not {"trial", "direct", "noise"} & set(df["record"])


def test_the_time_bound_skips_the_cells_it_has_no_time_for(monkeypatch, tmp_path):
    from bench.study.core import run_timing_only

    _small_data(monkeypatch)
    cfg = StudyConfig(name="tight", batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128), timing_repeats=3,
                      backends=("numpy", "torch"), timing_max_seconds=0.05)
    run_timing_only(cfg, tmp_path)
    df = load_study(tmp_path)
    timed, skipped = df[df["record"] == "timing"], df[df["record"] == "skip"]
    assert len(timed) + len(skipped) == 16
    assert len(timed) >= 1 and len(skipped) >= 1
    assert all("timing budget of 0.05 s was spent" in r for r in skipped["reason"])
    ctx = df[df["record"] == "context"].iloc[0]
    assert ctx["timing_wall_s"] < 0.05 + 2.0, "one cell may overrun the bound, not more"
    # a budgeted cell's steps per run stay within the unbudgeted count
    assert (timed["steps_per_run"] <= 20_000).all()


def _timing_rec(spec: str, B: int, step_s: float, spread: float = 0.05, move_s: float = 0.0,
                **extra) -> dict:
    from bench.study.timing import parse_spec

    s = parse_spec(spec)
    lo, hi = step_s * (1 - spread), step_s * (1 + spread)
    rec = {"key": f"{s.key_prefix}_B{B}", "spec": s.label, "backend": s.backend,
           "device": s.device, "kernel": s.kernel, "batch_size": B, "threads": 1,
           "steps_per_run": 100, "batches_per_epoch": max(1, 50_000 // B), "step_s": step_s,
           "step_s_min": lo, "step_s_max": hi, "step_s_all": [lo, step_s, hi],
           "epoch_move_s": move_s, "epoch_move_s_all": [move_s] * 3, **extra}
    return rec


def test_projection_composes_steps_with_time_per_step_and_old_records_are_the_cpu():
    from bench.analysis import fastest_variant
    from bench.analysis import project_time_to_target as project

    old = {k: v for k, v in _timing_rec("numpy", 1, 4e-6, move_s=0.03).items()
           if k not in ("spec", "device", "kernel")}          # stored before specs existed
    recs = [old, _timing_rec("torch:cuda:cuda-graph", 1, 3e-6, move_s=1e-4),
            _timing_rec("torch:cuda", 64, 1e-4, move_s=1e-4),
            _timing_rec("torch:cuda", 50_000, 2e-4, move_s=1e-4),
            _timing_rec("torch:cuda", 100, 1e-4)]            # no S(B) at 100: left out
    proj = project(recs, {1: 50_000, 64: 900, 50_000: 180}).set_index(["spec", "batch_size"])
    assert len(proj) == 4
    assert proj.loc[("numpy:cpu", 1), ["device", "kernel"]].tolist() == ["cpu", "eager"]
    # S = 50,000 steps at B = 1 is one epoch: one reshuffle
    assert proj.loc[("numpy:cpu", 1), "projected_s"] == pytest.approx(50_000 * 4e-6 + 0.03)
    assert proj.loc[("torch:cuda", 64), "projected_s"] == pytest.approx(
        900 * 1e-4 + math.ceil(900 / 781) * 1e-4)
    assert proj.loc[("torch:cuda", 64), "projected_s_max"] == pytest.approx(
        900 * 1.05e-4 + 2 * 1e-4)
    fv = fastest_variant(proj.reset_index())
    assert fv["winner"]["variant"] == "full" and fv["winner"]["projected_s"] == pytest.approx(
        180 * 2e-4 + 180 * 1e-4)
    assert fv["tied"] == []                                   # 0.054 s vs 0.09 s at B = 64
    assert set(fv["by_variant"]) == {"sgd", "minibatch", "full"}


def test_the_committed_cpu_study_loads_as_cpu_eager_and_projects():
    from pathlib import Path

    from bench.analysis import project_time_to_target as project
    from bench.analysis import steps_to_target

    root = Path(__file__).resolve().parents[1] / "results" / "study"
    df = load_study(root)
    timing = df[(df["record"] == "timing") & (df["study"] == "cpu-epyc-2vcpu")]
    assert len(timing) == 17 * 3
    assert set(timing["device"]) == {"cpu"} and set(timing["kernel"]) == {"eager"}
    steps = steps_to_target(df, "cpu-epyc-2vcpu")
    assert len(steps) == 17 and steps[50_000] > 0
    assert len(project(timing, steps)) == 17 * 3


def test_timing_only_cli_composes_with_the_named_study(monkeypatch, tmp_path, capsys):
    from bench.study.__main__ import main

    _small_data(monkeypatch)
    run_study(StudyConfig(name="ref", batch_sizes=(1, 16, 2048), timing=False), _FakeRunner(),
              tmp_path / "ref-root", noise=False, direct=False)
    steps = per_batch_size(load_study(tmp_path / "ref-root")).set_index("batch_size")[
        "steps_to_target"]
    assert main(["--name", "here", "--timing-only", "--steps-from", "ref", "--steps-root",
                 str(tmp_path / "ref-root"), "--out", str(tmp_path / "out"), "--backends",
                 "numpy,torch:cuda:fused", "--batch-sizes", "1,16", "--max-seconds", "10",
                 "--timing-repeats", "1"]) == 0
    text = capsys.readouterr().out
    assert "S(B) from study 'ref'" in text
    assert "not timed: torch:cuda:fused: " in text   # no GPU, or no such kernel: said why
    rec = load_study(tmp_path / "out").query("record == 'timing' and batch_size == 16").iloc[0]
    S = int(steps[16])
    composed = S * rec["step_s"] + math.ceil(S / rec["batches_per_epoch"]) * rec["epoch_move_s"]
    assert f"B=    16 S={S:7,d}  best numpy:cpu: {composed:.3g} [" in text
    assert "fastest to the target here:" in text
    assert main(["--timing-only", "--steps-from", "no-such-study", "--out", str(tmp_path)]) == 2
    assert "no stored study with steps-to-target" in capsys.readouterr().err


def _card_root(tmp_path, card_recs: list[dict], name: str = "card"):
    """A reference CPU study (synthetic S(B), CPU timing stored the old way) and a timing-only
    study measured on a (synthetic) card that takes its S(B) from it."""
    root = tmp_path / name
    cfg = StudyConfig(name="ref", batch_sizes=(1, 16, 256, 4096, 50_000), timing=False,
                      held_out_seeds=())     # an old-scheme study: no held-out seeds
    run_study(cfg, _FakeRunner(), root, noise=False, direct=False)
    ref = StudyStore(root, "ref")
    for B, step in ((1, 4e-6), (16, 3e-5), (256, 3e-4), (4096, 5e-3), (50_000, 0.06)):
        rec = {k: v for k, v in _timing_rec("numpy", B, step, move_s=0.03).items()
               if k not in ("spec", "device", "kernel")}
        ref.put("timing", rec["key"], [rec])
    if card_recs:
        card = StudyStore(root, "h200-timing")
        card.put("context", "2026-12-01T00-00-00", [{
            "started_utc": "2026-12-01T00:00:00", "commit": "abc1234def", "gpu_name": "NVIDIA H200",
            "machine_label": "NVIDIA H200 (host X x16)", "timing_only": True, "steps_from": "ref",
            "timing_wall_s": 84.0, "study_config": json.dumps({"timing_max_seconds": 90.0,
                                                              "target_error": 0.08})}])
        for rec in card_recs:
            card.put("timing", rec["key"], [rec])
        card.put("skip", "cupy-cuda-fused_B256", [{
            "key": "cupy-cuda-fused_B256", "spec": "cupy:cuda:fused", "backend": "cupy",
            "device": "cuda", "kernel": "fused", "batch_size": 256, "error": "ValueError",
            "reason": "kernel='fused' runs batches of at most 32 examples; got batch_size=256."}])
    return root


def test_report_on_the_card_names_the_winner_and_leaves_the_cpu_report_alone(tmp_path):
    from bench.analysis import steps_to_target
    from bench.analysis.answer import fastest_to_target
    from reports.study import section

    recs = [_timing_rec("torch:cuda", B, 6e-5, move_s=1e-4) for B in (1, 16, 256, 4096, 50_000)]
    recs += [_timing_rec("torch:cuda:cuda-graph", B, 8e-6, move_s=1e-4) for B in (1, 16, 256)]
    recs += [_timing_rec("cupy:cuda:fused", B, 2e-6, move_s=1e-4) for B in (1, 16)]
    df = load_study(_card_root(tmp_path, recs))
    plain = df[df["study"] != "h200-timing"]          # the same CPU study without the card
    # a timing-only study on a CPU is no card either
    cpu_only = StudyStore(tmp_path / "card", "cpu-timing")
    cpu_only.put("timing", "numpy_B16", [_timing_rec("numpy", 16, 1e-5)])
    assert section(load_study(tmp_path / "card")) == section(df)
    text, base = section(df), section(plain)
    assert "On the card" not in base
    assert text.startswith(base[:-1]), "the CPU study's text is unchanged, the card comes after"
    assert "### On the card: NVIDIA H200 (time per step `h200-timing`, S(B) from `ref`)" in text
    S = steps_to_target(df, "ref")
    # B = 256: cuda-graph 8 us/step is the best; S steps and ceil(S / 195) reshuffles
    t256 = S[256] * 8e-6 + math.ceil(S[256] / 195) * 1e-4
    card = text.split("### On the card")[1]
    row = next(line for line in card.splitlines() if re.match(r"\|\s+256 \|", line))
    assert "torch:cuda:cuda-graph" in row and f"{t256:.3g} [" in row
    cpu256 = S[256] * 3e-4 + math.ceil(S[256] / 195) * 0.03
    assert f"{cpu256:.3g} [" in row and f"{cpu256 / t256:.2g}×" in row
    # `ref` is an old-scheme study (no held-out seeds): the card names no winner from it
    assert "S(B) from `ref`: not a race (one seed's minimum, biased low), so no winner" in card
    assert not re.search(r"fastest:|tied", card.split("\n\n")[2])
    assert "- `cupy:cuda:fused` not timed at B = 256: kernel='fused' runs batches" in text
    per_spec = text.split("Time per step on the card by backend spec")[1].split("\n\n")[1]
    assert per_spec.splitlines()[0].split("|")[2:5] == [
        " cupy:cuda:fused   ", "   torch:cuda ", " torch:cuda:cuda-graph   "]
    # the card composes with an untuned S(B) (`ref` is a test's study): no answer
    answers, passed_over = fastest_to_target(df)
    assert answers == {}
    assert ("h200-timing", "its S(B) study `ref`: written by a test run") in passed_over


def test_report_on_the_card_names_no_winner_from_an_old_study(tmp_path):
    """Even where the repeats' ranges are apart, an S(B) that is not a race gives no winner
    (the race's card verdicts: tests/test_race_report.py)."""
    from bench.analysis import steps_to_target
    from reports.study import section

    S = steps_to_target(load_study(_card_root(tmp_path, [], "plain")), "ref")
    recs = [_timing_rec("torch:cuda:cuda-graph", 1, 1.0 / S[1], spread=0.01),
            _timing_rec("torch:cuda", 256, 10.0 / S[256], spread=0.01)]
    card = section(load_study(_card_root(tmp_path, recs))).split("### On the card")[1]
    assert "so no winner is named" in card
    assert not re.search(r"fastest:|tied", card.split("\n\n")[2])


@pytest.mark.realdata
def test_an_mlp_held_out_run_records_its_noise_scale_and_a_search_trial_does_not(real_mnist):
    import importlib.util

    spec = TrialSpec(batch_size=512, lr_units=0, seed=7, backend="numpy", max_steps=60,
                     budget=60, validations_per_epoch=100, target_error=0.5,
                     extra_config=(("model", "mlp"),))
    search = run_trial(spec)
    assert search["status"] == "reached" and "b_simple" not in search
    held = run_trial(dataclasses.replace(spec, after_target=0.5, phase="held-out"))
    assert held["steps_to_target"] == search["steps_to_target"]
    if importlib.util.find_spec("torch") is None:
        assert "pip install" in held["noise_note"] and "b_simple" not in held
    else:
        assert held["b_simple"] > 0 and held["trace_cov"] > 0 and held["grad_sq_norm"] > 0
        assert held["b_simple"] == pytest.approx(held["trace_cov"] / held["grad_sq_norm"])


def test_the_optimizer_axis_compares_optimizers_within_a_model_never_across():
    from reports.study import optimizer_axis

    races = ("cpu-epyc-2c-race", "cpu-epyc-2c-race-mlp", "cpu-epyc-2c-race-momentum")
    df = load_study(Path(__file__).resolve().parents[1] / "results" / "study")
    df = df[df["study"].isin(races)]
    if set(df["study"]) != set(races):
        pytest.skip("the committed races are not all present")
    text = "\n".join(optimizer_axis(df))
    assert text.count("### The optimizer axis") == 1 and "(softmax)" in text
    assert "(mlp)" not in text
    b1 = next(line for line in text.splitlines() if re.match(r"\|\s*1 \|", line))
    softmax_s1 = per_batch_size(df[df["study"] == races[0]]).set_index("batch_size")
    mlp_s1 = per_batch_size(df[df["study"] == races[1]]).set_index("batch_size")
    assert f"{int(softmax_s1.loc[1, 'steps_to_target']):,}" in b1
    assert f"{int(mlp_s1.loc[1, 'steps_to_target']):,}" not in b1
