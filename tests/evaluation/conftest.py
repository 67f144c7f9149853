"""Shared fixtures: tiny exported ViTs used as teacher and student."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two depth-1 ViTs exported as vitkd model folders (teacher width 48, student width 32)."""
    import torch

    from vitkd.models import build_backbone, export_backbone

    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, width in (("teacher", 48), ("student", 32)):
        torch.manual_seed(width)
        bb = build_backbone(
            "vit_tiny_patch16_224", depth=1, embed_dim=width, num_heads=2, img_size=32
        )
        out[name] = export_backbone(bb, root / name)
    return out
