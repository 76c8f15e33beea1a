"""Report runs: execute the notebooks of a config with papermill, render offline HTML for stakeholders.

``python -m helpers.report run --config config/report.yaml [--param key=value ...] [--only NAME]``

- Parameters come from the config's global ``parameters``, then each
  notebook's own, then ``--param`` (``key=value`` for every notebook that
  declares ``key``, ``name.key=value`` for one notebook; values are YAML).
  Each is checked against the notebook's ``parameters`` cell: an unknown name
  is an error that lists the known ones with their types and defaults.
- A run is written to ``reports/.tmp-<run_id>/`` and moved to
  ``reports/<run_id>/`` (run id: UTC time plus a short hash of the config and
  overrides) only when every notebook ran, every HTML rendered and the
  privacy check passed; ``reports/latest`` then points to it (not for a partial
  run with ``--only``, unless ``--latest``). A failure keeps
  the partial run in ``reports/failed/<run_id>/`` (without its pages when they
  failed the privacy check) and leaves ``latest`` and earlier runs untouched.
- Isolation: during a run ``data/processed/`` and ``data/audiences/`` are the
  run's own copies, published with its reports and ``latest`` under one lock
  when it succeeds (:mod:`helpers.report.workspace`): concurrent runs never
  read each other's files, and a run killed mid-way is cleaned up by the next.
- The HTML has no code, no parameter cells, no warnings or logs; plotly.js is
  embedded once per file and nothing is fetched from the network.
- Privacy: no raw user id (from the processed events) or e-mail address may
  appear in any HTML; a run that would publish one fails.
- Hostile data: event names, channels and properties come from the tracked
  website, so every value from the data is escaped before it reaches HTML
  (:func:`escape`, :func:`say`, :func:`finding`, ``plots.styled`` and the
  plotly labels), and every page carries a Content-Security-Policy that lets
  only the scripts the renderer wrote run (by their SHA-256): no inline event
  handler, ``javascript:`` URL or injected ``<script>`` executes even if a
  value slipped through unescaped.

Exit codes: 0 success, 1 a notebook failed (or the privacy check did), 2 bad
configuration.

Notebooks talk to the run through :func:`record` (facts for the index, such
as the data range) and :func:`finding` (a sentence for the key findings);
both simply display or do nothing outside a run.

Where things live::

    settings.py  load_config, parse_overrides, notebook_parameters, resolve_parameters; the errors
    notes.py     what notebooks call: record, say, finding, escape, shorten, pseudonymize
    pages.py     render_html and the Content-Security-Policy
    privacy.py   privacy_problems: raw ids and e-mail addresses in pages
    runner.py    run and main: execute, render, check, publish, index
    workspace.py a run's own data folders, publishing them, cleaning up abandoned runs
"""

from __future__ import annotations

from helpers.report.notes import (
                                  RUN_DIR_ENV,
                                  RUN_SALT_ENV,
                                  Prose,
                                  Tile,
                                  escape,
                                  finding,
                                  pseudonymize,
                                  record,
                                  say,
                                  shorten,
                                  tile,
)
from helpers.report.pages import HIDDEN_CELL_TAGS, content_security_policy, render_html
from helpers.report.privacy import EMAIL, PrivacyError, privacy_problems
from helpers.report.runner import PACKAGES, RunResult, main, run
from helpers.report.settings import (
                                  ConfigError,
                                  NotebookFailed,
                                  NotebookSpec,
                                  ReportConfig,
                                  load_config,
                                  notebook_parameters,
                                  parse_overrides,
                                  resolve_parameters,
)

__all__ = [
    "ConfigError", "content_security_policy", "EMAIL", "escape", "finding", "HIDDEN_CELL_TAGS", "load_config",
    "main", "notebook_parameters", "NotebookFailed", "NotebookSpec", "PACKAGES", "parse_overrides",
    "privacy_problems", "PrivacyError", "Prose", "pseudonymize", "record", "render_html", "ReportConfig",
    "resolve_parameters", "run", "RUN_DIR_ENV", "RUN_SALT_ENV", "RunResult", "say", "shorten", "tile", "Tile",
]
