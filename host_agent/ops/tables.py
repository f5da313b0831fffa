"""Tables as rich renders them, and as text (what the CLI prints and the tests read)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

# Wide enough that no column wraps when the output is not a terminal (a pipe, a file, a
# test): rows stay one line each for grep and cut. On a terminal rich uses its width.
PIPE_WIDTH = 1000


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], title: str = "") -> Table:
    """A plain table: bold headers, no borders, long ids folded rather than cut."""
    shown = Table(
        *headers,
        title=title or None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=False,
    )
    for column in shown.columns:
        column.overflow = "fold"
    for row in rows:
        shown.add_row(*row)
    return shown


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def to_text(*renderables: RenderableType, width: int = PIPE_WIDTH) -> str:
    """What ``renderables`` look like printed without colour, trailing spaces cut."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    for renderable in renderables:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
