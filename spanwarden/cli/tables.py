"""Tables that stay readable in a narrow terminal: nothing is cut off with an ellipsis (a long agent name
folds onto a second line, whole), and when the columns cannot all fit, the least useful ones are left out
and the caption says which — instead of rich squeezing every column to a few letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table

WRAP_AT = 16  # a column of text is comfortable at this width (it wraps at spaces); names want their length
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

    def comfortable(self, cells: Sequence[str]) -> int:
        """The width it reads well at: its longest cell (or header word), up to where it may wrap."""
        longest = max((cell_len(part) for c in cells for part in c.splitlines()), default=0)
        header = max((cell_len(word) for word in self.header.split()), default=0)
        return min(max(longest, header), NAME_AT if self.name else max(WRAP_AT, header))


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, title: str | None = None,
           styles: Sequence[str] | None = None, more: str = "") -> Table:
    """A table of `rows` (one cell per column) at most `width` columns wide when it can be: when it does not
    fit unwrapped, columns empty in every row are left out first, then by `drop`, until the rest fit at
    their comfortable widths; space left over widens them. `more`: where the left-out ones can be seen."""
    def frame(n: int) -> int:  # borders and padding of n columns
        return 3 * n + 1

    natural = [c.natural([r[i] for r in rows]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    widths: list[int | None] = [None] * len(columns)
    if sum(natural) + frame(len(shown)) > width:
        need = [c.comfortable([r[i] for r in rows]) for i, c in enumerate(columns)]
        empty = {i for i in shown if not any(r[i] for r in rows)}
        droppable = sorted((i for i in shown if columns[i].drop), key=lambda i: (i not in empty, -columns[i].drop))
        while droppable and sum(need[i] for i in shown) + frame(len(shown)) > width:
            shown.remove(droppable.pop(0))
        spare = width - frame(len(shown)) - sum(need[i] for i in shown)
        if spare >= 0:  # else even the columns always shown do not fit: rich folds them
            for i in shown:
                extra = min(spare, natural[i] - need[i])
                widths[i], spare = need[i] + extra, spare - extra
    left_out = [c.header for i, c in enumerate(columns) if i not in shown and any(r[i] for r in rows)]
    caption = f"not shown at this width: {', '.join(left_out)}{more}" if left_out else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i in shown:
        table.add_column(columns[i].header, justify="right" if columns[i].right else "left", overflow="fold",
                         width=widths[i])
    for n, row in enumerate(rows):
        table.add_row(*(row[i] for i in shown), style=styles[n] if styles else None)
    return table
