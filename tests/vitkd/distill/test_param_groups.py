"""Layer-wise lr decay, patch-embedding lr and weight-decay exemptions of the student groups."""

import pytest
import timm

from vitkd.distill.param_groups import (
    backbone_param_groups,
    head_param_groups,
    layer_id,
    merge_groups,
    no_weight_decay,
)


def test_layer_ids() -> None:
    assert layer_id("model.patch_embed.proj.weight", 4) == 0
    assert layer_id("model.cls_token", 4) == 0
    assert layer_id("mask_token", 4) == 0
    assert layer_id("model.blocks.0.attn.qkv.weight", 4) == 1
    assert layer_id("model.blocks.3.mlp.fc2.bias", 4) == 4
    assert layer_id("model.norm.weight", 4) == 5


def test_no_decay_rule() -> None:
    assert no_weight_decay("model.blocks.0.attn.qkv.bias")
    assert no_weight_decay("model.blocks.0.norm1.weight")
    assert no_weight_decay("model.blocks.0.ls1.gamma")
    assert not no_weight_decay("model.blocks.0.attn.qkv.weight")


def test_backbone_groups_multipliers() -> None:
    model = timm.create_model(
        "vit_small_patch14_reg4_dinov2", depth=3, embed_dim=32, num_heads=2, img_size=28
    )
    groups = backbone_param_groups(model.named_parameters(), 3, 0.9, 0.2)
    by_name = {g["name"]: g for g in groups}
    assert by_name["patch_embed.proj.weight"]["lr_multiplier"] == pytest.approx(0.9**4 * 0.2)
    assert by_name["blocks.0.attn.qkv.weight"]["lr_multiplier"] == pytest.approx(0.9**3)
    assert by_name["blocks.2.attn.qkv.weight"]["lr_multiplier"] == pytest.approx(0.9)
    assert by_name["norm.weight"]["lr_multiplier"] == pytest.approx(1.0)
    assert by_name["norm.weight"]["wd_multiplier"] == 0.0
    assert by_name["blocks.1.ls1.gamma"]["wd_multiplier"] == 0.0
    assert by_name["blocks.1.mlp.fc1.weight"]["wd_multiplier"] == 1.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    merged = merge_groups(groups)
    assert sum(len(g["params"]) for g in merged) == len(groups)
    assert len(merged) < len(groups)


def test_head_groups_flag_last_layer() -> None:
    from vitkd.models import DINOHead

    head = DINOHead(16, 32, hidden_dim=16, bottleneck_dim=8)
    groups = head_param_groups(head.named_parameters())
    flagged = [g["name"] for g in groups if g["is_last_layer"]]
    assert flagged and all("last_layer" in n for n in flagged)
