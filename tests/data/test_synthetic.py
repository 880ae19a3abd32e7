import time

import numpy as np
import pandas as pd
import pytest
import yaml

from graphrec.data.synthetic import TABLES, SyntheticData, _GroupSampler, generate, write, write_synthetic

RECIPE = "graphs/synthetic.yaml"


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate()


def codes(column: pd.Series) -> np.ndarray:
    """'u17' -> 17: the row of the id in its defining table."""
    return column.str[1:].astype(np.int64).to_numpy()


def test_same_seed_same_tables_other_seed_other_tables(data):
    again, other = generate(seed=0), generate(seed=1)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(data, name), getattr(again, name))
    np.testing.assert_array_equal(data.user_community, again.user_community)
    assert not data.interactions.equals(other.interactions)
    assert not data.items.equals(other.items)
    assert not data.social.equals(other.social)


def test_columns_and_string_ids(data):
    columns = {name: list(getattr(data, name).columns) for name in TABLES}
    assert columns == {
        "interactions": ["user", "item", "rating", "timestamp"], "users": ["user", "age_group"],
        "items": ["item", "title", "genres", "description"], "item_tags": ["item", "tag"],
        "tags": ["tag", "tag_name"], "social": ["user", "friend"], "kg": ["head", "relation", "tail"],
        "item_entity": ["item", "entity"], "entities": ["entity", "name"],
    }
    prefixes = {"user": "u", "friend": "u", "item": "i", "tag": "t", "entity": "e", "head": "e", "tail": "e"}
    for name in TABLES:
        table = getattr(data, name)
        for column, prefix in prefixes.items():
            if column in table:
                assert pd.api.types.is_string_dtype(table[column]), (name, column)
                assert table[column].str.fullmatch(prefix + r"\d+").all(), (name, column)
    assert len(data.users) == 1000 and len(data.items) == 500 and len(data.tags) == 40
    assert len(data.entities) == 300 + 500  # KG entities plus one per item
    assert set(data.kg["relation"]) == {"directed_by", "stars", "produced_by", "in_series"}


def test_no_duplicates_and_no_self_friends(data):
    assert not data.interactions.duplicated(["user", "item"]).any()
    assert not data.item_tags.duplicated().any()
    assert not data.kg.duplicated().any()
    user, friend = codes(data.social["user"]), codes(data.social["friend"])
    assert len(np.unique(np.minimum(user, friend) * 10**6 + np.maximum(user, friend))) == len(user)
    assert (data.social["user"] != data.social["friend"]).all()
    for name, column in (("users", "user"), ("items", "item"), ("tags", "tag"), ("entities", "entity")):
        assert getattr(data, name)[column].is_unique


def test_every_referenced_id_is_defined(data):
    users, items = set(data.users["user"]), set(data.items["item"])
    entities, tags = set(data.entities["entity"]), set(data.tags["tag"])
    assert set(data.interactions["user"]) <= users and set(data.interactions["item"]) <= items
    assert set(data.social["user"]) | set(data.social["friend"]) <= users
    assert set(data.item_tags["item"]) <= items and set(data.item_tags["tag"]) <= tags
    assert set(data.kg["head"]) | set(data.kg["tail"]) <= entities
    assert set(data.item_entity["item"]) == items and set(data.item_entity["entity"]) <= entities
    assert data.item_entity["entity"].is_unique  # each item has its own entity
    assert set(data.interactions["user"]) == users  # nobody is left without interactions


def test_ratings_timestamps_and_activity(data):
    inter = data.interactions
    assert inter["rating"].between(1, 5).all() and inter["rating"].dtype == np.int64
    user = codes(inter["user"])
    assert np.all(np.diff(user) >= 0)  # grouped by user
    same_user = user[1:] == user[:-1]
    assert np.all(np.diff(inter["timestamp"].to_numpy())[same_user] > 0)  # strictly increasing per user
    per_user = np.bincount(user)
    assert per_user.min() >= 5
    assert 15 <= per_user.mean() <= 35 and per_user.max() > 3 * np.median(per_user)  # long-tailed activity


def test_users_prefer_their_community_cluster(data):
    user, item = codes(data.interactions["user"]), codes(data.interactions["item"])
    inside = data.item_cluster[item] == data.user_community[user]
    assert inside.mean() >= 0.7
    assert np.mean(np.bincount(user, weights=inside) / np.bincount(user)) >= 0.7
    noisy = generate(noise=0.6)
    user, item = codes(noisy.interactions["user"]), codes(noisy.interactions["item"])
    assert (noisy.item_cluster[item] == noisy.user_community[user]).mean() < 0.6


@pytest.mark.parametrize("homophily", [0.8, 0.3])
def test_social_homophily(homophily):
    data = generate(num_users=600, num_items=200, interactions_per_user=5, homophily=homophily)
    inside = data.user_community[codes(data.social["user"])] == data.user_community[codes(data.social["friend"])]
    assert abs(inside.mean() - homophily) <= 0.1
    assert len(data.social) > 0.9 * 5 * 600  # few links lost to self-links and repeats


def test_items_of_a_cluster_share_genres_and_words(data):
    cluster = data.item_cluster
    same = (cluster[:, None] == cluster[None, :]) & ~np.eye(len(cluster), dtype=bool)
    different = cluster[:, None] != cluster[None, :]
    genres = data.items["genres"].str.get_dummies(sep="|").to_numpy()  # [I, G]
    share_genre = genres @ genres.T > 0
    assert share_genre[same].mean() > 1.5 * share_genre[different].mean()
    text = (data.items["title"] + " " + data.items["description"]).str.lower()
    words = text.str.replace(r"[^a-z ]", "", regex=True).str.replace(" ", "|").str.get_dummies(sep="|")
    genre_names = set(data.items["genres"].str.split("|").explode().str.lower())
    common = {"the", "a", "an", "story", "about", "and"} | genre_names  # template words, not cluster words
    words = words.drop(columns=[w for w in words.columns if w in common]).to_numpy()
    share_word = words @ words.T > 0
    assert share_word[same].mean() > 3 * share_word[different].mean()


def test_tags_and_kg_entities_join_items_of_one_cluster(data):
    for table, item_column, value_column in ((data.item_tags, "item", "tag"), (data.kg, "head", "tail")):
        pairs = table[[item_column, value_column]].rename(columns={item_column: "item", value_column: "value"})
        joined = pairs.merge(pairs, on="value")
        joined = joined[joined["item_x"] != joined["item_y"]]
        left, right = codes(joined["item_x"]), codes(joined["item_y"])
        if item_column == "head":  # item i's entity is e{300 + i}
            left, right = left - 300, right - 300
        assert (data.item_cluster[left] == data.item_cluster[right]).mean() >= 0.6  # chance is 1/8


def test_age_group_follows_community(data):
    table = pd.crosstab(data.user_community, data.users["age_group"].to_numpy())
    assert (table.max(axis=1) / table.sum(axis=1)).min() >= 0.5  # chance is about 1/7


def recall_at_k(scores: np.ndarray, train: np.ndarray, truth: np.ndarray, k: int = 20) -> float:
    scores = np.where(train > 0, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]  # [U, k]
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    relevant = truth.sum(axis=1)
    return float(np.mean(hits[relevant > 0] / relevant[relevant > 0]))


def test_cooccurrence_beats_popularity(data):
    user, item = codes(data.interactions["user"]), codes(data.interactions["item"])
    held_out = np.random.default_rng(1).random(len(user)) < 0.2
    train = np.zeros((len(data.users), len(data.items)))
    truth = np.zeros_like(train)
    train[user[~held_out], item[~held_out]] = 1
    truth[user[held_out], item[held_out]] = 1
    popularity = np.broadcast_to(train.sum(axis=0), train.shape)
    cooccurrence = train.T @ train  # [I, I] item-item counts
    np.fill_diagonal(cooccurrence, 0)
    pop_recall = recall_at_k(popularity, train, truth)
    item_knn_recall = recall_at_k(train @ cooccurrence, train, truth)
    assert item_knn_recall >= 1.5 * pop_recall


@pytest.mark.parametrize("format", ["csv", "parquet"])
def test_write_then_read_gives_the_same_tables(tmp_path, format):
    data = generate(num_users=80, num_items=40, interactions_per_user=6, num_kg_entities=40, seed=3)
    folder = write(data, tmp_path / "out", format=format)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.{format}" for name in TABLES)
    read = pd.read_csv if format == "csv" else pd.read_parquet
    for name in TABLES:
        pd.testing.assert_frame_equal(read(folder / f"{name}.{format}"), getattr(data, name), check_dtype=False)


def test_write_synthetic_writes_exactly_the_recipe_files(tmp_path):
    with open(RECIPE, encoding="utf-8") as handle:
        recipe = yaml.safe_load(handle)

    def paths(node):
        if isinstance(node, dict):
            own = [node["path"]] if "path" in node else []
            return own + [p for value in node.values() for p in paths(value)]
        if isinstance(node, list):
            return [p for value in node for p in paths(value)]
        return []

    folder = write_synthetic(tmp_path, num_users=50, num_items=30, interactions_per_user=5, num_kg_entities=40)
    assert folder == tmp_path / "synthetic"
    written = {str(p.relative_to(tmp_path)) for p in folder.iterdir()}
    assert written == set(paths(recipe)) == {f"synthetic/{name}.csv" for name in TABLES}


def test_more_communities_than_word_lists_and_relations():
    data = generate(num_users=200, num_items=150, num_communities=15, num_relations=9, num_kg_entities=200,
                    num_genres=20, interactions_per_user=5)
    assert set(data.user_community) == set(range(15))
    assert data.kg["relation"].nunique() == 9
    assert data.items["title"].str.fullmatch(r"The [A-Z][a-z]+ [A-Z][a-z]+").all()


def test_num_interactions_sets_the_total():
    data = generate(num_users=20_000, num_items=5_000, num_communities=10, num_interactions=150_000, seed=2)
    assert abs(len(data.interactions) / 150_000 - 1) < 0.01
    per_user = data.interactions.groupby("user").size()
    assert per_user.min() >= 5 and per_user.max() > 3 * per_user.median()  # still long-tailed above the minimum
    # without it, interactions_per_user is the lognormal's mean before clipping: the minimum adds to it
    assert len(generate(num_users=20_000, num_items=5_000, num_communities=10, interactions_per_user=7.5,
                        seed=2).interactions) > 1.03 * 150_000


@pytest.mark.slow
def test_a_million_users_in_under_two_minutes():
    start = time.perf_counter()
    data = generate(num_users=1_000_000, num_items=200_000, num_interactions=10_000_000, num_communities=20,
                    num_tags=5_000, num_kg_entities=50_000)
    assert time.perf_counter() - start < 120
    assert (len(data.users), len(data.items)) == (1_000_000, 200_000)
    assert abs(len(data.interactions) / 10_000_000 - 1) < 0.01
    assert len(data.social) > 4_900_000 and len(data.kg) > 1_000_000 and len(data.item_tags) > 600_000


@pytest.mark.parametrize("kwargs, message", [
    ({"num_interactions": 4000}, r"num_interactions must be an integer between num_users \* "
                                 r"min\(min_interactions_per_user, num_items\) = 5000 and num_users \* num_items = "
                                 r"500000 \(both excluded\), got 4000"),
    ({"noise": 1.5}, r"noise must be in \[0, 1\], got 1.5"),
    ({"num_items": 4}, r"num_items must be an integer >= 8, got 4"),
    ({"num_kg_entities": 2}, r"num_kg_entities must be an integer >= 4, got 2"),
])
def test_bad_arguments_say_which_and_why(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)


def test_write_rejects_unknown_format(tmp_path, data):
    with pytest.raises(ValueError, match="format must be 'csv' or 'parquet', got 'xlsx'"):
        write(data, tmp_path, format="xlsx")


def test_group_sampler_follows_weights_inside_each_group():
    groups = np.array([1, 0, 1, 0, 1])  # group 2 is empty
    sampler = _GroupSampler(groups, num_groups=3, weights=np.array([1.0, 1.0, 1.0, 3.0, 2.0]))
    rng = np.random.default_rng(0)
    drawn = sampler.draw(np.repeat([0, 1, 2], 40_000), rng)
    np.testing.assert_allclose(np.bincount(drawn[:40_000], minlength=5) / 40_000, [0, 0.25, 0, 0.75, 0], atol=0.01)
    np.testing.assert_allclose(np.bincount(drawn[40_000:80_000], minlength=5) / 40_000, [0.25, 0, 0.25, 0, 0.5],
                               atol=0.01)
    assert np.all(drawn[80_000:] == -1)


def test_synthetic_command_writes_the_tables(tmp_path, capsys):
    from graphrec.cli import main

    assert main(["synthetic", "--out", str(tmp_path), "--users", "300", "--items", "100", "--interactions", "3000",
                 "--communities", "4", "--format", "parquet", "--seed", "1"]) == 0
    expected = generate(num_users=300, num_items=100, num_interactions=3000, num_communities=4, seed=1)
    for name in TABLES:
        read = pd.read_parquet(tmp_path / "synthetic" / f"{name}.parquet")
        pd.testing.assert_frame_equal(read, getattr(expected, name), check_dtype=False)
    assert f"interactions  {len(expected.interactions):>12,} rows" in capsys.readouterr().out
    assert main(["synthetic", "--out", str(tmp_path), "--users", "300", "--items", "100", "--interactions", "10"]) == 2
    assert "graphrec: error: --interactions (num_interactions): num_interactions must be an integer between" \
        in capsys.readouterr().err
