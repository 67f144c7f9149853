"""iBOT block masks for the student's global crops, stratified over the batch as in DINOv2.

Reference: Bao et al., "BEiT" (2022) block-wise masking as used by Zhou et al., "iBOT" (2022) and
Oquab et al., "DINOv2" (2023, https://arxiv.org/abs/2304.07193), facebookresearch/dinov2
``dinov2/data/masking.py`` and ``dinov2/data/collate.py``.
"""

import math
from typing import NamedTuple

import numpy as np
import torch

RandomSource = torch.Generator | np.random.Generator | int | None


class Block(NamedTuple):
    """A masked rectangle of the patch grid: rows ``top:top + height``, columns ``left:left + width``."""

    top: int
    left: int
    height: int
    width: int


class FlatMasks(NamedTuple):
    """What the flattened (masked-token) iBOT loss form needs, in ``masks[masks]`` order."""

    indices: torch.Tensor
    weights: torch.Tensor
    n_masked_patches: int


def as_numpy_rng(source: RandomSource) -> np.random.Generator:
    """A numpy generator from a torch generator (one draw seeds it), a numpy generator or a seed."""
    if isinstance(source, np.random.Generator):
        return source
    if isinstance(source, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=source)))
    return np.random.default_rng(source)


class BlockMaskGenerator:
    """Masks of rectangular blocks on a (H, W) patch grid, like BEiT / iBOT / DINOv2.

    Blocks are added until the requested count is reached: each block's area is uniform in
    [min_patches, min(remaining, max_patches)] and its aspect ratio (height / width)
    log-uniform in [min_aspect, max_aspect]. After rounding to whole patches a block is kept only
    if it still covers >= ``min_patches`` patches, keeps its aspect ratio in range, fits the grid
    and adds between 1 and min(remaining, max_patches) new patches (blocks may overlap, so a
    rectangle can be larger than that); 10 tries per block.
    So the count never exceeds the request and may fall a little short, as in the reference.
    """

    def __init__(
        self,
        grid: tuple[int, int] = (16, 16),
        min_patches: int = 4,
        max_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = 1 / 0.3,
    ) -> None:
        """Create the generator.

        Args:
            grid: patch grid (H, W) of the student's global crop.
            min_patches: smallest block area in patches.
            max_patches: largest block area; None means half the grid (DINOv2's setting).
            min_aspect: smallest height / width ratio of a block.
            max_aspect: largest ratio; None means ``1 / min_aspect``.
        """
        height, width = grid
        if height < 1 or width < 1:
            raise ValueError(f"mask grid must be positive, got {grid}")
        if min_patches < 1:
            raise ValueError(f"min_patches must be >= 1, got {min_patches}")
        if max_aspect is None:
            max_aspect = 1.0 / min_aspect
        if not 0 < min_aspect <= max_aspect:
            raise ValueError(f"need 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}")
        self.height, self.width = int(height), int(width)
        self.min_patches = int(min_patches)
        self.max_patches = int(0.5 * height * width) if max_patches is None else int(max_patches)
        if self.max_patches < self.min_patches:
            raise ValueError(
                f"max_patches {self.max_patches} is below min_patches {self.min_patches}"
            )
        self.min_aspect, self.max_aspect = float(min_aspect), float(max_aspect)

    @property
    def num_patches(self) -> int:
        """Number of patches of the grid (H * W)."""
        return self.height * self.width

    def _place(self, mask: np.ndarray, max_new: int, rng: np.random.Generator) -> Block | None:
        log_lo, log_hi = math.log(self.min_aspect), math.log(self.max_aspect)
        for _ in range(10):
            area = rng.uniform(self.min_patches, max(self.min_patches, max_new))
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if h < 1 or w < 1 or h > self.height or w > self.width or h * w < self.min_patches:
                continue
            # rounding can push the ratio out of range (e.g. 1 x 4 for a 0.3 draw): retry instead
            if not self.min_aspect <= h / w <= self.max_aspect:
                continue
            top = int(rng.integers(0, self.height - h + 1))
            left = int(rng.integers(0, self.width - w + 1))
            new = h * w - int(mask[top : top + h, left : left + w].sum())
            if 0 < new <= max_new:
                mask[top : top + h, left : left + w] = True
                return Block(top, left, h, w)
        return None

    def blocks(self, n_masked: int, rng: RandomSource = None) -> list[Block]:
        """The blocks of one mask with about ``n_masked`` patches (their union is the mask)."""
        rng = as_numpy_rng(rng)
        mask = np.zeros((self.height, self.width), dtype=bool)
        placed: list[Block] = []
        count = 0
        while count < n_masked:
            block = self._place(mask, min(n_masked - count, self.max_patches), rng)
            if block is None:
                break
            placed.append(block)
            count = int(mask.sum())
        return placed

    def __call__(self, n_masked: int, rng: RandomSource = None) -> torch.Tensor:
        """One bool mask (H, W) with at most ``n_masked`` (usually exactly) masked patches."""
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)
        for top, left, h, w in self.blocks(n_masked, rng):
            mask[top : top + h, left : left + w] = True
        return mask


def sample_masks(
    n_images: int,
    grid: tuple[int, int] = (16, 16),
    mask_probability: float = 0.5,
    ratio_range: tuple[float, float] = (0.1, 0.5),
    generator: RandomSource = None,
    mask_generator: BlockMaskGenerator | None = None,
) -> torch.Tensor:
    """Block masks (n_images, H * W) bool for a batch of global crops, DINOv2-collate style.

    ``int(n_images * mask_probability)`` images are masked; with ``p = linspace(lo, hi, n + 1)``
    the i-th of them gets ``int(H * W * u)`` patches, u uniform in [p[i], p[i + 1]]; the rest are
    all False; the order is then shuffled. Deterministic for a given seed / generator state.

    Args:
        n_images: number of global-crop images (all global views of the batch).
        grid: patch grid (H, W) of the student's global crop.
        mask_probability: fraction of images that are masked.
        ratio_range: (lowest, highest) masked fraction, stratified over the masked images.
        generator: torch or numpy generator, or an int seed (None: fresh entropy).
        mask_generator: block generator; by default ``BlockMaskGenerator(grid)``.
    """
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    if not 0.0 <= mask_probability <= 1.0:
        raise ValueError(f"mask_probability must be in [0, 1], got {mask_probability}")
    low, high = ratio_range
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"ratio_range must satisfy 0 <= low <= high <= 1, got {ratio_range}")
    mask_generator = mask_generator or BlockMaskGenerator(grid)
    if (mask_generator.height, mask_generator.width) != tuple(grid):
        raise ValueError(
            f"mask_generator grid {(mask_generator.height, mask_generator.width)} != grid {grid}"
        )
    rng = as_numpy_rng(generator)
    n_patches = mask_generator.num_patches
    n_masked_images = int(n_images * mask_probability)
    bounds = np.linspace(low, high, n_masked_images + 1)
    masks = [
        mask_generator(int(n_patches * rng.uniform(bounds[i], bounds[i + 1])), rng).flatten()
        for i in range(n_masked_images)
    ]
    masks += [torch.zeros(n_patches, dtype=torch.bool)] * (n_images - n_masked_images)
    if n_images == 0:
        return torch.zeros(0, n_patches, dtype=torch.bool)
    order = rng.permutation(n_images)
    return torch.stack([masks[i] for i in order])


def flatten_masks(masks: torch.Tensor) -> FlatMasks:
    """Indices into ``masks.flatten()``, weights 1 / (own image's count) and count of masked tokens.

    Args:
        masks: bool (B, N) from :func:`sample_masks`.

    Returns:
        ``FlatMasks(indices (M,) int64, weights (M,) float32, n_masked_patches M)``, the inputs of
        ``iBOTPatchLoss.forward_masked`` (gather the tokens with ``x.flatten(0, 1)[indices]``).
    """
    if masks.ndim != 2 or masks.dtype != torch.bool:
        raise ValueError(
            f"masks must be a bool tensor (B, N), got {masks.dtype} {tuple(masks.shape)}"
        )
    indices = masks.flatten().nonzero().flatten()
    per_image = 1.0 / masks.sum(dim=-1).clamp(min=1).float()
    weights = per_image.unsqueeze(-1).expand_as(masks)[masks]
    return FlatMasks(indices=indices, weights=weights, n_masked_patches=int(indices.numel()))
