"""Pictures of why an item was recommended: ``graphrec plot-path``.

:func:`plot_paths` draws a path-LM run's top-K explained recommendations for one user: the user on
the left, the recommended items on the right (ranked top to bottom), every node in the column of
its hop along the path, coloured by type, every edge labelled with its relation. A ``rev_``
relation is drawn as its forward relation with the arrow the other way, so that
``Heat -stars-> Al Pacino <-stars- Scarface`` reads as the knowledge graph states it.
:func:`plot_neighbourhood` draws the user's 1-2 hop neighbourhood in any run's training graph
the same way, one column per hop.

Both return the networkx graph that was drawn (see :func:`graphrec.graph.convert.path_to_networkx`
and :func:`graphrec.graph.convert.neighbourhood_graph`) with the matplotlib figure, rendered on an
Agg canvas (no display, no pyplot state) and written as a PNG atomically.
"""

from __future__ import annotations

import io
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable

import networkx as nx

from graphrec.errors import ConfigError, DataError
from graphrec.graph.convert import neighbourhood_graph, path_to_networkx
from graphrec.utils import atomic_write_bytes

# Node fill colours by type; other types take the rest of the palette in order of appearance.
TYPE_COLOURS = {"user": "#9ecae1", "item": "#fdae6b", "entity": "#a1d99b"}
PALETTE = ["#bcbddc", "#f4a6c8", "#fff59d", "#9edae5", "#d9d9d9", "#e7cb94", "#c49c94", "#dbdb8d"]


@dataclass
class Plot:
    """What was drawn: the networkx ``graph``, the matplotlib ``figure`` and the PNG ``path``."""

    graph: nx.MultiDiGraph
    figure: Any
    path: Path | None


def plot_paths(run, user_id: str, k: int = 5, out: str | os.PathLike | None = None) -> Plot:
    """Draw the explaining paths of a user's top-``k`` recommendations from a path-LM run.

    Args:
        run: a path-LM run folder or a loaded :class:`graphrec.explain.ExplainedRun`.
        user_id: the raw user id.
        k: recommendations to draw.
        out: the PNG to write (``None``: draw only).

    Raises:
        ConfigError: When the folder is not a run or not a path-LM run.
        DataError: When the user id is unknown.
    """
    from graphrec.explain.api import ExplainedRun, recommend_with_paths

    run = run if isinstance(run, ExplainedRun) else ExplainedRun(run)
    entry = recommend_with_paths(run, [user_id], k)[0]
    graph = nx.MultiDiGraph(user=str(user_id))
    graph.add_node(("user", str(user_id)), type="user", id=str(user_id), name=str(user_id), position=0)
    for row in entry["items"]:
        path_to_networkx(row["path"], graph, rank=row["rank"])
        graph.nodes[("item", row["item"])]["score"] = row["score"]
    last = max((attrs["position"] for _, attrs in graph.nodes(data=True)), default=0)
    layers = {node: last if attrs.get("end") else attrs["position"] for node, attrs in graph.nodes(data=True)}
    labels = {node: _node_label(attrs) for node, attrs in graph.nodes(data=True)}
    shown = len(entry["items"])
    title = (f"Why these items for user {user_id}: top {shown} recommendations and their paths" if shown
             else f"User {user_id}: no path reaches an unseen item")
    figure = draw_layered(graph, layers, labels, title, fixed={node: attrs["rank"] for node, attrs in
                                                               graph.nodes(data=True) if "rank" in attrs})
    return Plot(graph, figure, _save(figure, out))


def plot_neighbourhood(run_dir: str | os.PathLike, user_id: str, hops: int = 2, max_nodes: int = 30,
                       out: str | os.PathLike | None = None) -> Plot:
    """Draw a user's ``hops``-hop neighbourhood in a run's training graph (at most ``max_nodes`` nodes).

    Any run folder works: the graph is the one its model was trained on (training interactions and
    side edges; validation and test interactions are not in it). Only edges from one hop to the
    next are drawn; the returned graph is what was drawn (``graph.graph["hidden_edges"]`` counts
    the edges left out between nodes of the same hop).

    Raises:
        ConfigError: When the folder is not a run, or ``hops``/``max_nodes`` are out of range.
        DataError: When the user id is unknown.
    """
    from graphrec.pipeline import load_run_data

    if not 1 <= hops <= 3:
        raise ConfigError(f"--hops must be 1, 2 or 3, found {hops}")
    if max_nodes < 2:
        raise ConfigError(f"--max-nodes must be at least 2, found {max_nodes}")
    _, data = load_run_data(run_dir)
    idmap = data.bundle.idmap
    user = idmap.index_of("user", str(user_id))
    train = data.bundle.message_passing_graph(data.split.train)
    graph = neighbourhood_graph(train, "user", user, hops=hops, max_nodes=max_nodes, idmap=idmap)
    layers = {node: attrs["hop"] for node, attrs in graph.nodes(data=True)}
    # edges between nodes of one hop (a friend who also watched the film) would make a hairball
    lateral = [(u, v, key) for u, v, key in graph.edges(keys=True) if layers[u] == layers[v]]
    graph.remove_edges_from(lateral)
    graph.graph["hidden_edges"] = len(lateral)
    labels = {node: _node_label(attrs) for node, attrs in graph.nodes(data=True)}
    title = f"User {user_id}: {hops}-hop neighbourhood in the training graph ({graph.number_of_nodes()} nodes)"
    if lateral:
        title += f"\n{len(lateral)} edges between nodes of the same hop not drawn"
    figure = draw_layered(graph, layers, labels, title, edge_labels=graph.number_of_edges() <= 40)
    return Plot(graph, figure, _save(figure, out))


def draw_layered(graph: nx.MultiDiGraph, layers: dict[Hashable, int], labels: dict[Hashable, str], title: str,
                 fixed: dict[Hashable, float] | None = None, edge_labels: bool = True):
    """A matplotlib figure of ``graph`` with nodes in columns by ``layers``, left to right.

    Nodes are boxes with their ``labels``, filled by node type. ``fixed`` ranks nodes of the last
    column (recommended items); the rows are then chosen so that the last hops do not cross and
    the rest by the barycentre heuristic (see :func:`_order`). Edges carry their relation name,
    or, without ``edge_labels``, a colour per relation with a legend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = _order(graph, layers, fixed or {})
    tallest = max((len(column) for column in rows.values()), default=1)
    width = max(6.0, 2.9 * len(rows) + 0.8)
    figure = Figure(figsize=(width, max(3.0, 0.62 * tallest + 1.6)), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    axis.set_axis_off()
    position = {node: (column, (len(nodes) - 1) / 2 - row)
                for column, nodes in rows.items() for row, node in enumerate(nodes)}
    colours = _type_colours(graph)
    boxes = {}
    for node, (x, y) in position.items():
        kind = graph.nodes[node]["type"]
        boxes[node] = axis.text(x, y, labels[node], ha="center", va="center", fontsize=8, zorder=3,
                                bbox={"boxstyle": "round,pad=0.35", "facecolor": colours[kind],
                                      "edgecolor": "#555555", "linewidth": 0.8})
    # every edge in the knowledge graph's direction: rev_r from a to b is r from b to a
    edges = list(dict.fromkeys(_forward(head, tail, attrs["relation"]) for head, tail, attrs in graph.edges(data=True)))
    relations = sorted({name for _, _, name in edges})
    relation_colours = {name: f"C{i % 10}" for i, name in enumerate(relations)}
    present, drawn = set(edges), set()
    for source, target, name in edges:
        both = (target, source, name) in present  # a symmetric relation (follows): one two-headed line
        if both and (target, source, name) in drawn:
            continue
        drawn.add((source, target, name))
        _arrow(axis, boxes[source], boxes[target], position[source], position[target], both,
               "#666666" if edge_labels else relation_colours[name])
        if edge_labels:  # nearer the end with fewer edges, where edges fan out and labels do not collide
            (x1, y1), (x2, y2) = position[source], position[target]
            towards = {1: 0.62, -1: 0.38, 0: 0.5}[(graph.degree(source) > graph.degree(target))
                                                  - (graph.degree(source) < graph.degree(target))]
            axis.text(x1 + towards * (x2 - x1) + (0.3 if x1 == x2 else 0), y1 + towards * (y2 - y1),
                      name.replace("_", " "),
                      ha="center", va="center", fontsize=6.5, color="#333333", zorder=2,
                      bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    handles = [Patch(facecolor=colour, edgecolor="#555555", label=kind) for kind, colour in colours.items()]
    if not edge_labels:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color=relation_colours[name], label=name.replace("_", " ")) for name in relations]
    axis.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 6),
                fontsize=7, frameon=False)
    half = (tallest - 1) / 2 + 0.6
    axis.set_xlim(-0.55, max(rows, default=0) + 0.55)
    axis.set_ylim(-half, half)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------- helpers
def _node_label(attrs: dict) -> str:
    """The node's name on at most two lines; ``user`` before a user, ``#rank`` before a recommended item."""
    name = str(attrs["name"]) or str(attrs.get("id", ""))
    name = name if " " in name else name.replace("_", " ")  # resource ids: Al_Pacino, as PathRenderer does
    name = f"user {name}" if attrs["type"] == "user" else name
    name = f"#{attrs['rank']} {name}" if "rank" in attrs else name
    return "\n".join(textwrap.wrap(name, 22, max_lines=2, placeholder="…"))


def _forward(head, tail, relation) -> tuple:
    """``(source, target, relation name)`` in the stored direction: ``rev_r`` from a to b is ``r`` from b to a."""
    name = relation[1] if isinstance(relation, tuple) else str(relation)
    return (tail, head, name[4:]) if name.startswith("rev_") else (head, tail, name)


def _type_colours(graph: nx.MultiDiGraph) -> dict[str, str]:
    kinds = list(dict.fromkeys(attrs["type"] for _, attrs in graph.nodes(data=True)))
    others = iter(PALETTE * (len(kinds) // len(PALETTE) + 1))
    return {kind: TYPE_COLOURS.get(kind) or next(others) for kind in kinds}


def _order(graph: nx.MultiDiGraph, layers: dict, fixed: dict) -> dict[int, list]:
    """Nodes of each column, top to bottom.

    Without ``fixed`` the first column is sorted by type and name and each next one by the
    barycentre of its nodes' neighbours in the column before. With ``fixed`` (ranks of nodes in the
    last column) the column before the last is sorted by the best rank each node leads to, the last
    by the barycentre of its nodes' neighbours there (then rank), so a path's last hop never
    crosses another's, and the columns further left by barycentre, right to left.
    """
    columns: dict[int, list] = {}
    for node in graph:
        columns.setdefault(layers[node], []).append(node)
    columns = dict(sorted(columns.items()))
    undirected = graph.to_undirected(as_view=True)

    def by_barycentre(column: int, reference: int, then=lambda node: _text_key(graph, node)) -> None:
        row = {node: index for index, node in enumerate(columns[reference])}

        def key(node):
            near = [row[n] for n in undirected.neighbors(node) if n in row]
            return (sum(near) / len(near) if near else float("inf"), then(node))

        columns[column] = sorted(columns[column], key=key)

    order = list(columns)
    if fixed and len(order) > 1:
        last, before = order[-1], order[-2]
        best = {node: min((fixed[n] for n in undirected.neighbors(node) if n in fixed), default=float("inf"))
                for node in columns[before]}
        columns[before] = sorted(columns[before], key=lambda node: (best[node], _text_key(graph, node)))
        by_barycentre(last, before, then=lambda node: (fixed.get(node, float("inf")), _text_key(graph, node)))
        for column, reference in zip(order[-3::-1], order[-2::-1]):
            by_barycentre(column, reference)
    elif order:
        columns[order[0]] = sorted(columns[order[0]], key=lambda node: _text_key(graph, node))
        for column, reference in zip(order[1:], order):
            by_barycentre(column, reference)
    return columns


def _text_key(graph: nx.MultiDiGraph, node) -> tuple:
    attrs = graph.nodes[node]
    return attrs["type"], str(attrs["name"])


def _arrow(axis, source_box, target_box, source_xy, target_xy, both: bool, colour: str) -> None:
    """An arrow from one node's box to another's: side to side across columns, an arc within one."""
    (x1, y1), (x2, y2) = source_xy, target_xy
    if x1 == x2:  # same column: leave and enter on the right, bowing outwards
        start, end, style = (1.0, 0.5), (1.0, 0.5), f"arc3,rad={-0.6 if y2 < y1 else 0.6}"
    else:
        start, end, style = ((1.0, 0.5), (0.0, 0.5), "arc3") if x1 < x2 else ((0.0, 0.5), (1.0, 0.5), "arc3")
    axis.annotate("", xy=end, xycoords=target_box, xytext=start, textcoords=source_box, zorder=1,
                  arrowprops={"arrowstyle": "<|-|>" if both else "-|>", "color": colour, "linewidth": 0.9,
                              "alpha": 0.75, "shrinkA": 4, "shrinkB": 4, "mutation_scale": 9, "connectionstyle": style})


def _save(figure, out: str | os.PathLike | None) -> Path | None:
    if out is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        raise DataError(f"cannot write the plot to {out}: {exc.strerror or exc}") from None
    return Path(out)


def default_plot_name(user_id: str, neighbourhood: bool = False) -> str:
    """``path-<user>.png`` (``neighbourhood-<user>.png``), the user id made safe for a file name."""
    safe = re.sub(r"[^\w.-]", "_", str(user_id))
    return f"{'neighbourhood' if neighbourhood else 'path'}-{safe}.png"
