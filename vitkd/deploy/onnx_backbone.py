"""An ONNX artefact behind the Backbone interface that `vitkd.embed` uses (CPU onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from vitkd.deploy.onnx_graph import INPUT, cpu_session, session_metadata
from vitkd.models.presets import ModelSpec


class OnnxBackbone(nn.Module):
    """Runs `model.onnx` (from `python -m vitkd.export --format onnx`) on uint8 tiles.

    The graph normalises the tiles itself and has a fixed tile size (`spec.img_size`) and a
    dynamic batch. It has no parameters; it always runs on the CPU through onnxruntime and
    returns tensors on the device of its input.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = cpu_session(self.path)
        self.metadata = session_metadata(self.session, self.path)
        self.spec = ModelSpec.from_dict(self.metadata["spec"])
        self.embed_dim = int(self.metadata["embed_dim"])
        self.patch_size = int(self.metadata["patch_size"])
        self.variant = str(self.metadata["variant"])
        # what `Embedder.check_size` reads of a timm model: the graph pads nothing
        self.model = SimpleNamespace(patch_embed=SimpleNamespace(dynamic_img_pad=False))

    def freeze(self) -> OnnxBackbone:
        """Eval mode; there is nothing to stop gradients of (`Backbone.freeze`'s interface)."""
        return self.eval()

    @property
    def dynamic_img_size(self) -> bool:
        """Always False: the graph was traced at `spec.img_size`."""
        return False

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (h, w) of a `height` x `width` input."""
        return height // self.patch_size, width // self.patch_size

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.spec.img_size
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(
                f"{self.path}: expects uint8 tiles (B, 3, {size}, {size}), got {x.dtype} "
                f"{tuple(x.shape)}; embed with --size {size}"
            )
        cls, patches = self.session.run(["cls", "patches"], {INPUT: x.cpu().numpy()})
        return torch.from_numpy(cls).to(x.device), torch.from_numpy(patches).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """CLS embedding (B, D)."""
        return self._run(x)[0]

    def embed(self, x: torch.Tensor, tokens: str = "cls") -> torch.Tensor:
        """`cls` (B, D), `cls+mean` (B, 2D) or `patch` (B, N, D), as `Backbone.embed`."""
        cls, patches = self._run(x)
        if tokens == "cls":
            return cls
        if tokens == "cls+mean":
            return torch.cat([cls, patches.mean(dim=1)], dim=-1)
        if tokens == "patch":
            return patches
        raise ValueError(f"tokens={tokens!r}: choose 'cls', 'cls+mean' or 'patch'")
