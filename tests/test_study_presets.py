"""The named complete studies (``--preset``): their settings, explicit options over them, and
the one-line error for an unknown name."""

from __future__ import annotations

import dataclasses

import pytest

from bench import cli
from bench.study.cli import parse
from bench.study.config import StudyConfig
from bench.study.presets import PRESETS, preset_config


def test_without_a_preset_the_options_give_the_default_study():
    assert parse([]).cfg == StudyConfig()
    assert parse(["--name", "x", "--model", "mlp"]).cfg == StudyConfig(
        name="x", extra_config=(("model", "mlp"),))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_a_valid_study_and_the_command_line_gives_the_same(name):
    cfg = preset_config(name)
    assert parse(["--preset", name]).cfg == cfg
    assert cfg.name == name
    # every field the preset sets is set; every other keeps StudyConfig's default
    default = StudyConfig()
    for f in dataclasses.fields(StudyConfig):
        if f.name not in PRESETS[name].fields:
            assert getattr(cfg, f.name) == getattr(default, f.name), f.name


def test_the_softmax_preset_is_the_default_study():
    assert preset_config("softmax") == dataclasses.replace(StudyConfig(), name="softmax")


def test_the_mlp_and_momentum_presets():
    mlp = preset_config("mlp")
    assert dict(mlp.extra_config) == {"model": "mlp"}
    assert len(mlp.batch_sizes) >= 10 and len(mlp.seeds) >= 3
    momentum = preset_config("momentum")
    assert dict(momentum.extra_config) == {"optimizer": "momentum", "momentum": 0.9}
    assert momentum.seeds == StudyConfig().seeds        # the search seeds of every study


def test_explicit_options_override_the_preset():
    cfg = parse(["--preset", "mlp", "--name", "mine", "--target-error", "0.05",
                 "--batch-sizes", "16,256", "--seeds", "7,8,9", "--backends", "numpy"]).cfg
    assert (cfg.name, cfg.target_error, cfg.batch_sizes, cfg.seeds, cfg.backends) == (
        "mine", 0.05, (16, 256), (7, 8, 9), ("numpy",))
    assert cfg.prior_e_min == preset_config("mlp").prior_e_min        # the rest kept
    momentum = parse(["--preset", "momentum", "--momentum", "0.5"]).cfg
    assert dict(momentum.extra_config) == {"optimizer": "momentum", "momentum": 0.5}
    small = parse(["--preset", "mlp", "--small"]).cfg
    assert small.purpose == "small" and small.batch_sizes == (32, 256, 2048)
    assert small.name == "mlp-small"                   # never mixed into the complete study
    assert dict(small.extra_config) == {"model": "mlp"}


def test_an_unknown_preset_is_one_line_naming_the_presets(capsys):
    capsys.readouterr()
    status = cli.run(lambda a: (parse(a), 0)[1], ["--preset", "mpl"], prog="prog")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert "--preset" in lines[0] and all(repr(n) in lines[0] for n in PRESETS), lines[0]
    with pytest.raises(ValueError, match="softmax, momentum, mlp"):
        preset_config("mpl")
