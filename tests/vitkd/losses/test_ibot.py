"""iBOTPatchLoss: explicit per-token loops, dense vs masked forms, weighting and divisor."""

import numpy as np
import pytest
import torch

from vitkd.data.masking import flatten_masks, sample_masks
from vitkd.losses import iBOTPatchLoss, sinkhorn_knopp


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def reference_ibot(student, teacher, masks, student_temp) -> float:
    """Loop over images and tokens: 1 / count weight per masked token, divided by all images."""
    n_images, n_tokens, _ = student.shape
    total = 0.0
    for b in range(n_images):
        count = int(masks[b].sum())
        for n in range(n_tokens):
            if masks[b, n]:
                log_p = np_log_softmax(student[b, n].astype(np.float64) / student_temp)
                total += -(teacher[b, n] * log_p).sum() / count
    return total / n_images


def random_inputs(batch, n_tokens, k, seed):
    rng = np.random.default_rng(seed)
    student = rng.normal(size=(batch, n_tokens, k)).astype(np.float32)
    logits = rng.normal(size=(batch, n_tokens, k)) * 3
    teacher = np.exp(logits - logits.max(-1, keepdims=True))
    teacher = (teacher / teacher.sum(-1, keepdims=True)).astype(np.float32)
    masks = rng.random((batch, n_tokens)) < 0.4
    masks[0] = False  # always at least one unmasked image in the divisor
    return student, teacher, masks


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("k", [8, 64])
@pytest.mark.parametrize("student_temp", [0.1, 0.25])
def test_ibot_dense_and_masked_match_loop(batch: int, k: int, student_temp: float) -> None:
    s, t, m = random_inputs(batch, 12, k, seed=batch * 10 + k)
    loss_fn = iBOTPatchLoss(k, student_temp=student_temp)
    want = reference_ibot(s, t, m, student_temp)
    student, teacher, masks = torch.from_numpy(s), torch.from_numpy(t), torch.from_numpy(m)
    dense = loss_fn(student, teacher, masks)
    np.testing.assert_allclose(dense.item(), want, rtol=1e-5, atol=1e-7)
    flat = flatten_masks(masks)
    masked = loss_fn.forward_masked(
        student.flatten(0, 1)[flat.indices],
        teacher.flatten(0, 1)[flat.indices],
        masks,
        n_masked_patches=flat.n_masked_patches,
        masks_weight=flat.weights,
    )
    np.testing.assert_allclose(masked.item(), want, rtol=1e-5, atol=1e-7)
    # weights derived from masks when not given
    default = loss_fn.forward_masked(student[masks], teacher[masks], masks)
    torch.testing.assert_close(default, dense)


def test_masked_form_with_padded_buffer() -> None:
    s, t, m = random_inputs(4, 16, 8, seed=3)
    m[1, :3] = True
    student, teacher, masks = torch.from_numpy(s), torch.from_numpy(t), torch.from_numpy(m)
    n_real = int(masks.sum())
    pad = 7
    s_buf = torch.cat([student[masks], torch.full((pad, 8), float("nan"))])
    t_buf = torch.cat([teacher[masks], torch.full((pad, 8), float("nan"))])
    loss_fn = iBOTPatchLoss(8)
    got = loss_fn.forward_masked(s_buf, t_buf, masks, n_masked_patches=n_real)
    torch.testing.assert_close(got, loss_fn(student, teacher, masks))


def test_weighting_and_divisor() -> None:
    k = 8
    loss_fn = iBOTPatchLoss(k)
    torch.manual_seed(0)
    student = torch.randn(2, 10, k)
    teacher = torch.softmax(torch.randn(2, 10, k), dim=-1)
    masks = torch.zeros(2, 10, dtype=torch.bool)
    masks[0, 0] = True  # one token: weight 1
    masks[1, :5] = True  # five tokens: weight 1/5 each
    log_p = torch.log_softmax(student / 0.1, dim=-1)
    ce = -(teacher * log_p).sum(-1)
    want = (ce[0, 0] + ce[1, :5].mean()) / 2
    torch.testing.assert_close(loss_fn(student, teacher, masks), want)
    # an unmasked image adds nothing to the sum but counts in the divisor
    student3 = torch.cat([student, torch.randn(1, 10, k)])
    teacher3 = torch.cat([teacher, torch.softmax(torch.randn(1, 10, k), -1)])
    masks3 = torch.cat([masks, torch.zeros(1, 10, dtype=torch.bool)])
    torch.testing.assert_close(loss_fn(student3, teacher3, masks3), want * 2 / 3)
    assert loss_fn(student, teacher, torch.zeros_like(masks)).item() == 0.0


def test_gradient_reaches_student_only() -> None:
    s, t, m = random_inputs(3, 9, 8, seed=5)
    m[1, 1] = True
    student = torch.from_numpy(s).requires_grad_()
    teacher = torch.from_numpy(t).requires_grad_()
    masks = torch.from_numpy(m)
    loss_fn = iBOTPatchLoss(8)
    (
        loss_fn(student, teacher, masks)
        + loss_fn.forward_masked(student[masks], teacher[masks], masks)
    ).backward()
    assert student.grad is not None and student.grad[masks].abs().sum() > 0
    assert (student.grad[~masks] == 0).all()
    assert teacher.grad is None


def test_teacher_targets_modes_with_padding() -> None:
    torch.manual_seed(2)
    loss_fn = iBOTPatchLoss(16, center_momentum=0.9)
    logits = torch.randn(10, 16)
    valid = torch.arange(10) < 7
    probs = loss_fn.teacher_targets(logits, 0.07, valid=valid)
    torch.testing.assert_close(probs, torch.softmax(logits / 0.07, dim=-1))
    torch.testing.assert_close(loss_fn.center.center, 0.1 * logits[:7].mean(0, keepdim=True))
    sk = loss_fn.teacher_targets(logits, 0.04, mode="sinkhorn", valid=valid)
    torch.testing.assert_close(sk[:7], sinkhorn_knopp(logits[:7], 0.04))
    assert (sk[7:] == 0).all()


def test_with_sampled_block_masks() -> None:
    masks = sample_masks(6, (8, 8), generator=0)
    assert masks.any(dim=1).sum() == 3
    torch.manual_seed(3)
    student = torch.randn(6, 64, 8)
    teacher = torch.softmax(torch.randn(6, 64, 8), -1)
    want = reference_ibot(student.numpy(), teacher.numpy(), masks.numpy(), 0.1)
    np.testing.assert_allclose(iBOTPatchLoss(8)(student, teacher, masks).item(), want, rtol=1e-5)


def test_bad_inputs_raise() -> None:
    loss_fn = iBOTPatchLoss(8)
    with pytest.raises(ValueError, match="masks"):
        loss_fn(torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks_weight"):
        masks = torch.ones(1, 3, dtype=torch.bool)
        loss_fn.forward_masked(
            torch.randn(3, 8), torch.randn(3, 8), masks, masks_weight=torch.ones(2)
        )
    with pytest.raises(ValueError, match="rows given"):
        loss_fn.forward_masked(
            torch.randn(2, 8), torch.randn(2, 8), torch.ones(1, 3, dtype=torch.bool)
        )
