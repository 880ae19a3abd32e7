"""Property-based tests: random small tables either build a consistent graph or raise a DataError.

The interactions table is generated cell by cell from good and bad values (empty cells, ``nan``,
words for numbers, negative times, ids with spaces, commas or quotes, BOM and CRLF), and an
oracle written independently of the builder says what should happen: which row fails first, or
which (user, item) pairs the graph must hold, with the latest row of each pair winning.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.data.readers import read_table
from graphrec.errors import DataError, GraphrecError
from graphrec.graph import build, load_recipe
from tests.bad_input.conftest import source, write

# Derandomized, so the suite is the same on every run; GRAPHREC_PROPERTY_EXAMPLES=5000 searches harder.
SETTINGS = settings(max_examples=int(os.environ.get("GRAPHREC_PROPERTY_EXAMPLES", "80")), deadline=None,
                    derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

RECIPE = ("name: property\ninteractions:\n  path: interactions.csv\n  user: user\n  item: item\n"
          "  rating: rating\n  timestamp: timestamp\n")
COLUMNS = ("user", "item", "rating", "timestamp")

ids = st.sampled_from(["u1", "u2", "007", "7", "nan", "NULL", "Ünï", "a b", " u1", "x,y", 'say "hi"', ""])
ratings = st.sampled_from(["5", "4.5", "0", "-1", "1e3", " 3", "", "nan", "inf", "-inf", "five", "4,5"])
timestamps = st.sampled_from(["0", "100", "7.5", "1e9", "100", "", "-1", "NaN", "2020-01-01", "-0.5"])
rows = st.lists(st.tuples(ids, ids, ratings, timestamps), max_size=8)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def expected_error_line(table: list[tuple[str, str, str, str]]) -> int | None:
    """The line of the first row the builder must refuse (checks in the builder's order), else None."""
    blank = [all(cell == "" for cell in row) for row in table]
    lines = [(line, row) for line, (row, is_blank) in enumerate(zip(table, blank), start=2) if not is_blank]
    for column in range(4):  # every cell must be filled
        for line, row in lines:
            if row[column] == "":
                return line
    for column in (2, 3):  # rating, then timestamp, must be finite numbers
        for line, row in lines:
            if _number(row[column]) is None:
                return line
    for line, row in lines:  # and the timestamp not negative
        if _number(row[3]) < 0:
            return line
    return None


def write_table(root: Path, table: list[tuple[str, str, str, str]], line_end: str, bom: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(COLUMNS)
    writer.writerows(table)
    write(root / "interactions.csv", ("\ufeff" if bom else "") + buffer.getvalue())
    write(root / "recipe.yaml", RECIPE)


@SETTINGS
@given(table=rows, line_end=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_builder_succeeds_consistently_or_raises_a_data_error(table, line_end, bom):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_table(root, table, line_end, bom)
        kept = [row for row in table if any(row)]
        error_line = expected_error_line(table)
        try:
            bundle = build(load_recipe(root / "recipe.yaml")[0], root)
        except DataError as exc:
            message = str(exc)
            assert "interactions.csv" in message
            if not kept:
                assert "the table is empty" in message or "file is empty" in message
            else:
                assert error_line is not None, f"refused a good table: {message}"
                assert f"interactions.csv:{error_line}:" in message, message
            return
    assert kept and error_line is None, "built a graph from a table with a bad row"

    # Id maps: every raw id of the table, once, and nothing else; ints round-trip.
    for node_type, column in (("user", 0), ("item", 1)):
        raw_ids = bundle.idmap.raw_ids(node_type)
        assert sorted(raw_ids) == sorted({row[column] for row in kept})
        assert bundle.graph[node_type].num_nodes == len(raw_ids)
        assert all(bundle.idmap.index_of(node_type, raw) == index for index, raw in enumerate(raw_ids))

    # Edges: one per (user, item) pair, from its latest row (stable by timestamp, later lines winning ties).
    latest: dict[tuple[str, str], tuple[float, float]] = {}
    for row in sorted(kept, key=lambda row: float(row[3])):
        latest[(row[0], row[1])] = (float(row[2]), float(row[3]))
    interactions = bundle.interactions
    built = {(bundle.idmap.raw("user", u), bundle.idmap.raw("item", i)): (float(r), float(t))
             for u, i, r, t in zip(interactions.user, interactions.item, interactions.rating, interactions.timestamp)}
    assert len(interactions.user) == len(latest)
    assert built == {pair: (float(np.float32(rating)), time) for pair, (rating, time) in latest.items()}


@SETTINGS
@given(content=st.binary(max_size=120), name=st.sampled_from(["t.csv", "t.tsv", "t.inter", "t.csv.gz"]))
def test_reader_on_arbitrary_bytes_raises_only_data_errors(content, name):
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / name, content)
        try:
            frame = read_table(source(path))
        except GraphrecError as exc:
            assert isinstance(exc, DataError) and name in str(exc)
            return
    assert len(frame) > 0 and frame.index.min() >= 2  # line numbers, after the header line


@SETTINGS
@given(text=st.text(alphabet=',;\t"\r\n \x00é1a\x85', max_size=60), bom=st.booleans(),
       name=st.sampled_from(["t.csv", "t.tsv", "t.inter"]))
def test_reader_on_delimiter_soup_raises_only_data_errors(text, bom, name):
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / name, ("\ufeff" if bom else "") + text)
        try:
            frame = read_table(source(path))
        except GraphrecError as exc:
            assert isinstance(exc, DataError) and name in str(exc)
            return
    columns = list(frame.columns)
    assert columns and all(columns) and len(set(columns)) == len(columns)
    assert not columns[0].startswith("\ufeff")
    assert not any("\r" in value for value in frame.to_numpy().ravel())
