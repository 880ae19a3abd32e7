"""Paths as sentences: "You watched *Heat (1995)*. *Heat (1995)* stars Al Pacino. Al Pacino also stars in ..."

Each hop becomes one sentence from a phrase with ``{head}`` and ``{tail}`` placeholders. A graph
recipe can give phrases per relation under ``phrases:`` (``[forward]`` or ``[forward, reverse]``;
the reverse phrase is used for the ``rev_`` edge); other relations read their name:
``{head} starred by actor {tail}.`` forward and ``{tail} also starred by actor {head}.`` reverse.
Items are set in ``*italics*``; names written as resource ids (``Al_Pacino``) get their spaces back.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from graphrec.data.idmap import IdMap
from graphrec.graph.paths import PathGraph

DEFAULT_PHRASES = {"interacts": ["You interacted with {tail}."]}


class PathRenderer:
    """Turns ``(nodes, relations)`` paths of a :class:`PathGraph` into text and JSON.

    Args:
        graph: the path graph (node-type layout and relations).
        idmap: raw ids and display names of the nodes.
        phrases: relation name -> ``[forward]`` or ``[forward, reverse]`` phrase templates.
    """

    def __init__(self, graph: PathGraph, idmap: IdMap, phrases: Mapping[str, Sequence[str]] | None = None) -> None:
        self.graph, self.idmap = graph, idmap
        self.phrases = {**DEFAULT_PHRASES, **dict(phrases or {})}

    def node(self, node: int) -> dict[str, str]:
        """``{"type", "id", "name"}`` of a global node id."""
        type_pos, local = self.graph.local(np.asarray([node]))
        node_type = self.graph.node_types[int(type_pos[0])]
        name = self.idmap.name(node_type, int(local[0]))
        if " " not in name:
            name = name.replace("_", " ")
        return {"type": node_type, "id": self.idmap.raw(node_type, int(local[0])), "name": name}

    def label(self, node: int) -> str:
        info = self.node(node)
        return f"*{info['name']}*" if info["type"] == "item" else info["name"]

    def hop(self, head: int, relation: int, tail: int) -> str:
        """One sentence for the edge ``head -relation-> tail``."""
        name = self.graph.relations[relation][1]
        reverse = name.startswith("rev_")
        base = name[4:] if reverse else name
        words = base.replace("_", " ")
        templates = self.phrases.get(base)
        if templates and (not reverse or len(templates) > 1):
            template = templates[1] if reverse else templates[0]
        else:
            template = f"{{tail}} also {words} {{head}}." if reverse else f"{{head}} {words} {{tail}}."
        return template.format(head=self.label(head), tail=self.label(tail))

    def sentence(self, nodes: Sequence[int], relations: Sequence[int]) -> str:
        """The whole path as sentences, one per hop."""
        return " ".join(self.hop(int(nodes[h]), int(relations[h]), int(nodes[h + 1])) for h in range(len(relations)))

    def as_json(self, nodes: Sequence[int], relations: Sequence[int]) -> list[dict[str, Any]]:
        """Alternating node and relation entries, for machines."""
        steps: list[dict[str, Any]] = [self.node(int(nodes[0]))]
        for h, relation in enumerate(relations):
            steps.append({"relation": self.graph.relations[int(relation)][1]})
            steps.append(self.node(int(nodes[h + 1])))
        return steps
