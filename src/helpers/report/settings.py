"""A report's configuration: the config file, command-line overrides, each notebook's declared parameters, and the errors of a run.

Every parameter given is checked against the notebook's ``parameters`` cell (name and type) before anything runs.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import nbformat
import yaml

from helpers import config


class ConfigError(ValueError):
    """A report configuration or parameter that cannot be run (exit code 2)."""


class NotebookFailed(RuntimeError):
    """A notebook raised; ``failed_dir`` keeps the partial run (exit code 1)."""

    def __init__(self, message: str, failed_dir: Path):
        super().__init__(message)
        self.failed_dir = failed_dir


@dataclass
class NotebookSpec:
    """One notebook of a run: a short name, its path, its own parameters.

    ``index_first`` lists it first on the index page (the journey overview
    runs last but is read first).
    """

    name: str
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    index_first: bool = False


@dataclass
class ReportConfig:
    """A run: global parameters and the notebooks in execution order."""

    parameters: dict[str, Any]
    notebooks: list[NotebookSpec]
    source: Path | None = None
    title: str = "Customer journey report"
    privacy_ids_from: Path | None = None
    text: str = ""
    backend: str = "duckdb"
    spark_master: str | None = None


def load_config(path: str | os.PathLike[str]) -> ReportConfig:
    """Read a report config (YAML).

    Keys: ``title``, ``parameters`` (for every notebook that declares them),
    ``notebooks`` (a list of ``{name, path, parameters, index_first}`` in
    execution order), ``privacy: {ids_from: <canonical events Parquet>}``, ``backend``
    (``duckdb``, the default, or ``pyspark``) and ``spark: {master: ...}``.

    Examples
    --------
    >>> cfg = load_config(config.CONFIG_DIR / "report.yaml")
    >>> cfg.notebooks[0].name, cfg.notebooks[0].path.name
    ('data_loading', '01_data_loading.ipynb')
    """
    path = config.resolve_path(path)
    try:
        text = path.read_text()
        raw = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the report config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'notebooks', got {type(raw).__name__}.")
    unknown = set(raw) - {"title", "parameters", "notebooks", "privacy", "backend", "spark"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: title, parameters, notebooks, privacy, "
                          "backend, spark.")
    backend = str(raw.get("backend") or "duckdb")
    if backend not in ("duckdb", "pyspark"):
        raise ConfigError(f"{path}: backend must be 'duckdb' or 'pyspark', got {backend!r}.")
    spark = raw.get("spark") or {}
    if not isinstance(spark, dict) or set(spark) - {"master"}:
        raise ConfigError(f"{path}: 'spark' takes {{master: ...}} (e.g. local[*] or spark://host:7077).")
    notebooks: list[NotebookSpec] = []
    for i, item in enumerate(raw.get("notebooks") or []):
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{path}: notebooks[{i}] needs at least a 'path'.")
        nb_path = config.resolve_path(item["path"])
        if not nb_path.exists():
            raise ConfigError(f"{path}: notebooks[{i}]: {nb_path} does not exist.")
        if not nb_path.is_file():
            raise ConfigError(f"{path}: notebooks[{i}]: {nb_path} is a folder, not a notebook (.ipynb).")
        name = str(item.get("name") or nb_path.stem)
        if any(n.name == name for n in notebooks):
            raise ConfigError(f"{path}: two notebooks are named {name!r}.")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: notebooks[{i}].parameters must be a mapping.")
        notebooks.append(NotebookSpec(name, nb_path, _dates_as_text(params), bool(item.get("index_first", False))))
    if not notebooks:
        raise ConfigError(f"{path}: no notebooks listed under 'notebooks'.")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: 'parameters' must be a mapping.")
    params = _dates_as_text(params)
    ids_from = (raw.get("privacy") or {}).get("ids_from", "data/processed/events.parquet")
    return ReportConfig(dict(params), notebooks, path, str(raw.get("title") or ReportConfig.title),
                        config.resolve_path(ids_from) if ids_from else None, text, backend, spark.get("master"))


def parse_overrides(items: Iterable[str]) -> dict[str | None, dict[str, Any]]:
    """``--param`` strings to ``{notebook or None: {key: value}}``; values are read as YAML.

    Examples
    --------
    >>> parse_overrides(["start=2025-02-01", "funnel.steps=[visit, buy]", "window=14"])
    {None: {'start': '2025-02-01', 'window': 14}, 'funnel': {'steps': ['visit', 'buy']}}
    """
    out: dict[str | None, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected key=value or notebook.key=value.")
        notebook, _, name = key.strip().rpartition(".")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, (datetime.date, datetime.datetime)):
            parsed = value  # YAML reads 2025-01-01 as a date; notebooks take dates as text
        out.setdefault(notebook or None, {})[name] = _dates_as_text(parsed)
    return out


def _dates_as_text(value: Any) -> Any:
    """YAML reads ``2025-01-01`` as a date, anywhere in a value (``[2025-01-01, 2025-02-01]``); notebooks take
    dates as text, and papermill cannot pass a date object: every date becomes its ISO text.

    Examples
    --------
    >>> _dates_as_text({"cuts": [datetime.date(2025, 1, 1), "x"], "n": 3})
    {'cuts': ['2025-01-01', 'x'], 'n': 3}
    """
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dates_as_text(v) for v in value]
    return value


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares: ``{name: {"type", "default", "help"}}``.

    Read from the cell tagged ``parameters`` with ``ast`` (papermill's own
    inspector cannot read annotations such as ``str | None``): each
    ``name: type = default  # help`` line, defaults as Python literals.
    """
    import ast

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return {}
    source = cells[0].source
    lines = source.splitlines()
    out: dict[str, dict[str, Any]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, "None"
        else:
            continue
        try:
            default = ast.literal_eval(node.value) if node.value is not None else None
        except ValueError:
            default = ast.unparse(node.value)
        annotation = _typing_to_union(annotation)
        comment = lines[node.end_lineno - 1].partition("#")[2].strip() if "#" in lines[node.end_lineno - 1] else ""
        if annotation == "None" and default is not None:
            annotation = type(default).__name__
        out[name] = {"type": annotation, "default": default, "help": comment}
    return out


def _typing_to_union(annotation: str) -> str:
    """``Optional[str]`` and ``Union[str, dict, None]`` (what papermill can parse) as ``str | None``...

    Examples
    --------
    >>> _typing_to_union("Optional[str]"), _typing_to_union("Union[str, dict, None]"), _typing_to_union("list[str]")
    ('str | None', 'str | dict | None', 'list[str]')
    """
    m = re.fullmatch(r"(Optional|Union)\[(.*)\]", annotation.strip())
    if not m:
        return annotation
    parts = [p.strip() for p in re.split(r",(?![^\[]*\])", m.group(2))]
    return " | ".join(parts + (["None"] if m.group(1) == "Optional" else []))


_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list, tuple),
    "dict": (dict,), "None": (type(None),), "tuple": (list, tuple),
}


def _type_ok(value: Any, annotation: str) -> bool:
    """Loose check of a value against a parameter's annotation (``str | None``, ``list[str]``...)."""
    names = [re.sub(r"\[.*", "", part.strip()) for part in annotation.split("|")]
    if not names or any(n not in _TYPE_CHECKS for n in names):
        return True  # an annotation we do not understand is not checked
    if isinstance(value, bool) and "bool" not in names:
        return False
    return any(isinstance(value, _TYPE_CHECKS[n]) for n in names)


def _describe(declared: Mapping[str, Mapping[str, Any]]) -> str:
    return "; ".join(f"{n}: {p['type']} = {p['default']}" for n, p in declared.items()) or "(none)"


def resolve_parameters(cfg: ReportConfig, overrides: Mapping[str | None, Mapping[str, Any]] | None = None,
                       only: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Merged and validated parameters per notebook: global, then the notebook's, then overrides.

    A global or command-line ``key`` goes to every notebook that declares it
    and must be declared by at least one; a notebook's own parameters and
    ``name.key`` overrides must be declared by that notebook.
    """
    overrides = dict(overrides or {})
    names = [nb.name for nb in cfg.notebooks]
    for target in [t for t in overrides if t is not None] + list(only or []):
        if target not in names:
            raise ConfigError(f"no notebook named {target!r} in {cfg.source}; notebooks: {', '.join(names)}.")
    declared = {}
    for nb in cfg.notebooks:
        try:
            declared[nb.name] = notebook_parameters(nb.path)
        except (OSError, ValueError, SyntaxError) as exc:  # not a notebook, or its parameters cell is not Python
            raise ConfigError(f"notebook {nb.name!r}: {nb.path} cannot be read as a notebook "
                              f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    cli_shared = dict(overrides.get(None, {}))
    shared = {**cfg.parameters, **cli_shared}
    for key in shared:
        if not any(key in d for d in declared.values()):
            every = sorted({k for d in declared.values() for k in d})
            close = difflib.get_close_matches(key, every, n=1)
            raise ConfigError(
                f"parameter {key!r} is declared by no notebook{f' (did you mean {close[0]!r}?)' if close else ''}. "
                "Known parameters: "
                + " | ".join(f"{n}: {_describe(d)}" for n, d in declared.items()))
    merged: dict[str, dict[str, Any]] = {}
    for nb in cfg.notebooks:
        known = declared[nb.name]
        own = {**nb.parameters, **overrides.get(nb.name, {})}
        for key in own:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                raise ConfigError(f"notebook {nb.name!r} ({nb.path.name}) has no parameter {key!r}"
                                  f"{f' (did you mean {close[0]!r}?)' if close else ''}. "
                                  f"Its parameters: {_describe(known)}.")
        # Precedence: config global < config notebook < command line global < command line notebook.key
        values = ({k: v for k, v in cfg.parameters.items() if k in known} | nb.parameters
                  | {k: v for k, v in cli_shared.items() if k in known} | overrides.get(nb.name, {}))
        for key, value in values.items():
            if not _type_ok(value, known[key]["type"]):
                raise ConfigError(f"notebook {nb.name!r}: parameter {key!r} should be {known[key]['type']}, "
                                  f"got {value!r} ({type(value).__name__}).")
        merged[nb.name] = values
    return merged
