"""Report runs that overlap, or die: each run reads only its own hand-offs, and what is published (reports,
``latest``, ``data/processed``, ``data/audiences``) always comes from exactly one run.

Small notebooks stand in for the real ones: one writes a hand-off and an audience carrying a label, waits,
the next reads the hand-off back into its page. A run of the full sample does the same through the same
``config.resolve_path`` (tested by the report tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from report_runs import make_notebook


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    params = 'label: str = "x"  # what this run writes\npause: float = 0.0  # seconds to wait after writing'
    writer = make_notebook(root / "notebooks" / "01_writer.ipynb", params=params, body=[
        'import time\nfrom helpers import config\nconfig.resolve_path("data/processed").mkdir(parents=True, exist_ok=True)',
        # in place, on purpose: a notebook that does not write atomically must not touch the published file
        'with open(config.resolve_path("data/processed/handoff.txt"), "w") as f:\n    f.write(label)',
        'config.resolve_path("data/audiences").mkdir(parents=True, exist_ok=True)\n'
        'config.resolve_path("data/audiences/list.csv").write_text(label)',
        "time.sleep(pause)",
    ])
    reader = make_notebook(root / "notebooks" / "02_reader.ipynb", params=params, body=[
        "from helpers import config, report",
        'seen = config.resolve_path("data/processed/handoff.txt").read_text()',
        'report.finding("Hand-off", f"this run wrote {label} and read {seen}")',
    ])
    cfg = root / "report.yaml"
    cfg.write_text(json.dumps({"title": "Isolation", "notebooks": [{"name": "writer", "path": str(writer)},
                                                                     {"name": "reader", "path": str(reader)}],
                               "privacy": {"ids_from": None}}))
    return root, cfg


def _start(root: Path, cfg: Path, *params: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "helpers.report", "run", "--quiet", "--config", str(cfg),
            "--reports-dir", str(root / "reports")]
    for p in params:
        args += ["--param", p]
    return subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JOURNEY_PROJECT_ROOT": str(root)}, start_new_session=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


def _page(run_dir: Path) -> str:
    return (run_dir / "02_reader.html").read_text()


def _published(root: Path) -> tuple[str, str, str]:
    """What a reader of the project sees: the run latest points to, the hand-off, the audience."""
    latest = (root / "reports" / "latest").resolve().name
    return (latest, (root / "data" / "processed" / "handoff.txt").read_text(),
            (root / "data" / "audiences" / "list.csv").read_text())


def test_two_runs_at_once_each_read_their_own_handoff_and_one_of_them_is_published_whole(project):
    root, cfg = project
    slow = _start(root, cfg, "label=slow", "pause=8")  # writes first, finishes last
    time.sleep(2)
    fast = _start(root, cfg, "label=fast")
    (code_fast, log_fast), (code_slow, log_slow) = _finish(fast), _finish(slow)
    assert code_fast == 0 and code_slow == 0, log_fast + log_slow
    runs = {json.loads((d / "run.json").read_text())["parameters"]["writer"]["label"]: d
            for d in (root / "reports").iterdir() if (d / "run.json").exists() and not d.is_symlink()}
    assert set(runs) == {"slow", "fast"}
    assert "this run wrote slow and read slow" in _page(runs["slow"])
    assert "this run wrote fast and read fast" in _page(runs["fast"])
    latest, handoff, audience = _published(root)
    assert latest == runs["slow"].name and handoff == audience == "slow"  # the last to finish, all of it
    assert json.loads((root / "data" / "processed" / "published_by.json").read_text())["run_id"] == latest
    assert not list((root / "reports").glob(".tmp-*"))
    assert not [p for p in (root / "data" / "interim").iterdir() if p.name != ".publish.lock"]


def test_a_run_killed_mid_way_publishes_nothing_and_the_next_run_cleans_up_after_it(project):
    root, cfg = project
    assert _finish(_start(root, cfg, "label=good"))[0] == 0
    before = _published(root)

    killed = _start(root, cfg, "label=killed", "pause=60")
    deadline = time.time() + 120
    while not list((root / "data" / "interim").glob(".run-*/processed/handoff.txt")) or \
            "killed" not in next((root / "data" / "interim").glob(".run-*/processed/handoff.txt")).read_text():
        assert time.time() < deadline and killed.poll() is None, "the run never wrote its hand-off"
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)  # the runner and its kernel, as a machine losing power would
    killed.wait()
    assert _published(root) == before  # the killed run's hand-off went nowhere
    assert list((root / "reports").glob(".tmp-*")) and list((root / "data" / "interim").glob(".run-*"))

    code, log = _finish(_start(root, cfg, "label=next"))
    assert code == 0, log
    assert "abandoned run" in log and "ended without finishing the run" in log
    assert not list((root / "reports").glob(".tmp-*")) and not list((root / "data" / "interim").glob(".run-*"))
    failed = list((root / "reports" / "failed").iterdir())
    assert len(failed) == 1 and "abandoned run" in (failed[0] / "error.txt").read_text()
    latest, handoff, audience = _published(root)
    assert handoff == audience == "next" and "this run wrote next and read next" in _page(root / "reports" / latest)


def test_a_partial_run_that_is_not_latest_publishes_no_data(project):
    root, cfg = project
    assert _finish(_start(root, cfg, "label=full"))[0] == 0
    before = _published(root)
    proc = subprocess.run([sys.executable, "-m", "helpers.report", "run", "--quiet", "--config", str(cfg),
                           "--reports-dir", str(root / "reports"), "--only", "writer", "--param", "label=partial"],
                          cwd=root, capture_output=True, text=True, env={**os.environ, "JOURNEY_PROJECT_ROOT": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert "changed data/processed and data/audiences" in proc.stderr and "--latest" in proc.stderr
    assert _published(root) == before
