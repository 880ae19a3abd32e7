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


def test_linear_and_mlp_heads_start_as_the_dot_product_and_score_all_matches_pairs():
    from graphrec.nn import LinearDotHead, MLPHead

    torch.manual_seed(0)
    users, items = torch.randn(5, 8), torch.randn(7, 8)
    dot = DotProductHead().score_all(users, items)
    for head in (LinearDotHead(8), MLPHead(8, hidden=4, max_pairs=6)):  # max_pairs < items: several chunks
        assert torch.allclose(head.score_all(users, items), dot, atol=1e-6)
        with torch.no_grad():
            for p in head.parameters():
                p.add_(0.1 * torch.randn_like(p))
        all_scores = head.score_all(users, items)  # [5, 7]
        pairs = head(users, items[:5])  # [5]: user b with item b
        assert torch.allclose(pairs, all_scores.diagonal(), atol=1e-5)
        lists = head(users, items[torch.tensor([[0, 1]] * 5)])  # [5, 2]
        assert torch.allclose(lists, all_scores[:, :2], atol=1e-5)


def test_rating_head_learns_ratings_with_biases():
    from graphrec.nn import RatingHead

    torch.manual_seed(0)
    num_users, num_items = 6, 5
    user_emb, item_emb = torch.randn(num_users, 4), torch.randn(num_items, 4)
    users = torch.arange(num_users).repeat_interleave(num_items)
    items = torch.arange(num_items).repeat(num_users)
    ratings = 3.0 + torch.linspace(-1, 1, num_users)[users] + torch.linspace(-0.5, 0.5, num_items)[items]
    head = RatingHead(4, num_users, num_items, hidden=8, global_mean=3.0)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    first = None
    for _ in range(200):
        loss = torch.nn.functional.mse_loss(head(user_emb[users], item_emb[items], users, items), ratings)
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.05 * first
    table = head.score_all(user_emb, item_emb, torch.arange(num_users))  # [U, I]
    assert torch.allclose(table.reshape(-1), head(user_emb[users], item_emb[items], users, items), atol=1e-5)
