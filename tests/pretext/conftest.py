"""Fixtures of the pretext tests: a tiny clustered heterogeneous graph, a model over it, the synthetic graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.nn.embedding import NodeEmbedding
from graphrec.pretext import PretextBatch

EdgeType = tuple[str, str, str]
NUM_CLUSTERS = 3


class MeanEncoder(torch.nn.Module):
    """A parameter-free heterogeneous encoder: each layer averages a node's input with the mean
    message of every edge type it receives (so every edge type, attribute edges included, matters)."""

    def __init__(self, num_layers: int = 2) -> None:
        super().__init__()
        self.num_layers = num_layers

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        h = dict(x_dict)
        for _ in range(self.num_layers):
            sums = {t: x.clone() for t, x in h.items()}
            parts = {t: torch.ones(x.size(0), 1, device=x.device) for t, x in h.items()}
            for (src, _, dst), edge_index in edge_index_dict.items():
                if edge_index.numel() == 0:
                    continue
                count = torch.bincount(edge_index[1], minlength=h[dst].size(0)).clamp_min(1).unsqueeze(-1)
                message = torch.zeros_like(h[dst]).index_add_(0, edge_index[1], h[src][edge_index[0]]) / count
                sums[dst] = sums[dst] + message
                parts[dst] = parts[dst] + (torch.bincount(edge_index[1], minlength=h[dst].size(0)) > 0).unsqueeze(-1)
            h = {t: sums[t] / parts[t] for t in h}
        return h


class TinyModel(torch.nn.Module):
    """The pretext-model protocol: ``inputs()`` from a :class:`NodeEmbedding`, ``encode`` by an encoder."""

    def __init__(self, num_nodes_dict: dict[str, int], dim: int, encoder: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.embedding = NodeEmbedding(num_nodes_dict, dim)
        self.encoder = MeanEncoder() if encoder is None else encoder
        self.embedding_dim = dim

    def inputs(self) -> dict[str, Tensor]:
        return self.embedding()

    def encode(self, x_dict, edge_index_dict):
        return self.encoder(x_dict, edge_index_dict)


class CapturingEncoder(torch.nn.Module):
    """Wraps an encoder and keeps every ``(x_dict, edge_index_dict)`` it was called with."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[dict, dict]] = []

    def forward(self, x_dict, edge_index_dict):
        self.calls.append((dict(x_dict), dict(edge_index_dict)))
        return self.inner(x_dict, edge_index_dict)


def add_relation(data: HeteroData, edge_type: EdgeType, edge_index: Tensor, reverse: bool = True) -> None:
    data[edge_type].edge_index = edge_index
    if reverse:
        src, rel, dst = edge_type
        data[dst, f"rev_{rel}", src].edge_index = edge_index.flip(0)


def make_graph(num_users: int = 36, num_items: int = 30, seed: int = 0, *, genre: bool = True, tag: bool = True,
               entity: bool = True, social: bool = True, text: bool = True) -> HeteroData:
    """Users and items in 3 clusters (``id % 3``); interactions, genres, tags, entities and friendships
    follow the clusters, so that every pretext task has something to learn."""
    rng = np.random.default_rng(seed)
    data = HeteroData()
    data["user"].num_nodes, data["item"].num_nodes = num_users, num_items
    user_cluster, item_cluster = np.arange(num_users) % NUM_CLUSTERS, np.arange(num_items) % NUM_CLUSTERS
    per_cluster = [np.flatnonzero(item_cluster == c) for c in range(NUM_CLUSTERS)]
    # 6 items per user, 5 from the user's cluster, 1 anywhere
    users = np.repeat(np.arange(num_users), 6)
    own = np.stack([rng.choice(per_cluster[c], 5, replace=False) for c in user_cluster])  # [U, 5]
    items = np.concatenate([own, rng.integers(0, num_items, (num_users, 1))], axis=1).reshape(-1)
    pairs = np.unique(np.stack([users, items]), axis=1)
    add_relation(data, ("user", "interacts", "item"), torch.from_numpy(pairs))
    if genre:  # 6 genres, two per cluster; each item has one or two of its cluster's
        data["genre"].num_nodes = 6
        first = item_cluster * 2 + rng.integers(0, 2, num_items)
        second = item_cluster * 2 + rng.integers(0, 2, num_items)
        index = np.unique(np.stack([np.tile(np.arange(num_items), 2), np.concatenate([first, second])]), axis=1)
        add_relation(data, ("item", "has_genre", "genre"), torch.from_numpy(index))
    if tag:  # 9 tags, three per cluster; items without a tag exist (dead ends for item-tag walks)
        data["tag"].num_nodes = 9
        tagged = np.arange(num_items)[np.arange(num_items) % 5 != 4]
        index = np.stack([tagged, item_cluster[tagged] * 3 + rng.integers(0, 3, len(tagged))])
        add_relation(data, ("item", "has_tag", "tag"), torch.from_numpy(index))
    if entity:  # 12 entities, 4 per cluster, reached by two relations
        data["entity"].num_nodes = 12
        for relation in ("directed_by", "stars"):
            index = np.stack([np.arange(num_items), item_cluster * 4 + rng.integers(0, 4, num_items)])
            add_relation(data, ("item", relation, "entity"), torch.from_numpy(index))
    if social:  # symmetric friendships within a cluster, both directions in one type
        a = np.arange(num_users)
        b = (a + NUM_CLUSTERS * rng.integers(1, 3, num_users)) % num_users
        pairs = np.unique(np.concatenate([np.stack([a, b]), np.stack([b, a])], axis=1), axis=1)
        pairs = pairs[:, pairs[0] != pairs[1]]
        data["user", "follows", "user"].edge_index = torch.from_numpy(pairs)
    if text:
        centroids = rng.normal(size=(NUM_CLUSTERS, 16))
        x_text = centroids[item_cluster] + 0.3 * rng.normal(size=(num_items, 16)) + 3.0  # shared offset
        data["item"].x_text = torch.tensor(x_text, dtype=torch.float32)
        data["item"].has_text = torch.from_numpy(np.arange(num_items) % 7 != 6)
    return data


def num_nodes(graph: HeteroData) -> dict[str, int]:
    return {t: int(graph[t].num_nodes) for t in graph.node_types}


def make_batch(graph: HeteroData, seed: int | None = 0, step: int = 0) -> PretextBatch:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return PretextBatch(dict(graph.edge_index_dict), num_nodes(graph), step, generator)


def make_model(graph: HeteroData, dim: int = 16, seed: int = 0, encoder: torch.nn.Module | None = None) -> TinyModel:
    torch.manual_seed(seed)
    return TinyModel(num_nodes(graph), dim, encoder)


def train(task, model, graph: HeteroData, steps: int = 40, lr: float = 0.05, seed: int = 1) -> list[float]:
    """Adam over model and task; returns the loss of every step."""
    params = list(model.parameters()) + list(task.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        batch = PretextBatch(dict(graph.edge_index_dict), num_nodes(graph), step, generator)
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture
def graph() -> HeteroData:
    return make_graph()


@pytest.fixture(scope="session")
def synthetic_graph(tmp_path_factory) -> HeteroData:
    """The message-passing graph of a small ``graphs/synthetic.yaml`` build (every interaction)."""
    from graphrec.data.synthetic import write_synthetic
    from graphrec.graph import load_graph
    from graphrec.graph.recipe import find_recipe

    root = tmp_path_factory.mktemp("synthetic-pretext")
    write_synthetic(root, num_users=60, num_items=40, num_communities=3, interactions_per_user=8, num_genres=5,
                    num_tags=10, num_kg_entities=30, seed=0)
    bundle = load_graph(find_recipe("synthetic"), data_root=root, cache_dir=root / "cache")
    return bundle.message_passing_graph(np.arange(len(bundle.interactions)))
