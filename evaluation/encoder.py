"""Load an encoder by name/path and embed uint8 RGB images with it, through `vitkd.embed`'s path."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from vitkd.embed.embedder import Embedder
from vitkd.embed.preprocess import tiles_to_batch

if TYPE_CHECKING:
    from vitkd.models import Backbone


def load_encoder(model: str, weights: str | None = None) -> "Backbone":
    """A frozen, eval-mode Backbone from an export folder, a .ckpt, a preset or a timm name.

    Resolution is ``vitkd.embed``'s (same rules as ``python -m vitkd.embed --model``).
    """
    from vitkd.embed.resolve import resolve_model

    backbone = resolve_model(model, weights).backbone
    return backbone.freeze()


def embed_images(
    backbone: "Backbone",
    images: Iterable[np.ndarray],
    batch_size: int = 64,
    tokens: str = "cls",
    device: str | torch.device = "cpu",
    total: int | None = None,
    desc: str = "embedding",
    progress: bool = True,
    precision: str = "32",
    dim: int | None = None,
) -> np.ndarray:
    """Embeddings (N, D) float32 of uint8 images, each resized to the model's input size.

    The same path as ``python -m vitkd.embed``: `vitkd.embed.preprocess.resize_tile` (antialiased
    bilinear) and `vitkd.embed.embedder.Embedder` (its precision policy), so a tile gives the same
    features here and in an embedding run at the same precision.

    Args:
        backbone: a vitkd Backbone (normalises uint8 input itself).
        images: (H, W, 3) uint8 RGB arrays.
        batch_size: images per forward pass.
        tokens: ``cls`` or ``cls+mean``.
        device: compute device.
        total: number of images, for the progress bar.
        desc: progress bar label.
        progress: show a tqdm bar.
        precision: ``32`` (default: fp32 everywhere), ``auto`` (bf16 autocast on CUDA, fp32 on
            CPU, as ``vitkd.embed``'s default) or ``bf16``.
        dim: keep the first ``dim`` dimensions (a nested Matryoshka size), as ``--dim``.
    """
    if tokens not in ("cls", "cls+mean"):
        raise ValueError(f"tokens={tokens!r}: choose 'cls' or 'cls+mean'")
    size = int(backbone.spec.img_size)
    embedder = Embedder(backbone, torch.device(device), tokens, precision, dim)
    chunks: list[np.ndarray] = []
    buf: list[np.ndarray] = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)

    def flush() -> None:
        chunks.append(embedder(tiles_to_batch(buf, size)).cpu().numpy())
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
