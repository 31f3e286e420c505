"""Optimisers: ``train.optimizer`` (``adam`` | ``lazy_adam``).

A sampled mini-batch reads some of the ID-embedding rows (at 10M interactions about 250k of 700k
nodes), yet with dense Adam the backward pass builds a gradient of the whole table and the step
rewrites every row. With row-sparse gradients, :class:`LazyAdam` updates only the rows a step read:
at 10M interactions a LightGCN epoch went from 1,195 s to 636 s with prefetching
(``benchmarks/bench_training.py``, 2026-12-01). Most of the gain is the backward pass: when a third
of the rows are read, the row update in torch ops costs about what a dense Adam step does. On CPU
tables the row update is one fused numba pass per row instead (:func:`raymm.cpu_kernels.adam_rows_`):
250k random rows of 700k x 32, one process, 2 threads, idle, medians of 30 (2026-12-07): 19.5 ms
against 54.2 ms for the torch ops with their sort; with the rows as a sampled block lists them (no
sort needed, only a check that they are distinct: 0.2 ms against 9.1 ms to sort) 13.5 ms.
"""

from __future__ import annotations

import math

import torch

from raymm import cpu_kernels


class LazyAdam(torch.optim.Optimizer):
    r"""Adam (Kingma and Ba, ICLR 2015, Algorithm 1) that updates only the rows of a row-sparse gradient.

    For a dense gradient it is plain Adam (no weight decay). For a sparse COO gradient (an
    ``nn.Embedding(sparse=True)`` lookup) with rows :math:`R` it updates those rows alone:

    .. math::
        m_R \leftarrow \beta_1 m_R + (1-\beta_1) g_R, \quad
        v_R \leftarrow \beta_2 v_R + (1-\beta_2) g_R^2, \quad
        \theta_R \leftarrow \theta_R - \frac{\eta}{1-\beta_1^t} \frac{m_R}{\sqrt{v_R / (1-\beta_2^t)} + \epsilon}

    with :math:`t` the parameter's step count. The other rows keep their moments and values
    ("lazy" Adam, as TensorFlow's ``LazyAdam`` and ``torch.optim.SparseAdam``; dense Adam would
    also decay their moments and move them by their old momentum). The row updates are gathers and
    scatters of |R| rows in ascending order (on CPU tables one fused pass per row, in any order),
    so a step costs O(|R| d) instead of O(N d). It equals
    ``torch.optim.SparseAdam`` on sparse gradients (tested). SparseAdam masks the moments through
    sparse tensors: on 250k of 700k rows x 32 its step took 199 ms against 115 ms for this update's
    first version (coalesce + row update), with another job sharing the CPU.

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"LazyAdam: need lr > 0, eps > 0, 0 <= betas < 1; got lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                step_size = lr / (1 - b1 ** t)
                bias2 = math.sqrt(1 - b2 ** t)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if p.grad.is_sparse and cpu_kernels.fits(p, m, v) and p.grad.dtype == p.dtype:
                    # CPU tables: one fused pass per row (numba), the rows in any order
                    rows, g = _distinct_rows(p.grad)
                    cpu_kernels.adam_rows_(p, m, v, rows, g, b1, b2, step_size * bias2, eps * bias2)
                elif p.grad.is_sparse:
                    rows, g = _sorted_rows(p.grad)
                    if not len(rows):
                        continue
                    m_r = m.index_select(0, rows).lerp_(g, 1 - b1)
                    v_r = v.index_select(0, rows).mul_(b2).addcmul_(g, g, value=1 - b2)
                    m.index_copy_(0, rows, m_r)
                    v.index_copy_(0, rows, v_r)
                    # step_size m / (sqrt(v) / bias2 + eps) = (step_size bias2) m / (sqrt(v) + eps bias2):
                    # one pass less over the rows than dividing by bias2 first
                    p_r = p.index_select(0, rows).addcdiv_(m_r, v_r.sqrt_().add_(eps * bias2), value=-step_size * bias2)
                    p.index_copy_(0, rows, p_r)
                else:
                    m.lerp_(p.grad, 1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    p.addcdiv_(m, v.sqrt().div_(bias2).add_(eps), value=-step_size)
        return loss


def _sorted_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R,) distinct ascending rows and their (R, d) gradient rows of a sparse COO gradient.

    An embedding lookup of distinct ids (a sampled block's input nodes) gives distinct rows: sorting
    them is then enough (250k rows: 6.5 ms to sort against 62 ms for ``coalesce``, which also sums
    repeated rows and is used here only when some row repeats). Ascending rows make the gathers and
    scatters that follow faster too (60 ms against 85 ms for the same update in random row order)."""
    if grad.is_coalesced():
        return grad.indices()[0], grad.values()
    rows, order = grad._indices()[0].sort()
    if len(rows) > 1 and not bool((rows[1:] != rows[:-1]).all()):
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()
    return rows, grad._values().index_select(0, order)


def _distinct_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R,) distinct rows in any order and their (R, d) contiguous gradient rows of a sparse COO
    gradient on the CPU: an embedding lookup of distinct ids (a sampled block's input nodes) as it
    is, without the sort of :func:`_sorted_rows`; ``coalesce`` only when some row repeats."""
    if not grad.is_coalesced():
        rows = grad._indices()[0]
        if cpu_kernels.distinct(rows, grad.shape[0]):
            return rows, grad._values().contiguous()
        grad = grad.coalesce()
    return grad.indices()[0], grad.values().contiguous()
