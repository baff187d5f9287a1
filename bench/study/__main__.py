"""``python -m bench.study``: run (or complete) the fair race and print its summary; with
``--timing-only``, only time per step on this machine (e.g. a GPU), composed with the S(B) of
a stored study (``--steps-from``). The options: ``bench.study.cli``.

Only ``bench.cli`` is imported before the interrupt and error handling start, so that a
Ctrl-C even while the libraries load ends in one line."""

from __future__ import annotations

import signal
import sys

from bench import cli


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.study``; its exit status (one-line errors: ``bench.cli``)."""
    def run(args: list[str]) -> int:
        with cli.interrupts_deferred():   # while the libraries' extensions load
            from bench.study.cli import main as study_main
        return study_main(args)
    return cli.run(run, argv, prog="python -m bench.study")


if __name__ == "__main__":
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the run is over: a late Ctrl-C changes nothing
    sys.exit(status)
