"""A run's own data folders, published with its reports, and the runs a killed process left behind.

Notebooks hand tables to each other through ``data/processed/`` and write the
audiences to ``data/audiences/``. During a run, both are the run's own copies
in ``data/interim/.run-<run_id>/`` (``config.resolve_path`` points there; the
copies start as copies of the published files, so a notebook that writes into
a file in place still never touches the published one).
Only a run that succeeds publishes them, together with its reports and
``reports/latest``, under one lock: whatever finishes last wins everything, so
the published reports, hand-offs and audiences always come from one run. Two
runs at once never read each other's files.

Each temporary folder names its process (``.owner``); the next run cleans up
those whose process is gone (a SIGKILL, a power cut): the reports go to
``reports/failed/<run_id>/`` with a note, the data copy is deleted, and the run
says so on stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from helpers import config

OWNER_FILE = ".owner"


def workspace_dir(run_id: str) -> Path:
    """Where a run's copies of ``data/processed`` and ``data/audiences`` live while it runs."""
    return config.INTERIM_DIR / f".run-{run_id}"


def claim(folder: Path) -> None:
    """Mark ``folder`` as this process's (pid, host, start) so that a later run can tell it was abandoned."""
    (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                 "started": time.time()}))


def open_workspace(run_id: str) -> Path:
    """Create the run's data folders, each seeded with a copy of what is published now.

    Examples
    --------
    >>> import tempfile
    >>> from unittest import mock
    >>> with mock.patch.object(config, "DATA_DIR", Path(tempfile.mkdtemp())), \\
    ...      mock.patch.object(config, "INTERIM_DIR", config.DATA_DIR / "interim"):
    ...     ws = open_workspace("r1")
    ...     sorted(p.name for p in ws.iterdir())
    ['.owner', 'audiences', 'processed']
    """
    ws = workspace_dir(run_id)
    ws.mkdir(parents=True)
    claim(ws)
    for name in config.RUN_SCOPED_FOLDERS:
        published = config.DATA_DIR / name
        if published.is_dir():
            shutil.copytree(published, ws / name, symlinks=True)  # copy2: times kept, so "changed" is exact
        else:
            (ws / name).mkdir()
    return ws


def _snapshot(folder: Path) -> set[tuple[str, int, int]]:
    """Each file's path, size and modification time (a seeded copy keeps the time; any write changes it)."""
    if not folder.is_dir():
        return set()
    return {(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and p.name != OWNER_FILE}


@contextlib.contextmanager
def publish_lock() -> Iterator[None]:
    """Held while a run publishes: its data folders, its reports folder and ``latest`` change together."""
    config.INTERIM_DIR.mkdir(parents=True, exist_ok=True)
    with open(config.INTERIM_DIR / ".publish.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def changed_folders(ws: Path) -> list[str]:
    """The data folders (``processed``, ``audiences``) whose run copy differs from what is published."""
    return [name for name in config.RUN_SCOPED_FOLDERS
            if _snapshot(ws / name) != _snapshot(config.DATA_DIR / name) or not (config.DATA_DIR / name).is_dir()]


def publish_workspace(ws: Path, run_id: str) -> list[str]:
    """Replace each published data folder the run changed by the run's copy; call under :func:`publish_lock`.
    Returns the folders replaced; ``data/processed/published_by.json`` names the run.

    A folder the run did not write (a one-notebook run that exports no audience) is left as it is. The swap is
    two renames: for an instant the folder is absent, never half old and half new.
    """
    replaced = changed_folders(ws)
    if replaced:
        (ws / "processed" / "published_by.json").write_text(json.dumps({"run_id": run_id, "folders": replaced}))
        if "processed" not in replaced:
            replaced.append("processed")
    for name in replaced:
        mine, published = ws / name, config.DATA_DIR / name
        old = config.INTERIM_DIR / f".old-{name}-{ws.name}"
        if published.exists():
            os.replace(published, old)
        os.replace(mine, published)
        shutil.rmtree(old, ignore_errors=True)
    return replaced


def discard_workspace(ws: Path | None) -> None:
    """Delete a run's data copy (it holds raw ids and is never kept for a failed run)."""
    if ws is not None:
        shutil.rmtree(ws, ignore_errors=True)


def _abandoned(folder: Path) -> str | None:
    """Why ``folder`` was left by a process that is gone, or ``None`` when its process may still be running."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        # Written before owners were recorded, or killed between mkdir and claim: old enough means abandoned.
        age = time.time() - folder.stat().st_mtime
        return f"no owner recorded, untouched for {age / 3600:.1f} h" if age > 6 * 3600 else None
    if owner.get("host") != socket.gethostname():
        return None  # another machine's run on a shared disk: not ours to judge
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(owner.get("started", 0)))
        return f"process {owner['pid']} (started {started}) ended without finishing the run (killed?)"
    except PermissionError:
        return None  # alive, another user's
    return None


def clean_abandoned(reports: Path) -> list[str]:
    """Move the reports of runs whose process is gone to ``reports/failed/`` (with a note) and delete their data
    copies; returns one line per run cleaned, which the runner prints. Call under :func:`publish_lock`."""
    lines = []
    for tmp in sorted(reports.glob(".tmp-*")):
        why = _abandoned(tmp)
        if why is None:
            continue
        run_id = tmp.name.removeprefix(".tmp-")
        failed = reports / "failed" / run_id
        failed.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "error.txt").write_text(f"abandoned run: {why}; nothing of it was published.\n")
        (tmp / OWNER_FILE).unlink(missing_ok=True)
        if failed.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.move(str(tmp), failed)
        lines.append(f"an abandoned run {run_id} was cleaned up ({why}): kept in {failed}")
    for ws in sorted(config.INTERIM_DIR.glob(".run-*")):
        why = _abandoned(ws)
        if why is not None:
            shutil.rmtree(ws, ignore_errors=True)
            run_id = ws.name.removeprefix(".run-")
            if not any(run_id in line for line in lines):
                lines.append(f"the data copy of an abandoned run {run_id} was deleted ({why})")
    for old in sorted(config.INTERIM_DIR.glob(".old-*")):  # a publish killed between its two renames
        name = next((n for n in config.RUN_SCOPED_FOLDERS if old.name.startswith(f".old-{n}-")), None)
        if name and not (config.DATA_DIR / name).exists():
            os.replace(old, config.DATA_DIR / name)
            lines.append(f"data/{name} was restored from an interrupted publish")
        else:
            shutil.rmtree(old, ignore_errors=True)
    return lines


def warn(lines: list[str]) -> None:
    """Print the clean-up lines on stderr (a scheduled run's log)."""
    for line in lines:
        print(line, file=sys.stderr)
