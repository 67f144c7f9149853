"""Speed switches of a distillation run: attention kernel, `torch.compile`, matmul precision.

Each switch is measured by `scripts/bench_train.py` before it becomes a default (docs/scaling.md
has the figures). Fused AdamW is `OptimConfig.fused`, activation checkpointing
`StudentConfig.grad_checkpointing`; pinned memory, persistent workers and the device-side
augmentation are options of `DistillDataModule`. Host-to-device copies are already non-blocking:
Lightning moves batches with ``non_blocking=True`` to CUDA devices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedConfig:
    """Speed options that do not change the maths (losses agree within float tolerance).

    Args:
        attention: ``sdpa`` (timm's fused ``F.scaled_dot_product_attention``: flash /
            memory-efficient kernels on CUDA), ``eager`` (explicit softmax(QK^T)V), or ``auto``
            (timm's default, SDPA unless ``TIMM_FUSED_ATTN=0``).
        compile_student: compile each student block with `torch.compile` (regional compilation:
            the blocks share one compiled graph per input shape, so compiling is fast and global
            and local crops each get their own graph).
        compile_teacher: the same for the teacher's blocks (forward only, in its dtype).
        compile_mode: `torch.compile` mode (``default``, ``reduce-overhead``,
            ``max-autotune``, ``max-autotune-no-cudagraphs``).
        compile_backend: `torch.compile` backend (``inductor``; ``aot_eager`` to debug).
        matmul_precision: `torch.set_float32_matmul_precision` (``high`` allows TF32 for the
            fp32 parts on Ampere and later; ``highest`` keeps full fp32).
    """

    attention: Literal["auto", "sdpa", "eager"] = "auto"
    compile_student: bool = False
    compile_teacher: bool = False
    compile_mode: str = "default"
    compile_backend: str = "inductor"
    matmul_precision: Literal["highest", "high", "medium"] = "high"


def set_attention(module: nn.Module, attention: str) -> int:
    """Switch every timm attention layer under ``module`` to SDPA or eager; returns how many."""
    if attention not in ("auto", "sdpa", "eager"):
        raise ValueError(f"speed.attention={attention!r}: choose 'auto', 'sdpa' or 'eager'")
    count = 0
    for layer in module.modules():
        if hasattr(layer, "fused_attn"):
            if attention != "auto":
                layer.fused_attn = attention == "sdpa"
            count += 1
    return count


def attention_kinds(module: nn.Module) -> set[str]:
    """The attention implementations in use under ``module`` (``sdpa`` and/or ``eager``)."""
    return {
        "sdpa" if m.fused_attn else "eager" for m in module.modules() if hasattr(m, "fused_attn")
    }


def compile_blocks(model: nn.Module, mode: str = "default", backend: str = "inductor") -> int:
    """Compile each transformer block of a timm ViT in place; returns the number compiled.

    In-place `nn.Module.compile` keeps parameter names (checkpoints, EMA and DDP are unaffected).
    ``dynamic=False`` gives one static graph per crop size instead of a slower dynamic one.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no `blocks`; compile needs a timm ViT")
    options = {"backend": backend, "dynamic": False}
    if mode != "default":
        options["mode"] = mode
    for block in blocks:
        if not getattr(block, "_compiled_call_impl", None):
            block.compile(**options)
    return len(blocks)


def apply_speed(student: nn.Module | None, teacher: nn.Module, config: SpeedConfig) -> None:
    """Apply ``config`` to the student and teacher `Backbone`s (idempotent); `student=None` for
    a further teacher of a multi-teacher run."""
    torch.set_float32_matmul_precision(config.matmul_precision)
    if student is not None:
        set_attention(student, config.attention)
    set_attention(teacher, config.attention)
    if config.compile_student and student is not None:
        n = compile_blocks(student.model, config.compile_mode, config.compile_backend)
        log.info(
            "compiled %d student blocks (%s, %s)", n, config.compile_backend, config.compile_mode
        )
    if config.compile_teacher:
        n = compile_blocks(teacher.model, config.compile_mode, config.compile_backend)
        log.info(
            "compiled %d teacher blocks (%s, %s)", n, config.compile_backend, config.compile_mode
        )
