"""Seeded k-means (Lloyd's algorithm with k-means++ seeding), in numpy.

Used where a method needs discrete codes and the data has none (SGFD's ``kmeans:<K>`` labels).
"""

from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> np.ndarray:
    """Cluster the rows of ``x`` (n, d) into ``k`` groups; return (n,) int64 labels in [0, k).

    Deterministic for a seed. Empty clusters are re-seeded with the point farthest from its centre.

    Example::

        kmeans(np.array([[0.0], [0.1], [5.0], [5.1]]), k=2)   # e.g. [0, 0, 1, 1]
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= number of points ({n}), got k={k}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    dist = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++: next centre with probability proportional to squared distance
        total = dist.sum()
        nxt = x[rng.choice(n, p=dist / total)] if total > 0 else x[rng.integers(n)]
        centres.append(nxt)
        dist = np.minimum(dist, ((x - nxt) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iters):
        d2 = (x ** 2).sum(1, keepdims=True) - 2 * x @ c.T + (c ** 2).sum(1)
        new = d2.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                c[j] = x[members].mean(0)
            else:
                far = int(d2[np.arange(n), labels].argmax())
                c[j], labels[far] = x[far], j
    return labels.astype(np.int64)
