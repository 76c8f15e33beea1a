"""Project paths, derived from the project root. Nothing happens at import.

The root is the folder holding ``pyproject.toml`` above this package (the
package is installed editable from ``src/``); set ``JOURNEY_PROJECT_ROOT`` to
point the helpers at another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("JOURNEY_PROJECT_ROOT") or Path(__file__).resolve().parents[2])

CONFIG_DIR = PROJECT_ROOT / "config"
DATA_DIR = PROJECT_ROOT / "data"
RAW_DIR = DATA_DIR / "raw"  # the analyst's exports; never modified
INTERIM_DIR = DATA_DIR / "interim"
PROCESSED_DIR = DATA_DIR / "processed"  # generated, handed from notebook to notebook
SAMPLE_DIR = DATA_DIR / "sample"  # the bundled synthetic sample, committed
AUDIENCES_DIR = DATA_DIR / "audiences"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
REPORTS_DIR = PROJECT_ROOT / "reports"

SAMPLE_EVENTS = SAMPLE_DIR / "events.parquet"
SAMPLE_USERS = SAMPLE_DIR / "users.parquet"
PROCESSED_EVENTS = PROCESSED_DIR / "events.parquet"
PROCESSED_PERSONAS = PROCESSED_DIR / "personas.parquet"


# During a report run, the folders a run writes (hand-offs, audiences) are the run's own copies, published with
# the run when it succeeds (helpers.report.workspace): two runs at once never read each other's files.
RUN_DATA_ENV = "HELPERS_RUN_DATA"
RUN_SCOPED_FOLDERS = ("processed", "audiences")


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as an absolute path, relative paths taken from the project root.

    Notebooks run with their own folder as working directory; resolving
    against the root lets a parameter say ``data/raw/export.csv`` wherever
    the notebook is executed from. Inside a report run, a path under
    ``data/processed/`` or ``data/audiences/`` is the run's own copy of it
    (see :mod:`helpers.report.workspace`).

    Examples
    --------
    >>> resolve_path("data/sample/events.parquet") == SAMPLE_EVENTS
    True
    >>> resolve_path("/tmp/x.csv").as_posix()
    '/tmp/x.csv'
    """
    p = Path(path).expanduser()
    p = p if p.is_absolute() else PROJECT_ROOT / p
    workspace = os.environ.get(RUN_DATA_ENV)
    if workspace:
        normal = Path(os.path.normpath(p))
        for name in RUN_SCOPED_FOLDERS:
            if normal.is_relative_to(DATA_DIR / name):
                return Path(workspace) / name / normal.relative_to(DATA_DIR / name)
    return p
