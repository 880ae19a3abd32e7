"""Read the user's tables (CSV, TSV, Parquet, RecBole atomic files) with errors that point at the problem.

Every reader returns a :class:`pandas.DataFrame` of strings whose index is the
1-based line number in the file, so that later checks can say ``file:line``.
Raw ids stay strings; numbers are parsed only where a column must be numeric,
by :func:`numeric_column`.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from graphrec.errors import DataError
from graphrec.utils import suggest

FORMATS = ("auto", "csv", "tsv", "parquet", "recbole")
RECBOLE_SUFFIXES = {".inter", ".item", ".user", ".kg", ".link", ".net"}
_SEPARATORS = {"csv": ",", "tsv": "\t", "recbole": "\t"}


@dataclass(frozen=True)
class TableSource:
    """Where a table lives and how to parse it.

    Args:
        path: file path (already resolved against the data root), or several paths whose rows are concatenated.
        format: ``auto`` (by extension), ``csv``, ``tsv``, ``parquet`` or ``recbole``.
        sep: field delimiter; ``None`` uses the format's default.
        header: whether the first line names the columns.
        names: column names when ``header`` is false.
        encoding: text encoding of the file.
    """

    path: tuple[Path, ...]
    format: str = "auto"
    sep: str | None = None
    header: bool = True
    names: tuple[str, ...] | None = None
    encoding: str = "utf-8"

    @property
    def label(self) -> str:
        return ", ".join(str(p) for p in self.path)


def detect_format(path: Path) -> str:
    """Guess a file's format from its extension (a trailing ``.gz`` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in RECBOLE_SUFFIXES:
        return "recbole"
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".tsv", ".txt", ".dat", ".tab"):
        return "tsv"
    raise DataError(
        f"{path}: cannot tell the format from the extension '{suffix or '(none)'}'; "
        f"set format: to one of {', '.join(FORMATS[1:])}"
    )


def read_table(source: TableSource) -> pd.DataFrame:
    """Read every file of ``source`` into one string DataFrame indexed by line number.

    Raises:
        DataError: the file is missing, empty, not decodable, has a duplicate or
            missing header, or a row has the wrong number of fields.
    """
    if not source.path:
        raise DataError("a table lists no file (path: [] in the recipe); name at least one file")
    frames = [_read_one(path, source) for path in source.path]
    for path, frame in zip(source.path, frames):
        frame.attrs["files"] = [(path, len(frame))]
    if len(frames) == 1:
        return frames[0]
    columns = list(frames[0].columns)
    for path, frame in zip(source.path[1:], frames[1:]):
        if list(frame.columns) != columns:
            raise DataError(
                f"{path}: columns {list(frame.columns)} differ from {columns} in {source.path[0]}; "
                "files listed together must share their columns"
            )
    combined = pd.concat(frames)  # the index keeps each file's own line numbers
    combined.attrs["files"] = [(path, len(frame)) for path, frame in zip(source.path, frames)]
    return combined


def _read_one(path: Path, source: TableSource) -> pd.DataFrame:
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f" (folder {path.parent} does not exist either; check --data-root)"
        raise DataError(f"{path}: file not found{hint}")
    fmt = detect_format(path) if source.format == "auto" else source.format
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format '{fmt}'{suggest(fmt, FORMATS)}; expected one of {', '.join(FORMATS[1:])}")
    if fmt == "parquet":
        return _read_parquet(path)
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}); the file may be truncated") from None
    text = _decode(raw, path, source.encoding)
    if text.startswith("\ufeff"):  # a byte-order mark would otherwise glue itself to the first column name
        text = text[1:]
    if not text.strip():
        raise DataError(f"{path}: file is empty (expected a header line and at least one row)")
    if "\x00" in text:  # a binary file, or one padded with zeros by an interrupted copy
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}:{line}: NUL byte in a text table (expected {fmt.upper()} text); "
                        "the file may be binary, compressed without a .gz name, or corrupt")
    sep = source.sep or _SEPARATORS[fmt]
    if len(sep) != 1:
        raise DataError(f"{path}: sep: {sep!r} must be a single character such as ',', '\\t', ';' or '|' "
                        "(a multi-character delimiter like '::' is not supported; convert the file first)")
    return _parse_delimited(text, path, sep, source, recbole=(fmt == "recbole"))


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{path}:1: the file starts with a UTF-16 byte-order mark, not {encoding} text; "
                            "set encoding: utf-16 in the recipe for this table (or save the file as UTF-8)") from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}:{line}: byte 0x{raw[exc.start]:02x} is not valid {encoding}; "
            "set encoding: (e.g. latin-1) in the recipe for this table"
        ) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'") from None


def _parse_delimited(text: str, path: Path, sep: str, source: TableSource, recbole: bool) -> pd.DataFrame:
    # Only \n, \r\n and \r end a line (str.splitlines would also split on \x85 or \u2028 inside a value).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header_line: list[str] | None = None
    if source.header:
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
        try:
            header_line = next(csv.reader([lines[0]], delimiter=sep, quoting=quoting, strict=True))
        except csv.Error as exc:  # e.g. '"user,item': a quote that is never closed
            raise DataError(f"{path}:1: cannot read the header ({exc}); expected column names separated by "
                            f"{sep!r}, a quoted name closed by '\"'") from None
        header_line = [name.strip() for name in header_line]
        if len(header_line) > 1 and header_line[-1] == "" and lines[0].endswith(sep):
            header_line.pop()  # a trailing delimiter ends the header line as it ends every row
        _check_delimiter(header_line, path, sep)  # before ':type' is cut off: 'user_id:token,item_id:token'
        if recbole:
            header_line = [name.split(":", 1)[0] for name in header_line]
        _check_header(header_line, path)
        body_start = 1
    else:
        if not source.names:
            raise DataError(f"{path}: header: false needs names: [column, ...] in the recipe")
        header_line = list(source.names)
        _check_header(header_line, path, where="names: in the recipe")
        body_start = 0
    _check_field_counts(lines, body_start, len(header_line), sep, path)
    try:
        with warnings.catch_warnings():
            # pandas warns when it drops a trailing empty field; every other mismatch was refused just above
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO("\n".join(lines[body_start:])),
                sep=sep,
                header=None,
                names=header_line,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
                engine="c",
                index_col=False,
            )
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {_parser_message(str(exc), body_start)}") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=header_line, dtype=str)
    frame.index = pd.RangeIndex(body_start + 1, body_start + 1 + len(frame))
    frame = frame.fillna("")
    # Drop blank lines but keep the line numbers of the rest.
    blank = (frame == "").all(axis=1)
    frame = frame[~blank.to_numpy()]
    if frame.empty:
        raise DataError(f"{path}: no data rows after the header (the table is empty)")
    return frame


def _check_field_counts(lines: list[str], body_start: int, num_fields: int, sep: str, path: Path) -> None:
    """A row with too few fields (pandas pads it) or too many (pandas may drop the extra ones) is an error.

    One empty field after a trailing delimiter (``u1,i1,``) is allowed: some tools end every line that way.
    """
    body = pd.Series(lines[body_start:], dtype=object)
    counts = body.str.count(re.escape(sep)).to_numpy() + 1
    checked = (body.str.strip() != "").to_numpy()
    if sep != "\t":  # TSV is read without quoting; elsewhere a quoted value may hold the delimiter or a line break
        quotes = body.str.count('"').to_numpy()
        inside_quotes = (np.cumsum(quotes) - quotes) % 2 == 1  # the line continues a value opened above
        checked = checked & (quotes == 0) & ~inside_quotes
    trailing = body.str.endswith(sep).to_numpy() & (counts == num_fields + 1)
    wrong = checked & (counts != num_fields) & ~trailing
    if wrong.any():
        position = int(np.argmax(wrong))
        reason = "a truncated row" if counts[position] < num_fields else "an unquoted delimiter inside a value"
        raise DataError(
            f"{path}: line {body_start + position + 1}: expected {num_fields} fields, found {counts[position]} "
            f"(a wrong delimiter or {reason})"
        )


def _check_delimiter(header: list[str], path: Path, sep: str) -> None:
    """A header read as one column that holds another delimiter means the file uses that delimiter."""
    if len(header) == 1:
        for other, name in ((",", "comma"), ("\t", "tab"), (";", "semicolon"), ("|", "pipe"), (" ", "space")):
            if other != sep and other in header[0]:
                raise DataError(
                    f"{path}:1: the header has a single column '{header[0]}' that contains a {name}; "
                    f"the delimiter is probably {other!r}, not {sep!r} (set sep: in the recipe)"
                )


def _check_header(header: list[str], path: Path, where: str = "the header") -> None:
    location = f"{path}:1" if where == "the header" else f"{path}"
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{location}: column {position} of {where} has no name")
        if name in seen:
            raise DataError(f"{location}: duplicate column name '{name}' in {where} (column {position})")
        seen.add(name)


def _parser_message(message: str, body_start: int) -> str:
    # pandas: "Error tokenizing data. C error: Expected 3 fields in line 5, saw 4"
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if match:
        expected, line, saw = (int(g) for g in match.groups())
        return (
            f"line {line + body_start}: expected {expected} fields, found {saw} "
            "(a wrong delimiter, an unquoted delimiter inside a value, or a truncated file)"
        )
    # pandas: "EOF inside string starting at row 4" (rows count from 0 after the header)
    match = re.search(r"EOF inside string starting at row (\d+)", message)
    if match:
        return (
            f"line {int(match.group(1)) + body_start + 1}: a quoted value starts here and is never closed "
            "(expected a closing '\"'; a stray quote, or a truncated file)"
        )
    return f"cannot parse the file ({message.strip()})"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if frame.empty:
        raise DataError(f"{path}: the Parquet table has no rows")
    if frame.columns.duplicated().any():
        name = frame.columns[frame.columns.duplicated()][0]
        raise DataError(f"{path}: duplicate column name '{name}'")
    frame = pd.DataFrame({str(name): _parquet_strings(frame[name]) for name in frame.columns})
    frame.index = pd.RangeIndex(1, 1 + len(frame))  # Parquet has no lines: the row number stands in
    return frame


def _parquet_strings(column: pd.Series) -> np.ndarray:
    """A typed Parquet column as the strings a CSV of it would hold (nulls -> "", 10.0 -> "10", time -> seconds)."""
    null = column.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(column):
        seconds = (column - pd.Timestamp(0, tz=column.dt.tz)) // pd.Timedelta(seconds=1)  # any resolution
        values = seconds.fillna(0).astype("int64").astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_float_dtype(column) and _all_integral(column.to_numpy()[~null]):
        values = column.fillna(0).astype("int64").astype(str).to_numpy(dtype=object)  # ints that held a null
    else:
        values = column.astype(str).to_numpy(dtype=object)
    values[null] = ""
    return values


def _all_integral(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0))


def row_location(frame: pd.DataFrame, position: int) -> str:
    """``file:line`` of the row at ``position`` (0-based) of a frame made by :func:`read_table`."""
    files = frame.attrs.get("files", [])
    offset = 0
    for path, count in files:
        if position < offset + count:
            return f"{path}:{frame.index[position]}"
        offset += count
    return f"row {position + 1}"


def file_label(frame: pd.DataFrame) -> str:
    return ", ".join(str(path) for path, _ in frame.attrs.get("files", [])) or "table"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], key: str) -> None:
    """Raise a :class:`DataError` naming the first missing column and the closest one that exists."""
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{file_label(frame)}: no column '{column}' (named by recipe key {key}){suggest(column, frame.columns)}; "
                f"the file has columns {list(frame.columns)}"
            )


def require_values(frame: pd.DataFrame, column: str) -> None:
    """Raise if a column that must be filled has an empty cell."""
    empty = frame[column].to_numpy() == ""
    if empty.any():
        raise DataError(f"{row_location(frame, int(np.argmax(empty)))}: column '{column}' is empty ({int(empty.sum())} empty cells in all)")


def numeric_column(frame: pd.DataFrame, column: str, *, allow_negative: bool = True) -> np.ndarray:
    """Parse ``column`` as float64; a value that is not a finite number raises a :class:`DataError`."""
    values = frame[column].to_numpy()
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        position = int(np.argmax(bad))
        raise DataError(
            f"{row_location(frame, position)}: column '{column}' has {values[position]!r}, "
            f"which is not a finite number ({int(bad.sum())} such values in all)"
        )
    if not allow_negative and (numbers < 0).any():
        position = int(np.argmax(numbers < 0))
        raise DataError(
            f"{row_location(frame, position)}: column '{column}' has {values[position]!r}; "
            "it must not be negative"
        )
    return numbers
