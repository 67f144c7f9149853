"""`RunSummary` callback: loss at start and end, fidelity before/after, the exported student."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from typing_extensions import override

from slides.atomic import write_text_atomic
from vitkd.distill.adaptor_export import adaptor_extra
from vitkd.distill.fidelity import embed_all, fidelity, patch_grid
from vitkd.distill.initialisation import recorded_initialisation
from vitkd.distill.summary_table import fidelity_table
from vitkd.models.export import export_backbone, gather_state_dict

log = logging.getLogger(__name__)


class RunSummary(L.Callback):
    """Writes `summary.json`, `export/` (the EMA student) and, for a random-init teacher,
    `teacher/` into the run folder.

    Fidelity is measured on the data module's held-out tiles (never trained on): teacher against
    the student at initialisation (`fidelity_before`), then against the EMA shadow (the exported
    model) and the online student (`fidelity_after`).

    Args:
        export: export the EMA student at the end of fit.
        holdout_batch_size: batch size of the fidelity forward passes.
    """

    def __init__(self, export: bool = True, holdout_batch_size: int = 32) -> None:
        self.export = export
        self.holdout_batch_size = holdout_batch_size
        self.losses: list[float] = []
        self.before: dict[str, Any] = {}
        self.teacher_emb: tuple[torch.Tensor, torch.Tensor] | None = None
        self.grid: tuple[int, int] | None = None
        self.size: int | None = None
        self.started = 0.0

    def _holdout(self, trainer: L.Trainer):
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "holdout_dataloader"):
            return None
        return dm.holdout_dataloader(self.holdout_batch_size)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.time()
        loader = self._holdout(trainer)
        if loader is None or pl_module.self_distill:
            # self-distillation: the teacher is the student's own shadow, no fidelity to measure
            return
        # every rank runs the forwards (collectives under FSDP), only rank 0 scores them
        self.size = _crop_size(trainer)
        self.grid = patch_grid(pl_module.student, loader, self.size)
        teacher = embed_all(pl_module.teacher, loader, pl_module.device, self.grid, size=self.size)
        student = embed_all(pl_module.ema, loader, pl_module.device, size=self.size)
        adaptor = _gather(pl_module, [_ADAPTOR]).get(_ADAPTOR)
        if trainer.is_global_zero:
            self.teacher_emb = teacher
            self.before = fidelity(student, teacher, _adaptor(pl_module), adaptor)
            log.debug("fidelity before training: %s", self.before)

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses.append(float(loss))

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every rank makes the same collective calls in the same order (`log_dir` is a
        # broadcast; forwards and gathers of sharded modules are all-gathers); rank 0 alone
        # scores and writes. A rank left out would hang the others (or fail them under gloo).
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        after: dict[str, Any] = {}
        loader = self._holdout(trainer)
        measured = loader is not None and self.grid is not None  # the same on every rank
        embeddings = {}
        if measured:
            for name in ("ema", "student"):
                embeddings[name] = embed_all(
                    getattr(pl_module, name), loader, pl_module.device, size=self.size
                )
        names = [_ADAPTOR] if measured else []
        if self.export:
            names.append("ema")
            names += ["objective", "extra_objectives", "standardizers"]
            names += [f"family.{key}.ema" for key in pl_module.family_members()]
            if not pl_module.self_distill and pl_module.teacher_weights_path is None:
                # a random teacher exists nowhere else: keep it so the run can be evaluated later
                names.append("teacher")
        weights = _gather(pl_module, names)
        if not trainer.is_global_zero:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if measured and self.teacher_emb is not None:
            for name, emb in embeddings.items():
                after[name] = fidelity(
                    emb, self.teacher_emb, _adaptor(pl_module), weights.get(_ADAPTOR)
                )
            table = fidelity_table(self.before, after)
            if table:
                log.info("\n%s", table)
        export_dir = None
        if "ema" in weights:
            extra: dict[str, Any] = {
                "teacher": _teacher_name(pl_module),
                "source": "ema",
                # the shared start of merged branches (`python -m vitkd.merge`)
                "student_init": recorded_initialisation(pl_module),
                "seed": int(pl_module.hparams.seed),
            }
            # the adaptors before the config: a folder with config.json is complete
            state = {
                f"{name}.{k}": v
                for name in ("objective", "extra_objectives", "standardizers")
                for k, v in weights.get(name, {}).items()
            }
            extra.update(
                adaptor_extra(
                    run_dir / "export", pl_module.hparams, pl_module.student.embed_dim, state
                )
            )
            export_dir = export_backbone(
                pl_module.ema, run_dir / "export", extra=extra, state_dict=weights["ema"]
            )
        family_dirs = {}
        for key in pl_module.family_members():
            name = f"family.{key}.ema"
            if name in weights:
                family_dirs[key] = str(
                    export_backbone(
                        pl_module.get_submodule(name),
                        run_dir / f"export_{key}",
                        extra={
                            "teacher": _teacher_name(pl_module),
                            "source": "ema",
                            "family_member": key,
                            "seed": int(pl_module.hparams.seed),
                        },
                        state_dict=weights[name],
                    )
                )
        teacher_dir = None
        if "teacher" in weights:
            teacher_dir = export_backbone(
                pl_module.teacher,
                run_dir / "teacher",
                extra={"source": "random-init teacher", "seed": pl_module.hparams.seed},
                state_dict=weights["teacher"],
            )
        window = max(1, len(self.losses) // 10)
        summary = {
            "targets": pl_module.targets,
            "teacher": _teacher_name(pl_module),
            "teacher_weights": (
                None
                if pl_module.self_distill
                else pl_module.teacher_weights_path or "random-init (fixed seed)"
            ),
            "student": pl_module.student_cfg.name,
            "steps": int(trainer.global_step),
            "seconds": round(time.time() - self.started, 1),
            "loss_start": self.losses[0] if self.losses else None,
            "loss_end": self.losses[-1] if self.losses else None,
            "loss_start_mean": _mean(self.losses[:window]),
            "loss_end_mean": _mean(self.losses[-window:]),
            "collapse": {k: float(v) for k, v in pl_module._collapse_stats.items()},
            "fidelity_before": self.before,
            "fidelity_after": after,
            "export": str(export_dir) if export_dir else None,
            "family_exports": family_dirs,
            "teacher_export": str(teacher_dir) if teacher_dir else None,
        }
        path = run_dir / "summary.json"
        write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
        log.info("wrote %s", path)


_ADAPTOR = "objective.cls_adaptor"


def _crop_size(trainer: L.Trainer) -> int | None:
    """The global crop size the models train on, if the data module has one."""
    crops = getattr(trainer.datamodule, "crops", None)
    return getattr(crops, "global_size", None)


def _teacher_name(pl_module: L.LightningModule) -> str:
    if pl_module.self_distill:
        return "self-distillation (EMA of the student)"
    return pl_module.teacher_cfg.name


def _adaptor(pl_module: L.LightningModule) -> torch.nn.Module | None:
    return getattr(pl_module.objective, "cls_adaptor", None)


def _gather(pl_module: L.LightningModule, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Full CPU weights of the named submodules (absent ones skipped), on rank 0; ``{}`` each on
    the other ranks. A collective: every rank calls it with the same names."""
    modules = {n: pl_module.get_submodule(n) for n in names if _has_submodule(pl_module, n)}
    if not modules:
        return {}
    # plain modules (single process, DDP) and FSDP2 DTensors: each submodule on its own
    return {n: gather_state_dict(m) for n, m in modules.items()}


def _has_submodule(module: torch.nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
