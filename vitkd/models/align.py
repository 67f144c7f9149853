"""Align teacher and student patch grids: divisibility checks and bilinear grid resizing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from vitkd.models.backbone import Backbone


class AlignmentError(ValueError):
    """Teacher and student patch sizes cannot both tile the requested crop size."""


def resize_patch_grid(patches: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    """Resize row-major patch tokens from grid ``src`` to grid ``dst`` bilinearly.

    Args:
        patches: (B, N, D) with ``N == src[0] * src[1]``.
        src: (h, w) grid of ``patches``.
        dst: (h, w) target grid.

    Returns:
        (B, dst_h * dst_w, D); ``patches`` itself when the grids are equal.
    """
    src, dst = tuple(src), tuple(dst)
    batch, num, dim = patches.shape
    if num != src[0] * src[1]:
        raise ValueError(f"patch tokens N={num} do not fill the source grid {src}")
    if src == dst:
        return patches
    grid = patches.transpose(1, 2).reshape(batch, dim, src[0], src[1])
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def check_alignable(
    teacher: Backbone, student: Backbone, img_size: int, local_size: int | None = None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Check that both models tile ``img_size`` crops (and the student ``local_size`` crops).

    Returns:
        The teacher and student patch grids at ``img_size``.
    """
    t_patch, s_patch = teacher.patch_size, student.patch_size
    for role, model, patch in (("teacher", teacher, t_patch), ("student", student, s_patch)):
        if img_size % patch:
            step = math.lcm(t_patch, s_patch)
            raise AlignmentError(
                f"global crop size {img_size} px is not a multiple of the {role} patch size {patch} "
                f"(teacher patch {t_patch}, student patch {s_patch}); use a crop size divisible by "
                f"both, e.g. {max(step, round(img_size / step) * step)}"
            )
        if not model.dynamic_img_size and model.spec.img_size != img_size:
            raise AlignmentError(
                f"the {role} ({model.spec.arch}) is built for {model.spec.img_size} px inputs but "
                f"global crops are {img_size} px; set the crop size to {model.spec.img_size} or build "
                f"the {role} with img_size={img_size} (or dynamic_img_size=True)"
            )
    if local_size is not None:
        if local_size % s_patch:
            raise AlignmentError(
                f"local crop size {local_size} px is not a multiple of the student patch size "
                f"{s_patch}; use e.g. {max(s_patch, local_size - local_size % s_patch)}"
            )
        if not student.dynamic_img_size and local_size != student.spec.img_size:
            raise AlignmentError(
                f"the student ({student.spec.arch}) has a fixed {student.spec.img_size} px input but "
                f"local crops are {local_size} px; build it with dynamic_img_size=True"
            )
    return teacher.grid_for(img_size, img_size), student.grid_for(img_size, img_size)
