"""Patch-grid alignment between teacher and student."""

import pytest
import torch

from vitkd.models import (
    AlignmentError,
    build_student,
    build_teacher,
    check_alignable,
    resize_patch_grid,
)

TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2}


def _linear_grid(h: int, w: int) -> torch.Tensor:
    """Tokens (1, h*w, 2) whose channels are 2*row + col and row - col."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grid = torch.stack([2.0 * rows + cols, rows - cols.float()], dim=-1)
    return grid.reshape(1, h * w, 2)


def test_identity_returns_input() -> None:
    x = torch.randn(2, 12, 5)
    assert resize_patch_grid(x, (3, 4), (3, 4)) is x


def test_upsample_matches_hand_computed_bilinear() -> None:
    # align_corners=False samples source coordinate (i + 0.5) / 2 - 0.5, clamped to [0, 1].
    coord = torch.tensor([0.0, 0.25, 0.75, 1.0])
    rows, cols = torch.meshgrid(coord, coord, indexing="ij")
    want = torch.stack([2 * rows + cols, rows - cols], dim=-1).reshape(1, 16, 2)
    torch.testing.assert_close(resize_patch_grid(_linear_grid(2, 2), (2, 2), (4, 4)), want)


def test_downsample_non_square() -> None:
    # 4 -> 2 samples at 0.5 and 2.5; 6 -> 3 samples at 0.5, 2.5, 4.5 (interior: exact for linear).
    rows, cols = torch.meshgrid(
        torch.tensor([0.5, 2.5]), torch.tensor([0.5, 2.5, 4.5]), indexing="ij"
    )
    want = torch.stack([2 * rows + cols, rows - cols], dim=-1).reshape(1, 6, 2)
    torch.testing.assert_close(resize_patch_grid(_linear_grid(4, 6), (4, 6), (2, 3)), want)


def test_token_count_must_fill_grid() -> None:
    with pytest.raises(ValueError, match=r"N=10 do not fill the source grid \(3, 4\)"):
        resize_patch_grid(torch.randn(1, 10, 4), (3, 4), (2, 2))


def test_mixed_patch_sizes_align_at_common_multiple() -> None:
    teacher = build_teacher("vit_small_patch16_224", img_size=112, **TINY)
    student = build_student("h0-mini", img_size=112, **TINY)
    assert check_alignable(teacher, student, 112, local_size=42) == ((7, 7), (8, 8))


def test_indivisible_crop_names_both_patch_sizes() -> None:
    teacher = build_teacher("vit_small_patch16_224", dynamic_img_size=True, **TINY)
    student = build_student("h0-mini", **TINY)
    with pytest.raises(AlignmentError, match=r"teacher patch 16, student patch 14.*e\.g\. 224"):
        check_alignable(teacher, student, 210)


def test_fixed_size_teacher_and_bad_local_crop() -> None:
    teacher = build_teacher("h-optimus-0", **TINY)
    student = build_student("h0-mini", **TINY)
    with pytest.raises(AlignmentError, match=r"built for 224 px.*img_size=112"):
        check_alignable(teacher, student, 112)
    with pytest.raises(AlignmentError, match="local crop size 100 px"):
        check_alignable(teacher, student, 224, local_size=100)
    fixed = build_student("h0-mini", dynamic_img_size=False, **TINY)
    with pytest.raises(AlignmentError, match="dynamic_img_size=True"):
        check_alignable(teacher, fixed, 224, local_size=98)
