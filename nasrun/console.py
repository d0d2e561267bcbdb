"""The terminal: one rich console on stderr (progress, tables, errors), and the one-line error format."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def print_error(program: str, message: str) -> None:
    """One unwrapped line on stderr: `<program>: error: <message>`."""
    console.print(f"[bold red]{program}: error:[/] {message}", highlight=False, soft_wrap=True)


def print_warning(program: str, message: str) -> None:
    """One unwrapped line on stderr: `<program>: warning: <message>` (the message printed as written)."""
    console.print(f"[bold yellow]{program}: warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
