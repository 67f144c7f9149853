"""RelationLoss against explicit loops over image pairs, plus invariants."""

import numpy as np
import pytest
import torch

from vitkd.losses import RelationLoss


def reference_relation(s: np.ndarray, t: np.ndarray, normalize: bool) -> float:
    s, t = s.astype(np.float64), t.astype(np.float64)
    if normalize:
        s = s / np.linalg.norm(s, axis=1, keepdims=True)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
    n = len(s)
    errors = [(s[i] @ s[j] - t[i] @ t[j]) ** 2 for i in range(n) for j in range(n) if i != j]
    return float(np.mean(errors))


@pytest.mark.parametrize("batch", [2, 3, 5])
@pytest.mark.parametrize(("dim_s", "dim_t"), [(8, 8), (16, 64)])
@pytest.mark.parametrize("normalize", [True, False])
def test_relation_matches_loop(batch: int, dim_s: int, dim_t: int, normalize: bool) -> None:
    rng = np.random.default_rng(batch + dim_s + dim_t)
    s = rng.normal(size=(batch, dim_s)).astype(np.float32)
    t = rng.normal(size=(batch, dim_t)).astype(np.float32)
    got = RelationLoss(normalize)(torch.from_numpy(s), torch.from_numpy(t))
    np.testing.assert_allclose(
        got.item(), reference_relation(s, t, normalize), rtol=1e-5, atol=1e-7
    )


def test_zero_for_a_rotated_and_rescaled_teacher() -> None:
    torch.manual_seed(0)
    student = torch.randn(6, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    teacher = torch.cat(
        [student @ rotation * 3.0, torch.zeros(6, 8)], dim=1
    )  # wider, same geometry
    assert RelationLoss()(student, teacher).item() < 1e-10


def test_batch_of_one_and_gradients() -> None:
    single = torch.randn(1, 8, requires_grad=True)
    loss = RelationLoss()(single, torch.randn(1, 4))
    loss.backward()
    assert loss.item() == 0.0 and (single.grad == 0).all()
    student = torch.randn(4, 8, requires_grad=True)
    teacher = torch.randn(4, 12, requires_grad=True)
    RelationLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_batch_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same batch size"):
        RelationLoss()(torch.randn(3, 8), torch.randn(4, 8))
