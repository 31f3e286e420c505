"""KDSR's correlation supervision (Hu et al., ECIR 2024, Sec. 3.2-3.3; ``../shared/docs/methods.md``).

Teacher correlations come from the frozen features, computed for the batch's pairs on the fly (no
I x I matrix, so memory does not grow with the catalogue); the K codes are fitted once on the
driver from sampled training pairs (:func:`fit_codes`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from raymm.kmeans import kmeans


def subspace_cosines(a: torch.Tensor, b: torch.Tensor, num_subspaces: int) -> torch.Tensor:
    """(..., d_m) x (..., d_m) -> (..., D): cosine of each of D contiguous sub-spaces (the
    "dissected correlation vector" of a pair)."""
    chunks_a = torch.tensor_split(a, num_subspaces, dim=-1)
    chunks_b = torch.tensor_split(b, num_subspaces, dim=-1)
    return torch.stack([F.cosine_similarity(x, y, dim=-1, eps=1e-8) for x, y in zip(chunks_a, chunks_b)], -1)


def holistic_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Holistic correlation supervision: (B, L, d) student projections C_m h, (B, L, d_m) frozen
    teacher features, (B, L) bool mask of real items -> scalar

    ``mean_b || M_b (cos(C h_i, C h_j) - cos(x_i, x_j)) / tau ||_F`` over pairs inside each window
    (the public code's regression; M masks padding)."""
    s = F.normalize(student, dim=-1)
    t = F.normalize(teacher, dim=-1)
    pair = (mask.unsqueeze(2) & mask.unsqueeze(1)).float()  # (B, L, L)
    diff = (s @ s.transpose(1, 2) - t @ t.transpose(1, 2)) / tau
    return (pair * torch.sqrt(diff ** 2 + 1e-8)).norm(dim=(1, 2)).mean()


def nearest_code(vectors: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(n, D) correlation vectors, (K, D) centres -> (n,) index of the nearest centre."""
    return torch.cdist(vectors, centres).argmin(-1)


def fit_codes(features: np.ndarray, pairs: np.ndarray, num_subspaces: int, num_codes: int, seed: int) -> np.ndarray:
    """(K, D) k-means centres of the dissected correlation vectors of ``pairs`` ((P, 2) item ids)
    under the frozen ``features`` (I, d_m)."""
    x = np.asarray(features, np.float32)  # may be a read-only object-store array: index it, then convert
    vec = subspace_cosines(torch.from_numpy(x[pairs[:, 0]]), torch.from_numpy(x[pairs[:, 1]]), num_subspaces).numpy()
    labels = kmeans(vec, min(num_codes, len(vec)), seed=seed)
    return np.stack([vec[labels == k].mean(0) for k in range(labels.max() + 1)]).astype(np.float32)


def sample_window_pairs(windows: torch.Tensor, per_window: int, generator: torch.Generator | None = None):
    """Random item pairs inside each window: ((n,) ids, (n,) ids), shifted ids of real, distinct items."""
    b, length = windows.shape
    i = torch.randint(0, length, (b, per_window), device=windows.device, generator=generator)
    j = torch.randint(0, length, (b, per_window), device=windows.device, generator=generator)
    a, c = windows.gather(1, i), windows.gather(1, j)
    keep = (a != 0) & (c != 0) & (a != c)
    return a[keep], c[keep]


def code_loss(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the predicted code of each pair: (n, K) logits, (n,) teacher codes -> scalar
    (0 when the batch has no pair)."""
    if len(codes) == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, codes)
