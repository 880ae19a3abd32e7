"""Malformed tables (CSV, TSV, Parquet, RecBole atomic files) through :func:`graphrec.data.readers.read_table`.

Every bad file ends in a :class:`DataError` whose message starts with the file (and the line, where
there is one) and says what was expected. Odd but valid files (a byte-order mark, CRLF or CR line
ends, a trailing delimiter) are read as if they were plain.
"""

from __future__ import annotations

import gzip
import io

import pandas as pd
import pytest

from graphrec.data.readers import numeric_column, read_table, require_values
from graphrec.errors import DataError
from tests.bad_input.conftest import source, write

# (file name, content, TableSource options, message): the message regex names the file and the rule.
MALFORMED_TEXT = [
    pytest.param("interactions.csv", b"", {}, r"interactions\.csv: file is empty \(expected a header line",
                 id="empty-file"),
    pytest.param("interactions.csv", "\n  \n\t\n", {}, r"interactions\.csv: file is empty", id="blank-lines-only"),
    pytest.param("interactions.csv", "user,item,rating\n", {}, r"interactions\.csv: no data rows after the header",
                 id="header-only"),
    pytest.param("interactions.csv", "user,item,rating\nu1,i1,5\nu2,i", {},
                 r"interactions\.csv: line 3: expected 3 fields, found 2 \(a wrong delimiter or a truncated row\)",
                 id="truncated-mid-row"),
    pytest.param("interactions.csv", 'user,item,rating\nu1,i1,5\nu2,"Toy Sto', {},
                 r"interactions\.csv: line 3: a quoted value starts here and is never closed \(expected a closing '\"'",
                 id="truncated-inside-quotes"),
    pytest.param("interactions.csv", "user;item;rating\nu1;i1;5\n", {},
                 r"interactions\.csv:1: the header has a single column 'user;item;rating' that contains a semicolon; "
                 r"the delimiter is probably ';'", id="semicolon-read-as-csv"),
    pytest.param("interactions.csv", "user\titem\nu1\ti1\n", {},
                 r"interactions\.csv:1: .* contains a tab; the delimiter is probably '\\t', not ','",
                 id="tab-file-named-csv"),
    pytest.param("interactions.csv", "user,item,rating\nu1\ti1\t5\n", {},
                 r"interactions\.csv: line 2: expected 3 fields, found 1", id="rows-use-another-delimiter"),
    pytest.param("items.csv", "item,title\ni1,Heat\ni2,Lord of the Rings, The\n", {},
                 r"items\.csv: line 3: expected 2 fields, found 3 \(a wrong delimiter or an unquoted delimiter "
                 r"inside a value\)", id="unquoted-comma-in-value"),
    pytest.param("items.csv", "item,title\ni1,Heat,1995\ni2,Up,2009\n", {},
                 r"items\.csv: line 2: expected 2 fields, found 3", id="every-row-one-field-too-many"),
    pytest.param("items.csv", b"item,title\ni1,Heat\ni2,Am\xe9lie\n", {},
                 r"items\.csv:3: byte 0xe9 is not valid utf-8; set encoding: \(e\.g\. latin-1\)", id="latin-1-bytes"),
    pytest.param("items.csv", "item,title\ni1,Heat\n".encode("utf-16"), {},
                 r"items\.csv:1: the file starts with a UTF-16 byte-order mark, not utf-8 text; set encoding: utf-16",
                 id="utf-16-file"),
    pytest.param("items.csv", b"item,title\ni1,Heat\n\x00\x00\x00\x00", {},
                 r"items\.csv:3: NUL byte in a text table \(expected CSV text\)", id="nul-padding"),
    pytest.param("items.csv", '"item,title\ni1,Heat\n', {},
                 r"items\.csv:1: cannot read the header \(unexpected end of data\); expected column names separated by",
                 id="header-quote-never-closed"),
    pytest.param("items.csv", "item,title,item\ni1,Heat,x\n", {},
                 r"items\.csv:1: duplicate column name 'item' in the header \(column 3\)", id="duplicate-header"),
    pytest.param("items.csv", "item,,title\ni1,x,Heat\n", {}, r"items\.csv:1: column 2 of the header has no name",
                 id="unnamed-header-column"),
    pytest.param("items.csv", "item,title\ni1,Heat\n", {"encoding": "utf-9"}, r"items\.csv: unknown encoding 'utf-9'",
                 id="unknown-encoding"),
    pytest.param("ratings.dat", "1::10::5\n", {"sep": "::", "header": False, "names": ("user", "item", "rating")},
                 r"ratings\.dat: sep: '::' must be a single character", id="multi-character-sep"),
    pytest.param("ratings.tsv", "1\t10\n", {"header": False},
                 r"ratings\.tsv: header: false needs names: \[column, \.\.\.\]", id="headerless-without-names"),
    pytest.param("ratings.tsv", "1\t10\n", {"header": False, "names": ("user", "user")},
                 r"ratings\.tsv: duplicate column name 'user' in names: in the recipe", id="headerless-duplicate-names"),
    pytest.param("ratings.tsv", "1\t10\t5\n", {"header": False, "names": ("user", "item")},
                 r"ratings\.tsv: line 1: expected 2 fields, found 3", id="headerless-names-too-few"),
    pytest.param("ratings.xlsx", "user,item\n", {}, r"ratings\.xlsx: cannot tell the format from the extension '\.xlsx'",
                 id="unknown-extension"),
    pytest.param("ratings.csv.gz", "user,item\nu1,i1\n", {},
                 r"ratings\.csv\.gz: not a readable gzip file .*the file may be truncated", id="gz-name-plain-text"),
    pytest.param("ratings.csv.gz", gzip.compress(b"user,item\n" + b"u1,i1\n" * 500)[:30], {},
                 r"ratings\.csv\.gz: not a readable gzip file", id="truncated-gzip"),
    pytest.param("ml.inter", "user_id:token,item_id:token\n1,2\n", {},
                 r"ml\.inter:1: the header has a single column 'user_id:token,item_id:token' that contains a comma; "
                 r"the delimiter is probably ','", id="recbole-comma-separated"),
    pytest.param("ml.inter", "user_id:token\t:token\n1\t2\n", {}, r"ml\.inter:1: column 2 of the header has no name",
                 id="recbole-type-without-name"),
    pytest.param("ml.inter", "item_id:token\titem_id:float\n1\t2\n", {},
                 r"ml\.inter:1: duplicate column name 'item_id' in the header", id="recbole-same-name-two-types"),
    pytest.param("ml.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t5\n3\t4\n", {},
                 r"ml\.inter: line 3: expected 3 fields, found 2", id="recbole-short-row"),
]


@pytest.mark.parametrize(("name", "content", "options", "message"), MALFORMED_TEXT)
def test_malformed_files_name_the_file_and_the_rule(tmp_path, name, content, options, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message):
        read_table(source(path, **options))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"data/ratings\.csv: file not found \(folder .*data does not exist either; "
                                        r"check --data-root\)"):
        read_table(source(tmp_path / "data" / "ratings.csv"))


def test_files_listed_together_must_share_columns(tmp_path):
    first = write(tmp_path / "train.csv", "user,item\nu1,i1\n")
    second = write(tmp_path / "test.csv", "user,item,rating\nu2,i2,5\n")
    with pytest.raises(DataError, match=r"test\.csv: columns \['user', 'item', 'rating'\] differ from "
                                        r"\['user', 'item'\] in .*train\.csv"):
        read_table(source(first, second))


def test_a_table_with_no_file(tmp_path):
    with pytest.raises(DataError, match=r"a table lists no file \(path: \[\] in the recipe\)"):
        read_table(source())


# ------------------------------------------------------------------------------------------------ Parquet
def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", r"ratings\.parquet: not a readable Parquet file \(.*0 bytes", id="parquet-empty-file"),
        pytest.param(b"user,item\nu1,i1\n", r"ratings\.parquet: not a readable Parquet file", id="csv-named-parquet"),
        pytest.param(_parquet_bytes(pd.DataFrame({"user": ["u1"] * 50, "item": range(50)}))[:300],
                     r"ratings\.parquet: not a readable Parquet file", id="parquet-truncated"),
        pytest.param(_parquet_bytes(pd.DataFrame({"user": pd.Series([], dtype=str)})),
                     r"ratings\.parquet: the Parquet table has no rows", id="parquet-zero-rows"),
    ],
)
def test_malformed_parquet(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        read_table(source(write(tmp_path / "ratings.parquet", content)))


def test_parquet_nan_and_inf_ratings_are_caught_with_their_row(tmp_path):
    path = tmp_path / "ratings.parquet"
    pd.DataFrame({"user": ["u1", "u2", "u3"], "rating": [4.5, float("inf"), None]}).to_parquet(path)
    frame = read_table(source(path))
    with pytest.raises(DataError, match=r"ratings\.parquet:2: column 'rating' has 'inf', which is not a finite "
                                        r"number \(2 such values in all\)"):
        numeric_column(frame, "rating")


# ------------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        pytest.param("NaN", "'NaN'", id="rating-NaN"),
        pytest.param("Infinity", "'Infinity'", id="rating-Infinity"),
        pytest.param("1e999", "'1e999'", id="rating-overflows-to-inf"),
        pytest.param('"4,5"', "'4,5'", id="rating-decimal-comma"),
        pytest.param("0x10", "'0x10'", id="rating-hex"),
    ],
)
def test_ratings_that_are_not_finite_numbers(tmp_path, cell, shown):
    frame = read_table(source(write(tmp_path / "interactions.csv", f"user,item,rating\nu1,i1,4\nu2,i2,{cell}\n")))
    with pytest.raises(DataError, match=rf"interactions\.csv:3: column 'rating' has {shown}, which is not a finite "
                                        r"number"):
        numeric_column(frame, "rating")


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        pytest.param("-1", r"interactions\.csv:3: column 'timestamp' has '-1'; it must not be negative",
                     id="timestamp-negative"),
        pytest.param("2021-03-04", r"interactions\.csv:3: column 'timestamp' has '2021-03-04', which is not a finite "
                                   r"number", id="timestamp-as-date"),
    ],
)
def test_bad_timestamps(tmp_path, cell, message):
    frame = read_table(source(write(tmp_path / "interactions.csv",
                                    f"user,item,timestamp\nu1,i1,100\nu2,i2,{cell}\n")))
    with pytest.raises(DataError, match=message):
        numeric_column(frame, "timestamp", allow_negative=False)


def test_empty_id_cell_names_line_and_column(tmp_path):
    frame = read_table(source(write(tmp_path / "interactions.tsv", "user\titem\nu1\ti1\n\ti2\nu3\t\n")))
    with pytest.raises(DataError, match=r"interactions\.tsv:3: column 'user' is empty \(1 empty cells in all\)"):
        require_values(frame, "user")


# ------------------------------------------------------------------------------------------------ odd but valid
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xef\xbb\xbfuser,item,rating\r\nu1,i1,5\r\nu2,i2,4\r\n", id="bom-and-crlf"),
        pytest.param(b"\xef\xbb\xbfuser,item,rating\nu1,i1,5\nu2,i2,4", id="bom-no-final-newline"),
        pytest.param(b"user,item,rating\ru1,i1,5\ru2,i2,4\r", id="cr-only-line-ends"),
        pytest.param(b"user,item,rating,\r\nu1,i1,5,\r\nu2,i2,4,\r\n", id="trailing-delimiter-and-crlf"),
    ],
)
def test_bom_and_line_ends_are_read_as_plain_text(tmp_path, content):
    frame = read_table(source(write(tmp_path / "interactions.csv", content)))
    assert list(frame.columns)[:3] == ["user", "item", "rating"]  # no '\ufeff' glued to 'user'
    assert frame["user"].tolist() == ["u1", "u2"]
    assert frame["rating"].tolist() == ["5", "4"]  # no '\r' left on the last field
    assert frame.index.tolist() == [2, 3]


def test_a_bom_on_the_second_file_of_a_table_is_dropped_too(tmp_path):
    first = write(tmp_path / "a.csv", "user,item\nu1,i1\n")
    second = write(tmp_path / "b.csv", b"\xef\xbb\xbfuser,item\r\nu2,i2\r\n")
    assert read_table(source(first, second))["user"].tolist() == ["u1", "u2"]


def test_quoted_values_may_hold_the_delimiter_and_line_breaks(tmp_path):
    path = write(tmp_path / "items.csv", 'item,title\ni1,"Lord of the Rings, The"\ni2,"two\nlines, here"\ni3,Up\n')
    frame = read_table(source(path))
    assert frame["title"].tolist() == ["Lord of the Rings, The", "two\nlines, here", "Up"]


def test_latin_1_file_with_its_encoding_set(tmp_path):
    frame = read_table(source(write(tmp_path / "items.csv", b"item,title\ni1,Am\xe9lie\n"), encoding="latin-1"))
    assert frame["title"].tolist() == ["Amélie"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"\xff\xfe\x00", r"odd\.csv:1: the file starts with a UTF-16 byte-order mark", id="utf-16-fragment"),
        pytest.param(b"\x1f\x8b\x08\x00junk", r"odd\.csv:1: byte 0x8b is not valid utf-8", id="gzip-bytes-named-csv"),
        pytest.param(b'"', r"odd\.csv:1: cannot read the header \(unexpected end of data\)", id="lone-quote"),
        pytest.param(b"\r\r\r", r"odd\.csv: file is empty", id="carriage-returns-only"),
        pytest.param(b"a\n\x85\n", r"odd\.csv:2: byte 0x85 is not valid utf-8", id="latin-1-next-line-byte"),
    ],
)
def test_odd_bytes_end_in_a_data_error(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        read_table(source(write(tmp_path / "odd.csv", content)))
