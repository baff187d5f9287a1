"""The one way gdbench's command-line entry points meet bad input and interrupts.

Every entry point (``bench.study``, ``bench.run_protocol``, ``bench.tools.ab``,
``bench.distributed``, ``reports/make_plots.py``) parses with ``ArgumentParser`` and runs its
``main`` through ``run``:

* a bad argument ends in **one line** on stderr, exit status 2: the option, the value and what
  is allowed (``UsageError``, argparse's own errors, and the validation errors of the
  configuration and the data loader, which name the field, the value and the valid set);
* a ``Failure`` (a lock held by another run, a worker that died...) ends in one line, exit
  status 1;
* Ctrl-C ends in one line, exit status 130;
* ``--debug`` (every entry point has it) or ``GDBENCH_DEBUG=1`` shows the traceback instead.

Validation is written once per option as a ``type=`` function (``int_in``, ``ints_in``,
``float_in``, ``choice``): a new option declares its allowed values where it is added.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

__all__ = ["DEBUG_ENV", "ArgumentParser", "Failure", "UsageError", "choice", "float_in", "int_in",
           "interrupts_deferred", "ints_in", "run"]

#: Set to 1 to see the traceback of an error the entry points otherwise report in one line.
DEBUG_ENV = "GDBENCH_DEBUG"


class Failure(RuntimeError):
    """A failure whose message says it all (what happened, what to do): reported in one line,
    exit status 1 (e.g. a study's lock held by another run, a worker that died)."""


class UsageError(ValueError):
    """A bad command-line argument: ``option``, the ``value`` given, what is ``allowed``."""

    def __init__(self, option: str, value: Any, allowed: str) -> None:
        self.option, self.value, self.allowed = option, value, allowed
        super().__init__(f"{option} {value!r}: {allowed}")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise ``UsageError``-like exits of one line
    (no usage block) and which adds ``--debug``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true",
                          help=f"show tracebacks instead of one-line errors (or ${DEBUG_ENV}=1)")

    def error(self, message: str) -> NoReturn:
        raise _ParseError(message)

    def refuse(self, option: str, value: Any, allowed: str) -> NoReturn:
        """Refuse ``option`` with ``value`` after parsing (a combination, a file...)."""
        raise UsageError(option, value, allowed)


class _ParseError(Exception):
    """argparse's message of a bad argument (it names the option, the value and the choices)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(main: Callable[[list[str]], int], argv: Sequence[str] | None = None,
        prog: str | None = None) -> int:
    """``main(argv)`` with gdbench's error policy (see the module docstring); its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0])
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    hook = sys.unraisablehook
    sys.unraisablehook = _redeliver_interrupts(hook)
    try:
        return main(argv)
    except (_ParseError, UsageError) as exc:
        if debug:
            raise
        print(f"{prog}: error: {_one_line(exc)} (see {prog} --help)", file=sys.stderr)
        return 2
    except Exception as exc:
        from bench.workload.config import ConfigError
        from bench.workload.datasets import DataError

        if _caused_by_interrupt(exc) and not debug:  # e.g. an extension's failed import
            print(f"{prog}: interrupted; what finished is kept.", file=sys.stderr)
            return 130
        if debug or not isinstance(exc, (ConfigError, DataError, Failure)):
            raise
        if isinstance(exc, Failure):
            print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
            return 1
        hint = "" if isinstance(exc, DataError) else f" (see {prog} --help)"
        print(f"{prog}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted; what finished is kept.", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = hook


def _redeliver_interrupts(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable hook that does not lose a Ctrl-C: one that lands in a callback Python
    cannot raise from (an import lock's weakref callback) is printed as "Exception ignored"
    and dropped; this sends it to the main thread again instead."""
    def redeliver(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _thread.interrupt_main()
        else:
            hook(unraisable)
    return redeliver


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Take a Ctrl-C that arrives inside the block as a ``KeyboardInterrupt`` at its end: some
    C extensions abort the process (pybind11: ``terminate called ...``) when one is raised
    while they load. Main thread only; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a Ctrl-C lies behind ``exc``: a C extension interrupted while it loads raises
    ``ImportError("initialization failed")`` from the ``KeyboardInterrupt``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


# ------------------------------------------------------------------ option types


def _typed(fn: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    fn.__name__ = name  # argparse names the type in "invalid <name> value"
    return fn


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An int in [lo, hi] (either bound may be open)."""
    allowed = _range("an int", lo, hi)

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
        return v
    return _typed(parse, "int")


def ints_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], tuple[int, ...]]:
    """Comma-separated ints in [lo, hi], at least one, no repeats."""
    one = int_in(lo, hi)
    allowed = f"comma-separated, distinct {_range('ints', lo, hi)} (at least one)"

    def parse(text: str) -> tuple[int, ...]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
        try:
            values = tuple(one(p) for p in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a value; give {allowed}")
        return values
    return _typed(parse, "list")


def float_in(lo: float | None = None, hi: float | None = None, *,
             lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in [lo, hi] (``(lo, hi]`` with ``lo_open``)."""
    left = "(" if lo_open else "["
    allowed = f"a number in {left}{'-inf' if lo is None else f'{lo:g}'}, " \
              f"{'inf' if hi is None else f'{hi:g}'}]"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        ok = v == v and abs(v) != float("inf")
        ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
        return v
    return _typed(parse, "number")


def choice(options: Sequence[str], what: str = "one of") -> Callable[[str], str]:
    """One of ``options`` (a typo gets the nearest as a suggestion)."""
    import difflib

    def parse(text: str) -> str:
        if text in options:
            return text
        near = difflib.get_close_matches(text, options, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {what} {', '.join(map(repr, options))}{hint}")
    return _typed(parse, "choice")


def _range(what: str, lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"{what} in [{lo}, {hi}]"
    if lo is not None:
        return f"{what} >= {lo}"
    if hi is not None:
        return f"{what} <= {hi}"
    return what
