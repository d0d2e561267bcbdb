"""report.html as a person sees it: a real run's page opened offline in headless chromium renders every
trial (the whole architecture), every plot and the config, sorts, and logs nothing to the console."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser import keep_screenshot, open_page
from conftest import read_jsonl, run_cli
from nasrun.rundir import RunDir

CONSTRAINED = ["scale=tiny", "progress=false", "tracker=none", "budget.trials=4",
               "objectives=[{metric:val_accuracy,direction:max},{metric:params,direction:min}]",
               "constraints={params:{max:3000}}"]


@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("page")
    result = run_cli([*CONSTRAINED, f"hydra.run.dir={root / 'run'}"], root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run"


def checked_in_browser(page: Path, name: str, checks) -> None:
    """Run `checks`; when one fails, keep a screenshot of the page and say where it is."""
    try:
        checks()
    except AssertionError as err:
        shot = keep_screenshot(page, name)
        raise AssertionError(f"{err}\n(screenshot of the page: {shot})") from None


def headers(html: str, table_id: str) -> list[str]:
    table = html[html.index(f'id="{table_id}"'):]
    return re.findall(r'<th data-key="([^"]*)"', table[:table.index("</thead>")])


def assert_offline(html: str) -> None:
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert not re.search(r"<script[^>]*\ssrc=", html) and not re.search(r'<img[^>]*\ssrc="(?!data:image/png;base64,)', html)


def test_the_run_page_renders_every_trial_plot_and_the_config_offline(constrained_run):
    page = RunDir(constrained_run).report
    html = page.read_text()
    trials = read_jsonl(RunDir(constrained_run).trials)

    def checks():
        assert_offline(html)
        rendered = open_page(page)
        assert rendered.console == []
        assert rendered.attribute("data-script") == "ran"
        images = html.count("<img ")
        assert images >= 4 and rendered.attribute("data-images") == f"{images}/{images}"  # all decoded
        rows = rendered.table("trials")
        columns = headers(html, "trials")
        assert [int(row[columns.index("id")]) for row in rows] == [t["id"] for t in trials]
        for row, trial in zip(rows, trials):
            assert json.loads(row[columns.index("arch")]) == trial["arch"]  # the whole architecture
            assert float(row[columns.index("params")]) == trial["metrics"]["params"]
            feasible = trial["metrics"]["feasible"] == 1
            assert row[columns.index("status")] == ("ok" if feasible else "violates constraints")
        for heading in ("Anytime curve", "Best so far over time", "Pareto front", "Best architecture", "Config"):
            assert f"<h2>{heading}</h2>" in rendered.dom
        assert "objectives:" in rendered.dom and "constraints:" in rendered.dom   # the config, as saved

        by_params = open_page(page, "#sort=params:desc").table("trials")
        params = [float(row[columns.index("params")]) for row in by_params]
        assert params == sorted((t["metrics"]["params"] for t in trials), reverse=True)

    checked_in_browser(page, "report-constrained-run", checks)


def test_the_page_marks_the_best_trial_and_links_the_dashboard(tmp_path):
    result = run_cli(["search_space=nb201", "estimator=nb201", "budget.trials=5", "progress=false",
                      f"hydra.run.dir={tmp_path / 'outputs' / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "outputs" / "run"
    html = RunDir(run_dir).report.read_text()
    summary = json.loads(RunDir(run_dir).summary.read_text())
    assert "<code>optuna-dashboard outputs/optuna.journal</code>" in html
    best_row = re.search(r'<tr class="best"><td[^>]*>(\d+)</td>', html)
    assert best_row and int(best_row[1]) == summary["best_trial"]
    assert not (RunDir(run_dir).plots / "best_so_far_time.png").exists()  # a table lookup has no training time
    assert "Best so far over time" not in html
