"""Tables that stay readable in a narrow terminal: an agent's name keeps its whole width (up to NAME_AT),
nothing is cut off with an ellipsis (text wraps, a long word folds), and when the columns cannot all fit, the
least useful ones are left out and the caption says which — instead of rich squeezing every column to a few
letters ("customer-supp…")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table

WRAP_AT = 16  # a column of text is comfortable at this width (it wraps at spaces); names want their length
TIGHT_AT = 10  # and still readable at this one, before a column worth keeping (`drop` 1) is left out
NAME_AT = 40  # a name longer than this folds


@dataclass(frozen=True)
class Column:
    header: str
    drop: int = 0  # 0: always shown; otherwise the higher, the sooner it is left out when narrow
    right: bool = False  # numbers
    name: bool = False  # an agent's name: given its whole length (up to NAME_AT) before other columns

    def natural(self, cells: Sequence[str]) -> int:
        """Its width with nothing wrapped: the longest cell, or the header."""
        return max((cell_len(part) for c in (self.header, *cells) for part in c.splitlines()), default=0)

    def comfortable(self, cells: Sequence[str], wrap_at: int = WRAP_AT) -> int:
        """The width it reads well at: its longest cell (or header word), up to where it may wrap."""
        longest = max((cell_len(part) for c in cells for part in c.splitlines()), default=0)
        header = max((cell_len(word) for word in self.header.split()), default=0)
        return min(max(longest, header), NAME_AT if self.name else max(wrap_at, header))


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, title: str | None = None,
           styles: Sequence[str] | None = None, more: str = "") -> Table:
    """A table of `rows` (one cell per column) at most `width` columns wide when it can be (`layout`).
    `more`: where the columns left out can be seen, for the caption that names them."""
    shown, widths = layout(columns, rows, width)
    left_out = [c.header for i, c in enumerate(columns) if i not in shown and any(r[i] for r in rows)]
    caption = f"not shown at this width: {', '.join(left_out)}{more}" if left_out else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i in shown:
        table.add_column(columns[i].header, justify="right" if columns[i].right else "left", overflow="fold",
                         width=widths[i])
    for n, row in enumerate(rows):
        table.add_row(*(row[i] for i in shown), style=styles[n] if styles else None)
    return table


def layout(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> tuple[list[int],
                                                                                         list[int | None]]:
    """The columns shown and their widths (None: rich's own). All of them, unwrapped, when they fit; else
    columns empty in every row go first, then those with `drop` >= 2 (the higher the sooner) while the rest
    do not fit at comfortable widths; then the rest are let wrap tighter (TIGHT_AT) before a `drop` 1 column
    goes. Space left over widens the columns that wrap."""
    cells = [[r[i] for r in rows] for i in range(len(columns))]
    natural = [c.natural(cells[i]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    widths: list[int | None] = [None] * len(columns)

    def fits(need: list[int]) -> bool:  # with the borders and padding of the columns shown
        return sum(need[i] for i in shown) + 3 * len(shown) + 1 <= width

    if fits(natural):
        return shown, widths
    empty = {i for i in shown if not any(cells[i])}
    droppable = sorted((i for i in shown if columns[i].drop), key=lambda i: (i not in empty, -columns[i].drop))
    need = [c.comfortable(cells[i]) for i, c in enumerate(columns)]
    while droppable and not fits(need) and (droppable[0] in empty or columns[droppable[0]].drop >= 2):
        shown.remove(droppable.pop(0))
    if not fits(need):
        need = [c.comfortable(cells[i], TIGHT_AT) for i, c in enumerate(columns)]
    while droppable and not fits(need):
        shown.remove(droppable.pop(0))
    spare = width - 3 * len(shown) - 1 - sum(need[i] for i in shown)
    if spare >= 0:  # else even the columns always shown do not fit: rich folds them
        for i in shown:
            extra = min(spare, natural[i] - need[i])
            widths[i], spare = need[i] + extra, spare - extra
    return shown, widths
