import torch

from graphrec.nn.heads import DotProductHead


def test_dot_product_head_pairs_lists_and_all_items():
    head = DotProductHead()
    users = torch.tensor([[1.0, 2.0], [0.0, -1.0]])  # [2, 2]
    items = torch.tensor([[3.0, 4.0], [5.0, 6.0], [1.0, 1.0]])  # [3, 2]
    # hand-computed: u0.i0 = 3 + 8 = 11, u1.i1 = -6
    assert head(users, items[:2]).tolist() == [11.0, -6.0]
    assert head.score_all(users, items).tolist() == [[11.0, 17.0, 3.0], [-4.0, -6.0, -1.0]]
    lists = items[torch.tensor([[0, 2], [1, 0]])]  # [2, 2, 2]
    assert head(users, lists).tolist() == [[11.0, 3.0], [-6.0, -4.0]]
