"""Tables that fit the terminal: columns are abbreviated, then dropped, least important first.

An operator's terminal is often 80 columns. Instead of cutting every column (what a table that wraps
does), :func:`fit` keeps whole the columns that identify a row (the run-id prefix), drops a column whose
value is the same on every row, switches to shorter forms of headers and cells (``STARTED`` as
``11-24 17:37Z``), and only then drops columns, by priority. A wider terminal gets every column.

A cell is a string, a :class:`rich.text.Text` (for colour), or a tuple of forms, longest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from agent_otel.cli.common import printable

GAP = 2


@dataclass(frozen=True)
class Column:
    header: str
    #: 0 is never dropped; a higher number is dropped earlier when the terminal is too narrow.
    priority: int
    right: bool = False
    #: the header when the column uses its shorter form
    short: str | None = None
    #: width to reserve when the rows are not known in advance (``tail``), per form; longer cells are cut
    nominal: int | tuple[int, ...] = 0
    #: cells longer than this are cut with an ellipsis
    max_width: int | None = None
    #: with two or more rows all alike, the column goes first (a note under the table gives its value)
    drop_if_constant: bool = False


Cell = str | Text | tuple[str | Text, ...]


def _forms(cell: Cell) -> tuple[Text, ...]:
    items = cell if isinstance(cell, tuple) else (cell,)
    return tuple(_printable(i) if isinstance(i, Text) else Text(printable(str(i))) for i in items)


def _printable(text: Text) -> Text:
    plain = printable(text.plain)
    return text if plain == text.plain else Text(plain, style=text.style)


@dataclass
class Layout:
    """The chosen columns, their widths and forms; renders a header and rows as single lines."""

    columns: list[tuple[int, Column, int, int]]  # (index in the row, column, form, width)
    constant: list[tuple[str, str]]  # (header, value) of columns dropped because every row had that value

    @property
    def width(self) -> int:
        return sum(w for *_, w in self.columns) + GAP * max(len(self.columns) - 1, 0)

    def header(self) -> Text:
        cells = [
            Text(col.short if form and col.short else col.header, style="bold")
            for _, col, form, _ in self.columns
        ]
        return self._join(cells)

    def line(self, row: Sequence[Cell]) -> Text:
        cells = []
        for index, _, form, _ in self.columns:
            forms = _forms(row[index])
            cells.append(forms[min(form, len(forms) - 1)])
        return self._join(cells)

    def _join(self, cells: list[Text]) -> Text:
        out = Text()
        for k, ((_, col, _, width), cell) in enumerate(zip(self.columns, cells, strict=True)):
            text = cell.copy()
            if text.cell_len > width:
                text.truncate(width, overflow="ellipsis")
            pad = " " * (width - text.cell_len)
            if k:
                out.append(" " * GAP)
            if col.right:
                out.append(pad)
                out.append_text(text)
            elif k < len(self.columns) - 1:
                out.append_text(text)
                out.append(pad)
            else:
                out.append_text(text)
        out.rstrip()
        return out


def fit(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int, reserve: bool = False
) -> Layout:
    """Choose columns and forms so that a line of ``rows`` fits in ``width`` cells (when it can).

    ``reserve``: the rows to come are not known yet (``tail``), so every column keeps at least its
    ``nominal`` width."""
    # Every cell's forms once, and each (column, form) width once: the search below asks for the total
    # width after every step, and measuring every cell again each time cost `runs` ~8 ms of CPU for 20
    # rows of 11 columns (under 1 ms now).
    forms = [[_forms(r[i]) for r in rows] for i in range(len(columns))]
    n_forms = [
        max(
            [2 if col.short else 1, len(col.nominal) if isinstance(col.nominal, tuple) else 1]
            + [len(f) for f in forms[i]]
        )
        for i, col in enumerate(columns)
    ]
    widths: dict[tuple[int, int], int] = {}

    def col_width(i: int, form: int) -> int:
        known = widths.get((i, form))
        if known is not None:
            return known
        col = columns[i]
        header = col.short if form and col.short else col.header
        nominal = col.nominal if isinstance(col.nominal, tuple) else (col.nominal,)
        reserved = nominal[min(form, len(nominal) - 1)] if reserve else 0
        w = max([len(header), reserved] + [f[min(form, len(f) - 1)].cell_len for f in forms[i]])
        w = min(w, max(col.max_width, len(header))) if col.max_width else w
        widths[i, form] = w
        return w

    state = {i: 0 for i in range(len(columns))}  # column index -> form

    def total() -> int:
        return sum(col_width(i, f) for i, f in state.items()) + GAP * max(len(state) - 1, 0)

    by_weakness = sorted(state, key=lambda i: -columns[i].priority)
    constant: list[tuple[str, str]] = []
    if total() > width and len(rows) > 1:
        for i in by_weakness:
            if total() <= width:
                break
            col = columns[i]
            if col.drop_if_constant and col.priority and len({f[0].plain for f in forms[i]}) == 1:
                del state[i]
                constant.append((col.header, forms[i][0][0].plain))
    for i in by_weakness:
        while i in state and total() > width and state[i] < n_forms[i] - 1:
            state[i] += 1
    for i in by_weakness:
        if total() <= width:
            break
        if columns[i].priority and i in state:
            del state[i]
    kept = [(i, columns[i], state[i], col_width(i, state[i])) for i in sorted(state)]
    order = [col.header for col in columns]
    return Layout(kept, sorted(constant, key=lambda c: order.index(c[0])))


def render(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> Text:
    """The header and every row, as one Text of lines that fit ``width``; then a note naming the value of
    each column left out because every row had the same one."""
    layout = fit(columns, rows, width)
    lines = [layout.header(), *(layout.line(r) for r in rows)]
    if layout.constant:
        note = ", ".join(f"{header.lower()} {value}" for header, value in layout.constant)
        lines.append(Text(f"(all rows: {note})", style="dim"))
    return Text("\n").join(lines)


def print_table(
    console: Any, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str = ""
) -> None:
    if title:
        console.print(Text(title, style="bold"))
    console.print(render(columns, rows, console.width), soft_wrap=True)
