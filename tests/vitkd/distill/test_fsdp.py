"""Distributed strategies on CPU (gloo): FSDP runs, and a DDP checkpoint written mid-run resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import distill_fixtures as fixtures
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import DistillDataModule
from vitkd.distill.config import LossConfig, OptimConfig
from vitkd.distill.fsdp import DistillFSDPStrategy
from vitkd.distill.module import DistillationModule


def tiny_module() -> DistillationModule:
    """The shared tiny pair, without KoLeo (per device by definition) and without warm-up."""
    return fixtures.tiny_module(
        losses=LossConfig(koleo=0.0), optim=OptimConfig(base_lr=0.05, warmup_fraction=0.0)
    )


def tiny_data(samples: int = 16) -> DistillDataModule:
    """The shared tiny data module: batch 2, no masks."""
    return fixtures.tiny_data(
        masking=MaskConfig(enabled=False), batch_size=2, samples_per_epoch=samples
    )


class _SaveStudent(L.Callback):
    """Writes the final student weights and step from rank 0 (spawned ranks return nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = pl_module.student.state_dict()  # collective under FSDP: every rank calls it
        opt = trainer.optimizers[0]
        if trainer.is_global_zero:
            teacher_ids = {id(p) for p in pl_module.teacher.parameters()}
            torch.save(
                {
                    "student": {k: v.detach().cpu() for k, v in state.items()},
                    "step": trainer.global_step,
                    "teacher_in_optimizer": any(
                        id(p) in teacher_ids for g in opt.param_groups for p in g["params"]
                    ),
                    "optimizer_states": len(opt.state),
                    "student_params": sum(1 for p in pl_module.student.parameters()),
                },
                self.path,
            )


class CPUFSDPStrategy(DistillFSDPStrategy):
    """vitkd's FSDP strategy on gloo (Lightning only refuses its own `FSDPStrategy` on CPU).

    Spawned like `ddp_spawn`, so the ranks do not re-run pytest as a subprocess launcher would.
    """

    def _configure_launcher(self) -> None:
        self._launcher = _MultiProcessingLauncher(self, start_method="spawn")


def _trainer(tmp: Path, steps: int, strategy: Any, callbacks: list, **kw: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp),
        callbacks=callbacks,
        **kw,
    )


def _fsdp_cpu_error() -> str | None:
    """Why torch's FSDP cannot wrap a module on this CPU-only machine (None if it can)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        FullyShardedDataParallel(torch.nn.Linear(2, 2))
    except (RuntimeError, NotImplementedError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    finally:
        dist.destroy_process_group()
    return None


def test_fsdp_runs_on_cpu_with_a_sharded_student_and_frozen_teacher(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the gpu-marked FSDP test runs the real FSDP path instead")
    error = _fsdp_cpu_error()
    if error is not None:
        pytest.skip(
            f"torch {torch.__version__} cannot run FSDP on CPU/gloo here ({error}); "
            "the FSDP path is covered by the gpu-marked test in tests/vitkd/distill/test_speed_options.py"
        )
    strategy = CPUFSDPStrategy(process_group_backend="gloo")
    out = tmp_path / "fsdp.pt"
    _trainer(tmp_path, 2, strategy, [_SaveStudent(out)], enable_checkpointing=False).fit(
        tiny_module(), datamodule=tiny_data()
    )
    result = torch.load(out, weights_only=True)
    assert result["step"] == 2
    assert not result["teacher_in_optimizer"]
    assert all(torch.isfinite(v).all() for v in result["student"].values())


@pytest.mark.slow
def test_ddp_checkpoint_written_mid_run_resumes_to_the_same_state(tmp_path: Path) -> None:
    # 16 draws / (2 ranks x batch 2) = 4 steps per epoch; checkpoint after step 2 (mid-epoch)
    full = tmp_path / "full.pt"
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=2, save_top_k=-1)
    _trainer(tmp_path / "a", 4, "ddp_spawn", [ckpt, _SaveStudent(full)]).fit(
        tiny_module(), datamodule=tiny_data()
    )
    mid = sorted((tmp_path / "ck").glob("*step=2*.ckpt"))
    assert mid, sorted(p.name for p in (tmp_path / "ck").iterdir())
    resumed = tmp_path / "resumed.pt"
    _trainer(
        tmp_path / "b", 4, "ddp_spawn", [_SaveStudent(resumed)], enable_checkpointing=False
    ).fit(tiny_module(), datamodule=tiny_data(), ckpt_path=str(mid[0]))
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["step"] == b["step"] == 4
    assert not a["teacher_in_optimizer"]
    # Adam state only for student/objective parameters: never for the frozen teacher
    assert a["optimizer_states"] >= a["student_params"]
    for key, value in a["student"].items():
        torch.testing.assert_close(b["student"][key], value, rtol=1e-5, atol=1e-6, msg=key)
