"""Softmax centring and Sinkhorn-Knopp against float64 numpy references, stability, marginals."""

import numpy as np
import pytest
import torch

from vitkd.losses import SoftmaxCenter, check_centering_mode, sinkhorn_knopp


def np_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_sinkhorn(logits: np.ndarray, temp: float, n_iterations: int) -> np.ndarray:
    """The reference algorithm in the paper's K x B layout, float64, no stabilisation."""
    q = np.exp(logits.astype(np.float64) / temp).T
    n_protos, n_samples = q.shape
    q = q / q.sum()
    for _ in range(n_iterations):
        for k in range(n_protos):
            q[k] = q[k] / q[k].sum() / n_protos
        for b in range(n_samples):
            q[:, b] = q[:, b] / q[:, b].sum() / n_samples
    return (q * n_samples).T


def naive_sinkhorn_torch(logits: torch.Tensor, temp: float, n_iterations: int = 3) -> torch.Tensor:
    """The reference implementation as written upstream (exp without max subtraction)."""
    q = torch.exp(logits / temp).t()
    n_samples, n_protos = q.shape[1], q.shape[0]
    q = q / q.sum()
    for _ in range(n_iterations):
        q = q / q.sum(dim=1, keepdim=True) / n_protos
        q = q / q.sum(dim=0, keepdim=True) / n_samples
    return (q * n_samples).t()


def test_softmax_center_uses_lagged_centre_and_ema() -> None:
    torch.manual_seed(0)
    k, momentum, temp = 16, 0.9, 0.07
    center = SoftmaxCenter(k, momentum)
    expected_centre = np.zeros((1, k))
    for step in range(4):
        logits = torch.randn(2, 3, k) * 2
        probs = center.probs(logits, temp)
        want = np_softmax((logits.numpy().astype(np.float64) - expected_centre) / temp)
        np.testing.assert_allclose(probs.numpy(), want, rtol=1e-4, atol=1e-6)
        if step == 0:
            np.testing.assert_allclose(probs.numpy(), np_softmax(logits.numpy() / temp), atol=1e-6)
        center.update(logits)
        rows = logits.numpy().reshape(-1, k)
        expected_centre = momentum * expected_centre + (1 - momentum) * rows.mean(
            axis=0, keepdims=True
        )
        np.testing.assert_allclose(center.center.numpy(), expected_centre, rtol=1e-5, atol=1e-6)


def test_accumulated_micro_batches_move_the_centre_once_as_one_batch() -> None:
    """Gradient accumulation: micro-batches accumulated, then one step, equal one big batch."""
    torch.manual_seed(0)
    k = 8
    logits = torch.randn(2, 6, k) * 3
    valid = torch.rand(2, 6) < 0.7
    whole = SoftmaxCenter(k, momentum=0.9)
    parts = SoftmaxCenter(k, momentum=0.9)
    for _ in range(3):  # a few steps, so the momentum acts on a non-zero centre
        whole.update(logits, valid=valid)
        before = parts.center.clone()
        for half in (slice(0, 2), slice(2, 6)):  # uneven micro-batches
            parts.accumulate(logits[:, half], valid=valid[:, half])
            torch.testing.assert_close(parts.center, before)  # unchanged until the step
        parts.step()
        torch.testing.assert_close(parts.center, whole.center, rtol=1e-6, atol=1e-6)
        logits = logits + 1.0
    # a step with nothing accumulated keeps the centre
    kept = parts.center.clone()
    parts.step()
    torch.testing.assert_close(parts.center, kept)


def test_softmax_center_update_with_valid_rows_and_empty_batch() -> None:
    center = SoftmaxCenter(4, momentum=0.5)
    logits = torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [float("nan"), 100.0, float("inf"), 100.0], [3.0, 2.0, 1.0, 0.0]]
    )
    center.update(logits, valid=torch.tensor([True, False, True]))
    np.testing.assert_allclose(center.center.numpy(), [[1.0, 1.0, 1.0, 1.0]])
    center.update(logits, valid=torch.zeros(3, dtype=torch.bool))
    np.testing.assert_allclose(center.center.numpy(), [[1.0, 1.0, 1.0, 1.0]])


def test_softmax_center_output_has_no_grad() -> None:
    logits = torch.randn(3, 8, requires_grad=True)
    probs = SoftmaxCenter(8).probs(logits, 0.04)
    assert not probs.requires_grad


@pytest.mark.parametrize("n_rows", [1, 3, 10])
@pytest.mark.parametrize("k", [8, 64])
@pytest.mark.parametrize("temp", [0.04, 0.07, 0.5])
@pytest.mark.parametrize("n_iterations", [0, 1, 3])
def test_sinkhorn_matches_reference(n_rows: int, k: int, temp: float, n_iterations: int) -> None:
    rng = np.random.default_rng(n_rows * 1000 + k)
    logits = rng.normal(size=(n_rows, k)) * 2
    got = sinkhorn_knopp(torch.from_numpy(logits).float(), temp, n_iterations)
    want = np_sinkhorn(logits.astype(np.float32), temp, n_iterations)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=1e-7)


def test_sinkhorn_marginals() -> None:
    torch.manual_seed(1)
    n_rows, k = 12, 32
    logits = torch.randn(n_rows, k)
    q = sinkhorn_knopp(logits, temp=0.5, n_iterations=3)
    # the last step normalises samples: each row is an assignment summing to 1
    np.testing.assert_allclose(q.sum(dim=1).numpy(), np.ones(n_rows), rtol=1e-5)
    # each prototype's total approaches B / K; after 3 rounds it is already near it
    np.testing.assert_allclose(q.sum(dim=0).numpy(), np.full(k, n_rows / k), rtol=0.2)
    converged = sinkhorn_knopp(logits, temp=0.5, n_iterations=200)
    np.testing.assert_allclose(converged.sum(dim=0).numpy(), np.full(k, n_rows / k), rtol=1e-3)


def test_sinkhorn_stable_at_low_temperature_with_big_logits() -> None:
    rng = np.random.default_rng(3)
    temp = 0.04
    logits = rng.uniform(-1 / temp, 1 / temp, size=(8, 16)).astype(np.float32)
    naive = naive_sinkhorn_torch(torch.from_numpy(logits), temp)
    assert not torch.isfinite(naive).all(), "the naive fp32 reference should overflow here"
    got = sinkhorn_knopp(torch.from_numpy(logits), temp)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), np_sinkhorn(logits, temp, 3), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sinkhorn_stable_for_half_precision_input(dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    temp = 0.04
    logits = (torch.randn(6, 16) * 5).to(dtype)
    naive = naive_sinkhorn_torch(logits, temp)
    assert not torch.isfinite(naive).all(), "a naive half-precision exp should overflow here"
    got = sinkhorn_knopp(logits, temp)
    assert got.dtype == torch.float32
    assert torch.isfinite(got).all()
    want = np_sinkhorn(logits.float().numpy(), temp, 3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-3, atol=1e-6)


def test_sinkhorn_valid_rows_behave_like_the_subset() -> None:
    torch.manual_seed(5)
    logits = torch.randn(9, 16)
    valid = torch.tensor([True, False, True, True, False, True, True, False, True])
    got = sinkhorn_knopp(logits, 0.1, valid=valid)
    subset = sinkhorn_knopp(logits[valid], 0.1)
    torch.testing.assert_close(got[valid], subset)
    assert (got[~valid] == 0).all()
    assert (sinkhorn_knopp(logits, 0.1, valid=torch.zeros(9, dtype=torch.bool)) == 0).all()


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown centring mode 'centre'"):
        check_centering_mode("centre")
    with pytest.raises(ValueError, match="temperature"):
        sinkhorn_knopp(torch.randn(2, 4), 0.0)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        sinkhorn_knopp(torch.randn(2, 3, 4), 0.1)
    with pytest.raises(ValueError, match="momentum"):
        SoftmaxCenter(4, momentum=1.5)
