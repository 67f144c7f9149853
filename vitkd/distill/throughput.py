"""Throughput measurement of a distillation step: the full Lightning step, pure compute, FLOPs.

Used by `scripts/bench_train.py`; kept in the package so the pieces are tested.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitkd.distill.speed import attention_kinds, set_attention

# Dense bf16 tensor-core peaks (TFLOP/s) by CUDA device-name fragment, most specific first.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10", 125.0),
)


def peak_tflops(device: torch.device) -> float | None:
    """Nominal dense bf16 peak of a CUDA device (None on CPU or an unknown card)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (a no-op on CPU), so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on a CUDA device."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset, or the process's peak RSS on CPU (GB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


class StepTimer(L.Callback):
    """Times optimiser steps ``warmup + 1 .. warmup + steps`` of a fit, data loading included.

    The rate is images per step over the *median* step time: on a shared machine a few steps
    slowed by other processes then do not decide the figure.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.last: float | None = None
        self.durations: list[float] = []
        self.images: list[int] = []

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Record the wall time of each timed step (batch fetch + step)."""
        step = trainer.global_step
        if step < self.warmup or len(self.durations) >= self.steps:
            return
        synchronize(pl_module.device)
        now = time.perf_counter()
        if self.last is not None:
            self.durations.append(now - self.last)
            self.images.append(int(batch["n_images"]))
        self.last = now

    @property
    def rate(self) -> float:
        """Images (samples) per second at the median step time."""
        if not self.durations:
            raise RuntimeError("the fit ended before the timed steps; raise max_steps")
        return statistics.median(self.images) / statistics.median(self.durations)


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context Lightning uses for ``precision`` (nothing for 32-bit)."""
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _dense_loss(x: torch.Tensor) -> torch.Tensor:
    # a plain mean back-propagates a stride-0 (expanded) gradient, which sends the backward
    # matmuls down slow non-contiguous paths; a squared mean gives a dense one like real losses
    return x.float().square().mean()


def pure_step(
    module: Any,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    precision: str,
) -> None:
    """Teacher forward, student forward/backward on all crops and an optimiser step, no losses."""
    masks = batch["masks"] if module.targets != "features" else None
    module.forward_teacher(batch["teacher"])
    with autocast_for(precision, module.device):
        s = module.student.forward_tokens(batch["global"], masks)
        loss = _dense_loss(s.cls) + _dense_loss(s.patches)
        if batch["local"].shape[0]:
            loss = loss + _dense_loss(module.student.forward_tokens(batch["local"]).cls)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def pure_rate(
    module: Any, batch: dict[str, Any], precision: str, warmup: int, steps: int, fused: bool
) -> float:
    """Images per second of `pure_step` on one pre-made batch, at the median step time."""
    params = [p for p in module.student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=fused or None)
    module.student.train()
    for _ in range(warmup):
        pure_step(module, batch, optimizer, precision)
    durations = []
    for _ in range(steps):
        synchronize(module.device)
        start = time.perf_counter()
        pure_step(module, batch, optimizer, precision)
        synchronize(module.device)
        durations.append(time.perf_counter() - start)
    return int(batch["n_images"]) / statistics.median(durations)


@contextlib.contextmanager
def _eager_attention(*modules: torch.nn.Module) -> Iterator[None]:
    # the flop counter sees the matmuls of eager attention on every device; SDPA has the same FLOPs
    saved = [
        [(m, m.fused_attn) for m in mod.modules() if hasattr(m, "fused_attn")] for mod in modules
    ]
    for mod in modules:
        set_attention(mod, "eager")
    try:
        yield
    finally:
        for layer in saved:
            for m, value in layer:
                m.fused_attn = value


def count_flops(module: Any, batch: dict[str, Any], n_images: int = 1) -> dict[str, float]:
    """FLOPs per image of the teacher forward and the student forward + backward.

    Counted with `torch.utils.flop_counter.FlopCounterMode` on the first ``n_images`` of a
    multi-crop batch (all their global and local crops), without activation recomputation.
    """
    n = int(batch["n_images"])

    def first(x: torch.Tensor) -> torch.Tensor:
        return x.view(-1, n, *x.shape[1:])[:, :n_images].reshape(-1, *x.shape[1:])

    masks = first(batch["masks"]) if module.targets != "features" else None
    model = module.student.model
    ckpt = bool(model.grad_checkpointing)
    model.set_grad_checkpointing(False)
    try:
        with _eager_attention(module.student, module.teacher_backbone):
            with FlopCounterMode(display=False) as teacher_counter:
                module.forward_teacher(first(batch["teacher"]))
            with FlopCounterMode(display=False) as student_counter:
                s = module.student.forward_tokens(first(batch["global"]), masks)
                loss = _dense_loss(s.cls) + _dense_loss(s.patches)
                if batch["local"].shape[0]:
                    local = module.student.forward_tokens(first(batch["local"]))
                    loss = loss + _dense_loss(local.cls)
                loss.backward()
    finally:
        model.set_grad_checkpointing(ckpt)
        module.student.zero_grad(set_to_none=True)
    return {
        "teacher": teacher_counter.get_total_flops() / n_images,
        "student": student_counter.get_total_flops() / n_images,
    }


def loader_rate(
    loader: torch.utils.data.DataLoader,
    batches: int,
    warmup: int = 2,
    to_device: Any = None,
) -> float:
    """Images per second the DataLoader alone delivers (``to_device`` moves and finishes a batch)."""
    it = iter(loader)
    for _ in range(warmup):
        batch = next(it)
        if to_device is not None:
            to_device(batch)
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        batch = next(it)
        if to_device is not None:
            to_device(batch)
        images += int(batch["n_images"])
    seconds = time.perf_counter() - start
    del it
    return images / seconds


__all__ = [
    "PEAK_BF16_TFLOPS",
    "StepTimer",
    "attention_kinds",
    "count_flops",
    "loader_rate",
    "peak_memory_gb",
    "peak_tflops",
    "pure_rate",
    "pure_step",
    "reset_peak_memory",
    "synchronize",
]


def device_name(device: torch.device) -> str:
    """A readable name of the device (CUDA card or CPU with its core count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"
