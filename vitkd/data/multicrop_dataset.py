"""Tiles -> DINOv2 multi-crop views, seeded per draw so a draw is reproducible anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import Dataset

from vitkd.data.multicrop import MultiCrop

if TYPE_CHECKING:
    from vitkd.data.curriculum import StepCurriculum


def draw_seed(seed: int, draw: int) -> int:
    """A 32-bit seed for one draw, decorrelated from neighbouring draws."""
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


class MultiCropDataset(Dataset):
    """Wraps a tile dataset; item `draw` is the multi-crop of tile `draw % len(tiles)`.

    Args:
        tiles: a dataset returning a uint8 (H, W, 3) tile, or a tuple whose first element is one.
        transform: the multi-crop transform.
        seed: base seed; with the draw id it seeds the transform (see `DrawSampler`).
        curriculum: crop scales and augmentation strength as functions of the step, which the
            draw id carries (`vitkd.data.curriculum`); `None`: the transform's own settings.

    Each item also carries `draw` (the tile id, `draw % len(tiles)`) and `position` (the draw's
    global position, `draw // len(tiles)`), which the adaptive sampler's callback reads.
    """

    def __init__(
        self,
        tiles: Dataset,
        transform: MultiCrop,
        seed: int = 0,
        curriculum: StepCurriculum | None = None,
    ) -> None:
        self.tiles = tiles
        self.transform = transform
        self.seed = seed
        self.curriculum = curriculum

    def __len__(self) -> int:
        return len(self.tiles)

    def tile(self, draw: int) -> np.ndarray:
        """The tile of draw `draw` (tuple items give their first element)."""
        item = self.tiles[draw % len(self.tiles)]
        return np.asarray(item[0] if isinstance(item, tuple) else item)

    def __getitem__(self, draw: int) -> dict[str, Any]:
        tile = self.tile(draw)
        seed = draw_seed(self.seed, draw)
        if self.curriculum is not None:
            self.curriculum.apply(self.transform, draw)
        self.transform.reseed(seed)
        crops = self.transform(tile)
        crops["seed"] = seed
        crops["position"], crops["draw"] = divmod(draw, len(self.tiles))
        return crops
