import json
import math

from nasrun.records import Trial, TrialLog, best_trial
from nasrun.rundir import RunDir, atomic_write_json


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic_write_json(path, {"a": 1, "nan": float("nan"), "t": (1, 2)})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_trial_log_appends_and_ignores_a_torn_last_line(tmp_path):
    log = TrialLog(RunDir(tmp_path).trials)
    log.append(Trial(0, {"a": 1}, {"val_accuracy": 0.5}))
    log.append(Trial(1, {"a": 2}, status="failed", error="boom"))
    with open(log.path, "a") as handle:
        handle.write('{"id": 2, "arch": ')
    trials = log.read()
    assert [t.id for t in trials] == [0, 1] and trials[1].error == "boom"


def test_best_trial_prefers_fitness_skips_failures_and_breaks_ties_by_id():
    trials = [Trial(0, "a", {"val_accuracy": 0.9}), Trial(1, "b", {"val_accuracy": 0.95}, status="failed"),
              Trial(2, "c", {"val_accuracy": 0.9}), Trial(3, "d", {"val_accuracy": float("nan")})]
    assert best_trial(trials).id == 0
    assert trials[1].score() == -math.inf and trials[3].score() == -math.inf
    fit = [Trial(0, "a", {"val_accuracy": 0.9, "fitness": 0.1}), Trial(1, "b", {"val_accuracy": 0.8, "fitness": 0.2})]
    assert best_trial(fit).id == 1
    assert best_trial([]) is None
