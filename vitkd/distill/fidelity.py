"""Teacher-student fidelity on held-out tiles: linear CKA and ridge R^2 (not raw cosine).

Both are reported for the CLS embedding and for patch tokens (teacher grid resized to the
student's; a fixed random subset of tokens). Random ViTs already agree closely on CLS, whose
variance is dominated by colour and brightness; patch tokens carry the spatial detail that
distillation has to transfer, so they show the change a short run makes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vitkd.metrics import knn_agreement, linear_cka, ridge_r2
from vitkd.models import Backbone, resize_patch_grid

MIN_TILES = 8
MAX_PATCH_TOKENS = 4096


def _fit_size(model: Backbone, x: torch.Tensor) -> torch.Tensor:
    size = model.spec.img_size
    if x.shape[-1] != size and not model.dynamic_img_size:
        # held-out tiles are read at the tile size; a fixed-size model sees them resized
        x = F.interpolate(x.float() / 255, size=(size, size), mode="bilinear", antialias=True)
    return x


@torch.no_grad()
def embed_all(
    model: Backbone, loader: DataLoader, device: torch.device, grid: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLS (N, D) and patch tokens (N, P, D) float32 of every uint8 tile batch in `loader`.

    Calls ``model.forward_tokens``, the method FSDP2 gathers the shards around (see
    `vitkd.distill.fsdp2`): for a sharded model this is a collective, so every rank must call it
    with the same number of batches.

    Args:
        model: the backbone.
        loader: batches of uint8 (B, 3, S, S) tiles.
        device: where to run.
        grid: resize the patch grid to this (h, w), e.g. the student's grid for the teacher.
    """
    was_training = model.training
    model.eval()
    cls, patches = [], []
    for batch in loader:
        tokens = model.forward_tokens(_fit_size(model, batch.to(device)))
        p = tokens.patches.float()
        if grid is not None and tuple(grid) != tuple(tokens.grid):
            p = resize_patch_grid(p, tokens.grid, grid)
        cls.append(tokens.cls.float().cpu())
        patches.append(p.cpu())
    model.train(was_training)
    if not cls:
        return torch.empty(0), torch.empty(0)
    return torch.cat(cls), torch.cat(patches)


def patch_grid(model: Backbone, loader: DataLoader) -> tuple[int, int]:
    """The patch grid a model produces for the loader's tiles."""
    size = next(iter(loader)).shape[-1]
    if not model.dynamic_img_size:
        size = model.spec.img_size
    return model.grid_for(size, size)


def _scores(student: torch.Tensor, teacher: torch.Tensor, knn: bool) -> dict[str, float]:
    s, t = student.numpy(), teacher.numpy()
    out = {"linear_cka": float(linear_cka(s, t)), "ridge_r2": float(ridge_r2(s, t))}
    if knn:
        out["knn_agreement"] = float(knn_agreement(s, t, k=min(10, len(s) - 1)))
    return out


@torch.no_grad()
def adaptor_cosine(
    adaptor: torch.nn.Module,
    student_cls: torch.Tensor,
    teacher_cls: torch.Tensor,
    weights: dict[str, torch.Tensor] | None = None,
) -> float:
    """Mean cosine between the trained adaptor's prediction of the teacher CLS and the teacher CLS.

    This is the feature-target objective itself, measured on held-out tiles: unlike CKA and a
    refitted ridge map it uses the map learnt in training, so it shows what a run learnt even
    when the teacher is random and linear measures are already saturated at initialisation.

    Args:
        adaptor: the CLS adaptor.
        student_cls: student CLS embeddings (N, Ds).
        teacher_cls: teacher CLS embeddings (N, Dt).
        weights: the adaptor's full state dict to run it with (on the weights' device) instead
            of its own parameters, which are shards under FSDP (see `gather_state_dict`).
    """
    if weights is None:
        prediction = adaptor(student_cls.to(next(adaptor.parameters()).device))
    else:
        x = student_cls.to(next(iter(weights.values())).device)
        prediction = torch.func.functional_call(adaptor, weights, (x,))
    return float(F.cosine_similarity(prediction.float().cpu(), teacher_cls, dim=-1).mean())


def fidelity(
    student: tuple[torch.Tensor, torch.Tensor],
    teacher: tuple[torch.Tensor, torch.Tensor],
    adaptor: torch.nn.Module | None = None,
    adaptor_weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, object]:
    """CLS and patch-token fidelity of (cls, patches) pairs from `embed_all`.

    With the CLS `adaptor` of a feature-target run, also `adaptor_cosine` (see there; it runs
    with `adaptor_weights` when given).
    """
    s_cls, s_patch = student
    t_cls, t_patch = teacher
    n = int(s_cls.shape[0])
    if n < MIN_TILES:
        return {"tiles": n, "note": f"fewer than {MIN_TILES} held-out tiles: not measured"}
    s_tok, t_tok = s_patch.flatten(0, 1), t_patch.flatten(0, 1)
    if s_tok.shape[0] > MAX_PATCH_TOKENS:
        pick = torch.randperm(s_tok.shape[0], generator=torch.Generator().manual_seed(0))
        s_tok, t_tok = s_tok[pick[:MAX_PATCH_TOKENS]], t_tok[pick[:MAX_PATCH_TOKENS]]
    cls = _scores(s_cls, t_cls, knn=True)
    if adaptor is not None:
        cls["adaptor_cosine"] = adaptor_cosine(adaptor, s_cls, t_cls, adaptor_weights)
    return {
        "tiles": n,
        "cls": cls,
        "patch": {"tokens": int(s_tok.shape[0]), **_scores(s_tok, t_tok, knn=False)},
    }
