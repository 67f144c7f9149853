"""Collate multi-crop samples view-major and attach the iBOT block masks of the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitkd.data.masking import sample_masks


@dataclass(frozen=True)
class MaskConfig:
    """iBOT block masking of the student's global crops.

    Args:
        enabled: produce masks (used by `targets: prototypes` with an iBOT weight).
        probability: fraction of global-crop images that are masked.
        ratio_min: lowest masked-patch ratio (ratios are stratified over the batch).
        ratio_max: highest masked-patch ratio.
        patch_size: the student's patch size, which sets the mask grid.
    """

    enabled: bool = True
    probability: float = 0.5
    ratio_min: float = 0.1
    ratio_max: float = 0.5
    patch_size: int = 14


def mask_index(masks: torch.Tensor) -> torch.Tensor:
    """int64 (M,) flat indices of the True entries of `masks`, in `masks[masks]` order.

    Computed on the host with the batch, so the training step gathers the masked tokens with
    `index_select` instead of boolean indexing, which waits for the device to learn M.
    """
    return masks.flatten().nonzero().flatten()


def _view_major(samples: list[dict], key: str) -> torch.Tensor:
    # (B, V, C, H, W) -> (V * B, C, H, W): view 0 of every image, then view 1, ... as DINOv2
    stacked = torch.stack([s[key] for s in samples])
    return stacked.transpose(0, 1).reshape(-1, *stacked.shape[2:])


class MultiCropCollate:
    """Callable collate: `global`, `local`, `teacher` view-major uint8 tensors, `masks`,
    `mask_index` (`mask_index(masks)`), `n_images`, and, when the samples carry them, `draw`
    (int64 (B,): each image's tile id) and `position` (int64 (B,): its global draw position)."""

    def __init__(self, masking: MaskConfig, global_size: int) -> None:
        if global_size % masking.patch_size:
            raise ValueError(
                f"global crop size {global_size} is not a multiple of the student patch size "
                f"{masking.patch_size}; set data.crops.global_size to a multiple of it"
            )
        self.masking = masking
        self.grid = (global_size // masking.patch_size,) * 2

    def masks(self, n_views: int, seed: int) -> torch.Tensor:
        """(n_views, grid cells) bool iBOT masks of the global views, a function of `seed`."""
        if not self.masking.enabled:
            return torch.zeros(n_views, self.grid[0] * self.grid[1], dtype=torch.bool)
        return sample_masks(
            n_views,
            self.grid,
            mask_probability=self.masking.probability,
            ratio_range=(self.masking.ratio_min, self.masking.ratio_max),
            generator=torch.Generator().manual_seed(seed),
        )

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor | int]:
        batch: dict[str, torch.Tensor | int] = {
            key: _view_major(samples, key) for key in ("global", "local", "teacher")
        }
        seed = sum(s["seed"] for s in samples) % 2**63
        batch["masks"] = self.masks(int(batch["global"].shape[0]), seed)
        batch["mask_index"] = mask_index(batch["masks"])
        batch["n_images"] = len(samples)
        for key in ("draw", "position"):
            if samples and key in samples[0]:
                batch[key] = torch.tensor([s[key] for s in samples], dtype=torch.int64)
        return batch
