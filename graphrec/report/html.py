"""HTML pieces of the report pages: page, section, table cells, figures, number formatting, and the CSS."""

from __future__ import annotations

import base64
import math
import re
from html import escape
from typing import Any, Sequence

from graphrec.report.folder import is_number

# rows of the comparison table where less is better; everything else is a ranking or path metric
LOWER_IS_BETTER = {"seconds/epoch", "test eval seconds"}
COUNT_KEYS = {"num_users", "patterns"}


def side_by_side(left: str, right: str) -> str:
    """Two blocks in one row (wrapping on a narrow page), or whichever of them there is."""
    return f'<div class="duo">{left}{right}</div>' if left and right else left or right


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document: the CSS inline, a header, then the non-empty ``sections``."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)} — graphrec report</title><style>{CSS}</style></head>\n<body><main>"
            f'<header><div class="brand">graphrec report</div><h1>{escape(title)}</h1>'
            f'<p class="subtitle">{escape(subtitle)}</p></header>\n'
            + "\n".join(part for part in sections if part) + "\n</main></body></html>\n")


def section(title: str, body: str, note: str = "") -> str:
    note = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{note}{body}</section>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = f"<thead><tr>{''.join(header)}</tr></thead>" if header else ""
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f'<div class="scroll"><table>{head}<tbody>{body}</tbody></table></div>'


def th(text: str, css: str = "") -> str:
    return f'<th class="{css}">{escape(text)}</th>' if css else f"<th>{escape(text)}</th>"


def td(value: Any, best: bool = False, key: str = "") -> str:
    if key in COUNT_KEYS and is_number(value) and float(value).is_integer():
        value = int(value)  # a count written as a float (a mean over batches of whole numbers)
    text = escape(number(value))
    return f'<td class="num best"><strong>{text}</strong></td>' if best else f'<td class="num">{text}</td>'


def best_row(label: str, values: Sequence[Any]) -> list[str]:
    """A comparison row with the best value (largest, or smallest for times) in bold."""
    key = label.split(" ")[-1]
    numbers = [v for v in values if is_number(v)]
    ranked = len(numbers) > 1 and key != "num_users" and label != "epochs run"
    best = (min if label in LOWER_IS_BETTER else max)(numbers) if ranked else None
    return [th(label, "key")] + [td(v, best is not None and is_number(v) and v == best, key) for v in values]


def group_row(title: str, num_runs: int) -> list[str]:
    return [f'<th class="group-row" colspan="{num_runs + 1}">{escape(title)}</th>']


def figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def emphasis(text: str) -> str:
    """A path sentence, escaped, with the renderer's ``*item*`` marks as italics."""
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", escape(text))


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --soft: #f5f7fa; --accent: #2f6fb0; --hit: #1f7a4d; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 48px; }
header { margin-bottom: 18px; }
.brand { color: var(--accent); font-size: 12px; font-weight: 600; letter-spacing: .08em; text-transform: uppercase; }
h1 { margin: 2px 0 0; font-size: 28px; font-weight: 650; word-break: break-word; }
.subtitle { margin: 2px 0 0; color: var(--muted); font-size: 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
          margin: 16px 0; box-shadow: 0 1px 2px rgba(31, 41, 51, .04); }
h2 { margin: 0 0 10px; font-size: 18px; font-weight: 650; }
h3 { margin: 0 0 4px; font-size: 15px; }
.note, .context { color: var(--muted); font-size: 13px; margin: -4px 0 10px; }
.context { margin: 0 0 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 4px 0 8px; }
th, td { padding: 5px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
th.key { font-weight: 500; white-space: nowrap; }
th.group-row { background: #fff; color: var(--accent); font-size: 12px; text-transform: uppercase;
               letter-spacing: .06em; padding-top: 12px; border-bottom: 1px solid var(--line); }
td.monitor { color: var(--accent); font-weight: 650; background: #eaf2fb; }
thead th.group { text-align: center; border-bottom: 1px solid var(--line); }
thead tr + tr th { border-bottom: 2px solid var(--line); }
.pairs { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 6px 16px; margin: 0 0 6px; }
.pairs div { border-bottom: 1px solid var(--line); padding: 3px 0; display: flex; justify-content: space-between;
             gap: 8px; }
.pairs dt { color: var(--muted); font-size: 13px; }
.pairs dd { margin: 0; text-align: right; word-break: break-word; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: #e8f3ec; }
th .sub, h3 .sub { display: block; color: var(--muted); font-weight: 400; font-size: 12px; }
h3 .sub { display: inline; margin-left: 6px; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
td.path { word-break: break-all; font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      overflow-x: auto; }
details summary { cursor: pointer; color: var(--accent); font-size: 13.5px; margin-top: 6px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 10px; }
.fact { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.fact:first-child { border-color: var(--accent); background: #f3f8fd; }
.fact .label { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em; }
.fact .value { font-size: 16px; font-weight: 600; word-break: break-word; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(420px, 100%), 1fr)); gap: 16px; }
.duo { display: flex; flex-wrap: wrap; gap: 16px; margin: 16px 0; align-items: flex-start; }
.duo > * { margin: 0; min-width: 0; }
.duo > :first-child { flex: 0 1 auto; }
.duo > :last-child { flex: 1 1 360px; }
.split { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
.split > figure { flex: 1 1 360px; margin: 4px 0 0; }
figure { margin: 8px 0 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
.users { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 14px; }
.user { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.user ol { margin: 8px 0 0; padding-left: 26px; font-size: 13.5px; }
.user li { padding: 2px 0; }
.user li.is-hit .item { color: var(--hit); font-weight: 600; }
.item { margin-right: 6px; }
.id { color: var(--muted); font-size: 12px; }
.user li .row { display: flex; justify-content: space-between; gap: 10px; }
.score { color: var(--muted); font-variant-numeric: tabular-nums; font-size: 12.5px; white-space: nowrap; }
.hit { white-space: nowrap; background: var(--hit); color: #fff; border-radius: 9px; padding: 0 7px; font-size: 11px;
       margin-left: 4px; }
.why { color: var(--muted); font-size: 12.5px; margin: 1px 0 4px; }
"""
