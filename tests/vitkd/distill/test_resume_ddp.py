"""Resuming continues the same loss curve; 2-process DDP equals one process on the global batch."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from distill_fixtures import LossRecorder, tiny_data, tiny_module, trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from vitkd.distill.config import LossConfig


def test_resume_from_checkpoint_continues_the_same_loss_curve(tmp_path) -> None:
    # 8 draws / batch 4 -> 2 steps per epoch; 6 steps in one go, checkpointed after each epoch
    full = LossRecorder()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1, filename="{epoch}")
    trainer(tmp_path / "full", 6, callbacks=[full, ckpt], enable_checkpointing=True).fit(
        tiny_module(), datamodule=tiny_data(samples_per_epoch=8)
    )
    resumed = LossRecorder()
    trainer(tmp_path / "b", 6, callbacks=[resumed]).fit(
        tiny_module(),
        datamodule=tiny_data(samples_per_epoch=8),
        ckpt_path=tmp_path / "ck" / "epoch=0.ckpt",
    )
    assert len(resumed.losses) == 4
    assert resumed.losses == pytest.approx(full.losses[2:], rel=1e-4, abs=1e-5)


def test_checkpoint_holds_no_teacher_weights_and_rejects_another_teacher(tmp_path) -> None:
    from vitkd.distill.config import TeacherConfig

    module = tiny_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer(tmp_path, 1, callbacks=[ckpt], enable_checkpointing=True).fit(
        module, datamodule=tiny_data()
    )
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert not [k for k in state["state_dict"] if k.startswith("teacher.")]
    assert any(k.startswith("ema.") for k in state["state_dict"])
    other = TeacherConfig(
        name=module.teacher_cfg.name, weights="random", kwargs=module.teacher_cfg.kwargs
    )
    with pytest.raises(ValueError, match="different teacher"):
        tiny_module(teacher=other, seed=1).on_load_checkpoint(state)


class _FinalWeights(L.Callback):
    """Sends the student's weights back from a spawned rank 0 through a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            torch.save(pl_module.student.state_dict(), self.path)


def test_two_process_ddp_equals_one_process_on_the_same_global_batch(tmp_path) -> None:
    # KoLeo is per device by definition (DINOv2, dinov2/loss/koleo_loss.py), so it is left out
    losses = LossConfig(koleo=0.0)
    single = tmp_path / "single.pt"
    trainer(tmp_path / "s", 3, callbacks=[_FinalWeights(str(single))]).fit(
        tiny_module(losses=losses), datamodule=tiny_data(batch_size=4, samples_per_epoch=24)
    )
    ddp = tmp_path / "ddp.pt"
    trainer(
        tmp_path / "d",
        3,
        devices=2,
        strategy="ddp_spawn",
        callbacks=[_FinalWeights(str(ddp))],
    ).fit(tiny_module(losses=losses), datamodule=tiny_data(batch_size=2, samples_per_epoch=24))
    a, b = torch.load(single, weights_only=True), torch.load(ddp, weights_only=True)
    initial = tiny_module(losses=losses).student.state_dict()
    assert any(not torch.equal(a[k], initial[k]) for k in a)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
