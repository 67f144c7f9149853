"""Speed options leave the maths alone: same losses, same gradients, same updates; GPU checks."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import distill_fixtures as fixtures
import lightning as L
import pytest
import torch

from vitkd.data.datamodule import DistillDataModule
from vitkd.distill.config import LossConfig, OptimConfig
from vitkd.distill.module import DistillationModule
from vitkd.distill.speed import SpeedConfig, apply_speed, attention_kinds, set_attention
from vitkd.distill.throughput import count_flops, loader_rate, pure_rate

SIZE = fixtures.SIZE

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny_module(depth: int = 2, **overrides: Any) -> DistillationModule:
    """The shared tiny pair with a `depth`-block student, the relation term on, no warm-up."""
    torch.manual_seed(0)
    overrides.setdefault("losses", LossConfig(relation=1.0))
    overrides.setdefault("optim", OptimConfig(base_lr=0.05, warmup_fraction=0.0))
    return fixtures.tiny_module(student_depth=depth, **overrides)


def tiny_data(**overrides: Any) -> DistillDataModule:
    """The shared tiny data module, 16 draws per epoch, augmentation on the CPU."""
    overrides.setdefault("samples_per_epoch", 16)
    overrides.setdefault("augment_device", "cpu")
    return fixtures.tiny_data(**overrides)


@pytest.fixture(scope="module")
def batch() -> dict[str, Any]:
    dm = tiny_data()
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _trainer(tmp_path, steps: int, **kw: Any) -> L.Trainer:
    opts: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
    }
    opts.update(kw)
    return L.Trainer(**opts)


def _total(module: DistillationModule, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    terms = module.compute_losses(batch)
    terms["total"] = module.weighted_total(terms)
    return terms


def test_sdpa_and_eager_attention_give_the_same_losses(batch) -> None:
    module = tiny_module()
    set_attention(module, "sdpa")
    assert attention_kinds(module.student) == {"sdpa"}
    with torch.no_grad():
        fused = _total(module, batch)
    set_attention(module, "eager")
    assert attention_kinds(module.student) == attention_kinds(module.teacher) == {"eager"}
    with torch.no_grad():
        eager = _total(module, batch)
    assert fused.keys() == eager.keys()
    for name, value in fused.items():
        torch.testing.assert_close(eager[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_compiled_student_and_teacher_give_the_same_loss_and_gradients(batch) -> None:
    module = tiny_module()
    reference = copy.deepcopy(module)
    # aot_eager runs dynamo + AOT autograd (the graph capture) without a C++ build: fast on CPU
    apply_speed(
        module.student,
        module.teacher,
        SpeedConfig(compile_student=True, compile_teacher=True, compile_backend="aot_eager"),
    )
    assert all(b._compiled_call_impl is not None for b in module.student.model.blocks)
    assert all(b._compiled_call_impl is not None for b in module.teacher.model.blocks)
    assert "_orig_mod" not in "".join(module.student.state_dict())  # keys unchanged
    got, want = _total(module, batch), _total(reference, batch)
    torch.testing.assert_close(got["total"], want["total"], rtol=1e-5, atol=1e-6)
    got["total"].backward()
    want["total"].backward()
    for (name, p), q in zip(
        module.student.named_parameters(), reference.student.parameters(), strict=True
    ):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_inductor_compiled_student_gives_the_same_loss(batch) -> None:
    module = tiny_module()
    reference = copy.deepcopy(module)
    apply_speed(module.student, module.teacher, SpeedConfig(compile_student=True))
    torch.testing.assert_close(
        _total(module, batch)["total"], _total(reference, batch)["total"], rtol=1e-4, atol=1e-5
    )


def test_activation_checkpointing_gives_the_same_gradients(batch) -> None:
    plain = tiny_module()
    ckpt = copy.deepcopy(plain)
    ckpt.student.model.set_grad_checkpointing(True)
    calls = []
    mlp = ckpt.student.model.blocks[0].mlp
    forward = mlp.forward
    # module hooks do not fire during the recomputation: count calls of the forward itself
    mlp.forward = lambda x: calls.append(1) or forward(x)
    _total(ckpt, batch)["total"].backward()
    mlp.forward = forward
    _total(plain, batch)["total"].backward()
    # globals and locals, each forward once and recomputed once in the backward pass
    assert len(calls) == 4
    for (name, p), q in zip(
        ckpt.student.named_parameters(), plain.student.parameters(), strict=True
    ):
        if q.grad is None:
            assert p.grad is None, name
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_fused_adamw_gives_the_same_training_run(tmp_path) -> None:
    finals = {}
    initial = {k: v.clone() for k, v in tiny_module().student.state_dict().items()}
    for fused in ("on", "off"):
        module = tiny_module(optim=OptimConfig(base_lr=0.05, warmup_fraction=0.0, fused=fused))
        _trainer(tmp_path / fused, 3).fit(module, datamodule=tiny_data())
        opt = module.trainer.optimizers[0]
        assert all(bool(g.get("fused")) == (fused == "on") for g in opt.param_groups)
        finals[fused] = module.student.state_dict()
    moved = max((finals["off"][k] - v).abs().max().item() for k, v in initial.items())
    assert moved > 1e-3  # the runs did train
    # each step moves weights by ~lr = 3e-3; the two kernels round differently by < 1e-5
    for key, value in finals["off"].items():
        torch.testing.assert_close(finals["on"][key], value, rtol=1e-4, atol=5e-5, msg=key)


def test_local_crops_go_through_the_student_in_one_call(batch) -> None:
    module = tiny_module()
    seen = {"student": [], "teacher": []}
    for role in seen:
        embed = getattr(module, role).model.patch_embed
        embed.register_forward_hook(
            lambda m, args, out, role=role: seen[role].append(args[0].shape)
        )
    module.compute_losses(batch)
    n = int(batch["n_images"])
    assert [s[0] for s in seen["student"]] == [2 * n, 2 * n]  # all globals, then all locals
    assert [s[-1] for s in seen["student"]] == [SIZE, 28]
    assert [s[0] for s in seen["teacher"]] == [2 * n]


def test_speed_options_apply_in_fit_and_the_teacher_holds_no_optimiser_state(tmp_path) -> None:
    module = tiny_module(speed={"attention": "eager"})
    _trainer(tmp_path, 2).fit(module, datamodule=tiny_data())
    assert attention_kinds(module.student) == attention_kinds(module.teacher) == {"eager"}
    assert module.hparams["speed"]["attention"] == "eager"
    opt = module.trainer.optimizers[0]
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    teacher = {id(p) for p in module.teacher.parameters()}
    assert not in_optimizer & teacher
    assert not {id(p) for p in opt.state} & teacher
    assert opt.state  # the student does have Adam state
    assert not any(p.requires_grad for p in module.teacher.parameters())


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
def test_loader_options_give_the_same_batches() -> None:
    # workers, persistent workers, prefetching and pinned memory change how batches are made,
    # never what they hold: each draw's augmentation is seeded by the draw itself
    def first_batches(**loader: Any) -> list[torch.Tensor]:
        dm = tiny_data(samples_per_epoch=8, **loader)
        dm.setup("fit")
        return [b["global"] for b in itertools.islice(dm.train_dataloader(), 2)]

    reference = first_batches(num_workers=0, pin_memory="off")
    for options in (
        {"num_workers": 2, "persistent_workers": True, "pin_memory": "on"},
        {"num_workers": 2, "persistent_workers": False, "prefetch_factor": 1},
    ):
        got = first_batches(**options)
        assert len(got) == len(reference) == 2
        for a, b in zip(got, reference, strict=True):
            assert torch.equal(a, b), options


def test_bad_speed_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match="compile_everything"):
        tiny_module(speed={"compile_everything": True})
    with pytest.raises(ValueError, match=r"speed\.attention"):
        set_attention(torch.nn.Linear(2, 2), "flash")


def _vit_flops(tokens: int, patches: int, dim: int, depth: int, hidden: int, patch: int) -> int:
    # independent count: 2 FLOPs per multiply-add of every matmul of a pre-norm ViT forward
    per_block = tokens * (3 * dim * dim + dim * dim + 2 * dim * hidden) + 2 * tokens * tokens * dim
    return 2 * (depth * per_block + patches * 3 * patch * patch * dim)


def test_flop_count_matches_an_independent_vit_count(batch) -> None:
    module = tiny_module()
    flops = count_flops(module, batch)
    patches = (SIZE // 14) ** 2
    teacher = 2 * _vit_flops(patches + 5, patches, 48, 1, 4 * 48, 14)  # two global crops
    assert flops["teacher"] == teacher
    # forward + backward of the student is about 3x its forward (globals + locals)
    fwd = 2 * _vit_flops(patches + 5, patches, 32, 2, 128, 14) + 2 * _vit_flops(
        4 + 5, 4, 32, 2, 128, 14
    )
    assert 2.5 * fwd < flops["student"] < 3.5 * fwd


def test_benchmark_rates_are_measured(batch) -> None:
    module = tiny_module()
    assert pure_rate(module, batch, "32-true", warmup=1, steps=2, fused=False) > 0
    dm = tiny_data()
    dm.setup("fit")
    assert loader_rate(dm.train_dataloader(), batches=2, warmup=1) > 0


# ----------------------------------------------------------------------------------- GPU only
@gpu
@needs_cuda
def test_bf16_mixed_training_on_cuda_is_finite_and_the_teacher_runs_in_bf16(tmp_path) -> None:
    module = tiny_module()
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(outputs["loss"]))

    _trainer(tmp_path, 3, accelerator="gpu", precision="bf16-mixed", callbacks=[Record()]).fit(
        module, datamodule=tiny_data(augment_device="auto")
    )
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert module.teacher_dtype == torch.bfloat16
    assert {p.dtype for p in module.teacher.parameters()} == {torch.bfloat16}
    assert module.trainer.datamodule.augment_on_device()  # auto picks the device path on CUDA
    module.cuda()
    tokens = module.forward_teacher(torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8, device="cuda"))
    assert tokens.cls.dtype == torch.bfloat16


@gpu
@needs_cuda
def test_fsdp2_on_one_cuda_device_trains_in_bf16(tmp_path) -> None:
    from torch.distributed.tensor import DTensor

    from vitkd.distill.fsdp2 import DistillFSDP2Strategy

    module = tiny_module()
    _trainer(
        tmp_path, 2, accelerator="gpu", strategy=DistillFSDP2Strategy(), precision="bf16-mixed"
    ).fit(module, datamodule=tiny_data())
    assert module.trainer.global_step == 2
    assert all(isinstance(p, DTensor) for p in module.student.parameters())
    assert {p.dtype for p in module.teacher.parameters()} == {torch.bfloat16}


@gpu
@needs_cuda
def test_inductor_compile_on_cuda_gives_the_same_loss(batch) -> None:
    module = tiny_module().cuda()
    reference = copy.deepcopy(module)
    apply_speed(
        module.student, module.teacher, SpeedConfig(compile_student=True, compile_teacher=True)
    )
    on_cuda = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    torch.testing.assert_close(
        _total(module, on_cuda)["total"], _total(reference, on_cuda)["total"], rtol=1e-3, atol=1e-4
    )
