"""Temperature schedules: the `Schedule` form, the legacy warm-up bit for bit, and the losses."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict

import pytest
import torch
import yaml
from distill_fixtures import tiny_data, tiny_module

from vitkd.distill.config import HeadConfig, LossConfig, Schedule, as_config
from vitkd.distill.objectives import PrototypeObjective
from vitkd.losses import ResponseKLLoss
from vitkd.models import Tokens
from vitkd.schedules import linear_warmup, ramp


def _legacy_teacher_temp(step: int, total: int, lo: LossConfig) -> float:
    # the expression module.schedule used before schedules existed, written out
    warm = round(lo.warmup_teacher_temp_fraction * total)
    if warm <= 0 or step >= warm:
        return lo.teacher_temp
    return lo.warmup_teacher_temp + (lo.teacher_temp - lo.warmup_teacher_temp) * step / warm


@pytest.mark.parametrize("total", [1, 7, 80, 1000])
@pytest.mark.parametrize("fraction", [0.0, 0.24, 0.3, 1.0])
def test_without_a_schedule_the_teacher_temperature_is_the_old_warmup_bit_for_bit(
    total: int, fraction: float
) -> None:
    lo = LossConfig(warmup_teacher_temp_fraction=fraction)
    for step in range(total + 3):
        assert lo.teacher_temp_at(step, total) == _legacy_teacher_temp(step, total, lo)
        # the linear ramp from 0 is the same formula, so an explicit schedule also matches
        explicit = ramp(step, total, "linear", 0.04, 0.07, 0.0, fraction)
        assert explicit == linear_warmup(step, round(fraction * total), 0.04, 0.07)
    assert lo.student_temp_at(5, total) == lo.student_temp


@pytest.mark.parametrize("start,end", [(0.07, 0.04), (0.04, 0.07), (1.0, 4.0), (4.0, 1.0)])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedules_run_both_ways_between_begin_and_stop(
    kind: str, start: float, end: float
) -> None:
    schedule = Schedule(kind=kind, start=start, end=end, begin=0.2, stop=0.6)
    total = 100
    values = [schedule.at(s, total) for s in range(total + 5)]
    assert values[:21] == [start] * 21  # held until begin
    assert values[60:] == [end] * len(values[60:])  # held after stop
    assert values[40] == pytest.approx((start + end) / 2)  # midpoint, linear and cosine alike
    sign = 1 if end > start else -1
    assert all(sign * (b - a) >= 0 for a, b in itertools.pairwise(values))  # monotone
    if kind == "cosine":  # cosine moves slowly at the ends: a quarter in, a quarter of the way
        want = end + 0.5 * (start - end) * (1 + math.cos(math.pi * 10 / 40))
        assert values[30] == pytest.approx(want)
        assert abs(values[30] - start) < abs(end - start) / 4
    else:
        assert values[30] == pytest.approx(start + (end - start) * 0.25)


def test_constant_and_default_end() -> None:
    assert Schedule(start=0.2).at(0, 10) == Schedule(start=0.2).at(10, 10) == 0.2
    assert Schedule(kind="linear", start=0.3).at(4, 10) == 0.3  # end defaults to start
    jump = Schedule(kind="linear", start=1.0, end=2.0, begin=0.5, stop=0.5)
    assert [jump.at(s, 10) for s in (4, 5, 6)] == [1.0, 2.0, 2.0]  # zero span: a step


def test_schedule_overrides_the_legacy_fields_and_roundtrips_through_hparams() -> None:
    lo = LossConfig(
        teacher_temp_schedule={"kind": "cosine", "start": 0.1, "end": 0.04},
        student_temp_schedule={"kind": "linear", "start": 0.2, "end": 0.1, "stop": 0.5},
    )
    assert isinstance(lo.teacher_temp_schedule, Schedule)
    assert lo.teacher_temp_at(0, 10) == pytest.approx(0.1)
    assert lo.teacher_temp_at(10, 10) == pytest.approx(0.04)
    assert lo.student_temp_at(5, 10) == pytest.approx(0.1)
    assert lo.teacher_temp_settled_fraction() == 1.0
    # checkpoint hyper-parameters are plain dicts; YAML is too
    again = as_config(LossConfig, yaml.safe_load(yaml.safe_dump(asdict(lo))))
    assert again == lo


@pytest.mark.parametrize(
    "value,words",
    [
        ({"kind": "step", "start": 1.0}, ["teacher_temp_schedule", "'step'", "cosine"]),
        ({"kind": "linear", "start": 1.0, "begin": 0.8, "stop": 0.2}, ["begin=0.8", "stop=0.2"]),
        ({"kind": "linear", "start": 0.1, "end": 0.0}, ["teacher_temp_schedule", "> 0"]),
        ({"kind": "linear", "strat": 0.1}, ["strat", "valid keys"]),
    ],
)
def test_bad_schedules_name_the_key_and_value(value: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        LossConfig(teacher_temp_schedule=value)
    for word in words:
        assert word in str(err.value)


def _tokens(n: int, dim: int, grid: int = 2) -> Tokens:
    g = torch.Generator().manual_seed(n + dim)
    return Tokens(
        cls=torch.randn(n, dim, generator=g),
        registers=torch.zeros(n, 0, dim),
        patches=torch.randn(n, grid * grid, dim, generator=g),
        grid=(grid, grid),
    )


def test_scheduled_student_temperature_reaches_dino_and_ibot() -> None:
    heads = HeadConfig(prototypes=16, ibot_prototypes=16, hidden_dim=16, bottleneck_dim=8)
    torch.manual_seed(0)
    scheduled = PrototypeObjective(8, LossConfig(student_temp=0.1), heads)
    torch.manual_seed(0)
    fixed = PrototypeObjective(8, LossConfig(student_temp=0.25), heads)
    teacher_heads = torch.nn.ModuleDict({"dino": scheduled.dino_head, "ibot": scheduled.ibot_head})
    student, teacher = _tokens(4, 8), _tokens(4, 8)
    masks = torch.tensor([[True, False, True, False]] * 2 + [[False] * 4] * 2)
    args = (student, None, teacher, teacher_heads, masks, 2, 0.05)
    want = fixed(*args)
    got = scheduled(*args, student_temp=0.25)
    base = PrototypeObjective(8, LossConfig(student_temp=0.1), heads)
    base.load_state_dict(scheduled.state_dict())
    for name in ("dino", "ibot"):
        torch.testing.assert_close(got[name], want[name])
        assert not torch.allclose(base(*args)[name], want[name])  # the temperature matters


def test_response_kl_temperature_per_call_matches_the_constructor() -> None:
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    loss = ResponseKLLoss(1.0, kl=True)
    torch.testing.assert_close(loss(s, t, temperature=3.0), ResponseKLLoss(3.0, kl=True)(s, t))
    assert not torch.allclose(loss(s, t), loss(s, t, temperature=3.0))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        loss(s, t, temperature=0.0)


def test_module_schedules_both_temperatures_and_passes_them_to_the_losses(monkeypatch) -> None:
    losses = LossConfig(
        teacher_temp_schedule={"kind": "linear", "start": 0.1, "end": 0.05},
        student_temp_schedule={"kind": "cosine", "start": 0.3, "end": 0.1},
    )
    module = tiny_module(targets="prototypes", losses=losses)
    monkeypatch.setattr(module, "total_steps", lambda: 10)
    values = module.schedule(5, 4)
    assert values["teacher_temp"] == pytest.approx(0.075)
    assert values["student_temp"] == pytest.approx(0.2)
    module.heads_ready.fill_(True)
    dm = tiny_data()
    dm.setup()
    module.compute_losses(next(iter(dm.train_dataloader())))  # global_step 0 without a trainer
    assert module.objective.dino_loss.student_temp == pytest.approx(0.3)
    assert module.objective.ibot_loss.student_temp == pytest.approx(0.3)
    # no schedule: the logged keys and the teacher warm-up are what they always were
    plain = tiny_module(targets="prototypes")
    monkeypatch.setattr(plain, "total_steps", lambda: 10)
    assert set(plain.schedule(2, 4)) == {"lr", "weight_decay", "teacher_temp", "ema_momentum"}
    assert plain.schedule(2, 4)["teacher_temp"] == _legacy_teacher_temp(2, 10, LossConfig())
