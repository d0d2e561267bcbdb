"""A run directory is data (issue 23): nothing is read or written through a link that leads out of it, one
command writes to it at a time, every read is bounded, and a refusal (a link out, another writer, a
read-only directory, a full disk, a corrupt file) is one line, exit 2, and changes no file."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nasrun.errors import RunDirError
from nasrun.rundir import RunDir
from nasrun.state import JsonLines, RunLock, RunLogHandler
from conftest import run_cli, run_dirs

DIR_LINKS = ["plots", "export", "checkpoints", "tensorboard", "checkpoints/fidelity", ".hydra"]
FILE_LINKS = ["plots/best_so_far_trials.png", "nasrun.log", "trials.jsonl", "export/model.torchscript.pt",
              "export/model.onnx", "best_architecture.json", "checkpoints/best_model.pt", ".hydra/config.yaml"]
BOUNDS = {"cpu_seconds": 60, "memory_mb": 1024}  # an input that hangs or floods memory fails, fast


def commands(run: Path, tmp: Path) -> dict[str, list[str]]:
    """Every command that reads or writes a run directory, on `run` (job 0 of the sweep `run.parent`)."""
    return {
        "nasrun-resume": [str(run), "--no-progress"],
        "nasrun": [f"resume={run}", "progress=false"],
        "nasrun-report": [str(run)],
        "nasrun-export": [str(run)],
        "nasrun-benchmark": [str(run)],
        "nasrun-train": [str(run), f"out={tmp / 'train'}", "progress=false"],
        "nasrun-reproduce": [str(run), "--out", str(tmp / "again"), "--no-progress"],
        "nasrun-compare": [str(run.parent)],
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A finished tiny run with its plots, TensorBoard scalars and an export (made once)."""
    root = tmp_path_factory.mktemp("made")
    run = root / "run"
    result = run_cli(["scale=tiny", "progress=false", f"hydra.run.dir={run}"], root)
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli([str(run)], root, command="nasrun-export")
    assert result.returncode == 0 and (run / "export" / "model.onnx").is_file(), result.stderr[-2000:]
    return run


def copy_run(made: Path, tmp_path: Path, finished: bool = True, name: str = "sweep") -> Path:
    """A copy of the made run as job 0 of a sweep folder (so nasrun-compare reads it); without its
    summary.json when not `finished` (as if killed before the end)."""
    run = tmp_path / name / "0"
    shutil.copytree(made, run, symlinks=True)
    if not finished:
        RunDir(run).summary.unlink()
    return run


def snapshot(root: Path) -> dict:
    """Every entry under `root`, links not followed: a file's bytes and mtime, a link's target, a folder."""
    entries = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                entries[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                entries[key] = ("folder",)
            elif not os.path.isfile(path) or os.path.getsize(path) > 1 << 20:  # a FIFO, a huge sparse file
                entries[key] = ("not read", os.path.getsize(path), os.stat(path).st_mtime_ns)
            else:
                entries[key] = (Path(path).read_bytes(), os.stat(path).st_mtime_ns)
    return entries


def plant(run: Path, name: str, outside: Path) -> None:
    """Replace `run/name` by a link to an outside marker folder (holding what was there; for
    checkpoints/fidelity a stale trial state a finishing run would delete) or an outside marker file."""
    entry = run / name
    if name in DIR_LINKS:
        target = outside / name.replace("/", "_")
        if entry.exists():
            shutil.move(entry, target)
        else:
            target.mkdir(parents=True)
            (target / "trial_0.pt").write_bytes(b"a stale training state")
        (target / "marker").write_text("outside folder")
    else:
        target = outside / "marker.txt"
        target.write_text("outside file")
        entry.unlink()
    entry.symlink_to(target)


def one_line_error(result, *words: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]


def run_in_process(command: str, args: list[str], monkeypatch, capsys) -> subprocess.CompletedProcess:
    """A console script's main() in this process (cheap; for refusals that come before any work)."""
    main = next(p for p in entry_points(group="console_scripts") if p.name == command).load()
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "argv", [command, *args])
        with pytest.raises(SystemExit) as exit_:
            main()
    return subprocess.CompletedProcess(command, exit_.value.code, "", capsys.readouterr().err)


# --- 1. links ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DIR_LINKS + FILE_LINKS)
def test_every_command_refuses_a_link_leading_out(name, made, tmp_path, monkeypatch, capsys):
    """Each command exits 2 naming the link, and changes neither what the link points to nor the run."""
    monkeypatch.chdir(tmp_path)
    for command in commands(tmp_path, tmp_path):
        case = tmp_path / command
        run = copy_run(made, case, finished=command not in ("nasrun", "nasrun-resume"))
        outside = case / "outside"
        outside.mkdir()
        plant(run, name, outside)
        before, outside_before = snapshot(run), snapshot(outside)
        result = run_in_process(command, commands(run, case)[command], monkeypatch, capsys)
        one_line_error(result, name, "outside the")
        assert snapshot(outside) == outside_before, command
        assert snapshot(run) == before and not (case / "train").exists() and not (case / "again").exists(), command


def test_end_to_end_a_checkpoints_link_out_is_refused_and_nothing_outside_deleted(made, tmp_path):
    """The CLI in its own process; `checkpoints` leads to a folder with a `fidelity/` a finishing resume
    used to delete."""
    for command in commands(tmp_path, tmp_path):
        case = tmp_path / command
        run = copy_run(made, case, finished=command not in ("nasrun", "nasrun-resume"))
        RunDir(run).training_states.mkdir()
        RunDir(run).training_state(0).write_bytes(b"state")
        outside = case / "outside"
        outside.mkdir()
        plant(run, "checkpoints", outside)
        before, outside_before = snapshot(run), snapshot(outside)
        one_line_error(run_cli(commands(run, case)[command], case, command=command), "checkpoints", "outside the")
        assert snapshot(outside) == outside_before and snapshot(run) == before, command


def test_a_fresh_run_into_a_folder_whose_log_leads_out_is_refused(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "marker.txt"
    run.mkdir()
    marker.write_text("outside file")
    RunDir(run).log.symlink_to(marker)
    one_line_error(run_cli(["scale=tiny", "progress=false", f"hydra.run.dir={run}"], tmp_path), "nasrun.log")
    assert marker.read_text() == "outside file" and not RunDir(run).trials.exists()


def test_nasrun_correlate_refuses_an_output_folder_with_a_link_out(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "marker.txt"
    out.mkdir()
    marker.write_text("outside file")
    (out / "correlation.png").symlink_to(marker)
    result = run_cli(["search_space=nb201", "estimator=nb201", "--archs", "4", "--out", str(out)], tmp_path,
                     command="nasrun-correlate")
    one_line_error(result, "correlation.png", "outside the")
    assert marker.read_text() == "outside file" and not (out / "correlation.json").exists()


def test_links_that_stay_inside_are_read_and_replaced_not_followed(made, tmp_path):
    run = copy_run(made, tmp_path)
    (RunDir(run).plots / "latest.png").symlink_to("best_so_far_trials.png")
    (run / "notes").mkdir()
    (run / "notes" / "best.json").symlink_to("../best_architecture.json")
    result = run_cli([str(run)], tmp_path, command="nasrun-report")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.readlink(RunDir(run).plots / "latest.png") == "best_so_far_trials.png"
    assert (RunDir(run).plots / "latest.png").read_bytes()[:4] == b"\x89PNG"


# --- 2. one writer at a time; readers beside it ---------------------------------------------------------------
def test_writers_are_refused_while_another_process_holds_the_run(made, tmp_path):
    run = copy_run(made, tmp_path, finished=False)
    before = snapshot(run)
    with RunLock(run):
        for command in ("nasrun-resume", "nasrun", "nasrun-export", "nasrun-benchmark"):
            result = run_cli(commands(run, tmp_path)[command], tmp_path, command=command)
            one_line_error(result, f"{run}", f"is in use by process {os.getpid()}")
        assert snapshot(run) == {**before, ".nasrun.lock": snapshot(run)[".nasrun.lock"]}
    assert snapshot(run) == before  # the lock file goes with the lock


def test_readers_draw_the_complete_lines_while_a_writer_holds_the_run(made, tmp_path):
    run = copy_run(made, tmp_path)
    with open(RunDir(run).trials, "a") as log:
        log.write('{"id": 2, "arch": {"stem"')  # a line the writer is half-way through
    with RunLock(run):
        report = run_cli([str(run)], tmp_path, command="nasrun-report")
        compare = run_cli([str(run.parent), "--no-plot"], tmp_path, command="nasrun-compare")
    assert report.returncode == 0 and "best_so_far_trials.png" in report.stderr + report.stdout, report.stderr[-2000:]
    assert compare.returncode == 0, compare.stderr[-2000:]
    assert json.loads(RunDir(run.parent).comparison.read_text())["groups"][0]["runs"] == 1


@pytest.mark.slow  # a second resume in a fresh interpreter: `make test-slow`
def test_two_resumes_at_once_record_each_trial_once(made, tmp_path):
    run = copy_run(made, tmp_path, finished=False)
    config = OmegaConf.load(RunDir(run).config)
    config.budget.trials = 3  # one more trial to run
    RunDir(run).config.write_text(OmegaConf.to_yaml(config))
    first = subprocess.Popen([str(Path(sys.executable).with_name("nasrun-resume")), str(run), "--no-progress"],
                             cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (run / ".nasrun.lock").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = run_cli([str(run), "--no-progress"], tmp_path, command="nasrun-resume")
    first_error = first.communicate(timeout=600)[1]
    assert first.returncode == 0, first_error[-2000:]
    if second.returncode == 2:
        one_line_error(second, "is in use by process")
    else:  # the first had finished by then
        assert second.returncode == 0 and "already finished" in second.stderr, second.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in RunDir(run).trials.read_text().splitlines()]
    assert ids == [0, 1, 2]


# --- 3. bounded reads, under CPU and memory limits --------------------------------------------------------------
def alias_bomb(levels: int = 30) -> str:
    """10**levels list items when expanded, a few hundred bytes on disk."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["nasrun-resume", "nasrun", "nasrun-reproduce", "nasrun-benchmark",
                                     "nasrun-train", "nasrun-compare"])
def test_a_yaml_alias_bomb_in_the_saved_config_is_refused(command, made, tmp_path):
    run = copy_run(made, tmp_path, finished=command not in ("nasrun", "nasrun-resume"))
    RunDir(run).config.write_text(alias_bomb())
    before = snapshot(run)
    result = run_cli(commands(run, tmp_path)[command], tmp_path, command=command, limits=BOUNDS, timeout=120)
    one_line_error(result, "config.yaml", "aliases")
    assert snapshot(run) == before


def test_a_yaml_alias_bomb_in_overrides_yaml_is_never_expanded(made, tmp_path):
    run = copy_run(made, tmp_path)
    (run / ".hydra" / "overrides.yaml").write_text(alias_bomb())
    for command, args in (("nasrun-resume", [str(run)]), ("nasrun-compare", [str(run.parent), "--no-plot"])):
        result = run_cli(args, tmp_path, command=command, limits=BOUNDS, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]


def make_special(run: Path, name: str, kind: str) -> str:
    """Turn `run/name` into something a read must not hang on or swallow; the words its refusal names."""
    path = run / name
    path.unlink()
    if kind == "/dev/zero":
        path.symlink_to("/dev/zero")
        return "outside the"
    if kind == "fifo":
        os.mkfifo(path)
        return "not a regular file"
    if kind == "nested":
        path.write_text("[" * 200_000)
        return "nests"
    with open(path, "wb") as handle:  # sparse: huge on paper, nothing on disk
        handle.truncate({"trials.jsonl": 1025, "best_architecture.json": 65, "best_model.pt": 8193,
                         "config.yaml": 1}[path.name] << 20)
    return "over the"


@pytest.mark.parametrize("name, kind, command", [
    ("trials.jsonl", "/dev/zero", "nasrun-report"), ("trials.jsonl", "/dev/zero", "nasrun-resume"),
    ("trials.jsonl", "/dev/zero", "nasrun-compare"), ("trials.jsonl", "fifo", "nasrun-report"),
    ("trials.jsonl", "fifo", "nasrun-resume"), ("trials.jsonl", "fifo", "nasrun-compare"),
    ("trials.jsonl", "sparse", "nasrun-report"), ("best_architecture.json", "sparse", "nasrun-export"),
    ("best_architecture.json", "nested", "nasrun-report"), ("best_architecture.json", "nested", "nasrun-train"),
    ("checkpoints/best_model.pt", "sparse", "nasrun-export"), (".hydra/config.yaml", "nested", "nasrun-reproduce"),
    (".hydra/config.yaml", "sparse", "nasrun-resume"),
])
def test_inputs_that_would_hang_or_flood_memory_are_refused(name, kind, command, made, tmp_path):
    run = copy_run(made, tmp_path, finished=command != "nasrun-resume")
    words = make_special(run, name, kind)
    before = snapshot(run)
    result = run_cli(commands(run, tmp_path)[command], tmp_path, command=command, limits=BOUNDS, timeout=120)
    one_line_error(result, Path(name).name, words)
    assert snapshot(run) == before


# --- 4. refusals change no file ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated runner.json", "told more than logged"])
def test_a_refused_resume_changes_no_file_not_even_nasrun_log(damage, made, tmp_path):
    run = copy_run(made, tmp_path, finished=False)
    state = RunDir(run).runner_state
    if damage == "truncated runner.json":
        state.write_text(state.read_text()[:100])
    else:
        state.write_text(state.read_text().replace('"told":2', '"told":9'))
    with open(RunDir(run).trials, "a") as log:
        log.write('{"id": 2, "arch"')  # a torn line a resume that went ahead would cut
    before = snapshot(run)
    one_line_error(run_cli([str(run)], tmp_path, command="nasrun-resume"), "runner.json")
    assert snapshot(run) == before


def read_only_cli(args, run: Path, tmp_path: Path, command: str) -> subprocess.CompletedProcess:
    """The command with `run` read-only: a read-only mount of its own for root (whom modes do not stop),
    else the folder's write permissions taken away for the time of the command."""
    if os.geteuid() == 0:
        return run_cli(args, tmp_path, command=command, limits={"read_only": [str(run)]})
    folders = [run, *(p for p in run.rglob("*") if p.is_dir() and not p.is_symlink())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        return run_cli(args, tmp_path, command=command)
    finally:
        for folder in folders:
            folder.chmod(0o755)


@pytest.mark.parametrize("command", ["nasrun-resume", "nasrun-export", "nasrun-benchmark", "nasrun-report"])
def test_a_read_only_run_directory_is_one_line(command, made, tmp_path):
    run = copy_run(made, tmp_path, finished=command != "nasrun-resume")
    before = snapshot(run)
    result = read_only_cli(commands(run, tmp_path)[command], run, tmp_path, command)
    one_line_error(result, str(run))
    assert "cannot write" in result.stderr and snapshot(run) == before


def whole_files(run: Path) -> None:
    """No temp file left, every JSON file parses, every JSON-lines file ends with a complete line."""
    for path in run.rglob("*"):
        assert not path.name.endswith(".tmp"), path
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix in (".jsonl", ".log"):
            assert path.read_bytes().endswith(b"\n"), path


@pytest.mark.parametrize("command", ["nasrun-resume", "nasrun-report", "nasrun-export"])
def test_a_full_disk_is_one_line_and_leaves_every_file_whole(command, made, tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: a write past 1000 bytes fails (EFBIG, as ENOSPC would)."""
    run = copy_run(made, tmp_path, finished=command != "nasrun-resume")
    result = run_cli(commands(run, tmp_path)[command], tmp_path, command=command, limits={"file_size": 1000})
    one_line_error(result, "cannot write")
    whole_files(run)
    assert RunDir(run).trials.read_bytes() == RunDir(made).trials.read_bytes()


@pytest.mark.parametrize("name, content, command", [
    ("pareto.json", '{"objectives": [', "nasrun-report"), ("pareto.json", "[]", "nasrun-report"),
    ("best_architecture.json", '{"space": "macro", "ar', "nasrun-report"),
    ("best_architecture.json", '"a string"', "nasrun-report"),
    (".hydra/config.yaml", "search_space: [\n", "nasrun-compare"), (".hydra/config.yaml", "- a list\n", "nasrun-compare"),
])
def test_a_corrupt_run_file_is_one_line_naming_it(name, content, command, made, tmp_path):
    run = copy_run(made, tmp_path)
    (run / name).write_text(content)
    before = snapshot(run)
    one_line_error(run_cli(commands(run, tmp_path)[command], tmp_path, command=command), Path(name).name)
    assert snapshot(run) == before


# --- the pieces -------------------------------------------------------------------------------------------------
def test_an_append_cut_short_by_a_full_disk_is_undone(tmp_path, monkeypatch):
    import nasrun.state.files as files

    log = JsonLines(RunDir(tmp_path).trials)
    log.append({"id": 0})
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "write", half_then_full)
    with pytest.raises(RunDirError, match="No space left on device"):
        log.append({"id": 1, "arch": "x"})
    assert RunDir(tmp_path).trials.read_text() == '{"id": 0}\n'


def test_appends_and_the_log_handler_never_follow_a_link(tmp_path):
    marker = tmp_path / "marker.txt"
    marker.write_text("outside file")
    RunDir(tmp_path).trials.symlink_to(marker)
    with pytest.raises(RunDirError, match="is a link"):
        JsonLines(RunDir(tmp_path).trials).append({"id": 0})
    RunDir(tmp_path).log.symlink_to(marker)
    handler = RunLogHandler(RunDir(tmp_path).log)
    handler.emit(logging.makeLogRecord({"msg": "a record"}))
    handler.close()
    assert marker.read_text() == "outside file"


TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=3", "progress=false", "report=false", "tracker=none"]


def test_a_new_run_into_another_runs_directory_changes_none_of_its_files(tmp_path):
    """Hydra's own .hydra/ writing would replace the finished run's saved config before nasrun could refuse
    the directory; nasrun writes .hydra/ itself, once the directory is its own."""
    run = tmp_path / "run"
    first = run_cli([*TABULAR, "seed=5", f"hydra.run.dir={run}"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert OmegaConf.load(run / ".hydra" / "config.yaml").seed == 5
    assert "seed=5" in OmegaConf.load(run / ".hydra" / "overrides.yaml")
    before = snapshot(run)
    second = run_cli([*TABULAR, "seed=7", f"hydra.run.dir={run}"], tmp_path)
    assert second.returncode == 2 and "already holds the trials of another run" in second.stderr
    assert snapshot(run) == before
    replay = run_cli([str(run), "--out", str(run), "--no-progress"], tmp_path, command="nasrun-reproduce")
    assert replay.returncode == 2 and "already holds the trials of another run" in replay.stderr
    assert snapshot(run) == before


def test_runs_started_in_the_same_second_each_get_a_directory_of_their_own(tmp_path):
    """The default run dir is outputs/<date>/<time>: a taken one (another run, started in the same second)
    becomes <time>_2, <time>_3, ... Here every second of the next minute is taken already."""
    from datetime import datetime, timedelta

    start = datetime.now()
    taken = [tmp_path / "outputs" / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}"
             for t in (start + timedelta(seconds=s) for s in range(60))]
    for folder in taken:
        folder.mkdir(parents=True)
        (folder / "trials.jsonl").write_text('{"id": 0}\n')
    result = run_cli([*TABULAR, "seed=0"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [run] = run_dirs(tmp_path)
    assert run.name.endswith("_2") and run.with_name(run.name[:-2]) in taken
    assert all([p.name for p in folder.iterdir()] == ["trials.jsonl"] for folder in taken)
    assert OmegaConf.load(run / ".hydra" / "config.yaml").seed == 0


def test_the_fresh_directory_resolver_claims_each_name_once(tmp_path):
    from nasrun.commands.search import fresh_dir

    base = str(tmp_path / "outputs" / "day" / "12-00-00")
    assert [fresh_dir(base) for _ in range(3)] == [base, f"{base}_2", f"{base}_3"]
    assert all(Path(p).is_dir() for p in (base, f"{base}_2", f"{base}_3"))


def test_a_file_where_the_default_run_directory_goes_is_one_line_and_stays(tmp_path):
    (tmp_path / "outputs").write_text("not a folder")
    one_line_error(run_cli(TABULAR, tmp_path), "cannot create the folder of the run directory")
    assert (tmp_path / "outputs").read_text() == "not a folder"


def test_a_file_in_the_way_of_the_given_run_directory_is_one_line_and_stays(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for run_dir in ("notes.txt", "notes.txt/run"):
        one_line_error(run_cli([*TABULAR, f"hydra.run.dir={run_dir}"], tmp_path), "is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_sweeps_started_in_the_same_second_each_get_a_folder_of_their_own(tmp_path):
    from datetime import datetime, timedelta

    start = datetime.now()
    taken = [tmp_path / "outputs" / "multirun" / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}"
             for t in (start + timedelta(seconds=s) for s in range(60))]
    for folder in taken:
        (folder / "0").mkdir(parents=True)
        (folder / "0" / "trials.jsonl").write_text('{"id": 0}\n')
    result = run_cli(["-m", *TABULAR, "seed=0,1"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = [p.parent for p in (tmp_path / "outputs" / "multirun").rglob("summary.json")]
    assert len(jobs) == 2 and len({job.parent for job in jobs}) == 1   # both jobs in one new sweep folder
    assert jobs[0].parent.name.endswith("_2") and jobs[0].parent.with_name(jobs[0].parent.name[:-2]) in taken
    assert all(sorted(p.name for p in (folder / "0").iterdir()) == ["trials.jsonl"] for folder in taken)
