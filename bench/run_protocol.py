"""Run a named protocol (``bench.workload.protocols``) to completion and record what it reached.

    python -m bench.run_protocol mlp --backend torch          # the tutorial's MLP, ~1,000 epochs
    python -m bench.run_protocol tutorial --backend numpy     # logistic_sgd.py, 74 epochs

Prints one line per validation (epoch, steps, validation error, wall time) and appends one JSON
record (the run's result, what the source published, the machine, the commit) to
``results/protocols/<name>.jsonl``, written whole or not at all.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import cli
from bench.harness import CurvePoint, prepare, train
from bench.machine import describe_machine
from bench.workload.config import RunConfig
from bench.workload.datasets import DATASETS
from bench.workload.protocols import PROTOCOLS, PUBLISHED, protocol

ROOT = Path(__file__).resolve().parents[1]


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line to ``path`` atomically: the old content plus the new line is
    written to a temporary file that replaces it, so an interrupt leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(old + json.dumps(record, default=str) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def parse(argv: list[str] | None = None) -> tuple[str, RunConfig, Path]:
    """(protocol name, its validated configuration, output folder); a one-line usage error
    (``bench.cli``) for a bad argument. Runs nothing."""
    parser = cli.ArgumentParser(prog="python -m bench.run_protocol", description=__doc__)
    parser.add_argument("name", type=cli.choice(sorted(PROTOCOLS), "a protocol:"))
    parser.add_argument("--backend", default=None, help="backend (default: the protocol's)")
    parser.add_argument("--dtype", default=None, help="dtype (default: the protocol's)")
    parser.add_argument("--max-epochs", type=cli.int_in(1, 10**6), default=None)
    parser.add_argument("--dataset", default=None, type=cli.choice(tuple(DATASETS)),
                        help="dataset (default: the protocol's; on another one its pixels "
                             "are scaled the dataset's way and nothing was published)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "protocols")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.refuse("--out", str(args.out), "must be a folder (or not exist yet), not a file")
    overrides = {k: v for k, v in (("backend", args.backend), ("dtype", args.dtype),
                                   ("max_epochs", args.max_epochs)) if v is not None}
    if args.dataset is not None and args.dataset != PROTOCOLS[args.name].dataset:
        overrides.update(dataset=args.dataset, pixel_scale=None)
    return args.name, protocol(args.name, **overrides), args.out   # ConfigError: one line


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.run_protocol``; its exit status (one-line errors: ``bench.cli``)."""
    return cli.run(_main, argv, prog="python -m bench.run_protocol")


def _main(argv: list[str] | None = None) -> int:
    name, config, out_dir = parse(argv)
    started = datetime.now(timezone.utc)

    def show(p: CurvePoint) -> None:
        print(f"epoch {p.epoch:4d}  steps {p.steps:8d}  valid error {100 * p.valid_error:7.4f} %"
              f"  train NLL {p.train_nll:.5f}  {p.wall_s / 60:6.1f} min", flush=True)

    trainer, upload_s = prepare(config)
    result = train(trainer, config, upload_s, on_validation=show)
    record = {"protocol": name, "started": started.isoformat(),
              "published": PUBLISHED.get(name) if config.dataset ==
              PROTOCOLS[name].dataset else None, "result": result.to_dict(),
              "machine": describe_machine(), "load_after": os.getloadavg()}
    out = out_dir / f"{name}.jsonl"
    append_record(out, record)
    print(f"{name}: best validation error {100 * result.best_valid_error:.6f} %, test "
          f"error at the best {100 * result.test_error_at_best:.6f} % (epoch "
          f"{result.best_epoch}), {result.epochs} epochs, {result.times.total_s / 60:.1f} min; "
          f"recorded in {out}")
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
