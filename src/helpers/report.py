"""Run the report notebooks with papermill, as ``python -m helpers.report run --config FILE``.

Each notebook of the config runs in order, in a fresh kernel, with the
global parameters and then its own; executed notebooks land in
``reports/<run_id>/``. A failing notebook stops the run with exit code 1 and
names the notebook and the error.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers import config

__all__ = ["NotebookSpec", "ReportConfig", "load_config", "run"]


@dataclass
class NotebookSpec:
    """One notebook of a run: a short name, its path and its own parameters."""

    name: str
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportConfig:
    """A run: global parameters and the notebooks in execution order."""

    parameters: dict[str, Any]
    notebooks: list[NotebookSpec]
    source: Path | None = None


class ConfigError(ValueError):
    """A report configuration that cannot be run."""


def load_config(path: str | Path) -> ReportConfig:
    """Read a report config (YAML): ``parameters`` and a list of ``notebooks``.

    Examples
    --------
    >>> cfg = load_config(config.CONFIG_DIR / "report.yaml")
    >>> cfg.notebooks[0].name
    'data_loading'
    """
    path = config.resolve_path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the report config: {exc}") from None
    notebooks = []
    for i, item in enumerate(raw.get("notebooks") or []):
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{path}: notebooks[{i}] needs at least a 'path'.")
        nb_path = config.resolve_path(item["path"])
        if not nb_path.exists():
            raise ConfigError(f"{path}: notebooks[{i}]: {nb_path} does not exist.")
        notebooks.append(NotebookSpec(item.get("name") or nb_path.stem, nb_path, dict(item.get("parameters") or {})))
    if not notebooks:
        raise ConfigError(f"{path}: no notebooks listed.")
    return ReportConfig(dict(raw.get("parameters") or {}), notebooks, path)


def run(config_path: str | Path, *, quiet: bool = False) -> Path:
    """Execute every notebook of the config; return the run folder."""
    import papermill as pm

    cfg = load_config(config_path)
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = config.REPORTS_DIR / run_id
    out.mkdir(parents=True, exist_ok=True)
    for nb in cfg.notebooks:
        started = time.perf_counter()
        pm.execute_notebook(nb.path, out / nb.path.name, parameters={**cfg.parameters, **nb.parameters},
                            cwd=str(nb.path.parent), progress_bar=not quiet, log_output=False)
        if not quiet:
            print(f"{nb.name}: {time.perf_counter() - started:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="execute the notebooks of a report config")
    run_parser.add_argument("--config", default=str(config.CONFIG_DIR / "report.yaml"))
    run_parser.add_argument("--quiet", action="store_true", help="no progress output (for cron)")
    args = parser.parse_args(argv)
    try:
        out = run(args.config, quiet=args.quiet)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # papermill.PapermillExecutionError names the cell
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report run written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
