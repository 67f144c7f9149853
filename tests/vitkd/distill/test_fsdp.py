"""Distributed strategies on CPU (gloo): FSDP2 runs, and checkpoints written mid-run resume (DDP, FSDP2)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import distill_fixtures as fixtures
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher
from safetensors.torch import load_file
from torch.distributed.tensor import DTensor

from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import DistillDataModule
from vitkd.distill.config import LossConfig, OptimConfig
from vitkd.distill.fsdp2 import DistillFSDP2Strategy
from vitkd.distill.module import DistillationModule
from vitkd.distill.summary import RunSummary
from vitkd.models import load_exported


def tiny_module() -> DistillationModule:
    """The shared tiny pair, without KoLeo (per device by definition) and without warm-up."""
    return fixtures.tiny_module(
        losses=LossConfig(koleo=0.0), optim=OptimConfig(base_lr=0.05, warmup_fraction=0.0)
    )


def tiny_data(samples: int = 16, batch_size: int = 2) -> DistillDataModule:
    """The shared tiny data module: batch 2 per device, no masks."""
    return fixtures.tiny_data(
        masking=MaskConfig(enabled=False), batch_size=batch_size, samples_per_epoch=samples
    )


def _local_fraction(module: torch.nn.Module) -> float:
    """Elements this rank holds / elements of the module's parameters (1.0 when unsharded)."""
    local = sum(
        p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in module.parameters()
    )
    return local / sum(p.numel() for p in module.parameters())


class _SaveStudent(L.Callback):
    """Writes the final student weights and step from rank 0 (spawned ranks return nothing),
    with how much of each backbone a rank held and which tensors had gradients in training."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.training: dict[str, Any] = {}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        self.training = {
            "all_dtensor": all(
                isinstance(p, DTensor)
                for name in ("teacher", "student", "ema", "objective")
                for p in getattr(pl_module, name).parameters()
            ),
            "local_fraction": {
                name: _local_fraction(getattr(pl_module, name))
                for name in ("teacher", "student", "ema")
            },
            "teacher_grads": sum(p.grad is not None for p in pl_module.teacher.parameters()),
            "student_grads_sharded": all(
                isinstance(p.grad, DTensor) for p in pl_module.student.parameters()
            ),
        }

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = pl_module.student.state_dict()  # collective under FSDP: every rank calls it
        # FSDP2 shards: gathering them is a collective too
        state = {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}
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
                    "teacher_optimizer_states": sum(id(p) in teacher_ids for p in opt.state),
                    "optimizer_states": len(opt.state),
                    "student_params": sum(1 for p in pl_module.student.parameters()),
                    **self.training,
                },
                self.path,
            )


class _SaveEMA(L.Callback):
    """Writes the EMA shadow's weights, gathered from every rank's shards, from rank 0."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = pl_module.ema.state_dict()
        state = {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}
        if trainer.is_global_zero:
            torch.save({k: v.detach().cpu() for k, v in state.items()}, self.path)


class _SpawnShardsLauncher(_MultiProcessingLauncher):
    """Spawns, but sends no weights back: FSDP2 shards load only inside the process group
    (`_SaveStudent` writes the gathered student instead)."""

    def _collect_rank_zero_results(self, trainer: L.Trainer, results: Any) -> Any:
        output = super()._collect_rank_zero_results(trainer, results)
        if output is None or output.weights_path is None:
            return output
        self._strategy.checkpoint_io.remove_checkpoint(output.weights_path)
        return output._replace(weights_path=None)


class CPUFSDP2Strategy(DistillFSDP2Strategy):
    """vitkd's FSDP2 strategy on gloo, spawned like `ddp_spawn`, so the ranks do not re-run pytest as a
    subprocess launcher would."""

    def _configure_launcher(self) -> None:
        self._launcher = _SpawnShardsLauncher(self, start_method="spawn")


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


def test_ddp_checkpoint_written_mid_run_resumes_to_the_same_state(tmp_path: Path) -> None:
    # 16 draws / (2 ranks x batch 2) = 4 steps per epoch; checkpoint after step 2 (mid-epoch)
    full = tmp_path / "full.pt"
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=2, save_top_k=-1)
    saves = [_SaveStudent(full), _SaveEMA(tmp_path / "full_ema.pt")]
    _trainer(tmp_path / "a", 4, "ddp_spawn", [ckpt, *saves]).fit(
        tiny_module(), datamodule=tiny_data()
    )
    mid = sorted((tmp_path / "ck").glob("*step=2*.ckpt"))
    assert mid, sorted(p.name for p in (tmp_path / "ck").iterdir())
    resumed = tmp_path / "resumed.pt"
    saves = [_SaveStudent(resumed), _SaveEMA(tmp_path / "resumed_ema.pt")]
    _trainer(tmp_path / "b", 4, "ddp_spawn", saves, enable_checkpointing=False).fit(
        tiny_module(), datamodule=tiny_data(), ckpt_path=str(mid[0])
    )
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["step"] == b["step"] == 4
    assert not a["teacher_in_optimizer"]
    # Adam state only for student/objective parameters: never for the frozen teacher
    assert a["optimizer_states"] >= a["student_params"]
    for key, value in a["student"].items():
        torch.testing.assert_close(b["student"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # the EMA shadow too: the step-2 checkpoint already holds step 2's update
    ema_a = torch.load(tmp_path / "full_ema.pt", weights_only=True)
    ema_b = torch.load(tmp_path / "resumed_ema.pt", weights_only=True)
    for key, value in ema_a.items():
        torch.testing.assert_close(ema_b[key], value, rtol=1e-5, atol=1e-6, msg=f"ema.{key}")


@pytest.fixture(scope="module")
def fsdp2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 steps of one process (batch 4) and of 2-process FSDP2 (batch 2 each), checkpointed at
    steps 2 and 4: the same global batches (16 draws / 4 per step). The FSDP2 run also has a
    `RunSummary` (its forwards and gathers are collectives: every rank must make them)."""
    tmp = tmp_path_factory.mktemp("fsdp2")
    fixtures.trainer(tmp / "s", 4, callbacks=[_SaveStudent(tmp / "single.pt")]).fit(
        tiny_module(), datamodule=tiny_data(batch_size=4)
    )
    ckpt = ModelCheckpoint(dirpath=tmp / "ck", every_n_train_steps=2, save_top_k=-1)
    # a collective only one rank makes fails in 2 minutes instead of the default 30
    strategy = CPUFSDP2Strategy(process_group_backend="gloo", timeout=timedelta(seconds=120))
    # held-out batches of 4: several all-gathers per forward pass of the 16 held-out tiles
    callbacks = [
        ckpt,
        _SaveStudent(tmp / "fsdp2.pt"),
        _SaveEMA(tmp / "ema.pt"),
        RunSummary(True, 4),
    ]
    _trainer(tmp / "f", 4, strategy, callbacks).fit(tiny_module(), datamodule=tiny_data())
    return tmp


def test_fsdp2_on_cpu_shards_everything_and_equals_one_process(fsdp2_run: Path) -> None:
    single = torch.load(fsdp2_run / "single.pt", weights_only=True)
    result = torch.load(fsdp2_run / "fsdp2.pt", weights_only=True)
    assert result["step"] == 4
    # every teacher, student, EMA and objective parameter is a DTensor, half of it on this rank
    assert result["all_dtensor"] and result["student_grads_sharded"]
    assert all(0.3 < f < 0.7 for f in result["local_fraction"].values()), result
    # the frozen teacher: no gradients, not in the optimiser, no Adam state
    assert result["teacher_grads"] == 0
    assert not result["teacher_in_optimizer"] and result["teacher_optimizer_states"] == 0
    assert result["optimizer_states"] >= result["student_params"]
    initial = tiny_module().student.state_dict()
    assert any(not torch.equal(single["student"][k], initial[k]) for k in initial)
    for key, value in single["student"].items():
        torch.testing.assert_close(result["student"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # a single-file checkpoint with DDP's keys: full student and EMA, no teacher, its fingerprint
    (last,) = (fsdp2_run / "ck").glob("*step=4*.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    state = checkpoint["state_dict"]
    assert not [k for k in state if k.startswith("teacher.")]
    assert any(k.startswith("ema.") for k in state)
    for key, value in result["student"].items():
        torch.testing.assert_close(state[f"student.{key}"], value, rtol=0, atol=0, msg=key)
    assert checkpoint["vitkd_teacher"]["fingerprint"] == tiny_module()._teacher_fingerprint


def test_fsdp2_checkpoint_written_mid_run_resumes_to_the_same_student(
    fsdp2_run: Path, tmp_path: Path
) -> None:
    (mid,) = (fsdp2_run / "ck").glob("*step=2*.ckpt")
    resumed = tmp_path / "resumed.pt"
    strategy = CPUFSDP2Strategy(process_group_backend="gloo")
    _trainer(tmp_path, 4, strategy, [_SaveStudent(resumed)], enable_checkpointing=False).fit(
        tiny_module(), datamodule=tiny_data(), ckpt_path=str(mid)
    )
    a = torch.load(fsdp2_run / "fsdp2.pt", weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert b["step"] == 4 and b["teacher_optimizer_states"] == 0
    for key, value in a["student"].items():
        torch.testing.assert_close(b["student"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_fsdp2_run_summary_measures_and_exports_the_gathered_weights(fsdp2_run: Path) -> None:
    run_dir = fsdp2_run / "f"  # no logger: the run folder is default_root_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 4
    before, after = summary["fidelity_before"], summary["fidelity_after"]
    assert before["tiles"] == 16 and "adaptor_cosine" in before["cls"]  # adaptor gathered too
    assert {"ema", "student"} <= set(after) and "patch" in after["ema"]
    # one export and one random teacher, written once from full (not sharded) weights
    assert sorted(fsdp2_run.rglob("model.safetensors")) == [
        run_dir / "export" / "model.safetensors",
        run_dir / "teacher" / "model.safetensors",
    ]
    ema = torch.load(fsdp2_run / "ema.pt", weights_only=True)
    exported = load_file(run_dir / "export" / "model.safetensors")
    assert exported.keys() == {k.removeprefix("model.") for k in ema if k.startswith("model.")}
    for key, value in exported.items():
        torch.testing.assert_close(value, ema[f"model.{key}"], rtol=0, atol=0, msg=key)
    teacher = tiny_module().teacher.model.state_dict()  # fixed-seed random init, frozen
    for key, value in load_file(run_dir / "teacher" / "model.safetensors").items():
        torch.testing.assert_close(value, teacher[key], rtol=0, atol=0, msg=key)
    load_exported(run_dir / "export")  # strict
