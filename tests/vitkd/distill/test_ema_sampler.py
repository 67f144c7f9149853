"""EMA update formula, its place in training and resume, and the rank-aware epoch sampler."""

import copy
import functools
import operator
import warnings

import lightning as L
import pytest
import torch
from distill_fixtures import tiny_data, tiny_module, trainer
from lightning.pytorch.callbacks import ModelCheckpoint
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


class _Shadows(L.Callback):
    """The student and EMA weights after each optimiser step, as a callback sees them."""

    def __init__(self) -> None:
        self.steps: list[dict[str, dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(
            {
                name: copy.deepcopy(getattr(pl_module, name).state_dict())
                for name in ("student", "ema")
            }
        )


def test_ema_step_uses_the_momentum_of_the_step_just_taken(tmp_path) -> None:
    module = tiny_module()
    initial = copy.deepcopy(module.ema)
    shadows = _Shadows()
    trainer(tmp_path, 2, callbacks=[shadows]).fit(module, datamodule=tiny_data())
    # after step 1 (index 0): ema = m0 * initial + (1 - m0) * student_1, m0 = schedule(0)
    momentum = module.schedule(0, 4)["ema_momentum"]
    assert 0 < momentum < 1
    online = copy.deepcopy(module.student)
    online.load_state_dict(shadows.steps[0]["student"])
    ema_update(initial, online, momentum)
    for key, value in initial.state_dict().items():
        torch.testing.assert_close(shadows.steps[0]["ema"][key], value, msg=key)


def test_checkpoint_every_n_steps_resumes_to_the_same_ema(tmp_path) -> None:
    # a checkpoint written by a callback at a step's end must already hold that step's EMA
    # update: resuming from it gives the shadow of an uninterrupted run
    full = _Shadows()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=2, save_top_k=-1)
    trainer(tmp_path / "full", 4, callbacks=[full, ckpt], enable_checkpointing=True).fit(
        tiny_module(), datamodule=tiny_data(samples_per_epoch=16)
    )
    (mid,) = (tmp_path / "ck").glob("*step=2*.ckpt")
    saved = torch.load(mid, weights_only=True)["state_dict"]
    for key, value in full.steps[1]["ema"].items():
        torch.testing.assert_close(saved[f"ema.{key}"], value, rtol=0, atol=0, msg=key)
    resumed = _Shadows()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path / "b", 4, callbacks=[resumed]).fit(
            tiny_module(), datamodule=tiny_data(samples_per_epoch=16), ckpt_path=mid
        )
    # the loader resumes mid-epoch from the trainer's step: Lightning is told so and stays quiet
    assert not [w for w in caught if "dataloader is not resumable" in str(w.message)]
    assert len(resumed.steps) == 2
    for name in ("student", "ema"):
        for key, value in full.steps[-1][name].items():
            torch.testing.assert_close(
                resumed.steps[-1][name][key], value, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}"
            )
