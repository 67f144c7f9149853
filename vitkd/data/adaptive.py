"""Adaptive tile selection: draw more often the tiles where the student still misses the teacher."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from typing_extensions import override

from vitkd.data.priority import TilePriorities
from vitkd.data.sampler import DrawSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    """How training tiles are drawn (`data.sampling`).

    `uniform` (default) is the shuffled `DrawSampler`: every tile once per pass. `adaptive`
    draws with replacement, a `floor` share uniformly and the rest in proportion to each tile's
    running distillation loss (see `TilePriorities`); the module must set `per_image_loss`.

    Args:
        kind: `uniform` or `adaptive`.
        floor: share of uniform draws; every tile keeps at least `floor / N` probability.
        momentum: EMA momentum of each tile's loss.
        power: exponent on the loss (0: uniform, 1: proportional, above 1: sharper).
        refresh_every: batches between two refreshes of the draw distribution.
        lag: batches between the last loss a refresh uses and the first draw it makes; must
            exceed the loader's prefetch (`num_workers * prefetch_factor + 2`).
    """

    kind: Literal["uniform", "adaptive"] = "uniform"
    floor: float = 0.2
    momentum: float = 0.9
    power: float = 1.0
    refresh_every: int = 20
    lag: int = 12

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "adaptive"):
            raise ValueError(f"data.sampling.kind={self.kind!r}: choose 'uniform' or 'adaptive'")


class AdaptiveDrawSampler(DrawSampler):
    """A `DrawSampler` whose item at each position comes from `TilePriorities`.

    Positions, ranks, draw ids (`position * num_items + item`) and resumption from `progress()`
    are the `DrawSampler`'s; only the item at a position differs. Draws are taken one window of
    the priority table at a time, so the sampler never asks for a window before it is due.
    Its state (the table) travels in the checkpoint through the loader's `state_dict`.

    Args:
        priorities: the shared table (also fed by `AdaptiveSamplingCallback`).
        **kwargs: `DrawSampler` arguments.
    """

    def __init__(self, priorities: TilePriorities, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if priorities.num_items != self.num_items:
            raise ValueError(
                f"priority table of {priorities.num_items} tiles for {self.num_items} items"
            )
        self.priorities = priorities

    @override
    def items(self, positions: np.ndarray) -> np.ndarray:
        return self.priorities.items(positions)

    @override
    def __iter__(self) -> Iterator[int]:
        start, window, step = self.start_position(), self.priorities.window, self.num_replicas
        i = 0
        while i < self.num_samples:
            first = start + self.rank + i * step
            end = (first // window + 1) * window  # this rank's positions up to the window's end
            n = min(self.num_samples - i, -(-(end - first) // step))
            positions = first + np.arange(n, dtype=np.int64) * step
            items = self.items(positions)
            for position, item in zip(positions.tolist(), items.tolist(), strict=True):
                yield position * self.num_items + item
            i += n

    def state_dict(self) -> dict[str, Any]:
        """The priority table's state."""
        return self.priorities.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the priority table."""
        self.priorities.load_state_dict(state)


class AdaptiveSamplingCallback(L.Callback):
    """After each batch, gathers every image's loss over the ranks into the priority table.

    Reads `pl_module.per_image_loss` (detached float (B,): each image's distillation
    disagreement) with the batch's `draw` (tile id) and `position` (global draw position). A
    module that does not set it leaves the table as it is (uniform draws), with one warning.

    Args:
        priorities: the table the sampler draws from.
    """

    def __init__(self, priorities: TilePriorities) -> None:
        self.priorities = priorities
        priorities.tracked = True
        self._warned = False

    def _warn(self, why: str) -> None:
        if not self._warned:
            log.warning(
                "adaptive sampling has no losses to learn from (%s); draws stay uniform", why
            )
            self._warned = True

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        positions = batch.get("position") if isinstance(batch, dict) else None
        if positions is None:
            self._warn("the batch has no 'position'")
            self.priorities.tracked = False  # windows are then drawn from the fixed table
            return
        loss = getattr(pl_module, "per_image_loss", None)
        tiles = batch.get("draw")
        if loss is None or tiles is None or loss.numel() != tiles.numel():
            self._warn(
                "the module sets no per_image_loss"
                if loss is None
                else f"per_image_loss has {loss.numel()} values for {positions.numel()} images"
            )
            self.priorities.observe(_gather(trainer, positions), None, None)
            return
        self.priorities.observe(
            _gather(trainer, positions),
            _gather(trainer, tiles),
            _gather(trainer, loss.detach().float()),
        )


def _gather(trainer: L.Trainer, values: torch.Tensor) -> np.ndarray:
    """`values` of every rank, concatenated in rank order, on the host."""
    if trainer.world_size > 1:
        values = trainer.strategy.all_gather(values.to(trainer.strategy.root_device))
    return values.detach().cpu().numpy().reshape(-1)


def train_sampler(
    config: SamplingConfig,
    trainer: L.Trainer | None,
    prefetch_depth: int,
    progress: Callable[[], int] | None,
    **kwargs: Any,
) -> DrawSampler:
    """The training sampler of `config`; for `adaptive`, with its callback on the trainer.

    The table lives in the callback, so a rebuilt loader (reloaded dataloaders) keeps it. The
    callback goes first in `trainer.callbacks`: a checkpoint written in the same hook must
    already hold the batch's losses.

    Args:
        config: `data.sampling`.
        trainer: the trainer (`None`: a sampler with a fixed table, for tests and tools).
        prefetch_depth: batches the loader can request ahead of training.
        progress: batches trained per rank (see `DrawSampler`).
        **kwargs: the other `DrawSampler` arguments.
    """
    if config.kind == "uniform":
        return DrawSampler(progress=progress, **kwargs)
    if config.lag <= prefetch_depth:
        raise ValueError(
            f"data.sampling.lag={config.lag} must exceed the loader's prefetch of "
            f"{prefetch_depth} batches (num_workers * prefetch_factor + 2), or the draws would "
            "depend on timing"
        )
    batch = kwargs.get("batch_size", 1) * kwargs.get("num_replicas", 1)
    table = TilePriorities(
        kwargs["num_items"],
        batch,
        seed=kwargs.get("seed", 0),
        floor=config.floor,
        momentum=config.momentum,
        power=config.power,
        refresh_every=config.refresh_every,
        lag=config.lag,
    )
    if trainer is not None:
        found = [c for c in trainer.callbacks if isinstance(c, AdaptiveSamplingCallback)]
        old = found[0].priorities if found else None
        if old is not None and (old.num_items, old.window) == (table.num_items, table.window):
            table = old
        else:
            for c in found:
                trainer.callbacks.remove(c)
            trainer.callbacks.insert(0, AdaptiveSamplingCallback(table))
    return AdaptiveDrawSampler(table, progress=progress, **kwargs)
