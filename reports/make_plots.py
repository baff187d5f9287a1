"""Turn benchmark results into seaborn figures and a markdown report.

    python reports/make_plots.py                      # newest complete run of each machine
    python reports/make_plots.py --profile standard   # ... of that profile only
    python reports/make_plots.py FILE [FILE ...]      # these result files (partial ones named)
    python reports/make_plots.py --compare OLD.json   # plus a table of speed-ups vs a baseline
    python reports/make_plots.py --out DIR            # write elsewhere (default: reports/)
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench import cli  # noqa: E402
from bench.profiles import PROFILES  # noqa: E402
from bench.results import load_results, select_runs  # noqa: E402
from bench.study.storage import load_study  # noqa: E402
from reports import distributed, figures, markdown, study  # noqa: E402

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


def build(files: list[Path], out: Path, compare: list[Path] | None = None,
          command: str = "python reports/make_plots.py",
          study_root: Path | None = ROOT / "results" / "study") -> Path:
    """Write the figures and the report into ``out``; return the report's path. The
    batch-size study (``study_root``, none when None) opens the summary with its answer and
    gives the data-parallel projection its steps-to-target curve."""
    df = load_results(files)
    if df.empty or "kind" not in df:
        raise ReportError(
            "No gdbench benchmark results found in " + ", ".join(map(str, files)) + ". Run "
            "`pytest --benchmark-only` first (it saves into results/), or name result files.")
    out.mkdir(parents=True, exist_ok=True)
    colors = figures.palette(df)
    drawn = []
    for title, make in figures.FIGURES:
        path = make(df, out, colors)
        drawn.append((title, path.name if path is not None else None))
    study_df = load_study(study_root) if study_root is not None else None
    answers, sections = [], []
    given_steps = None
    if study_df is not None and not study_df.empty:
        answers.append(study.answer(study_df))
        sections.append(study.section(study_df))
        drawn += [(title, path.name) for title, path in study.figures(study_df, out)]
        given_steps = study.steps_curve(study_df)
    if distributed.has_rows(df):
        sections.append(distributed.section(df, given_steps=given_steps))
        drawn += [(title, path.name) for title, path in
                  distributed.figures(df, out, given_steps=given_steps)]
    baseline = load_results(compare) if compare else None
    rel = [str(Path(f).resolve().relative_to(ROOT)) if Path(f).resolve().is_relative_to(ROOT)
           else str(f) for f in files]
    report = out / REPORT_NAME
    report.write_text(markdown.render(df, drawn, command, rel, baseline, answers, sections))
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
        report = build(files, args.out, args.compare, command)
    except ReportError as exc:
        print(f"make_plots: {exc}", file=sys.stderr)
        return 2
    print(f"make_plots: wrote {report} and its figures in {report.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
