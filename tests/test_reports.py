"""make_plots.py end to end on small result files made here, and its error cases."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.analysis.views import epoch_seconds
from bench.harness import run
from bench.results import load_results
from bench.workload.config import RunConfig
from reports import make_plots
from tests.conftest import random_mnist

ROOT = Path(__file__).resolve().parents[1]
DATA = random_mnist()


def _bench(name, group, median, extra):
    return {"name": name, "fullname": f"bench/benchmarks/x.py::{name}", "group": group,
            "stats": {"median": median, "min": median, "max": median, "mean": median,
                      "rounds": 3, "iterations": 1}, "extra_info": extra}


def _epoch_entry(backend, B, epochs=2, target=None):
    variant = "sgd" if B == 1 else "full" if len(DATA.train) == B else "minibatch"
    cfg = RunConfig(backend=backend, variant=variant, batch_size=B if variant == "minibatch"
                    else None, max_epochs=epochs, target_error=target)
    r = run(cfg, DATA)
    info = r.to_dict()
    info.update({f"median_{k}": v for k, v in r.times.__dict__.items()})
    kind = "time_to_target" if target else "epoch"
    info.update(kind=kind, backend=backend, device="cpu", placement="n/a", pinned=False,
                variant=variant, seconds_per_epoch=r.times.total_s / r.epoch_equivalents)
    return _bench(f"test_{kind}[{backend}-cpu-B{B}]", f"{kind} B={B}", r.times.total_s, info)


def write_result(path: Path, backends=("numpy",), with_ttt=True) -> Path:
    benches = []
    for backend in backends:
        for B in (1, 16, len(DATA.train)):
            benches.append(_epoch_entry(backend, B))
            if with_ttt:
                benches.append(_epoch_entry(backend, B, epochs=5, target=0.5))
            benches.append(_bench(f"test_step[{backend}-cpu-B{B}]", f"step B={B}", 1e-5 * B,
                                  {"kind": "step", "backend": backend, "device": "cpu",
                                   "batch_size": B, "placement": "n/a", "pinned": False}))
    doc = {"machine_info": {"node": "testbox", "python_version": "3.11",
                            "gdbench": {"cpu_model": "Test CPU", "cpu_count": 2,
                                        "numpy": "2.x"}, "gdbench_profile": "test"},
           "commit_info": {"id": "0123456789abcdef"}, "datetime": "2026-11-27T00:00:00",
           "version": "5.2.3", "benchmarks": benches}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def pages(out: Path) -> str:
    """``report.md`` and then every machine's detail page, as one text."""
    return "\n".join(p.read_text() for p in [out / "report.md",
                                              *sorted((out / "machines").glob("*.md"))])


def machine_page(out: Path, name: str = "Test CPU") -> str:
    """The detail page of the machine whose title starts with ``name``."""
    return next(p.read_text() for p in sorted((out / "machines").glob("*.md"))
                if p.read_text().startswith(f"# {name}"))


def bullets(text: str) -> list[str]:
    """The markdown bullets of ``text``, each joined back into one line (pages wrap at 100)."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            out.append(line)
        elif line.startswith("  ") and out:
            out[-1] += " " + line.strip()
    return out


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    return write_result(tmp_path_factory.mktemp("res") / "m1" / "0001_x.json",
                        backends=("numpy", "torch"))


def test_report_with_every_figure_and_numbers_that_match(result_file, tmp_path):
    out = tmp_path / "out"
    assert make_plots.main([str(result_file), "--out", str(out)]) == 0
    report, page = (out / "report.md").read_text(), machine_page(out)
    for n in range(1, 7):
        assert list((out / "machines").glob(f"*/fig{n}_*.png")), f"figure {n} missing"
        assert re.search(rf"!\[[^\]]+\]\([\w-]+/fig{n}_\w+\.png\)", page)
    assert "### Test CPU, 2 CPUs" in report and "0123456789" in report
    assert "(machines/cpu-test-2c.md)" in report
    # no tuned study on this machine: one statement that says so, never the untuned benchmark
    section = " ".join(report.split("### Test CPU, 2 CPUs")[1].split("###")[0].split())
    assert "Fastest to the target: no answer for this machine" in section
    assert "50 % validation error" not in report
    assert "Fastest per-sample SGD epoch" in section and "Profile `test`" in section
    assert "## Findings" in page and "fastest epoch is" in page
    assert page.index("## Summary") < page.index("## Findings") < page.index("## Tables")
    summary = " ".join(bullets(page.split("## Summary")[1].split("## Findings")[0]))
    assert "The time-to-target benchmark (learning rate 0.13 at every B, not tuned per B" \
        in summary
    # a sample of table numbers against the DataFrame
    df = load_results(result_file)
    ep = df[df["kind"] == "epoch"]
    table = page.split("### Fixed-budget epochs")[1].split("###")[0]
    for _, row in ep.sample(3, random_state=0).iterrows():
        assert f"| {1e3 * row['seconds_per_epoch']:.2f} ± " in table, row["name"]
        assert f"{100 * row['final_valid_error']:.2f}" in table
    # every number in the summary names a row that is in its table
    for series, B in re.findall(r"\[Fixed-budget epochs: ([^,\]]+), B = (\d+)\]", summary):
        assert re.search(rf"\| {re.escape(series)}\s+\| {B}\s+\|", table), (series, B)
    assert "host→device per epoch (ms)" in table and "| n/a " in table  # CPU: not applicable
    assert "nan" not in pages(out).replace("finance", "")  # one spelling for missing values


def test_models_are_never_compared_with_each_other(tmp_path):
    f = write_result(tmp_path / "m" / "0001.json", backends=("numpy", "torch"), with_ttt=False)
    doc = json.loads(f.read_text())
    mlp = []
    for b in doc["benchmarks"]:
        if b["extra_info"].get("kind") == "epoch":
            c = json.loads(json.dumps(b))
            c["name"] = c["name"].replace("test_epoch", "test_epoch_mlp")
            c["stats"]["median"] /= 100   # "faster" than every softmax row: must not win
            c["extra_info"]["model"] = "mlp"
            for k in ("median_compute_s", "median_eval_s", "median_data_move_s"):
                c["extra_info"][k] = (c["extra_info"].get(k) or 0.0) / 100
            mlp.append(c)
    doc["benchmarks"] += mlp
    f.write_text(json.dumps(doc))
    assert make_plots.main([str(f), "--out", str(tmp_path / "o")]) == 0
    report = machine_page(tmp_path / "o")
    summary = report.split("## Summary")[1].split("## Findings")[0]
    lines = bullets(summary)
    assert any(line.startswith("- MLP: Fastest") for line in lines)
    for line in lines:
        assert ("mlp" in line.split("**")[1]) == line.startswith("- MLP:") \
            if "**" in line else True
    findings = report.split("## Findings")[1].split("## Machine and software")[0]
    for line in bullets(findings):
        if line.startswith("- At B"):
            assert " mlp" not in line
        if " mlp" in line:
            assert line.startswith("- MLP: ")


def test_missing_measurements_leave_a_note(tmp_path):
    f = write_result(tmp_path / "m" / "0001.json", with_ttt=False)
    assert make_plots.main([str(f), "--out", str(tmp_path / "o")]) == 0
    report = machine_page(tmp_path / "o")
    assert "*Time to the target error*: not drawn" in report
    assert (tmp_path / "o" / "machines" / "cpu-test-2c" / "fig1_epoch_time.png").is_file()


def test_compare_two_runs(result_file, tmp_path):
    other = write_result(tmp_path / "m2" / "0002.json", backends=("numpy",))
    assert make_plots.main([str(result_file), "--compare", str(other), "--out",
                            str(tmp_path / "o")]) == 0
    report = machine_page(tmp_path / "o")
    assert "## Comparison with the baseline run" in report
    assert "speed-up (baseline / this)" in report and "beyond the noise?" in report
    assert "test_epoch[numpy-cpu-B16]" in report.split("## Comparison")[1]


def test_a_difference_counts_only_beyond_the_noise():
    import pandas as pd

    from bench.analysis.stats import beyond_noise

    def row(median, iqr, data=None):
        return pd.Series({"stat_median": median, "stat_iqr": iqr, "stat_q1": median - iqr / 2,
                          "stat_q3": median + iqr / 2, "stat_data": data})

    assert beyond_noise(row(1.0, 0.1), row(2.0, 0.1)) == "yes (IQRs apart)"
    assert beyond_noise(row(1.0, 1.0), row(1.4, 1.0)) == "no (IQRs overlap)"
    fast, slow = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0], [2.0, 2.1, 1.9, 2.05, 1.95, 2.0]
    assert beyond_noise(row(1.0, 0.1, fast), row(2.0, 0.1, slow)).startswith(
        "yes (Mann–Whitney p = ")
    assert beyond_noise(row(1.0, 0.1, fast), row(1.0, 0.1, fast[::-1])).startswith("no (")


def test_noisy_rows_give_no_verdict(tmp_path):
    f = write_result(tmp_path / "m" / "0001.json", backends=("numpy", "torch"), with_ttt=False)
    doc = json.loads(f.read_text())
    for b in doc["benchmarks"]:
        b["stats"]["iqr"] = 0.9 * b["stats"]["median"]   # rounds all over the place
    f.write_text(json.dumps(doc))
    assert make_plots.main([str(f), "--out", str(tmp_path / "o")]) == 0
    report = pages(tmp_path / "o")
    assert "(too noisy to state a ratio)" in report
    assert "too noisy to rank" in report and "**noisy** (90 %)" in report
    assert re.search(r"Noise: \d+ of \d+ timed rows have an IQR above 50%", report)


def test_default_reads_newest_file_per_machine(tmp_path):
    old = write_result(tmp_path / "results" / "m1" / "0001.json")
    new = write_result(tmp_path / "results" / "m1" / "0002.json")
    doc = json.loads(new.read_text())
    doc["datetime"] = "2026-11-28T00:00:00"
    new.write_text(json.dumps(doc))
    assert make_plots.default_files(tmp_path / "results") == [new]
    assert old.exists()
    # a newer partial run (a -k selection) is passed over, and said to be
    partial = write_result(tmp_path / "results" / "m1" / "0003.json")
    doc = json.loads(partial.read_text())
    doc.update(datetime="2026-11-29T00:00:00",
               gdbench={"profile": "test", "complete": False, "incomplete_because": ["-k 'x'"]})
    partial.write_text(json.dumps(doc))
    assert make_plots.default_files(tmp_path / "results", quiet=True) == [new]
    assert make_plots.default_files(tmp_path / "results", profile="standard") == []


def test_errors(tmp_path, capsys):
    assert make_plots.main(["--results", str(tmp_path / "empty"), "--out",
                            str(tmp_path)]) == 2
    assert "no complete run under" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.warns(UserWarning, match="bad.json: skipped"):
        assert make_plots.main([str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "No gdbench benchmark results found" in capsys.readouterr().err
    assert make_plots.main([str(tmp_path / "nope.json")]) == 2


def test_runs_as_a_script(result_file, tmp_path):
    proc = subprocess.run([sys.executable, "reports/make_plots.py", str(result_file), "--out",
                           str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and (tmp_path / "s" / "report.md").is_file()


def test_reshuffle_finding_weighs_the_gather_against_the_copy_floor():
    import pandas as pd

    from reports.summary import reshuffle_findings

    def epoch(backend, order, move_s):
        return {"kind": "epoch", "device": "cpu", "backend": backend, "batch_size": 600,
                "cfg_order": order, "median_compute_s": 0.08, "median_h2d_s": None,
                "median_d2h_s": 0.0, "median_data_move_s": move_s, "steps": 166,
                "batches_per_epoch": 83, "epochs": 2}

    copy = {"kind": "floor", "floor": "copy_bandwidth", "bytes": 313.6e6, "gb_per_s": 19.6,
            "device": "cpu", "backend": "numpy"}
    df = pd.DataFrame([copy, epoch("numpy", "shuffle", 0.06), epoch("numpy", "in-order", 0.0),
                       epoch("numba", "shuffle", 0.002), epoch("numba", "in-order", 0.0)])
    (text,) = reshuffle_findings(df)
    assert "at best in 16.0 ms (the copy floor)" in text
    # numpy: 30 ms per epoch of gather = 1.9x the floor; 16 ms on a 40 ms epoch = 40 %
    assert "numpy: the gather takes 30.0 ms (1.9× the copy floor) against a 40.0 ms" in text
    assert "would still add 40 %" in text
    assert "numba reads the examples through the permutation (data movement 1.00 ms" in text
    assert reshuffle_findings(df[df["kind"] == "epoch"]) == []     # no floor: no sentence


def _with_gpu(path: Path, floors: bool = True) -> Path:
    """The result file at ``path`` plus GPU epochs (copies of a CPU epoch entry, moved to the
    device), the card's floors made from synthetic event times, and CPU floors."""
    from bench import gpu_floors as gf

    doc = json.loads(path.read_text())
    for B, kernel in ((16, "eager"), (16, "cuda-graph"), (1, "cuda-graph")):
        base = next(b for b in doc["benchmarks"] if b["name"] == f"test_epoch[numpy-cpu-B{B}]")
        g = json.loads(json.dumps(base))
        fast = "" if kernel == "eager" else f"-{kernel}"
        g["name"] = f"test_epoch[torch-cuda-B{B}-resident{fast}]"
        g["extra_info"].update(backend="torch", device="cuda", placement="resident",
                               kernel=kernel)
        doc["benchmarks"].append(g)
    cpu_floors = {"peak_matmul": {"gflop_per_s": 151.0, "flop_floor_epoch_s": 0.0104},
                  "read_bandwidth": {"gb_per_s": 14.0, "bandwidth_floor_epoch_s": 0.0112},
                  "copy_bandwidth": {"gb_per_s": 19.0, "bytes": 313.6e6}}
    for name, extra in cpu_floors.items():
        doc["benchmarks"].append(_bench(f"test_floor_{name}", "floor", 0.01, {
            "kind": "floor", "floor": name, "backend": "numpy", "device": "cpu", **extra}))
    specs = {"peak_matmul": ({"flop": 2.0 * 8192**3}, 0.044, 2),
             "read_bandwidth": ({"bytes_moved": 156.8e6}, 2e-3, 50),
             "launch_graph": ({}, 2.5e-3, 1000), "h2d_pinned": ({"bytes_moved": 156.8e6}, 3e-3, 1)}
    for name, (work, t, calls) in specs.items() if floors else ():
        rounds = [t * (1 + 0.01 * k) for k in range(10)]
        extra = gf.floor_fields(name, rounds, calls, **work)
        doc["benchmarks"].append(_bench(f"test_gpu_floor[{name}]", "floor", t, {
            "kind": "floor", "floor": name, "backend": "torch", "device": "cuda", **extra}))
    doc["machine_info"]["gdbench"]["gpu_name"] = "Test GPU"
    path.write_text(json.dumps(doc))
    return path


def test_gpu_rows_get_their_floor_columns_and_the_card_its_floors_table(tmp_path):
    from bench.analysis.targets import T_GPU_READ, T_GPU_SGD
    from bench.analysis.views import epochs

    f = _with_gpu(write_result(tmp_path / "m" / "0001.json", with_ttt=False))
    assert make_plots.main([str(f), "--out", str(tmp_path / "o")]) == 0
    report = pages(tmp_path / "o")
    assert "nan" not in report
    table = report.split("### Fixed-budget epochs")[1].split("###")[0]
    header = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    read_col = header.index("training ÷ GPU read floor")
    replay_col = header.index("training per step ÷ GPU graph replay")
    ep = epochs(load_results(f))
    train = epoch_seconds(ep, evaluation=False)
    for i, r in ep.iterrows():
        cells = [c.strip() for c in next(
            line for line in table.splitlines()
            if re.match(rf"\| \S+\s+\| {re.escape(r['series'])}\s+\| {int(r['batch_size'])} ",
                        line)).strip("|").split("|")]
        if r["device"] == "cpu":
            assert cells[read_col] == cells[replay_col] == "n/a"
        else:   # 50 reads in the fastest 2 ms round: 40 us a read; 2.5 us a replay
            read = train[i] / 40e-6
            assert cells[read_col] == (f"{read:,.0f}" if read >= 100 else f"{read:.1f}")
            per_step = train[i] / r["batches_per_epoch"] / 2.5e-6
            assert cells[replay_col] == (f"{per_step:,.0f}" if per_step >= 100
                                         else f"{per_step:.1f}")
    cpu_floors = report.split("### The machine's floors")[1].split("###")[0]
    assert "| 151.0 " in cpu_floors and "| 14.0 " in cpu_floors   # the CPU's, not the card's
    card = report.split("### The card's floors")[1].split("###")[0]
    assert re.search(r"\| Test GPU\s+\| read, training set \(GB/s\)\s+\| 3,920\.0\s+\| "
                     r"3,\d{3}\.\d ± \d+\.\d\s+\| 0\.040 ", card), card
    # rounds 1.00, 1.01, ... 1.09 x 2.5 us: median 2.61, IQR 4.5 x 0.025 = 0.11 (µs)
    assert re.search(r"\| CUDA graph replay, one kernel \(µs\)\s+\| 2\.50\s+\| 2\.61 ± "
                     r"0\.11\s+\| 125\.000 ", card), card
    assert re.search(r"peak float32 matrix product, TF32 off \(GFLOP/s\)\s+\| 49,978 ", card)
    targets = report.split("### Performance targets")[1].split("###")[0]
    assert T_GPU_READ not in targets  # no GPU rows at B = 5,000 or 50,000: no such target
    sgd = ep[(ep["device"] == "cuda") & (ep["batch_size"] == 1)]
    ratio = float(train[sgd.index[0]] / (3e-6 * sgd["batches_per_epoch"].iloc[0]))
    found = re.search(rf"\| {re.escape(T_GPU_SGD)}\s+\| torch-cuda resident cuda-graph B=1\s+\|"
                      r"[^|]+\|[^|]+\| ([\d.]+)\s+\| 1\.0 ", targets)
    assert found and float(found.group(1)) == pytest.approx(ratio, abs=0.0051), targets
    row = next(line for line in targets.splitlines() if T_GPU_SGD in line)
    assert "fixed budget" in row and "separate benchmarks" not in row   # the budget
    # without the card's floors: the columns say not measured, and no floors table
    g = _with_gpu(write_result(tmp_path / "n" / "0001.json", with_ttt=False), floors=False)
    assert make_plots.main([str(g), "--out", str(tmp_path / "p")]) == 0
    report = pages(tmp_path / "p")
    assert "training ÷ GPU read floor" in report and "### The card's floors" not in report


def test_a_cpu_report_has_no_gpu_columns(result_file, tmp_path):
    assert make_plots.main([str(result_file), "--out", str(tmp_path / "o")]) == 0
    report = pages(tmp_path / "o")
    assert "GPU read floor" not in report and "graph replay" not in report
    assert "The card's floors" not in report
