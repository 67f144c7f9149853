"""AdamW parameter groups: layer-wise lr decay, patch-embedding lr, no decay on biases/norms/LayerScale."""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
_EMBEDDING = ("patch_embed", "cls_token", "reg_token", "pos_embed", "mask_token")


def layer_id(name: str, num_layers: int) -> int:
    """Depth of a backbone parameter: 0 for embeddings, i + 1 for block i, else `num_layers + 1`."""
    match = _BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    if any(part in name for part in _EMBEDDING):
        return 0
    return num_layers + 1


def no_weight_decay(name: str) -> bool:
    """DINOv2's rule: biases, norms and LayerScale gammas get no weight decay."""
    return name.endswith(".bias") or "norm" in name or "gamma" in name


def backbone_param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    layer_decay: float,
    patch_embed_lr_mult: float,
) -> list[dict]:
    """One group per backbone parameter with its `lr_multiplier` and `wd_multiplier`.

    Args:
        named_params: `(name, parameter)` pairs of the student backbone.
        num_layers: number of transformer blocks.
        layer_decay: lr multiplier per layer counted from the top (`decay ** (L + 1 - id)`).
        patch_embed_lr_mult: extra multiplier for the patch embedding.
    """
    groups = []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        lr_mult = layer_decay ** (num_layers + 1 - layer_id(name, num_layers))
        if "patch_embed" in name:
            lr_mult *= patch_embed_lr_mult
        groups.append(
            {
                "params": [param],
                "name": name,
                "lr_multiplier": lr_mult,
                "wd_multiplier": 0.0 if no_weight_decay(name) else 1.0,
                "is_last_layer": False,
            }
        )
    return groups


def head_param_groups(named_params: Iterable[tuple[str, nn.Parameter]]) -> list[dict]:
    """Groups for heads and adaptors: full lr; `last_layer` parameters flagged for the freeze."""
    return [
        {
            "params": [param],
            "name": name,
            "lr_multiplier": 1.0,
            "wd_multiplier": 0.0 if no_weight_decay(name) else 1.0,
            "is_last_layer": "last_layer" in name,
        }
        for name, param in named_params
        if param.requires_grad
    ]


def merge_groups(groups: list[dict]) -> list[dict]:
    """Fuse groups with identical hyper-parameters so the optimiser iterates over few groups."""
    merged: dict[tuple, dict] = {}
    for group in groups:
        key = (group["lr_multiplier"], group["wd_multiplier"], group["is_last_layer"])
        if key not in merged:
            merged[key] = {k: v for k, v in group.items() if k not in ("params", "name")}
            merged[key]["params"] = []
        merged[key]["params"].extend(group["params"])
    return list(merged.values())
