"""Tests of graphrec.nn.functional: segment_softmax by hand and against PyG's softmax."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import softmax as pyg_softmax

from graphrec.nn.functional import segment_softmax


def test_segment_softmax_by_hand():
    # Segments [1, 1], [] (empty), [0, ln 3] -> [1/2, 1/2], [], [1/4, 3/4].
    src = torch.tensor([1.0, 1.0, 0.0, torch.log(torch.tensor(3.0)).item()])
    ptr = torch.tensor([0, 2, 2, 4])
    torch.testing.assert_close(segment_softmax(src, ptr), torch.tensor([0.5, 0.5, 0.25, 0.75]))


@pytest.mark.parametrize("shape", [(50,), (50, 3)])
def test_segment_softmax_equals_pyg(shape):
    generator = torch.Generator().manual_seed(0)
    src = torch.randn(shape, generator=generator) * 10
    src[7] = float("-inf")  # a masked entry
    src[20:23] = float("-inf")  # a segment of only masked entries
    # Segments of 0 to 7 entries, among them empty ones, covering all 50 rows.
    ptr = torch.tensor([0, 0, 3, 10, 10, 17, 20, 23, 24, 31, 38, 45, 50])
    ours = segment_softmax(src.clone().requires_grad_(), ptr)
    theirs = pyg_softmax(src.clone().requires_grad_(), ptr=ptr, dim=0)
    assert torch.equal(ours, theirs)
    weights = torch.randn(shape, generator=generator)
    src_a, src_b = src.clone().requires_grad_(), src.clone().requires_grad_()
    (segment_softmax(src_a, ptr) * weights).sum().backward()
    (pyg_softmax(src_b, ptr=ptr, dim=0) * weights).sum().backward()
    assert torch.equal(src_a.grad.nan_to_num(), src_b.grad.nan_to_num())


def test_segment_softmax_other_dim():
    src = torch.randn(4, 6)
    ptr = torch.tensor([0, 2, 6])
    out = segment_softmax(src, ptr, dim=-1)
    torch.testing.assert_close(out[:, :2], src[:, :2].softmax(-1))
    torch.testing.assert_close(out[:, 2:], src[:, 2:].softmax(-1))


def test_segment_softmax_rejects_a_bad_pointer():
    with pytest.raises(ValueError, match=r"ptr has shape \[2, 2\]; expected a 1-D CSR pointer"):
        segment_softmax(torch.randn(3), torch.zeros(2, 2, dtype=torch.long))
