"""`DistillFSDPStrategy`: Lightning's FSDP with the settings a teacher-student module needs."""

from __future__ import annotations

from typing import Any, Literal

from lightning.pytorch.strategies import FSDPStrategy
from timm.models.vision_transformer import Block

from vitkd.models import Backbone


class DistillFSDPStrategy(FSDPStrategy):
    """FSDP that shards each transformer block and keeps the original parameters.

    ``use_orig_params=True`` lets frozen teacher and trainable student parameters share a flat
    parameter and keeps parameter names, which the layer-wise learning-rate groups read. Each
    timm ``Block`` (teacher, student and EMA shadow alike) is its own FSDP unit, so the frozen
    teacher is sharded too and costs 1/N of its weights per GPU. Usable from YAML:
    ``trainer.strategy: {class_path: vitkd.distill.fsdp.DistillFSDPStrategy}``.

    Args:
        sharding_strategy: ``FULL_SHARD`` (parameters, gradients, optimiser state),
            ``SHARD_GRAD_OP`` (gradients and optimiser state only: faster, more memory),
            ``HYBRID_SHARD`` (full sharding within a node, replication across nodes).
        cpu_offload: keep sharded parameters on the CPU between uses.
        activation_checkpointing: recompute each block in the backward pass (FSDP's own; or use
            ``model.student.grad_checkpointing``).
        **kwargs: passed to Lightning's `FSDPStrategy`.
    """

    def __init__(
        self,
        sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = (
            "FULL_SHARD"
        ),
        cpu_offload: bool = False,
        activation_checkpointing: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_wrap_policy", {Block, Backbone})
        kwargs.setdefault("use_orig_params", True)
        if activation_checkpointing:
            kwargs.setdefault("activation_checkpointing_policy", {Block})
        super().__init__(sharding_strategy=sharding_strategy, cpu_offload=cpu_offload, **kwargs)
