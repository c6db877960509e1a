"""Randomized Hadamard rotations (QuaRot-style) for one linear layer.

``Q = diag(signs) @ H / sqrt(n)`` with ``H`` an n x n Hadamard matrix (entries +-1,
``H @ H.T = n I``) and ``signs`` a seeded random +-1 vector, so ``Q`` is orthogonal and

    y = x W^T = (x Q) (W Q)^T.

Supported sizes: ``n = 2^k`` (Sylvester) and ``n = 12 * 2^k`` (the 12 x 12 Paley matrix
Kronecker the Sylvester one): 384 and 1536 (MiniLM), 768 and 3072 (BERT) are of the second
form. ``x Q`` is computed with a fast Walsh-Hadamard transform (O(n log n) per row) rather than a
dense matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PALEY_ORDER = 12


def _paley12() -> torch.Tensor:
    """The 12 x 12 Hadamard matrix of Paley's first construction (q = 11), float32."""
    q = PALEY_ORDER - 1
    residues = {(i * i) % q for i in range(1, q)}

    def chi(a: int) -> int:
        a %= q
        return 0 if a == 0 else (1 if a in residues else -1)

    h = torch.eye(PALEY_ORDER)
    h[0, 1:] += 1.0
    h[1:, 0] -= 1.0
    h[1:, 1:] += torch.tensor([[chi(j - i) for j in range(q)] for i in range(q)],
                              dtype=torch.float32)
    return h


def _split_size(n: object) -> tuple[int, int]:
    """(base, m) with n = base * m, base in {1, 12}, m a power of two; ValueError otherwise."""
    ok = isinstance(n, int) and not isinstance(n, bool) and n >= 1
    if ok:
        for base in (1, PALEY_ORDER):
            m = n // base
            if n % base == 0 and m >= 1 and m & (m - 1) == 0:
                return base, m
    raise ValueError(
        f"no Hadamard rotation of size {n!r}: supported sizes are powers of two "
        "(1, 2, 4, ..., 512, 1024, ...) and 12 * 2^k (12, 24, ..., 384, 768, 1536, 3072, ...)")


def is_supported_size(n: int) -> bool:
    """True when ``hadamard_matrix(n)`` exists here (n = 2^k or 12 * 2^k)."""
    try:
        _split_size(n)
    except ValueError:
        return False
    return True


def hadamard_matrix(n: int) -> torch.Tensor:
    """The unnormalised n x n Hadamard matrix (entries +-1, float32): Sylvester for n = 2^k,
    ``paley12 (x) sylvester(n / 12)`` for n = 12 * 2^k. ValueError for other sizes."""
    base, m = _split_size(n)
    h = torch.ones(1, 1)
    step = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    while h.shape[0] < m:
        h = torch.kron(step, h)
    return torch.kron(_paley12(), h) if base == PALEY_ORDER else h


def fwht(x: torch.Tensor) -> torch.Tensor:
    """``x @ sylvester(n)`` along the last axis (n a power of two), unnormalised, same shape."""
    n = x.shape[-1]
    shape = x.shape
    y = x.reshape(-1, n)
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return y.reshape(shape)


@dataclass(frozen=True)
class HadamardRotation:
    """The orthogonal ``Q = diag(signs) @ H / sqrt(n)``; ``signs`` [n] is +-1 (float32)."""

    size: int
    seed: int
    signs: torch.Tensor

    def matrix(self) -> torch.Tensor:
        """``Q`` as a dense [n, n] float32 matrix (Q @ Q.T = I)."""
        h = hadamard_matrix(self.size)
        return self.signs[:, None] * h / math.sqrt(self.size)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ Q`` for ``x`` [..., n] (activations [tokens, in] or a weight [out, in]), via the
        fast Walsh-Hadamard transform; float32 out, same shape."""
        if x.shape[-1] != self.size:
            raise ValueError(f"the rotation has size {self.size} but x has shape "
                             f"{tuple(x.shape)} (last axis must be {self.size})")
        base, m = _split_size(self.size)
        y = x.float() * self.signs.to(x.device)
        if base == PALEY_ORDER:
            shape = y.shape
            # (x (P kron S))[k*m + l] = sum_i P[i, k] (x_i S)[l], x_i the i-th block of m.
            y = fwht(y.reshape(-1, PALEY_ORDER, m))
            y = torch.einsum("ik,bil->bkl", _paley12().to(y.device), y).reshape(shape)
        else:
            y = fwht(y)
        return y * (1.0 / math.sqrt(self.size))

    def apply_inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ Q.T`` for ``x`` [..., n] (undoes ``apply``), dense; float32 out."""
        return x.float() @ self.matrix().to(x.device).T


def random_hadamard(n: int, seed: int = 0) -> HadamardRotation:
    """A randomized Hadamard rotation of size ``n``; the same ``seed`` gives the same ``Q``.
    ValueError naming ``n`` and the supported forms when no Hadamard matrix of size ``n`` is
    available here."""
    _split_size(n)
    gen = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, (n,), generator=gen).float() * 2.0 - 1.0
    return HadamardRotation(n, int(seed), signs)
