"""Which exported adaptor belongs to which teacher: the block recorded next to the student."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from vitkd.distill.config import TeacherConfig, as_config, teacher_keys
from vitkd.models.teacher_space import ADAPTORS_NAME, adaptor_tensors, write_adaptors


def adaptor_block(hparams: Mapping[str, Any], width: int) -> dict[str, Any] | None:
    """The `vitkd.adaptors` block of an export from a run's hyper-parameters; None for runs
    without feature adaptors (prototypes, self-distillation)."""
    targets = hparams.get("targets", "auto")
    teacher = as_config(TeacherConfig, hparams.get("teacher"))
    if targets == "auto":
        targets = "prototypes" if teacher.heads else "features"
    if targets != "features":
        return None
    listed = hparams.get("teachers")
    configs = [as_config(TeacherConfig, t) for t in listed] if listed else [teacher]
    return {
        "file": ADAPTORS_NAME,
        "kind": hparams.get("heads", {}).get("adaptor", "mlp"),
        "width": width,
        "matryoshka": hparams.get("matryoshka"),
        "standardize": hparams.get("balance", {}).get("standardize", "none"),
        "teachers": [
            {"key": k, "name": c.name, "weights": c.weights}
            for k, c in zip(teacher_keys(configs), configs, strict=True)
        ],
    }


def export_adaptors(
    out_dir: str | Path, hparams: Mapping[str, Any], width: int, state: Mapping[str, Tensor]
) -> dict[str, Any] | None:
    """Write `adaptors.safetensors` into the export folder from the module's state dict and
    return the block for its config (None when the run has no adaptors)."""
    block = adaptor_block(hparams, width)
    if block is None:
        return None
    keys = [t["key"] for t in block["teachers"]]
    tensors = adaptor_tensors(state, keys, block["standardize"] == "phis")
    if not tensors:
        return None
    write_adaptors(out_dir, tensors)
    return block


def adaptor_extra(
    out_dir: str | Path, hparams: Mapping[str, Any], width: int, state: Mapping[str, Tensor]
) -> dict[str, Any]:
    """Write the adaptors (`export_adaptors`) and return the export config's `vitkd` entries:
    `adaptors` (the block), `teachers` (keys) and `matryoshka` (the valid embedding sizes,
    largest first); `{}` for a run without adaptors."""
    block = export_adaptors(out_dir, hparams, width, state)
    if block is None:
        return {}
    extra: dict[str, Any] = {"adaptors": block, "teachers": [t["key"] for t in block["teachers"]]}
    if block["matryoshka"]:
        extra["matryoshka"] = sorted(block["matryoshka"], reverse=True)
    return extra
