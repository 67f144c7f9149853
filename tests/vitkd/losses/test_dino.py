"""DINOLoss against explicit loops over (student view, teacher view) pairs, plus invariants."""

import numpy as np
import pytest
import torch

from vitkd.losses import DINOLoss, dino_pair_count, sinkhorn_knopp


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def reference_dino(student_global, student_local, teacher_probs, student_temp) -> float:
    """Explicit pair loop: student view v against teacher global j, skipping the same view."""
    views = [("global", i, s) for i, s in enumerate(student_global)]
    views += [("local", i, s) for i, s in enumerate(student_local)]
    total, n_pairs = 0.0, 0
    for kind, index, student in views:
        for j, target in enumerate(teacher_probs):
            if kind == "global" and j == index:
                continue
            log_p = np_log_softmax(student.astype(np.float64) / student_temp)
            per_image = [-(target[b] * log_p[b]).sum() for b in range(student.shape[0])]
            total += float(np.mean(per_image))
            n_pairs += 1
    return total / n_pairs


def random_inputs(n_global, n_local, batch, k, seed):
    rng = np.random.default_rng(seed)
    sg = rng.normal(size=(n_global, batch, k)).astype(np.float32)
    sl = rng.normal(size=(n_local, batch, k)).astype(np.float32)
    logits = rng.normal(size=(n_global, batch, k)) * 3
    tp = np.exp(logits - logits.max(-1, keepdims=True))
    tp = (tp / tp.sum(-1, keepdims=True)).astype(np.float32)
    return sg, sl, tp


@pytest.mark.parametrize("batch", [1, 3, 5])
@pytest.mark.parametrize("k", [8, 64])
@pytest.mark.parametrize("n_local", [0, 2, 8])
@pytest.mark.parametrize("student_temp", [0.1, 0.3])
def test_dino_matches_pair_loop(batch: int, k: int, n_local: int, student_temp: float) -> None:
    sg, sl, tp = random_inputs(2, n_local, batch, k, seed=batch * 100 + k + n_local)
    loss = DINOLoss(k, student_temp=student_temp)
    got = loss(torch.from_numpy(sg), torch.from_numpy(sl), torch.from_numpy(tp))
    want = reference_dino(sg, sl, tp, student_temp)
    assert got.ndim == 0
    np.testing.assert_allclose(got.item(), want, rtol=1e-5)


def test_dino_three_globals_and_none_locals() -> None:
    sg, sl, tp = random_inputs(3, 0, 4, 16, seed=7)
    got = DINOLoss(16)(torch.from_numpy(sg), None, torch.from_numpy(tp))
    np.testing.assert_allclose(got.item(), reference_dino(sg, sl, tp, 0.1), rtol=1e-5)


def test_pair_counts_and_view_swap() -> None:
    assert dino_pair_count(2, 8) == 18
    assert dino_pair_count(2, 0) == 2
    sg, _, tp = random_inputs(2, 0, 3, 8, seed=9)
    ce = torch.nn.functional.cross_entropy
    s, t = torch.from_numpy(sg), torch.from_numpy(tp)
    # teacher global 1 is the target of student global 0 and vice versa
    swapped = (ce(s[0] / 0.1, t[1]) + ce(s[1] / 0.1, t[0])) / 2
    torch.testing.assert_close(DINOLoss(8)(s, None, t), swapped)


def test_gradient_reaches_student_only() -> None:
    sg, sl, tp = random_inputs(2, 2, 3, 8, seed=11)
    s_global = torch.from_numpy(sg).requires_grad_()
    s_local = torch.from_numpy(sl).requires_grad_()
    teacher_logits = torch.randn(2, 3, 8, requires_grad=True)
    loss_fn = DINOLoss(8)
    targets = loss_fn.teacher_targets(teacher_logits, 0.04)
    assert not targets.requires_grad
    probs = torch.from_numpy(tp).requires_grad_()
    (loss_fn(s_global, s_local, targets) + loss_fn(s_global, s_local, probs)).backward()
    assert s_global.grad is not None and s_global.grad.abs().sum() > 0
    assert s_local.grad is not None and s_local.grad.abs().sum() > 0
    assert teacher_logits.grad is None
    assert probs.grad is None


def test_teacher_targets_softmax_lagged_centre() -> None:
    torch.manual_seed(0)
    loss_fn = DINOLoss(8, center_momentum=0.9)
    first, second = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    p1 = loss_fn.teacher_targets(first, 0.07)
    torch.testing.assert_close(p1, torch.softmax(first / 0.07, dim=-1))
    centre = 0.1 * first.reshape(-1, 8).mean(0, keepdim=True)
    torch.testing.assert_close(loss_fn.center.center, centre)
    p2 = loss_fn.teacher_targets(second, 0.07, update_center=False)
    torch.testing.assert_close(p2, torch.softmax((second - centre) / 0.07, dim=-1))
    torch.testing.assert_close(loss_fn.center.center, centre)


def test_teacher_targets_sinkhorn_leaves_centre() -> None:
    torch.manual_seed(1)
    loss_fn = DINOLoss(16)
    logits = torch.randn(2, 5, 16)
    got = loss_fn.teacher_targets(logits, 0.04, mode="sinkhorn")
    torch.testing.assert_close(got, sinkhorn_knopp(logits.reshape(10, 16), 0.04).reshape(2, 5, 16))
    assert (loss_fn.center.center == 0).all()


def test_bad_inputs_raise() -> None:
    loss_fn = DINOLoss(8)
    with pytest.raises(ValueError, match="unknown centring mode"):
        loss_fn.teacher_targets(torch.randn(2, 3, 8), 0.04, mode="sk")
    with pytest.raises(ValueError, match="student_global"):
        loss_fn(torch.randn(2, 3, 9), None, torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match="at least two global"):
        loss_fn(torch.randn(1, 3, 8), None, torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="teacher_probs"):
        loss_fn(torch.randn(2, 3, 8), None, torch.randn(2, 4, 8))


def test_half_precision_inputs_are_computed_in_float32() -> None:
    sg, sl, tp = random_inputs(2, 2, 3, 32, seed=13)
    loss_fn = DINOLoss(32)
    want = loss_fn(torch.from_numpy(sg), torch.from_numpy(sl), torch.from_numpy(tp))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(
            torch.from_numpy(sg).bfloat16(), torch.from_numpy(sl).bfloat16(), torch.from_numpy(tp)
        )
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-2)
