"""A built graph: the side graph, the interactions kept apart from it, id maps and texts; saved and loaded safely."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData

from graphrec.data.idmap import IdMap
from graphrec.errors import CheckpointError
from graphrec.utils import atomic_save_tensors, atomic_write_json, fsync_dir, load_tensors, read_json

INTERACTS = ("user", "interacts", "item")
REV_INTERACTS = ("item", "rev_interacts", "user")
FORMAT_VERSION = 1
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}  # Interactions.split values
# Node attributes a graph may carry: PLM text vectors [N, P] and which nodes have text [N] (recipe text_features).
NODE_FEATURES = ("x_text", "has_text")


@dataclass
class Interactions:
    """All user-item interactions, one row each (ints from the :class:`IdMap`)."""

    user: np.ndarray  # [N] int64
    item: np.ndarray  # [N] int64
    rating: np.ndarray | None = None  # [N] float32
    timestamp: np.ndarray | None = None  # [N] float64
    split: np.ndarray | None = None  # [N] int8 SPLIT_CODES: the data's own split (recipe split_by_file)

    def __len__(self) -> int:
        return len(self.user)

    def edge_index(self, rows: np.ndarray | None = None) -> torch.Tensor:
        """``[2, n]`` user -> item edges of the given rows (all rows when ``rows`` is None)."""
        users = self.user if rows is None else self.user[rows]
        items = self.item if rows is None else self.item[rows]
        return torch.from_numpy(np.stack([users, items]).astype(np.int64))


@dataclass
class GraphBundle:
    """What ``graphrec build`` makes from a recipe.

    Attributes:
        name: the recipe's name.
        graph: every node type (``num_nodes`` set) and every side relation with its reverse;
            no interaction edges. Node types listed in the recipe's ``text_features`` also hold
            ``x_text`` ``[N, P]`` (float32) and ``has_text`` ``[N]`` (bool).
        interactions: the user-item interactions, apart from the graph until a split picks training rows.
        idmap: raw ids and display names.
        texts: per node type, one text per node ("" where the recipe gives none).
        dropped: rows dropped per recipe table under ``on_unknown_id: drop``.
    """

    name: str
    graph: HeteroData
    interactions: Interactions
    idmap: IdMap
    texts: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return self.idmap.num_nodes("user")

    @property
    def num_items(self) -> int:
        return self.idmap.num_nodes("item")

    def message_passing_graph(self, train_rows: np.ndarray) -> HeteroData:
        """The side graph plus the interactions of ``train_rows`` (and their reverse) only.

        This is the one way interactions enter a graph used for propagation, so rows of a
        validation or test split cannot leak into message passing.
        """
        data = self.graph.clone()
        edge_index = self.interactions.edge_index(np.asarray(train_rows))
        data[INTERACTS].edge_index = edge_index
        data[REV_INTERACTS].edge_index = edge_index.flip(0)
        return data

    def full_graph(self) -> HeteroData:
        """The side graph with every interaction, for export and analysis (never for training)."""
        return self.message_passing_graph(np.arange(len(self.interactions)))

    def summary(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(node type, count) rows and (edge type, count) rows, interactions included."""
        nodes = [(t, self.idmap.num_nodes(t)) for t in self.graph.node_types]
        edges = [("user -interacts-> item", len(self.interactions))]
        edges += [(f"{s} -{r}-> {d}", self.graph[s, r, d].edge_index.shape[1]) for s, r, d in self.graph.edge_types]
        return nodes, edges

    # ------------------------------------------------------------------ storage
    def save(self, folder: str | Path) -> None:
        """Write ``graph.safetensors``, ``idmap.json``, ``texts.json`` and ``meta.json`` into ``folder``.

        The files go to a temporary folder that then replaces ``folder`` as a whole, so a reader
        never sees a mix of an old and a new graph.
        """
        folder = Path(folder)
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        retired = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        try:
            self._write(staging)
            fsync_dir(staging)
            if folder.exists():
                os.replace(folder, retired)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(folder.parent)
        shutil.rmtree(retired, ignore_errors=True)

    def _write(self, folder: Path) -> None:
        tensors = {f"edge|{s}|{r}|{d}": self.graph[s, r, d].edge_index for s, r, d in self.graph.edge_types}
        for node_type in self.graph.node_types:
            for name in NODE_FEATURES:
                if name in self.graph[node_type]:
                    tensors[f"node|{node_type}|{name}"] = self.graph[node_type][name]
        tensors["inter|user"] = torch.from_numpy(self.interactions.user)
        tensors["inter|item"] = torch.from_numpy(self.interactions.item)
        if self.interactions.rating is not None:
            tensors["inter|rating"] = torch.from_numpy(self.interactions.rating)
        if self.interactions.timestamp is not None:
            tensors["inter|timestamp"] = torch.from_numpy(self.interactions.timestamp)
        if self.interactions.split is not None:
            tensors["inter|split"] = torch.from_numpy(self.interactions.split)
        atomic_save_tensors(folder / "graph.safetensors", tensors)
        self.idmap.save(folder / "idmap.json")
        atomic_write_json(folder / "texts.json", self.texts)
        # meta.json last: its presence marks a complete cache entry.
        atomic_write_json(folder / "meta.json", {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "num_nodes": {t: self.idmap.num_nodes(t) for t in self.graph.node_types},
            "edge_types": [list(edge_type) for edge_type in self.graph.edge_types],  # the order to rebuild in
            "dropped": self.dropped,
        })

    @classmethod
    def load(cls, folder: str | Path) -> "GraphBundle":
        folder = Path(folder)
        meta = read_json(folder / "meta.json", "graph metadata")
        if (not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION
                or not isinstance(meta.get("num_nodes"), dict) or not isinstance(meta.get("name"), str)):
            raise CheckpointError(f"{folder / 'meta.json'}: not a graphrec graph of format {FORMAT_VERSION}")
        tensors = load_tensors(folder / "graph.safetensors")
        idmap = IdMap.load(folder / "idmap.json")
        texts = read_json(folder / "texts.json", "node texts")
        graph = HeteroData()
        for node_type, count in meta["num_nodes"].items():
            graph[node_type].num_nodes = int(count)
        # safetensors gives no order: rebuild the edge types in the order they were built in (else sorted),
        # so whatever iterates over them (edge dropout, parameter creation) is the same in every process
        order = {f"edge|{'|'.join(edge_type)}": i for i, edge_type in enumerate(meta.get("edge_types", []))}
        for key in sorted(tensors, key=lambda name: (order.get(name, len(order)), name)):
            tensor = tensors[key]
            kind, *rest = key.split("|")
            if kind == "edge":
                graph[tuple(rest)].edge_index = tensor
            elif kind == "node" and len(rest) == 2 and rest[1] in NODE_FEATURES:
                graph[rest[0]][rest[1]] = tensor
        if "inter|user" not in tensors:
            raise CheckpointError(f"{folder / 'graph.safetensors'}: no interactions stored")
        interactions = Interactions(
            user=tensors["inter|user"].numpy(),
            item=tensors["inter|item"].numpy(),
            rating=tensors["inter|rating"].numpy() if "inter|rating" in tensors else None,
            timestamp=tensors["inter|timestamp"].numpy() if "inter|timestamp" in tensors else None,
            split=tensors["inter|split"].numpy() if "inter|split" in tensors else None,
        )
        return cls(meta["name"], graph, interactions, idmap, texts, meta.get("dropped", {}))


def describe(bundle: GraphBundle) -> str:
    """A plain-text per-type table of nodes and edges."""
    nodes, edges = bundle.summary()
    width = max(len(name) for name, _ in nodes + edges)
    lines = [f"graph '{bundle.name}'", f"{'node type':<{width}}  {'count':>10}"]
    lines += [f"{name:<{width}}  {count:>10,}" for name, count in nodes]
    lines += ["", f"{'edge type':<{width}}  {'count':>10}"]
    lines += [f"{name:<{width}}  {count:>10,}" for name, count in edges]
    return "\n".join(lines)

