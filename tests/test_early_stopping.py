"""The tutorial's patience rule."""

from __future__ import annotations

import pytest

from bench.workload.early_stopping import EarlyStopping


def test_validation_frequency_and_schedule():
    assert EarlyStopping(83).validation_frequency == 83
    es = EarlyStopping(50_000)
    assert es.validation_frequency == 2500
    assert es.should_validate(2499) and not es.should_validate(2500)
    assert es.next_validation(0) == 2499
    assert es.next_validation(2499) == 2499
    assert es.next_validation(2500) == 4999


def test_patience_grows_only_on_significant_improvement():
    es = EarlyStopping(83)
    assert es.update(82, 0.20)                      # first: always a new best
    assert es.patience == 5000                      # max(5000, 82 * 2)
    assert es.update(3000, 0.10)
    assert es.patience == 6000
    assert es.update(4000, 0.0999)                  # better, but by less than 0.5 %
    assert es.patience == 6000 and es.best_iteration == 4000
    assert not es.update(4100, 0.2)
    assert not es.should_stop(5999) and es.should_stop(6000)


def test_invalid_parameters_say_which():
    with pytest.raises(ValueError, match=r"'patience' parameter of EarlyStopping must be an int"):
        EarlyStopping(10, patience=0)
    with pytest.raises(ValueError, match=r"improvement_threshold"):
        EarlyStopping(10, improvement_threshold=1.5)


def test_several_validations_per_epoch():
    assert EarlyStopping(5000, patience=2**40, validations_per_epoch=10).validation_frequency == 500
    assert EarlyStopping(3, validations_per_epoch=10).validation_frequency == 1
