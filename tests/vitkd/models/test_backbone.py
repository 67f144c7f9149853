"""Backbone wrapper: tokens, normalisation, mask token, checkpointing, frozen teacher."""

import logging

import pytest
import torch
from torch import nn

from vitkd.models import Backbone, build_backbone, build_student, build_teacher

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}


def _images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)


def _timm_reference(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    """timm's own forward_features on input normalised with the backbone's preset mean/std."""
    mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
    return backbone.model.forward_features((x.float() / 255 - mean) / std)


@pytest.fixture
def student() -> Backbone:
    torch.manual_seed(0)
    return build_student("h0-mini", **TINY)


@pytest.mark.parametrize("size", [224, 98])
def test_student_token_layout(student: Backbone, size: int) -> None:
    tokens = student.forward_tokens(_images(2, size))
    side = size // 14
    assert tokens.cls.shape == (2, 32)
    assert tokens.registers.shape == (2, 4, 32)
    assert tokens.patches.shape == (2, side * side, 32)
    assert tokens.grid == (side, side)
    assert (student.num_prefix_tokens, student.num_registers, student.patch_size) == (5, 4, 14)


@pytest.mark.parametrize("size", [224, 98])
def test_tokens_match_timm_forward_features(student: Backbone, size: int) -> None:
    x = _images(2, size)
    with torch.no_grad():
        tokens = student.forward_tokens(x)
        ref = _timm_reference(student, x)
    torch.testing.assert_close(tokens.cls, ref[:, 0])
    torch.testing.assert_close(tokens.registers, ref[:, 1:5])
    torch.testing.assert_close(tokens.patches, ref[:, 5:])
    torch.testing.assert_close(student(x), ref[:, 0])


def test_float_input_in_unit_range_equals_uint8(student: Backbone) -> None:
    x = _images(1, 56)
    with torch.no_grad():
        torch.testing.assert_close(student(x.float() / 255), student(x))


def test_fixed_size_teacher_matches_timm_and_rejects_other_sizes() -> None:
    teacher = build_teacher("vit_small_patch16_224", img_size=64, **TINY)
    x = _images(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            teacher.forward_tokens(x).patches, _timm_reference(teacher, x)[:, 1:]
        )
    assert teacher.spec.mean == (0.5, 0.5, 0.5)  # timm's own normalisation for this arch
    with pytest.raises(ValueError, match="built for 64x64"):
        teacher(_images(1, 32))


def test_size_not_multiple_of_patch(student: Backbone) -> None:
    with pytest.raises(ValueError, match="multiple of the patch size 14"):
        student(_images(1, 100))


def test_embed_modes(student: Backbone) -> None:
    x = _images(2, 56)
    with torch.no_grad():
        tokens = student.forward_tokens(x)
        assert torch.equal(student.embed(x, "cls"), tokens.cls)
        both = student.embed(x, "cls+mean")
        assert both.shape == (2, 64)
        torch.testing.assert_close(both[:, 32:], tokens.patches.mean(1))
        assert student.embed(x, "patch").shape == (2, 16, 32)
    with pytest.raises(ValueError, match="'cls', 'cls\\+mean' or 'patch'"):
        student.embed(x, "mean")


def test_all_false_mask_equals_no_mask(student: Backbone) -> None:
    x = _images(2, 56)
    with torch.no_grad():
        plain = student.forward_tokens(x)
        masked = student.forward_tokens(x, torch.zeros(2, 16, dtype=torch.bool))
    torch.testing.assert_close(masked.patches, plain.patches, rtol=0, atol=0)


@pytest.mark.parametrize("size", [56, 98])
def test_mask_token_replaces_patch_embeddings(student: Backbone, size: int) -> None:
    side = size // 14
    with torch.no_grad():
        student.mask_token.normal_()
    x = _images(2, size)
    masks = torch.rand(2, side * side, generator=torch.Generator().manual_seed(3)) < 0.4

    def swap(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        flat = out.reshape(out.shape[0], -1, out.shape[-1]).clone()
        flat[masks] = student.mask_token[0]
        return flat.view_as(out)

    with torch.no_grad():
        got = student.forward_tokens(x, masks)
        handle = student.model.patch_embed.register_forward_hook(swap)
        ref = _timm_reference(student, x)
        handle.remove()
        plain = student.forward_tokens(x)
    torch.testing.assert_close(got.patches, ref[:, 5:])
    torch.testing.assert_close(got.cls, ref[:, 0])
    assert not torch.allclose(got.cls, plain.cls)


def test_mask_errors(student: Backbone) -> None:
    with pytest.raises(ValueError, match=r"shape \(B, N\) = \(1, 16\)"):
        student.forward_tokens(_images(1, 56), torch.zeros(1, 15, dtype=torch.bool))
    plain = build_backbone("h0-mini", **TINY)
    with pytest.raises(ValueError, match="no mask token"):
        plain.forward_tokens(_images(1, 56), torch.zeros(1, 16, dtype=torch.bool))


def test_grad_checkpointing_same_outputs_and_grads(student: Backbone) -> None:
    x = _images(2, 56)
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[:, :5] = True

    def run() -> tuple[torch.Tensor, dict]:
        student.zero_grad()
        tokens = student.forward_tokens(x, masks)
        (tokens.cls.square().sum() + tokens.patches.sum()).backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        return tokens.patches.detach(), grads

    out_plain, grads_plain = run()
    student.model.set_grad_checkpointing(True)
    out_ckpt, grads_ckpt = run()
    torch.testing.assert_close(out_ckpt, out_plain)
    assert grads_ckpt.keys() == grads_plain.keys() and "mask_token" in grads_plain
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


def test_teacher_is_frozen_and_stays_in_eval(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        teacher = build_teacher("vit_small_patch14_reg4_dinov2", img_size=56, **TINY)
    assert "random init with fixed seed 0" in caplog.text
    parent = nn.ModuleDict({"teacher": teacher, "head": nn.Linear(2, 2)})
    parent.train()
    assert parent["head"].training and not teacher.training
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    out = teacher(_images(1, 56))
    assert out.grad_fn is None and teacher.mask_token is None
    again = build_teacher("vit_small_patch14_reg4_dinov2", img_size=56, **TINY)
    assert torch.equal(out, again(_images(1, 56)))  # fixed-seed random init is reproducible


def test_teacher_dtype_keeps_exact_normalisation() -> None:
    teacher = build_teacher("h-optimus-0", dtype=torch.bfloat16, img_size=28, **TINY)
    assert teacher.model.cls_token.dtype == torch.bfloat16
    assert teacher.mean.dtype == torch.float32
    assert teacher.mean.flatten().tolist() == torch.tensor(teacher.spec.mean).tolist()
    assert teacher(_images(1, 28)).dtype == torch.bfloat16


def test_vit_g_preset_full_width_builds() -> None:
    teacher = build_teacher("h-optimus-0", depth=2)
    assert (teacher.embed_dim, teacher.patch_size, teacher.num_registers) == (1536, 14, 4)
    assert teacher.model.blocks[0].attn.num_heads == 24
    assert teacher.model.blocks[0].mlp.fc1.out_features == 8192  # SwiGLU packed, hidden 4096
    assert sum(p.numel() for p in teacher.parameters()) == pytest.approx(58e6, rel=0.01)
    with torch.no_grad():
        tokens = teacher.forward_tokens(_images(1, 224))
    assert tokens.cls.shape == (1, 1536) and tokens.registers.shape == (1, 4, 1536)
    assert tokens.patches.shape == (1, 256, 1536) and tokens.grid == (16, 16)


def test_non_vit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"resnet18.*VisionTransformer"):
        build_backbone("resnet18")


def test_non_vit_transformer_is_refused() -> None:
    with pytest.raises(ValueError, match="is a Eva; vitkd backbones need a timm VisionTransformer"):
        build_backbone("eva02_tiny_patch14_224", depth=1)
