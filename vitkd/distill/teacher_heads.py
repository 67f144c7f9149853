"""Teacher-side DINO/iBOT heads: built frozen, loaded from a local file when one exists."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from slides.atomic import atomic_path
from vitkd.distill.config import HeadConfig, LossConfig
from vitkd.models import DINOHead, load_weights


def build_teacher_heads(teacher_dim: int, heads: HeadConfig, losses: LossConfig) -> nn.ModuleDict:
    """Frozen `dino` (and `ibot` when its loss is on) heads on the teacher's width."""
    modules = {
        "dino": DINOHead(teacher_dim, heads.prototypes, heads.hidden_dim, heads.bottleneck_dim)
    }
    if losses.ibot:
        modules["ibot"] = DINOHead(
            teacher_dim, heads.ibot_prototypes, heads.hidden_dim, heads.bottleneck_dim
        )
    return nn.ModuleDict(modules).requires_grad_(False).eval()


def load_teacher_heads(heads: nn.ModuleDict, path: str | Path) -> None:
    """Load head weights (keys `dino.*`, `ibot.*`) strictly from a local file.

    The file is what `fit_teacher_heads` saves (`teacher_heads.safetensors` in the run folder)
    or a converted DINOv2-style checkpoint with the same key layout.
    """
    load_weights(heads, path, strict=True)


def save_teacher_heads(heads: nn.ModuleDict, run_dir: Path) -> Path:
    """Write the fitted heads to `<run_dir>/teacher_heads.safetensors` (reuse with `teacher.heads`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "teacher_heads.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in heads.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return path
