"""The step-0 student as an export: the common initialisation of branches that are merged later."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from vitkd.models.builtin import resolve_weights
from vitkd.models.export import export_backbone

# set on the module by `save_initialisation`, read by `RunSummary` for the export's record
INIT_ATTRIBUTE = "init_export"


def save_initialisation(module: L.LightningModule, out_dir: str | Path) -> Path:
    """Export `module.student` as it is before training (timm `config.json` + safetensors).

    The student's first weights are a function of `model.seed` and the student config alone
    (`DistillationModule` seeds its build with `seed + 1`), so runs with the same seed and
    student start identically whatever their data; this file makes that start explicit, as
    the base of `python -m vitkd.merge --method task-arithmetic|ties` and as
    `model.student.weights` of later branches.

    Args:
        module: a `DistillationModule` before `fit`.
        out_dir: the output folder.
    """
    cfg = module.student_cfg
    out = export_backbone(
        module.student,
        out_dir,
        extra={
            "source": "init",
            "seed": int(module.hparams.seed),
            "student_init": resolve_weights(cfg.weights, "model.student.weights"),
        },
    )
    setattr(module, INIT_ATTRIBUTE, str(Path(out).resolve()))
    return out


def recorded_initialisation(module: L.LightningModule) -> str | None:
    """Where the module's student started: the saved init export, else its start weights."""
    saved = getattr(module, INIT_ATTRIBUTE, None)
    if saved:
        return saved
    path = resolve_weights(module.student_cfg.weights, "model.student.weights")
    return str(Path(path).resolve()) if path else None
