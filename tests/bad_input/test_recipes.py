"""Malformed graph recipes, and good recipes over inconsistent files, through ``load_recipe`` and ``build``.

A recipe mistake (an unknown key, a wrong type, an unknown node type, a broken template) is a
:class:`ConfigError` naming the recipe file and the dotted key; a file that does not fit the recipe
(a duplicate id, an id no table defines, a missing column) is a :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import logging

import pytest

from graphrec.errors import ConfigError, DataError
from graphrec.graph import build, load_recipe
from tests.bad_input.conftest import tiny_recipe, write

MINIMAL = "name: x\ninteractions:\n  path: interactions.csv\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(MINIMAL + "  timestmp: ts\n",
                     r"r\.yaml: unknown key 'interactions\.timestmp' \(did you mean 'timestamp'\?\)",
                     id="misspelled-key"),
        pytest.param(MINIMAL + "  header: yes please\n",
                     r"r\.yaml: key 'interactions\.header' must be true or false, found str 'yes please'",
                     id="wrong-type-bool"),
        pytest.param(MINIMAL + "  min_rating: .nan\n", r"r\.yaml: key 'interactions\.min_rating' must be a finite number",
                     id="nan-threshold"),
        pytest.param(MINIMAL + "item_attributes:\n  - path: tags.csv\n    node: items\n",
                     r"r\.yaml: key 'item_attributes\[0\]\.node' is 'items' \(did you mean 'item'\?\)",
                     id="unknown-owner-node-type"),
        pytest.param(MINIMAL + "items:\n  path: items.csv\n  text: '{title}'\n"
                               "text_features:\n  node_types: [item, movie]\n",
                     r"r\.yaml: key 'text_features\.node_types' names 'movie', which is not a node type of this graph; "
                     r"the recipe makes node types \['user', 'item'\]", id="unknown-text-node-type"),
        pytest.param(MINIMAL + "items:\n  path: items.csv\n  attributes:\n    release year: year\n",
                     r"r\.yaml: attribute field 'release year' must be a name of letters, digits and '_'",
                     id="attribute-field-with-space"),
        pytest.param(MINIMAL + "items:\n  path: items.csv\n  text: '{title'\n",
                     r"r\.yaml: key 'items\.text': '\{title' is not a valid template \(expected '\}' before end of "
                     r"string\)", id="text-template-unclosed"),
        pytest.param(MINIMAL + "items:\n  path: items.csv\n  text: '{} ({year})'\n",
                     r"r\.yaml: key 'items\.text': placeholder '\{\}' must name a column", id="text-template-positional"),
        pytest.param(MINIMAL + "users:\n  path: users.csv\n  text: '{name!x}'\n",
                     r"r\.yaml: key 'users\.text': placeholder '\{name!x\}' has an unknown conversion '!x'",
                     id="text-template-bad-conversion"),
        pytest.param(MINIMAL + "phrases:\n  starring: ['{head} stars {tail']\n",
                     r"r\.yaml: key 'phrases\.starring': '\{head\} stars \{tail' is not a valid template",
                     id="phrase-template-unclosed"),
        pytest.param(MINIMAL + "phrases:\n  starring: ['{head} stars {actor}']\n",
                     r"r\.yaml: key 'phrases\.starring': placeholder '\{actor\}' is not one of \{head\}, \{tail\}",
                     id="phrase-unknown-placeholder"),
        pytest.param(MINIMAL + "name: y\n", r"r\.yaml:4:1: malformed YAML \(key 'name' is given twice \(first on line 1\)",
                     id="duplicate-key"),
        pytest.param("- name: x\n", r"r\.yaml: graph recipe must be a mapping of keys to values, found list",
                     id="top-level-list"),
        pytest.param("name: x\ninteractions:\n  path: interactions.csv\n\tuser: u\n", r"r\.yaml:4:1: malformed YAML",
                     id="tab-indentation"),
    ],
)
def test_bad_recipe_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(write(tmp_path / "r.yaml", text))


def test_recipe_not_utf8(tmp_path):
    with pytest.raises(ConfigError, match=r"r\.yaml: graph recipe is not UTF-8 text"):
        load_recipe(write(tmp_path / "r.yaml", b"name: caf\xe9\ninteractions:\n  path: a.csv\n"))


def test_recipes_that_include_each_other_are_refused_at_once(tmp_path):
    """Recipes have no include mechanism: 'include' is an unknown key, so a cycle of includes cannot loop."""
    write(tmp_path / "b.yaml", "include: a.yaml\n" + MINIMAL)
    with pytest.raises(ConfigError, match=r"a\.yaml: unknown key 'include'; valid keys here: name, interactions"):
        load_recipe(write(tmp_path / "a.yaml", "include: b.yaml\n" + MINIMAL))


def test_unknown_recipe_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"no graph recipe 'lastfm' .*known recipes: \[.*'lastfm-2k'"):
        load_recipe("lastfm")


def test_empty_path_list(tmp_path):
    recipe, _ = load_recipe(write(tmp_path / "r.yaml", "name: x\ninteractions:\n  path: []\n"))
    with pytest.raises(ConfigError, match=r"recipe key 'interactions\.path' lists no file; name at least one"):
        build(recipe, tmp_path)


def test_text_template_with_a_numeric_format_spec(tmp_path):
    recipe = tiny_recipe(tmp_path, edits=(('text: "{title}"', 'text: "{title:d}"'),))
    with pytest.raises(ConfigError, match=r"recipe key 'items\.text': cannot fill '\{title:d\}' with the values of "
                                          r".*items\.csv:2 \(Unknown format code 'd'"):
        build(load_recipe(recipe)[0], tmp_path)


# ------------------------------------------------------------------------------------------------ files vs recipe
INTERACTIONS = "user,item,rating,timestamp\n"


@pytest.mark.parametrize(
    ("files", "edits", "message"),
    [
        pytest.param({"items.csv": "item,title,genres\ni1,Heat,Action\ni2,Up,Drama\ni3,Alien,Horror\ni2,Up 2,Drama\n"},
                     (), r"items\.csv:5: item id 'i2' appears twice in column 'item' \(ids in a item table must be "
                         r"unique\)", id="duplicate-item-id"),
        pytest.param({"interactions.csv": INTERACTIONS + "u1,i1,5,1\nu2,i7,4,2\n"}, (),
                     r"interactions\.csv:3: column 'item' has item id 'i7' that the items table does not define "
                     r"\(1 such rows\); fix the file or set on_unknown_id: drop under 'interactions'",
                     id="interaction-with-unknown-item"),
        pytest.param({"interactions.csv": INTERACTIONS + "u1,i1,5,1\nu2 ,i2,4,2\n"}, (),
                     r"interactions\.csv:3: column 'user' has user id 'u2 ' that the users table does not define "
                     r"\(note the spaces around it: 'u2' is defined", id="id-with-trailing-space"),
        pytest.param({"social.csv": "user,friend\nu1,u2\nu3,u8\n"}, (),
                     r"social\.csv:3: column 'friend' has user id 'u8' that the users table does not define",
                     id="friend-unknown"),
        pytest.param({"kg.tsv": "head\trelation\ttail\ne_heat\tfilm.starring\te_deniro\n"}, (),
                     r"kg\.tsv:2: column 'tail' has entity id 'e_deniro' that kg\.entity_names does not define",
                     id="kg-entity-unnamed"),
        pytest.param({"interactions.csv": INTERACTIONS + "u1,i1,,1\n"}, (),
                     r"interactions\.csv:2: column 'rating' is empty", id="empty-rating-cell"),
        pytest.param({"interactions.csv": INTERACTIONS + "u1,i1,5,1\nu2,i2,-inf,2\n"}, (),
                     r"interactions\.csv:3: column 'rating' has '-inf', which is not a finite number",
                     id="minus-inf-rating"),
        pytest.param({"interactions.csv": INTERACTIONS + "u1,i1,5,1\nu2,i2,4,-20\n"}, (),
                     r"interactions\.csv:3: column 'timestamp' has '-20'; it must not be negative",
                     id="negative-timestamp"),
        pytest.param({}, (("  timestamp: timestamp\n", "  timestamp: time\n"),),
                     r"interactions\.csv: no column 'time' \(named by recipe key interactions\) .*the file has columns "
                     r"\['user', 'item', 'rating', 'timestamp'\]", id="recipe-names-missing-column"),
        pytest.param({}, (("  rating: rating\n", "  min_rating: 4\n"),),
                     r"recipe key 'interactions\.min_rating' needs 'interactions\.rating' to name a column",
                     id="min-rating-without-rating"),
        pytest.param({}, (("  timestamp: timestamp\n", "  timestamp: timestamp\n  split_by_file: [train, test]\n"),),
                     r"recipe key 'interactions\.split_by_file': 2 labels for 1 files", id="split-labels-per-file"),
        pytest.param({"descriptions.csv": "item,blurb\ni1,a\ni1,b\n"},
                     (('  text: "{title}"\n', '  text: "{title}"\n  join:\n    - {path: descriptions.csv, column: item, '
                                              'key: item}\n'),),
                     r"descriptions\.csv:3: key 'i1' appears twice in column 'item' \(a joined table needs one row per "
                     r"key; recipe key items\.join\[0\]\)", id="join-key-twice"),
        pytest.param({"users.csv": "user,occupation\nu1,artist\nu2,engineer\nu3,artist\nu4\n"}, (),
                     r"users\.csv: line 5: expected 2 fields, found 1", id="users-file-truncated"),
        pytest.param({"item_entity.tsv": "item,entity\ni1,e_heat\n"}, (),
                     r"item_entity\.tsv:1: the header has a single column 'item,entity' that contains a comma",
                     id="tsv-written-with-commas"),
    ],
)
def test_files_that_do_not_fit_the_recipe(tmp_path, files, edits, message):
    recipe = tiny_recipe(tmp_path, edits=edits, **files)
    with pytest.raises(DataError, match=message):
        build(load_recipe(recipe)[0], tmp_path)


def test_every_row_dropped_leaves_no_interactions(tmp_path):
    recipe = tiny_recipe(tmp_path, "on_unknown_id: drop\n", **{"interactions.csv": INTERACTIONS + "u9,i1,5,1\n"})
    with pytest.raises(DataError, match=r"interactions\.csv: no interactions left after filtering"):
        build(load_recipe(recipe)[0], tmp_path)


def test_unknown_ids_dropped_on_request_are_counted(tmp_path, caplog):
    recipe = tiny_recipe(tmp_path, "on_unknown_id: drop\n",
                         **{"interactions.csv": INTERACTIONS + "u1,i1,5,1\nu9,i1,5,2\nu2,i99,5,3\n"})
    with caplog.at_level(logging.WARNING, logger="graphrec"):
        bundle = build(load_recipe(recipe)[0], tmp_path)
    assert bundle.dropped == {"interactions": 2}
    assert len(bundle.interactions.user) == 1
    assert "interactions: dropped 1 rows whose user id is not defined by the users table" in caplog.text


def test_duplicate_interaction_rows_keep_the_latest(tmp_path):
    """Documented in the builder: one interaction per (user, item), the latest row (by timestamp) wins."""
    recipe = tiny_recipe(tmp_path, **{"interactions.csv": INTERACTIONS + "u1,i1,2,300\nu1,i1,5,100\nu1,i1,2,300\n"
                                                                       "u2,i2,4,50\n"})
    bundle = build(load_recipe(recipe)[0], tmp_path)
    pairs = {(bundle.idmap.raw("user", u), bundle.idmap.raw("item", i)): (r, t) for u, i, r, t in zip(
        bundle.interactions.user, bundle.interactions.item, bundle.interactions.rating, bundle.interactions.timestamp)}
    assert pairs == {("u1", "i1"): (2.0, 300.0), ("u2", "i2"): (4.0, 50.0)}


def test_bom_and_crlf_through_the_whole_build(tmp_path):
    text = "\ufeffuser,item,rating,timestamp\r\nu1,i1,5,100\r\nu2,i2,4,101\r\n"
    recipe = tiny_recipe(tmp_path)
    (tmp_path / "interactions.csv").write_bytes(text.encode("utf-8"))
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert len(bundle.interactions.user) == 2
    assert bundle.interactions.timestamp.tolist() == [100.0, 101.0]  # '101\r' would not be a number


# ------------------------------------------------------------------------------------------------ pretext recipes
def test_pretext_recipe_with_an_unknown_node_type(tmp_path):
    from graphrec.pretext.recipe import build_multitask, load_pretext_recipe

    bundle = build(load_recipe(tiny_recipe(tmp_path / "data"))[0], tmp_path / "data")
    pretext = load_pretext_recipe(write(tmp_path / "p.yaml", "tasks:\n  masked_node: {node_type: movie}\n"))
    with pytest.raises(ConfigError, match=r"p\.yaml: key 'tasks\.masked_node\.node_type' is 'movie', which is not in "
                                          r"the graph; node types: \["):
        build_multitask(pretext, bundle.graph, embedding_dim=8)
