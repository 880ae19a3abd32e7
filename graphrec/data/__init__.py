"""Tables in: readers for CSV/TSV/Parquet/RecBole files, id maps, splits and the synthetic generator."""

from graphrec.data.idmap import IdMap
from graphrec.data.readers import TableSource, read_table

__all__ = ["IdMap", "TableSource", "read_table"]
