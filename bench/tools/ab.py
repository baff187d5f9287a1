"""Paired A/B timing of two revisions of this project on this machine: is the new code slower?

    python -m bench.tools.ab 1b047b2                       # HEAD's working tree vs revision 1b047b2
    python -m bench.tools.ab 1b047b2 --rounds 11 --cases numpy-cpu-B1 torch-cpu-B20-in-order

Each side runs in its own long-lived process (the old revision exported with ``git archive``
into a temporary folder), with the data loaded and the trainers placed once. For every case the
two processes then take turns, one epoch each (training time: ``RunResult.train_epoch_s``),
alternating who goes first, so a machine's drift hits both sides alike. A case's verdict is the
median of the per-round ratios new / old with a bootstrap 95 % confidence interval
(``scipy.stats.bootstrap``): "slower" only when the whole interval lies above 1 + tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bench import cli

ROOT = Path(__file__).resolve().parents[2]

#: The CPU epochs of the standard profile's grid (softmax regression), shuffled unless named.
DEFAULT_CASES = tuple(
    [f"{b}-cpu-B{B}" for b in ("numpy", "torch", "numba")
     for B in (1, 10, 20, 50, 100, 200, 600, 1000, 5000, 50_000)]
    + [f"{b}-cpu-B{B}-in-order" for b in ("numpy", "torch") for B in (600, 1000, 5000, 50_000)])

#: The worker: one epoch per request, in any layout the project has had (bench/, bench/spec/,
#: bench/workload/). Self-contained, as an old revision lacks it.
WORKER = r"""
import importlib, json, sys
for pkg in ("bench.workload.", "bench.spec.", "bench."):
    try:
        RunConfig = importlib.import_module(pkg + "config").RunConfig
        load_mnist = importlib.import_module(pkg + "mnist").load_mnist
        break
    except ImportError:
        continue
from bench.harness import prepare, reset, train
data, pool = load_mnist(), {}
for line in sys.stdin:
    req = json.loads(line)
    B = req["batch_size"]
    variant = "sgd" if B == 1 else ("full" if B >= 50000 else "minibatch")
    cfg = RunConfig(backend=req["backend"], variant=variant, order=req["order"],
                    batch_size=B if variant == "minibatch" else None, max_epochs=1)
    key = req["backend"]
    if key not in pool:
        pool[key] = prepare(cfg, data)
    trainer, upload_s = pool[key]
    reset(trainer, cfg)
    print(json.dumps({"seconds": train(trainer, cfg, upload_s).train_epoch_s}), flush=True)
"""


@dataclass(frozen=True)
class ABCase:
    backend: str
    batch_size: int
    order: str = "shuffle"

    @classmethod
    def parse(cls, text: str) -> ABCase:
        """``backend-cpu-B<size>[-in-order]``, as the benchmark ids name CPU epochs."""
        from impls.registry import BACKENDS

        parts = text.split("-")
        try:
            backend, device, size = parts[0], parts[1], parts[2]
            if device != "cpu" or not size.startswith("B"):
                raise ValueError
            order = "in-order" if text.endswith("-in-order") else "shuffle"
            if backend not in BACKENDS or int(size[1:]) < 1 or len(parts) > 3 + (
                    order == "in-order") * 2:
                raise ValueError
            return cls(backend, int(size[1:]), order)
        except (IndexError, ValueError):
            raise cli.UsageError("--cases", text, "write a case as backend-cpu-B<size> or "
                                 "backend-cpu-B<size>-in-order (a known backend, size >= 1), "
                                 "e.g. numpy-cpu-B600-in-order"
                                 ) from None


class Worker:
    """A long-lived process running epochs of one source tree."""

    def __init__(self, tree: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def epoch(self, case: ABCase) -> float:
        self.proc.stdin.write(json.dumps(case.__dict__) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.tools.ab: a worker died running {case}; run that epoch "
                               "alone to see its error.")
        return float(json.loads(line)["seconds"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def resolve(rev: str) -> str:
    """The commit id of revision ``rev``; a ``cli.UsageError`` with git's own message when
    there is none (``rev`` is never read as an option of git)."""
    if not rev or rev.startswith("-"):
        raise cli.UsageError("old", rev, "a revision (commit, tag or branch), not an option")
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options",
                           f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        why = " ".join(done.stderr.split()) or "git knows no such commit here"
        raise cli.UsageError("old", rev, f"not a commit of this repository ({why}); see "
                             "`git log --oneline`")
    return done.stdout.strip()


def export(rev: str, into: Path) -> Path:
    """The files of commit ``rev`` (``git archive``; resolve a revision first) in ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT,
                             capture_output=True, check=True).stdout
    tar_path = into / "rev.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


#: Pause between the two sides' epochs: OpenBLAS's idle workers spin about 0.1 s after a call,
#: and on 2 cores the other process's spinning threads slowed the next epoch (bimodal rounds).
SETTLE_S = 0.25


def compare(old: Worker, new: Worker, case: ABCase, rounds: int) -> dict:
    """Warm both up, then ``rounds`` paired epochs; the per-round ratios new / old."""
    def turn(worker: Worker) -> float:
        seconds = worker.epoch(case)
        time.sleep(SETTLE_S)
        return seconds

    turn(old), turn(new)
    pairs = []
    for k in range(rounds):
        if k % 2:
            n, o = turn(new), turn(old)
        else:
            o, n = turn(old), turn(new)
        pairs.append((o, n))
    o, n = np.array(pairs).T
    ratio = n / o
    ci = stats.bootstrap((ratio,), np.median, confidence_level=0.95, n_resamples=2000,
                         method="percentile", random_state=0).confidence_interval
    return {"old_s": float(np.median(o)), "new_s": float(np.median(n)),
            "ratio": float(np.median(ratio)), "ci_low": float(ci.low), "ci_high": float(ci.high),
            "iqr": float(np.subtract(*np.percentile(ratio, [75, 25])))}


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m bench.tools.ab", description=__doc__)
    parser.add_argument("old", help="the revision to compare with (a commit, tag or branch)")
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    parser.add_argument("--rounds", type=cli.int_in(1, 10_000), default=9)
    parser.add_argument("--tolerance", type=cli.float_in(0, 10), default=0.05,
                        help="a ratio up to 1 + tolerance is not called slower (default 0.05)")
    parser.add_argument("--json", type=Path, help="also write the table here (one JSON line)")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The validated arguments (cases parsed, the revision known to git); runs nothing."""
    args = _parser().parse_args(argv)
    for c in args.cases:
        ABCase.parse(c)
    if args.json is not None and args.json.is_dir():
        raise cli.UsageError("--json", str(args.json), "a file to write, not a folder")
    resolve(args.old)
    return args


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.tools.ab``; its exit status (one-line errors: ``bench.cli``)."""
    return cli.run(_main, argv, prog="python -m bench.tools.ab")


def _main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cases = [ABCase.parse(c) for c in args.cases]
    old_commit = resolve(args.old)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Worker(export(old_commit, Path(tmp))), Worker(ROOT)
        try:
            for case in cases:
                r = {"case": f"{case.backend}-cpu-B{case.batch_size}"
                     + ("-in-order" if case.order == "in-order" else ""),
                     **compare(old, new, case, args.rounds)}
                r["verdict"] = ("slower" if r["ci_low"] > 1 + args.tolerance else
                                "faster" if r["ci_high"] < 1 else "same within noise")
                rows.append(r)
                print(f"{r['case']:28s} old {r['old_s'] * 1e3:9.2f} ms  new "
                      f"{r['new_s'] * 1e3:9.2f} ms  new/old {r['ratio']:.3f} "
                      f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]  {r['verdict']}", flush=True)
        finally:
            old.close()
            new.close()
    new_rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True).stdout.strip())
    summary = {"old": args.old, "new": new_rev + (" with uncommitted changes" if dirty else ""),
               "rounds": args.rounds, "load_before": load_before,
               "load_after": os.getloadavg(), "cpu_count": os.cpu_count(), "cases": rows}
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} CPUs)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
