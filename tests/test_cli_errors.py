"""Every command-line entry point meets bad input with one line (the option, the value, what is
allowed), exit status 2 and no traceback, before any work; an option another one makes
meaningless is refused; an explicit option beats an environment variable. The property-based
tests feed the parsers arbitrary argument lists: each either parses or gets the one-line error.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli

ROOT = Path(__file__).resolve().parents[1]


def _study(argv):
    from bench.study.cli import parse
    return parse(argv)


def _protocol(argv):
    from bench.run_protocol import parse
    return parse(argv)


def _ab(argv):
    from bench.tools.ab import parse
    return parse(argv)


def _distributed(argv):
    from bench.distributed.cli import parse
    return parse(argv)


def _make_plots(argv):
    from reports.make_plots import parse
    return parse(argv)


PARSERS = {"study": _study, "run_protocol": _protocol, "ab": _ab, "distributed": _distributed,
           "make_plots": _make_plots}


def _run(parse, argv, capsys) -> tuple[int, list[str]]:
    """The exit status and stderr lines of ``parse(argv)`` under the entry points' policy."""
    capsys.readouterr()
    status = cli.run(lambda a: (parse(a), 0)[1], argv, prog="prog")
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# The bad inputs of issue 20's table (and their neighbours): (entry point, argv, the option and
# a fragment of what is allowed, both in the one line).
BAD = [
    ("study", ["--batch-sizes", "0"], "--batch-sizes", "ints in [1, "),
    ("study", ["--batch-sizes", "-5"], "--batch-sizes", "ints in [1, "),
    ("study", ["--batch-sizes", ""], "--batch-sizes", "at least one"),
    ("study", ["--batch-sizes", "32,32"], "--batch-sizes", "repeats"),
    ("study", ["--seeds", ""], "--seeds", "at least one"),
    ("study", ["--workers", "0"], "--workers", "an int in [1,"),
    ("study", ["--workers", "-1"], "--workers", "an int in [1,"),
    ("study", ["--target-error", "150"], "--target-error", "(0, 1]"),
    ("study", ["--target-error", "-1"], "--target-error", "(0, 1]"),
    ("study", ["--target-error", "nan"], "--target-error", "(0, 1]"),
    ("study", ["--backends", "nonsense"], "--backends", "unknown backend 'nonsense'"),
    ("study", ["--backends", "numpi"], "--backends", "unknown backend 'numpi'"),
    ("study", ["--backends", "torch:cuda"], "--backends", "name at least one, e.g. numpy"),
    ("study", ["--name", "../../x"], "--name", "one folder name"),
    ("study", ["--name", "/abs/path"], "--name", "one folder name"),
    ("study", ["--name", "a/b"], "--name", "one folder name"),
    ("study", ["--name", ""], "--name", "one folder name"),
    ("study", ["--steps-from", "x"], "--steps-from", "only means something with --timing-only"),
    ("study", ["--steps-root", "x"], "--steps-root", "only means something with --steps-from"),
    ("study", ["--timing-only", "--seeds", "1"], "--seeds", "nothing with --timing-only"),
    ("study", ["--timing-only", "--small"], "--small", "nothing with --timing-only"),
    ("study", ["--runner", "inprocess", "--workers", "2"], "--workers", "--runner inprocess"),
    ("study", ["--runner", "pool", "--ray-address", "auto"], "--ray-address", "--runner pool"),
    ("study", ["--ray-address", "auto", "--workers", "2"], "--workers", "Ray cluster"),
    ("study", ["--runner", "ry"], "--runner", "did you mean 'ray'"),
    ("study", ["--model", "nope"], "model", "'softmax'"),
    ("study", ["--momentum", "2"], "--momentum", "[0, 1]"),
    ("run_protocol", ["mlp", "--backend", "jaxx"], "'backend'", "'numpy'"),
    ("run_protocol", ["mpl"], "name", "did you mean 'mlp'"),
    ("run_protocol", ["tutorial", "--max-epochs", "0"], "--max-epochs", "[1, 1000000]"),
    ("ab", ["no-such-revision-here"], "old", "not a commit of this repository"),
    ("ab", ["--", "--output=X"], "old", "not an option"),
    ("ab", ["HEAD", "--cases", "numpy-gpu-B1"], "--cases", "backend-cpu-B<size>"),
    ("ab", ["HEAD", "--rounds", "0"], "--rounds", "[1, 10000]"),
    ("distributed", ["--world-size", "0"], "--world-size", "[1, 1024]"),
    ("distributed", ["--allreduce", "--batch-size", "5"], "--batch-size", "--allreduce"),
    ("distributed", ["--learning-rate", "-1"], "--learning-rate", "(0, inf]"),
    ("make_plots", ["--profile", "Quick"], "--profile", "did you mean 'quick'"),
    ("make_plots", ["no-such-file.json"], "files", "no such file"),
    ("make_plots", ["--compare", "x.json"], "--compare", "no such file"),
]


@pytest.mark.parametrize(("entry", "argv", "option", "allowed"), BAD,
                         ids=[f"{e}:{' '.join(a) or repr('')}" for e, a, _, _ in BAD])
def test_a_bad_argument_gets_one_line_and_status_2(entry, argv, option, allowed, capsys,
                                                   tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # nothing may be written, wherever it is run
    status, lines = _run(PARSERS[entry], argv, capsys)
    assert status == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert option in lines[0] and allowed in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(monkeypatch):
    with pytest.raises(cli.UsageError):
        cli.run(lambda a: (_study(a), 0)[1], ["--debug", "--steps-from", "x"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(cli.UsageError):
        cli.run(lambda a: (_study(a), 0)[1], ["--steps-from", "x"])


def test_good_study_arguments_parse_as_given():
    plan = _study(["--small", "--batch-sizes", "256,2048", "--seeds", "7,8", "--name", "t.1"])
    assert plan.cfg.batch_sizes == (256, 2048) and plan.cfg.seeds == (7, 8)   # not ignored
    assert plan.cfg.grid == (-4, 0, 4) and plan.cfg.timing_repeats == 1
    assert _study(["--small"]).cfg.batch_sizes == (32, 256, 2048)
    assert _study([]).cfg.seeds == (1234, 1, 2)


def test_an_explicit_runner_beats_the_environment(monkeypatch):
    from bench.study import runners

    monkeypatch.setenv(runners.RAY_ADDRESS_ENV, "ray://head:10001")
    made = []
    monkeypatch.setattr(runners, "RayRunner", lambda address, num_cpus=None: made.append(
        address) or "ray")
    plan = _study(["--runner", "inprocess"])
    assert isinstance(runners.make_runner(plan.runner, plan.workers, plan.ray_address),
                      runners.InProcessRunner)
    pool = runners.make_runner("pool", 1)
    assert isinstance(pool, runners.PoolRunner)
    pool.close()
    assert made == []
    assert runners.make_runner(None) == "ray" and made == ["ray://head:10001"]


def test_a_missing_data_folder_is_one_line_and_leaves_no_study(tmp_path, capsys, monkeypatch):
    from bench.study.__main__ import main

    monkeypatch.setenv("GDBENCH_DATA_DIR", str(tmp_path / "no-such-folder"))
    status = main(["--out", str(tmp_path / "out"), "--name", "x", "--runner", "inprocess",
                   "--small"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1 and "GDBENCH_DATA_DIR" in err[0], err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ property-based

OPTIONS = {
    "study": ["--name", "--out", "--batch-sizes", "--seeds", "--target-error", "--backends",
              "--timing-only", "--steps-from", "--steps-root", "--max-seconds",
              "--timing-repeats", "--small", "--runner", "--workers", "--ray-address",
              "--optimizer", "--momentum", "--model", "--timing-threads", "--no-direct",
              "--no-noise"],
    "run_protocol": ["mlp", "tutorial", "--backend", "--dtype", "--max-epochs", "--out"],
    "ab": ["HEAD", "--cases", "--rounds", "--tolerance", "--json"],
    "distributed": ["--world-size", "--device", "--model", "--optimizer", "--batch-size",
                    "--learning-rate", "--dtype", "--max-epochs", "--max-steps",
                    "--threads-per-rank", "--timeout-s", "--allreduce"],
    "make_plots": ["--results", "--profile", "--compare", "--out"],
}
VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "32,256", "1e9", "nan", "inf", "", ",", "numpy",
                     "torch:cuda", "a/b", "..", "x", "pool", "ray", "inprocess", "local",
                     "mlp", "softmax", "momentum", "float64", "0.5", "quick", "HEAD"]),
    st.text(max_size=12),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True).map(repr))


def _argv(entry: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.sampled_from(OPTIONS[entry]), VALUES), max_size=8)


@pytest.mark.parametrize("entry", sorted(PARSERS))
def test_any_arguments_parse_or_get_the_one_line_error(entry, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GDBENCH_RAY_ADDRESS", raising=False)

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(argv=_argv(entry))
    def check(argv):
        status, lines = _run(PARSERS[entry], argv, capsys)
        assert status in (0, 2), (argv, lines)
        assert len(lines) <= (1 if status else 0) and not any("Traceback" in x for x in lines)

    check()


RUN_FIELDS = {
    "backend": st.sampled_from(["numpy", "torch", "nope", ""]),
    "variant": st.sampled_from(["full", "sgd", "minibatch", "x"]),
    "batch_size": st.one_of(st.none(), st.integers(-5, 10**6), st.floats(), st.text(max_size=3)),
    "learning_rate": st.one_of(st.floats(), st.integers(-3, 3), st.text(max_size=3)),
    "dtype": st.sampled_from(["float32", "float64", "int8"]),
    "max_epochs": st.one_of(st.none(), st.integers(-3, 10**4), st.floats()),
    "max_steps": st.one_of(st.none(), st.integers(-3, 10**6)),
    "target_error": st.one_of(st.none(), st.floats()),
    "seed": st.one_of(st.integers(-5, 2**40), st.floats(), st.text(max_size=2)),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=RUN_FIELDS))
def test_run_config_takes_any_fields_or_says_which_is_wrong(fields):
    from bench.workload.config import ConfigError, RunConfig

    try:
        cfg = RunConfig(**fields)
    except ConfigError as exc:
        name = str(exc).split("'")[1] if "'" in str(exc) else ""
        assert name in RUN_FIELDS or name in ("batch_size", "variant"), str(exc)
        return
    lr = cfg.learning_rate
    assert not isinstance(lr, bool) and math.isfinite(lr) and lr > 0


def test_a_ctrl_c_while_extensions_load_is_taken_after_the_block():
    import os
    import signal

    from bench import cli

    done = []
    with pytest.raises(KeyboardInterrupt), cli.interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block went on")
    assert done == ["the block went on"]


def test_an_import_failed_by_a_ctrl_c_ends_as_an_interrupt(capsys):
    from bench import cli

    def main(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    assert cli.run(main, [], prog="prog") == 130
    assert capsys.readouterr().err == "prog: interrupted; what finished is kept.\n"


def test_a_ctrl_c_python_could_only_print_as_ignored_still_interrupts(capsys):
    """A KeyboardInterrupt in a callback Python cannot raise from (an import lock's weakref
    callback) goes to the unraisable hook; under bench.cli it is sent to the main thread
    again: the run ends as an interrupt, with no "Exception ignored" traceback."""
    import sys
    from types import SimpleNamespace

    from bench import cli

    def main(argv):
        sys.unraisablehook(SimpleNamespace(exc_type=KeyboardInterrupt,
                                           exc_value=KeyboardInterrupt(), exc_traceback=None,
                                           err_msg=None, object=None))
        for _ in range(10**8):          # the re-sent interrupt lands here
            pass
        return 0

    hook = sys.unraisablehook
    assert cli.run(main, [], prog="x") == 130
    assert sys.unraisablehook is hook
    err = capsys.readouterr().err
    assert "interrupted" in err and "Exception ignored" not in err
