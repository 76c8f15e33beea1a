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

Where things live (in the order data flows)::

    schema.py      the canonical columns, EventDataError
    reading.py     file formats and export presets (CSV/TSV/TXT, JSON lines, Parquet, XES; Amplitude, Segment...)
    timestamps.py  timestamp text and epoch numbers to UTC (unit guessing and its plausibility check)
    canonical.py   load_events: an export to the canonical table, every dropped row counted
    quality.py     data_quality: the loading page's report
    handoff.py     write_events and the fingerprinted tables notebooks hand to each other
    backend.py     DuckDB or Spark; as_ibis and open_events
    times.py       epoch_us / utc_naive on the backend, to_utc in Python
    users.py       user tables beside the events
"""

from __future__ import annotations

from helpers.io.backend import (
    BACKEND_ENV,
    BACKENDS,
    SPARK_MASTER_ENV,
    as_ibis,
    default_backend,
    event_names,
    open_events,
)
from helpers.io.canonical import (
    load_events,
)
from helpers.io.handoff import (
    current_handoff,
    events_fingerprint,
    handoff_note,
    read_load_info,
    write_events,
    write_handoff,
)
from helpers.io.quality import (
    DataQualityReport,
    data_quality,
)
from helpers.io.reading import (
    PRESETS,
    XES_COLUMNS,
    Preset,
)
from helpers.io.schema import (
    CANONICAL_COLUMNS,
    NA_SPELLINGS,
    OPTIONAL_COLUMNS,
    STRING,
    EventDataError,
)
from helpers.io.times import (
    US_PER_DAY,
    epoch_us,
    observed_end,
    to_utc,
    to_utc_series,
    utc_naive,
)
from helpers.io.timestamps import (
    PLAUSIBLE_FROM,
)
from helpers.io.users import (
    available,
    read_user_tables,
    read_users,
    user_attribute,
)

__all__ = [
    "as_ibis", "available", "BACKEND_ENV", "BACKENDS", "CANONICAL_COLUMNS", "current_handoff", "data_quality",
    "DataQualityReport", "default_backend", "epoch_us", "event_names", "EventDataError", "events_fingerprint",
    "handoff_note", "load_events", "NA_SPELLINGS", "observed_end", "open_events", "OPTIONAL_COLUMNS", "PLAUSIBLE_FROM", "Preset",
    "PRESETS", "read_load_info", "read_user_tables", "read_users", "SPARK_MASTER_ENV", "STRING", "to_utc",
    "to_utc_series", "US_PER_DAY", "user_attribute", "utc_naive", "write_events", "write_handoff", "XES_COLUMNS",
]
