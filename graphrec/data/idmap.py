"""Raw string ids <-> contiguous integer ids, one space per node type.

Ids are assigned once, when the graph is built, and saved next to it so that
recommendations can be printed back with the user's own ids and names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from graphrec.errors import CheckpointError, DataError
from graphrec.utils import atomic_write_json, read_json, suggest

FORMAT_VERSION = 1


class IdMap:
    """Per node type, the raw ids in index order and optional display names.

    Example:
        >>> idmap = IdMap()
        >>> idmap.add("user", ["u7", "u3", "u7"]).tolist()
        [0, 1, 0]
        >>> idmap.raw("user", 1)
        'u3'
    """

    def __init__(self) -> None:
        self._index: dict[str, pd.Index] = {}
        self._names: dict[str, dict[int, str]] = {}
        self.relation_names: dict[str, str] = {}  # sanitised edge-type relation -> the name in the data

    # ------------------------------------------------------------------ building
    def add(self, node_type: str, raw_ids: Iterable[str]) -> np.ndarray:
        """Define ``raw_ids`` (new ones get the next free ints, in first-seen order); return their ints."""
        values = pd.Index(np.asarray(list(raw_ids) if not isinstance(raw_ids, (np.ndarray, pd.Series, pd.Index))
                                     else raw_ids, dtype=object).astype(str))
        current = self._index.get(node_type, pd.Index([], dtype=object))
        new = values[~values.isin(current)].unique()
        if len(new):
            self._index[node_type] = current.append(new)
        else:
            self._index.setdefault(node_type, current)
        return self._index[node_type].get_indexer(values).astype(np.int64)

    def lookup(self, node_type: str, raw_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Ints of ``raw_ids``; ids that were never defined give -1."""
        if node_type not in self._index:
            return np.full(len(raw_ids), -1, dtype=np.int64)
        return self._index[node_type].get_indexer(pd.Index(np.asarray(raw_ids, dtype=object).astype(str)))

    def set_names(self, node_type: str, indices: np.ndarray, names: Sequence[str]) -> None:
        """Attach display names (e.g. movie titles) to nodes; empty names are skipped."""
        table = self._names.setdefault(node_type, {})
        for index, name in zip(np.asarray(indices).tolist(), names):
            if index >= 0 and name:
                table[int(index)] = str(name)

    # ------------------------------------------------------------------ reading
    @property
    def node_types(self) -> list[str]:
        return list(self._index)

    def num_nodes(self, node_type: str) -> int:
        return len(self._index.get(node_type, ()))

    def raw(self, node_type: str, index: int) -> str:
        return str(self._index[node_type][index])

    def raw_ids(self, node_type: str) -> list[str]:
        return [str(v) for v in self._index.get(node_type, ())]

    def name(self, node_type: str, index: int) -> str:
        """Display name of a node, falling back to its raw id."""
        return self._names.get(node_type, {}).get(int(index)) or self.raw(node_type, index)

    def texts(self, node_type: str) -> list[str]:
        """Every node's display name ("" where a named type lacks one); a type without names gives its raw ids.

        Entity ids like ``m.0abc`` say nothing, so a named type never falls back to them; the values of an
        attribute such as genre are their own names.
        """
        names = self._names.get(node_type)
        if not names:
            return self.raw_ids(node_type)
        return [names.get(index, "") for index in range(self.num_nodes(node_type))]

    def index_of(self, node_type: str, raw_id: str) -> int:
        """Int of one raw id; an unknown id raises a :class:`DataError` that suggests a close one."""
        if node_type not in self._index:
            raise DataError(f"no node type '{node_type}'{suggest(node_type, self._index)}; known: {self.node_types}")
        position = self._index[node_type].get_indexer([str(raw_id)])[0]
        if position < 0:
            close = suggest(str(raw_id), self._index[node_type][:100000].astype(str))
            raise DataError(f"unknown {node_type} id '{raw_id}'{close}")
        return int(position)

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "ids": {node_type: self.raw_ids(node_type) for node_type in self._index},
            "names": {node_type: {str(k): v for k, v in names.items()} for node_type, names in self._names.items()},
            "relation_names": self.relation_names,
        }

    @classmethod
    def from_dict(cls, payload: dict, source: str = "id map") -> "IdMap":
        if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION or "ids" not in payload:
            raise CheckpointError(f"{source}: not a graphrec id map (format_version {FORMAT_VERSION} expected)")
        ids_by_type, names_by_type = payload["ids"], payload.get("names", {})
        relation_names = payload.get("relation_names", {})
        if not all(isinstance(part, dict) for part in (ids_by_type, names_by_type, relation_names)):
            raise CheckpointError(f"{source}: 'ids', 'names' and 'relation_names' must be JSON objects; "
                                  "the id map is corrupt")
        idmap = cls()
        for node_type, ids in ids_by_type.items():
            if not isinstance(ids, list):
                raise CheckpointError(f"{source}: ids of node type '{node_type}' must be a list, found "
                                      f"{type(ids).__name__}; the id map is corrupt")
            index = pd.Index(np.asarray(ids, dtype=object).astype(str))
            if index.has_duplicates:
                raise CheckpointError(f"{source}: {node_type} id '{index[index.duplicated()][0]}' is listed twice; "
                                      "the id map is corrupt")
            idmap._index[node_type] = index
        for node_type, names in names_by_type.items():
            try:
                idmap._names[node_type] = {int(k): str(v) for k, v in names.items()}
            except (AttributeError, TypeError, ValueError):
                raise CheckpointError(f"{source}: names of node type '{node_type}' must map node numbers to "
                                      "names; the id map is corrupt") from None
        idmap.relation_names = dict(relation_names)
        return idmap

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IdMap":
        return cls.from_dict(read_json(Path(path), "id map"), source=str(path))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={self.num_nodes(t)}" for t in self._index)
        return f"IdMap({sizes})"
