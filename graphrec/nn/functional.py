"""Stateless tensor operations the layers share.

:func:`segment_softmax` is ours rather than :func:`torch_geometric.utils.softmax` so that
``import graphrec.nn`` does not import PyG (whose import pulls in ``transformers`` and ``pandas``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def segment_softmax(src: Tensor, ptr: Tensor, dim: int = 0) -> Tensor:
    r"""Softmax of ``src`` within each segment of ``dim`` that the CSR pointer ``ptr`` delimits.

    For the entries :math:`i \in [\mathrm{ptr}_s, \mathrm{ptr}_{s+1})` of segment :math:`s`,

    .. math::
        \mathrm{out}_i = \frac{\exp(x_i - m_s)}{\sum_{j=\mathrm{ptr}_s}^{\mathrm{ptr}_{s+1}-1} \exp(x_j - m_s)
        + 10^{-16}},\qquad m_s = \max_j x_j,

    the attention normalisation of GAT-style layers over each node's incoming (or outgoing) edges,
    with edges sorted by that node. The maximum is taken without gradient, as it cancels out; an
    empty segment or one of only ``-inf`` has :math:`m_s = 0`. The result equals
    ``torch_geometric.utils.softmax(src, ptr=ptr, dim=dim)`` without torch-scatter or pyg-lib.

    Args:
        src (Tensor): Scores, e.g. ``[E]`` or ``[E, H]`` (edges, heads).
        ptr (Tensor): ``[S + 1]`` non-decreasing offsets with ``ptr[0] = 0`` and
            ``ptr[-1] = src.size(dim)``.
        dim (int, optional): The dimension the segments run along. (default: ``0``)
    """
    dim = dim + src.dim() if dim < 0 else dim
    if ptr.dim() != 1 or ptr.numel() == 0:  # its last value is not checked: that would wait for the GPU
        raise ValueError(f"ptr has shape {list(ptr.shape)}; expected a 1-D CSR pointer [S + 1]")
    counts = ptr[1:] - ptr[:-1]  # [S]
    moved = src.movedim(dim, 0)  # segments along the first dimension, as segment_reduce wants
    seg_max = torch.segment_reduce(moved.detach(), "amax", offsets=ptr)  # [S, ...]
    seg_max = torch.where(seg_max.isinf(), 0, seg_max)  # empty or all -inf segments
    out = (moved - seg_max.repeat_interleave(counts, dim=0, output_size=moved.size(0))).exp()
    seg_sum = torch.segment_reduce(out, "sum", offsets=ptr) + 1e-16  # [S, ...]
    out = out / seg_sum.repeat_interleave(counts, dim=0, output_size=moved.size(0))
    return out.movedim(0, dim)
