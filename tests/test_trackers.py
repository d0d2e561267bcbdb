"""Live trackers: every run is an Optuna study that optuna.load_study and optuna-dashboard read (and, with
tracker=mlflow, an MLflow run); resumes add no duplicates, sweeps share one database, failures only warn."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from nasrun.rundir import RunDir
from nasrun.commands.resume import resume_run
from nasrun.experiment import run_experiment
from nasrun.run.background import BackgroundWriter
from nasrun.run.runner import Runner
from nasrun.spaces.nb201 import NB201Space

from conftest import read_jsonl, run_cli, run_dirs, write_run_config

TABULAR = ["search_space=nb201", "estimator=nb201", "progress=false", "report=false"]


def study_of(run_dir: Path, database: Path) -> optuna.Study:
    """The run's study as Optuna's own journal backend reads the file (not the backend nasrun writes with)."""
    from nasrun.run.optuna_study import optuna_journal_file

    backend, _ = optuna_journal_file()
    name = run_dir.resolve().relative_to(database.parent.resolve()).as_posix()
    storage = optuna.storages.JournalStorage(backend(str(database)))
    return optuna.load_study(study_name=name, storage=storage)


def dashboard_get(storage: str, path: str) -> tuple[str, bytes]:
    """A GET answered in-process by optuna-dashboard's own app (what `optuna-dashboard STORAGE` serves)."""
    import optuna_dashboard

    environ = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status = []
    body = b"".join(optuna_dashboard.wsgi(storage)(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def test_each_trial_is_a_trial_of_the_runs_study_and_the_dashboard_serves_it(tmp_path):
    result = run_cli([*TABULAR, "budget.trials=6"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [run_dir] = run_dirs(tmp_path)
    database = tmp_path / "outputs" / "optuna.journal"
    study = study_of(run_dir, database)
    records = read_jsonl(RunDir(run_dir).trials)
    assert [t.user_attrs["trial_id"] for t in study.trials] == [r["id"] for r in records]
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] and study.metric_names == ["val_accuracy"]
    space = NB201Space()
    for trial, record in zip(study.trials, records):
        assert trial.params == space.decision_values(record["arch"]) and len(trial.params) == 6
        assert trial.values == [record["metrics"]["val_accuracy"]]
        assert trial.user_attrs["arch"] == record["arch"] and trial.user_attrs["seed"] == record["seed"]
        assert trial.user_attrs["nb201_index"] == record["metrics"]["nb201_index"]
    summary = json.loads(RunDir(run_dir).summary.read_text())
    assert study.user_attrs["strategy"] == "random" and study.user_attrs["best_trial"] == summary["best_trial"]
    assert study.user_attrs["test"] == summary["test"]
    assert summary["optuna"]["dashboard"] == "optuna-dashboard outputs/optuna.journal"

    status, body = dashboard_get(summary["optuna"]["storage"], "/api/studies")
    [entry] = json.loads(body)["study_summaries"]
    assert status.startswith("200") and entry["study_name"] == study.study_name
    status, body = dashboard_get(summary["optuna"]["storage"], f"/api/studies/{entry['study_id']}")
    assert status.startswith("200") and len(json.loads(body)["trials"]) == 6
    status, body = dashboard_get(summary["optuna"]["storage"], f"/api/studies/{entry['study_id']}/param_importances")
    importances = json.loads(body)["param_importances"][0]
    assert status.startswith("200") and {p["name"] for p in importances} == {d.name for d in space.decisions()}


def test_a_multi_objective_run_is_a_multi_objective_study_with_its_constraints(tmp_path):
    objectives = "objectives=[{metric:val_accuracy,direction:max},{metric:nb201_index,direction:min}]"
    result = run_cli([*TABULAR, "budget.trials=8", objectives, "constraints={nb201_index:{max:8000}}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [run_dir] = run_dirs(tmp_path)
    study = study_of(run_dir, tmp_path / "outputs" / "optuna.journal")
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    records = {r["id"]: r for r in read_jsonl(RunDir(run_dir).trials)}
    for trial in study.trials:
        metrics = records[trial.user_attrs["trial_id"]]["metrics"]
        assert trial.values == [metrics["val_accuracy"], metrics["nb201_index"]]
        assert (trial.system_attrs["constraints"][0] > 0) == (metrics["nb201_index"] > 8000)
    front = {t.user_attrs["trial_id"] for t in study.best_trials}
    assert front and all(records[i]["metrics"]["feasible"] == 1 for i in front)


class Crash(BaseException):
    """Stands in for a kill: nothing after the raise point runs."""


def crash_at_record(cfg, run_dir, monkeypatch, call: int) -> None:
    """Run `cfg` in `run_dir`, killed (Crash) as it records its `call`-th trial."""
    original, calls = Runner._record, []

    def crash(self, *args):
        calls.append(1)
        if len(calls) == call:
            raise Crash()
        return original(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_record", crash)
        with pytest.raises(Crash):
            run_experiment(cfg, run_dir, show_progress=False)


def test_a_resumed_run_adds_only_the_trials_its_study_lacks(compose_cfg, tmp_path, monkeypatch):
    cfg = compose_cfg([*TABULAR, "budget.trials=6"])
    run_dir = tmp_path / "outputs" / "run"
    write_run_config(run_dir, cfg)
    crash_at_record(cfg, run_dir, monkeypatch, 4)
    database = tmp_path / "outputs" / "optuna.journal"
    assert [t.user_attrs["trial_id"] for t in study_of(run_dir, database).trials] == [0, 1, 2]
    resume_run(run_dir, show_progress=False)
    assert [t.user_attrs["trial_id"] for t in study_of(run_dir, database).trials] == [0, 1, 2, 3, 4, 5]

    database.unlink()  # a run dir whose study is gone (or that began before tracking): resumed, it is rebuilt
    RunDir(run_dir).summary.unlink()
    resume_run(run_dir, show_progress=False)
    assert [t.user_attrs["trial_id"] for t in study_of(run_dir, database).trials] == [0, 1, 2, 3, 4, 5]


def test_a_resume_follows_no_tracker_dir_from_the_saved_config(compose_cfg, tmp_path, monkeypatch):
    """A shared run dir is data: its saved tracker_dir is not followed, and outside an outputs folder a
    resume tracks nothing (it writes nothing beside the run dir)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg = compose_cfg([*TABULAR, "budget.trials=4", f"tracker_dir={elsewhere}"])
    run_dir = tmp_path / "shared" / "run"
    write_run_config(run_dir, cfg)
    crash_at_record(cfg, run_dir, monkeypatch, 3)
    assert (elsewhere / "optuna.journal").is_file()  # what the original run tracked, on the machine that ran it
    shutil.rmtree(elsewhere)
    resume_run(run_dir, show_progress=False)
    assert len(RunDir(run_dir).trials.read_text().splitlines()) == 4
    assert not elsewhere.exists() and sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["run"]


def test_a_parallel_sweep_writes_one_study_per_job_into_one_database(tmp_path):
    result = run_cli(["-m", "hydra/launcher=slurm_local", "seed=0,1", *TABULAR, "budget.trials=5",
                      "final_test=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tracker" not in result.stderr
    jobs = run_dirs(tmp_path)
    assert len(jobs) == 2
    database = tmp_path / "outputs" / "optuna.journal"
    for job in jobs:
        study = study_of(job, database)
        assert study.study_name.startswith("multirun/") and len(study.trials) == 5
        assert study.user_attrs["seed"] == json.loads(RunDir(job).summary.read_text())["seed"]


def test_a_broken_tracker_warns_and_the_search_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli([*TABULAR, "budget.trials=4", f"tracker_dir={blocker}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "optuna tracker: could not open" in result.stderr and "the search goes on" in result.stderr
    [run_dir] = run_dirs(tmp_path)
    assert len(read_jsonl(RunDir(run_dir).trials)) == 4


def test_a_failing_write_is_a_warning_and_the_writer_gives_up_after_three(caplog):
    written = []

    def write(value):
        if value < 0:
            raise OSError("database is locked")
        written.append(value)

    writer = BackgroundWriter("test", lambda: None)
    with caplog.at_level(logging.WARNING, logger="nasrun"):
        for value in (1, -1, 2, -1, -1, -1, 3):
            writer.submit(f"value {value}", write, value)
        writer.close()
    assert written == [1, 2]
    assert caplog.text.count("could not write") == 4 and "records nothing more" in caplog.text
    assert "1 write(s) were dropped" in caplog.text


def test_the_journal_writer_waits_for_optunas_own_lock_and_writes_its_format(tmp_path):
    import threading
    import time

    from nasrun.run.optuna_study import optuna_journal_file, unsynced_journal_file

    JournalFileBackend, JournalFileSymlinkLock = optuna_journal_file()

    path = str(tmp_path / "optuna.journal")
    entries = [{"op_code": 0, "worker_id": "w", "study_name": "s"}, {"op_code": 1, "worker_id": "w"}]
    lock = JournalFileSymlinkLock(path)
    backend = unsynced_journal_file(path)
    assert lock.acquire()  # another Optuna process is writing
    writer = threading.Thread(target=backend.append_logs, args=(entries,))
    writer.start()
    time.sleep(0.3)
    assert Path(path).read_bytes() == b""  # nothing written while the lock is held elsewhere
    lock.release()
    writer.join(10)
    assert list(JournalFileBackend(path).read_logs(0)) == entries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal"]  # no lock file left behind


@pytest.mark.parametrize("value, message", [("wandb", "tracker: unknown ['wandb']"),
                                            ("{a:1}", "tracker must be one of")])
def test_an_unknown_tracker_is_a_one_line_error(tmp_path, value, message):
    result = run_cli([*TABULAR, f"tracker={value}"], tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs" / "optuna.journal").exists()


def test_tracker_none_writes_no_database(tmp_path):
    assert run_cli([*TABULAR, "budget.trials=2", "tracker=none"], tmp_path).returncode == 0
    assert not (tmp_path / "outputs" / "optuna.journal").exists()


@pytest.mark.slow  # MLflow's start-up: `make test-slow`
@pytest.mark.slow
def test_mlflow_tracker_logs_the_config_trials_epochs_and_artefacts(tmp_path):
    from mlflow.tracking import MlflowClient

    result = run_cli(["scale=tiny", "progress=false", "report=false", "tracker=[optuna,mlflow]",
                      "budget.trials=2", "estimator.epochs=2"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [run_dir] = run_dirs(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nasrun")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.data.params["seed"] == "0" and parent.data.params["strategy.name"] == "random"
    assert parent.info.status == "FINISHED"
    records = read_jsonl(RunDir(run_dir).trials)
    history = client.get_metric_history(parent.info.run_id, "trial_val_accuracy")
    assert [(m.step, m.value) for m in history] == [(r["id"], r["metrics"]["val_accuracy"]) for r in records]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(c.data.tags["nasrun_trial_id"]) for c in children) == [0, 1]
    epochs = client.get_metric_history(children[0].info.run_id, "epoch_train_loss")
    assert [m.step for m in epochs] == [1, 2]
    assert "depth" in children[0].data.params
    artefacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"run_summary.json", "trials.jsonl", "best_architecture.json", "config.yaml"} <= artefacts
    assert study_of(run_dir, tmp_path / "outputs" / "optuna.journal").trials  # both trackers at once
