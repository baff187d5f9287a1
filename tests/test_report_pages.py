"""The report reads in one screen: ``report.md`` from the committed results within its limits,
one answer per machine from a tuned study only, each machine's rows in its own section; and the
analysis that decides it (``bench.analysis.answer``, ``machines``, ``names``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.answer import fastest_to_target
from bench.analysis.machines import Machine, describe, study_machine
from bench.analysis.names import format_seconds, variant_name
from bench.machine import machine_id
from reports import make_plots
from reports.styles import series_styles
from tests.test_race_report import race_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The report of the committed results, built into a temporary folder."""
    out = tmp_path_factory.mktemp("report")
    make_plots.build(make_plots.default_files(ROOT / "results", quiet=True), out)
    return out


def _sections(report: str) -> dict[str, str]:
    """The machine sections of "The answer per machine": title -> text."""
    body = report.split("## The answer per machine")[1].split("\n## ")[0]
    parts = re.split(r"^### (.+)$", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def test_the_report_is_short_and_clean(built):
    report = (built / "report.md").read_text()
    assert len(report.encode()) <= 20_000
    assert max(map(len, report.splitlines())) <= 300
    assert len(re.findall(r"!\[", report)) <= 6
    for page in [built / "report.md", *built.glob("machines/*.md"), *built.glob("studies/*.md")]:
        assert not re.search(r"\bnan\b", page.read_text(), flags=re.I), page.name
    for link in re.findall(r"\]\(([^)]+\.(?:md|png))\)", report):
        assert (built / link).is_file(), link


def test_one_fastest_to_target_statement_per_machine(built):
    report = (built / "report.md").read_text()
    sections = _sections(report)
    assert sections, "no machine section"
    for title, text in sections.items():
        answers = [p for p in _paragraphs(text) if re.search(r"fastest to", p, flags=re.I)]
        assert len(answers) == 1, (title, answers)
    outside = report
    for text in sections.values():
        outside = outside.replace(text, "")
    assert not re.search(r"fastest to", outside, flags=re.I)
    # the committed study ran before held-out seeds: not a race, so no winner; the GPU run
    # has no study
    epyc = _paragraphs(sections["AMD EPYC, 2 CPUs"])[0]
    assert "no answer for this machine" in epyc
    assert "study `cpu-epyc-2vcpu`: not a race (one seed's minimum, biased low)" in epyc
    gpu = next(t for name, t in sections.items() if name.startswith("NVIDIA H200"))
    assert "no answer for this machine" in _paragraphs(gpu)[0]


def test_a_machine_with_several_races_names_each_with_its_own_verdict(built):
    # the committed races of the 2-core EPYC: softmax SGD answers (its fastest B is the
    # fastest), the MLP and momentum races follow in the same statement, never pooled
    answer = _paragraphs(_sections((built / "report.md").read_text())
                         ["AMD EPYC, 2 CPUs, 23 GiB"])[0]
    assert "Study [`cpu-epyc-2c-race`]" in answer
    for other, target in (("cpu-epyc-2c-race-mlp", "6.0 %"),
                          ("cpu-epyc-2c-race-momentum", "8.0 %")):
        assert f"Race [`{other}`](studies/{other}.md) (validation error ≤ {target}" in answer


def test_a_machines_rows_stay_in_its_section(built):
    sections = _sections((built / "report.md").read_text())
    gpu = next(t for name, t in sections.items() if name.startswith("NVIDIA H200"))
    assert "-cpu" not in gpu and "cuda" in gpu          # never a CPU backend on the card
    assert "cuda" not in sections["AMD EPYC, 2 CPUs"] and "H200" not in sections[
        "AMD EPYC, 2 CPUs"]
    epyc_page = (built / "machines" / "cpu-amd-epyc-2c.md").read_text()
    assert "cuda" not in epyc_page and "H200" not in epyc_page


# ------------------------------------------------------------------------- the answer


def _study(name: str, cpu: str, *, direct_s: float | None, small: bool = False) -> list[dict]:
    """Records of one study: its context, trials at two B (for its target), a direct run."""
    cfg = {"name": name, "batch_sizes": [32, 256, 2048] if small else [1, 8, 64, 512, 50_000],
           "seeds": [1] if small else [1, 2], "grid": [-4, 0, 4] if small else None,
           "timing_repeats": 1 if small else 3, "extra_config": []}
    rows = [{"study": name, "record": "context", "started_utc": "2026-12-05T00:00:00",
             "commit": "c0ffee1234abcdef", "study_config": json.dumps(cfg),
             "machine_json": json.dumps({"cpu_model": cpu, "cpu_count": 2})}]
    rows += [{"study": name, "record": "trial", "batch_size": B, "target_error": 0.08,
              "phase": "search", "status": "reached", "learning_rate": 0.1, "lr_units": 0,
              "steps_to_target": 6400 // B, "validation_interval": 10, "seed": 1,
              "budget": 10_000, "variant": variant_name(B, 50_000), "backend": "numpy",
              "key": f"numpy_B{B}"} for B in (1, 64)]
    if direct_s is not None:
        rows += [{"study": name, "record": "direct", "batch_size": 1, "backend": "numba",
                  "measured_s": direct_s, "measured_s_all": [direct_s * 0.9, direct_s,
                                                             direct_s * 1.1],
                  "composed_s": direct_s, "composition_error": 0.0},
                 {"study": name, "record": "direct", "batch_size": 64, "backend": "torch",
                  "measured_s": 2 * direct_s, "measured_s_all": [2 * direct_s],
                  "composed_s": 2 * direct_s, "composition_error": 0.0}]
    return rows


def test_a_smoke_study_never_answers():
    df = pd.DataFrame(race_study("tuned", spread=0.05, cpu="Xeon")
                      + _study("ci", "Xeon", direct_s=1e-6, small=True)   # faster, but smoke
                      + _study("smoke-elsewhere", "EPYC", direct_s=1e-6, small=True))
    answers, passed_over = fastest_to_target(df)
    xeon = Machine(machine_id({"cpu_model": "Xeon", "cpu_count": 2}))
    assert set(answers) == {xeon}
    a = answers[xeon]
    assert a.study == "tuned" and a.winner.seeds == 5
    assert a.winner.low_s <= a.winner.seconds <= a.winner.high_s
    assert {name for name, _ in passed_over} == {"ci", "smoke-elsewhere"}
    assert all("smoke" in why for _, why in passed_over)


def test_an_old_scheme_study_with_direct_runs_does_not_answer():
    answers, passed_over = fastest_to_target(pd.DataFrame(_study("t", "Xeon", direct_s=0.2)))
    assert answers == {} and passed_over == [("t", "not a race (one seed's minimum, biased low)")]


# ------------------------------------------------------------------------- names, figures


def test_seconds_are_written_one_way():
    assert [format_seconds(x) for x in (None, float("nan"), 1234.5, 27.8, 0.0881, 16e-3,
                                        2.34e-5)] == [
        "—", "—", "1,234 s", "27.8 s", "88.1 ms", "16.0 ms", "23.4 µs"]


def test_variant_names_and_machine_names():
    assert [variant_name(B, 50_000) for B in (1, 20, 50_000)] == [
        "per-sample SGD", "minibatch SGD", "full-batch GD"]
    assert variant_name(1797, 1797) == "full-batch GD"   # the dataset's size decides
    gpu = study_machine({"machine_json": json.dumps(
        {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 16}), "gpu_name": "NVIDIA H200"})
    assert (gpu.slug, gpu.name) == ("nvidia-h200-intel-xeon-16c",
                                    "NVIDIA H200 (host Intel(R) Xeon(R) Processor, 16 CPUs)")
    assert describe("AMD EPYC", 2, memory_bytes=24 * 2**30) == "AMD EPYC, 2 CPUs, 24 GiB"


def test_no_two_series_of_a_figure_look_the_same():
    lines = ["numpy-cpu", "numpy-cpu batch-gather", "numpy-cpu mlp", "torch-cpu",
             "torch-cpu batch-gather", "torch-cpu mlp", "torch-cuda resident",
             "torch-cuda resident cuda-graph", "torch-cuda streamed", "torch-cuda resident mlp",
             "torch-cuda streamed+pinned", "numba-cpu"]
    colors = {"numpy-cpu": "g", "torch-cpu": "m", "torch-cuda": "b", "numba-cpu": "o"}
    styles = series_styles(lines, colors)
    looks = {(s["color"], str(s["ls"]), s["marker"]) for s in styles.values()}
    assert len(looks) == len(lines)


def test_the_report_imports_only_the_analysis():
    """``reports/`` renders: of ``bench`` it imports the analysis layer only (and, until the
    loaders are one, the study's loader)."""
    import ast

    allowed = ("bench.analysis", "bench.study.storage", "bench.cli", "bench.profiles")
    for path in (ROOT / "reports").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.split(".")[0] == "bench":
                    assert name.startswith(allowed), f"{path.name} imports {name}"


def test_moved_analysis_modules_import_with_a_warning():
    import importlib
    import sys

    import bench.analysis.targets

    for old in ("bench.targets", "bench.study.fit", "bench.study.summary"):
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match="moved to bench.analysis"):
            module = importlib.import_module(old)
        assert module.__name__.startswith("bench.analysis")
    assert sys.modules["bench.targets"] is bench.analysis.targets


def test_a_smoke_study_on_the_machine_gives_no_answer_end_to_end(tmp_path):
    from bench.study.storage import StudyStore

    store = StudyStore(tmp_path / "studies", "ci-small")
    for i, rec in enumerate(_study("ci-small", "AMD EPYC", direct_s=0.001, small=True)):
        rec.pop("study")
        store.put(rec.pop("record"), f"r{i}", [rec])
    epyc = sorted((ROOT / "results" / "cpu-amd-epyc-2c").glob("0008_*.json"))
    report = make_plots.build(epyc, tmp_path / "out", study_root=tmp_path / "studies")
    section = " ".join(_sections(report.read_text())["AMD EPYC, 2 CPUs"].split())
    assert "Fastest to the target: no answer for this machine" in section
    assert "1.00 ms" not in section
    page = " ".join((tmp_path / "out" / "machines" / "cpu-amd-epyc-2c.md").read_text().split())
    assert "`ci-small`](../studies/ci-small.md): does not answer — a --small smoke study" \
        in page


def test_a_noisy_point_does_not_set_the_scale():
    from reports.figures import _quiet_limits

    values = pd.Series([1.0, 2.0, 1000.0])
    noisy = pd.Series([False, False, True])
    lo, hi = _quiet_limits(values, noisy, log=True)
    assert lo < 1.0 and 2.0 < hi < 1000.0
    assert _quiet_limits(values, pd.Series([False] * 3), log=True) is None   # nothing noisy


def test_prose_wraps_and_tables_do_not():
    from reports.cells import wrap

    table = "| " + " | ".join(["cell"] * 40) + " |"
    text = wrap(f"{'word ' * 60}\n\n- {'item ' * 40}\n{table}")
    lines = text.splitlines()
    assert max(len(line) for line in lines if not line.startswith("|")) <= 100
    assert table in lines and any(line.startswith("  item") for line in lines)
