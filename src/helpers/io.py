"""Load event exports into the canonical event table, validate them, hand them to ibis.

The canonical event table has one row per event and these columns:

- ``user_id`` (string): who did it;
- ``event`` (string): what they did;
- ``timestamp`` (``datetime64[ns, UTC]``): when, in UTC;
- optional ``session_id`` (string), ``channel`` (string) and ``value``
  (float: revenue, or a survey score);
- any other column of the export, kept as a property (``page``, ``plan``...).

:func:`load_events` turns every supported input into that table and never
modifies the input. Rules, each reported, never silent:

- a row whose ``user_id``, ``event`` or ``timestamp`` is null (or an empty
  string) is dropped and counted per reason;
- rows before ``start`` or at/after ``end`` are dropped and counted;
- exact duplicate rows (equal in every column after conversion) are removed
  and counted;
- anything that cannot be converted (a timestamp that is no timestamp, a
  ``value`` that is no number, a missing column, an empty or unreadable
  file) raises :class:`EventDataError`, naming the source, the column and up
  to five offending values with their row numbers.

Time stamps: ISO 8601 text with or without an offset (an offset is converted
to UTC; text without one is taken as UTC), datetimes (naive ones taken as
UTC), text in a ``timestamp_format`` (``"%Y%m%d"``...), or epoch numbers
whose unit (s, ms, us, ns) is read from each value's magnitude unless
``timestamp_unit`` says. A guessed unit must put every value between
1990 and a year from now: milliseconds of 1972 read as seconds, spreadsheet
serial days, bare years or ``yyyymmdd`` integers are an error that says so,
never a date in 1970 or 2215. A given unit is checked for overflow.

What counts as missing: a true null, or an empty string. ``"NA"``,
``"null"``, ``"None"``, ``"N/A"``, ``"nan"`` and pandas' other spellings of a
missing value are text in ``user_id``, ``event``, ``session_id`` and
``channel`` (a real id "NA" is not lost; :func:`data_quality` reports them as
suspicious), and missing in ``value``, in the timestamp and in numeric
properties.

Types of properties: a CSV is read as text, and a property column becomes a
number only when that loses nothing: every value a plain decimal without a
leading zero, sign or more than 15 integer digits (``00123``, ``007``,
``+5`` and 20-digit order ids stay text). Parquet, JSON and DataFrames keep
their own types.

:func:`open_events` gives the same table as a lazy ibis table on DuckDB
in-process; :func:`as_ibis` is what every analysis calls on its ``events``
argument, so that analyses accept a DataFrame or an ibis table alike.
"""

from __future__ import annotations

import difflib
import glob as globlib
import json
import os
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CANONICAL_COLUMNS",
    "OPTIONAL_COLUMNS",
    "PRESETS",
    "US_PER_DAY",
    "DataQualityReport",
    "EventDataError",
    "NA_SPELLINGS",
    "Preset",
    "BACKENDS",
    "BACKEND_ENV",
    "as_ibis",
    "available",
    "default_backend",
    "current_handoff",
    "data_quality",
    "epoch_us",
    "event_names",
    "events_fingerprint",
    "handoff_note",
    "load_events",
    "open_events",
    "read_load_info",
    "read_user_tables",
    "read_users",
    "to_utc",
    "to_utc_series",
    "user_attribute",
    "utc_naive",
    "write_events",
    "write_handoff",
]

CANONICAL_COLUMNS = ("user_id", "event", "timestamp")
OPTIONAL_COLUMNS = ("session_id", "channel", "value")
STRING = pd.StringDtype("pyarrow")
_LOAD_INFO_KEY = "helpers.load"
_TIMESTAMP_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Epoch magnitudes that separate the units: 1e11 s is the year 5138, 1e11 ms is 1973.
_UNIT_BOUNDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_OFFSET = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"  # an explicit UTC offset at the end of ISO text
# pandas' spellings of a missing value ('NA', 'null', 'None', 'N/A', 'nan', '#N/A'...), the empty string aside.
from pandas._libs.parsers import STR_NA_VALUES as _PANDAS_NA  # noqa: E402

NA_SPELLINGS = tuple(sorted(set(_PANDAS_NA) - {""}))
# A number written without loss: no leading zero, no sign but '-', at most 15 integer digits (exact in float64).
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?"
# Epoch numbers whose guessed unit puts them outside these years are refused (see _epoch_to_ns).
PLAUSIBLE_FROM = pd.Timestamp("1990-01-01", tz="UTC")


class EventDataError(ValueError):
    """An input that cannot become a canonical event table; the message says where and why."""


@dataclass(frozen=True)
class Preset:
    """How a known export maps onto the canonical table.

    ``rename`` maps export columns to canonical ones; ``user_fallback`` names
    a column used where the user column is null (Segment's ``anonymousId``);
    ``strip_prefixes`` shortens flattened property names
    (``properties.page`` becomes ``page`` unless that name is taken).
    """

    name: str
    rename: Mapping[str, str]
    user_fallback: str | None = None
    timestamp_unit: str | None = None
    strip_prefixes: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "amplitude": Preset(
        "amplitude",
        {"user_id": "user_id", "event_type": "event", "event_time": "timestamp"},
        strip_prefixes=("event_properties.",),
    ),
    "segment": Preset(
        "segment",
        # Segment's own `channel` is the library type (client/server), not a marketing channel.
        {"userId": "user_id", "event": "event", "timestamp": "timestamp", "channel": "segment_channel"},
        user_fallback="anonymousId",
        strip_prefixes=("properties.",),
    ),
    "mixpanel": Preset(
        "mixpanel",
        {"event": "event", "properties.distinct_id": "user_id", "properties.time": "timestamp"},
        timestamp_unit="s",
        strip_prefixes=("properties.",),
    ),
    "ga4": Preset(
        "ga4",
        {"user_pseudo_id": "user_id", "event_name": "event", "event_timestamp": "timestamp"},
        timestamp_unit="us",
    ),
}


# --------------------------------------------------------------------------- reading


def _label(source: Any) -> str:
    """How messages and reports name a source: paths inside the project relative to its root."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    from helpers.config import PROJECT_ROOT

    path = Path(str(source))
    if path.is_absolute() and path.is_relative_to(PROJECT_ROOT):
        return path.relative_to(PROJECT_ROOT).as_posix()
    return str(source)


def _format_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".txt", "txt"), (".parquet", "parquet"), (".pq", "parquet"),
                         (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".xes", "xes")):
        if name.endswith(suffix):
            return kind
    raise EventDataError(
        f"{path}: unknown file type; expected .csv, .tsv, .txt (whitespace-separated, with a header), .parquet, "
        ".jsonl/.ndjson/.json, .xes (CSV, TXT, JSON lines and XES may be .gz), a folder or glob of Parquet files, "
        "or a DataFrame."
    )


def _string_columns(columns: list[str], rename: Mapping[str, str], fallback: str | None) -> list[str]:
    """Columns to read as text, so that ids such as '007' keep their zeros."""
    wanted = {"user_id", "session_id", "event", "channel"}
    cols = [c for c in columns if rename.get(c, c) in wanted]
    return cols + ([fallback] if fallback in columns else [])


def _read_csv(path: Path, sep: str, rename: Mapping[str, str], fallback: str | None) -> pd.DataFrame:
    """Every column as text, only empty fields missing: pandas' own guesses would read the zip code '00123' as
    123 and a user called 'NA' as missing. Property columns then become numbers where that loses nothing."""
    try:
        pd.read_csv(path, sep=sep, nrows=0)
    except pd.errors.EmptyDataError:
        raise EventDataError(f"{path}: the file is empty (no header, no rows).") from None
    df = pd.read_csv(path, sep=sep, dtype=STRING, keep_default_na=False, na_values=[""], low_memory=False)
    if df.empty:
        raise EventDataError(f"{path}: the file has a header ({', '.join(map(str, df.columns))}) but no rows.")
    canonical = set(_string_columns(list(df.columns), rename, fallback)) | {
        c for c in df.columns if rename.get(c, c) in ("timestamp", "value")}
    for col in df.columns:
        if col not in canonical:
            df[col] = _typed_text(df[col])
    return df


def _na_like(s: pd.Series) -> np.ndarray:
    """Text values that spell a missing value ('NA', 'null', 'None'...), as a boolean array."""
    if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
        return np.zeros(len(s), dtype=bool)
    return s.isin(NA_SPELLINGS).to_numpy(dtype=bool, na_value=False)


def _typed_text(s: pd.Series) -> pd.Series:
    """A text column as numbers when every value is a plain number (see ``_PLAIN_NUMBER``), else unchanged.

    Spellings of a missing value become missing in a numeric column; integers
    become nullable ``Int64``, anything with a point or exponent ``float64``.

    Examples
    --------
    >>> _typed_text(pd.Series(["00123", "45000"], dtype="string")).tolist()
    ['00123', '45000']
    >>> _typed_text(pd.Series(["2", "NA", "10"], dtype="string")).tolist()
    [2, <NA>, 10]
    """
    present = s.notna().to_numpy(dtype=bool) & ~_na_like(s)
    if not present.any():
        return s
    values = s[present].astype(STRING)
    if not values.str.fullmatch(_PLAIN_NUMBER).all():
        return s
    numbers = pd.to_numeric(values, errors="coerce")
    whole = not values.str.contains(r"[.eE]", regex=True).any()
    out = pd.Series(pd.NA if whole else np.nan, index=s.index, dtype="Int64" if whole else "float64")
    out[present] = numbers.astype("int64" if whole else "float64").to_numpy()
    return out


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
               type(None): "null"}


def _first_bad_json_line(path: Path) -> str:
    """The first line that is not a JSON object, in words (only read when pandas has already failed)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"line {number} is not valid JSON ({exc.msg}): {line.strip()[:80]!r}"
            if not isinstance(record, dict):
                return (f"line {number} is {_JSON_KINDS.get(type(record), type(record).__name__)}, not a JSON object "
                        f"(one event per line, as {{\"user_id\": ..., \"event\": ...}}): {line.strip()[:80]!r}")
    return "the file is not JSON lines"


def _read_jsonl(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    except (ValueError, AttributeError, TypeError) as exc:  # AttributeError: a line that is an array, number or null
        if "Expected object or value" in str(exc) and path.stat().st_size == 0:
            raise EventDataError(f"{path}: the file is empty.") from None
        raise EventDataError(f"{path}: cannot read JSON lines: {_first_bad_json_line(path)}.") from None
    if df.empty:
        raise EventDataError(f"{path}: the file is empty (no JSON records).")
    nested = [c for c in df.columns if df[c].map(lambda v: isinstance(v, dict)).any()]
    if nested:
        # Flatten nested objects (Mixpanel's `properties`, Amplitude's `event_properties`) to dotted names.
        flat = pd.json_normalize(df[nested].to_dict("records"))
        flat.columns = [str(c) for c in flat.columns]
        clash = sorted(set(flat.columns) & set(df.columns))
        if clash:
            raise EventDataError(
                f"{path}: the nested key {clash[0].split('.')[0]!r} flattens to {clash[0]!r}, and the records also have "
                f"a top-level key {clash[0]!r}; both cannot be kept. Rename one of them in the export.")
        df = pd.concat([df.drop(columns=nested), flat], axis=1)
    return df


XES_COLUMNS = {"case:concept:name": "user_id", "concept:name": "event", "time:timestamp": "timestamp"}


def _read_xes(path: Path) -> pd.DataFrame:
    """An XES event log (process mining; IEEE 1849) as one row per event.

    A case (trace) is a user: ``case:concept:name`` becomes ``user_id``, the
    event's ``concept:name`` the ``event`` and ``time:timestamp`` the
    ``timestamp`` (unless ``mapping`` says otherwise); the other event
    attributes are properties under their keys, the trace's under
    ``case:<key>``. Read by a streaming parser, one element at a time (about
    100k events a second): convert a large log to Parquet once.
    """
    import gzip
    import xml.etree.ElementTree as ET

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    columns: dict[str, list[Any]] = {}
    n = 0
    case: dict[str, Any] = {}
    event: dict[str, Any] | None = None
    depth_tags: list[str] = []

    def add(row: dict[str, Any]) -> None:
        nonlocal n
        for key in row.keys() - columns.keys():
            columns[key] = [None] * n
        for key, values in columns.items():
            values.append(row.get(key))
        n += 1

    try:
        with opener(path, "rb") as fh:
            for kind, elem in ET.iterparse(fh, events=("start", "end")):
                tag = elem.tag.rpartition("}")[2]
                if kind == "start":
                    depth_tags.append(tag)
                    if tag == "trace":
                        case = {}
                    elif tag == "event":
                        event = {}
                    continue
                depth_tags.pop()
                parent = depth_tags[-1] if depth_tags else None
                if tag in ("string", "date", "int", "float", "boolean", "id") and parent in ("event", "trace"):
                    key, value = elem.get("key"), elem.get("value")
                    if parent == "event" and event is not None:
                        event[key] = value
                    elif parent == "trace":
                        case[f"case:{key}"] = value
                elif tag == "event" and parent == "trace":
                    add({**case, **(event or {})})
                    event = None
                    elem.clear()
                elif tag == "trace":
                    elem.clear()
    except ET.ParseError as exc:
        raise EventDataError(f"{path}: not a readable XES (XML) log: {exc}.") from None
    if not n:
        raise EventDataError(f"{path}: the XES log has no events inside traces.")
    frame = pd.DataFrame({k: pd.array(v, dtype=STRING) for k, v in columns.items()})
    taken = set(frame.columns)
    return frame.rename(columns={k: v for k, v in XES_COLUMNS.items() if k in taken and v not in taken})


def _arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    mapper = {pa.string(): STRING, pa.large_string(): STRING}.get
    return table.to_pandas(types_mapper=mapper, self_destruct=True, split_blocks=True)


def _parquet_files(source: str | os.PathLike[str]) -> list[str] | str:
    text = str(source)
    if any(ch in text for ch in "*?["):
        files = sorted(globlib.glob(text, recursive=True))
        if not files:
            raise EventDataError(f"{text}: no file matches this pattern.")
        return files
    return text


def _read_parquet(source: str | os.PathLike[str]) -> pd.DataFrame:
    """A Parquet file, glob or folder. A glob and a folder read the same way: every column of every file is
    kept (a file without it gives nulls), and a column whose type differs between files is read as the common
    type, or as text when one file has it as text (an id written as 7 in one file and "u7" in another)."""
    import pyarrow.dataset as ds

    files = _parquet_files(source)
    try:
        if isinstance(files, str) and not Path(files).is_dir():
            table = pq.read_table(files)
        else:
            found = ds.dataset(files, format="parquet", partitioning="hive" if isinstance(files, str) else None)
            if not found.files:
                raise EventDataError(f"{source}: the folder holds no Parquet files.")
            schema = _unified_schema(found, source)
            table = ds.dataset(files, format="parquet", schema=schema,
                               partitioning="hive" if isinstance(files, str) else None).to_table()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise EventDataError(f"{source}: cannot read as Parquet: {exc}") from None
    if table.num_rows == 0:
        raise EventDataError(f"{source}: the Parquet data has no rows (columns: {', '.join(table.column_names)}).")
    return _arrow_to_pandas(_binary_as_text(table, source))


def _unified_schema(dataset, source: Any) -> pa.Schema:
    """One schema for the files of a dataset: every field of every file, in order of first appearance."""
    per_file = [(f, pq.read_schema(f)) for f in dataset.files]
    types: dict[str, list[tuple[str, pa.DataType]]] = {}
    for path, schema in per_file:
        for fld in schema:
            types.setdefault(fld.name, []).append((path, fld.type))
    for fld in dataset.schema:  # hive partition columns live in the paths, not the files
        types.setdefault(fld.name, [("(partition)", fld.type)])
    fields = []
    for name, seen in types.items():
        distinct = list(dict.fromkeys(t for _, t in seen))
        if len(distinct) == 1:
            fields.append(pa.field(name, distinct[0]))
            continue
        try:
            fields.append(pa.unify_schemas([pa.schema([pa.field(name, t)]) for t in distinct],
                                           promote_options="permissive").field(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in distinct):
                fields.append(pa.field(name, pa.string()))  # read as text; loading converts what it must
                continue
            (f1, t1), (f2, t2) = seen[0], next((f, t) for f, t in seen if t != seen[0][1])
            raise EventDataError(f"{source}: column {name!r} is {t1} in {f1} but {t2} in {f2}; these types do not "
                                 "combine. Export the column with one type.") from None
    return pa.schema(fields)


def _binary_as_text(table: pa.Table, source: Any) -> pa.Table:
    """Binary columns as text when they are UTF-8; otherwise an error naming the column and the first bad row."""
    for i, fld in enumerate(table.schema):
        if not (pa.types.is_binary(fld.type) or pa.types.is_large_binary(fld.type)):
            continue
        try:
            table = table.set_column(i, fld.name, table.column(i).cast(pa.string()))
        except pa.ArrowInvalid:
            for row, value in enumerate(table.column(i).to_pylist(), start=1):  # only on the way to the error
                try:
                    value is None or value.decode("utf-8")
                except UnicodeDecodeError:
                    raise EventDataError(f"{source}: column {fld.name!r} is not UTF-8 text (binary values), e.g. "
                                         f"row {row}: {value[:40]!r}. Export it as text, or decode it before loading.") from None
    return table


def _read(source: Any, rename: Mapping[str, str], fallback: str | None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        if source.empty:
            raise EventDataError("DataFrame: the table has no rows.")
        # A shallow copy: columns are replaced, never written into, so the caller's frame is untouched.
        return source.reset_index(drop=True).copy(deep=False)
    if not isinstance(source, (str, os.PathLike)):
        raise EventDataError(
            f"cannot load events from a {type(source).__name__}; give a file path, a folder or glob "
            "of Parquet files, or a pandas DataFrame."
        )
    text = str(source)
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?[") or path.is_dir():
        return _read_parquet(path if path.is_dir() else text)
    kind = _format_kind(path)
    if not path.exists():
        raise EventDataError(f"{path}: no such file.")
    if not os.access(path, os.R_OK):
        raise EventDataError(f"{path}: the file is not readable (permission denied).")
    if path.stat().st_size == 0:
        raise EventDataError(f"{path}: the file is empty.")
    try:
        if kind in ("csv", "tsv", "txt"):
            return _read_csv(path, {"csv": ",", "tsv": "\t", "txt": r"\s+"}[kind], rename, fallback)
        if kind == "jsonl":
            return _read_jsonl(path)
        if kind == "xes":
            return _read_xes(path)
        return _read_parquet(path)
    except EventDataError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError, ValueError) as exc:
        raise EventDataError(f"{path}: cannot read as {kind.upper()}: {exc}") from None


# --------------------------------------------------------------------------- converting


def _examples(values: pd.Series, mask: np.ndarray, where: str) -> str:
    """Up to five offending values as "row 3: 'abc'", numbered 1-based in the source."""
    positions = np.flatnonzero(mask)[:5]
    out = []
    for pos in positions:
        row = pos + 1
        place = f"row {row} (line {row + 1})" if where == "csv" else (f"line {row}" if where == "jsonl" else f"row {row}")
        value = values.iloc[pos]
        out.append(f"{place}: {value.item() if isinstance(value, np.generic) else value!r}")
    return ", ".join(out)


def _where(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        try:
            kind = _format_kind(Path(str(source)))
        except EventDataError:
            return "parquet"
        return "csv" if kind in ("csv", "tsv", "txt") else kind
    return "frame"


def _as_string(s: pd.Series) -> pd.Series:
    """Text column with nulls (and empty strings) as <NA>; whole floats lose their '.0'."""
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.notna() & (s == np.floor(s))
        if whole[s.notna()].all():
            s = s.astype("Int64")
    out = s.astype(STRING)
    empty = (out == "").fillna(False).to_numpy(dtype=bool)
    return out.mask(empty) if empty.any() else out  # masking copies the column: only when needed


def _epoch_to_ns(values: pd.Series, unit: str | None, label: str = "DataFrame", column: str = "timestamp",
                 where: str = "frame") -> np.ndarray:
    """Epoch numbers to int64 nanoseconds, unit per value by magnitude unless given.

    A given unit is checked for overflow (past 2262 at nanoseconds); a guessed
    one must put every value between ``PLAUSIBLE_FROM`` and a year from now.
    Either failure is an :class:`EventDataError` with examples and the way out.
    """
    numeric = pd.to_numeric(values, errors="coerce")
    is_int = pd.api.types.is_integer_dtype(numeric.dtype)
    x = numeric.to_numpy(dtype="float64", na_value=np.nan)
    if unit is not None:
        factor = np.full(len(x), _TIMESTAMP_UNITS[unit], dtype="int64")
    else:
        mag = np.abs(x)
        conditions = [mag < bound for bound, _ in _UNIT_BOUNDS]
        factor = np.select(conditions, [_TIMESTAMP_UNITS[u] for _, u in _UNIT_BOUNDS], default=1).astype("int64")
    present = ~np.isnan(x)
    approx = x * factor  # float nanoseconds: enough to judge the range, and it cannot wrap around
    if unit is None:
        _check_plausible(values, approx, present, factor, label, column, where)
    overflow = present & (np.abs(approx) >= np.iinfo("int64").max)  # int64 nanoseconds would wrap around
    if overflow.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(overflow.sum()):,} epoch number(s) too large for "
            f"timestamp_unit={unit!r}: they would fall after the year 2262, e.g. {_examples(values, overflow, where)}. "
            "Check the unit (s, ms, us, ns).")
    if is_int:  # exact integer arithmetic; float64 cannot hold epoch nanoseconds exactly
        ints = numeric.to_numpy(dtype="int64", na_value=0)
        out = ints * factor
    else:
        out = np.round(np.nan_to_num(x) * factor).astype("int64")
    out[~present] = np.iinfo("int64").min  # NaT
    return out


def _check_plausible(values: pd.Series, approx_ns: np.ndarray, present: np.ndarray, factor: np.ndarray, label: str,
                     column: str, where: str) -> None:
    """A unit guessed from the numbers' size must put them between ``PLAUSIBLE_FROM`` and a year from now."""
    latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=366)
    odd = present & ((approx_ns < PLAUSIBLE_FROM.value) | (approx_ns > latest.value))
    if not odd.any():
        return
    names = {v: k for k, v in _TIMESTAMP_UNITS.items()}

    def when(ns: float) -> str:
        return f"{pd.Timestamp(int(ns), tz='UTC'):%Y-%m-%d}" if abs(ns) < 9.2e18 else f"the year {1970 + ns / 3.15576e16:,.0f}"

    examples = ", ".join(f"{_examples(values, np.arange(len(values)) == i, where)} (as {names[int(factor[i])]!r}: "
                         f"{when(approx_ns[i])})" for i in np.flatnonzero(odd)[:5])
    raise EventDataError(
        f"{label}: column '{column}' holds epoch numbers whose unit was guessed from their size, and "
        f"{int(odd.sum()):,} of them would fall outside {PLAUSIBLE_FROM:%Y} to {latest:%Y} at the guessed unit, "
        f"e.g. {examples}.{_epoch_hint(np.asarray(_values_float(values))[present])} If they are epochs, pass "
        "timestamp_unit='s', 'ms', 'us' or 'ns'.")


def _values_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _epoch_hint(x: np.ndarray) -> str:
    """What numbers that are no plausible epoch probably are."""
    whole = bool(np.all(x == np.floor(x)))
    if whole and np.all((x >= 19000101) & (x <= 21001231)):
        days = pd.to_datetime(pd.Series(x.astype("int64")).astype(str), format="%Y%m%d", errors="coerce")
        if days.notna().all():
            return " They look like yyyymmdd dates: pass timestamp_format='%Y%m%d'."
    if whole and np.all((x >= 1900) & (x <= 2100)):
        return " They look like bare years, not moments: convert them to dates first."
    if np.all((x >= 20000) & (x < 80000)):
        return (" They look like spreadsheet serial days (days since 1899-12-30): convert them to ISO 8601 text "
                "first.")
    return ""


def _parse_timestamps(s: pd.Series, unit: str | None, source: Any, column: str,
                      timestamp_format: str | None = None) -> pd.Series:
    label, where = _label(source), _where(source)
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        _check_nanosecond_range(s, label, column, where)
        aware = s.dt.tz_convert("UTC") if isinstance(s.dtype, pd.DatetimeTZDtype) else s.dt.tz_localize("UTC")
        return aware.astype("datetime64[ns, UTC]")
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_timestamp(s.dtype.pyarrow_dtype):
        return _parse_timestamps(pd.Series(s.to_numpy(), index=s.index), unit, source, column, timestamp_format)
    notnull = s.notna().to_numpy() & ~_na_like(s)  # 'NA', 'null'... are missing times: dropped and counted
    if not notnull.all():
        s = s.where(notnull)
    if timestamp_format is not None:
        text = s.astype("Int64").astype(STRING) if pd.api.types.is_numeric_dtype(s.dtype) else s.astype(STRING)
        parsed = pd.to_datetime(text.str.strip(), format=timestamp_format, errors="coerce", utc=True)
        bad = notnull & parsed.isna().to_numpy()
        if bad.any():
            raise EventDataError(
                f"{label}: column '{column}' has {int(bad.sum()):,} value(s) that do not match "
                f"timestamp_format={timestamp_format!r}, e.g. {_examples(s, bad, where)}.")
        return pd.Series(parsed, index=s.index).astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        numeric = True
    else:
        as_num = pd.to_numeric(s, errors="coerce")
        numeric = bool(notnull.any()) and bool((as_num.notna().to_numpy() == notnull).all())
    if numeric:
        ns = _epoch_to_ns(s, unit, label, column, where)
        return pd.Series(pd.to_datetime(ns, unit="ns", utc=True), index=s.index)
    if unit is not None:
        raise EventDataError(
            f"{label}: column '{column}' holds text, not epoch numbers, though timestamp_unit={unit!r} "
            f"was given, e.g. {_examples(s, notnull, where)}. Leave timestamp_unit=None for ISO 8601 text."
        )
    text = s.astype("string[pyarrow]").str.strip()
    # Parsed apart: in one call pandas applies an offset seen on some values to the naive ones.
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
    parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    for mask in (has_offset & notnull, ~has_offset & notnull):
        if mask.any():
            part = pd.to_datetime(text[mask].astype(object), format="ISO8601", errors="coerce", utc=True)
            parsed[mask] = part
    bad = notnull & parsed.isna().to_numpy()
    if bad.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(bad.sum()):,} value(s) that are not timestamps, e.g. "
            f"{_examples(s, bad, where)}. Expected ISO 8601 text ('2025-01-31T12:00:00Z', offsets allowed) "
            "or epoch numbers (s, ms, us or ns)."
        )
    return pd.Series(parsed, index=s.index).astype("datetime64[ns, UTC]")


def _check_nanosecond_range(s: pd.Series, label: str, column: str, where: str) -> None:
    """Timestamps stored at a coarser unit (Parquet's microseconds) may lie beyond what nanoseconds hold."""
    unit = s.dtype.unit if isinstance(s.dtype, pd.DatetimeTZDtype) else np.datetime_data(s.dtype)[0]
    if unit == "ns":
        return
    values = s.dt.tz_localize(None) if isinstance(s.dtype, pd.DatetimeTZDtype) else s
    raw = values.to_numpy()
    lo, hi = (np.datetime64(pd.Timestamp.min.ceil("us").to_datetime64(), unit),
              np.datetime64(pd.Timestamp.max.floor("us").to_datetime64(), unit))
    bad = ~np.isnat(raw) & ((raw < lo) | (raw > hi))
    if bad.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(bad.sum()):,} timestamp(s) outside the range the event table holds "
            f"(1677-09-22 to 2262-04-11), e.g. {_examples(s, bad, where)}. Such dates are usually placeholders "
            "(9999-12-31) or a wrong unit: fix or filter them in the export.")


def _closest(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
    if close:
        return f" The closest column is '{close[0]}'."
    return ""


def _preset_hint(columns: list[str]) -> str:
    present = set(columns)
    for preset in PRESETS.values():
        sources = [c for c, dst in preset.rename.items() if dst in CANONICAL_COLUMNS]
        if all(c in present for c in sources) and not set(CANONICAL_COLUMNS) <= present:
            return f" The columns look like a {preset.name} export: try mapping={preset.name!r}."
    return ""


def _resolve_mapping(mapping: str | Mapping[str, str] | None) -> Preset | None:
    if mapping is None:
        return None
    if isinstance(mapping, str):
        if mapping not in PRESETS:
            raise EventDataError(
                f"unknown mapping preset {mapping!r}; known presets: {', '.join(sorted(PRESETS))}, "
                "or give a dict {export column: canonical column}."
            )
        return PRESETS[mapping]
    if not isinstance(mapping, Mapping):
        raise EventDataError(f"mapping must be a preset name or a dict, not {type(mapping).__name__}.")
    sources: dict[str, list[str]] = {}
    for src, dst in mapping.items():
        sources.setdefault(dst, []).append(src)
    twice = {dst: srcs for dst, srcs in sources.items() if len(srcs) > 1}
    if twice:
        dst, srcs = next(iter(twice.items()))
        raise EventDataError(f"mapping sends {' and '.join(repr(c) for c in srcs)} to {dst!r}; map one export "
                             "column to each canonical column (drop or rename the other first).")
    return Preset("custom", dict(mapping))


def _strip_prefixes(df: pd.DataFrame, prefixes: tuple[str, ...], keep: set[str]) -> pd.DataFrame:
    taken = set(df.columns)
    names = {}
    for col in df.columns:
        for prefix in prefixes:
            if col.startswith(prefix) and col not in keep:
                short = col[len(prefix):]
                if short and short not in taken and short not in names.values():
                    names[col] = short
                break
    return df.rename(columns=names)


def _apply_mapping(df: pd.DataFrame, preset: Preset | None, label: str) -> pd.DataFrame:
    if preset is None:
        return df
    present = [c for c in preset.rename if c in df.columns]
    renamed = {c: preset.rename[c] for c in present}
    clashes = [dst for src, dst in renamed.items() if dst in df.columns and dst != src and dst not in renamed]
    if clashes:
        raise EventDataError(
            f"{label}: the mapping renames a column to {clashes[0]!r}, but the data already has a column "
            f"named {clashes[0]!r}; drop or rename one of them first."
        )
    df = _strip_prefixes(df, preset.strip_prefixes, keep=set(present))
    if preset.user_fallback and preset.user_fallback in df.columns:
        src = next((s for s, d in preset.rename.items() if d == "user_id"), "user_id")
        if src in df.columns:
            primary = _as_string(df[src])
            df = df.assign(**{src: primary.fillna(_as_string(df[preset.user_fallback]))})
        else:
            df = df.assign(**{src: df[preset.user_fallback]})
    return df.rename(columns=renamed)


def load_events(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    mapping: str | Mapping[str, str] | None = None,
    timestamp_unit: str | None = None,
    timestamp_format: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    normalize_ids: bool = False,
    default_event: str | None = None,
    drop_duplicates: bool = True,
) -> pd.DataFrame:
    """Load an event export as the canonical event table (see the module docstring).

    Parameters
    ----------
    source
        A CSV or TSV file (also ``.gz``), a Parquet file, folder or glob, a JSON
        lines file (also ``.gz``; nested objects are flattened to ``a.b``
        names), or a pandas DataFrame. Files are only read.
    mapping
        ``{export column: canonical column}`` (as in ``DataFrame.rename``), or
        a preset: ``"amplitude"``, ``"segment"``, ``"mixpanel"``, ``"ga4"``.
    timestamp_unit
        ``"s"``, ``"ms"``, ``"us"`` or ``"ns"`` for epoch numbers; ``None``
        reads each value's unit from its magnitude (presets set it) and refuses
        a guess that puts values before 1990 or more than a year ahead.
    timestamp_format
        A ``strftime`` format for timestamps written another way than ISO
        8601, e.g. ``"%Y%m%d"`` for ``20250131``; taken as UTC.
    start, end
        Keep events with ``start <= timestamp < end`` (naive values are UTC);
        the rows left out are counted.
    normalize_ids
        Strip spaces around user ids and lower-case them, so that ``"U1"``,
        ``"u1"`` and ``" u1 "`` are one user (:func:`data_quality` reports such
        ids when this is off); the rows whose id changed are counted.
    default_event
        The event of every row when the export has no event column (a table
        of purchases: ``"purchase"``); an event column, when present, wins.
    drop_duplicates
        Remove rows equal to an earlier row in every column (the default;
        counted, with examples). ``False`` keeps them, for exports where equal
        rows are real repeats (two equal purchases on one day); they are
        still counted.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id``, ``event``, ``timestamp`` first, then the optional
        ``session_id``, ``channel``, ``value`` present, then the properties.
        ``.attrs["helpers.load"]`` records the source, the rows read, the
        duplicates removed and the rows dropped per reason;
        :func:`data_quality` shows them.

    Raises
    ------
    EventDataError
        With the source, the column and up to five offending values.

    Examples
    --------
    >>> raw = pd.DataFrame({"userId": ["7", "7", None], "anonymousId": ["a1", "a1", "a2"],
    ...                     "event": ["Signed Up", "Signed Up", "Viewed"],
    ...                     "timestamp": ["2025-01-01T10:00:00+01:00"] * 2 + ["2025-01-02T00:00:00Z"]})
    >>> ev = load_events(raw, mapping="segment")
    >>> ev[["user_id", "event", "timestamp"]]
      user_id      event                 timestamp
    0       7  Signed Up 2025-01-01 09:00:00+00:00
    2      a2     Viewed 2025-01-02 00:00:00+00:00
    >>> ev.attrs["helpers.load"]["duplicates_removed"]
    1
    """
    preset = _resolve_mapping(mapping)
    if timestamp_unit is not None and timestamp_unit not in _TIMESTAMP_UNITS:
        raise EventDataError(f"timestamp_unit must be one of {', '.join(_TIMESTAMP_UNITS)} or None, not {timestamp_unit!r}.")
    bounds = {name: _bound(name, value) for name, value in (("start", start), ("end", end)) if value is not None}
    unit = timestamp_unit or (preset.timestamp_unit if preset else None)
    label, where = _label(source), _where(source)
    raw = _read(source, preset.rename if preset else {}, preset.user_fallback if preset else None)
    rows_read = len(raw)
    df = _apply_mapping(raw, preset, label)
    del raw

    if default_event is not None and "event" not in df.columns:
        df = df.assign(event=pd.array([str(default_event)] * len(df), dtype=STRING))
    columns = [str(c) for c in df.columns]
    for col in CANONICAL_COLUMNS:
        if col not in df.columns:
            sources = {v: k for k, v in preset.rename.items()} if preset else {}
            wanted = f"'{sources[col]}' (mapped to '{col}')" if col in sources else f"'{col}'"
            raise EventDataError(
                f"{label}: required column {wanted} is missing. Columns present: {', '.join(columns)}."
                f"{_closest(sources.get(col, col), columns)}{_preset_hint(columns)}"
                " Pass mapping={export column: canonical column} to rename."
            )

    user_id = _as_string(df["user_id"])
    ids_normalized = 0
    if normalize_ids:
        normal = user_id.str.strip().str.lower()
        normal = normal.mask((normal == "").fillna(False))
        ids_normalized = int((normal != user_id).fillna(False).sum())
        user_id = normal
    if user_id.isna().all():
        raise EventDataError(
            f"{label}: column 'user_id' is null in all {rows_read:,} rows, e.g. {_examples(df['user_id'], np.ones(len(df), bool), where)}."
        )
    event = _as_string(df["event"])
    timestamp = _parse_timestamps(df["timestamp"], unit, source, "timestamp", timestamp_format)
    out = {"user_id": user_id, "event": event, "timestamp": timestamp}
    for col in ("session_id", "channel"):
        if col in df.columns:
            out[col] = _as_string(df[col])
    if "value" in df.columns:
        given = df["value"].mask(_na_like(df["value"]))  # 'NA', 'null'...: no value
        value = pd.to_numeric(given, errors="coerce").astype("float64")
        bad = (given.notna() & value.isna()).to_numpy()
        if bad.any():
            raise EventDataError(
                f"{label}: column 'value' has {int(bad.sum()):,} value(s) that are not numbers, e.g. "
                f"{_examples(df['value'], bad, where)}."
            )
        out["value"] = value
        del value
    properties = [c for c in df.columns if c not in out]
    events = pd.DataFrame(out, copy=False)  # the columns are new already: a copy would double the peak
    for col in properties:
        prop = df[col]
        if prop.dtype == object and pd.api.types.infer_dtype(prop, skipna=True) == "string":
            prop = prop.astype(STRING)  # text properties as Arrow strings, like the canonical columns
        events[col] = prop
    # Only ``events`` may hold the columns from here: dropping rows then frees each original as it goes.
    del df, out, user_id, event, timestamp

    dropped: dict[str, int] = {}
    keep = np.ones(len(events), dtype=bool)
    for reason, mask in (
        ("null user_id", events["user_id"].isna().to_numpy()),
        ("null event", events["event"].isna().to_numpy()),
        ("null timestamp", events["timestamp"].isna().to_numpy()),
    ):
        hit = mask & keep
        if hit.any():
            dropped[reason] = int(hit.sum())
            keep &= ~mask
    ts = events["timestamp"]
    for reason, name, before in (("before start", "start", True), ("at or after end", "end", False)):
        if name not in bounds:
            continue
        b = bounds[name]
        mask = (ts < b).to_numpy() if before else (ts >= b).to_numpy()
        hit = mask & keep
        if hit.any():
            dropped[reason] = int(hit.sum())
            keep &= ~mask
    del ts
    if not keep.all():
        events = _keep_rows(events, keep)
    if events.empty:
        raise EventDataError(f"{label}: no rows left after dropping {dropped} (of {rows_read:,} rows read).")

    duplicated = _exact_duplicates(events)
    duplicates = int(duplicated.sum())
    # Examples show the event and time only: the report shows them, and user ids never appear in a report.
    examples = [{"event": e, "timestamp": t.isoformat()} for e, t in
                zip(events["event"][duplicated].head(5), events["timestamp"][duplicated].head(5))]
    if duplicates and drop_duplicates:
        events = _keep_rows(events, ~duplicated)

    events.attrs[_LOAD_INFO_KEY] = {
        "source": label,
        "mapping": preset.name if preset else None,
        "rows_read": rows_read,
        "rows": len(events),
        "duplicates_removed": duplicates if drop_duplicates else 0,
        "duplicates_kept": 0 if drop_duplicates else duplicates,
        "duplicate_rule": "rows equal to an earlier row in every column, after conversion",
        "duplicate_examples": examples,
        "dropped": dropped,
        **({"ids_normalized": ids_normalized} if normalize_ids else {}),
    }
    return events


def _bound(name: str, value: Any) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError):
        raise EventDataError(f"{name}={value!r} is not a date or a time; give ISO 8601 such as '2025-01-01' or "
                             "'2025-01-01T12:00:00Z' (UTC unless an offset is given).") from None


def _keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame.loc[keep]`` column by column, each original column released once filtered: the peak is the
    table plus one column, not two tables (``frame`` is consumed)."""
    attrs = dict(frame.attrs)
    columns = {}
    for col in list(frame.columns):
        columns[col] = frame.pop(col)[keep]
    out = pd.DataFrame(columns, copy=False)
    out.attrs.update(attrs)
    return out


def _exact_duplicates(events: pd.DataFrame) -> np.ndarray:
    """Rows equal to an earlier row in every column (nulls equal to nulls).

    DuckDB hashes every row (multi-threaded, over zero-copy Arrow); only rows
    whose hash repeats are compared exactly in pandas, so a hash collision
    can never drop a row. Repeated hashes are found in pandas from the hash
    column alone (measured: about 27 bytes a row; grouping inside DuckDB held about 85).
    """
    import duckdb

    def hashable(col: pd.Series) -> pd.Series:
        if col.dtype == object:  # mixed or nested values (JSON): compare their JSON text
            return col.map(lambda v: None if v is None or v is pd.NA else json.dumps(v, sort_keys=True, default=str))
        return col

    frame = events.copy(deep=False)
    frame.columns = [f"c{i}" for i in range(frame.shape[1])]
    frame = frame.apply(hashable) if frame.dtypes.eq(object).any() else frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    con = duckdb.connect()
    try:
        con.register("t", table)
        hashes = con.execute(f"SELECT hash({', '.join(frame.columns)}) AS h FROM t").fetchnumpy()["h"]
    finally:
        con.close()
    del table
    candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    result = np.zeros(len(events), dtype=bool)
    if len(candidates):
        result[candidates] = frame.iloc[candidates].duplicated(keep="first").to_numpy()
    return result


# --------------------------------------------------------------------------- writing and opening


def write_events(events: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a canonical event table to Parquet (timestamps in microseconds, UTC).

    The load record (``events.attrs["helpers.load"]``) travels in the file's
    metadata, so a later notebook can show what loading dropped.

    Examples
    --------
    >>> import tempfile
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1"], "event": ["visit"],
    ...                                "timestamp": ["2025-01-01T00:00:00Z"]}))
    >>> out = write_events(ev, Path(tempfile.mkdtemp()) / "events.parquet")
    >>> load_events(out)["timestamp"].iloc[0]
    Timestamp('2025-01-01 00:00:00+0000', tz='UTC')
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in events.columns]
    if missing:
        raise EventDataError(f"write_events: the table lacks the canonical column(s) {missing}; load it with load_events first.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(events, preserve_index=False)
    info = events.attrs.get(_LOAD_INFO_KEY)
    meta = {**(table.schema.metadata or {}), _FINGERPRINT_KEY: uuid.uuid4().hex.encode()}  # this write of the events
    if info is not None:
        meta[_LOAD_INFO_KEY.encode()] = json.dumps(info).encode()
    table = table.replace_schema_metadata(meta)
    # Microseconds: what Spark, warehouses and ibis' DuckDB types agree on.
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True, compression="zstd")
    tmp.replace(path)
    return path


_FINGERPRINT_KEY = b"helpers.events_fingerprint"


def events_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The token :func:`write_events` stored in the file: new at every write, so hand-offs can tell which data
    they were made from (``None`` for a file it did not write)."""
    from helpers.config import resolve_path

    path = resolve_path(path)
    if not path.is_file():
        return None
    return ((pq.read_schema(path).metadata or {}).get(_FINGERPRINT_KEY) or b"").decode() or None


def write_handoff(table: pd.DataFrame, path: str | os.PathLike[str], events_path: str | os.PathLike[str]) -> Path:
    """Write a table one notebook hands to the next (the personas), atomically, stamped with the fingerprint of
    the events it was made from; :func:`current_handoff` reads it back only for those events."""
    from helpers.config import resolve_path

    path = resolve_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    stamp = (events_fingerprint(events_path) or "").encode()
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _FINGERPRINT_KEY: stamp})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow, tmp)
    tmp.replace(path)
    return path


def current_handoff(path: str | os.PathLike[str], events_path: str | os.PathLike[str]) -> Path | None:
    """``path`` when it exists and was made from the events now at ``events_path``; else ``None`` (a stale file
    from an earlier run, or another export, is not read: see :func:`handoff_note`).

    Examples
    --------
    >>> current_handoff("no/such/personas.parquet", "no/such/events.parquet") is None
    True
    """
    from helpers.config import resolve_path

    path = resolve_path(path)
    if not path.is_file():
        return None
    made_from = ((pq.read_schema(path).metadata or {}).get(_FINGERPRINT_KEY) or b"").decode()
    return path if made_from and made_from == events_fingerprint(events_path) else None


def handoff_note(path: str | os.PathLike[str], events_path: str | os.PathLike[str], what: str = "personas") -> str:
    """A sentence when a hand-off exists but belongs to other data (and is therefore not used); else ``""``."""
    from helpers.config import resolve_path

    if not resolve_path(path).is_file() or current_handoff(path, events_path) is not None:
        return ""
    return (f"The {what} file from an earlier run was made from other events, so it is not used here: run the "
            f"{what} notebook on these events to break the results down by {what.rstrip('s')}.")


def read_load_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The load record that :func:`write_events` stored in a Parquet file, if any."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(_LOAD_INFO_KEY.encode())
    return json.loads(raw) if raw else None


_CONNECTIONS: dict[str, ibis.BaseBackend] = {}  # one shared connection per backend name
# DataFrames already converted, keyed by id, so each is converted once while it lives.
_REGISTERED: dict[int, tuple[weakref.ref, ibis.Table]] = {}


BACKEND_ENV = "JOURNEY_BACKEND"  # "duckdb" (default) or "pyspark"; a report run sets it from its config
SPARK_MASTER_ENV = "JOURNEY_SPARK_MASTER"  # e.g. "local[*]" (default) or "spark://host:7077"
BACKENDS = ("duckdb", "pyspark")


def default_backend(name: str | None = None) -> ibis.BaseBackend:
    """The connection that files are opened on: DuckDB in-process, or Spark.

    ``name`` (``"duckdb"`` or ``"pyspark"``) picks one; ``None`` follows
    ``JOURNEY_BACKEND`` (a report run sets it from its config), else DuckDB.
    Created on first use and shared. Both run with UTC as the session time zone,
    so that dates, weeks and months are UTC calendar periods (on Spark a local
    time zone would shift week buckets).

    Examples
    --------
    >>> default_backend("duckdb").name
    'duckdb'
    """
    source = "backend" if name is not None else BACKEND_ENV
    name = name if name is not None else (os.environ.get(BACKEND_ENV, "duckdb") or "duckdb")
    if name not in BACKENDS:
        raise EventDataError(f"{source}={name!r}: the backend must be one of {', '.join(BACKENDS)}.")
    if name not in _CONNECTIONS:
        if name == "duckdb":
            con = ibis.duckdb.connect()
            con.raw_sql("SET TimeZone = 'UTC'")
            try:  # scheduled runs' logs stay clean (in Jupyter DuckDB refuses the setting without ipywidgets)
                con.raw_sql("SET enable_progress_bar = false")
            except Exception:  # noqa: BLE001 - cosmetic setting only
                pass
        else:
            from pyspark.sql import SparkSession

            session = (SparkSession.builder.master(os.environ.get(SPARK_MASTER_ENV, "local[*]"))
                       .appName("customer-journey").config("spark.sql.session.timeZone", "UTC")
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false")  # scheduled runs' logs stay readable
                       .getOrCreate())
            con = ibis.pyspark.connect(session)
        _CONNECTIONS[name] = con
    return _CONNECTIONS[name]


def _canonical_ibis(t: ibis.Table, label: str) -> ibis.Table:
    missing = [c for c in CANONICAL_COLUMNS if c not in t.columns]
    if missing:
        raise EventDataError(
            f"{label}: not a canonical event table; missing {', '.join(missing)} (columns: {', '.join(t.columns)}). "
            "Load the export with load_events(...) first."
        )
    casts = {}
    if not t.schema()["user_id"].is_string():
        casts["user_id"] = t.user_id.cast("string")
    ts_type = t.schema()["timestamp"]
    if not (ts_type.is_timestamp() and ts_type.timezone == "UTC"):
        casts["timestamp"] = t.timestamp.cast(ibis.dtype("timestamp('UTC')"))
    return t.mutate(**casts) if casts else t


def _is_canonical_frame(df: pd.DataFrame) -> bool:
    return (
        all(c in df.columns for c in CANONICAL_COLUMNS)
        and isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)
        and str(df["timestamp"].dt.tz) == "UTC"
    )


def _register(df: pd.DataFrame) -> ibis.Table:
    """An ibis table over the frame, converted to Arrow once per frame (zero-copy for Arrow strings).

    ``ibis.memtable`` over a pandas frame converts it again on every
    execution; over an Arrow table it is a view whose data lives as long as
    any expression built on it, however short-lived the frame.
    """
    key = id(df)
    hit = _REGISTERED.get(key)
    if hit is not None and hit[0]() is df:
        return hit[1]
    expr = ibis.memtable(pa.Table.from_pandas(df, preserve_index=False))
    _REGISTERED[key] = (weakref.ref(df, lambda _ref, k=key: _REGISTERED.pop(k, None)), expr)
    return expr


def as_ibis(events: pd.DataFrame | ibis.Table) -> ibis.Table:
    """The events as an ibis table: what every analysis calls on its input.

    An ibis table is checked and returned; a canonical DataFrame is
    converted to Arrow once (zero-copy for Arrow strings, cached for as long
    as the frame lives) and runs on the default backend; any other DataFrame goes through
    :func:`load_events` first.

    Examples
    --------
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u2"], "event": ["a", "b"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02"]}))
    >>> as_ibis(ev).count().execute()
    2
    >>> as_ibis(ev) is as_ibis(ev)
    True
    """
    if isinstance(events, ibis.Table):
        return _canonical_ibis(events, "ibis table")
    if isinstance(events, pd.DataFrame):
        if not _is_canonical_frame(events):
            events = load_events(events)
        return _register(events)
    raise EventDataError(f"events must be a pandas DataFrame or an ibis table, not {type(events).__name__}.")


def open_events(source: str | os.PathLike[str] | pd.DataFrame | ibis.Table, *, backend: str | None = None,
                **load_kwargs: Any) -> ibis.Table:
    """Open events as a lazy ibis table, on DuckDB in-process (or on Spark: see :func:`default_backend`).

    A canonical Parquet file, folder or glob (as :func:`write_events` writes
    them) is read in place on ``backend`` (``"duckdb"``, ``"pyspark"``, or
    ``None`` for the report's setting): nothing is loaded into pandas. A DataFrame is
    registered once. Any other input (CSV, JSON lines, a raw export) goes
    through :func:`load_events` with ``load_kwargs`` first.

    Examples
    --------
    >>> import tempfile
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1"], "event": ["a", "b"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02"]}))
    >>> path = write_events(ev, Path(tempfile.mkdtemp()) / "events.parquet")
    >>> t = open_events(path)
    >>> t.group_by("user_id").aggregate(n=t.count()).execute()
      user_id  n
    0      u1  2
    """
    if isinstance(source, ibis.Table):
        return _canonical_ibis(source, "ibis table")
    if isinstance(source, pd.DataFrame):
        return as_ibis(source if _is_canonical_frame(source) and not load_kwargs else load_events(source, **load_kwargs))
    text = str(source)
    path = Path(text).expanduser()
    is_parquet = path.is_dir() or any(ch in text for ch in "*?[") or _format_kind(path) == "parquet"
    if is_parquet and not load_kwargs:
        files = _parquet_files(path if path.is_dir() else text)
        if isinstance(files, str) and not Path(files).exists():
            raise EventDataError(f"{files}: no such file or folder.")
        target = str(Path(files) / "**" / "*.parquet") if isinstance(files, str) and Path(files).is_dir() else files
        try:
            t = default_backend(backend).read_parquet(target)
        except Exception as exc:  # DuckDB raises its own IOException / InvalidInputException types
            raise EventDataError(f"{text}: cannot read as Parquet: {exc}") from None
        try:
            return _canonical_ibis(t, text)
        except EventDataError:
            pass  # a raw export in Parquet: validate and convert it in pandas below
    return as_ibis(load_events(source, **load_kwargs))


# --------------------------------------------------------------------------- time on the backend
US_PER_DAY = 86_400_000_000  # microseconds in a (UTC) day, for arithmetic on epoch_us
# DuckDB runs every calendar function on a time-zone-aware timestamp (truncate, date, year, subtraction,
# adding days) through its ICU extension: on 12.8M events date_trunc('week') took 1.7 s, + INTERVAL 14 DAY
# 2.1 s and a timestamp difference 37 s, against 0.1 s for max(timestamp). The same functions on a plain
# timestamp rebuilt from the stored microseconds cost 0.14-0.22 s, so calendar work goes through these.


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """DuckDB's epoch_us: the stored microseconds, no time-zone work."""


@ibis.udf.scalar.builtin(name="unix_micros")
def _spark_unix_micros(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """Spark's unix_micros."""


@ibis.udf.scalar.builtin(name="make_timestamp")
def _duckdb_make_timestamp(us: dt.int64) -> dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB's make_timestamp(microseconds): a timestamp without time zone."""


def _backend_name(expr: ibis.Expr) -> str:
    # Tables made from DataFrames run on ibis's default backend (DuckDB).
    return expr._find_backend(use_default=True).name


def epoch_us(ts: ibis.Value) -> ibis.Value:
    """Microseconds since 1970-01-01 UTC as an integer expression (cheap on every backend).

    Examples
    --------
    >>> t = as_ibis(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"],
    ...                                       "timestamp": ["1970-01-02 00:00:01"]})))
    >>> int(t.select(us=epoch_us(t.timestamp)).us.execute().iloc[0])
    86401000000
    """
    name = _backend_name(ts)
    if name == "duckdb":
        return _duckdb_epoch_us(ts)
    if name == "pyspark":
        return _spark_unix_micros(ts)
    epoch = ibis.timestamp("1970-01-01 00:00:00").cast(ts.type())
    return ts.delta(epoch, unit="microsecond").cast("int64")


def utc_naive(ts: ibis.Value) -> ibis.Value:
    """The UTC wall-clock time of ``ts`` as a timestamp without time zone, for calendar work.

    ``truncate``, ``date``, ``year``, ``month`` and ``epoch_seconds`` on the
    result give UTC days, weeks and months whatever the session's time zone,
    at a fraction of their cost on a time-zone-aware timestamp (see above).
    Values fetched from it are naive: localize them to UTC in pandas.

    Examples
    --------
    >>> t = as_ibis(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"],
    ...                                       "timestamp": ["2025-03-05T23:30:00-02:00"]})))
    >>> t.select(d=utc_naive(t.timestamp).date()).d.execute().astype(str).tolist()
    ['2025-03-06']
    """
    if _backend_name(ts) == "duckdb":
        return _duckdb_make_timestamp(_duckdb_epoch_us(ts))
    return ts  # Spark: calendar functions follow the session time zone, which default_backend sets to UTC


# --------------------------------------------------------------------------- quality


@dataclass
class DataQualityReport:
    """What the loaded events contain and what loading removed.

    ``summary`` is the one table to show; the other attributes hold the
    detail behind it.
    """

    rows: int
    users: int
    first_timestamp: pd.Timestamp
    last_timestamp: pd.Timestamp
    rows_read: int | None
    duplicates_removed: int | None
    dropped: pd.DataFrame
    nulls: pd.DataFrame
    events_per_type: pd.DataFrame
    events_per_day: pd.DataFrame
    channels: pd.DataFrame | None
    single_event_users: int
    future_timestamps: int
    pre_2000_timestamps: int
    as_of: pd.Timestamp
    source: str | None = None
    warnings: list[str] = field(default_factory=list)
    na_like_ids: int = 0
    duplicates_kept: int = 0
    duplicate_examples: list[dict[str, str]] = field(default_factory=list)
    id_variants: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key", "ids", "examples"]))
    users_if_normalized: int | None = None

    @property
    def summary(self) -> pd.DataFrame:
        """One row per check: ``check``, ``value``."""
        dropped = int(self.dropped["rows"].sum()) if len(self.dropped) else 0
        rows = [
            ("source", self.source or "(in memory)"),
            ("rows read", "n/a" if self.rows_read is None else f"{self.rows_read:,}"),
            ("exact duplicates removed", "n/a" if self.duplicates_removed is None else f"{self.duplicates_removed:,}"),
            *([("exact duplicates kept (drop_duplicates=False)", f"{self.duplicates_kept:,}")] if self.duplicates_kept else []),
            ("rows dropped by rules", f"{dropped:,}"
             + (" (" + "; ".join(f"{why}: {n:,}" for why, n in zip(self.dropped["reason"], self.dropped["rows"])) + ")"
                if dropped else "")),
            ("events", f"{self.rows:,}"),
            ("users", f"{self.users:,}"),
            ("event types", f"{len(self.events_per_type):,}"),
            ("first event", str(self.first_timestamp)),
            ("last event", str(self.last_timestamp)),
            ("days covered", f"{(self.last_timestamp - self.first_timestamp).days + 1:,}"),
            ("users with a single event", f"{self.single_event_users:,} ({self.single_event_users / max(self.users, 1):.1%})"),
            (f"timestamps after {self.as_of:%Y-%m-%d %H:%M} UTC", f"{self.future_timestamps:,}"),
            ("timestamps before 2000", f"{self.pre_2000_timestamps:,}"),
            ("user ids spelled like a missing value", f"{self.na_like_ids:,} rows"),
            ("user ids differing only by case or spaces",
             f"{int(self.id_variants['ids'].sum()):,} ids that would be {len(self.id_variants):,} users"
             if len(self.id_variants) else "none"),
        ]
        rows += [(f"nulls in {col}", f"{n:,} ({share:.1%})")
                 for col, n, share in zip(self.nulls["column"], self.nulls["nulls"], self.nulls["share"]) if n]
        return pd.DataFrame(rows, columns=["check", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts for a report's index page (no user ids)."""
        return {
            "source": self.source, "rows": self.rows, "users": self.users,
            "first": self.first_timestamp.isoformat(), "last": self.last_timestamp.isoformat(),
            "rows_read": self.rows_read, "duplicates_removed": self.duplicates_removed,
            "dropped": dict(zip(self.dropped["reason"], self.dropped["rows"].astype(int).tolist())),
            "summary": self.summary.to_dict("records"), "warnings": list(self.warnings),
            "na_like_ids": self.na_like_ids, "users_if_normalized": self.users_if_normalized,
        }

    def headline(self) -> str:
        """One sentence for a reader: size, span and what loading removed.

        Examples
        --------
        >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1", "u2"], "event": ["a", "a", "b"],
        ...                                "timestamp": ["2025-01-01", "2025-01-01", "2025-01-03"]}))
        >>> data_quality(ev, as_of="2025-02-01").headline()
        '2 events from 2 users over 3 days (2025-01-01 to 2025-01-03, UTC); 1 exact duplicate row removed; 2 users (100.0%) have a single event.'
        """
        days = (self.last_timestamp.normalize() - self.first_timestamp.normalize()).days + 1
        parts = [f"{self.rows:,} events from {self.users:,} users over {days:,} days "
                 f"({self.first_timestamp:%Y-%m-%d} to {self.last_timestamp:%Y-%m-%d}, UTC)"]
        if self.duplicates_removed:
            parts.append(f"{self.duplicates_removed:,} exact duplicate row{'s' if self.duplicates_removed != 1 else ''} removed")
        if self.duplicates_kept:
            parts.append(f"{self.duplicates_kept:,} duplicate rows were kept as real repeats (drop_duplicates=False)")
        dropped = int(self.dropped["rows"].sum()) if len(self.dropped) else 0
        if dropped:
            parts.append(f"{dropped:,} rows dropped by rules (" + ", ".join(
                f"{why}: {n:,}" for why, n in zip(self.dropped["reason"], self.dropped["rows"])) + ")")
        parts.append(f"{self.single_event_users:,} users ({self.single_event_users / max(self.users, 1):.1%}) have a single event")
        return "; ".join(parts) + "."

    def _repr_html_(self) -> str:
        html = self.summary.to_html(index=False, border=0)
        if self.warnings:
            from html import escape  # warnings can quote values from the data

            html += "<ul>" + "".join(f"<li>{escape(w)}</li>" for w in self.warnings) + "</ul>"
        return html


def data_quality(
    events: pd.DataFrame | ibis.Table,
    *,
    load_info: Mapping[str, Any] | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> DataQualityReport:
    """Profile a canonical event table: size, coverage, nulls and suspicious values.

    Counts rows, users, the date range, events per type and per day, channels
    (when there is a ``channel`` column), nulls per column, users with a
    single event, timestamps after ``as_of`` (default: now, the one check
    that must look at the clock) and before 2000; with the load record of
    :func:`load_events` (taken from ``events.attrs`` or ``load_info``), the
    duplicates removed and rows dropped per reason. Suspicious ids: rows
    whose user id spells a missing value (``na_like_ids``: "NA", "null"...),
    and ids equal but for case or surrounding spaces (``id_variants``: one
    row per would-be user with the ids and up to five of them as examples,
    largest first; ``users_if_normalized``). The examples are raw ids, for
    the analyst: the summary and the warnings show counts only.

    Examples
    --------
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1", "u2", None], "event": ["a", "b", "a", "a"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02", "1999-05-01", "2025-01-01"]}))
    >>> q = data_quality(ev, as_of="2025-06-01")
    >>> q.rows, q.users, q.single_event_users, q.pre_2000_timestamps
    (3, 2, 1, 1)
    >>> q.dropped.to_dict("records")
    [{'reason': 'null user_id', 'rows': 1}]
    """
    info = load_info if load_info is not None else (events.attrs.get(_LOAD_INFO_KEY) if isinstance(events, pd.DataFrame) else None)
    t = as_ibis(events)
    as_of_ts = pd.Timestamp.now(tz="UTC") if as_of is None else to_utc(as_of)
    y2k = pd.Timestamp("2000-01-01", tz="UTC")

    totals = t.aggregate(
        rows=t.count(),
        users=t.user_id.nunique(),
        first=t.timestamp.min(),
        last=t.timestamp.max(),
        future=(t.timestamp > ibis.literal(as_of_ts.to_pydatetime())).sum(),
        pre_2000=(t.timestamp < ibis.literal(y2k.to_pydatetime())).sum(),
        na_like=t.user_id.isin(list(NA_SPELLINGS)).sum(),
        **{f"null__{c}": t[c].isnull().sum() for c in t.columns},
    ).execute().iloc[0]
    rows = int(totals["rows"])

    per_type = (
        t.group_by("event").aggregate(events=t.count(), users=t.user_id.nunique())
        .execute().sort_values(["events", "event"], ascending=[False, True], ignore_index=True)
    )
    per_type["share"] = per_type["events"] / rows
    day = utc_naive(t.timestamp).date().name("date")
    per_day = t.group_by(day).aggregate(events=t.count(), users=t.user_id.nunique()).execute()
    per_day["date"] = pd.to_datetime(per_day["date"])
    per_day = per_day.sort_values("date", ignore_index=True)
    channels = None
    if "channel" in t.columns:
        channels = (
            t.group_by("channel").aggregate(events=t.count(), users=t.user_id.nunique())
            .execute().sort_values(["events"], ascending=False, ignore_index=True)
        )
        channels["channel"] = channels["channel"].fillna("(none)")
        channels["share"] = channels["events"] / rows
    per_user = t.group_by("user_id").aggregate(n=t.count())
    single = int(per_user.filter(per_user.n == 1).count().execute())
    ids = t.select("user_id").distinct()
    keyed = ids.mutate(key=ids.user_id.strip().lower())
    variants = (keyed.group_by("key").aggregate(ids=keyed.count(), examples=keyed.user_id.collect())
                .filter(lambda g: g.ids > 1).execute())
    variants = variants.sort_values(["ids", "key"], ascending=[False, True], ignore_index=True)
    variants["examples"] = variants["examples"].map(lambda ids: sorted(ids)[:5])  # a handful of would-be users
    variants["ids"] = variants["ids"].astype("int64")

    nulls = pd.DataFrame({"column": list(t.columns), "nulls": [int(totals[f"null__{c}"]) for c in t.columns]})
    nulls["share"] = nulls["nulls"] / max(rows, 1)
    dropped_map = (info or {}).get("dropped", {})
    dropped = pd.DataFrame({"reason": list(dropped_map), "rows": [int(v) for v in dropped_map.values()]})

    report = DataQualityReport(
        rows=rows,
        users=int(totals["users"]),
        first_timestamp=pd.Timestamp(totals["first"]).tz_convert("UTC"),
        last_timestamp=pd.Timestamp(totals["last"]).tz_convert("UTC"),
        rows_read=(info or {}).get("rows_read"),
        duplicates_removed=(info or {}).get("duplicates_removed"),
        duplicates_kept=int((info or {}).get("duplicates_kept", 0)),
        duplicate_examples=list((info or {}).get("duplicate_examples", [])),
        dropped=dropped,
        nulls=nulls,
        events_per_type=per_type,
        events_per_day=per_day,
        channels=channels,
        single_event_users=single,
        future_timestamps=int(totals["future"]),
        pre_2000_timestamps=int(totals["pre_2000"]),
        as_of=as_of_ts,
        source=(info or {}).get("source"),
        na_like_ids=int(totals["na_like"]),
        id_variants=variants,
        users_if_normalized=int(totals["users"]) - int((variants["ids"] - 1).sum()),
    )
    if report.future_timestamps:
        report.warnings.append(f"{report.future_timestamps:,} events are timestamped after {as_of_ts:%Y-%m-%d}: check clocks or time zones.")
    if report.pre_2000_timestamps:
        report.warnings.append(f"{report.pre_2000_timestamps:,} events are timestamped before 2000: often epoch zero or a wrong unit.")
    if report.duplicates_removed or report.duplicates_kept:
        n, done = ((report.duplicates_removed, "removed") if report.duplicates_removed
                   else (report.duplicates_kept, "kept as real repeats (drop_duplicates=False)"))
        shown = "; ".join(f"{e['event']} at {e['timestamp']}" for e in report.duplicate_examples[:3])
        report.warnings.append(f"{n:,} duplicate rows (rule: {(info or {}).get('duplicate_rule', 'equal in every column')}) "
                               f"were {done}, e.g. {shown}.")
    if report.na_like_ids:
        report.warnings.append(f"{report.na_like_ids:,} rows have a user id spelled like a missing value ('NA', "
                               "'null', 'None'...): kept as ids; check whether the export wrote missing ids that way.")
    if len(variants):
        report.warnings.append(f"{int(variants['ids'].sum()):,} user ids differ from another only by case or spaces "
                               f"({report.users:,} users, {report.users_if_normalized:,} if they were one): load with "
                               "normalize_ids=True to merge them.")
    if dropped_map:
        report.warnings.append("Rows dropped: " + "; ".join(f"{k}: {v:,}" for k, v in dropped_map.items()) + ".")
    return report


def to_utc(value: Any) -> pd.Timestamp:
    """A timestamp in UTC: naive values are taken as UTC, aware ones converted (``observed_until``, ``split_at``...).

    Examples
    --------
    >>> to_utc("2025-01-01 12:00+02:00")
    Timestamp('2025-01-01 10:00:00+0000', tz='UTC')
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_utc_series(values: pd.Series) -> pd.Series:
    """Timestamps fetched from a backend as tz-aware UTC (all-null columns arrive as objects; ``to_datetime`` is
    slow on values that are timestamps already, so it only runs on the others).

    Examples
    --------
    >>> to_utc_series(pd.Series([None, "2025-01-01 12:00"])).tolist()
    [NaT, Timestamp('2025-01-01 12:00:00+0000', tz='UTC')]
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True)


def read_users(source: str | os.PathLike[str] | None, *, required: bool = True) -> pd.DataFrame | None:
    """A user table (Parquet or CSV, one row per user) with ``user_id`` as a string column.

    Relative paths are taken from the project root, as in notebooks. A missing
    file is an error, or ``None`` with ``required=False`` (optional tables such
    as the personas, which exist only once their notebook has run).

    Examples
    --------
    >>> read_users("no/such/users.parquet", required=False) is None
    True
    """
    from helpers.config import resolve_path

    if source is None:
        if required:
            raise EventDataError("no user table given (None).")
        return None
    path = resolve_path(source)
    if not path.exists():
        if required:
            raise EventDataError(f"{path}: user table not found.")
        return None
    frame = pd.read_parquet(path) if _format_kind(path) == "parquet" else pd.read_csv(path, dtype={"user_id": str})
    if "user_id" not in frame.columns:
        raise EventDataError(f"{path}: a user table needs a 'user_id' column (columns: {', '.join(map(str, frame.columns))}).")
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def read_user_tables(sources: Sequence[str | os.PathLike[str] | None]) -> pd.DataFrame | None:
    """All user tables found among ``sources`` merged on ``user_id`` (outer); the first source wins a shared column.

    Missing files are skipped (``None`` when none exists): e.g. the personas,
    which exist once their notebook has run, beside the users export.

    Examples
    --------
    >>> a = pd.DataFrame({"user_id": ["1", "2"], "persona": ["x", "y"]})
    >>> b = pd.DataFrame({"user_id": ["2", "3"], "plan": ["pro", "free"], "persona": ["z", "z"]})
    >>> read_user_tables([None, a, b]).to_dict("list")
    {'user_id': ['1', '2', '3'], 'persona': ['x', 'y', nan], 'plan': [nan, 'pro', 'free']}
    """
    merged = None
    for src in sources:
        if src is None:
            continue
        frame = src.assign(user_id=src["user_id"].astype(str)) if isinstance(src, pd.DataFrame) else read_users(src, required=False)
        if frame is None:
            continue
        if merged is None:
            merged = frame
        else:
            new = [c for c in frame.columns if c == "user_id" or c not in merged.columns]
            merged = merged.merge(frame[new], on="user_id", how="outer")
    return merged


def event_names(events: pd.DataFrame | ibis.Table) -> set[str]:
    """The distinct event names of the events (one small query), e.g. to check which optional events exist.

    Examples
    --------
    >>> sorted(event_names(load_events(pd.DataFrame({"user_id": ["a", "b"], "event": ["x", "y"],
    ...                                               "timestamp": ["2025-01-01", "2025-01-02"]}))))
    ['x', 'y']
    """
    t = as_ibis(events)
    return set(t.select("event").distinct().execute()["event"].astype(str))


def available(columns: Sequence[str], table: pd.DataFrame | None) -> list[str]:
    """Those of ``columns`` that ``table`` has, in the order given (e.g. the breakdowns a run can offer).

    Examples
    --------
    >>> available(["persona", "channel", "plan"], pd.DataFrame(columns=["plan", "persona"]))
    ['persona', 'plan']
    """
    return [] if table is None else [c for c in columns if c in table.columns]


def user_attribute(columns: str | Sequence[str], sources: Sequence[str | os.PathLike[str] | pd.DataFrame | None], *,
                   required: bool = True) -> pd.Series | None:
    """A user-level attribute as a Series indexed by ``user_id`` (string), named after its column.

    Takes the first of ``columns`` found in the first of ``sources`` (user
    tables: Parquet/CSV paths or DataFrames with a ``user_id`` column) that has
    it; missing files are skipped. Used for breakdowns: "persona when the
    persona notebook ran, else acquisition channel". When no table has any of
    the columns: an error, or ``None`` with ``required=False`` (a report
    section then says why it is skipped).

    Examples
    --------
    >>> users = pd.DataFrame({"user_id": [1, 2], "plan": ["pro", "free"]})
    >>> user_attribute(["persona", "plan"], [None, users]).to_dict()
    {'1': 'pro', '2': 'free'}
    """
    wanted = [columns] if isinstance(columns, str) else list(columns)
    tables = []
    for src in sources:
        if src is None:
            continue
        if isinstance(src, pd.DataFrame):
            tables.append(("DataFrame", src))
            continue
        frame = read_users(src, required=False)
        if frame is not None:
            tables.append((str(src), frame))
    for col in wanted:
        for label, frame in tables:
            if col in frame.columns:
                if "user_id" not in frame.columns:
                    raise EventDataError(f"{label}: a user table needs a 'user_id' column (columns: {', '.join(frame.columns)}).")
                series = frame.set_index(frame["user_id"].astype(str))[col]
                series.index.name = "user_id"
                return series.rename(col)
    if not required:
        return None
    raise EventDataError(f"none of the columns {wanted} is in the user tables "
                         f"({'; '.join(f'{lbl}: {list(f.columns)}' for lbl, f in tables) or 'none found'}).")
