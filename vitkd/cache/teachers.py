"""The teachers to cache, from a `vitkd.train` config's `model.teacher` or `model.teachers`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from vitkd.cache.errors import CacheError
from vitkd.distill.config import TeacherConfig, as_config, teacher_keys
from vitkd.models import Backbone, build_teacher
from vitkd.models.builtin import check_model_weights
from vitkd.models.fingerprint import teacher_fingerprint

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class CacheTeacher:
    """One teacher to run over the tiles: its key in `batch["cache"]`, config and backbone.

    Attributes:
        key: `TeacherConfig.key` where the config has one, else the teacher's name.
        config: the config block (weights as written: `builtin:...`, a path or `random`).
        weights_path: the resolved local path (`None` for `random`).
        backbone: the frozen teacher, fp32.
        fingerprint: `teacher_fingerprint` of the fp32 weights.
    """

    key: str
    config: TeacherConfig
    weights_path: str | None
    backbone: Backbone
    fingerprint: float

    def describe(self) -> dict[str, Any]:
        """What the cache header records of this teacher (JSON-ready)."""
        b = self.backbone
        size = b.spec.img_size
        return {
            "key": self.key,
            "name": self.config.name,
            "weights": self.config.weights,
            "weights_path": self.weights_path,
            "kwargs": dict(self.config.kwargs),
            "fingerprint": self.fingerprint,
            "mean": [float(v) for v in b.spec.mean],
            "std": [float(v) for v in b.spec.std],
            "img_size": int(size),
            "patch_size": int(b.patch_size),
            "embed_dim": int(b.embed_dim),
        }

    def dtype(self, device: torch.device) -> torch.dtype:
        """The dtype it runs in: its config's, `auto` being bf16 on CUDA and fp32 elsewhere."""
        wanted = self.config.dtype
        if wanted == "auto":
            wanted = "bf16" if device.type == "cuda" else "fp32"
        return _DTYPES[wanted]


def _keys(configs: list[TeacherConfig]) -> list[str]:
    """The module's labels (`teacher_keys`); unique, they name the cache's entries."""
    try:
        return teacher_keys(configs)
    except ValueError as err:
        raise CacheError(str(err)) from None


def teacher_blocks(model: dict[str, Any]) -> list[tuple[str, TeacherConfig]]:
    """(key, config) of each teacher of a train config's `model` section.

    `model.teachers` (a list of teacher blocks) wins over `model.teacher`; without either, the
    default `TeacherConfig`. Keys are the distillation module's: a block's `key`, else its name
    (made safe, numbered on repeats).
    """
    blocks = model.get("teachers") or [model.get("teacher") or {}]
    configs = []
    for block in blocks:
        block = dict(block) if isinstance(block, dict) else dataclasses.asdict(block)
        configs.append(as_config(TeacherConfig, block))
    return list(zip(_keys(configs), configs, strict=True))


def build_teachers(blocks: list[tuple[str, TeacherConfig]], seed: int = 0) -> list[CacheTeacher]:
    """Check every teacher's weights (cheap, first), then build each frozen in fp32.

    `seed` seeds a `random` teacher as `DistillationModule` does (its `model.seed`; teacher
    `i` of a list `seed + 7919 * i`), so a cache of a random test teacher matches the module's.
    """
    paths = []
    for key, config in blocks:
        try:
            path, _ = check_model_weights(config.weights, config.name, None, False)
        except (ValueError, FileNotFoundError) as err:
            raise CacheError(f"teacher {key!r}: {err}") from err
        paths.append(path)
    teachers = []
    for i, ((key, config), path) in enumerate(zip(blocks, paths, strict=True)):
        with torch.random.fork_rng(devices=[]):
            backbone = build_teacher(config.name, path, seed=seed + 7919 * i, **config.kwargs)
        teachers.append(CacheTeacher(key, config, path, backbone, teacher_fingerprint(backbone)))
    return teachers
