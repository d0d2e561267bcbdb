"""results/: every file is headed by the command, machine, date and torch version that produced it, and
scripts/results_file.py writes exactly that header before the tables."""

from __future__ import annotations

import re
import sys
from datetime import date

import torch

from conftest import REPO
from results_file import write_results

RESULTS = REPO / "results"
HEADER = ("- command: `", "- machine: ", "- date: ", "- torch: ")


def test_writer_heads_the_tables_with_what_ran_where_and_when(tmp_path, monkeypatch):
    monkeypatch.setenv("NASRUN_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [str(REPO / "scripts" / "bench_probe.py"), "--steps", "2"])
    path = write_results("probe", "A probe", [("one table", ["what", "value"], [["a", 1.5], ["b", "2x"]]),
                                              ("", ["x"], [[3]])], notes="Read it so.")
    assert path == tmp_path / "probe.md" and [p.name for p in tmp_path.iterdir()] == ["probe.md"]
    lines = path.read_text().splitlines()
    assert lines[0] == "# A probe"
    assert lines[2] == "- command: `python scripts/bench_probe.py --steps 2`"
    assert lines[3].startswith("- machine: ") and "cores" in lines[3]
    assert lines[4] == f"- date: {date.today().isoformat()}"
    assert lines[5] == f"- torch: {torch.__version__}"
    assert lines[6].startswith("- nasrun: ")
    text = path.read_text()
    assert "one table\n\n| what | value |\n|---|---|\n| a | 1.5 |\n| b | 2x |\n" in text
    assert "\n| x |\n|---|\n| 3 |\n" in text and text.endswith("\nRead it so.\n")


def test_writer_puts_the_preamble_between_header_and_tables_and_writes_where_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("NASRUN_RESULTS_DIR", str(tmp_path / "default"))
    path = write_results("probe", "A probe", [("### one", ["x"], [[1]])], preamble="- seeds 0..9",
                         path=tmp_path / "elsewhere.md")
    assert path == tmp_path / "elsewhere.md" and not (tmp_path / "default").exists()
    lines = path.read_text().splitlines()
    assert lines[6].startswith("- nasrun: ") and lines[7:12] == ["", "- seeds 0..9", "", "### one", ""]


def test_every_results_file_has_the_header_a_table_and_a_line_in_the_index():
    index = (RESULTS / "README.md").read_text()
    files = sorted(p for p in RESULTS.glob("*.md") if p.name != "README.md")
    assert files
    for path in files:
        text = path.read_text()
        assert text.startswith("# "), path.name
        for field in HEADER:
            assert re.search(rf"^{re.escape(field)}", text, re.MULTILINE), f"{path.name} lacks '{field}'"
        assert re.search(r"^\|---", text, re.MULTILINE), f"{path.name} holds no table"
        assert f"]({path.name})" in index, f"results/README.md does not list {path.name}"


def test_every_results_file_is_written_by_a_script():
    scripts = "\n".join(p.read_text() for p in (REPO / "scripts").glob("*.py"))
    for path in RESULTS.glob("*.md"):
        if path.name == "README.md":
            continue
        name = path.stem
        prefix = name.rsplit("_", 1)[0]
        assert f'"{name}"' in scripts or f'f"{prefix}_{{' in scripts, f"no script writes results/{path.name}"
