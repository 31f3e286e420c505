"""The user-item training graph: built once (numpy CSR), shared by the workers on a node through
the Ray object store, turned into a DGL graph for sampling and into a sparse matrix (:class:`~raymm.sparse.SparseAdj`)
for full-graph propagation.

Node ids: users are ``0 .. U-1``, items are ``U .. U+I-1``. Edges: every TRAIN interaction, in both
directions (never validation or test). Rows of the CSR are sorted, so ``indices[indptr[u]:indptr[u+1]]``
for a user ``u`` is the sorted list of its training items (offset by ``U``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raymm.sparse import SparseAdj


@dataclass
class TrainGraph:
    """CSR adjacency of the symmetric bipartite training graph.

    Attributes:
        num_users: U.
        num_items: I.
        indptr: (U+I+1,) int64 row pointers.
        indices: (2|R|,) int64 neighbour node ids, sorted within each row.
        degree: (U+I,) float32 full-graph degrees (used for normalisation, also on sampled blocks).
    """

    num_users: int
    num_items: int
    indptr: np.ndarray
    indices: np.ndarray
    degree: np.ndarray

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @classmethod
    def from_interactions(cls, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> "TrainGraph":
        src = np.concatenate([users, items + num_users]).astype(np.int64)
        dst = np.concatenate([items + num_users, users]).astype(np.int64)
        order = np.lexsort((dst, src))
        counts = np.bincount(src, minlength=num_users + num_items)
        indptr = np.zeros(num_users + num_items + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(num_users, num_items, indptr, dst[order], counts.astype(np.float32))

    # --- user -> training items -------------------------------------------------------------
    def user_items(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr (U+1,), item ids) of each user's training items, sorted."""
        indptr = self.indptr[: self.num_users + 1]
        return indptr, self.indices[: indptr[-1]] - self.num_users

    def interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """(user ids, item ids) of all training interactions, (|R|,) each, ordered by user then item."""
        indptr, items = self.user_items()
        return np.repeat(np.arange(self.num_users, dtype=np.int64), np.diff(indptr)), items

    def positive_keys(self) -> np.ndarray:
        """Sorted ``user * I + item`` keys of all training interactions (for membership tests)."""
        users, items = self.interactions()
        return users * self.num_items + items

    # --- normalisation -----------------------------------------------------------------------
    def inv_sqrt_degree(self) -> torch.Tensor:
        """(U+I,) ``deg^-1/2``, 0 for isolated nodes."""
        deg = torch.from_numpy(self.degree.copy())
        return torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))

    def normalized_adjacency(self, device: torch.device | str = "cpu", normalization: str = "symmetric") -> SparseAdj:
        """Sparse ``D^-1/2 A D^-1/2`` of shape (U+I, U+I) (LightGCN, He et al. 2020, eq. 7), or with
        ``normalization="left"`` the public PromptMM code's ``D^-1/2 A`` (rows scaled only)."""
        norm = self.inv_sqrt_degree()
        rows = torch.repeat_interleave(torch.arange(self.num_nodes), torch.from_numpy(np.diff(self.indptr)))
        cols = torch.from_numpy(np.array(self.indices))
        values = norm[rows] * (norm[cols] if normalization == "symmetric" else 1.0)
        n = self.num_nodes
        return SparseAdj.from_coo(rows, cols, values, (n, n), symmetric=normalization == "symmetric").to(device)

    def to_dgl(self):
        """A DGL graph (CPU) over the same edges, for neighbour sampling."""
        import dgl

        # Symmetric: in-neighbours (CSC) equal out-neighbours (CSR).
        return dgl.graph(("csc", (torch.from_numpy(self.indptr.copy()), torch.from_numpy(self.indices.copy()),
                                  torch.empty(0, dtype=torch.int64))), num_nodes=self.num_nodes)


@dataclass
class EvalSplit:
    """Users of an evaluation split and their relevant items (CSR)."""

    users: np.ndarray  # (n,) int64, sorted
    indptr: np.ndarray  # (n+1,)
    items: np.ndarray  # relevant item ids

    @classmethod
    def from_interactions(cls, users: np.ndarray, items: np.ndarray) -> "EvalSplit":
        order = np.lexsort((items, users))
        users, items = users[order], items[order]
        uniq, counts = np.unique(users, return_counts=True)
        indptr = np.zeros(len(uniq) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(uniq.astype(np.int64), indptr, items.astype(np.int64))

    def shard(self, rank: int, world: int) -> "EvalSplit":
        """Every ``world``-th user starting at ``rank``."""
        idx = np.arange(rank, len(self.users), world)
        counts = np.diff(self.indptr)[idx]
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        items = np.concatenate([self.items[self.indptr[i]:self.indptr[i + 1]] for i in idx]) if len(idx) else \
            np.zeros(0, np.int64)
        return EvalSplit(self.users[idx], indptr, items)
