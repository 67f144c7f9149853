"""Short fits of tiny models: the loss falls, the teacher never changes, prototypes mode works."""

from __future__ import annotations

import pytest
import torch
from distill_fixtures import LossRecorder, tiny_data, tiny_module, trainer

from vitkd.distill.config import LossConfig, TeacherConfig
from vitkd.distill.module import NonFiniteLossError


def test_twenty_steps_lower_the_loss_and_leave_the_teacher_bit_identical(tmp_path) -> None:
    module = tiny_module()
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in module.student.state_dict().items()}
    recorder = LossRecorder()
    trainer(tmp_path, 20, callbacks=[recorder]).fit(module, datamodule=tiny_data())
    assert len(recorder.losses) == 20
    first, last = sum(recorder.losses[:4]) / 4, sum(recorder.losses[-4:]) / 4
    assert last < 0.8 * first, recorder.losses
    for key, value in module.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert not all(
        torch.equal(v, student_before[k]) for k, v in module.student.state_dict().items()
    )
    assert all(not p.requires_grad for p in module.teacher.parameters())
    assert not module.teacher.training


def test_teacher_is_not_in_the_optimiser(tmp_path) -> None:
    module = tiny_module()
    trainer(tmp_path, 1).fit(module, datamodule=tiny_data())
    optimised = {id(p) for g in module.optimizers().optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in module.teacher.parameters()}
    assert not optimised & {id(p) for p in module.ema.parameters()}


def test_ema_follows_the_student(tmp_path) -> None:
    module = tiny_module()
    ema_before = [p.clone() for p in module.ema.parameters()]
    trainer(tmp_path, 3).fit(module, datamodule=tiny_data())
    moved = [
        not torch.equal(a, b) for a, b in zip(ema_before, module.ema.parameters(), strict=True)
    ]
    assert any(moved)


def test_prototypes_mode_fits_heads_first_then_freezes_them(tmp_path) -> None:
    from vitkd.distill.config import HeadConfig

    heads = HeadConfig(
        prototypes=64, ibot_prototypes=64, hidden_dim=32, bottleneck_dim=16, fit_steps=3
    )
    module = tiny_module(targets="prototypes", heads=heads)
    assert not bool(module.heads_ready)
    before = {k: v.clone() for k, v in module.teacher_heads.state_dict().items()}
    recorder = LossRecorder()
    trainer(tmp_path, 4, callbacks=[recorder]).fit(module, datamodule=tiny_data())
    assert bool(module.heads_ready)
    after = module.teacher_heads.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "head fitting changed nothing"
    assert all(not p.requires_grad for p in module.teacher_heads.parameters())
    assert all(torch.isfinite(torch.tensor(recorder.losses)))
    assert module.student.mask_token is not None


def test_prototypes_mode_loads_heads_from_a_file(tmp_path) -> None:
    from safetensors.torch import save_file

    from vitkd.distill.config import HeadConfig

    heads = HeadConfig(prototypes=64, ibot_prototypes=64, hidden_dim=32, bottleneck_dim=16)
    donor = tiny_module(targets="prototypes", heads=heads)
    path = tmp_path / "heads.safetensors"
    save_file({k: v.contiguous() for k, v in donor.teacher_heads.state_dict().items()}, str(path))
    teacher = TeacherConfig(
        name=donor.teacher_cfg.name,
        weights="random",
        kwargs=donor.teacher_cfg.kwargs,
        heads=str(path),
    )
    module = tiny_module(teacher=teacher, targets="auto", heads=heads)
    assert module.targets == "prototypes" and bool(module.heads_ready)
    for key, value in module.teacher_heads.state_dict().items():
        assert torch.equal(value, donor.teacher_heads.state_dict()[key])


@pytest.mark.parametrize("centering", ["sinkhorn", "softmax"])
def test_prototype_losses_are_finite_for_both_centrings(centering: str) -> None:
    module = tiny_module(targets="prototypes", losses=LossConfig(centering=centering))
    module.heads_ready.fill_(True)
    dm = tiny_data()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    terms = module.compute_losses(batch)
    assert set(terms) == {"dino", "ibot", "koleo"}
    assert all(torch.isfinite(v) for v in terms.values())
    module.weighted_total(terms).backward()
    assert module.student.mask_token.grad is not None


def test_non_finite_loss_stops_before_any_update_and_names_the_term(tmp_path) -> None:
    module = tiny_module()
    original = module.compute_losses

    def poisoned(batch):
        terms = original(batch)
        if module.global_step == 2:
            terms["feature_patch"] = terms["feature_patch"] * float("nan")
        return terms

    module.compute_losses = poisoned
    fit = trainer(tmp_path, 5, enable_checkpointing=True)
    with pytest.raises(NonFiniteLossError, match=r"step 2: feature_patch=nan"):
        fit.fit(module, datamodule=tiny_data())
    assert fit.global_step == 2
    assert not list(tmp_path.rglob("*.ckpt"))


def test_bf16_mixed_runs_on_tiny_models(tmp_path) -> None:
    recorder = LossRecorder()
    module = tiny_module(
        teacher=TeacherConfig(**{**tiny_module().teacher_cfg.__dict__, "dtype": "bf16"})
    )
    trainer(tmp_path, 2, precision="bf16-mixed", callbacks=[recorder]).fit(
        module, datamodule=tiny_data(batch_size=2)
    )
    assert len(recorder.losses) == 2 and all(torch.isfinite(torch.tensor(recorder.losses)))
    assert next(module.teacher.parameters()).dtype == torch.bfloat16


def test_head_fitting_follows_the_device_augmentation_path(tmp_path) -> None:
    from vitkd.distill.config import HeadConfig

    heads = HeadConfig(
        prototypes=64, ibot_prototypes=64, hidden_dim=32, bottleneck_dim=16, fit_steps=2
    )
    module = tiny_module(targets="prototypes", heads=heads)
    # "gpu" runs the device-side crop/colour path on whatever device the trainer uses
    trainer(tmp_path, 2).fit(module, datamodule=tiny_data(augment_device="gpu"))
    assert bool(module.heads_ready) and module.trainer.global_step == 2


def test_ema_moves_once_per_optimiser_step_under_accumulation(tmp_path, monkeypatch) -> None:
    import vitkd.distill.module as module_file

    calls = []
    real = module_file.ema_update
    monkeypatch.setattr(module_file, "ema_update", lambda *a, **k: calls.append(1) or real(*a, **k))
    module = tiny_module()
    trainer(tmp_path, 3, accumulate_grad_batches=2).fit(module, datamodule=tiny_data())
    assert module.trainer.global_step == 3
    assert len(calls) == 3


def test_linear_adaptor_option(tmp_path) -> None:
    from torch import nn

    from vitkd.distill.config import HeadConfig

    module = tiny_module(heads=HeadConfig(adaptor="linear"))
    assert isinstance(module.objective.cls_adaptor, nn.Linear)
    assert isinstance(module.objective.patch_adaptor, nn.Linear)
    recorder = LossRecorder()
    trainer(tmp_path, 2, callbacks=[recorder]).fit(module, datamodule=tiny_data())
    assert all(torch.isfinite(torch.tensor(recorder.losses)))
