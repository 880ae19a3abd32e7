"""Turn a graph recipe and the user's files into a heterogeneous graph plus id maps.

The result is a :class:`~graphrec.graph.bundle.GraphBundle`: a PyG ``HeteroData``
holding every node type and every side relation (attributes, social links, KG),
and, kept apart from it, the user-item interactions. Interactions enter a
message-passing graph only through a split's training rows
(:meth:`GraphBundle.message_passing_graph`), so evaluation edges cannot leak.
"""

from __future__ import annotations

import logging
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graphrec.data.idmap import IdMap
from graphrec.data.readers import (
    file_label,
    numeric_column,
    read_table,
    require_columns,
    require_values,
    row_location,
)
from graphrec.errors import ConfigError, DataError
from graphrec.graph.bundle import SPLIT_CODES, GraphBundle, Interactions
from graphrec.graph.recipe import MultiColumn, Recipe, Source, TextFeatures, resolve_source
from graphrec.utils import suggest

logger = logging.getLogger("graphrec")

RESERVED_RELATIONS = {"interacts", "follows"}


class _Builder:
    def __init__(self, recipe: Recipe, data_root: Path) -> None:
        self.recipe = recipe
        self.data_root = data_root
        self.idmap = IdMap()
        self.edges: dict[tuple[str, str, str], list[np.ndarray]] = {}
        self.texts: dict[str, dict[int, str]] = {}
        self.dropped: dict[str, int] = {}

    # ----------------------------------------------------------------- helpers
    def read(self, source: Source, key: str, columns: list[str | None], filled: list[str | None] | None = None
             ) -> pd.DataFrame:
        """Read a table, check that ``columns`` exist and that the ``filled`` ones (default: all) have no empty cell."""
        frame = read_table(resolve_source(source, self.data_root, key))
        require_columns(frame, [c for c in columns if c], key)
        for column in [c for c in (columns if filled is None else filled) if c]:
            require_values(frame, column)
        return frame

    def policy(self, table) -> str:
        return getattr(table, "on_unknown_id", None) or self.recipe.on_unknown_id

    def known(self, node_type: str, frame: pd.DataFrame, column: str, policy: str, key: str,
              defined_by: str) -> tuple[np.ndarray, np.ndarray]:
        """Ints of ``frame[column]`` as ``node_type`` ids and a mask of the rows whose id is defined."""
        ids = self.idmap.lookup(node_type, frame[column].to_numpy())
        self.unknown(ids < 0, frame, column, node_type, policy, key, defined_by)
        return ids, ids >= 0

    def unknown(self, unknown: np.ndarray, frame: pd.DataFrame, column: str, node_type: str, policy: str,
                key: str, defined_by: str) -> None:
        """Apply the unknown-id policy to the rows flagged in ``unknown``: raise, or count and warn."""
        if not unknown.any():
            return
        position = int(np.argmax(unknown))
        count = int(unknown.sum())
        if policy == "error":
            raw = str(frame[column].iloc[position])
            spaces = ""
            if raw != raw.strip() and self.idmap.lookup(node_type, [raw.strip()])[0] >= 0:
                spaces = f" (note the spaces around it: '{raw.strip()}' is defined; remove the spaces from the file)"
            raise DataError(
                f"{row_location(frame, position)}: column '{column}' has {node_type} id "
                f"'{raw}' that {defined_by} does not define{spaces} ({count} such rows); "
                f"fix the file or set on_unknown_id: drop under '{key}' to skip these rows"
            )
        self.dropped[key] = self.dropped.get(key, 0) + count
        logger.warning("%s: dropped %d rows whose %s id is not defined by %s", key, count, node_type, defined_by)

    def defined_by(self, node_type: str) -> str:
        """What defines the ids of ``user`` or ``item``: its own table, else the interactions."""
        table = self.recipe.users if node_type == "user" else self.recipe.items
        return f"the {node_type}s table" if table is not None else "the interactions table"

    def add_edges(self, edge_type: tuple[str, str, str], src: np.ndarray, dst: np.ndarray) -> None:
        self.edges.setdefault(edge_type, []).append(np.stack([src, dst]).astype(np.int64))

    # ----------------------------------------------------------------- tables
    def node_table(self, node_type: str, table, key: str) -> None:
        # Only the id must be filled: a missing name or attribute value is simply absent.
        frame = self.read(table, key, [table.id], filled=[table.id])
        for index, joined in enumerate(table.join):
            frame = self.join(frame, joined, f"{key}.join[{index}]")
        require_columns(frame, [c for c in [table.name] + [_column(s) for s in table.attributes.values()] if c], key)
        duplicated = frame[table.id].duplicated().to_numpy()
        if duplicated.any():
            position = int(np.argmax(duplicated))
            raise DataError(
                f"{row_location(frame, position)}: {node_type} id '{frame[table.id].iloc[position]}' "
                f"appears twice in column '{table.id}' (ids in a {node_type} table must be unique)"
            )
        ids = self.idmap.add(node_type, frame[table.id].to_numpy())
        if table.name:
            self.idmap.set_names(node_type, ids, frame[table.name].tolist())
        for field_name, spec in table.attributes.items():
            column, sep = (spec.column, spec.sep) if isinstance(spec, MultiColumn) else (spec, None)
            values = frame[column]
            owners = ids
            if sep:
                parts = values.str.split(sep, regex=False)
                owners = np.repeat(ids, parts.str.len().to_numpy())  # by position: line numbers repeat across files
                values = pd.Series(np.concatenate(parts.to_numpy()) if len(parts) else [], dtype=object).str.strip()
            values = values.to_numpy()
            keep = values != ""
            value_ids = self.idmap.add(field_name, values[keep])
            self.add_edges((node_type, f"has_{field_name}", field_name), owners[keep], value_ids)
        if table.text:
            self.texts[node_type] = dict(zip(ids.tolist(), _render(table.text, frame, key)))

    def join(self, frame: pd.DataFrame, joined, key: str) -> pd.DataFrame:
        """``frame`` with the columns of ``joined`` added where ``joined[key] == frame[column]`` ("" where none matches).

        A column both tables have keeps the node table's values; the joined one is renamed ``<name>_joined``.
        """
        require_columns(frame, [joined.column], f"{key}.column")
        other = self.read(joined, key, [joined.key], filled=[joined.key])
        duplicated = other[joined.key].duplicated().to_numpy()
        if duplicated.any():
            position = int(np.argmax(duplicated))
            raise DataError(f"{row_location(other, position)}: key '{other[joined.key].iloc[position]}' appears twice "
                            f"in column '{joined.key}' (a joined table needs one row per key; recipe key {key})")
        merged = frame.merge(other, how="left", left_on=joined.column, right_on=joined.key, suffixes=("", "_joined"))
        merged.index, merged.attrs = frame.index, frame.attrs
        return merged.fillna("")

    def interactions(self) -> Interactions:
        table = self.recipe.interactions
        frame = self.read(table, "interactions", [table.user, table.item, table.rating, table.timestamp,
                                                  table.sequence],
                          filled=[table.user, table.item, table.rating, table.timestamp])  # a history may be empty
        if table.sequence:
            frame = _expand_sequences(frame, table.user, table.item, table.sequence, table.sequence_sep)
        policy = self.policy(table)
        keep = np.ones(len(frame), dtype=bool)
        if self.recipe.users is not None:
            users, mask = self.known("user", frame, table.user, policy, "interactions", "the users table")
            keep &= mask
        else:
            users = self.idmap.add("user", frame[table.user].to_numpy())
        if self.recipe.items is not None:
            items, mask = self.known("item", frame, table.item, policy, "interactions", "the items table")
            keep &= mask
        else:
            items = self.idmap.add("item", frame[table.item].to_numpy())
        rating = numeric_column(frame, table.rating) if table.rating else None
        timestamp = numeric_column(frame, table.timestamp, allow_negative=False) if table.timestamp else None
        if table.sequence:  # the position in the expanded table: history first, then the row's item
            timestamp = np.arange(len(frame), dtype=np.float64)
        if table.min_rating is not None and rating is None:
            raise DataError("recipe key 'interactions.min_rating' needs 'interactions.rating' to name a column")
        given = self.split_labels(table, frame)
        order = np.arange(len(frame))[keep]
        if timestamp is not None:
            order = order[np.argsort(timestamp[order], kind="stable")]
        # One interaction per (user, item): the latest row wins; the rating filter applies to that row.
        keys = users[order] * max(1, self.idmap.num_nodes("item")) + items[order]
        _, last = np.unique(keys[::-1], return_index=True)
        order = np.sort(order[len(order) - 1 - last])
        if table.min_rating is not None:
            order = order[rating[order] >= table.min_rating]
        if len(order) == 0:
            raise DataError(f"{file_label(frame)}: no interactions left after filtering")
        return Interactions(
            user=users[order],
            item=items[order],
            rating=None if rating is None else rating[order].astype(np.float32),
            timestamp=None if timestamp is None else timestamp[order],
            split=None if given is None else given[order],
        )

    @staticmethod
    def split_labels(table, frame: pd.DataFrame) -> np.ndarray | None:
        """``[N]`` int8 split code per row (0 train, 1 valid, 2 test) from ``split_by_file``, or None."""
        if table.split_by_file is None:
            return None
        files = frame.attrs["files"]
        if len(table.split_by_file) != len(files):
            raise DataError(
                f"recipe key 'interactions.split_by_file': {len(table.split_by_file)} labels for {len(files)} "
                f"files; give one label (train, valid or test) per file of 'interactions.path'"
            )
        codes = [SPLIT_CODES[label] for label in table.split_by_file]
        return np.repeat(np.asarray(codes, dtype=np.int8), [count for _, count in files])

    def item_attributes(self, table, index: int) -> None:
        key = f"item_attributes[{index}]"
        if table.value_names is not None:
            names = self.read(table.value_names, f"{key}.value_names", [table.value_names.id, table.value_names.name])
            value_ids = self.idmap.add(table.field, names[table.value_names.id].to_numpy())
            self.idmap.set_names(table.field, value_ids, names[table.value_names.name].tolist())
        frame = self.read(table, key, [table.id, table.value])
        owners, keep = self.known(table.node, frame, table.id, self.policy(table), key, self.defined_by(table.node))
        if table.value_names is not None:
            values, mask = self.known(table.field, frame, table.value, self.policy(table), key, "value_names")
            keep &= mask
        else:
            values = self.idmap.add(table.field, frame[table.value].to_numpy())
        self.add_edges((table.node, f"has_{table.field}", table.field), owners[keep], values[keep])

    def social(self) -> None:
        table = self.recipe.social
        frame = self.read(table, "social", [table.user, table.friend])
        policy = self.policy(table)
        users, keep_u = self.known("user", frame, table.user, policy, "social", self.defined_by("user"))
        friends, keep_f = self.known("user", frame, table.friend, policy, "social", self.defined_by("user"))
        keep = keep_u & keep_f & (users != friends)
        src, dst = users[keep], friends[keep]
        if table.symmetric:
            src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        self.add_edges(("user", "follows", "user"), src, dst)

    def knowledge_graph(self) -> None:
        table = self.recipe.kg
        policy = self.policy(table)
        # Entities that stand for items become item nodes, so item -> entity -> item paths exist.
        entity_item = pd.Series(dtype=np.float64)
        if self.recipe.item_entity is not None:
            link = self.recipe.item_entity
            frame = self.read(link, "item_entity", [link.item, link.entity])
            items, keep = self.known("item", frame, link.item, self.policy(link), "item_entity",
                                     self.defined_by("item"))
            entity_item = pd.Series(items[keep].astype(np.float64), index=frame[link.entity].to_numpy()[keep])
            entity_item = entity_item[~entity_item.index.duplicated()]
        if table.entity_names is not None:
            spec = table.entity_names
            names = self.read(spec, "kg.entity_names", [spec.id, spec.name])
            raw = names[spec.id].to_numpy()
            plain = ~pd.Index(raw).isin(entity_item.index)
            entity_ids = self.idmap.add("entity", raw[plain])
            self.idmap.set_names("entity", entity_ids, names[spec.name].to_numpy()[plain].tolist())
        relation_names: dict[str, str] = {}
        if table.relation_names is not None:
            spec = table.relation_names
            names = self.read(spec, "kg.relation_names", [spec.id, spec.name])
            relation_names = dict(zip(names[spec.id], names[spec.name]))
        frame = self.read(table, "kg", [table.head, table.relation, table.tail])
        ends = {}
        keep = np.ones(len(frame), dtype=bool)
        for column in (table.head, table.tail):
            raw = frame[column].to_numpy()
            as_item = entity_item.reindex(raw).to_numpy()
            is_item = ~np.isnan(as_item)
            if table.entity_names is not None:
                entity = self.idmap.lookup("entity", raw)
                unknown = (entity < 0) & ~is_item
                self.unknown(unknown, frame, column, "entity", policy, "kg", "kg.entity_names")
                keep &= ~unknown
            else:
                entity = np.full(len(raw), -1, dtype=np.int64)
                entity[~is_item] = self.idmap.add("entity", raw[~is_item])
            ends[column] = (is_item, np.where(is_item, np.nan_to_num(as_item, nan=-1), entity).astype(np.int64))
        relations = frame[table.relation].to_numpy()
        for relation in pd.unique(relations[keep]):
            name = _relation_name(relation_names.get(relation, relation), self.idmap.relation_names)
            self.idmap.relation_names[name] = relation_names.get(relation, relation)
            rows = keep & (relations == relation)
            head_is_item, head = ends[table.head]
            tail_is_item, tail = ends[table.tail]
            for h_item in (True, False):
                for t_item in (True, False):
                    sel = rows & (head_is_item == h_item) & (tail_is_item == t_item)
                    if sel.any():
                        edge_type = ("item" if h_item else "entity", name, "item" if t_item else "entity")
                        self.add_edges(edge_type, head[sel], tail[sel])

    # ----------------------------------------------------------------- graph
    def graph(self) -> HeteroData:
        data = HeteroData()
        for node_type in self.idmap.node_types:
            data[node_type].num_nodes = self.idmap.num_nodes(node_type)
        for edge_type, parts in self.edges.items():
            edges = np.unique(np.concatenate(parts, axis=1), axis=1)
            src, rel, dst = edge_type
            data[edge_type].edge_index = torch.from_numpy(edges)
            if not (rel == "follows" and self.recipe.social is not None and self.recipe.social.symmetric):
                data[dst, f"rev_{rel}", src].edge_index = torch.from_numpy(edges[::-1].copy())
        return data


def build(recipe: Recipe, data_root: str | Path, text_cache_dir: str | Path | None = None) -> GraphBundle:
    """Read every table a recipe names and build the graph (no cache; see :func:`graphrec.graph.load_graph`).

    ``text_cache_dir`` keeps the encoded text features of ``text_features``, so that rebuilding a graph
    whose texts did not change encodes nothing.
    """
    builder = _Builder(recipe, Path(data_root))
    if recipe.users is not None:
        builder.node_table("user", recipe.users, "users")
    if recipe.items is not None:
        builder.node_table("item", recipe.items, "items")
    interactions = builder.interactions()
    for index, table in enumerate(recipe.item_attributes):
        builder.item_attributes(table, index)
    if recipe.social is not None:
        builder.social()
    if recipe.kg is not None:
        builder.knowledge_graph()
    texts = {
        node_type: [by_index.get(i, "") for i in range(builder.idmap.num_nodes(node_type))]
        for node_type, by_index in builder.texts.items()
    }
    graph = builder.graph()
    if recipe.text_features is not None:
        add_text_features(graph, texts, builder.idmap, recipe.text_features, text_cache_dir)
    return GraphBundle(
        name=recipe.name,
        graph=graph,
        interactions=interactions,
        idmap=builder.idmap,
        texts=texts,
        dropped=builder.dropped,
    )


def add_text_features(graph: HeteroData, texts: dict[str, list[str]], idmap: IdMap, features: TextFeatures,
                      cache_dir: str | Path | None = None) -> None:
    """Encode each listed node type's text into ``graph[t].x_text`` ``[N, P]`` and ``graph[t].has_text`` ``[N]``.

    Users and items take their recipe template's text, other types their display names.
    """
    encoder = None
    for node_type in features.node_types:
        if node_type not in idmap.node_types:
            raise ConfigError(f"recipe key 'text_features.node_types' names '{node_type}', which is not a node "
                              f"type of this graph{suggest(node_type, idmap.node_types)}; node types: "
                              f"{idmap.node_types}")
        encoder = encoder or text_encoder(features, cache_dir=cache_dir)
        vectors, has_text = encode_texts(encoder, texts[node_type] if node_type in texts else idmap.texts(node_type))
        graph[node_type].x_text, graph[node_type].has_text = vectors, has_text
        logger.info("text features of %s: %d of %d nodes have text (%s)", node_type, int(has_text.sum()),
                    len(has_text), "cached" if encoder.last_from_cache else "encoded")


def text_encoder(features: TextFeatures, model: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True):
    """The :class:`~graphrec.text.TextEncoder` of a recipe's ``text_features``; ``model`` replaces its PLM."""
    from graphrec.text import TextEncoder

    return TextEncoder(model or features.model, pooling=features.pooling, max_length=features.max_length,
                       batch_size=features.batch_size, cache_dir=cache_dir, progress=progress)


def encode_texts(encoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(vectors [N, P], has_text [N])``: a node without text gets a zero row and ``has_text`` False,
    so that a model can give it a learned vector instead."""
    has_text = np.fromiter((bool(text.strip()) for text in texts), dtype=bool, count=len(texts))
    rows = np.flatnonzero(has_text)
    vectors = torch.zeros(len(texts), encoder.dim)
    if len(rows):
        vectors[torch.from_numpy(rows)] = encoder.encode([texts[i] for i in rows])
    return vectors, torch.from_numpy(has_text)


def _expand_sequences(frame: pd.DataFrame, user: str, item: str, sequence: str, sep: str) -> pd.DataFrame:
    """One row per item of each row's ``sequence`` cell, then one for its ``item``: a user's items in order.

    The index keeps each row's line number, and the per-file row counts grow with the expansion, so
    :func:`row_location` still names the file and line a bad id came from.
    """
    parts = frame[sequence].str.split(sep, regex=False)
    history = [[value for value in cell if value] for cell in parts]  # "" (no history) gives []
    lengths = np.fromiter((len(cell) + 1 for cell in history), dtype=np.int64, count=len(history))
    items = [value for cell, last in zip(history, frame[item].tolist()) for value in (*cell, last)]
    expanded = pd.DataFrame({user: np.repeat(frame[user].to_numpy(), lengths), item: items},
                            index=np.repeat(frame.index.to_numpy(), lengths))
    counts, start = [], 0
    for path, count in frame.attrs.get("files", []):
        counts.append((path, int(lengths[start:start + count].sum())))
        start += count
    expanded.attrs["files"] = counts
    return expanded


def _column(spec: str | MultiColumn) -> str:
    return spec.column if isinstance(spec, MultiColumn) else spec


def _render(template: str, frame: pd.DataFrame, key: str) -> list[str]:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    for name in fields:
        if name not in frame.columns:
            raise DataError(
                f"recipe key '{key}.text': placeholder '{{{name}}}' is not a column{suggest(name, frame.columns)}; "
                f"columns: {list(frame.columns)}"
            )
    columns = {name: frame[name].tolist() for name in set(fields)}
    texts = []
    for row in range(len(frame)):
        try:
            texts.append(template.format(**{name: values[row] for name, values in columns.items()}))
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # e.g. '{title:d}' on a text value
            raise ConfigError(f"recipe key '{key}.text': cannot fill {template!r} with the values of "
                              f"{row_location(frame, row)} ({exc}); placeholders take no format spec on text, "
                              "write {column}") from None
    return texts


def _relation_name(raw: str, taken: dict[str, str]) -> str:
    """A relation name safe as a PyG edge-type key (letters, digits, '_'), unique among relations."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", str(raw)).strip("_") or "relation"
    if name[0].isdigit():
        name = f"rel_{name}"
    if name in RESERVED_RELATIONS or name.startswith(("has_", "rev_")):
        name = f"kg_{name}"
    base, suffix = name, 2
    while name in taken and taken[name] != raw:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name
