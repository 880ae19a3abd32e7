"""Graph recipes: which files and columns become which node and edge types.

A recipe is a YAML file under ``graphs/`` (see ``graphs/template.yaml`` for a
commented example). Paths in it are relative to a data root given at build
time, so one recipe serves every copy of a dataset.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from graphrec.data.readers import TableSource
from graphrec.errors import ConfigError
from graphrec.schema import from_mapping, load_yaml
from graphrec.utils import suggest

UnknownIdPolicy = Literal["error", "drop"]
Format = Literal["auto", "csv", "tsv", "parquet", "recbole"]


@dataclass
class Source:
    """Read options shared by every table."""

    path: str | list[str]
    format: Format = "auto"
    sep: str | None = None
    header: bool = True
    names: list[str] | None = None
    encoding: str = "utf-8"

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


@dataclass
class NamesTable(Source):
    """A table of display names: ``id`` column -> ``name`` column."""

    id: str = "id"
    name: str = "name"


@dataclass
class MultiColumn:
    """An attribute column whose cells may hold several values split by ``sep``."""

    column: str
    sep: str | None = None


@dataclass
class InteractionsTable(Source):
    user: str = "user"
    item: str = "item"
    rating: str | None = None
    timestamp: str | None = None
    min_rating: float | None = None
    on_unknown_id: UnknownIdPolicy | None = None
    # One label per file of ``path`` ("train", "valid" or "test"): the data's own split, used by
    # ``split.method: given``.
    split_by_file: list[Literal["train", "valid", "test"]] | None = None
    # A column of items the user had before ``item``, split by ``sequence_sep`` (RecBole / UniSRec sequence
    # files): the row stands for the whole sequence, history then ``item``, in that order.
    sequence: str | None = None
    sequence_sep: str = " "


@dataclass
class JoinTable(Source):
    """Columns from another file, joined to a node table where its ``key`` equals the table's ``column``.

    (Not ``on``: YAML reads a bare ``on`` key as the boolean true.)
    """

    column: str = "id"
    key: str = "id"


@dataclass
class NodeTable(Source):
    """The user or item table: defines the ids, their names, attributes and text."""

    id: str = "id"
    name: str | None = None
    attributes: dict[str, str | MultiColumn] = field(default_factory=dict)
    text: str | None = None  # a template of columns, e.g. "{title} ({year}). Genres: {genres}"
    join: list[JoinTable] = field(default_factory=list)  # more columns (names, text, attributes) from other files


@dataclass
class TextFeatures:
    """Node text encoded by a pre-trained language model into ``data[node_type].x_text``.

    An item or user's text is its table's ``text`` template; any other node type's text is its
    display name (KG entity names, tag names, attribute values).
    """

    node_types: list[str]
    model: str | None = None  # a local Hugging Face model folder; null: the packaged all-MiniLM-L6-v2
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = 64
    batch_size: int = 64


@dataclass
class AttributeTable(Source):
    """A long table of (owner, value) pairs for one attribute field, e.g. item tags.

    ``node`` is the owner's node type (``item`` or ``user``) and ``id`` the column of owner ids.
    """

    node: Literal["item", "user"] = "item"
    id: str = "item"
    value: str = "value"
    field: str = "tag"
    value_names: NamesTable | None = None
    on_unknown_id: UnknownIdPolicy | None = None


@dataclass
class SocialTable(Source):
    user: str = "user"
    friend: str = "friend"
    symmetric: bool = True
    on_unknown_id: UnknownIdPolicy | None = None


@dataclass
class KGTable(Source):
    head: str = "head"
    relation: str = "relation"
    tail: str = "tail"
    entity_names: NamesTable | None = None
    relation_names: NamesTable | None = None
    on_unknown_id: UnknownIdPolicy | None = None


@dataclass
class LinkTable(Source):
    item: str = "item"
    entity: str = "entity"
    on_unknown_id: UnknownIdPolicy | None = None


@dataclass
class Recipe:
    """A whole graph recipe. Only ``name`` and ``interactions`` are required."""

    name: str
    interactions: InteractionsTable
    description: str = ""
    files: str = ""  # where to get the files, shown by `graphrec datasets`
    users: NodeTable | None = None
    items: NodeTable | None = None
    item_attributes: list[AttributeTable] = field(default_factory=list)
    social: SocialTable | None = None
    kg: KGTable | None = None
    item_entity: LinkTable | None = None
    on_unknown_id: UnknownIdPolicy = "error"
    # Explanations: relation name -> [forward] or [forward, reverse] sentence with {head} and {tail}.
    phrases: dict[str, list[str]] = field(default_factory=dict)
    text_features: TextFeatures | None = None

    def __post_init__(self) -> None:
        reserved = {"user", "item", "entity"}
        tables = [t for t in (self.users, self.items) if t is not None]
        for field_name in [f for t in tables for f in t.attributes] + [t.field for t in self.item_attributes]:
            if field_name in reserved:
                raise ValueError(f"attribute field '{field_name}' clashes with the node type of the same name")
            if not field_name.isidentifier():
                raise ValueError(f"attribute field '{field_name}' must be a name of letters, digits and '_'")
        for relation, templates in self.phrases.items():
            if not 1 <= len(templates) <= 2:
                raise ValueError(f"key 'phrases.{relation}' must list one or two sentences (forward, reverse), "
                                 f"found {len(templates)}")
            for template in templates:
                unknown = set(template_fields(template, f"phrases.{relation}")) - {"head", "tail"}
                if unknown:
                    raise ValueError(f"key 'phrases.{relation}': placeholder '{{{sorted(unknown)[0]}}}' is not "
                                     f"one of {{head}}, {{tail}}")
        for key, node_table in (("users", self.users), ("items", self.items)):
            if node_table is not None and node_table.text:
                for name in template_fields(node_table.text, f"{key}.text"):
                    if not name or name.isdigit():
                        raise ValueError(f"key '{key}.text': placeholder '{{{name}}}' must name a column, "
                                         f"e.g. {{title}}")
        table = self.interactions
        if table.sequence is not None and (table.timestamp is not None or table.rating is not None):
            raise ValueError("key 'interactions.sequence' excludes 'interactions.timestamp' and 'interactions.rating': "
                             "a sequence row orders its items by position and has one rating cell for all of them")
        if self.text_features is not None:
            features = self.text_features
            if not features.node_types:
                raise ValueError("key 'text_features.node_types' must name at least one node type, e.g. [item]")
            node_types = self.node_types()
            for node_type in features.node_types:
                if node_type not in node_types:
                    raise ValueError(f"key 'text_features.node_types' names '{node_type}', which is not a node type "
                                     f"of this graph{suggest(node_type, node_types)}; the recipe makes node types "
                                     f"{node_types}")
            if features.max_length < 1 or features.batch_size < 1:
                raise ValueError("keys 'text_features.max_length' and 'text_features.batch_size' must be at least 1")
            for node_type in ("user", "item"):
                table = self.users if node_type == "user" else self.items
                if node_type in features.node_types and (table is None or not table.text):
                    key = "users" if node_type == "user" else "items"
                    raise ValueError(f"key 'text_features.node_types' lists '{node_type}', so '{key}.text' must "
                                     f"give its text template, e.g. \"{{title}}\"")
        if self.item_entity is not None and self.kg is None:
            raise ValueError("key 'item_entity' links items to KG entities, so the recipe needs a 'kg' table too")

    def node_types(self) -> list[str]:
        """The node types the recipe's tables can make: user, item, every attribute field, and entity with a KG."""
        types = ["user", "item"]
        for table in (self.users, self.items):
            types += list(table.attributes) if table is not None else []
        types += [table.field for table in self.item_attributes]
        types += ["entity"] if self.kg is not None else []
        return list(dict.fromkeys(types))


def template_fields(template: str, key: str) -> list[str]:
    """The placeholder names of a ``str.format`` template; a malformed one raises ``ValueError`` naming ``key``."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key '{key}': {template!r} is not a valid template ({exc}); write a placeholder as "
                         f"{{column}} and a literal brace as {{{{ or }}}}") from None
    for _, name, _, conversion in parts:
        if conversion not in (None, "r", "s", "a"):
            raise ValueError(f"key '{key}': placeholder '{{{name}!{conversion}}}' has an unknown conversion "
                             f"'!{conversion}'; write {{{name}}}")
    return [name for _, name, _, _ in parts if name is not None]


def load_recipe(path_or_name: str | Path, recipes_dir: str | Path | None = None) -> tuple[Recipe, Path]:
    """Load a recipe by file path, or by name from the recipes folder (``graphs/<name>.yaml``)."""
    path = find_recipe(path_or_name, recipes_dir)
    return from_mapping(Recipe, load_yaml(path, "graph recipe"), str(path)), path


def find_recipe(path_or_name: str | Path, recipes_dir: str | Path | None = None) -> Path:
    candidate = Path(path_or_name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    folder = Path(recipes_dir) if recipes_dir else default_recipes_dir()
    path = folder / f"{path_or_name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"no graph recipe '{path_or_name}'{suggest(str(path_or_name), known)}; known recipes: {known}")
    return path


def default_recipes_dir() -> Path:
    """The built-in graph recipes: ``graphs/`` of a source checkout, shipped in the package as
    ``graphrec/resources/graphs`` (in a checkout a link to ``graphs/``, which this resolves to)."""
    return (Path(__file__).resolve().parents[1] / "resources" / "graphs").resolve()


def resolve_source(source: Source, data_root: Path, key: str) -> TableSource:
    """Resolve a recipe table's paths against the data root; relative paths may not escape it."""
    root = data_root.resolve()
    if not source.paths():
        raise ConfigError(f"recipe key '{key}.path' lists no file; name at least one")
    resolved = []
    for raw in source.paths():
        path = Path(raw)
        if path.is_absolute():
            resolved.append(path)
            continue
        full = Path(os.path.normpath(root / path))  # lexical: a symlinked dataset folder stays allowed
        if not full.is_relative_to(root):
            raise ConfigError(
                f"recipe key '{key}.path': '{raw}' points outside the data root {root}; "
                "use an absolute path if that is really meant"
            )
        resolved.append(full)
    return TableSource(
        path=tuple(resolved),
        format=source.format,
        sep=source.sep,
        header=source.header,
        names=tuple(source.names) if source.names else None,
        encoding=source.encoding,
    )
