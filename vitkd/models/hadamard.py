"""Normalised Hadamard matrices: Sylvester doubling, Paley I orders and their Kronecker products."""

from __future__ import annotations

import math

import torch


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _paley(order: int) -> torch.Tensor:
    """Paley construction I: an order q + 1 Hadamard matrix for a prime q = 3 (mod 4)."""
    q = order - 1
    squares = {(i * i) % q for i in range(1, q)}
    chi = [0] + [1 if i in squares else -1 for i in range(1, q)]
    jacobsthal = torch.tensor([[chi[(j - i) % q] for j in range(q)] for i in range(q)])
    core = torch.zeros(order, order, dtype=torch.float64)
    core[0, 1:] = 1.0
    core[1:, 0] = -1.0
    core[1:, 1:] = jacobsthal.double()
    return core + torch.eye(order, dtype=torch.float64)


def _hadamard(n: int) -> torch.Tensor | None:
    """A +-1 Hadamard matrix of order n, or None when these constructions do not reach n."""
    if n == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    if n % 2 == 0:
        half = _hadamard(n // 2)
        if half is not None:
            return torch.kron(torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64), half)
    for order in range(4, n + 1, 4):
        if n % order == 0 and _is_prime(order - 1) and (order - 1) % 4 == 3:
            rest = _hadamard(n // order)
            if rest is not None:
                return torch.kron(_paley(order), rest)
    return None


def hadamard_matrix(n: int) -> torch.Tensor:
    """An orthogonal (n, n) float64 matrix with every entry +-1/sqrt(n).

    Orders reached: 2^a times products of q + 1 for primes q = 3 (mod 4): 12, 20, 24, 44, ...
    which covers the ViT widths in use (192, 384, 768, 1024, 1280, 1536). An equal-magnitude
    rotation is what makes PHI-S's per-dimension variances equal.

    Raises:
        ValueError: for an order these constructions do not reach.
    """
    matrix = _hadamard(n)
    if matrix is None:
        raise ValueError(
            f"no Hadamard matrix of order {n} from Sylvester or Paley I constructions; PHI-S "
            "needs one of the teacher's feature width. Use model.balance.standardize: none"
        )
    return matrix / math.sqrt(n)
