"""Schedules as pure functions of the step, against the DINOv2 formulas written out here."""

import itertools
import math

import pytest

from vitkd.schedules import cosine, linear_warmup, scaled_lr, warmup_cosine


def test_sqrt_batch_scaling() -> None:
    assert scaled_lr(0.004, 1024) == pytest.approx(0.004)
    assert scaled_lr(0.004, 256) == pytest.approx(0.002)
    assert scaled_lr(1.0, 4096) == pytest.approx(2.0)


@pytest.mark.parametrize("total", [1, 10, 1000])
def test_cosine_endpoints_and_midpoint(total: int) -> None:
    assert cosine(0, total, 0.04, 0.4) == pytest.approx(0.04)
    assert cosine(total, total, 0.04, 0.4) == pytest.approx(0.4)
    assert cosine(total + 5, total, 0.04, 0.4) == pytest.approx(0.4)
    if total % 2 == 0:
        assert cosine(total // 2, total, 0.04, 0.4) == pytest.approx(0.22)


def test_warmup_cosine_matches_formula() -> None:
    total, warm, peak, end = 100, 10, 1e-3, 1e-6
    for step in range(total + 1):
        if step < warm:
            expected = peak * step / warm
        else:
            t = (step - warm) / (total - warm)
            expected = end + 0.5 * (peak - end) * (1 + math.cos(math.pi * t))
        assert warmup_cosine(step, total, peak, end, warm) == pytest.approx(expected)


def test_teacher_temperature_warmup() -> None:
    assert linear_warmup(0, 30, 0.04, 0.07) == pytest.approx(0.04)
    assert linear_warmup(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert linear_warmup(30, 30, 0.04, 0.07) == pytest.approx(0.07)
    assert linear_warmup(99, 30, 0.04, 0.07) == pytest.approx(0.07)
    assert linear_warmup(5, 0, 0.04, 0.07) == pytest.approx(0.07)


def test_ema_momentum_schedule_rises_to_one() -> None:
    values = [cosine(s, 50, 0.992, 1.0) for s in range(51)]
    assert values[0] == pytest.approx(0.992)
    assert values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in itertools.pairwise(values))
