import textwrap

import numpy as np
import pytest
import torch

from graphrec.data.splits import leave_one_out, split_interactions
from graphrec.errors import ConfigError, DataError
from graphrec.graph import INTERACTS, REV_INTERACTS, GraphBundle, build, load_graph, load_recipe
from tests.conftest import write_tiny


def edges(bundle, edge_type):
    """The edges of a type as a set of (raw source id, raw target id)."""
    src_type, _, dst_type = edge_type
    pairs = bundle.graph[edge_type].edge_index.t().tolist()
    return {(bundle.idmap.raw(src_type, s), bundle.idmap.raw(dst_type, d)) for s, d in pairs}


def test_tiny_graph_has_every_node_and_edge_type(tiny):
    recipe, _ = load_recipe(tiny)
    bundle = build(recipe, tiny.parent)
    counts = {t: bundle.idmap.num_nodes(t) for t in bundle.graph.node_types}
    # Item-linked KG entities (e_heat, e_scarface, e_toy) are merged into their items.
    assert counts == {"user": 4, "occupation": 3, "item": 5, "genre": 5, "tag": 3, "entity": 4}
    assert len(bundle.interactions) == 10
    assert edges(bundle, ("item", "has_genre", "genre")) == {
        ("i1", "Action"), ("i1", "Crime"), ("i2", "Crime"), ("i2", "Drama"),
        ("i3", "Animation"), ("i4", "Animation"), ("i4", "Drama"), ("i5", "Horror")}
    assert edges(bundle, ("item", "has_tag", "tag")) == {("i1", "heist"), ("i2", "gangster"), ("i1", "gangster"),
                                                          ("i3", "pixar")}
    assert edges(bundle, ("user", "follows", "user")) == {("u1", "u3"), ("u3", "u1"), ("u2", "u4"), ("u4", "u2")}
    assert edges(bundle, ("item", "film_starring", "entity")) == {("i1", "e_pacino"), ("i2", "e_pacino")}
    assert edges(bundle, ("item", "film_directed_by", "entity")) == {("i1", "e_mann"), ("i3", "e_lasseter")}
    assert edges(bundle, ("entity", "person_born_in", "entity")) == {("e_pacino", "e_nyc")}
    assert bundle.idmap.relation_names["film_starring"] == "film.starring"


def test_reverse_edges_mirror_forward_edges(tiny):
    bundle = build(load_recipe(tiny)[0], tiny.parent)
    for src, rel, dst in bundle.graph.edge_types:
        if rel.startswith("rev_"):
            forward = bundle.graph[dst, rel[4:], src].edge_index
            assert torch.equal(bundle.graph[src, rel, dst].edge_index.flip(0).unique(dim=1), forward.unique(dim=1))
    assert ("user", "rev_follows", "user") not in bundle.graph.edge_types  # symmetric social has no reverse type


def test_names_and_texts(tiny):
    bundle = build(load_recipe(tiny)[0], tiny.parent)
    item = bundle.idmap.index_of("item", "i2")
    assert bundle.idmap.name("item", item) == "Scarface"
    assert bundle.texts["item"][item] == "Scarface"
    pacino = bundle.idmap.index_of("entity", "e_pacino")
    assert bundle.idmap.name("entity", pacino) == "Al Pacino"
    assert bundle.idmap.name("user", 0) == "u1"  # no name column: the raw id


def test_duplicate_interactions_keep_the_latest(tmp_path):
    recipe = write_tiny(tmp_path, **{"interactions.csv": """\
        user,item,rating,timestamp
        u1,i1,1,200
        u1,i1,5,100
        u2,i2,3,50
        """})
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert len(bundle.interactions) == 2
    row = int(np.flatnonzero(bundle.interactions.user == bundle.idmap.index_of("user", "u1"))[0])
    assert bundle.interactions.rating[row] == 1.0  # timestamp 200 is the later one


def test_unknown_id_is_an_error_by_default(tmp_path):
    recipe = write_tiny(tmp_path, **{"social.csv": "user,friend\nu1,u3\nu1,u99\n"})
    with pytest.raises(DataError, match=r"social.csv:3: column 'friend' has user id 'u99' that the users .*"
                                        r"on_unknown_id: drop"):
        build(load_recipe(recipe)[0], tmp_path)


def test_unknown_id_drop_policy_counts_and_warns(tmp_path, caplog):
    recipe = write_tiny(tmp_path, recipe_extra="on_unknown_id: drop\n",
                        **{"social.csv": "user,friend\nu1,u3\nu1,u99\nu77,u2\n"})
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert bundle.dropped == {"social": 2}
    assert edges(bundle, ("user", "follows", "user")) == {("u1", "u3"), ("u3", "u1")}
    assert "dropped 1 rows" in caplog.text


def test_interaction_with_unknown_item(tmp_path):
    recipe = write_tiny(tmp_path, **{"interactions.csv": "user,item,rating,timestamp\nu1,i1,5,1\nu2,i42,3,2\n"})
    with pytest.raises(DataError, match=r"interactions.csv:3: column 'item' has item id 'i42'"):
        build(load_recipe(recipe)[0], tmp_path)


def test_message_passing_graph_holds_training_interactions_only(tiny):
    """No validation or test interaction may appear in any user-item edge type used for propagation."""
    bundle = build(load_recipe(tiny)[0], tiny.parent)
    inter = bundle.interactions
    split = split_interactions("random", inter.user, inter.item, inter.timestamp, (0.6, 0.2, 0.2), seed=0)
    assert len(split.valid) + len(split.test) > 0
    graph = bundle.message_passing_graph(split.train)
    held_out = {(int(inter.user[r]), int(inter.item[r])) for r in np.concatenate([split.valid, split.test])}
    train = {(int(inter.user[r]), int(inter.item[r])) for r in split.train}
    for src, rel, dst in graph.edge_types:
        pairs = graph[src, rel, dst].edge_index.t().tolist()
        if (src, dst) == ("user", "item"):
            assert not held_out & {tuple(p) for p in pairs}, (src, rel, dst)
        if (src, dst) == ("item", "user"):
            assert not held_out & {(u, i) for i, u in pairs}, (src, rel, dst)
    assert {tuple(p) for p in graph[INTERACTS].edge_index.t().tolist()} == train
    assert {(u, i) for i, u in graph[REV_INTERACTS].edge_index.t().tolist()} == train
    assert INTERACTS not in bundle.graph.edge_types  # the stored side graph never holds interactions


def test_cache_round_trip_and_reuse(tiny, cache_dir):
    first = load_graph(tiny, tiny.parent, cache_dir)
    entries = list(cache_dir.iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    second = load_graph(tiny, tiny.parent, cache_dir)
    assert second.idmap.to_dict() == first.idmap.to_dict()
    assert set(second.graph.edge_types) == set(first.graph.edge_types)
    for edge_type in first.graph.edge_types:
        assert torch.equal(second.graph[edge_type].edge_index, first.graph[edge_type].edge_index)
    np.testing.assert_array_equal(second.interactions.item, first.interactions.item)
    assert second.texts == first.texts


def test_cache_is_rebuilt_when_a_file_changes(tiny, cache_dir):
    load_graph(tiny, tiny.parent, cache_dir)
    with open(tiny.parent / "interactions.csv", "a") as handle:
        handle.write("u2,i5,3,200\n")
    bundle = load_graph(tiny, tiny.parent, cache_dir)
    assert len(bundle.interactions) == 11
    assert len(list(cache_dir.iterdir())) == 2


def test_corrupt_cache_entry_is_rebuilt(tiny, cache_dir):
    load_graph(tiny, tiny.parent, cache_dir)
    entry = next(cache_dir.iterdir())
    (entry / "graph.safetensors").write_bytes(b"\x00\x01 not safetensors")
    bundle = load_graph(tiny, tiny.parent, cache_dir)
    assert len(bundle.interactions) == 10
    assert GraphBundle.load(entry).num_items == 5  # the entry was rewritten


def test_node_table_from_several_files_keeps_each_rows_attributes(tmp_path):
    recipe = write_tiny(tmp_path, **{
        "items.csv": "item,title,genres\ni1,Heat,Action|Crime\ni2,Scarface,Drama\n",
        "items2.csv": "item,title,genres\ni3,Toy Story,Animation\ni4,Up,\ni5,,Horror|Drama\n",
    })
    recipe.write_text(recipe.read_text().replace("  path: items.csv", "  path: [items.csv, items2.csv]"))
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert edges(bundle, ("item", "has_genre", "genre")) == {
        ("i1", "Action"), ("i1", "Crime"), ("i2", "Drama"), ("i3", "Animation"), ("i5", "Horror"), ("i5", "Drama")}
    # An empty title or genre cell is simply absent: i4 has no genre, i5 is shown by its id.
    assert bundle.idmap.name("item", bundle.idmap.index_of("item", "i5")) == "i5"


def test_min_rating_applies_to_the_latest_row(tmp_path):
    recipe = write_tiny(tmp_path, recipe_extra="", **{"interactions.csv": """\
        user,item,rating,timestamp
        u1,i1,5,100
        u1,i1,1,200
        u2,i2,4,50
        """})
    recipe.write_text(recipe.read_text().replace("  timestamp: timestamp\n", "  timestamp: timestamp\n  min_rating: 3\n", 1))
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert len(bundle.interactions) == 1  # u1's latest rating of i1 is 1, below the threshold


GIVEN_SPLIT = """\
    name: tiny-given
    interactions:
      path: [train.csv, valid.csv, test.csv]
      split_by_file: [train, valid, test]
    """


def test_split_by_file_keeps_the_datas_own_split(tmp_path, cache_dir):
    (tmp_path / "train.csv").write_text("user,item\nu1,i1\nu1,i2\nu2,i1\n")
    (tmp_path / "valid.csv").write_text("user,item\nu1,i3\n")
    (tmp_path / "test.csv").write_text("user,item\nu2,i3\nu2,i4\n")
    recipe = tmp_path / "given.yaml"
    recipe.write_text(textwrap.dedent(GIVEN_SPLIT))
    bundle = build(load_recipe(recipe)[0], tmp_path)
    assert bundle.interactions.split.tolist() == [0, 0, 0, 1, 2, 2]
    split = split_interactions("given", bundle.interactions.user, given=bundle.interactions.split)
    assert (split.train.tolist(), split.valid.tolist(), split.test.tolist()) == ([0, 1, 2], [3], [4, 5])
    cached = load_graph(recipe, tmp_path, cache_dir)
    assert load_graph(recipe, tmp_path, cache_dir).interactions.split.tolist() == cached.interactions.split.tolist()
    recipe.write_text(textwrap.dedent(GIVEN_SPLIT).replace("[train, valid, test]", "[train, test]"))
    with pytest.raises(DataError, match="split_by_file': 2 labels for 3 files"):
        build(load_recipe(recipe)[0], tmp_path)
    recipe.write_text(textwrap.dedent(GIVEN_SPLIT).replace("[train, valid, test]", "[train, valid, tset]"))
    with pytest.raises(ConfigError, match="split_by_file\\[2\\]' is 'tset'.*did you mean 'test'"):
        load_recipe(recipe)


def test_given_split_needs_labels(tiny):
    bundle = build(load_recipe(tiny)[0], tiny.parent)
    with pytest.raises(DataError, match="split method 'given' needs the data's own split.*split_by_file"):
        split_interactions("given", bundle.interactions.user, given=bundle.interactions.split)


def test_phrases_are_checked(tmp_path):
    recipe = write_tiny(tmp_path, recipe_extra="phrases:\n  interacts: ['You saw {tail}.', 'x', 'y']\n")
    with pytest.raises(ConfigError, match="'phrases.interacts' must list one or two sentences"):
        load_recipe(recipe)
    recipe = write_tiny(tmp_path, recipe_extra="phrases:\n  interacts: ['You saw {item}.']\n")
    with pytest.raises(ConfigError, match="placeholder '\\{item\\}' is not one of"):
        load_recipe(recipe)


# ---------------------------------------------------------------- sequences and joins
SEQUENCE_FILES = {
    "seq.inter": "user_id:token\titem_id_list:token_seq\titem_id:token\nA\t0 1 2\t3\nB\t\t1\nC\t2 0\t2\n",
    "items.tsv": "asin\tindex\nX0\t0\nX1\t1\nX2\t2\nX3\t3\n",
    "text.tsv": "item_id\ttext\nX1\tsecond item\nX0\tfirst item\nX3\tfourth item\n",
}
SEQUENCE_RECIPE = """\
name: seq
interactions: {path: seq.inter, user: user_id, item: item_id, sequence: item_id_list}
items:
  path: items.tsv
  id: index
  join:
    - {path: text.tsv, column: asin, key: item_id}
  text: "{text}"
"""


def write_files(root, files, recipe):
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "r.yaml").write_text(recipe)
    return load_recipe(root / "r.yaml")[0]


def test_sequence_rows_expand_in_order_and_join_adds_text(tmp_path):
    bundle = build(write_files(tmp_path, SEQUENCE_FILES, SEQUENCE_RECIPE), tmp_path)
    inter, idmap = bundle.interactions, bundle.idmap
    by_user = {}
    for row in np.argsort(inter.timestamp, kind="stable"):
        by_user.setdefault(idmap.raw("user", inter.user[row]), []).append(idmap.raw("item", inter.item[row]))
    # A repeated item keeps its latest position (one interaction per user and item).
    assert by_user == {"A": ["0", "1", "2", "3"], "B": ["1"], "C": ["0", "2"]}
    split = leave_one_out(inter.user, inter.timestamp)
    assert sorted(idmap.raw("item", inter.item[r]) for r in split.test if idmap.raw("user", inter.user[r]) == "A") == ["3"]
    texts = dict(zip(idmap.raw_ids("item"), bundle.texts["item"]))
    assert texts == {"0": "first item", "1": "second item", "2": "", "3": "fourth item"}


def test_sequence_unknown_item_names_file_and_line(tmp_path):
    files = {**SEQUENCE_FILES, "seq.inter": SEQUENCE_FILES["seq.inter"].replace("2 0\t2", "2 9\t2")}
    with pytest.raises(DataError, match=r"seq.inter:4: column 'item_id' has item id '9' that the items table"):
        build(write_files(tmp_path, files, SEQUENCE_RECIPE), tmp_path)


def test_join_with_duplicate_keys_and_missing_column(tmp_path):
    files = {**SEQUENCE_FILES, "text.tsv": SEQUENCE_FILES["text.tsv"] + "X1\tagain\n"}
    with pytest.raises(DataError, match=r"text.tsv:5: key 'X1' appears twice in column 'item_id'.*items.join\[0\]"):
        build(write_files(tmp_path, files, SEQUENCE_RECIPE), tmp_path)
    recipe = SEQUENCE_RECIPE.replace("column: asin", "column: sku")
    with pytest.raises(DataError, match=r"no column 'sku' \(named by recipe key items.join\[0\].column\)"):
        build(write_files(tmp_path, SEQUENCE_FILES, recipe), tmp_path)


# ---------------------------------------------------------------- text features
def test_text_features_are_encoded_stored_and_cached(tmp_path, tiny_bert):
    extra = f"text_features:\n  node_types: [item, entity, genre]\n  model: {tiny_bert}\n  max_length: 16\n"
    # Titles in the tiny BERT's vocabulary, so that different titles get different vectors.
    recipe = write_tiny(tmp_path / "tiny", extra, **{"items.csv": "item,title,genres\ni1,red shoe,Action|Crime\n"
                        "i2,blue boot,Crime|Drama\ni3,,Animation\ni4,green sock,Animation|Drama\ni5,warm hat,Horror\n"})
    bundle = load_graph(recipe, recipe.parent, tmp_path / "cache")
    item, entity, genre = (bundle.graph[t] for t in ("item", "entity", "genre"))
    assert item.x_text.shape == (5, 32) and item.x_text.dtype == torch.float32
    assert item.has_text.tolist() == [True, True, False, True, True]  # i3 has no title
    assert item.x_text[2].abs().sum() == 0 and item.x_text[0].abs().sum() > 0
    assert entity.has_text.all() and genre.has_text.all()  # entity names; genre values are their own text
    assert not torch.allclose(item.x_text[0], item.x_text[1])
    reloaded = load_graph(recipe, recipe.parent, tmp_path / "cache")  # from the graph cache
    torch.testing.assert_close(reloaded.graph["item"].x_text, item.x_text)
    assert reloaded.graph["item"].has_text.dtype == torch.bool
    rebuilt = load_graph(recipe, recipe.parent, tmp_path / "cache", rebuild=True)  # texts from the text cache
    torch.testing.assert_close(rebuilt.graph["entity"].x_text, entity.x_text)
    assert list((tmp_path / "cache" / "text").glob("*.safetensors"))


def test_text_features_of_an_unknown_node_type(tmp_path, tiny_bert):
    recipe = write_tiny(tmp_path / "tiny", f"text_features:\n  node_types: [genres]\n  model: {tiny_bert}\n")
    with pytest.raises(ConfigError, match=r"'text_features.node_types' names 'genres', which is not a node type of "
                                          r"this graph \(did you mean 'genre'\?\)"):
        build(load_recipe(recipe)[0], recipe.parent)


def test_a_saved_graph_loads_with_its_edge_types_in_the_built_order(tiny, tmp_path):
    bundle = build(load_recipe(tiny)[0], tiny.parent)
    bundle.save(tmp_path / "g")
    for _ in range(3):  # the order must not depend on the file's (unordered) tensor table
        assert GraphBundle.load(tmp_path / "g").graph.edge_types == bundle.graph.edge_types
