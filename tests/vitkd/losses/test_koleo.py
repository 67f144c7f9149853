"""KoLeoLoss against an explicit nearest-neighbour loop; batch-1 and duplicate-row guards."""

import numpy as np
import pytest
import torch

from vitkd.losses import KoLeoLoss


def reference_koleo(x: np.ndarray, eps: float = 1e-8) -> float:
    z = x.astype(np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), eps)
    terms = []
    for i in range(len(z)):
        nearest = min(np.linalg.norm(z[i] - z[j]) for j in range(len(z)) if j != i)
        terms.append(np.log(nearest + eps))
    return -float(np.mean(terms))


@pytest.mark.parametrize("batch", [2, 3, 5, 16])
@pytest.mark.parametrize("dim", [8, 64])
@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_koleo_matches_loop(batch: int, dim: int, scale: float) -> None:
    x = np.random.default_rng(batch * dim).normal(size=(batch, dim)).astype(np.float32) * scale
    got = KoLeoLoss()(torch.from_numpy(x))
    np.testing.assert_allclose(got.item(), reference_koleo(x), rtol=1e-5)


def test_batch_of_one_is_zero_with_zero_gradient() -> None:
    x = torch.randn(1, 16, requires_grad=True)
    loss = KoLeoLoss()(x)
    loss.backward()
    assert loss.item() == 0.0
    assert x.grad is not None and (x.grad == 0).all()


def test_duplicate_rows_give_finite_loss_and_gradient() -> None:
    torch.manual_seed(0)
    base = torch.randn(3, 16)
    x = torch.cat([base, base[:1]]).requires_grad_()
    loss = KoLeoLoss()(x)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.item(), reference_koleo(x.detach().numpy()), rtol=1e-5)
    scaled = torch.cat([base, base[:1] * 2.0]).requires_grad_()  # equal after normalisation
    loss_scaled = KoLeoLoss()(scaled)
    loss_scaled.backward()
    assert torch.isfinite(loss_scaled) and torch.isfinite(scaled.grad).all()
    same = torch.ones(4, 8, requires_grad=True)
    loss_same = KoLeoLoss()(same)
    loss_same.backward()
    np.testing.assert_allclose(loss_same.item(), -np.log(1e-8), rtol=1e-6)
    assert torch.isfinite(same.grad).all()


def test_spreading_lowers_the_loss() -> None:
    clustered = torch.randn(8, 16) * 0.01 + torch.ones(16)
    spread = torch.eye(16)[:8]
    assert KoLeoLoss()(spread) < KoLeoLoss()(clustered)


def test_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        KoLeoLoss()(torch.randn(2, 3, 4))
