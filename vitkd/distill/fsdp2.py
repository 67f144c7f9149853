"""`DistillFSDP2Strategy`: FSDP2 (`fully_shard`) over all devices for a teacher-student module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method
from torch.optim import Optimizer
from typing_extensions import override

# the frozen teacher is the local file named in the config: never saved, never loaded
_NOT_CHECKPOINTED = ("teacher",)


class DistillFSDP2Strategy(ModelParallelStrategy):
    """FSDP2 data parallelism over every device, sharding teacher, student and EMA shadow.

    Each timm ``Block`` of the teacher, the student and the EMA shadow is its own ``fully_shard``
    unit, then each backbone (embeddings, final norm, mask token) and the objective (adaptors or
    heads) is a unit of its own. The frozen teacher therefore costs 1/N of its weights per device
    and has neither gradients nor optimiser state; the teacher's prototype heads (small, frozen)
    stay replicated. Parameter names are unchanged, so the layer-wise lr groups still apply.
    Usable from YAML: ``trainer.strategy: {class_path: vitkd.distill.fsdp2.DistillFSDP2Strategy}``.

    Checkpoints leave the teacher out, as under DDP. By default they are one file with the same
    ``state_dict`` keys as a DDP checkpoint (so ``python -m vitkd.export`` reads them); with
    ``save_distributed_checkpoint`` each rank writes its shard into a folder instead. Either
    resumes under this strategy only (the optimiser state is keyed for FSDP2).

    Args:
        reshard_after_forward: free the student's gathered block weights after the forward pass
            and gather them again for the backward (ZeRO-3-like, least memory); ``False`` keeps
            them until the backward (ZeRO-2-like: one all-gather fewer per block and step). The
            teacher, which has no backward, always frees them.
        save_distributed_checkpoint: write sharded checkpoint folders instead of single files.
        process_group_backend: ``nccl`` on GPUs (the default there), ``gloo`` on CPUs.
        timeout: collective timeout.
    """

    def __init__(
        self,
        reshard_after_forward: bool = True,
        save_distributed_checkpoint: bool = False,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )
        self.reshard_after_forward = reshard_after_forward

    @override
    def setup_environment(self) -> None:
        # pure data parallelism: one shard per process (Lightning's "auto" is one per node)
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def shard(self, module: nn.Module) -> None:
        """Apply FSDP2 to a `DistillationModule` (called from its `configure_model`)."""
        if getattr(module, "self_distill", False):
            # the EMA teacher heads would need their own shard units and a sharded EMA update;
            # not built yet, so say so rather than fail inside a collective
            raise ValueError(
                "model.targets: self (self-distillation pretraining) does not run under "
                "DistillFSDP2Strategy yet; use trainer.strategy: ddp"
            )
        shard_distillation_module(
            module, self.device_mesh["data_parallel"], self.reshard_after_forward
        )

    @override
    def lightning_module_state_dict(self) -> dict[str, Any]:
        with self._checkpointed_part():
            return super().lightning_module_state_dict()

    @override
    def optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        with self._checkpointed_part():
            return super().optimizer_state(optimizer)

    @override
    def load_checkpoint(
        self, checkpoint_path: _PATH, weights_only: bool | None = None
    ) -> dict[str, Any]:
        with self._checkpointed_part():
            return super().load_checkpoint(checkpoint_path, weights_only=weights_only)

    @contextmanager
    def _checkpointed_part(self) -> Iterator[None]:
        # Lightning's FSDP2 save/load work on `self.model` and would gather (or demand) the
        # teacher's weights; showing them a view without it keeps every other name unchanged
        model = self.model
        self.model = without_children(model, _NOT_CHECKPOINTED)
        try:
            yield
        finally:
            self.model = model


def shard_distillation_module(
    module: nn.Module, mesh: DeviceMesh, reshard_after_forward: bool = True
) -> None:
    """``fully_shard`` each block of teacher, student and EMA, then each backbone and the objective.

    Idempotent: a module that is already sharded is left as it is.

    Args:
        module: a `DistillationModule` (``teacher``, ``student``, ``ema``, ``objective``).
        mesh: the 1-D data-parallel device mesh.
        reshard_after_forward: for the student and the objective (see `DistillFSDP2Strategy`).
    """
    # the teacher has no backward and the EMA shadow no forward in training: keep them sharded
    for name, reshard in (("teacher", True), ("student", reshard_after_forward), ("ema", True)):
        backbone = getattr(module, name)
        if isinstance(backbone, FSDPModule):
            continue
        for block in backbone.model.blocks:
            fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
        fully_shard(backbone, mesh=mesh, reshard_after_forward=reshard)
        # training calls `forward_tokens`, not `forward`: FSDP must gather around it too
        register_fsdp_forward_method(backbone, "forward_tokens")
    if not isinstance(module.objective, FSDPModule):
        fully_shard(module.objective, mesh=mesh, reshard_after_forward=reshard_after_forward)


def without_children(module: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """A module holding ``module``'s children except ``names``, and its own parameters and
    buffers, under the same names (shared, not copied: loading into it loads into ``module``)."""
    view = nn.Module()
    for name, child in module.named_children():
        if name not in names:
            view.add_module(name, child)
    for name, param in module.named_parameters(recurse=False):
        view.register_parameter(name, param)
    for name, buffer in module.named_buffers(recurse=False):
        persistent = name not in module._non_persistent_buffers_set
        view.register_buffer(name, buffer, persistent=persistent)
    return view
