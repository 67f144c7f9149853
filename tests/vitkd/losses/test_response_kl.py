"""ResponseKLLoss against numpy loops and torch's kl_div, masking and the T^2 scale."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitkd.losses import ResponseKLLoss


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def reference_ce(s, t, mask, temp) -> float:
    s2, t2 = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1]).astype(np.float64)
    keep = np.ones(len(s2), dtype=bool) if mask is None else mask.reshape(-1)
    values = []
    for i in range(len(s2)):
        if keep[i]:
            p_t = np_softmax(t2[i] / temp)
            log_p_s = np.log(np_softmax(s2[i].astype(np.float64) / temp))
            values.append(-(p_t * log_p_s).sum())
    return float(np.mean(values)) * temp**2 if values else 0.0


@pytest.mark.parametrize("shape", [(1, 8), (5, 64), (2, 7, 16)])
@pytest.mark.parametrize("temp", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("use_mask", [False, True])
def test_cross_entropy_form_matches_loop(shape, temp: float, use_mask: bool) -> None:
    rng = np.random.default_rng(sum(shape))
    s = rng.normal(size=shape).astype(np.float32) * 3
    t = rng.normal(size=shape).astype(np.float32) * 3
    mask = None
    if use_mask:
        mask = rng.random(shape[:-1]) < 0.6
        mask.reshape(-1)[0] = True
    got = ResponseKLLoss(temp)(
        torch.from_numpy(s), torch.from_numpy(t), None if mask is None else torch.from_numpy(mask)
    )
    np.testing.assert_allclose(got.item(), reference_ce(s, t, mask, temp), rtol=1e-5)


@pytest.mark.parametrize("temp", [0.5, 2.0])
def test_kl_option_matches_kl_div_and_entropy(temp: float) -> None:
    torch.manual_seed(0)
    s, t = torch.randn(6, 5, 32), torch.randn(6, 5, 32)
    mask = torch.rand(6, 5) < 0.5
    mask[0, 0] = True
    kl = F.kl_div(
        F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1), log_target=True, reduction="none"
    ).sum(-1)
    want_kl = kl[mask].mean() * temp**2
    torch.testing.assert_close(ResponseKLLoss(temp, kl=True)(s, t, mask), want_kl)
    p_t = F.softmax(t / temp, -1)
    entropy = -(p_t * p_t.log()).sum(-1)[mask].mean() * temp**2
    torch.testing.assert_close(ResponseKLLoss(temp)(s, t, mask), want_kl + entropy)


def test_temperature_squared_scale_and_zero_kl_when_equal() -> None:
    torch.manual_seed(1)
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    unscaled = ResponseKLLoss(2.0)(s, t) / 4.0
    manual = -(F.softmax(t / 2, -1) * F.log_softmax(s / 2, -1)).sum(-1).mean()
    torch.testing.assert_close(unscaled, manual)
    assert ResponseKLLoss(3.0, kl=True)(s, s.clone()).abs().item() < 1e-6


def test_mask_ignores_bad_positions_and_all_masked_is_zero() -> None:
    s, t = torch.randn(3, 8), torch.randn(3, 8)
    s_bad = s.clone()
    s_bad[2] = float("nan")
    mask = torch.tensor([True, True, False])
    torch.testing.assert_close(ResponseKLLoss()(s_bad, t, mask), ResponseKLLoss()(s[:2], t[:2]))
    assert ResponseKLLoss()(s, t, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_gradient_reaches_student_only() -> None:
    s = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    ResponseKLLoss(2.0, kl=True)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_infinite_student_logits_are_skipped() -> None:
    s = torch.tensor([[0.0, 1.0, float("-inf")]])
    t = torch.tensor([[0.0, 1.0, 2.0]])
    got = ResponseKLLoss()(s, t)
    p_t = F.softmax(t, -1)[0, :2]
    want = -(p_t * F.log_softmax(s, -1)[0, :2]).sum()
    assert torch.isfinite(got)
    torch.testing.assert_close(got, want)
