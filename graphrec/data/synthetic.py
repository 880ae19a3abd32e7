"""A seeded recommendation dataset with planted community structure (the embedded demo data).

Users belong to communities and items to clusters (community ``c`` prefers cluster ``c``).
Every other table is correlated with that hidden partition, so each signal a graph
recommender can use has something to find: interactions (the user's cluster with
probability ``1 - noise``), genres and tags (each cluster has core genres and own tags),
social links (a ``homophily`` share inside the community), KG entities (owned by
clusters), titles and descriptions (cluster word lists) and the users' age group.

Popularity is long-tailed inside every cluster (Zipf weights over a random ranking, as in
Breslau et al., "Web caching and Zipf-like distributions", INFOCOM 1999) and user
activity is lognormal. Everything is vectorised with NumPy, so a million users and ten
million interactions take well under a minute. The ground truth (``user_community``, ``item_cluster``)
is kept on :class:`SyntheticData` for tests and is not written to disk.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from graphrec.utils import atomic_write_bytes

TABLES = ("interactions", "users", "items", "item_tags", "tags", "social", "kg", "item_entity", "entities")

_THEMES = (  # one vocabulary per cluster; clusters beyond these get made-up words
    "galaxy starship alien planet orbit nebula android robot laser comet cosmos warp",
    "detective murder heist gangster alibi witness police mafia cartel bullet verdict smuggler",
    "love wedding heart kiss romance letter summer paris promise bride dance moonlight",
    "ghost haunted curse demon blood zombie nightmare witch shadow crypt scream vampire",
    "dragon wizard kingdom sword quest elf throne magic castle prophecy knight realm",
    "soldier battle war general trench army siege medal frontline pilot resistance empire",
    "puppy friendship school holiday toy family island treasure bear kitten birthday picnic",
    "cowboy sheriff desert outlaw saloon horse frontier ranch gold canyon bandit railroad",
    "champion coach team stadium match trophy season rookie marathon boxing league victory",
)
_SYLLABLES = ("ka", "zo", "mi", "ru", "vel", "dor", "an", "tos", "qui", "ber", "lum", "fa", "nek", "sha")
_GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
           "Fantasy", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_AGE_GROUPS = ("Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_RELATIONS = ("directed_by", "stars", "produced_by", "in_series", "written_by", "composed_by", "based_on",
              "filmed_in")
_PEOPLE = ("directed_by", "stars", "written_by", "composed_by")
_NAME_TEMPLATES = {"produced_by": ("", " Studios"), "in_series": ("The ", " Saga"),
                   "based_on": ("", " (novel)"), "filmed_in": ("", " City")}
_FIRST = ("Ada", "Bruno", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena")
_LAST = ("Abbott", "Brandt", "Costa", "Duval", "Eriksen", "Fujita", "Garcia", "Haddad", "Ito", "Jensen")
_AGE_SIGNAL = 0.6  # share of users whose age group is their community's typical one
_ACTIVITY_SIGMA = 0.8  # log-scale spread of the number of interactions per user
_START_TIME = 1_577_836_800  # 2020-01-01 UTC


@dataclass(eq=False)
class SyntheticData:
    """The tables of :func:`generate` (string ids, the layout ``graphs/synthetic.yaml`` reads).

    Attributes:
        interactions: ``user, item, rating (1-5), timestamp``, sorted by user, then time.
        users: ``user, age_group``.
        items: ``item, title, genres ("|"-joined), description``.
        item_tags: ``item, tag``.
        tags: ``tag, tag_name``.
        social: ``user, friend``, one row per friendship.
        kg: ``head, relation, tail``; heads are the items' own entities.
        item_entity: ``item, entity``.
        entities: ``entity, name``; items' entities are named by the item title.
        user_community: ``[num_users]`` planted community of the user in row ``k`` of ``users``.
        item_cluster: ``[num_items]`` planted cluster of the item in row ``k`` of ``items``.
    """

    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    item_tags: pd.DataFrame
    tags: pd.DataFrame
    social: pd.DataFrame
    kg: pd.DataFrame
    item_entity: pd.DataFrame
    entities: pd.DataFrame
    user_community: np.ndarray
    item_cluster: np.ndarray

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return ``name -> table`` for the tables written to disk, in :data:`TABLES` order."""
        return {name: getattr(self, name) for name in TABLES}


class _GroupSampler:
    """Draws one member of a group with probability proportional to its weight (vectorised).

    Members are sorted by group; group ``g`` owns the interval ``[g, g + 1)`` of a cumulative
    weight axis, so a whole batch of draws is one ``searchsorted``.
    """

    def __init__(self, groups: np.ndarray, num_groups: int, weights: np.ndarray | None = None) -> None:
        self.order = np.argsort(groups, kind="stable")  # [M] member ids sorted by group
        sorted_groups = groups[self.order]
        self.sizes = np.bincount(groups, minlength=num_groups)  # [G]
        self.starts = np.cumsum(self.sizes) - self.sizes  # [G]
        w = np.ones(len(groups)) if weights is None else weights[self.order]
        cum = np.cumsum(w)
        before = np.concatenate([[0.0], cum])[self.starts][sorted_groups]  # weight before each group
        totals = np.bincount(sorted_groups, weights=w, minlength=num_groups)
        self.cum = sorted_groups + (cum - before) / totals[sorted_groups]  # in (g, g + 1]

    def draw(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return one member per entry of ``group`` ([N]); -1 where that group is empty."""
        pos = np.searchsorted(self.cum, group + rng.random(len(group)), side="right")
        last = self.starts[group] + np.maximum(self.sizes[group], 1) - 1
        pos = np.clip(pos, self.starts[group], last)
        return np.where(self.sizes[group] > 0, self.order[np.minimum(pos, len(self.order) - 1)], -1)


def _ids(prefix: str, count: int) -> pa.Array:
    return pa.array(np.char.add(prefix, np.arange(count).astype(str)))


def _column(ids: pa.Array, index: np.ndarray) -> pd.Series:
    """The string column ``ids[index]`` without building Python strings per row."""
    return pd.Series(ids.take(pa.array(index)), dtype="str")


def _names(array: np.ndarray) -> pd.Series:
    return pd.Series(array.astype(str), dtype="str")


def _capitalize(words: np.ndarray) -> np.ndarray:
    return np.char.capitalize(words.astype(str)).astype(object)


def _balanced(count: int, num_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Assign ``count`` members to ``num_groups`` groups of near-equal size, in random order."""
    return rng.permutation(np.arange(count) % num_groups)


def _rank_in_group(groups: np.ndarray, num_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Return a random rank ``0..size - 1`` of each member inside its group."""
    shuffled = rng.permutation(len(groups))
    order = shuffled[np.argsort(groups[shuffled], kind="stable")]  # members by group, random inside
    sizes = np.bincount(groups, minlength=num_groups)
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return rank


def _unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct ``keys`` and the index of each one's first occurrence.

    A stable sort, not ``np.unique``: its hash table is far slower on tens of millions of keys.
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    return ordered[first], order[first]


def _pick(rng: np.random.Generator, signal: np.ndarray, noise: float, other: np.ndarray) -> np.ndarray:
    """``signal`` where a coin with P(heads) = 1 - noise says so (and signal is defined), else ``other``."""
    keep = (rng.random(len(signal)) >= noise) & (signal >= 0)
    return np.where(keep, signal, other)


def _vocabulary(num_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``[C, 12]`` words; cluster ``c`` uses theme ``c`` or, past the themes, made-up words."""
    themed = np.array([theme.split() for theme in _THEMES[:num_clusters]], dtype=object).reshape(-1, 12)
    extra, base = 12 * (num_clusters - len(themed)), len(_SYLLABLES)
    code = rng.choice(base**3, size=extra, replace=extra > base**3)  # distinct while they last
    syllables = np.array(_SYLLABLES, dtype=object)
    made_up = syllables[code // base**2] + syllables[code // base % base] + syllables[code % base]
    return np.concatenate([themed, made_up.reshape(-1, 12)])


def _activity_mu(per_user: float, low: int, high: int) -> float:
    """The log-scale mean ``mu`` of a lognormal (sigma :data:`_ACTIVITY_SIGMA`) whose draws, rounded and
    clipped to ``[low, high]``, average ``per_user``: bisection over an exact quadrature of the normal."""
    z = np.linspace(-8.0, 8.0, 4001)
    weight = np.exp(-z**2 / 2)
    weight /= weight.sum()

    def mean(mu: float) -> float:  # non-decreasing in mu
        return float(weight @ np.clip(np.rint(np.exp(mu + _ACTIVITY_SIGMA * z)), low, high))

    lo, hi = -10.0, np.log(high) + 8 * _ACTIVITY_SIGMA
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < per_user else (lo, mid)
    return (lo + hi) / 2


def _interactions(user_community: np.ndarray, item_cluster: np.ndarray, mu: float,
                  min_interactions: int, popularity_skew: float, noise: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(user, item, rating, timestamp)`` arrays, deduplicated and time-ordered per user.

    The wished number of interactions per user is lognormal with log-scale mean ``mu``."""
    num_users, num_items = len(user_community), len(item_cluster)
    num_clusters = int(item_cluster.max()) + 1
    rank = _rank_in_group(item_cluster, num_clusters, rng)
    weight = (1.0 + rank) ** -popularity_skew  # Zipf inside each cluster; every cluster has a head
    in_cluster = _GroupSampler(item_cluster, num_clusters, weight)
    anywhere = _GroupSampler(np.zeros(num_items, dtype=np.int64), 1, weight)
    target = np.clip(np.rint(rng.lognormal(mu, _ACTIVITY_SIGMA, num_users)), min(min_interactions, num_items),
                     num_items).astype(np.int64)
    keys = np.empty(0, dtype=np.int64)
    missing = target
    for _ in range(10):  # duplicates are dropped, then topped up (rounds shrink fast)
        users = np.repeat(np.arange(num_users), missing)
        items = np.empty(len(users), dtype=np.int64)
        noisy = rng.random(len(users)) < noise  # these ignore the community
        items[~noisy] = in_cluster.draw(user_community[users[~noisy]], rng)
        items[noisy] = anywhere.draw(np.zeros(int(noisy.sum()), dtype=np.int64), rng)
        keys = _unique(np.concatenate([keys, users * num_items + items]))[0]
        missing = np.maximum(target - np.bincount(keys // num_items, minlength=num_users), 0)
        if not missing.any():
            break
    # Random order within each user: sort by (user, random 31-bit key).
    keys = keys[np.argsort(keys // num_items << 31 | rng.integers(0, 2**31, len(keys)), kind="stable")]
    user, item = keys // num_items, keys % num_items
    liked = item_cluster[item] == user_community[user]
    rating = np.clip(np.rint(3.0 + liked + rng.normal(0.0, 0.9, len(user))), 1, 5).astype(np.int64)
    gaps = np.ceil(rng.exponential(2 * 86_400, len(user))).astype(np.int64) + 1  # about two days apart
    elapsed = np.cumsum(gaps)
    counts = np.bincount(user, minlength=num_users)
    first = np.repeat(np.cumsum(counts) - counts, counts)  # row of each user's first interaction
    start = _START_TIME + rng.integers(0, 365 * 86_400, num_users)
    timestamp = start[user] + elapsed - elapsed[first] + gaps[first]
    return user, item, rating, timestamp


def _items(item_cluster: np.ndarray, vocab: np.ndarray, num_genres: int, num_tags: int, noise: float,
           rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return the ``items``, ``item_tags`` and ``tags`` tables."""
    num_items, num_clusters = len(item_cluster), vocab.shape[0]
    genre_names = np.array(list(_GENRES[:num_genres]) + [f"Genre {g}" for g in range(len(_GENRES), num_genres)],
                           dtype=object)
    width = min(3, num_genres)
    core = np.stack([rng.choice(num_genres, width, replace=False) for _ in range(num_clusters)])  # [C, width]
    core_size = rng.integers(min(2, width), width + 1, size=num_clusters)  # 2-3 core genres per cluster
    slots = np.stack([_pick(rng, core[item_cluster, rng.integers(0, core_size[item_cluster])], noise,
                            rng.integers(0, num_genres, num_items)) for _ in range(3)], axis=1)  # [I, 3]
    count = rng.integers(1, 4, num_items)
    genres = genre_names[slots[:, 0]]
    for j in (1, 2):
        used = (j < count) & np.all(slots[:, :j] != slots[:, j : j + 1], axis=1)
        genres = genres + np.where(used, "|" + genre_names[slots[:, j]], "")

    # Five distinct words of the item's cluster, each replaced by any word with probability `noise`.
    picks = np.argsort(rng.random((num_items, vocab.shape[1])), axis=1)[:, :5]
    words = vocab[item_cluster[:, None], picks]  # [I, 5]
    flat = vocab.reshape(-1)
    words = np.where(rng.random(words.shape) >= noise, words, flat[rng.integers(0, len(flat), words.shape)])
    title = "The " + _capitalize(words[:, 0]) + " " + _capitalize(words[:, 1])
    first_genre = np.char.lower(genre_names[slots[:, 0]].astype(str)).astype(object)
    article = np.where(np.isin(first_genre.astype("U1"), list("aeiou")), "An ", "A ")  # by first letter
    description = (article + first_genre + " story about " + words[:, 2] + ", " + words[:, 3] + " and "
                   + words[:, 4] + ".")
    item_ids = _ids("i", num_items)
    items = pd.DataFrame({"item": _column(item_ids, np.arange(num_items)), "title": _names(title),
                          "genres": _names(genres), "description": _names(description)})

    tag_cluster = _balanced(num_tags, num_clusters, rng)  # every cluster owns ~num_tags / C tags
    rank = _rank_in_group(tag_cluster, num_clusters, rng)
    tag_name = vocab[tag_cluster, rank % vocab.shape[1]] + np.where(
        rank >= vocab.shape[1], "-" + (rank // vocab.shape[1]).astype(str).astype(object), "")
    tag_item = np.repeat(np.arange(num_items), rng.integers(2, 6, num_items))
    tag = _pick(rng, _GroupSampler(tag_cluster, num_clusters).draw(item_cluster[tag_item], rng), noise,
                rng.integers(0, num_tags, len(tag_item)))
    pairs = _unique(tag_item * num_tags + tag)[0]
    tag_ids = _ids("t", num_tags)
    item_tags = pd.DataFrame({"item": _column(item_ids, pairs // num_tags), "tag": _column(tag_ids, pairs % num_tags)})
    tags = pd.DataFrame({"tag": _column(tag_ids, np.arange(num_tags)), "tag_name": _names(tag_name)})
    return items, item_tags, tags


def _social(user_community: np.ndarray, friends_per_user: int, homophily: float,
            rng: np.random.Generator) -> pd.DataFrame:
    """Return ``social``: ``friends_per_user`` links per user, a ``homophily`` share inside its community."""
    num_users, num_communities = len(user_community), int(user_community.max()) + 1
    sampler = _GroupSampler(user_community, num_communities)
    user = np.repeat(np.arange(num_users), friends_per_user)
    inside = (rng.random(len(user)) < homophily) | (num_communities == 1)
    other = (user_community[user] + rng.integers(1, max(num_communities, 2), len(user))) % num_communities
    friend = sampler.draw(np.where(inside, user_community[user], other), rng)
    low, high = np.minimum(user, friend), np.maximum(user, friend)
    first = _unique(low * num_users + high)[1]  # one row per unordered pair
    first = first[user[first] != friend[first]]
    user_ids = _ids("u", num_users)
    return pd.DataFrame({"user": _column(user_ids, user[first]), "friend": _column(user_ids, friend[first])})


def _knowledge_graph(item_cluster: np.ndarray, vocab: np.ndarray, titles: pd.Series, num_entities: int,
                     num_relations: int, noise: float, rng: np.random.Generator
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``kg``, ``item_entity`` and ``entities``; entities ``e0..e{K-1}`` are people, studios, series
    and so on, owned by clusters; ``e{K + i}`` is item ``i``'s own entity."""
    num_items, num_clusters = len(item_cluster), vocab.shape[0]
    relations = list(_RELATIONS[:num_relations]) + [f"related_{r}" for r in range(len(_RELATIONS), num_relations)]
    slot = rng.permutation(num_entities)  # covers every (cluster, relation) pair when K >= C * R
    cluster, relation = slot % num_clusters, (slot // num_clusters) % num_relations
    word = _capitalize(vocab[cluster, rng.integers(0, vocab.shape[1], num_entities)])
    person = (np.array(_FIRST, dtype=object)[rng.integers(0, len(_FIRST), num_entities)] + " "
              + np.array(_LAST, dtype=object)[rng.integers(0, len(_LAST), num_entities)])
    names = np.empty(num_entities, dtype=object)
    for r, rel in enumerate(relations):
        prefix, suffix = _NAME_TEMPLATES.get(rel, (rel.replace("_", " ").capitalize() + " ", ""))
        mask = relation == r
        names[mask] = person[mask] if rel in _PEOPLE else prefix + word[mask] + suffix

    links = np.array([3 if rel == "stars" else 1 for rel in relations])  # tails per item and relation
    head = np.repeat(np.arange(num_items), links.sum())
    rel = np.tile(np.repeat(np.arange(num_relations), links), num_items)
    own = _GroupSampler(relation * num_clusters + cluster, num_relations * num_clusters)
    tail = _pick(rng, own.draw(rel * num_clusters + item_cluster[head], rng), noise,
                 _GroupSampler(relation, num_relations).draw(rel, rng))
    triples = _unique((head * num_relations + rel) * num_entities + tail)[0]
    head_rel, tail = np.divmod(triples, num_entities)
    head, rel = np.divmod(head_rel, num_relations)
    entity_ids = _ids("e", num_entities + num_items)
    kg = pd.DataFrame({"head": _column(entity_ids, num_entities + head),
                       "relation": _column(pa.array(relations), rel), "tail": _column(entity_ids, tail)})
    item_entity = pd.DataFrame({"item": _column(_ids("i", num_items), np.arange(num_items)),
                                "entity": _column(entity_ids, num_entities + np.arange(num_items))})
    entities = pd.DataFrame({"entity": _column(entity_ids, np.arange(num_entities + num_items)),
                             "name": pd.concat([_names(names), titles], ignore_index=True)})
    return kg, item_entity, entities


def generate(num_users: int = 1000, num_items: int = 500, num_communities: int = 8,
             interactions_per_user: float = 30, min_interactions_per_user: int = 5, num_genres: int = 12,
             num_tags: int = 40, num_kg_entities: int = 300, num_relations: int = 4, friends_per_user: int = 5,
             homophily: float = 0.8, noise: float = 0.1, popularity_skew: float = 1.0,
             seed: int = 0, num_interactions: int | None = None) -> SyntheticData:
    """Generate a recommendation dataset whose every table reflects one hidden user/item partition.

    Args:
        num_users: Users ``u0..``; each joins one of ``num_communities`` communities (near-equal sizes).
        num_items: Items ``i0..``; item cluster ``c`` is what community ``c`` prefers.
        num_communities: Number of communities, equal to the number of item clusters.
        interactions_per_user: Mean of the lognormal number of distinct items per user; users who exhaust
            their cluster get fewer, so the realised mean is a little lower.
        min_interactions_per_user: Fewest interactions a user is given (capped at ``num_items``).
        num_genres: Genres; each cluster has 2-3 core genres, each item 1-3 genres.
        num_tags: Tags ``t0..``, owned by clusters; each item has 2-5 (deduplicated).
        num_kg_entities: KG entities ``e0..`` besides the items' own (people, studios, series...).
        num_relations: KG relations (``directed_by``, ``stars``, ``produced_by``, ``in_series``, ...).
        friends_per_user: Friend links drawn per user (self-links and repeated pairs are dropped).
        homophily: Share of friend links inside the user's community.
        noise: Probability that an interaction, genre, tag, title word or KG link ignores the cluster.
        popularity_skew: Zipf exponent of item popularity (0 gives uniform popularity).
        seed: Seed of the generator; the same arguments and seed give the same tables.
        num_interactions: Total interactions to aim for, instead of ``interactions_per_user``: the
            lognormal is calibrated so that its draws, after the minimum per user and the cap at
            ``num_items``, add up to this on average (the realised total is within about 1% of it,
            lower when users exhaust their cluster).

    Returns:
        The tables with string ids, and the planted ``user_community`` and ``item_cluster``.
    """
    for name, value, low in (("num_users", num_users, num_communities), ("num_items", num_items, num_communities),
                             ("num_communities", num_communities, 1), ("num_genres", num_genres, 1),
                             ("num_tags", num_tags, 1), ("num_relations", num_relations, 1),
                             ("num_kg_entities", num_kg_entities, num_relations),
                             ("min_interactions_per_user", min_interactions_per_user, 1),
                             ("friends_per_user", friends_per_user, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"generate(): {name} must be an integer >= {low}, got {value!r}")
    for name, value in (("homophily", homophily), ("noise", noise)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"generate(): {name} must be in [0, 1], got {value!r}")
    if interactions_per_user < 1 or popularity_skew < 0:
        raise ValueError(f"generate(): need interactions_per_user >= 1 and popularity_skew >= 0, "
                         f"got {interactions_per_user!r} and {popularity_skew!r}")
    low = min(min_interactions_per_user, num_items)
    if num_interactions is None:
        mu = np.log(interactions_per_user) - _ACTIVITY_SIGMA**2 / 2  # so that the mean is interactions_per_user
    elif int(num_interactions) != num_interactions or \
            not num_users * low < num_interactions < num_users * num_items:
        raise ValueError(f"generate(): num_interactions must be an integer between num_users * "
                         f"min(min_interactions_per_user, num_items) = {num_users * low} and num_users * num_items = "
                         f"{num_users * num_items} (both excluded), got {num_interactions!r}")
    else:
        mu = _activity_mu(num_interactions / num_users, low, num_items)
    rng_parts, rng_inter, rng_users, rng_items, rng_social, rng_kg = np.random.default_rng(seed).spawn(6)
    user_community = _balanced(num_users, num_communities, rng_parts)
    item_cluster = _balanced(num_items, num_communities, rng_parts)
    vocab = _vocabulary(num_communities, rng_parts)

    user, item, rating, timestamp = _interactions(user_community, item_cluster, mu, min_interactions_per_user,
                                                  popularity_skew, noise, rng_inter)
    user_ids, item_ids = _ids("u", num_users), _ids("i", num_items)
    interactions = pd.DataFrame({"user": _column(user_ids, user), "item": _column(item_ids, item),
                                 "rating": rating, "timestamp": timestamp})
    ages = np.array(_AGE_GROUPS, dtype=object)
    age = _pick(rng_users, user_community % len(ages), 1.0 - _AGE_SIGNAL, rng_users.integers(0, len(ages), num_users))
    users = pd.DataFrame({"user": _column(user_ids, np.arange(num_users)), "age_group": _names(ages[age])})
    items, item_tags, tags = _items(item_cluster, vocab, num_genres, num_tags, noise, rng_items)
    social = _social(user_community, friends_per_user, homophily, rng_social)
    kg, item_entity, entities = _knowledge_graph(item_cluster, vocab, items["title"], num_kg_entities,
                                                 num_relations, noise, rng_kg)
    return SyntheticData(interactions, users, items, item_tags, tags, social, kg, item_entity, entities,
                         user_community=user_community, item_cluster=item_cluster)


def write(data: SyntheticData, directory: str | os.PathLike, format: str = "csv") -> Path:
    """Write each table to ``<directory>/<table>.<format>`` atomically.

    Args:
        data: The tables from :func:`generate`.
        directory: Target folder, created when missing.
        format: ``"csv"`` or ``"parquet"``.

    Returns:
        The folder written to.
    """
    if format not in ("csv", "parquet"):
        raise ValueError(f"write(): format must be 'csv' or 'parquet', got {format!r}")
    directory = Path(directory)
    for name, table in data.tables().items():
        if format == "csv":
            payload = table.to_csv(index=False).encode("utf-8")
        else:
            buffer = io.BytesIO()
            table.to_parquet(buffer, index=False)
            payload = buffer.getvalue()
        atomic_write_bytes(directory / f"{name}.{format}", payload)
    return directory


def write_synthetic(data_root: str | os.PathLike, **generate_kwargs) -> Path:
    """Generate a dataset and write it as CSV under ``<data_root>/synthetic/``, the files
    ``graphs/synthetic.yaml`` reads. Keyword arguments go to :func:`generate`.

    Returns:
        The folder ``<data_root>/synthetic``.
    """
    return write(generate(**generate_kwargs), Path(data_root) / "synthetic", format="csv")
