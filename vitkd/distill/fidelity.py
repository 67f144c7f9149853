"""Teacher-student fidelity on held-out tiles: PC R^2, linear CKA, ridge R^2, kNN agreement.

All are reported for the CLS embedding and for patch tokens (teacher grid resized to the
student's; a fixed random subset of tokens). Random ViTs already agree closely on CLS, whose
variance is dominated by colour and brightness, so CKA, ridge R^2 and plain kNN agreement can
be saturated before any training; `pc_r2` (every teacher principal direction counts the same)
and kNN agreement on centred features cannot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vitkd.metrics import knn_agreement, linear_cka, pc_r2, ridge_r2
from vitkd.models import Backbone, resize_patch_grid

MIN_TILES = 10
MAX_PATCH_TOKENS = 4096
# patch tokens kept per held-out tile, picked as they are produced: host memory stays
# O(tiles * 16 * D) instead of O(tiles * grid * D) (about 80 GB at 100 slides of ViT-g tokens)
TOKENS_PER_TILE = 16


def _fit_size(model: Backbone, x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        size = model.spec.img_size if not model.dynamic_img_size else x.shape[-1]
    if x.shape[-1] != size:
        # held-out tiles are read at the tile size; both models see them at the size of the
        # global crops they were trained on (a dynamic-size student would otherwise see more)
        x = F.interpolate(x.float() / 255, size=(size, size), mode="bilinear", antialias=True)
    return x


@torch.no_grad()
def embed_all(
    model: Backbone,
    loader: DataLoader,
    device: torch.device,
    grid: tuple[int, int] | None = None,
    tokens_per_tile: int | None = TOKENS_PER_TILE,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLS (N, D) and patch tokens (N, T, D) float32 of every uint8 tile batch in `loader`.

    Calls ``model.forward_tokens``, the method FSDP2 gathers the shards around (see
    `vitkd.distill.fsdp2`): for a sharded model this is a collective, so every rank must call it
    with the same number of batches.

    Args:
        model: the backbone.
        loader: batches of uint8 (B, 3, S, S) tiles.
        device: where to run.
        grid: resize the patch grid to this (h, w), e.g. the student's grid for the teacher.
        tokens_per_tile: keep this many patch positions per tile (`None`: all). The positions
            of tile i depend only on i and the grid, so teacher and student (same grid) keep
            the same ones.
        size: side the tiles are resized to (the global crop size); `None`: the model's input
            size, or the tile size for a dynamic-size model.
    """
    was_training = model.training
    model.eval()
    cls, patches = [], []
    seen = 0
    for batch in loader:
        tokens = model.forward_tokens(_fit_size(model, batch.to(device), size))
        p = tokens.patches.float()
        if grid is not None and tuple(grid) != tuple(tokens.grid):
            p = resize_patch_grid(p, tokens.grid, grid)
        if tokens_per_tile is not None and tokens_per_tile < p.shape[1]:
            pick = token_positions(seen, p.shape[0], p.shape[1], tokens_per_tile).to(p.device)
            p = torch.gather(p, 1, pick.unsqueeze(-1).expand(-1, -1, p.shape[-1]))
        seen += p.shape[0]
        cls.append(tokens.cls.float().cpu())
        patches.append(p.cpu())
    model.train(was_training)
    if not cls:
        return torch.empty(0), torch.empty(0)
    return torch.cat(cls), torch.cat(patches)


def token_positions(first: int, n_tiles: int, n_tokens: int, keep: int) -> torch.Tensor:
    """(n_tiles, keep) patch positions for tiles `first`, `first + 1`, ...: a function of the
    tile index only."""
    rows = []
    for i in range(first, first + n_tiles):
        gen = torch.Generator().manual_seed(i)
        rows.append(torch.randperm(n_tokens, generator=gen)[:keep])
    return torch.stack(rows)


def patch_grid(model: Backbone, loader: DataLoader, size: int | None = None) -> tuple[int, int]:
    """The patch grid a model produces for the loader's tiles (resized to `size` if given)."""
    if size is None:
        size = next(iter(loader)).shape[-1]
        if not model.dynamic_img_size:
            size = model.spec.img_size
    return model.grid_for(size, size)


def _scores(student: torch.Tensor, teacher: torch.Tensor, knn: bool) -> dict[str, float]:
    s, t = student.numpy(), teacher.numpy()
    out = {
        "pc_r2": float(pc_r2(s, t)),
        "linear_cka": float(linear_cka(s, t)),
        "ridge_r2": float(ridge_r2(s, t)),
    }
    if knn:
        k = min(10, len(s) - 1)
        out["knn_agreement"] = float(knn_agreement(s, t, k=k))
        out["knn_agreement_centred"] = float(knn_agreement(s, t, k=k, centred=True))
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
