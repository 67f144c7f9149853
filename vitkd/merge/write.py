"""Write a merged state dict as a normal vitkd export, atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from torch import Tensor

from vitkd.merge.inputs import MergeError, MergeInput
from vitkd.models.export import CONFIG_NAME, WEIGHTS_NAME, export_backbone, load_exported


def write_merged(
    merged: dict[str, Tensor], like: MergeInput, out_dir: str | Path, record: dict[str, Any]
) -> Path:
    """Export `merged` with `like`'s architecture into `out_dir`, all or nothing.

    The export is written to a hidden sibling folder and renamed into place, so `out_dir` is
    either the old folder or the complete new export. An existing `out_dir` is replaced only
    when it is an export (nothing but its weights and config), or empty.

    Args:
        merged: fp32 weights with `like`'s keys; cast back to `like`'s dtypes.
        like: an input export: its architecture and normalisation are the merged model's.
        out_dir: the output folder.
        record: the `vitkd` block's `merge` entry (method, parameters, inputs with checksums).
    """
    out = Path(out_dir).expanduser()
    if out.exists() and (
        not out.is_dir() or {p.name for p in out.iterdir()} - {WEIGHTS_NAME, CONFIG_NAME}
    ):
        raise MergeError(f"{out}: exists and is not an export folder; choose another --out")
    backbone = load_exported(like.path)
    state = {k: v.to(like.state[k].dtype) for k, v in merged.items()}
    backbone.model.load_state_dict(state, strict=True)
    block = like.config.get("vitkd", {})
    extra = {"source": "merge", "teacher": block.get("teacher"), "merge": record}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export_backbone(backbone, tmp, extra=extra)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out
