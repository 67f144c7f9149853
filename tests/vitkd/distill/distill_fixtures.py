"""Tiny teacher/student/data configurations shared by the distillation tests."""

from __future__ import annotations

from typing import Any

import lightning as L

from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.distill.config import HeadConfig, LossConfig, OptimConfig, StudentConfig, TeacherConfig
from vitkd.distill.module import DistillationModule

ARCH = "vit_small_patch14_reg4_dinov2"
SIZE = 56


def tiny_module(student_depth: int = 1, **overrides: Any) -> DistillationModule:
    """A 1-block teacher (width 48) and a `student_depth`-block student (width 32), 56 px crops."""
    kwargs: dict[str, Any] = {
        "teacher": TeacherConfig(
            name=ARCH,
            weights="random",
            kwargs={"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": SIZE},
        ),
        "student": StudentConfig(
            name=ARCH,
            kwargs={"depth": student_depth, "embed_dim": 32, "num_heads": 2, "img_size": SIZE},
        ),
        "targets": "features",
        "losses": LossConfig(),
        "heads": HeadConfig(prototypes=64, ibot_prototypes=64, hidden_dim=32, bottleneck_dim=16),
        "optim": OptimConfig(base_lr=0.05, warmup_fraction=0.1),
    }
    kwargs.update(overrides)
    return DistillationModule(**kwargs)


def tiny_data(**overrides: Any) -> DistillDataModule:
    """Sample-slide tiles at 0.5 um/px, 56 px crops, 2 locals, no workers."""
    kwargs: dict[str, Any] = {
        "source": TileSource(tile_size=SIZE, holdout_fraction=0.1, holdout_max_tiles=16),
        "crops": CropConfig(global_size=SIZE, local_size=28, n_local=2, augment="none"),
        "masking": MaskConfig(patch_size=14),
        "batch_size": 4,
        "samples_per_epoch": 40,
        "num_workers": 0,
    }
    kwargs.update(overrides)
    return DistillDataModule(**kwargs)


class LossRecorder(L.Callback):
    """Keeps the total training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def trainer(tmp_path, max_steps: int, **kwargs: Any) -> L.Trainer:
    """A quiet CPU trainer writing into `tmp_path`."""
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
    }
    defaults.update(kwargs)
    return L.Trainer(**defaults)
