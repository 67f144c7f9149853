"""Tiny teachers, generated slides and cache builds for the cache tests (own module name: the
`conftest` modules of the test folders would clash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitkd.cache.builder import BuildOptions, BuildSummary, build_cache
from vitkd.cache.teachers import build_teachers, teacher_blocks
from vitkd.data.datamodule import TileSource

ARCH = "vit_small_patch14_reg4_dinov2"
SIZE = 56  # tiles and teacher input: a 4 x 4 grid of 14 px patches
MPP = 1.0
TEACHER = {
    "name": ARCH,
    "weights": "random",
    "kwargs": {"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": SIZE},
}


def source(slide_dir: Path, **overrides: Any) -> TileSource:
    """The generated slides at 1 um/px, 56 px tiles, min tissue 0.25 (20 tiles)."""
    kwargs: dict[str, Any] = {
        "slides": [str(slide_dir)],
        "mpp": MPP,
        "tile_size": SIZE,
        "min_tissue": 0.25,
    }
    kwargs.update(overrides)
    return TileSource(**kwargs)


def build(
    slide_dir: Path,
    out: Path,
    model: dict[str, Any] | None = None,
    model_seed: int = 0,
    **options: Any,
) -> BuildSummary:
    """Cache the generated slides with the tiny teacher(s) of `model` (default: `TEACHER`)."""
    model = model or {"teacher": TEACHER}
    teachers = build_teachers(teacher_blocks(model), seed=model_seed)
    kwargs: dict[str, Any] = {"out": out, "encoding": "png", "patch_tokens": 6, "shard_size": 8}
    kwargs.update(options)
    return build_cache(teachers, source(slide_dir), BuildOptions(**kwargs), say=lambda _: None)


def tiny_module(model_seed: int = 0, **overrides: Any):
    """A `DistillationModule` (feature targets) with the cache's tiny teacher, student width 32."""
    from vitkd.distill.config import HeadConfig, StudentConfig, TeacherConfig
    from vitkd.distill.module import DistillationModule

    kwargs: dict[str, Any] = {
        "teacher": TeacherConfig(**TEACHER),
        "student": StudentConfig(
            name=ARCH, kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": SIZE}
        ),
        "targets": "features",
        "heads": HeadConfig(adaptor="linear"),
        "seed": model_seed,
    }
    kwargs.update(overrides)
    return DistillationModule(**kwargs)


def cache_data(folder: Path, batch_size: int = 4, **crops: Any):
    """A `DistillDataModule` reading the cache in `folder`: 56 px globals, two 28 px locals."""
    from vitkd.data.collate import MaskConfig
    from vitkd.data.datamodule import CropConfig, DistillDataModule

    crop_kwargs: dict[str, Any] = {
        "global_size": SIZE,
        "local_size": 28,
        "n_local": 2,
        "augment": "none",
        "teacher_view": "clean",
    }
    crop_kwargs.update(crops)
    return DistillDataModule(
        source=TileSource(cache=str(folder), holdout_fraction=0.1, holdout_max_tiles=4),
        crops=CropConfig(**crop_kwargs),
        masking=MaskConfig(patch_size=14),
        batch_size=batch_size,
        samples_per_epoch=16,
        num_workers=0,
    )


def quiet_trainer(root: Path, max_steps: int):
    """A quiet one-process CPU trainer."""
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
