"""The two distillation targets: teacher features (no heads needed) and teacher prototypes."""

from __future__ import annotations

import torch
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
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss terms.

        Args:
            student: student tokens of the global crops (n_g * B, ...), view-major.
            student_local_cls: student CLS of the local crops (n_l * B, Ds), or None.
            teacher: teacher tokens of the same global crops (n_g * B, ...).
            n_images: B.
        """
        terms: dict[str, torch.Tensor] = {}
        t_cls = teacher.cls.float()
        if self.weights["feature_cls"]:
            terms["feature_cls"] = self.feature(self.cls_adaptor(student.cls), t_cls)
        if self.weights["feature_patch"]:
            t_patches = resize_patch_grid(teacher.patches.float(), teacher.grid, student.grid)
            terms["feature_patch"] = self.feature(self.patch_adaptor(student.patches), t_patches)
        if self.weights["feature_local"] and student_local_cls is not None:
            s_local = _views(self.cls_adaptor(student_local_cls), n_images)  # (n_l, B, Dt)
            t_global = _views(t_cls, n_images)  # (n_g, B, Dt)
            pairs = [self.feature(s_local, t.unsqueeze(0).expand_as(s_local)) for t in t_global]
            terms["feature_local"] = torch.stack(pairs).mean()
        if self.weights["relation"]:
            terms["relation"] = self.relation(student.cls, t_cls)
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
