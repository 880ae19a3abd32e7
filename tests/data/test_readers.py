import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphrec.data.readers import TableSource, numeric_column, read_table, require_columns, require_values
from graphrec.errors import DataError


def source(path: Path, **options) -> TableSource:
    return TableSource(path=(path,), **options)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_csv_is_read_as_strings_indexed_by_line(tmp_path):
    frame = read_table(source(write(tmp_path / "a.csv", "user,item\n007,1\n\n8,2\n")))
    assert frame["user"].tolist() == ["007", "8"]  # ids stay strings: leading zeros survive
    assert frame.index.tolist() == [2, 4]  # the blank line 3 is skipped, numbering is kept


def test_tsv_crlf_and_bom(tmp_path):
    frame = read_table(source(write(tmp_path / "a.tsv", b"\xef\xbb\xbfuser\titem\r\nu1\ti1\r\nu2\ti2\r\n")))
    assert list(frame.columns) == ["user", "item"]
    assert frame["item"].tolist() == ["i1", "i2"]


def test_recbole_header_types_are_stripped(tmp_path):
    path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t3.5\n")
    frame = read_table(source(path))
    assert list(frame.columns) == ["user_id", "item_id", "rating"]
    assert numeric_column(frame, "rating").tolist() == [3.5]


def test_gzip_and_headerless_with_names(tmp_path):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress(b"1\t10\n2\t20\n"))
    frame = read_table(source(path, header=False, names=("user", "item")))
    assert frame["item"].tolist() == ["10", "20"]
    assert frame.index.tolist() == [1, 2]


def test_parquet(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"user": [1, 2], "item": ["a", "b"]}).to_parquet(path)
    frame = read_table(source(path))
    assert frame["user"].tolist() == ["1", "2"]


def test_several_files_are_concatenated_and_errors_name_the_right_file(tmp_path):
    first = write(tmp_path / "a.csv", "user,rating\nu1,4\n")
    second = write(tmp_path / "b.csv", "user,rating\nu2,5\nu3,oops\n")
    frame = read_table(TableSource(path=(first, second)))
    assert frame["user"].tolist() == ["u1", "u2", "u3"]
    with pytest.raises(DataError, match=r"b\.csv:3: column 'rating' has 'oops'"):
        numeric_column(frame, "rating")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", r"empty.csv: file is empty"),
        ("only_header.csv", "user,item\n", r"only_header.csv: no data rows after the header"),
        ("dup.csv", "user,item,user\n1,2,3\n", r"dup.csv:1: duplicate column name 'user'"),
        ("semi.csv", "user;item\n1;2\n", r"semi.csv:1: .*semicolon; the delimiter is probably ';'"),
        ("ragged.csv", "user,item\n1,2\n3,4,5\n", r"ragged.csv: line 3: expected 2 fields, found 3"),
        ("latin.csv", b"user,name\n1,caf\xe9\n", r"latin.csv:2: byte 0xe9 is not valid utf-8; set encoding:"),
        ("noname.csv", "user,,item\n1,2,3\n", r"noname.csv:1: column 2 of the header has no name"),
    ],
)
def test_malformed_files(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        read_table(source(write(tmp_path / name, content)))


def test_missing_file_names_path_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope/a.csv: file not found \(folder .* does not exist either; check --data-root\)"):
        read_table(source(tmp_path / "nope" / "a.csv"))


def test_truncated_gzip(tmp_path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"user,item\n" + b"1,2\n" * 1000)[:40])
    with pytest.raises(DataError, match=r"a.csv.gz: not a readable gzip file"):
        read_table(source(path))


def test_corrupt_parquet(tmp_path):
    with pytest.raises(DataError, match=r"a.parquet: not a readable Parquet file"):
        read_table(source(write(tmp_path / "a.parquet", b"PAR1 garbage")))


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"cannot tell the format from the extension '.xlsx'"):
        read_table(source(write(tmp_path / "a.xlsx", "x")))


def test_missing_column_suggests_the_closest(tmp_path):
    frame = read_table(source(write(tmp_path / "a.csv", "user_id,item_id\n1,2\n")))
    with pytest.raises(DataError, match=r"a.csv: no column 'userid' \(named by recipe key interactions\) "
                                        r"\(did you mean 'user_id'\?\)"):
        require_columns(frame, ["userid"], "interactions")


def test_empty_cell_in_required_column(tmp_path):
    frame = read_table(source(write(tmp_path / "a.csv", "user,item\n1,2\n3,\n")))
    with pytest.raises(DataError, match=r"a.csv:3: column 'item' is empty"):
        require_values(frame, "item")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "five", ""])
def test_non_finite_ratings(tmp_path, bad):
    frame = read_table(source(write(tmp_path / "a.csv", f"user,rating\n1,4\n2,{bad}\n3,5\n")))
    with pytest.raises(DataError, match=r"a.csv:3: column 'rating' has .* not a finite number"):
        numeric_column(frame, "rating")


def test_negative_timestamp(tmp_path):
    frame = read_table(source(write(tmp_path / "a.csv", "user,ts\n1,5\n2,-3\n")))
    with pytest.raises(DataError, match=r"a.csv:3: column 'ts' has '-3'; it must not be negative"):
        numeric_column(frame, "ts", allow_negative=False)
    assert np.array_equal(numeric_column(frame, "ts"), [5.0, -3.0])


def test_short_row_is_an_error_not_padding(tmp_path):
    with pytest.raises(DataError, match=r"short.tsv: line 3: expected 3 fields, found 2"):
        read_table(source(write(tmp_path / "short.tsv", "user\titem\trating\nu1\ti1\t5\nu2\ti2\n")))


def test_unicode_line_separators_inside_values_do_not_split_rows(tmp_path):
    path = write(tmp_path / "a.tsv", "item\ttitle\n1\tWait\x85 what\u2028 now\n2\tok\n".encode("utf-8"))
    frame = read_table(source(path))
    assert frame["item"].tolist() == ["1", "2"]
    assert frame["title"].iloc[0] == "Wait\x85 what\u2028 now"


def test_parquet_nulls_integer_ids_and_datetimes(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({
        "item": [10, None, 30],
        "name": ["nan", None, "x"],
        "when": pd.to_datetime([100, 86_400, 946_684_800], unit="s"),
    }).to_parquet(path)
    frame = read_table(source(path))
    assert frame["item"].tolist() == ["10", "", "30"]  # matches the CSV id "10", the null is empty
    assert frame["name"].tolist() == ["nan", "", "x"]  # a real "nan" string survives
    assert frame["when"].tolist()[0] == "100"
