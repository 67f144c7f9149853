"""Refuse, with an estimate, to train a full-size teacher-student pair on the CPU by accident."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import timm
import torch

from vitkd.models.presets import resolve_spec

# a step longer than this on the CPU is a run the user must ask for
MAX_CPU_STEP_SECONDS = 60.0


class SlowCPURunError(RuntimeError):
    """A configuration whose steps would take minutes each on this CPU, without the flag."""


@dataclass
class StepEstimate:
    """Forward/backward FLOPs of one training step and the time this CPU needs for them."""

    teacher_params: int
    student_params: int
    flops: float
    cpu_gflops: float
    teacher_flops: float = 0.0  # the teacher forward's part of `flops`

    @property
    def seconds(self) -> float:
        """Lower bound of one step's time: FLOPs at the measured matmul rate."""
        return self.flops / (self.cpu_gflops * 1e9)


def _vit_shape(name: str, kwargs: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    """(parameters, block matmul weights, patch-embedding weights, depth, width, patch, prefix
    tokens) of a ViT, built on the meta device."""
    spec = resolve_spec(name, **kwargs)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = timm.create_model(spec.arch, **spec.build_kwargs())
    linear = sum(m.weight.numel() for m in model.blocks.modules() if isinstance(m, torch.nn.Linear))
    return (
        sum(p.numel() for p in model.parameters()),
        linear,
        model.patch_embed.proj.weight.numel(),
        len(model.blocks),
        model.embed_dim,
        model.patch_embed.patch_size[0],
        model.num_prefix_tokens,
    )


def _forward_flops(shape: tuple[int, ...], side: int, images: int) -> float:
    # 2 FLOPs per matmul weight per token (blocks on every token, the patch embedding on patch
    # tokens), plus the attention products (QK^T and AV: 4 T^2 D per block)
    _, linear, embedding, depth, width, patch, prefix = shape
    patches = (side // patch) ** 2
    tokens = patches + prefix
    per_image = 2.0 * (linear * tokens + embedding * patches) + 4.0 * depth * tokens**2 * width
    return images * per_image


def cpu_gflops(seconds: float = 0.3) -> float:
    """fp32 matmul GFLOP/s of this CPU with torch's threads, measured for about `seconds`."""
    a = torch.randn(512, 512)
    a @ a  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    return 2 * 512**3 * n / (time.perf_counter() - start) / 1e9


def estimate_step(model: dict[str, Any], data: dict[str, Any]) -> StepEstimate:
    """FLOPs of one step of a `vitkd.train` config (its `model` and `data` sections).

    Teacher: one forward of the global crops (none for self-distillation, whose EMA teacher
    costs one student forward). Student: forward + backward (3x a forward) of global and
    local crops.
    """
    crops = data.get("crops") or {}
    batch = int(data.get("batch_size") or 32)
    g_side, l_side = int(crops.get("global_size", 224)), int(crops.get("local_size", 98))
    n_g, n_l = int(crops.get("n_global", 2)), int(crops.get("n_local", 8))
    s_cfg = model.get("student") or {}
    student = _vit_shape(s_cfg.get("name", "h0-mini"), dict(s_cfg.get("kwargs") or {}))
    flops = 3 * (
        _forward_flops(student, g_side, n_g * batch) + _forward_flops(student, l_side, n_l * batch)
    )
    if model.get("targets") == "self":
        teacher = student
    else:
        t_cfg = model.get("teacher") or {}
        teacher = _vit_shape(t_cfg.get("name", "h-optimus-0"), dict(t_cfg.get("kwargs") or {}))
    teacher_flops = _forward_flops(teacher, g_side, n_g * batch)
    return StepEstimate(teacher[0], student[0], flops + teacher_flops, cpu_gflops(), teacher_flops)


def check_cpu_run(
    model: dict[str, Any], data: dict[str, Any], max_steps: int, allow: bool
) -> StepEstimate:
    """Raise `SlowCPURunError` (what would run, how long a step takes, the flag) unless `allow`
    or a step takes under `MAX_CPU_STEP_SECONDS` here."""
    est = estimate_step(model, data)
    if est.seconds > MAX_CPU_STEP_SECONDS and not allow:
        hours = est.seconds * max(1, max_steps) / 3600
        raise SlowCPURunError(
            f"this config trains a {est.teacher_params / 1e6:,.0f} M-parameter teacher into a "
            f"{est.student_params / 1e6:,.0f} M-parameter student on the CPU: "
            f"{est.flops / 1e12:,.1f} TFLOP per step, at least {est.seconds:,.0f} s per step on "
            f"this machine ({est.cpu_gflops:,.0f} GFLOP/s measured), at least {hours:,.1f} h for "
            f"{max_steps} steps. Run it on a GPU (--trainer.accelerator gpu), use the demo "
            "(no --config), or pass --allow_slow_cpu true to start anyway"
        )
    return est
