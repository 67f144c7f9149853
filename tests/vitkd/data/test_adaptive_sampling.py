"""Adaptive tile selection: determinism under resume and across ranks, floor, preference, default."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset

from vitkd.data.adaptive import (
    AdaptiveDrawSampler,
    AdaptiveSamplingCallback,
    SamplingConfig,
    train_sampler,
)
from vitkd.data.priority import TilePriorities
from vitkd.data.sampler import DrawSampler, StepResumedLoader

N, B = 50, 8  # tiles, draws per batch


def hard(tiles: np.ndarray) -> np.ndarray:
    """A loss that is high on the first 5 tiles."""
    return np.where(tiles < 5, 1.0, 0.05)


def feed(table: TilePriorities, batches: range) -> list[np.ndarray]:
    """Draw each batch's tiles, then observe their losses; returns the tiles drawn."""
    drawn = []
    for b in batches:
        positions = np.arange(b * B, (b + 1) * B)
        tiles = table.items(positions)
        table.observe(positions, tiles, hard(tiles))
        drawn.append(tiles)
    return drawn


def table(**kwargs) -> TilePriorities:
    t = TilePriorities(N, B, seed=3, refresh_every=4, lag=2, **kwargs)
    t.tracked = True
    return t


def test_state_round_trip_gives_identical_later_draws() -> None:
    straight = table()
    expected = feed(straight, range(40))
    interrupted = table()
    feed(interrupted, range(17))  # a checkpoint mid-window, between publications
    state = interrupted.state_dict()
    resumed = table()
    resumed.load_state_dict(state)
    later = feed(resumed, range(17, 40))
    assert all(np.array_equal(a, b) for a, b in zip(expected[17:], later, strict=True))
    assert np.array_equal(resumed.values, straight.values, equal_nan=True)


def test_ranks_draw_the_single_process_stream() -> None:
    world, per_rank = 2, B // 2
    single = table()
    single_draws = feed(single, range(30))
    tables = [table() for _ in range(world)]
    samplers = [
        AdaptiveDrawSampler(
            t,
            num_items=N,
            samples_per_epoch=B * 30,
            batch_size=per_rank,
            num_replicas=world,
            rank=r,
            seed=3,
        )
        for r, t in enumerate(tables)
    ]
    streams = [iter(s) for s in samplers]
    for b in range(30):
        # each rank draws its share of the batch, then all observe the gathered batch
        ids = [[next(st) for _ in range(per_rank)] for st in streams]
        gathered = np.array([i for rank_ids in ids for i in rank_ids], dtype=np.int64)
        positions, tiles = gathered // N, gathered % N
        assert sorted(tiles.tolist()) == sorted(single_draws[b].tolist())
        assert set(positions.tolist()) == set(range(b * B, (b + 1) * B))
        for t in tables:
            t.observe(positions, tiles, hard(tiles))
    assert np.array_equal(tables[0].values, tables[1].values, equal_nan=True)


@pytest.mark.parametrize("floor", [0.05, 0.2, 0.5])
def test_floor_keeps_every_tile_a_share_of_its_uniform_chance(floor: float) -> None:
    t = table(floor=floor)
    positions = np.arange(N)
    t.observe(positions, positions, np.where(positions == 0, 1e4, 1e-4))  # one tile dominates
    t.publish(t._next_window)
    p = t.probabilities()
    assert p.sum() == pytest.approx(1.0)
    assert p.min() >= floor / N * (1 - 1e-9)
    assert p[0] > 0.9 * (1 - floor)


def test_adaptive_prefers_high_loss_tiles() -> None:
    t = table(floor=0.2)
    drawn = np.concatenate(feed(t, range(400)))[200 * B :]  # after the table has learnt
    share = np.isin(drawn, np.arange(5)).mean()
    # 5 of 50 tiles at loss 1 vs 0.05: p = 0.2 * 0.1 + 0.8 * 5 / (5 + 45 * 0.05) = 0.57
    assert share == pytest.approx(0.572, abs=0.05)
    assert share > 0.1 + 4 * np.sqrt(0.1 * 0.9 / drawn.size)  # uniform would give 0.1


def test_unseen_tiles_weigh_the_mean_and_start_uniform() -> None:
    t = table()
    assert np.allclose(t.probabilities(), 1 / N)
    t.observe(np.arange(2), np.array([0, 1]), np.array([1.0, 3.0]))
    t.publish(t._next_window)
    w = np.concatenate([t.tile_weights(0)])
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(3.0)
    assert np.allclose(w[2:], 2.0)


def test_loader_running_past_the_lag_is_an_error() -> None:
    t = table()
    with pytest.raises(RuntimeError, match="raise it above"):
        t.items(np.arange(10 * B, 11 * B))  # window 2 before batch 5's losses were seen


def test_uniform_default_is_the_draw_sampler_bit_for_bit() -> None:
    assert SamplingConfig().kind == "uniform"
    kwargs = dict(num_items=N, samples_per_epoch=64, batch_size=4, num_replicas=2, rank=1, seed=5)
    made = train_sampler(SamplingConfig(), None, prefetch_depth=10, progress=None, **kwargs)
    assert type(made) is DrawSampler
    assert list(made) == list(DrawSampler(**kwargs))


def test_lag_must_exceed_the_prefetch() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        train_sampler(
            SamplingConfig(kind="adaptive", lag=4), None, 10, None, num_items=N, batch_size=2
        )


# ---- through Lightning: checkpoint, resume, callback order --------------------------------


class _Tiles(Dataset):
    def __len__(self) -> int:
        return N

    def __getitem__(self, draw: int) -> dict:
        position, tile = divmod(draw, N)
        return {"x": torch.tensor([float(tile)]), "draw": tile, "position": position}


def _collate(samples: list[dict]) -> dict:
    out = {k: torch.tensor([s[k] for s in samples]) for k in ("draw", "position")}
    out["x"] = torch.stack([s["x"] for s in samples])
    return out


class _Module(L.LightningModule):
    def __init__(self, per_image: bool = True) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.per_image = per_image
        self.drawn: list[list[int]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.drawn.append(batch["draw"].tolist())
        if self.per_image:
            self.per_image_loss = torch.from_numpy(hard(batch["draw"].numpy())).float()
        return (self.w * batch["x"]).pow(2).mean() + self.w.sum() * 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class _Data(L.LightningDataModule):
    def train_dataloader(self) -> StepResumedLoader:
        trainer = self.trainer
        sampler = train_sampler(
            SamplingConfig(kind="adaptive", refresh_every=4, lag=3),
            trainer,
            prefetch_depth=2,
            progress=lambda: trainer.global_step,
            num_items=N,
            samples_per_epoch=12 * B,
            batch_size=B,
            seed=1,
        )
        return StepResumedLoader(_Tiles(), batch_size=B, sampler=sampler, collate_fn=_collate)


def _fit(tmp: Path, steps: int, module: _Module, ckpt: str | None = None) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp,
        callbacks=[ModelCheckpoint(dirpath=tmp, every_n_train_steps=7, save_top_k=-1)],
    )
    trainer.fit(module, datamodule=_Data(), ckpt_path=ckpt)
    return trainer


def test_resumed_fit_draws_what_the_uninterrupted_fit_draws(tmp_path: Path) -> None:
    straight = _Module()
    trainer = _fit(tmp_path / "a", 30, straight)
    assert isinstance(trainer.callbacks[0], AdaptiveSamplingCallback)
    # the table learnt the hard tiles: they take over half the draws of the last windows
    late = np.array(straight.drawn[15:])
    assert np.isin(late, np.arange(5)).mean() > 0.3
    ckpt = torch.load(tmp_path / "a" / "epoch=0-step=7.ckpt", weights_only=True)
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["frontier"] == 7 * B
    resumed = _Module()
    _fit(tmp_path / "b", 30, resumed, ckpt=str(tmp_path / "a" / "epoch=0-step=7.ckpt"))
    assert resumed.drawn == straight.drawn[7:]


def test_module_without_per_image_loss_warns_once_and_stays_uniform(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vitkd.data.adaptive"):
        _fit(tmp_path, 12, _Module(per_image=False))
    warnings = [r for r in caplog.records if "no losses to learn from" in r.getMessage()]
    assert len(warnings) == 1
