"""Paths written as sentences: recipe phrases, the generic fallback, names."""

import numpy as np

from graphrec.data.idmap import IdMap
from graphrec.explain import PathRenderer
from graphrec.graph.paths import PathGraph

STARS = np.array([[0, 1], [0, 0]])


def renderer(phrases=None) -> PathRenderer:
    idmap = IdMap()
    idmap.add("user", ["7"])
    idmap.set_names("item", idmap.add("item", ["m1", "m2"]), ["Heat (1995)", "Scarface (1983)"])
    idmap.set_names("entity", idmap.add("entity", ["e1"]), ["Al_Pacino"])
    edges = {("user", "interacts", "item"): np.array([[0], [0]]), ("item", "starred_by_actor", "entity"): STARS,
             ("entity", "rev_starred_by_actor", "item"): STARS[::-1]}
    graph = PathGraph.from_edges({"user": 1, "item": 2, "entity": 1}, edges, np.array([[0], [0]]))
    return PathRenderer(graph, idmap, phrases)


def path(r: PathRenderer):
    rel = [r.graph.relations.index(e) for e in [("user", "interacts", "item"), ("item", "starred_by_actor", "entity"),
                                              ("entity", "rev_starred_by_actor", "item")]]
    return [0, 1, 3, 2], rel  # user 7 -> Heat -> Al Pacino -> Scarface


def test_recipe_phrases():
    r = renderer({"interacts": ["You watched {tail}."],
                  "starred_by_actor": ["{head} stars {tail}.", "{head} also stars in {tail}."]})
    assert r.sentence(*path(r)) == ("You watched *Heat (1995)*. *Heat (1995)* stars Al Pacino. "
                                    "Al Pacino also stars in *Scarface (1983)*.")


def test_generic_phrases_read_the_relation_name():
    r = renderer()
    assert r.sentence(*path(r)) == ("You interacted with *Heat (1995)*. *Heat (1995)* starred by actor Al Pacino. "
                                    "*Scarface (1983)* also starred by actor Al Pacino.")
    # a forward-only phrase falls back to the generic reverse sentence
    r = renderer({"starred_by_actor": ["{head} stars {tail}."]})
    assert r.sentence(*path(r)).endswith("*Scarface (1983)* also starred by actor Al Pacino.")


def test_json_steps():
    r = renderer()
    steps = r.as_json(*path(r))
    assert steps[0] == {"type": "user", "id": "7", "name": "7"}
    assert steps[1] == {"relation": "interacts"}
    assert steps[4] == {"type": "entity", "id": "e1", "name": "Al Pacino"}
    assert steps[-1]["id"] == "m2" and len(steps) == 7
