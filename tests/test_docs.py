"""Every command in README.md and docs/*.md runs, so the documentation cannot drift from the code.

Each fenced ```bash and ```python block follows a marker comment that says how it is tested:

    <!-- test: run -->            every command as written
    <!-- test: tiny -->           `nasrun` commands at scale=tiny (TINY appended, and each size the command sets
                                  that scale=tiny shrinks set to its tiny value); `nasrun-train` for 1 epoch
                                  and 1 seed, `nasrun-correlate` at scale=tiny on 4 architectures;
                                  the rest as written
    <!-- test: cfg -->            `nasrun` commands only compose and check their config, as `--cfg job` would
                                  and as a run does before it builds anything (a sweep: its first job)
    <!-- test: skip (REASON) -->  not run: a GPU, a cluster, an install, hours of compute

`, exits N` after the mode expects exit status N from every command of the block (default 0). Python
blocks run in this process (`run`) or have their imports checked (`imports`); ```yaml blocks must parse.
The blocks of one page run in order in one temporary folder, so later blocks use the run directories
earlier ones wrote; it holds `my_images/` (two classes of small PNGs, the walkthrough's "your images"),
and NASRUN_DATA_DIR points into it. Bash blocks hold one command per line: `\\` continuations, `#`
comments, `NAME=value` assignments and `$NAME` expansion; no pipes, `;`, `&&` or redirections.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import CONF, REPO, TINY, run_cli
from fake_data import write_flat_image_folder
from nasrun.commands.common import compose_run_config, plain_experiment
from nasrun.commands.search import unknown_group_choice
from nasrun.config import validate
from nasrun.errors import NasrunError

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*test:\s*(run|tiny|cfg|imports|skip)\s*(?:\((?P<reason>[^)]*)\))?\s*(?:,\s*exits\s+(?P<exit>\d+))?\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_SYNTAX = re.compile(r"[|;&<>`]|\$\(")
TINY_ARGUMENTS = {"nasrun-train": ["epochs=1", "repeats=1", "progress=false"]}


@dataclass
class Block:
    page: Path
    line: int
    language: str
    mode: str | None
    reason: str
    exit_code: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page` with the marker right above each (None where there is none)."""
    found, lines, index = [], page.read_text().splitlines(), 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.search(previous)
        found.append(Block(page, index + 1, fence.group(1), marker.group(1) if marker else None,
                           (marker.group("reason") or "").strip() if marker else "",
                           int(marker.group("exit") or 0) if marker else 0, "\n".join(lines[index + 1:end])))
        index = end + 1
    return found


def commands(text: str) -> list[str]:
    """Logical lines of a bash block: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in (strip_comment(raw).strip() for raw in joined.splitlines()) if line]


def strip_comment(line: str) -> str:
    """`line` without a `#` comment (a `#` that starts a word outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def expand(line: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m.group(1)], line)


def group_choice(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return "@" in key or ("." not in key and ((CONF / key).is_dir() or key == "experiment"))


def shrunk(overrides: list[str]) -> list[str]:
    """`key=value` overrides setting each size the command sets explicitly that scale=tiny shrinks, to its
    tiny value (a command-line value otherwise wins over scale=tiny)."""
    plain = [o for o in plain_experiment(overrides) if "=" in o and not o.startswith(("-", "hydra.", "hydra/"))]
    choices = [o.split(",")[0] for o in plain if group_choice(o)]
    full, tiny = compose_run_config(choices), compose_run_config([*choices, "scale=tiny"])
    result = []
    for override in plain:
        key = override.split("=", 1)[0]
        if group_choice(override):
            continue
        small = OmegaConf.select(tiny, key, default=None)
        if small is not None and OmegaConf.select(full, key, default=None) != small:
            result.append(f"{key}={override_value(OmegaConf.to_object(small) if OmegaConf.is_config(small) else small)}")
    return result


def override_value(value) -> str:
    """`value` in Hydra's override grammar."""
    if isinstance(value, list):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def check_config(block: Block, program: str, args: list[str]) -> None:
    """What `nasrun ARGS --cfg job` composes (a sweep: its first job), checked as a run checks it before
    it builds anything; in this process, a fraction of a second per command."""
    assert program == "nasrun", f"{block.where}: a cfg block may only hold nasrun commands, not {program}"
    point = first_point(args) if {"-m", "--multirun"} & set(args) else args
    problem = unknown_group_choice(point)
    assert problem is None, f"{block.where}: nasrun {shlex.join(args)}: {problem}"
    try:
        validate(compose_run_config(point))
    except NasrunError as err:
        pytest.fail(f"{block.where}: nasrun {shlex.join(args)}: {err}")


def arguments(block: Block, program: str, args: list[str]) -> list[str]:
    """The arguments the block's mode runs `program` with."""
    if block.mode == "tiny" and program == "nasrun":
        return [*args, *TINY, *shrunk(args)]
    if block.mode == "tiny" and program == "nasrun-correlate":
        return ["scale=tiny", *args, "--archs", "4"]   # the last --archs wins
    if block.mode == "tiny":
        return [*args, *TINY_ARGUMENTS.get(program, [])]
    return args


def first_point(args: list[str]) -> list[str]:
    """A sweep's arguments as its first job's (`seed=0,1,2` -> `seed=0`), without `-m`: what --cfg composes."""
    parser, point = OverridesParser.create(), []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        override = None if arg.startswith("-") else parser.parse_overrides([arg])[0]
        point.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}"
                     if override is not None and override.is_sweep_override() else arg)
    return point


def run_bash(block: Block, cwd: Path, env: dict, variables: dict) -> None:
    for line in commands(block.text):
        assert not SHELL_SYNTAX.search(line), f"{block.where}: one plain command per line, got {line!r}"
        assignment = re.fullmatch(r"(\w+)=(.*)", line)
        if assignment:
            variables[assignment.group(1)] = " ".join(shlex.split(assignment.group(2)))
            continue
        program, *args = shlex.split(expand(line, variables))
        assert program == "nasrun" or program.startswith("nasrun-"), f"{block.where}: cannot run {program!r} here"
        if block.mode == "cfg":
            check_config(block, program, args)
            continue
        result = run_cli(arguments(block, program, args), cwd=cwd, command=program, env=env, timeout=300)
        assert result.returncode == block.exit_code, (
            f"{block.where}: `{line}` exited {result.returncode}, expected {block.exit_code}\n{result.stderr[-3000:]}")


def run_python(block: Block, cwd: Path, monkeypatch) -> None:
    source = block.text if block.mode == "run" else "\n".join(
        line for line in block.text.splitlines() if line.startswith(("import ", "from ")))
    monkeypatch.chdir(cwd)
    exec(compile(source, block.where, "exec"), {"__name__": "__docs__"})


def test_every_page_is_found():
    assert {p.name for p in PAGES} >= {"README.md", "search-spaces.md", "strategies.md", "estimators.md",
                                       "differentiable.md", "multi-objective.md", "run-directory.md",
                                       "scaling-out.md", "extending.md", "datasets.md", "recipes.md",
                                       "retrain-export.md", "watching.md", "comparing.md", "performance.md"}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_block_is_marked_and_each_skip_says_why(page):
    for block in blocks(page):
        assert block.language not in ("sh", "shell", "console", "zsh", "py"), f"{block.where}: write ```bash or ```python"
        if block.language in ("bash", "python"):
            assert block.mode is not None, f"{block.where}: a {block.language} block needs a <!-- test: ... --> marker"
            assert block.mode != "skip" or block.reason, f"{block.where}: a skipped block must say why"
            assert block.language == "python" or block.mode != "imports", f"{block.where}: imports is for python"
        if block.language == "yaml":
            OmegaConf.create(block.text)  # parses, or the test fails


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_on_the_page_runs(page, tmp_path, monkeypatch):
    write_flat_image_folder(tmp_path / "my_images", per_class=12)
    env = {"NASRUN_DATA_DIR": str(tmp_path / "data")}
    variables: dict[str, str] = {}
    for block in blocks(page):
        if block.mode in (None, "skip"):
            continue
        if block.language == "bash":
            run_bash(block, tmp_path, env, variables)
        elif block.language == "python":
            run_python(block, tmp_path, monkeypatch)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's ids of `page`'s headings: lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    headings = re.findall(r"^#+\s+(.*)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"\w+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.relative_to(REPO)}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.relative_to(REPO)}: link to {target}: no such heading"


def test_the_readme_links_every_docs_page():
    linked = {Path(target.partition("#")[0]).name for target in LINK.findall((REPO / "README.md").read_text())}
    assert {p.name for p in PAGES[1:]} <= linked
