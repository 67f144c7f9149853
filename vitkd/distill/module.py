"""`DistillationModule`: a frozen teacher distilled into a student, DINOv2 / H0-mini style."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from typing_extensions import override

from vitkd.distill.collapse import CollapseMonitor
from vitkd.distill.config import (
    BalanceConfig,
    HeadConfig,
    LossConfig,
    OptimConfig,
    StudentConfig,
    TeacherConfig,
    as_config,
)
from vitkd.distill.ema import ema_update
from vitkd.distill.family import MEMBER_SEP, FamilyMember, resolve_students, split_member
from vitkd.distill.fsdp2 import DistillFSDP2Strategy
from vitkd.distill.objectives import (
    FeatureObjective,
    NestedFeatureObjective,
    PrototypeObjective,
)
from vitkd.distill.param_groups import backbone_param_groups, head_param_groups, merge_groups
from vitkd.distill.speed import SpeedConfig, apply_speed
from vitkd.distill.teacher_heads import (
    build_teacher_heads,
    load_teacher_heads,
    save_teacher_heads,
)
from vitkd.distill.teacher_set import (
    TeacherEntry,
    check_teachers,
    dropped_teachers,
    resolve_teachers,
    term_weight,
)
from vitkd.losses import KoLeoLoss
from vitkd.models import Backbone, Tokens, build_student, build_teacher, check_alignable
from vitkd.models.builtin import check_student_weights
from vitkd.models.fingerprint import same_fingerprint, teacher_fingerprint
from vitkd.models.phis import PhiS
from vitkd.schedules import cosine, scaled_lr, warmup_cosine

log = logging.getLogger(__name__)

# the CLI shows them as the complete default configuration; frozen, and `as_config` gives each
# module a deep copy (`kwargs` is a dict), so no instance can change them for the next
DEFAULT_TEACHER = TeacherConfig()
DEFAULT_STUDENT = StudentConfig()
DEFAULT_LOSSES = LossConfig()
DEFAULT_HEADS = HeadConfig()
DEFAULT_OPTIM = OptimConfig()
DEFAULT_BALANCE = BalanceConfig()
DEFAULT_SPEED = SpeedConfig()

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training stops before any weight update or checkpoint."""


class DistillationModule(L.LightningModule):
    """Distil a frozen teacher backbone into a student, or pretrain one by self-distillation.

    Invariants:

    - The teacher is frozen (no gradients, eval mode, never in the optimiser), runs under
      `no_grad` on the global crops only, in its own dtype and with its own normalisation; its
      weights are not written to checkpoints (they are the local file named in the config; a
      fingerprint is checked on resume).
    - The student sees the global crops (masked for iBOT when `targets: prototypes`) and all
      local crops in one call each.
    - Schedules are pure functions of `global_step`: lr (sqrt batch scaling, warm-up, cosine),
      weight decay (cosine), teacher temperature (linear warm-up, or any `Schedule` in
      `losses.teacher_temp_schedule`), student temperature (`losses.student_temp_schedule`),
      EMA momentum (cosine).
    - The EMA shadow of the student is updated after every optimiser step and is the exported
      model.
    - `targets: self` is DINOv2 pretraining: there is no frozen teacher; the teacher is the EMA
      shadow with the EMA of the student's DINO/iBOT heads (Sinkhorn-Knopp or softmax centring,
      KoLeo, multi-crop, iBOT masking as in distillation). The shadow and its heads are never
      in the optimiser, run in eval mode, and are saved in checkpoints (they are the teacher).
    - With prototypes, collapse is watched every step (`collapse/*` in the logs) and a
      collapsed run warns loudly (`vitkd.distill.collapse`).
    - A non-finite loss term stops training, naming the step and the term, before the optimiser
      step (so no checkpoint can hold weights it produced). That check is the one value a
      step reads from the device (the collapse watch adds four every tenth step).
    - The softmax centres (`centering: softmax`) move once per optimiser step, with the mean
      over every micro-batch of the step, as the EMA: gradient accumulation gives the centres
      of one large batch.

    Args:
        teacher: the frozen teacher.
        student: the student.
        targets: `features` (teacher tokens; default for a backbone-only teacher), `prototypes`
            (DINO + iBOT through teacher heads, loaded from `teacher.heads` or fitted first),
            `self` (self-distillation pretraining, teacher = EMA of the student; the `teacher`
            block is not used), or `auto` (`prototypes` when `teacher.heads` is given, else
            `features`).
        losses: loss weights and temperatures.
        heads: prototype heads, adaptors, head fitting.
        optim: optimiser, schedules and EMA.
        seed: seed of the random teacher (when no weights are given) and of the heads.
        speed: attention kernel, `torch.compile`, matmul precision (`vitkd.distill.speed`).
    """

    def __init__(
        self,
        teacher: TeacherConfig = DEFAULT_TEACHER,
        student: StudentConfig = DEFAULT_STUDENT,
        targets: Literal["auto", "features", "prototypes", "self"] = "auto",
        losses: LossConfig = DEFAULT_LOSSES,
        heads: HeadConfig = DEFAULT_HEADS,
        optim: OptimConfig = DEFAULT_OPTIM,
        seed: int = 0,
        speed: SpeedConfig = DEFAULT_SPEED,
        teachers: list[TeacherConfig] | None = None,
        balance: BalanceConfig = DEFAULT_BALANCE,
        matryoshka: list[int] | None = None,
        matryoshka_weights: list[float] | None = None,
        students: list[StudentConfig] | None = None,
    ) -> None:
        super().__init__()
        self.teacher_cfg = as_config(TeacherConfig, teacher)
        self.student_cfg = as_config(StudentConfig, student)
        self.losses = as_config(LossConfig, losses)
        self.heads_cfg = as_config(HeadConfig, heads)
        self.optim = as_config(OptimConfig, optim)
        self.speed = as_config(SpeedConfig, speed)
        self.balance = as_config(BalanceConfig, balance)
        configs, listed = resolve_teachers(self.teacher_cfg, teachers)
        self.teacher_cfg = configs[0]
        family, self.student_keys = resolve_students(self.student_cfg, students)
        self.student_cfg = family[0]
        # plain dicts, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                "teacher": asdict(self.teacher_cfg) if not listed else asdict(TeacherConfig()),
                "student": asdict(self.student_cfg) if not students else asdict(StudentConfig()),
                "targets": targets,
                "losses": asdict(self.losses),
                "heads": asdict(self.heads_cfg),
                "optim": asdict(self.optim),
                "seed": seed,
                "speed": asdict(self.speed),
                "teachers": [asdict(c) for c in configs] if listed else None,
                "balance": asdict(self.balance),
                "matryoshka": list(matryoshka) if matryoshka else None,
                "matryoshka_weights": list(matryoshka_weights) if matryoshka_weights else None,
                "students": [asdict(c) for c in family] if students else None,
            }
        )
        if targets == "auto":
            targets = "prototypes" if self.teacher_cfg.heads else "features"
        if targets not in ("features", "prototypes", "self"):
            raise ValueError(
                f"model.targets={targets!r}: choose 'auto', 'features', 'prototypes' or 'self'"
            )
        self.targets = targets
        self.self_distill = targets == "self"
        if (len(configs) > 1 or matryoshka) and targets != "features":
            raise ValueError(
                f"model.targets={targets!r}: several teachers (model.teachers) and nested "
                "embeddings (model.matryoshka) regress teacher features; use model.targets: "
                "features"
            )
        if len(family) > 1 and (targets != "features" or matryoshka):
            raise ValueError(
                "model.students (a family) distils teacher features into students of their own "
                "widths: use model.targets: features, without model.matryoshka"
            )
        # checked before anything is built: a missing file must not wait for a 1.1 B model
        entries, student_weights = check_teachers(
            configs, listed, self.student_cfg.weights, self.self_distill
        )
        self.teacher_entries: list[TeacherEntry] = entries
        self.teacher_weights_path = entries[0].weights_path
        member_weights = [
            check_student_weights(cfg.weights, f"model.students[{i}].weights")
            for i, cfg in enumerate(family[1:], start=1)
        ]

        with torch.random.fork_rng():
            if not self.self_distill:
                # each random teacher its own stream; the first keeps `seed` as it always had
                teacher_models = [
                    self._build_teacher(entry, seed + 7919 * i) for i, entry in enumerate(entries)
                ]
                self.teacher: Backbone = teacher_models[0]
            # another stream than the random teacher's: the same seed would make the student's
            # first weights a copy of the teacher's and fake a high fidelity at initialisation
            torch.manual_seed(seed + 1)
            # a mask token only where iBOT masks the student: DDP rejects unused parameters
            masked = self.targets in ("prototypes", "self") and self.losses.ibot > 0
            self.student: Backbone = build_student(
                self.student_cfg.name,
                student_weights,
                with_mask_token=masked,
                **self.student_cfg.kwargs,
            )
            if self.student_cfg.grad_checkpointing:
                self.student.model.set_grad_checkpointing(True)
            s_dim = self.student.embed_dim
            self.matryoshka = _check_sizes(matryoshka, matryoshka_weights, s_dim)
            if self.targets == "features":
                objectives = [self._feature_objective(s_dim, t.embed_dim) for t in teacher_models]
                self.objective: nn.Module = objectives[0]
            else:
                self.objective = PrototypeObjective(s_dim, self.losses, self.heads_cfg)
            if self.targets == "prototypes":
                self.teacher_heads = build_teacher_heads(
                    self.teacher.embed_dim, self.heads_cfg, self.losses
                )
            elif self.self_distill:
                # DINOv2: the teacher heads start as copies of the student's and follow its EMA
                heads = {"dino": self.objective.dino_head}
                if self.losses.ibot:
                    heads["ibot"] = self.objective.ibot_head
                self.teacher_heads = copy.deepcopy(nn.ModuleDict(heads))
                self.teacher_heads.requires_grad_(False).eval()
            if len(family) > 1:
                members = {}
                for i, (key, cfg, weights) in enumerate(
                    zip(self.student_keys[1:], family[1:], member_weights, strict=True), start=1
                ):
                    # each member its own stream; the first student keeps `seed + 1`
                    torch.manual_seed(seed + 1 + 7919 * i)
                    model = build_student(cfg.name, weights, with_mask_token=False, **cfg.kwargs)
                    if cfg.grad_checkpointing:
                        model.model.set_grad_checkpointing(True)
                    members[key] = FamilyMember(
                        model,
                        [
                            self._feature_objective(model.embed_dim, t.embed_dim)
                            for t in teacher_models
                        ],
                    )
                self.family = nn.ModuleDict(members)
        if len(entries) > 1:
            # the first teacher keeps today's attribute names (`teacher`, `objective`): a
            # one-teacher run, listed or not, is the module it always was
            self.extra_teachers = nn.ModuleDict(
                {e.key: t for e, t in zip(entries[1:], teacher_models[1:], strict=True)}
            )
            self.extra_objectives = nn.ModuleDict(
                {e.key: o for e, o in zip(entries[1:], objectives[1:], strict=True)}
            )
        if not self.self_distill:
            # every teacher sees the same global crops, sized for the first teacher
            crop = self.teacher.spec.img_size
            for entry, model in zip(entries, self.teacher_models(), strict=True):
                try:
                    check_alignable(model, self.student, crop)
                except ValueError as err:
                    raise type(err)(f"{entry.config_key} ({entry.key}): {err}") from None
        if self.balance.standardize == "phis" and not self.self_distill:
            self.standardizers = nn.ModuleDict(
                {
                    f"{e.key}_{part}": PhiS(t.embed_dim)
                    for e, t in zip(entries, self.teacher_models(), strict=True)
                    for part in ("cls", "patch")
                }
            )
            self.register_buffer("standardizers_ready", torch.tensor(False))
        # taken in fp32 before any cast, so a bf16 teacher on GPU still matches on resume
        self._teacher_fingerprints = self.teacher_fingerprints()
        self._teacher_fingerprint = self._teacher_fingerprints.get(entries[0].key, 0.0)
        self.koleo = KoLeoLoss()
        self.collapse = CollapseMonitor()
        self._collapse_stats: dict[str, torch.Tensor] = {}
        self.ema = copy.deepcopy(self.student).requires_grad_(False)
        if self.self_distill:
            # the shadow is the teacher: eval mode pinned (no drop path), as DINOv2's teacher
            self.ema.freeze()
        # set once the teacher heads are loaded or fitted; saved, so a resume does not refit
        self.register_buffer("heads_ready", torch.tensor(self.self_distill))
        if self.targets == "prototypes" and self.teacher_cfg.heads:
            load_teacher_heads(self.teacher_heads, self.teacher_cfg.heads)
            self.heads_ready.fill_(True)
        self.teacher_dtype = torch.float32
        self.teacher_dtypes: dict[str, torch.dtype] = {e.key: torch.float32 for e in entries}
        self._global_batch: int | None = None
        self._step_images = 0  # images of the current step's batch, for the EMA schedule
        self._dropped: set[str] = set()
        # each image's CLS disagreement with the teachers, for adaptive tile sampling
        self.per_image_loss: torch.Tensor | None = None

    def _build_teacher(self, entry: TeacherEntry, seed: int) -> Backbone:
        """One frozen teacher; a weights file that does not fit names the teacher."""
        try:
            return build_teacher(
                entry.config.name, entry.weights_path, seed=seed, **entry.config.kwargs
            )
        except (ValueError, KeyError, RuntimeError) as err:
            if len(self.teacher_entries) == 1:
                raise
            raise type(err)(f"{entry.config_key} ({entry.key}): {err}") from None

    def _feature_objective(self, student_dim: int, teacher_dim: int) -> nn.Module:
        if self.matryoshka:
            return NestedFeatureObjective(
                list(self.matryoshka), teacher_dim, self.losses, self.heads_cfg
            )
        return FeatureObjective(student_dim, teacher_dim, self.losses, self.heads_cfg)

    def teacher_models(self) -> list[Backbone]:
        """The frozen teachers in config order (empty for self-distillation)."""
        if self.self_distill:
            return []
        extra = getattr(self, "extra_teachers", {})
        return [self.teacher, *(extra[e.key] for e in self.teacher_entries[1:])]

    def teacher_objectives(self) -> list[nn.Module]:
        """Each teacher's objective (adaptors), in config order."""
        extra = getattr(self, "extra_objectives", {})
        return [self.objective, *(extra[e.key] for e in self.teacher_entries[1:])]

    @property
    def teacher_backbone(self) -> Backbone:
        """The backbone that gives the targets: the frozen teacher, or the EMA shadow (`self`)."""
        return self.ema if self.self_distill else self.teacher

    # ------------------------------------------------------------------ set-up
    @override
    def setup(self, stage: str) -> None:
        on_cuda = self.trainer.strategy.root_device.type == "cuda"
        for entry, model in zip(self.teacher_entries, self.teacher_models(), strict=False):
            wanted = entry.config.dtype
            if wanted == "auto":
                wanted = "bf16" if on_cuda else "fp32"
            self.teacher_dtypes[entry.key] = _DTYPES[wanted]
            model.to(_DTYPES[wanted])
        if self.self_distill:
            # the EMA teacher keeps fp32 weights (tiny EMA steps); it runs under autocast
            wanted = self.teacher_cfg.dtype
            self.teacher_dtype = (
                _DTYPES["bf16" if on_cuda else "fp32"] if wanted == "auto" else _DTYPES[wanted]
            )
        else:
            self.teacher_dtype = self.teacher_dtypes[self.teacher_entries[0].key]

    @override
    def configure_model(self) -> None:
        # after `setup` (the teacher is in its dtype), inside the strategy's context (FSDP)
        apply_speed(self.student, self.teacher_backbone, self.speed)
        for model in self.teacher_models()[1:]:
            apply_speed(None, model, self.speed)
        for member in self.family_members().values():
            apply_speed(member.student, member.ema, replace(self.speed, compile_teacher=False))
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, DistillFSDP2Strategy):
            if len(self.teacher_entries) > 1 or self.family_members():
                raise ValueError(
                    "FSDP2 shards one teacher and one student; several teachers "
                    "(model.teachers) or students (model.students) run under DDP "
                    "(trainer.strategy: ddp) for now"
                )
            strategy.shard(self)

    @override
    def on_fit_start(self) -> None:
        if self.targets == "prototypes" and not bool(self.heads_ready):
            from vitkd.distill.head_fitting import fit_teacher_heads

            fit_teacher_heads(self, self.trainer.datamodule)
            self.heads_ready.fill_(True)
            # `log_dir` broadcasts from rank 0: every rank must ask, or rank 0 waits forever
            log_dir = self.trainer.log_dir
            if self.trainer.is_global_zero and log_dir:
                save_teacher_heads(self.teacher_heads, Path(log_dir))
        if hasattr(self, "standardizers") and not bool(self.standardizers_ready):
            from vitkd.distill.standardize import fit_standardizers

            fit_standardizers(self, self.trainer.datamodule, self.balance.standardize_samples)
            self.standardizers_ready.fill_(True)

    def total_steps(self) -> int:
        """Optimiser steps of the whole run (what the schedules are stretched over)."""
        if self._trainer is None:
            return 1
        return max(1, int(self.trainer.estimated_stepping_batches))

    def global_batch(self, n_images: int) -> int:
        """Images per optimiser step over all devices and accumulation steps."""
        if self._trainer is None:
            return n_images
        if self._global_batch is None:
            accumulate = getattr(self.trainer, "accumulate_grad_batches", 1)
            self._global_batch = n_images * self.trainer.world_size * accumulate
        return self._global_batch

    # --------------------------------------------------------------- schedules
    def schedule(self, step: int, n_images: int) -> dict[str, float]:
        """lr, weight decay, teacher temperature and EMA momentum at optimiser step `step`, and
        the student temperature when `losses.student_temp_schedule` is set."""
        total = self.total_steps()
        o, lo = self.optim, self.losses
        peak = scaled_lr(o.base_lr, self.global_batch(n_images))
        values = {
            "lr": warmup_cosine(step, total, peak, o.min_lr, round(o.warmup_fraction * total)),
            "weight_decay": cosine(step, total, o.weight_decay, o.weight_decay_end),
            "teacher_temp": lo.teacher_temp_at(step, total),
            "ema_momentum": cosine(step, total, o.ema_momentum, o.ema_momentum_end),
        }
        # only when scheduled: runs without it keep the logged columns they always had
        if lo.student_temp_schedule is not None:
            values["student_temp"] = lo.student_temp_at(step, total)
        return values

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = backbone_param_groups(
            self.student.named_parameters(),
            num_layers=len(self.student.model.blocks),
            layer_decay=self.optim.layer_decay,
            patch_embed_lr_mult=self.optim.patch_embed_lr_mult,
        )
        for objective in self.teacher_objectives():
            groups += head_param_groups(objective.named_parameters())
        for member in self.family_members().values():
            # each member its own groups: its layer decay runs over its own depth
            groups += backbone_param_groups(
                member.student.named_parameters(),
                num_layers=len(member.student.model.blocks),
                layer_decay=self.optim.layer_decay,
                patch_embed_lr_mult=self.optim.patch_embed_lr_mult,
            )
            groups += head_param_groups(member.objectives.named_parameters())
        fused = self.optim.fused == "on" or (
            self.optim.fused == "auto" and self.trainer.strategy.root_device.type == "cuda"
        )
        return torch.optim.AdamW(
            merge_groups(groups), lr=0.0, betas=self.optim.betas, fused=fused or None
        )

    def apply_schedule(self, values: dict[str, float]) -> None:
        """Write the scheduled lr and weight decay into every optimiser group."""
        for group in self.optimizers(use_pl_optimizer=False).param_groups:
            group["lr"] = values["lr"] * group["lr_multiplier"]
            group["weight_decay"] = values["weight_decay"] * group["wd_multiplier"]

    # ---------------------------------------------------------------- training
    def forward_teacher(self, crops: torch.Tensor, index: int = 0) -> Tokens:
        """Tokens of teacher `index` (config order) on the global crops, no gradients, in that
        teacher's dtype."""
        backbone = self.teacher_backbone if index == 0 else self.teacher_models()[index]
        dtype = self.teacher_dtype
        if not self.self_distill:
            dtype = self.teacher_dtypes[self.teacher_entries[index].key]
        with (
            torch.no_grad(),
            torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32),
        ):
            return backbone.forward_tokens(crops)

    def teacher_targets(
        self, batch: dict[str, Any], index: int
    ) -> tuple[Tokens, torch.Tensor | None]:
        """Teacher `index`'s tokens of the batch, from the feature cache when the batch carries
        one (`batch["cache"][key]`; the patch tokens then are a subset, with their flat grid
        positions), else from the live teacher; PHI-S standardised when configured."""
        key = self.teacher_entries[index].key if self.teacher_entries else "self"
        cached = (batch.get("cache") or {}).get(key)
        position = None
        if cached is not None:
            t_cls = cached["cls"]
            tokens = Tokens(
                cls=t_cls,
                registers=t_cls.new_zeros(t_cls.shape[0], 0, t_cls.shape[-1]),
                patches=cached["patches"],
                grid=tuple(int(g) for g in cached["grid"]),
            )
            position = cached["index"]
        else:
            tokens = self.forward_teacher(batch["teacher"], index)
        if hasattr(self, "standardizers"):
            tokens = Tokens(
                cls=self.standardizers[f"{key}_cls"](tokens.cls),
                registers=tokens.registers,
                patches=self.standardizers[f"{key}_patch"](tokens.patches),
                grid=tokens.grid,
            )
        return tokens, position

    def compute_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Unweighted loss terms of one batch (also used by the benchmarks and tests).

        One teacher: `feature_cls`, ... as always; several: `<key>/feature_cls`, ...; nested
        sizes add `@<size>`. Sets `per_image_loss` (features targets with `feature_cls`).
        """
        n_images = int(batch["n_images"])
        masks = batch["masks"]
        use_masks = self.targets != "features" and self.losses.ibot > 0
        student = self.student.forward_tokens(batch["global"], masks if use_masks else None)
        local_cls = None
        if batch["local"].shape[0] > 0:
            local_cls = self.student.forward_tokens(batch["local"]).cls
        if self.targets == "features":
            terms = self._feature_terms(batch, student, local_cls, n_images)
        else:
            teacher, _ = self.teacher_targets(batch, 0)
            values = self.schedule(self.global_step, n_images)
            self._collapse_stats = {}
            terms = self.objective(
                student,
                local_cls,
                teacher,
                self.teacher_heads,
                masks,
                n_images,
                values["teacher_temp"],
                stats=self._collapse_stats,
                mask_index=batch.get("mask_index") if use_masks else None,
                student_temp=values.get("student_temp"),
            )
        if self.losses.koleo:
            views = student.cls.view(-1, n_images, student.cls.shape[-1])
            terms["koleo"] = sum(self.koleo(v) for v in views)
        return terms

    def _feature_terms(
        self,
        batch: dict[str, Any],
        student: Tokens,
        local_cls: torch.Tensor | None,
        n_images: int,
    ) -> dict[str, torch.Tensor]:
        """Every teacher's feature terms for every student of the family (one teacher forward
        each), and each image's CLS disagreement (the first student's)."""
        targets = [self.teacher_targets(batch, i) for i in range(len(self.teacher_entries))]
        terms, disagreement = self._student_terms(
            student, local_cls, targets, self.teacher_objectives(), n_images
        )
        if disagreement is not None:
            self.per_image_loss = disagreement.view(-1, n_images).mean(dim=0)
        for key, member in self.family_members().items():
            tokens = member.student.forward_tokens(batch["global"])
            local = None
            if batch["local"].shape[0] > 0:
                local = member.student.forward_tokens(batch["local"]).cls
            sub, _ = self._student_terms(tokens, local, targets, list(member.objectives), n_images)
            terms.update({f"{key}{MEMBER_SEP}{name}": value for name, value in sub.items()})
        return terms

    def _student_terms(
        self,
        student: Tokens,
        local_cls: torch.Tensor | None,
        targets: list[tuple[Tokens, torch.Tensor | None]],
        objectives: list[nn.Module],
        n_images: int,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One student's terms against every teacher, and its weighted CLS disagreement."""
        several = len(self.teacher_entries) > 1
        terms: dict[str, torch.Tensor] = {}
        disagreement = None
        for entry, objective, (teacher, position) in zip(
            self.teacher_entries, objectives, targets, strict=True
        ):
            sub = objective(student, local_cls, teacher, n_images, teacher_index=position)
            prefix = f"{entry.key}/" if several else ""
            terms.update({prefix + name: value for name, value in sub.items()})
            if objective.cls_disagreement is not None:
                part = objective.cls_disagreement * entry.config.cls_weight
                disagreement = part if disagreement is None else disagreement + part
        return terms, disagreement

    def family_members(self) -> dict[str, FamilyMember]:
        """The family's further students by key (empty for one student)."""
        return dict(getattr(self, "family", {}).items())

    def term_weight(self, name: str) -> float:
        """The weight of loss term `name` (0 for a teacher dropped this step)."""
        _, name = split_member(name)
        key = name.split("/", 1)[0] if "/" in name else None
        if key is not None and key in self._dropped:
            return 0.0
        teachers = {e.key: e.config for e in self.teacher_entries}
        return term_weight(name, self.losses, teachers, self.matryoshka)

    def weighted_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the loss terms times their configured weights."""
        return sum(self.term_weight(name) * value for name, value in terms.items())

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        n_images = int(batch["n_images"])
        self._step_images = n_images
        values = self.schedule(self.global_step, n_images)
        self.apply_schedule(values)
        # DDP needs every adaptor in the graph: a dropped teacher's terms are weighted 0
        self._dropped = dropped_teachers(
            [e.key for e in self.teacher_entries],
            self.balance.teacher_drop,
            int(self.hparams.seed),
            self.global_step,
        )
        terms = self.compute_losses(batch)
        total = self.weighted_total(terms)
        self.check_finite(terms, total)
        batch_size = n_images
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), batch_size=batch_size, sync_dist=False)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)
        for name, value in values.items():
            # a host tensor: Lightning would copy a float to the device, a blocking copy
            self.log(f"schedule/{name}", torch.tensor(value), batch_size=batch_size)
        self.watch_collapse(batch_size)
        return total

    def watch_collapse(self, batch_size: int) -> None:
        """Log `collapse/*` (prototype targets) and warn when the run has collapsed."""
        stats = self._collapse_stats
        if not stats:
            return
        for name, value in stats.items():
            self.log(f"collapse/{name}", value, batch_size=batch_size)
        # judged after the teacher-temperature warm-up: sharp early targets are not collapse
        warm = round(self.losses.teacher_temp_settled_fraction() * self.total_steps())
        if self.global_step >= warm:
            # one host sync, only every tenth step
            if self.global_step % 10 == 0:
                floats = {k: float(v) for k, v in stats.items()}
                self.collapse.check(self.global_step, floats)

    def check_finite(self, terms: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        """Raise `NonFiniteLossError` on every rank when any rank has a non-finite term.

        The one host-device sync of a training step: raising before the optimiser step needs
        the host to know. The terms are checked on the device together, the flag is summed over
        ranks on the device, and only that scalar is read; the values are read on failure only.
        """
        values = torch.stack([v.detach().float().reshape(()) for v in [*terms.values(), total]])
        finite = torch.isfinite(values)
        flag = self.trainer.strategy.reduce((~finite).any().float().reshape(1), reduce_op="sum")
        if flag.item():  # the sync
            *local, local_total = values.tolist()
            bad = [f"{n}={v}" for n, v in zip(terms, local, strict=True) if not math.isfinite(v)]
            if not bad and not math.isfinite(local_total):  # finite terms, overflowing sum
                bad = [f"total={local_total}"]
            detail = ", ".join(bad) or "on another rank"
            raise NonFiniteLossError(
                f"non-finite loss at step {self.global_step}: {detail}. Training stopped before "
                "the optimiser step; the last checkpoint holds the previous good weights. Lower "
                "optim.base_lr, check the inputs, or use fp32 teacher (model.teacher.dtype: fp32)"
            )

    @override
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # DINOv2 cancels the heads' last-layer gradients for the first epoch
        freeze = round(self.heads_cfg.freeze_last_layer_fraction * self.total_steps())
        if self.global_step < freeze:
            for group in optimizer.param_groups:
                if group.get("is_last_layer"):
                    for p in group["params"]:
                        p.grad = None

    @override
    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim.clip_grad
        if not clip:
            return
        members = self.family_members()
        if not members:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            return
        # a family: each student clipped on its own norm, as if it trained alone
        mine = {id(p) for m in members.values() for p in m.parameters()}
        first = [p for p in self.parameters() if p.requires_grad and id(p) not in mine]
        torch.nn.utils.clip_grad_norm_(first, clip)
        for member in members.values():
            torch.nn.utils.clip_grad_norm_(
                [p for p in member.parameters() if p.requires_grad], clip
            )

    @override
    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: Any,
        optimizer_closure: Any = None,
    ) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # Right after the step, once per optimiser step (not per accumulated micro-batch) and
        # before any callback's `on_train_batch_end`, so a checkpoint saved there (every n steps)
        # already holds this step's shadow and a resume neither skips nor repeats an update.
        # `global_step` still counts the steps before this one here.
        momentum = self.schedule(self.global_step, self._step_images)["ema_momentum"]
        ema_update(self.ema, self.student, momentum)
        for member in self.family_members().values():
            ema_update(member.ema, member.student, momentum)
        # the softmax centres likewise: the mean over every micro-batch of this step
        if isinstance(self.objective, PrototypeObjective):
            self.objective.step_centers()
        if self.self_distill:
            for name, head in self.teacher_heads.items():
                ema_update(head, getattr(self.objective, f"{name}_head"), momentum)

    # ------------------------------------------------------------- checkpoints
    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.self_distill:  # the EMA teacher and its heads are trained state: keep them
            return
        # the teachers are the local files of the config: do not copy a billion frozen weights
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(("teacher.", "extra_teachers."))]:
            del state[key]
        checkpoint["vitkd_teacher"] = {
            "name": self.teacher_cfg.name,
            "weights": self.teacher_cfg.weights,
            "fingerprint": self._teacher_fingerprint,
        }
        if len(self.teacher_entries) > 1:
            checkpoint["vitkd_teachers"] = [
                {
                    "key": e.key,
                    "name": e.config.name,
                    "weights": e.config.weights,
                    "fingerprint": self._teacher_fingerprints[e.key],
                }
                for e in self.teacher_entries
            ]

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.self_distill:
            return
        saved = {t["key"]: t for t in checkpoint.get("vitkd_teachers", [])}
        if not saved and "vitkd_teacher" in checkpoint:
            saved = {self.teacher_entries[0].key: checkpoint["vitkd_teacher"]}
        for entry in self.teacher_entries:
            value = saved.get(entry.key, {}).get("fingerprint")
            mine = self._teacher_fingerprints[entry.key]
            if value is not None and not same_fingerprint(value, mine):
                raise ValueError(
                    f"this checkpoint was trained with a different teacher {entry.key!r} "
                    f"({saved[entry.key]}) than the configured one ({entry.config.name}, "
                    f"weights={entry.config.weights}); point {entry.config_key}.weights at the "
                    "original file"
                )
        state = checkpoint.get("state_dict")
        if state is None:  # FSDP2: the strategy has loaded the weights itself, teacher aside
            return
        for key, value in self.teacher.state_dict(prefix="teacher.").items():
            state[key] = value
        if hasattr(self, "extra_teachers"):
            for key, value in self.extra_teachers.state_dict(prefix="extra_teachers.").items():
                state[key] = value

    def teacher_fingerprints(self) -> dict[str, float]:
        """A cheap, order-dependent checksum of each teacher's weights (float64 sum of a probe),
        by teacher key; empty for self-distillation, whose teacher is trained state saved in
        the checkpoint."""
        return {
            entry.key: teacher_fingerprint(model)
            for entry, model in zip(self.teacher_entries, self.teacher_models(), strict=False)
        }

    def teacher_fingerprint(self) -> float:
        """The first teacher's fingerprint (`teacher_fingerprints`); 0 for self-distillation."""
        return self.teacher_fingerprints().get(self.teacher_entries[0].key, 0.0)


def _check_sizes(
    sizes: list[int] | None, weights: list[float] | None, width: int
) -> dict[int, float] | None:
    """`model.matryoshka` sizes with their weights, checked against the student width."""
    if not sizes:
        if weights:
            raise ValueError("model.matryoshka_weights is set without model.matryoshka sizes")
        return None
    sizes = [int(m) for m in sizes]
    bad = [m for m in sizes if not 0 < m <= width]
    if bad:
        raise ValueError(
            f"model.matryoshka sizes {bad} are not in 1..{width}, the student's embedding width"
        )
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"model.matryoshka={sizes}: each size once")
    if max(sizes) != width:
        raise ValueError(
            f"model.matryoshka={sizes}: the largest size must be the student's width {width} "
            f"(the full embedding is always trained); add {width}"
        )
    weights = list(weights) if weights else [1.0] * len(sizes)
    if len(weights) != len(sizes) or min(weights) < 0:
        raise ValueError(f"model.matryoshka_weights={weights}: one weight >= 0 per size of {sizes}")
    return dict(zip(sizes, (float(w) for w in weights), strict=True))
