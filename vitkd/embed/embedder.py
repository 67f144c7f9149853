"""The model side of embedding: device, precision and token mode around a Backbone."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from vitkd.embed.config import PRECISIONS

if TYPE_CHECKING:
    from vitkd.models import Backbone


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for `bf16`, and for `auto` on CUDA; None (plain fp32) otherwise.

    The one precision policy of every embedding path (`vitkd.embed`, `evaluation.encoder`).
    CPUs without native bf16 run bf16 autocast 5-20x slower than fp32, hence fp32 on CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {PRECISIONS}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


class Embedder:
    """Runs a Backbone on uint8 (B, 3, H, W) batches and returns float32 features on the host.

    Args:
        backbone: the model; it converts uint8 to float and applies its own mean/std.
        device: where the forward runs.
        tokens: `cls` (B, D), `cls+mean` (B, 2D) or `patch` (B, n_patches, D).
        precision: `auto`, `32` or `bf16`.
        dim: keep the first `dim` dimensions of each token (of each half for `cls+mean`).
    """

    def __init__(
        self,
        backbone: Backbone,
        device: torch.device,
        tokens: str = "cls",
        precision: str = "auto",
        dim: int | None = None,
    ) -> None:
        self.backbone = backbone.to(device).eval()
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.device = device
        self.tokens = tokens
        self.dtype = autocast_dtype(precision, device)
        self.dim = dim

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Features of a uint8 batch, float32, still on the device (copy it out when needed)."""
        tiles = tiles.to(self.device, non_blocking=True)
        with self._autocast():
            out = self.backbone.embed(tiles, tokens=self.tokens)
        if self.dim is not None:
            if self.tokens == "cls+mean":
                width = out.shape[-1] // 2
                out = torch.cat([out[..., : self.dim], out[..., width : width + self.dim]], -1)
            else:
                out = out[..., : self.dim]
        return out.float()

    __call__ = forward

    def check_size(self, size: int) -> None:
        """Refuse a tile size the model cannot take, before any slide is read."""
        spec = self.backbone.spec
        if size != spec.img_size and not self.backbone.dynamic_img_size:
            raise ValueError(
                f"--size {size}: {spec.name or spec.arch} takes {spec.img_size} px tiles only; "
                f"leave --size out (or pass {spec.img_size}), or build the model with "
                "--model-kwargs '{\"dynamic_img_size\": true}'."
            )
        patch = self.backbone.patch_size
        if size % patch and not self.backbone.model.patch_embed.dynamic_img_pad:
            raise ValueError(
                f"--size {size}: must be a multiple of the model's patch size {patch}."
            )

    def feature_shape(self, size: int) -> tuple[int, ...]:
        """Shape of one tile's features at `size` x `size` pixels, without running the model."""
        dim = self.dim or self.backbone.embed_dim
        if self.tokens == "cls":
            return (dim,)
        if self.tokens == "cls+mean":
            return (2 * dim,)
        grid_h, grid_w = self.backbone.grid_for(size, size)
        return (grid_h * grid_w, dim)
