"""Reading exports as they are: file formats and the presets of known tools.

Formats: CSV, TSV, whitespace-separated TXT, JSON lines, Parquet files,
folders and globs, XES event logs. Presets map Amplitude, Segment, Mixpanel
and GA4 exports onto canonical names. Everything here returns the export as
a DataFrame of text or of the file's own types; :mod:`helpers.io.canonical`
turns it into the canonical table.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.io.schema import CANONICAL_COLUMNS, NA_SPELLINGS, STRING, EventDataError, _as_string

# A number written without loss: no leading zero, no sign but '-', at most 15 integer digits (exact in float64).
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?"


@dataclass(frozen=True)
class Preset:
    """How a known export maps onto the canonical table.

    ``rename`` maps export columns to canonical ones; ``user_fallback`` names
    a column used where the user column is null (Segment's ``anonymousId``);
    ``strip_prefixes`` shortens flattened property names
    (``properties.page`` becomes ``page`` unless that name is taken).
    ``identity`` maps the export's id columns onto the stitching columns
    (``anonymous_id``, ``distinct_id``, ``device_id``, ``user_id``); when the export
    has ``identified_by`` (default: the column mapped to ``user_id``) and one of
    them, :func:`~helpers.io.load_events` stitches one person across them
    (:mod:`helpers.identity`) instead of using ``user_fallback``.
    """

    name: str
    rename: Mapping[str, str]
    user_fallback: str | None = None
    timestamp_unit: str | None = None
    strip_prefixes: tuple[str, ...] = ()
    identity: Mapping[str, str] = field(default_factory=dict)
    identified_by: str | None = None


PRESETS: dict[str, Preset] = {
    "amplitude": Preset(
        "amplitude",
        {"user_id": "user_id", "event_type": "event", "event_time": "timestamp"},
        strip_prefixes=("event_properties.",),
        identity={"device_id": "device_id"},
    ),
    "segment": Preset(
        "segment",
        # Segment's own `channel` is the library type (client/server), not a marketing channel.
        {"userId": "user_id", "event": "event", "timestamp": "timestamp", "channel": "segment_channel"},
        user_fallback="anonymousId",
        strip_prefixes=("properties.",),
        identity={"anonymousId": "anonymous_id"},
    ),
    "mixpanel": Preset(
        "mixpanel",
        {"event": "event", "properties.distinct_id": "user_id", "properties.time": "timestamp"},
        timestamp_unit="s",
        strip_prefixes=("properties.",),
        # ID merge exports: distinct_id is the device's before identify and the user's after; $user_id is set once
        # identified. Without $user_id (older exports) distinct_id stays the user.
        identity={"properties.$device_id": "device_id", "properties.$user_id": "user_id",
                  "properties.distinct_id": "distinct_id"},
        identified_by="properties.$user_id",
    ),
    "ga4": Preset(
        "ga4",
        {"user_pseudo_id": "user_id", "event_name": "event", "event_timestamp": "timestamp"},
        timestamp_unit="us",
        # user_pseudo_id is the browser or app instance; user_id is set by the site once someone logs in.
        identity={"user_pseudo_id": "device_id", "user_id": "user_id"},
        identified_by="user_id",
    ),
}


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
        header = pd.read_csv(path, sep=sep, nrows=0).columns  # pandas names duplicates a, a.1 as before
    except pd.errors.EmptyDataError:
        raise EventDataError(f"{path}: the file is empty (no header, no rows).") from None
    except UnicodeDecodeError as exc:
        raise EventDataError(_not_utf8(path, str(exc))) from None
    if sep == r"\s+":  # whitespace-separated text: only pandas reads it
        df = pd.read_csv(path, sep=sep, dtype=STRING, keep_default_na=False, na_values=[""], low_memory=False)
    else:
        df = _read_delimited_arrow(path, sep, list(map(str, header)))
    if df.empty:
        raise EventDataError(f"{path}: the file has a header ({', '.join(map(str, df.columns))}) but no rows.")
    canonical = set(_string_columns(list(df.columns), rename, fallback)) | {
        c for c in df.columns if rename.get(c, c) in ("timestamp", "value")}
    for col in df.columns:
        if col not in canonical:
            df[col] = _typed_text(df[col])
    return df


def _read_delimited_arrow(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    """CSV or TSV with Arrow's reader: every column as text, only empty fields missing, quoted newlines kept.

    Arrow parses in parallel into Arrow strings directly: at 5M rows 2.2 s and a peak of 1.4 times the table,
    against 11 s and 2.9 times through pandas' parser (``benchmarks/bench_io.py``). A row with too few or too
    many fields is an error naming the row, where pandas filled or shifted it silently.
    """
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pcsv.ParseOptions(delimiter=sep, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "utf8" in text.lower():
            raise EventDataError(_not_utf8(path, text)) from None
        m = re.search(r"Expected (\d+) columns, got (\d+): (.*)", text, flags=re.S)
        if m:
            raise EventDataError(
                f"{path}: a row has {m.group(2)} fields where the header has {m.group(1)} ({', '.join(names)}), "
                f"e.g. {m.group(3).strip()[:120]!r}. A separator inside a value needs quotes.") from None
        raise EventDataError(f"{path}: cannot read as CSV: {text[:300]}") from None
    return _arrow_to_pandas(table)


def _not_utf8(path: Path, detail: str) -> str:
    """The message for a file that is not UTF-8, naming its first such line (found only on the way to the error)."""
    where = ""
    try:
        import gzip

        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    where = f", e.g. line {number}: {line[:60]!r}"
                    break
    except OSError:
        pass
    return (f"{path}: the file is not UTF-8 text{where} ({detail[:160]}). Re-export it as UTF-8, or convert a "
            "copy first (e.g. iconv -f latin1 -t utf-8 export.csv > export-utf8.csv).")


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


def _read_jsonl_arrow(path: Path) -> pd.DataFrame | None:
    """JSON lines through Arrow: integers stay exact int64 (pandas reads a column of large ids with a null through
    float, merging distinct ids), nested objects flatten to dotted names. None when Arrow cannot read the file
    (mixed types in a column, a line that is no object): the pandas reader then reads it or names the problem."""
    import pyarrow.json as pj

    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            table = pj.read_json(stream)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    if table.num_rows == 0:
        return None
    # A `null` line reads as a row of nulls here; the pandas reader names it as the error it is.
    empty = np.logical_and.reduce([c.is_null().to_numpy(zero_copy_only=False) for c in table.columns])
    if np.any(empty):
        return None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    names = table.column_names
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise EventDataError(
            f"{path}: the nested key {clash[0].split('.')[0]!r} flattens to {clash[0]!r}, and the records also have "
            f"a top-level key {clash[0]!r}; both cannot be kept. Rename one of them in the export.")
    ints = {pa.int8(): pd.Int64Dtype(), pa.int16(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
            pa.int64(): pd.Int64Dtype()}
    df = table.to_pandas(types_mapper=ints.get)
    df.columns = [str(c) for c in df.columns]
    return df


def _read_jsonl(path: Path) -> pd.DataFrame:
    df = _read_jsonl_arrow(path)
    if df is not None:
        return df
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


def _where(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        try:
            kind = _format_kind(Path(str(source)))
        except EventDataError:
            return "parquet"
        return "csv" if kind in ("csv", "tsv", "txt") else kind
    return "frame"


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


STITCH_COLUMNS = ("anonymous_id", "distinct_id", "device_id", "user_id")  # in the order that keys a row


def _stitching_preset(preset: Preset | None, stitch: bool | None, columns: Sequence[str]) -> tuple[Preset | None, bool]:
    """The preset to apply, and whether to stitch identities, given the export's columns."""
    from dataclasses import replace

    if stitch is False or preset is None or not preset.identity:
        return preset, False
    identified_by = preset.identified_by or next((s for s, d in preset.rename.items() if d == "user_id"), "user_id")
    others = [c for c, d in preset.identity.items() if d != "user_id" and c in columns]
    if identified_by not in columns or not others:
        return preset, False
    rename = {**preset.rename, **{c: d for c, d in preset.identity.items() if c in columns}}
    return replace(preset, rename=rename, user_fallback=None), True
