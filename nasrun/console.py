"""The terminal: one rich console on stderr (progress, tables, errors), the one-line error format, and
tables that never cut a number. Text that comes from data (messages, paths, architectures) is printed as
is, never read as rich markup: `pip install 'nasrun[tpe]'` keeps its `[tpe]`."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)
FOLDED_WIDTH = 10  # a text column (architectures, names) keeps at least this many characters a line


def print_error(program: str, message: str) -> None:
    """One unwrapped line on stderr: `<program>: error: <message>`."""
    console.print(f"[bold red]{escape(program)}: error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_warning(program: str, message: str) -> None:
    """One unwrapped line on stderr: `<program>: warning: <message>`."""
    console.print(f"[bold yellow]{escape(program)}: warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """A line on stderr, printed as is."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


# --- tables ------------------------------------------------------------------------------------------------
def new_table(title: str, caption: str | None = None) -> Table:
    """A left-aligned table whose title and caption print as is."""
    return Table(title=Text(title), caption=Text(caption) if caption else None, title_justify="left")


def number_column(table: Table, header: str) -> None:
    """A right-aligned column that is never wrapped or cut (numbers, short labels)."""
    table.add_column(Text(header), justify="right", no_wrap=True)


def text_column(table: Table, header: str) -> None:
    """A column whose long cells fold onto more lines instead of being cut (architectures, names)."""
    table.add_column(Text(header), overflow="fold")


def add_row(table: Table, *cells, style: str | None = None) -> None:
    table.add_row(*(Text(str(cell)) for cell in cells), style=style)


def needed_width(table: Table) -> int:
    """The narrowest width at which every no-wrap column shows its cells and header whole (text columns
    folded to at most FOLDED_WIDTH characters), borders and padding included."""
    wide = console.options.update_width(1_000_000)
    width = 0
    for column in table.columns:
        full = max(Measurement.get(console, wide, cell).maximum for cell in (column.header, *column.cells))
        width += (full if column.no_wrap else min(full, FOLDED_WIDTH)) + 2  # padding (0, 1)
    return width + (len(table.columns) + 1 if table.box else 0)


def print_table(table: Table) -> None:
    """Print `table` on stderr without cutting a number or a header: at the terminal's width (80 columns
    when piped) when it fits, else as wide as it needs (the terminal wraps such lines; a pipe keeps them)."""
    width = needed_width(table)
    target = console if width <= console.width else Console(stderr=True, width=width)
    target.print(table, crop=False)
