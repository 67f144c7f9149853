"""EMA update formula and the rank-aware epoch sampler."""

import functools
import operator

import pytest
import torch
from torch import nn

from vitkd.data.sampler import DrawSampler
from vitkd.distill.ema import ema_update


def test_ema_update_formula() -> None:
    online, shadow = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in shadow.parameters()]
    ema_update(shadow, online, 0.9)
    for b, s, o in zip(before, shadow.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(s, 0.9 * b + 0.1 * o.detach())


def test_ema_momentum_one_keeps_shadow() -> None:
    online, shadow = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in shadow.parameters()]
    ema_update(shadow, online, 1.0)
    for b, s in zip(before, shadow.parameters(), strict=True):
        torch.testing.assert_close(s, b)


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_partition_the_single_process_draws(world: int) -> None:
    single = list(DrawSampler(10, samples_per_epoch=24, seed=3))
    ranks = [list(DrawSampler(10, 24, num_replicas=world, rank=r, seed=3)) for r in range(world)]
    assert sorted(functools.reduce(operator.iadd, ranks, [])) == sorted(single)
    # rank r takes positions r, r + W, ...: a per-rank batch of b is a slice of the global batch
    assert ranks[0][:2] == [single[0], single[world]]


def test_draws_are_deterministic_unique_and_cover_each_pass() -> None:
    a, b = DrawSampler(7, 14, seed=1), DrawSampler(7, 14, seed=1)
    assert list(a) == list(b)
    draws = list(a)
    assert len(set(draws)) == len(draws)
    assert sorted(d % 7 for d in draws[:7]) == list(range(7))
    assert sorted(d % 7 for d in draws[7:]) == list(range(7))
    a.set_epoch(1)
    assert set(a).isdisjoint(draws)


def test_progress_makes_the_draws_a_function_of_the_step() -> None:
    steps = {"done": 0}
    sampler = DrawSampler(9, 12, batch_size=3, seed=2, progress=lambda: steps["done"])
    from_start = list(sampler)
    steps["done"] = 2  # e.g. resumed after two steps: starts at global position 2 * 3
    assert list(sampler)[:6] == from_start[6:]
