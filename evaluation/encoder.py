"""Load an encoder by name/path and embed uint8 RGB images with it, in batches."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from vitkd.models import Backbone


def load_encoder(model: str, weights: str | None = None) -> "Backbone":
    """A frozen, eval-mode Backbone from an export folder, a .ckpt, a preset or a timm name.

    Resolution is ``vitkd.embed``'s (same rules as ``python -m vitkd.embed --model``).
    """
    from vitkd.embed.resolve import resolve_model

    backbone = resolve_model(model, weights).backbone
    return backbone.freeze()


def _to_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Stack (H, W, 3) uint8 images into (B, 3, size, size) uint8, resizing (antialiased bilinear) when needed."""
    out = []
    for img in images:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"images must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        t = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)
        if t.shape[1:] != (size, size):
            t = F.interpolate(
                t[None].float(),
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )[0]
            t = t.round().clamp(0, 255).to(torch.uint8)
        out.append(t)
    return torch.stack(out)


def embed_images(
    backbone: "Backbone",
    images: Iterable[np.ndarray],
    batch_size: int = 64,
    tokens: str = "cls",
    device: str | torch.device = "cpu",
    total: int | None = None,
    desc: str = "embedding",
    progress: bool = True,
) -> np.ndarray:
    """Embeddings (N, D) float32 of uint8 images, each resized to the model's input size.

    Args:
        backbone: a vitkd Backbone (normalises uint8 input itself).
        images: (H, W, 3) uint8 RGB arrays.
        batch_size: images per forward pass.
        tokens: ``cls`` or ``cls+mean``.
        device: compute device.
        total: number of images, for the progress bar.
        desc: progress bar label.
        progress: show a tqdm bar.
    """
    if tokens not in ("cls", "cls+mean"):
        raise ValueError(f"tokens={tokens!r}: choose 'cls' or 'cls+mean'")
    size = int(backbone.spec.img_size)
    backbone = backbone.to(device).eval()
    chunks: list[np.ndarray] = []
    buf: list[np.ndarray] = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)

    def flush() -> None:
        with torch.inference_mode():
            chunks.append(
                backbone.embed(_to_batch(buf, size).to(device), tokens=tokens).float().cpu().numpy()
            )
        bar.update(len(buf))
        buf.clear()

    for img in images:
        buf.append(img)
        if len(buf) == batch_size:
            flush()
    if buf:
        flush()
    bar.close()
    if not chunks:
        raise ValueError("no images to embed")
    return np.concatenate(chunks)
