"""FeatureLoss against a numpy computation of cosine + smooth-L1, plus invariants."""

import numpy as np
import pytest
import torch

from vitkd.losses import FeatureLoss


def reference_feature(s, t, cos_weight, l1_weight, beta, normalize) -> float:
    s, t = s.astype(np.float64), t.astype(np.float64)
    flat_s, flat_t = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])
    cos = [
        a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(flat_s, flat_t, strict=True)
    ]
    if normalize:
        s = s / np.linalg.norm(s, axis=-1, keepdims=True)
        t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    d = np.abs(s - t)
    smooth = np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta).mean()
    return cos_weight * float(np.mean(1 - np.array(cos))) + l1_weight * float(smooth)


@pytest.mark.parametrize("shape", [(1, 8), (5, 32), (2, 7, 16), (3, 4, 64)])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize(("cos_weight", "l1_weight", "beta"), [(1.0, 1.0, 1.0), (0.5, 2.0, 0.05)])
def test_feature_matches_reference(shape, normalize, cos_weight, l1_weight, beta) -> None:
    rng = np.random.default_rng(sum(shape))
    s = rng.normal(size=shape).astype(np.float32) * 2
    t = rng.normal(size=shape).astype(np.float32)
    loss_fn = FeatureLoss(cos_weight, l1_weight, beta, normalize)
    got = loss_fn(torch.from_numpy(s), torch.from_numpy(t))
    want = reference_feature(s, t, cos_weight, l1_weight, beta, normalize)
    np.testing.assert_allclose(got.item(), want, rtol=1e-5, atol=1e-7)
    terms = loss_fn.forward_terms(torch.from_numpy(s), torch.from_numpy(t))
    torch.testing.assert_close(cos_weight * terms.cosine + l1_weight * terms.smooth_l1, got)


@pytest.mark.parametrize("shape", [(4, 16), (2, 9, 16)])
def test_zero_when_equal(shape) -> None:
    x = torch.randn(shape)
    assert FeatureLoss()(x, x.clone()).abs().item() < 1e-6
    assert FeatureLoss(normalize=False)(x, x.clone()).abs().item() < 1e-6


def test_gradient_reaches_student_only() -> None:
    student = torch.randn(3, 5, 8, requires_grad=True)
    teacher = torch.randn(3, 5, 8, requires_grad=True)
    FeatureLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_shape_mismatch_names_the_fix() -> None:
    with pytest.raises(ValueError, match="adaptor"):
        FeatureLoss()(torch.randn(2, 8), torch.randn(2, 16))
