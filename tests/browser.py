"""Opening nasrun's HTML pages in a real headless browser (Debian's `chromium`, which .ci/run installs).

`open_page(path)` loads a page as a user's browser would, offline, and returns what it rendered: the DOM
after its script ran and the load event fired, and every console message. `keep_screenshot` saves what the
page looks like under test-artifacts/ (kept when a check fails)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the HTML report tests need Debian's chromium: install it with `apt-get install -y chromium` "
                    "(.ci/run does)")
    return found


@dataclass
class Rendered:
    dom: str
    console: list[str]

    def attribute(self, name: str) -> str | None:
        """An attribute of the <html> element (the page's script sets data-script and data-images)."""
        match = re.search(rf'<html[^>]*\s{name}="([^"]*)"', self.dom)
        return match[1] if match else None

    def table(self, table_id: str) -> list[list[str]]:
        """The rows of a table's body, each a list of cell texts, in the order the page shows them."""
        parser = TableReader(table_id)
        parser.feed(self.dom)
        return parser.rows


def run_browser(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nasrun-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def open_page(path: Path, fragment: str = "") -> Rendered:
    result = run_browser(["--dump-dom", path.resolve().as_uri() + fragment])
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(result.stdout, console)


def keep_screenshot(path: Path, name: str) -> Path:
    """A full-width screenshot of the page under test-artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    run_browser(["--window-size=1300,2400", f"--screenshot={shot}", path.resolve().as_uri()])
    return shot


class TableReader(HTMLParser):
    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.in_body = table_id, False, False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag == "td":
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table" and self.inside:
            self.inside = self.in_body = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
