"""Turn benchmark results and the batch-size study into a markdown report with detail pages
and seaborn figures.

    python reports/make_plots.py                      # newest complete run of each machine
    python reports/make_plots.py --profile standard   # ... of that profile only
    python reports/make_plots.py FILE [FILE ...]      # these result files (partial ones named)
    python reports/make_plots.py --compare OLD.json   # plus a table of speed-ups vs a baseline
    python reports/make_plots.py --out DIR            # write elsewhere (default: reports/)
    python reports/make_plots.py --studies DIR        # the study store (default: results/study/)
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import bench.cli as cli  # noqa: E402
from bench.analysis import load_results, select_runs  # noqa: E402
from bench.analysis.answer import fastest_to_target  # noqa: E402
from bench.analysis.machines import Machine, bench_machines, study_machine  # noqa: E402
from bench.analysis.parallel import study_steps  # noqa: E402
from bench.analysis.study import context, records, studies  # noqa: E402
from bench.profiles import PROFILES  # noqa: E402
from bench.study.storage import load_study  # noqa: E402
from reports import distributed, figures, pages, study_figures, styles  # noqa: E402

REPORT_NAME = "report.md"
PROFILE_NAMES = sorted(PROFILES)


class ReportError(RuntimeError):
    """Nothing to report on; the message says how to produce results."""


def default_files(results: Path, profile: str | None = None, quiet: bool = False) -> list[Path]:
    """The newest complete run of each machine folder under ``results`` (of ``profile`` when
    given); the files passed over are listed on stderr with the reason."""
    chosen, passed_over = select_runs(results, profile)
    if not quiet:
        for line in passed_over:
            print(f"make_plots: {line}", file=sys.stderr)
    return chosen


def _relative(files: list[Path]) -> list[str]:
    return [str(Path(f).resolve().relative_to(ROOT)) if Path(f).resolve().is_relative_to(ROOT)
            else str(f) for f in files]


def _study_machines(study_df: pd.DataFrame) -> dict[Machine, list[str]]:
    """The studies (with trials, or GPU timing) run on each machine."""
    timing = records(study_df, "timing")
    names = set(studies(study_df)) | (set(timing["study"]) if not timing.empty else set())
    out: dict[Machine, list[str]] = {}
    for name in sorted(names):
        out.setdefault(study_machine(context(study_df, name)), []).append(name)
    return out


def _fresh(folder: Path) -> Path:
    """``folder``, emptied of the pages and figures of an earlier build."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def build(files: list[Path], out: Path, compare: list[Path] | None = None,
          command: str = "python reports/make_plots.py",
          study_root: Path | None = ROOT / "results" / "study") -> Path:
    """Write ``report.md``, the detail pages (``machines/``, ``studies/``) and their figures
    into ``out``; return the report's path. The batch-size study (``study_root``, none when
    None) gives each machine its answer and the data-parallel projection its S(B)."""
    df = load_results(files)
    if df.empty or "kind" not in df:
        raise ReportError(
            "No gdbench benchmark results found in " + ", ".join(map(str, files)) + ". Run "
            "`pytest --benchmark-only` first (it saves into results/), or name result files.")
    out.mkdir(parents=True, exist_ok=True)
    machines_dir, studies_dir = _fresh(out / "machines"), _fresh(out / "studies")
    study_df = load_study(study_root) if study_root is not None else pd.DataFrame()
    answers, passed_over = fastest_to_target(study_df)
    given_steps = study_steps(study_df)
    on = _study_machines(study_df)
    owner = {name: m for m, names in on.items() for name in names}
    of_study = {}
    for name in owner:
        one = study_df[study_df["study"] == name]
        of_study[name] = [(caption, f"{name}/{path.name}") for caption, path
                          in study_figures.figures(one, studies_dir / name)]
        (studies_dir / f"{name}.md").write_text(pages.study_page(study_df, name, owner[name],
                                                                 of_study[name]))
    machine_of = bench_machines(df)
    colors = styles.palette(df)
    baseline = load_results(compare) if compare else None
    made = []
    for machine in sorted(set(machine_of) | set(on)):
        rows = df[machine_of == machine] if len(df) else df
        page = pages.MachinePage(machine, rows, on.get(machine, []), answers.get(machine),
                                 why_not={s: w for s, w in passed_over
                                          if s in on.get(machine, [])})
        folder = machines_dir / machine.slug
        drawn = []
        if len(rows):
            folder.mkdir(exist_ok=True)
            shown = pages.headline_rows(page)   # a GPU machine's figures: its GPU rows
            drawn = [(title, make(shown, folder, colors)) for title, make in figures.FIGURES]
            if distributed.has_rows(rows):
                drawn += distributed.figures(rows, folder, given_steps=given_steps)
        local = [(title, path and f"{machine.slug}/{path.name}") for title, path in drawn]
        if page.answer is not None:
            page.figures += [(f"{c} (study `{page.answer.study}`)", f"studies/{p}")
                             for c, p in of_study[page.answer.study]
                             if c in study_figures.HEADLINE_FIGURES]
        runs = ", ".join(f"`{Path(f).name[:4]}`" for f in rows["file"].unique()) if len(rows) \
            else ""
        page.figures += [(f"{c} (benchmark run {runs})", f"machines/{p}") for c, p in local
                         if p is not None and c in figures.HEADLINE_FIGURES]
        (machines_dir / f"{machine.slug}.md").write_text(
            pages.machine_page(page, study_df, local, given_steps, baseline))
        made.append(page)
    report = out / REPORT_NAME
    report.write_text(pages.report(made, command, _relative(files), passed_over, sorted(owner)))
    return report


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[Path]]:
    """The validated arguments and the result files to report on (a one-line usage error,
    ``bench.cli``, for a bad argument); draws nothing."""
    parser = cli.ArgumentParser(prog="python reports/make_plots.py", description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="result JSON files (default: the "
                        "newest of each machine under --results)")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder searched when no files are named (default: results/)")
    parser.add_argument("--profile", type=cli.choice(PROFILE_NAMES), default=None,
                        help="with no files named: use only runs of this benchmark profile "
                        "(quick, standard, gpu, full)")
    parser.add_argument("--compare", nargs="+", type=Path, help="baseline result files")
    parser.add_argument("--out", type=Path, default=ROOT / "reports",
                        help="output folder (default: reports/)")
    parser.add_argument("--studies", type=Path, default=ROOT / "results" / "study",
                        help="the batch-size studies' store, which answers per machine "
                        "(default: results/study/)")
    args = parser.parse_args(argv)
    if args.files and (args.results is not None or args.profile is not None):
        option, value = ("--results", str(args.results)) if args.results is not None else (
            "--profile", args.profile)
        parser.refuse(option, value, "chooses runs when no files are named; drop it or the "
                      "files")
    args.results = args.results or ROOT / "results"
    if args.results.exists() and not args.results.is_dir():
        parser.refuse("--results", str(args.results), "must be a folder of result files")
    for option, paths in (("files", args.files), ("--compare", args.compare or [])):
        for f in paths:
            if not f.is_file():
                parser.refuse(option, str(f), "no such file (name pytest-benchmark JSON files)")
    if args.out.exists() and not args.out.is_dir():
        parser.refuse("--out", str(args.out), "must be a folder (or not exist yet), not a file")
    files = args.files or default_files(args.results, args.profile)
    return args, files


def main(argv: list[str] | None = None) -> int:
    """``python reports/make_plots.py``; its exit status (one-line errors: ``bench.cli``)."""
    return cli.run(_main, argv, prog="python reports/make_plots.py")


def _main(argv: list[str] | None = None) -> int:
    args, files = parse(argv)
    if not files:
        which = f" of the {args.profile!r} profile" if args.profile else ""
        print(f"make_plots: no complete run{which} under {args.results}. Run `pytest "
              "--benchmark-only` first (it saves into results/), or name result files.",
              file=sys.stderr)
        return 2
    command = "python reports/make_plots.py" + (" " + shlex.join(argv) if argv else "")
    try:
        report = build(files, args.out, args.compare, command, args.studies)
    except ReportError as exc:
        print(f"make_plots: {exc}", file=sys.stderr)
        return 2
    print(f"make_plots: wrote {report} and its figures in {report.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
