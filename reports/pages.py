"""The report's pages: ``report.md`` (the answer per machine, at most six figures, links) and
the detail pages beside it, ``machines/<machine>.md`` and ``studies/<study>.md``, which hold the
long tables. Everything shown comes from ``bench.analysis``; this module only lays it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from bench.analysis.answer import Contender, FastestToTarget
from bench.analysis.machines import Machine
from bench.analysis.names import dataset_phrase, format_seconds
from reports import distributed, study, summary, tables
from reports.cells import wrap

__all__ = ["MAX_FIGURES", "MachinePage", "answer_line", "headline_rows", "machine_page", "report",
           "study_page"]

#: The most figures ``report.md`` shows (the rest are on the detail pages).
MAX_FIGURES = 6

def intro(datasets: list[str]) -> str:
    """What the report is about: the models, the datasets its runs trained on (with their
    splits), the variants, and where times and the answer come from."""
    data = "; ".join(dataset_phrase(d) for d in datasets) or dataset_phrase(None)
    return (f"Softmax regression and a one-hidden-layer MLP on {data}, mean NLL, trained by "
            "minibatch SGD: B = 1 is per-sample SGD, B = the whole training set full-batch "
            "GD. Benchmark times are medians over rounds, warm-up excluded (± the rounds' "
            "interquartile range); the answer per machine comes only from a fair race (each B at "
            "the rate its search seeds chose, measured on held-out seeds).")


@dataclass
class MachinePage:
    """What one machine's section and detail page show: its benchmark rows (possibly none), its
    studies, its answer (None: no tuned study), its figures ``(caption, path relative to the
    report folder)`` and why each study that does not answer does not (``why_not``)."""

    machine: Machine
    rows: pd.DataFrame
    studies: list[str] = field(default_factory=list)
    answer: FastestToTarget | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)
    why_not: dict[str, str] = field(default_factory=dict)

    @property
    def link(self) -> str:
        return f"machines/{self.machine.slug}.md"


def _contender(c: Contender) -> str:
    high = format_seconds(c.high_s) if math.isfinite(c.high_s) else "not reached"
    return (f"{c.variant} (B = {c.batch_size:,}, `{c.spec}`) in {format_seconds(c.seconds)} "
            f"[{format_seconds(c.low_s)}–{high}]")


def answer_line(page: MachinePage) -> str:
    """The machine's one "fastest to the target" statement: one winner only when its interval
    is clear of every other B's, else the tie; with its uncertainty, definition and source."""
    a = page.answer
    if a is None:
        why = ("no batch-size study ran here" if not page.studies else
               "; ".join(f"study `{s}`: {w}" for s, w in sorted(page.why_not.items()))
               or "none of its studies is a fair race (see the detail page)")
        return (f"**Fastest to the target: no answer for this machine** — {why}. Run "
                "`python -m bench.study` (search and held-out seeds) on it.")
    target = f"validation error ≤ {100 * a.target_error:.1f} %"
    if a.tied:
        head = f"**Fastest to {target}: no single winner** — {a.verdict.statement}"
    else:
        head = f"**Fastest to {target}: {_contender(a.winner)}**, clear of every other B."
    others = "".join(f" Race [`{o.study}`](studies/{o.study}.md) (validation error ≤ "
                     f"{100 * o.target_error:.1f} %, commit `{o.commit}`): "
                     + (f"no single winner — {o.verdict.statement}" if o.tied else
                        f"{_contender(o.winner)}, clear of every other B.")
                     for o in a.others)
    return (f"{head} Time-to-target {a.how} (median [95 % bootstrap interval] over "
            f"{a.winner.seeds} held-out seeds and the timing repeats); steps-to-target is the "
            "first passage (the first check at or below the target: the best checkpoint, "
            f"which early stopping keeps). Study [`{a.study}`](studies/{a.study}.md), commit "
            f"`{a.commit}`.{others}")


def _run_lines(rows: pd.DataFrame) -> list[str]:
    return [f"Benchmark run: {summary.run_line(sub)}" for _, sub in rows.groupby("file",
                                                                                  sort=False)]


def headline_rows(page: MachinePage) -> pd.DataFrame:
    """The rows the report's section summarises: a GPU machine's GPU rows only (its host CPU's
    rows stay on the detail page)."""
    rows = page.rows
    if page.machine.gpu and "device" in rows:
        rows = rows[rows["device"].fillna("cpu") != "cpu"]
    return rows


def report(pages: list[MachinePage], command: str, files: list[str],
           passed_over: list[tuple[str, str]], study_names: list[str]) -> str:
    """``report.md``: per machine its answer and headline, at most ``MAX_FIGURES`` figures, then
    the links to the detail pages."""
    datasets = sorted({d for page in pages if "dataset" in page.rows
                       for d in page.rows["dataset"].dropna()})
    lines = ["# gdbench report", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}`.", "",
             intro(datasets), "", "## The answer per machine", ""]
    for page in pages:
        lines += [f"### {page.machine.name}", "", answer_line(page), ""]
        rows = headline_rows(page)
        if len(rows):
            lines += [*_run_lines(rows), ""]
            found = summary.summary(rows, untuned_ttt=False)
            lines += [f"- {s}" for s in found if not s.startswith("What moving the data")]
            lines.append("")
        lines += [f"Details: [{page.link}]({page.link}).", ""]
    shown = [(page, f) for page in pages for f in page.figures[:3]][:MAX_FIGURES]
    if shown:
        lines += ["## Figures", ""]
        for page, (caption, path) in shown:
            lines += [f"**{page.machine.name}: {caption}**", "", f"![{caption}]({path})", ""]
    lines += ["## Detail pages", ""]
    lines += [f"- [{p.machine.name}]({p.link}): its runs, findings, figures and tables"
              for p in pages]
    lines += [f"- [Study `{s}`](studies/{s}.md)" for s in study_names]
    stated = {name for page in pages for name in page.why_not if page.answer is None}
    for name, why in passed_over:
        if name not in stated:      # a machine's answer line already says why
            lines.append(f"- Study `{name}` does not answer which variant is fastest: {why}.")
    lines += ["", "Result files read:", "", *[f"- `{f}`" for f in files],
              "- the batch-size studies under `results/study/`", ""]
    return wrap("\n".join(lines))


def machine_page(page: MachinePage, study_df: pd.DataFrame | None,
                 figures: list[tuple[str, str | None]],
                 given_steps: dict | None, compare: pd.DataFrame | None) -> str:
    """``machines/<machine>.md``: runs, summary, findings, figures, studies, data parallelism,
    tables and the baseline comparison of one machine. ``figures``: paths relative to it (None:
    not drawn)."""
    rows = page.rows
    lines = [f"# {page.machine.name}", "", "[← the report](../report.md)", "",
             answer_line(page).replace("](studies/", "](../studies/"), ""]
    if len(rows):
        lines += [*_run_lines(rows), "", "## Summary", ""]
        lines += [f"- {s}" for s in summary.summary(rows)] + ["", "## Findings", ""]
        lines += [f"- {s}" for s in summary.findings(rows)] or ["- (none)"]
        lines += ["", "## Machine and software", "", tables.machine_table(rows), ""]
    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures:
            lines += ([f"**{caption}**", "", f"![{caption}]({path})", ""] if path else
                      [f"- *{caption}*: not drawn — these results lack the measurements it "
                       "needs.", ""])
    if page.studies:
        lines += ["## Studies on this machine", ""]
        lines += [f"- [`{s}`](../studies/{s}.md)" + (f": does not answer — {page.why_not[s]}"
                                                     if s in page.why_not else "")
                  for s in page.studies] + [""]
        if study_df is not None:
            lines += study.optimizer_axis(study_df[study_df["study"].isin(page.studies)])
    if len(rows) and distributed.has_rows(rows):
        lines += [distributed.section(rows, given_steps=given_steps).rstrip(), ""]
    if len(rows):
        lines += ["## Tables", "", tables.legend(), ""]
        for title, table in tables.tables(rows).items():
            lines += [f"### {title}", "", table, ""]
    if compare is not None and len(rows):
        table = tables.comparison_table(rows, compare)
        lines += ["## Comparison with the baseline run", ""]
        lines += tables.comparison_header(rows, compare) if table else []
        lines += [table or "No benchmark appears in both result sets.", ""]
    return wrap("\n".join(lines))


def study_page(study_df: pd.DataFrame, name: str, machine: Machine,
               figures: list[tuple[str, str]]) -> str:
    """``studies/<study>.md``: the study's fit, noise scale, per-B table and time-to-target
    (``reports.study.section``) and its figures (paths relative to the page)."""
    one = study_df[study_df["study"] == name]
    lines = [f"# Study `{name}` — {machine.name}", "", "[← the report](../report.md)", "",
             study.section(one).rstrip(), ""]
    for caption, path in figures:
        lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
    return wrap("\n".join(lines))
