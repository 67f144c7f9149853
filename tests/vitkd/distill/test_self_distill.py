"""Self-distillation pretraining (`targets: self`): teacher = EMA of the student and its heads."""

from __future__ import annotations

import math

import pytest
import torch
from distill_fixtures import LossRecorder, tiny_data, tiny_module, trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from vitkd.data.datamodule import CropConfig
from vitkd.distill.collapse import CollapseMonitor, collapse_stats
from vitkd.distill.config import HeadConfig, LossConfig

HEADS = HeadConfig(prototypes=64, ibot_prototypes=64, hidden_dim=32, bottleneck_dim=16)


def _module(**overrides):
    return tiny_module(targets="self", heads=HEADS, **overrides)


def _data(**overrides):
    crops = CropConfig(
        global_size=56, local_size=28, n_local=2, augment="dinov2", teacher_view="same"
    )
    return tiny_data(crops=crops, **overrides)


def test_self_mode_has_no_frozen_teacher_and_its_teacher_is_the_ema() -> None:
    module = _module()
    assert not hasattr(module, "teacher")
    assert module.teacher_backbone is module.ema
    assert set(module.teacher_heads) == {"dino", "ibot"}
    # the teacher heads start as copies of the student heads
    for name in ("dino", "ibot"):
        own = getattr(module.objective, f"{name}_head").state_dict()
        for key, value in module.teacher_heads[name].state_dict().items():
            assert torch.equal(value, own[key]), f"{name}.{key}"
    assert module.student.mask_token is not None and bool(module.heads_ready)


def test_loss_falls_no_collapse_and_the_teacher_is_never_optimised(tmp_path) -> None:
    module = _module()
    recorder = LossRecorder()
    heads_before = {k: v.clone() for k, v in module.teacher_heads.state_dict().items()}
    trainer(tmp_path, 30, callbacks=[recorder]).fit(module, datamodule=_data())
    first, last = sum(recorder.losses[:5]) / 5, sum(recorder.losses[-5:]) / 5
    assert last < 0.9 * first, recorder.losses
    optimised = {id(p) for g in module.optimizers().optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in module.ema.parameters()}
    assert not optimised & {id(p) for p in module.teacher_heads.parameters()}
    assert all(not p.requires_grad for p in module.ema.parameters())
    assert not module.ema.training
    # the teacher heads follow the student heads' EMA
    after = module.teacher_heads.state_dict()
    assert any(not torch.equal(heads_before[k], after[k]) for k in heads_before)
    # a short healthy run: embeddings spread, several prototypes picked
    stats = {k: float(v) for k, v in module._collapse_stats.items()}
    assert stats["cls_std"] > 0.05 and stats["prototypes_distinct"] > 1, stats


def test_ema_of_the_heads_uses_the_scheduled_momentum(tmp_path) -> None:
    module = _module()
    trainer(tmp_path, 1).fit(module, datamodule=_data())
    # after one step: teacher head = m * initial + (1 - m) * stepped student head
    m = module.schedule(0, 4)["ema_momentum"]
    fresh = _module()
    for name in ("dino",):
        student_heads = getattr(module.objective, f"{name}_head").state_dict()
        initial = fresh.teacher_heads[name].state_dict()
        for key, value in module.teacher_heads[name].state_dict().items():
            expected = m * initial[key] + (1 - m) * student_heads[key]
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=key)


def test_resume_is_exact(tmp_path) -> None:
    full = LossRecorder()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=3, save_top_k=-1)
    ran = _module()
    trainer(tmp_path / "full", 6, callbacks=[full, ckpt], enable_checkpointing=True).fit(
        ran, datamodule=_data(samples_per_epoch=24)
    )
    (mid,) = (tmp_path / "ck").glob("*step=3*.ckpt")
    saved = torch.load(mid, weights_only=True)["state_dict"]
    assert any(k.startswith("teacher_heads.") for k in saved)
    assert any(k.startswith("ema.") for k in saved)
    resumed = LossRecorder()
    again = _module()
    trainer(tmp_path / "b", 6, callbacks=[resumed]).fit(
        again, datamodule=_data(samples_per_epoch=24), ckpt_path=mid
    )
    assert resumed.losses == pytest.approx(full.losses[3:], rel=1e-4, abs=1e-5)
    for name in ("ema", "teacher_heads", "student"):
        a, b = getattr(ran, name).state_dict(), getattr(again, name).state_dict()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")


def test_collapse_stats_match_their_definitions() -> None:
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(16, 8, generator=g)
    logits = torch.randn(2, 8, 32, generator=g)
    probs = torch.softmax(torch.randn(2, 8, 32, generator=g) / 0.3, dim=-1)
    stats = collapse_stats(cls, logits, probs)
    x = cls / cls.norm(dim=1, keepdim=True)
    spread = x.std(dim=0, unbiased=True).mean() * math.sqrt(8)
    torch.testing.assert_close(stats["cls_std"], spread)
    distinct = len(set(logits.reshape(16, 32).argmax(1).tolist()))
    assert float(stats["prototypes_distinct"]) == distinct
    assert float(stats["prototypes_used"]) == pytest.approx(distinct / 16)
    p = probs.reshape(16, 32)
    entropy = float((-(p * p.log()).sum(1)).mean() / math.log(32))
    assert float(stats["target_entropy"]) == pytest.approx(entropy, rel=1e-5)


def test_collapsed_inputs_warn_loudly(caplog) -> None:
    same = torch.ones(8, 4)
    logits = torch.zeros(8, 16)
    logits[:, 3] = 1.0
    uniform = torch.full((8, 16), 1 / 16)
    stats = {k: float(v) for k, v in collapse_stats(same, logits, uniform).items()}
    monitor = CollapseMonitor(every=5)
    with caplog.at_level("WARNING", logger="vitkd.distill.collapse"):
        reasons = monitor.check(10, stats)
        monitor.check(12, stats)  # rate-limited
    assert len(reasons) == 3
    assert sum("COLLAPSE at step 10" in r.message for r in caplog.records) == 1
    assert len(caplog.records) == 1
    healthy = collapse_stats(torch.randn(8, 4), torch.randn(8, 16), torch.eye(16)[:8])
    assert monitor.reasons({k: float(v) for k, v in healthy.items()}) == []


def test_self_mode_exports_the_ema_teacher_and_summarises_collapse(tmp_path) -> None:
    import json

    from vitkd.distill.summary import RunSummary

    module = _module()
    trainer(tmp_path, 3, callbacks=[RunSummary()]).fit(module, datamodule=_data())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["targets"] == "self"
    assert summary["teacher_weights"] is None
    assert set(summary["collapse"]) >= {"cls_std", "prototypes_used", "target_entropy"}
    assert (tmp_path / "export" / "model.safetensors").exists()
    assert not (tmp_path / "teacher").exists()


def test_self_mode_rejects_fsdp2_with_a_clear_error() -> None:
    from vitkd.distill.fsdp2 import DistillFSDP2Strategy

    with pytest.raises(ValueError, match=r"trainer\.strategy: ddp"):
        DistillFSDP2Strategy.shard(object.__new__(DistillFSDP2Strategy), _module())


def test_loss_config_without_ibot_builds_only_a_dino_teacher_head() -> None:
    module = _module(losses=LossConfig(ibot=0.0))
    assert set(module.teacher_heads) == {"dino"}
    assert module.student.mask_token is None
