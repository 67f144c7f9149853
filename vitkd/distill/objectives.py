"""The two distillation targets: teacher features (no heads needed) and teacher prototypes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitkd.distill.collapse import collapse_stats
from vitkd.distill.config import HeadConfig, LossConfig
from vitkd.losses import DINOLoss, FeatureLoss, RelationLoss, iBOTPatchLoss
from vitkd.models import DINOHead, FeatureAdaptor, Tokens, resize_patch_grid


def _views(x: torch.Tensor, n_images: int) -> torch.Tensor:
    """(V * B, ...) view-major -> (V, B, ...)."""
    return x.view(-1, n_images, *x.shape[1:])


def _masked_rows(
    x: torch.Tensor, masks: torch.Tensor, mask_index: torch.Tensor | None
) -> torch.Tensor:
    """Rows of `x` (V * B, N, ...) at the masked positions, in `x[masks]` order (M, ...).

    With `mask_index` (the flat indices of `masks`, from the collate) a gather of a size known on
    the host; without it, boolean indexing, which waits for the device to learn M.
    """
    if mask_index is None:
        return x[masks]
    return x.flatten(0, 1).index_select(0, mask_index)


def _adaptor(student_dim: int, teacher_dim: int, heads: HeadConfig) -> nn.Module:
    if heads.adaptor == "linear":
        return nn.Linear(student_dim, teacher_dim)
    return FeatureAdaptor(student_dim, teacher_dim, heads.adaptor_hidden_dim or teacher_dim)


class FeatureObjective(nn.Module):
    """RADIO/OMNI-style regression of the teacher's CLS and patch tokens through adaptors.

    Terms (each only built when its weight is non-zero, so DDP sees no unused parameters):
    `feature_cls` (student global CLS -> teacher CLS of the same crop), `feature_patch`
    (student patch tokens -> teacher patch tokens resized to the student grid), `feature_local`
    (each local-crop CLS -> both teacher global CLS tokens, as DINO pairs locals with globals),
    `relation` (batch similarity matrices of the global CLS tokens).
    """

    def __init__(
        self, student_dim: int, teacher_dim: int, losses: LossConfig, heads: HeadConfig
    ) -> None:
        super().__init__()
        self.weights = {
            "feature_cls": losses.feature_cls,
            "feature_patch": losses.feature_patch,
            "feature_local": losses.feature_local,
            "relation": losses.relation,
        }
        if losses.feature_cls or losses.feature_local:
            self.cls_adaptor = _adaptor(student_dim, teacher_dim, heads)
        if losses.feature_patch:
            self.patch_adaptor = _adaptor(student_dim, teacher_dim, heads)
        self.feature = FeatureLoss()
        self.relation = RelationLoss()

    def forward(
        self,
        student: Tokens,
        student_local_cls: torch.Tensor | None,
        teacher: Tokens,
        n_images: int,
        teacher_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss terms.

        Sets `cls_disagreement` (detached, (n_g * B,)): 1 - cosine of the adapted student CLS
        and the teacher CLS of each crop, for samplers that favour hard tiles.

        Args:
            student: student tokens of the global crops (n_g * B, ...), view-major.
            student_local_cls: student CLS of the local crops (n_l * B, Ds), or None.
            teacher: teacher tokens of the same global crops (n_g * B, ...).
            n_images: B.
            teacher_index: int64 (n_g * B, P): `teacher.patches` holds only P tokens (from a
                feature cache), at these flat positions of `teacher.grid`. The student's
                adapted patch tokens are then resized to the teacher grid and gathered there.
        """
        terms: dict[str, torch.Tensor] = {}
        t_cls = teacher.cls.float()
        self.cls_disagreement = None
        if self.weights["feature_cls"]:
            s_cls = self.cls_adaptor(student.cls)
            terms["feature_cls"] = self.feature(s_cls, t_cls)
            with torch.no_grad():
                self.cls_disagreement = 1.0 - F.cosine_similarity(s_cls.float(), t_cls, dim=-1)
        if self.weights["feature_patch"]:
            s_patches = self.patch_adaptor(student.patches)
            if teacher_index is None:
                t_patches = resize_patch_grid(teacher.patches.float(), teacher.grid, student.grid)
            else:
                s_patches = resize_patch_grid(s_patches, student.grid, teacher.grid)
                index = teacher_index.unsqueeze(-1).expand(-1, -1, s_patches.shape[-1])
                s_patches = s_patches.gather(1, index)
                t_patches = teacher.patches.float()
            terms["feature_patch"] = self.feature(s_patches, t_patches)
        if self.weights["feature_local"] and student_local_cls is not None:
            s_local = _views(self.cls_adaptor(student_local_cls), n_images)  # (n_l, B, Dt)
            t_global = _views(t_cls, n_images)  # (n_g, B, Dt)
            pairs = [self.feature(s_local, t.unsqueeze(0).expand_as(s_local)) for t in t_global]
            terms["feature_local"] = torch.stack(pairs).mean()
        if self.weights["relation"]:
            terms["relation"] = self.relation(student.cls, t_cls)
        return terms


class NestedFeatureObjective(nn.Module):
    """Matryoshka feature objective: a `FeatureObjective` on each prefix of the student's width.

    Each size m in `sizes` has its own adaptors (m -> teacher width) and regresses the teacher
    from the first m dimensions of every student token (Kusupati et al. 2022, Matryoshka
    Representation Learning, https://arxiv.org/abs/2205.13147; Pathryoshka applies it to
    pathology distillation). Terms are named `<term>@<m>`. The largest size is the full width.

    Args:
        sizes: prefix sizes, e.g. (768, 384, 192, 96).
        teacher_dim: the teacher's width.
        losses: loss weights (the same terms at every size).
        heads: adaptor kind and width.
    """

    def __init__(
        self, sizes: list[int], teacher_dim: int, losses: LossConfig, heads: HeadConfig
    ) -> None:
        super().__init__()
        self.sizes = sorted(sizes, reverse=True)
        self.levels = nn.ModuleDict(
            {str(m): FeatureObjective(m, teacher_dim, losses, heads) for m in self.sizes}
        )

    @property
    def cls_adaptor(self) -> nn.Module | None:
        """The full-width CLS adaptor (fidelity and the exported teacher-space head use it)."""
        return getattr(self.levels[str(self.sizes[0])], "cls_adaptor", None)

    @property
    def cls_disagreement(self) -> torch.Tensor | None:
        """Per-crop CLS disagreement of the full width (see `FeatureObjective`)."""
        return self.levels[str(self.sizes[0])].cls_disagreement

    def forward(
        self,
        student: Tokens,
        student_local_cls: torch.Tensor | None,
        teacher: Tokens,
        n_images: int,
        teacher_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted terms `<term>@<m>` of every size (arguments as `FeatureObjective`)."""
        terms: dict[str, torch.Tensor] = {}
        for m in self.sizes:
            prefix = Tokens(
                cls=student.cls[..., :m],
                registers=student.registers[..., :m],
                patches=student.patches[..., :m],
                grid=student.grid,
            )
            local = None if student_local_cls is None else student_local_cls[..., :m]
            level = self.levels[str(m)](prefix, local, teacher, n_images, teacher_index)
            terms.update({f"{name}@{m}": value for name, value in level.items()})
        return terms


class PrototypeObjective(nn.Module):
    """DINOv2 distillation: DINO on CLS prototypes and iBOT on masked patch prototypes.

    The teacher's heads are frozen (loaded or fitted beforehand, or the EMA of the student's
    heads in self-distillation); the student has its own DINO and iBOT heads. Teacher targets
    are centred by Sinkhorn-Knopp or the lagged softmax centre at the scheduled teacher
    temperature. The softmax centres only accumulate their batch statistics here;
    :meth:`step_centers` applies them once per optimiser step, so gradient accumulation moves the
    centres as one large batch would. The iBOT term is always computed, on an empty set of tokens
    when nothing is masked, so every rank runs the same collectives and DDP sees every parameter.
    """

    def __init__(self, student_dim: int, losses: LossConfig, heads: HeadConfig) -> None:
        super().__init__()
        self.losses = losses
        self.dino_head = DINOHead(
            student_dim, heads.prototypes, heads.hidden_dim, heads.bottleneck_dim
        )
        self.dino_loss = DINOLoss(heads.prototypes, losses.student_temp)
        if losses.ibot:
            self.ibot_head = DINOHead(
                student_dim, heads.ibot_prototypes, heads.hidden_dim, heads.bottleneck_dim
            )
            self.ibot_loss = iBOTPatchLoss(heads.ibot_prototypes, losses.student_temp)

    def forward(
        self,
        student: Tokens,
        student_local_cls: torch.Tensor | None,
        teacher: Tokens,
        teacher_heads: nn.ModuleDict,
        masks: torch.Tensor,
        n_images: int,
        teacher_temp: float,
        stats: dict[str, torch.Tensor] | None = None,
        mask_index: torch.Tensor | None = None,
        student_temp: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss terms `dino` and `ibot`.

        Args:
            student: student tokens of the (masked) global crops, view-major.
            student_local_cls: student CLS of the local crops, or None.
            teacher: teacher tokens of the unmasked global crops.
            teacher_heads: frozen `dino` and `ibot` heads of the teacher.
            masks: bool (n_g * B, N_student) masked patch positions.
            n_images: B.
            teacher_temp: scheduled teacher temperature.
            stats: when given, filled with `collapse_stats` of the teacher CLS and DINO targets.
            mask_index: int64 (M,) flat indices of the True entries of `masks`, in order (from
                the collate); None falls back to boolean indexing (a host-device sync).
            student_temp: scheduled student temperature; None keeps `losses.student_temp`.
        """
        if student_temp is not None:
            self.dino_loss.student_temp = student_temp
            if self.losses.ibot:
                self.ibot_loss.student_temp = student_temp
        mode = self.losses.centering
        softmax = mode == "softmax"
        with torch.no_grad():
            t_logits = _views(teacher_heads["dino"](teacher.cls.float()), n_images)
            t_probs = self.dino_loss.teacher_targets(
                t_logits, teacher_temp, mode=mode, update_center=False
            )
            if softmax:
                self.dino_loss.center.accumulate(t_logits)
        s_global = _views(self.dino_head(student.cls), n_images)
        s_local = None
        if student_local_cls is not None:
            s_local = _views(self.dino_head(student_local_cls), n_images)
        terms = {"dino": self.dino_loss(s_global, s_local, t_probs)}
        if stats is not None:
            stats.update(collapse_stats(teacher.cls, s_global, t_probs))
        if self.losses.ibot:
            with torch.no_grad():
                t_patches = resize_patch_grid(teacher.patches.float(), teacher.grid, student.grid)
                t_masked = teacher_heads["ibot"](_masked_rows(t_patches, masks, mask_index))
                t_probs_masked = self.ibot_loss.teacher_targets(
                    t_masked, teacher_temp, mode=mode, update_center=False
                )
                if softmax:
                    self.ibot_loss.center.accumulate(t_masked)
                # each token weighs 1 / (its image's masked count)
                per_image = 1.0 / masks.sum(dim=-1).clamp(min=1).float()
                weights = _masked_rows(per_image.unsqueeze(-1).expand_as(masks), masks, mask_index)
            s_masked = self.ibot_head(_masked_rows(student.patches, masks, mask_index))
            terms["ibot"] = self.ibot_loss.forward_masked(
                s_masked,
                t_probs_masked,
                masks,
                n_masked_patches=len(s_masked),
                masks_weight=weights,
            )
        return terms

    @torch.no_grad()
    def step_centers(self) -> None:
        """Move the softmax centres once with everything accumulated since the last call (once
        per optimiser step; one all-reduce each). Nothing to do with Sinkhorn-Knopp."""
        if self.losses.centering != "softmax":
            return
        self.dino_loss.center.step()
        if self.losses.ibot:
            self.ibot_loss.center.step()
