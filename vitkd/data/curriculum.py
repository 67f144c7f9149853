"""Crop-scale and augmentation-strength curriculum: `Schedule`s of the step, read off the draw id.

DataLoader workers do not know the trainer's step, and must not: a worker that read it would
depend on how far ahead it runs. They need not, because draws are consecutive per step: the
`DrawSampler` gives global position `p` the draw id `p * num_items + item`, and position `p`
belongs to optimiser step `p // draws_per_step` (draws per step = per-rank batch x ranks x
accumulated batches). So the step of every draw is a function of its id, and a resumed run cuts
the same crops as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L

from vitkd.data.multicrop import MultiCrop
from vitkd.distill.config import Schedule, as_schedule

_FIELDS = ("global_scale_min", "global_scale_max", "local_scale_min", "local_scale_max")


@dataclass(frozen=True)
class CropCurriculum:
    """Schedules of the crop geometry and augmentation strength (`data.curriculum`).

    Each is a `Schedule` (constant, linear or cosine from `start` to `end` between the `begin`
    and `stop` fractions of training) or `None`, which keeps the `data.crops` value. A min
    bound that a schedule would lift above its max is clamped to it.

    Args:
        global_scale_min: lower RandomResizedCrop area bound of the global crops.
        global_scale_max: upper bound of the global crops.
        local_scale_min: lower bound of the local crops.
        local_scale_max: upper bound of the local crops.
        augment_p: augmentation strength: the chance that a student crop gets the photometric
            preset (`data.crops.augment`); the others keep only the geometry. 1 is today's
            behaviour; a warm-up from 0.3 to 1 starts easy.
    """

    global_scale_min: Schedule | None = None
    global_scale_max: Schedule | None = None
    local_scale_min: Schedule | None = None
    local_scale_max: Schedule | None = None
    augment_p: Schedule | None = None

    def __post_init__(self) -> None:
        for name in (*_FIELDS, "augment_p"):
            schedule = as_schedule(getattr(self, name), f"data.curriculum.{name}")
            object.__setattr__(self, name, schedule)
            low = 0.0 if name == "augment_p" else 1e-9  # a crop needs a positive area
            if schedule is not None and not all(low <= v <= 1.0 for v in schedule.values()):
                raise ValueError(
                    f"data.curriculum.{name} moves between {schedule.values()}: both must lie "
                    f"in {'[0, 1]' if low == 0 else '(0, 1]'}"
                )

    def active(self) -> bool:
        """Whether any schedule is set."""
        return any(getattr(self, name) is not None for name in (*_FIELDS, "augment_p"))


class StepCurriculum:
    """A `CropCurriculum` bound to a run: the crop settings of any draw id.

    Args:
        curriculum: the schedules.
        crops: the constant settings: `(global_scale, local_scale)` pairs.
        num_items: items of the dataset (a draw id is `position * num_items + item`).
        draws_per_step: draws of one optimiser step over all ranks and accumulated batches.
        total_steps: optimiser steps of the run (what the schedules are stretched over).
    """

    def __init__(
        self,
        curriculum: CropCurriculum,
        crops: tuple[tuple[float, float], tuple[float, float]],
        num_items: int,
        draws_per_step: int,
        total_steps: int,
    ) -> None:
        if num_items < 1 or draws_per_step < 1 or total_steps < 1:
            raise ValueError(
                f"need num_items, draws_per_step and total_steps >= 1, got {num_items}, "
                f"{draws_per_step}, {total_steps}"
            )
        self.curriculum = curriculum
        self.crops = crops
        self.num_items = num_items
        self.draws_per_step = draws_per_step
        self.total_steps = total_steps

    def step(self, draw: int) -> int:
        """The optimiser step of draw id `draw`."""
        return (draw // self.num_items) // self.draws_per_step

    def values(self, step: int) -> dict[str, object]:
        """`global_scale`, `local_scale` (min, max) and `augment_p` at optimiser step `step`."""
        c, out = self.curriculum, {}
        for group, (lo, hi) in zip(("global", "local"), self.crops, strict=True):
            lo_s, hi_s = getattr(c, f"{group}_scale_min"), getattr(c, f"{group}_scale_max")
            lo = lo if lo_s is None else lo_s.at(step, self.total_steps)
            hi = hi if hi_s is None else hi_s.at(step, self.total_steps)
            out[f"{group}_scale"] = (min(lo, hi), hi)
        out["augment_p"] = 1.0 if c.augment_p is None else c.augment_p.at(step, self.total_steps)
        return out

    def apply(self, transform: MultiCrop, draw: int) -> None:
        """Set `transform`'s crop scales and augmentation strength for draw id `draw`."""
        for name, value in self.values(self.step(draw)).items():
            setattr(transform, name, value)


def bind_curriculum(
    curriculum: CropCurriculum,
    scales: tuple[tuple[float, float], tuple[float, float]],
    trainer: L.Trainer | None,
    num_items: int,
    draws_per_epoch: int,
    batch_size: int,
    world: int,
) -> StepCurriculum | None:
    """`curriculum` bound to a run's steps (`None` when no schedule is set).

    Args:
        curriculum: the schedules.
        scales: the constant `(global_scale, local_scale)` of `data.crops`.
        trainer: the trainer (`max_steps` / `max_epochs`, accumulation); `None`: one epoch.
        num_items: training tiles.
        draws_per_epoch: draws per epoch over all ranks.
        batch_size: images per rank and batch.
        world: ranks.
    """
    if not curriculum.active():
        return None
    accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
    per_step = batch_size * world * accumulate
    per_epoch = max(1, draws_per_epoch // per_step)
    limits = []
    if trainer is not None and trainer.max_steps not in (None, -1):
        limits.append(trainer.max_steps)
    if trainer is not None and trainer.max_epochs not in (None, -1):
        limits.append(trainer.max_epochs * per_epoch)
    total = min(limits) if limits else per_epoch
    return StepCurriculum(curriculum, scales, num_items, per_step, max(1, total))
