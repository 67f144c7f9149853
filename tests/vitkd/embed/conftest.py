"""Shared fixtures for the embedding tests: a tiny exported ViT and small generated slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slides import open_slide
from slides.synthetic import write_synthetic_slide
from vitkd.embed.config import EmbedConfig
from vitkd.models import build_backbone, export_backbone

TINY_ARCH = "vit_small_patch14_reg4_dinov2"
TINY_KWARGS = {"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": 56}
TILE = 56
MPP = 1.0


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT (depth 1, width 64, 56 px) exported as model.safetensors + config.json."""
    torch.manual_seed(7)
    backbone = build_backbone(TINY_ARCH, **TINY_KWARGS)
    return export_backbone(backbone, tmp_path_factory.mktemp("model") / "tiny-vit")


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small tissue slides (different seeds) and one blank slide, pyramidal TIFFs at 0.5 mpp."""
    root = tmp_path_factory.mktemp("slides")
    # Seeds chosen so each slide has a few tissue tiles at 1 mpp / 56 px (11, 7 and 7).
    for i, seed in enumerate((1, 4, 6)):
        write_synthetic_slide(root / f"s{i}.tif", 640, 512, mpp=0.5, seed=seed)
    return root


@pytest.fixture(scope="session")
def blank_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slide of empty glass (no tissue)."""
    path = tmp_path_factory.mktemp("blank") / "glass.tif"
    return write_synthetic_slide(path, 512, 512, mpp=0.5, tissue=False)


@pytest.fixture()
def three_slides(slide_dir: Path, tmp_path: Path) -> list[Path]:
    """Private copies of the three tissue slides (tests may corrupt or lock them)."""
    out = tmp_path / "in"
    out.mkdir()
    return [Path(shutil.copy(p, out / p.name)) for p in sorted(slide_dir.glob("s*.tif"))]


@pytest.fixture()
def tile_folder(tmp_path: Path) -> Path:
    """A folder of five PNG tiles (one of them 64 px, to be resized)."""
    root = tmp_path / "tiles"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        side = 64 if i == 3 else TILE
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            root / f"t{i}.png"
        )
    return root


def make_cfg(inputs: list[Path], model: Path | str, out: Path, **overrides: object) -> EmbedConfig:
    """The tests' default config: 1 mpp, 56 px tiles, small batches, no workers."""
    base: dict[str, object] = {
        "mpp": MPP,
        "batch_size": 8,
        "workers": 0,
        "min_tissue": 0.25,
    }
    base.update(overrides)
    return EmbedConfig(inputs=list(inputs), model=str(model), out=out, **base)


def read_tiles(slide_path: Path, grid: object) -> torch.Tensor:
    """All tiles of a grid read directly with `TileGrid.read_tile`, as uint8 (N, 3, H, W)."""
    with open_slide(slide_path) as slide:
        tiles = [grid.read_tile(slide, i) for i in range(len(grid))]
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
