"""helpers.io.reading: Reading exports: formats, presets, unreadable and odd files."""

from __future__ import annotations

import gzip
import json
import os

import pandas as pd
import pytest
from io_files import CSV, UTC, ts, write

from helpers.io import (
    EventDataError,
    data_quality,
    load_events,
)


def test_csv_loads_as_the_canonical_table_with_types_offsets_and_leading_zeros(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV))
    assert list(ev.columns) == ["user_id", "event", "timestamp", "channel", "value", "page"]
    assert ev["user_id"].tolist() == ["007", "007", "42", "42"]
    assert str(ev["timestamp"].dtype) == "datetime64[ns, UTC]"
    # +01:00 is converted; a value without an offset is taken as UTC.
    assert ev["timestamp"].tolist() == [ts("2025-01-01 10:00"), ts("2025-01-01 09:05"), ts("2025-01-02 08:00"), ts("2025-01-03")]
    assert ev["value"].dtype == "float64" and ev["value"].iloc[3] == 19.5
    assert ev["page"].iloc[0] == "home"


def test_gzipped_csv_tsv_parquet_jsonl_and_dataframe_give_the_same_table(tmp_path):
    base = load_events(write(tmp_path / "e.csv", CSV))
    with gzip.open(tmp_path / "e.csv.gz", "wt") as fh:
        fh.write(CSV)
    write(tmp_path / "e.tsv", CSV.replace(",", "\t"))
    raw = pd.read_csv(tmp_path / "e.csv", dtype={"user_id": str})
    raw.to_parquet(tmp_path / "e.parquet")
    with open(tmp_path / "e.jsonl", "w") as fh:
        for rec in raw.to_dict("records"):
            fh.write(json.dumps({k: (None if pd.isna(v) else v) for k, v in rec.items()}) + "\n")
    with gzip.open(tmp_path / "e.jsonl.gz", "wt") as fh:
        fh.write((tmp_path / "e.jsonl").read_text())
    for source in ("e.csv.gz", "e.tsv", "e.parquet", "e.jsonl", "e.jsonl.gz"):
        got = load_events(tmp_path / source)
        pd.testing.assert_frame_equal(got[base.columns[:5]], base[base.columns[:5]], check_dtype=False, obj=source)
    pd.testing.assert_frame_equal(load_events(raw)[base.columns[:5]], base[base.columns[:5]], check_dtype=False)


def test_parquet_folder_and_glob_read_every_part(tmp_path):
    frame = pd.read_csv(write(tmp_path / "e.csv", CSV), dtype={"user_id": str})
    (tmp_path / "parts").mkdir()
    frame.iloc[:2].to_parquet(tmp_path / "parts" / "a.parquet")
    frame.iloc[2:].to_parquet(tmp_path / "parts" / "b.parquet")
    assert len(load_events(tmp_path / "parts")) == 4
    assert len(load_events(str(tmp_path / "parts" / "*.parquet"))) == 4
    with pytest.raises(EventDataError, match="no file matches"):
        load_events(str(tmp_path / "parts" / "*.nothing.parquet"))


def test_amplitude_preset_maps_columns_and_flattens_event_properties(tmp_path):
    lines = [
        {"user_id": "a@x.com", "event_type": "Play", "event_time": "2025-03-01 12:00:00.123456",
         "event_properties": {"song": "x"}, "device_id": "d1"},
        {"user_id": "b", "event_type": "Pause", "event_time": "2025-03-01 12:01:00.000000",
         "event_properties": {"song": "y"}, "device_id": "d2"},
    ]
    path = write(tmp_path / "amp.json", "\n".join(json.dumps(r) for r in lines))
    ev = load_events(path, mapping="amplitude")
    assert ev["event"].tolist() == ["Play", "Pause"]
    assert ev["timestamp"].iloc[0] == ts("2025-03-01 12:00:00.123456")
    assert ev["song"].tolist() == ["x", "y"]  # event_properties.song, shortened
    assert "device_id" in ev.columns


def test_segment_preset_falls_back_to_anonymous_id_and_keeps_its_own_channel_apart(tmp_path):
    lines = [
        {"userId": "u1", "anonymousId": "anon-1", "event": "Signed Up", "timestamp": "2025-01-01T00:00:00.000Z",
         "channel": "server", "properties": {"plan": "pro"}},
        {"userId": None, "anonymousId": "anon-2", "event": "Viewed", "timestamp": "2025-01-01T01:00:00.000Z",
         "channel": "client", "properties": {"plan": None}},
    ]
    ev = load_events(write(tmp_path / "seg.jsonl", "\n".join(json.dumps(r) for r in lines)), mapping="segment")
    assert ev["user_id"].tolist() == ["u1", "anon-2"]
    assert "channel" not in ev.columns and ev["segment_channel"].tolist() == ["server", "client"]
    assert ev["plan"].iloc[0] == "pro"


def test_mixpanel_preset_reads_epoch_seconds_inside_properties(tmp_path):
    lines = [
        {"event": "Login", "properties": {"distinct_id": 123, "time": 1735689600, "$os": "iOS"}},
        {"event": "Logout", "properties": {"distinct_id": 123, "time": 1735693200, "$os": "iOS"}},
    ]
    ev = load_events(write(tmp_path / "mp.jsonl", "\n".join(json.dumps(r) for r in lines)), mapping="mixpanel")
    assert ev["user_id"].tolist() == ["123", "123"]
    assert ev["timestamp"].tolist() == [ts("2025-01-01 00:00"), ts("2025-01-01 01:00")]
    assert ev["$os"].tolist() == ["iOS", "iOS"]


def test_ga4_preset_reads_epoch_microseconds(tmp_path):
    frame = pd.DataFrame({"user_pseudo_id": ["1.2", "3.4"], "event_name": ["page_view", "purchase"],
                          "event_timestamp": [1735689600123456, 1735689601000000]})
    frame.to_parquet(tmp_path / "ga4.parquet")
    ev = load_events(tmp_path / "ga4.parquet", mapping="ga4")
    assert ev["user_id"].tolist() == ["1.2", "3.4"]
    assert ev["timestamp"].iloc[0] == ts("2025-01-01 00:00:00.123456")


def test_a_dict_mapping_renames_export_columns(tmp_path):
    frame = pd.DataFrame({"customer": ["c1"], "action": ["buy"], "at": ["2025-01-01"], "amount": ["9.99"]})
    ev = load_events(frame, mapping={"customer": "user_id", "action": "event", "at": "timestamp", "amount": "value"})
    assert ev.iloc[0][["user_id", "event", "value"]].tolist() == ["c1", "buy", 9.99]


def test_missing_column_suggests_the_matching_preset(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event_type,event_time\nu,e,2025-01-01\n")
    with pytest.raises(EventDataError, match="mapping='amplitude'"):
        load_events(path)


def test_missing_column_through_a_preset_names_the_export_column(tmp_path):
    path = write(tmp_path / "e.csv", "user_pseudo_id,event_name,ts\nu,e,1\n")
    with pytest.raises(EventDataError, match=r"'event_timestamp' \(mapped to 'timestamp'\)"):
        load_events(path, mapping="ga4")


@pytest.mark.parametrize("content, match", [("", "is empty"), ("user_id,event,timestamp\n", "no rows")])
def test_empty_files_are_errors(tmp_path, content, match):
    with pytest.raises(EventDataError, match=match):
        load_events(write(tmp_path / "e.csv", content))


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(EventDataError, match="unknown mapping preset 'heap'; known presets: amplitude, ga4, mixpanel, segment"):
        load_events(pd.DataFrame({"a": [1]}), mapping="heap")


@pytest.mark.parametrize("name, content, match", [
    ("missing.csv", None, "no such file"),
    ("broken.parquet", b"not parquet at all", "cannot read as Parquet"),
    ("broken.jsonl", b'{"user_id": "u"}\n{not json\n', r"line 2 is not valid JSON"),
    ("events.xlsx", b"PK", "unknown file type"),
    ("binary.csv", b"\xff\xfe\x00\x01\x02", "is not UTF-8 text"),
])
def test_unreadable_files_are_errors_that_name_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EventDataError, match=match) as err:
        load_events(path)
    assert name in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_a_file_without_read_permission_is_an_error(tmp_path):
    path = write(tmp_path / "e.csv", CSV)
    path.chmod(0)
    with pytest.raises(EventDataError, match="not readable"):
        load_events(path)


def test_csv_properties_keep_their_text_unless_numeric_without_loss(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp,zip,order_id,qty,price,big,flag\n"
                                     "u1,buy,2025-01-01,00123,A-1,2,9.5,12345678901234567890,true\n"
                                     "u2,buy,2025-01-02,45000,007,3,NA,1,false\n")
    ev = load_events(path)
    assert ev["zip"].tolist() == ["00123", "45000"]
    assert ev["order_id"].tolist() == ["A-1", "007"]
    assert ev["qty"].tolist() == [2, 3] and pd.api.types.is_integer_dtype(ev["qty"])
    assert ev["price"].iloc[0] == 9.5 and pd.isna(ev["price"].iloc[1])  # "NA" in a numeric column is missing
    assert ev["big"].tolist() == ["12345678901234567890", "1"]  # beyond exact integers: kept as text
    assert ev["flag"].tolist() == ["true", "false"]


@pytest.mark.parametrize("line, kind", [("[1, 2]", "an array"), ("5", "a number"), ("null", "null"), ('"x"', "a string")])
def test_a_json_lines_record_that_is_not_an_object_is_an_error_naming_the_line(tmp_path, line, kind):
    path = write(tmp_path / "e.jsonl", '{"user_id": "u1", "event": "a", "timestamp": "2025-01-01"}\n' + line + "\n")
    with pytest.raises(EventDataError, match=rf"e.jsonl: .*line 2 is {kind}, not a JSON object"):
        load_events(path)


def test_a_flattened_json_name_that_clashes_with_a_top_level_key_is_an_error(tmp_path):
    path = write(tmp_path / "e.jsonl", '{"user_id": "u1", "event": "a", "timestamp": "2025-01-01", '
                                       '"page": {"url": "/x"}, "page.url": "/y"}\n')
    with pytest.raises(EventDataError, match=r"e.jsonl: .*'page.url'.*both"):
        load_events(path)


def test_a_mapping_that_sends_two_columns_to_one_is_an_error():
    raw = pd.DataFrame({"a": ["u1"], "b": ["u2"], "event": ["x"], "timestamp": ["2025-01-01"]})
    with pytest.raises(EventDataError, match=r"'a' and 'b'.*'user_id'"):
        load_events(raw, mapping={"a": "user_id", "b": "user_id"})


def test_binary_user_ids_in_parquet_load_when_utf8_and_are_an_error_otherwise(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = pa.table({"user_id": pa.array([b"u1", b"u2"], pa.binary()), "event": ["a", "a"],
                     "timestamp": ["2025-01-01", "2025-01-02"]})
    pq.write_table(good, tmp_path / "good.parquet")
    assert load_events(tmp_path / "good.parquet")["user_id"].tolist() == ["u1", "u2"]
    bad = good.set_column(0, "user_id", pa.array([b"u1", b"\xff\xfe"], pa.binary()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(EventDataError, match=r"bad.parquet: column 'user_id' is not UTF-8 text.*row 2"):
        load_events(tmp_path / "bad.parquet")


def test_a_glob_of_parquet_files_with_different_types_loads_like_the_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01T00:00:00Z"]}), folder / "a.parquet")
    pq.write_table(pa.table({"user_id": [2], "event": ["b"], "extra": [1],
                             "timestamp": pa.array([pd.Timestamp("2025-01-02", tz=UTC)], pa.timestamp("us", "UTC"))}),
                   folder / "b.parquet")
    by_glob, by_folder = load_events(str(folder / "*.parquet")), load_events(folder)
    assert by_glob["user_id"].tolist() == ["u1", "2"]
    assert by_glob["timestamp"].tolist() == [ts("2025-01-01"), ts("2025-01-02")]
    pd.testing.assert_frame_equal(by_glob, by_folder)
    assert by_folder["extra"].isna().tolist() == [True, False]  # a later file's extra column is kept


def test_xes_case_logs_load_with_cases_as_users_and_case_attributes_as_properties(tmp_path):
    xes = ('<?xml version="1.0"?><log xmlns="http://www.xes-standard.org/">'
           '<trace><string key="concept:name" value="173688"/><string key="AMOUNT_REQ" value="20000"/>'
           '<event><string key="concept:name" value="A_SUBMITTED"/><date key="time:timestamp" value="2011-10-01T00:38:44.546+02:00"/></event>'
           '<event><string key="concept:name" value="A_PARTLYSUBMITTED"/><date key="time:timestamp" value="2011-10-01T00:38:44.880+02:00"/>'
           '<string key="org:resource" value="112"/></event></trace>'
           '<trace><string key="concept:name" value="173691"/>'
           '<event><string key="concept:name" value="A_SUBMITTED"/><date key="time:timestamp" value="2011-10-01T08:08:58.256+02:00"/></event>'
           '</trace></log>')
    ev = load_events(write(tmp_path / "log.xes", xes))
    assert ev["user_id"].tolist() == ["173688", "173688", "173691"]
    assert ev["event"].tolist() == ["A_SUBMITTED", "A_PARTLYSUBMITTED", "A_SUBMITTED"]
    assert ev["timestamp"].iloc[0] == pd.Timestamp("2011-09-30 22:38:44.546", tz=UTC)
    assert ev["case:AMOUNT_REQ"].fillna("-").tolist() == ["20000", "20000", "-"] and ev["org:resource"].iloc[1] == "112"
    with pytest.raises(EventDataError, match=r"log2.xes: not a readable XES"):
        load_events(write(tmp_path / "log2.xes", "<log><trace>"))


def test_whitespace_separated_txt_with_default_event_and_real_repeats_kept(tmp_path):
    path = write(tmp_path / "cdnow.txt", "customer date quantity amount\n00001 19970101 1 11.77\n"
                                         "00002 19970112 1 12.00\n00002 19970112 1 12.00\n")
    kw = dict(mapping={"customer": "user_id", "date": "timestamp", "amount": "value"}, default_event="purchase",
              timestamp_format="%Y%m%d")
    removed = load_events(path, **kw)
    assert len(removed) == 2 and removed.attrs["helpers.load"]["duplicates_removed"] == 1
    kept = load_events(path, drop_duplicates=False, **kw)
    assert kept["user_id"].tolist() == ["00001", "00002", "00002"] and kept["event"].tolist() == ["purchase"] * 3
    info = kept.attrs["helpers.load"]
    assert (info["duplicates_removed"], info["duplicates_kept"]) == (0, 1)
    assert info["duplicate_examples"] == [{"event": "purchase", "timestamp": "1997-01-12T00:00:00+00:00"}]
    q = data_quality(kept, as_of="2000-01-01")
    assert "1 duplicate rows were kept as real repeats" in q.headline()
    assert any("rule: rows equal to an earlier row in every column" in w for w in q.warnings)


def test_json_ids_beyond_two_to_the_53_stay_exact_and_distinct(tmp_path):
    """Through float, 2**53 + 1 and 2**53 + 2 and this 19-digit pair would merge; a null id must not force float."""
    big = [9007199254740993, 9007199254740994, 1234567890123456789, 1234567890123456788]
    rows = [{"user_id": u, "event": "e", "timestamp": "2025-01-01T00:00:00Z", "order_id": u} for u in big]
    rows.append({"user_id": None, "event": "e", "timestamp": "2025-01-01T00:00:00Z", "order_id": None})
    ev = load_events(write(tmp_path / "big.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert ev["user_id"].tolist() == [str(u) for u in big]
    assert ev["order_id"].astype(str).tolist() == [str(u) for u in big]
    assert ev.attrs["helpers.load"]["duplicates_removed"] == 0 and ev.attrs["helpers.load"]["dropped"] == {"null user_id": 1}


def test_csv_is_read_as_text_with_quoted_newlines_empty_fields_missing_and_duplicate_headers_named(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b'\xef\xbb\xbfuser_id,event,timestamp,note,note\r\n'
                     b'u1,visit,2025-01-01T00:00:00Z,"two\nlines",a\r\n'
                     b'u2,visit,2025-01-01T00:00:01Z,"",NA\r\n'
                     b'u3,"a, b",2025-01-01T00:00:02Z,,00123\r\n')
    ev = load_events(path)
    assert ev["user_id"].tolist() == ["u1", "u2", "u3"] and ev["event"].tolist() == ["visit", "visit", "a, b"]
    assert ev["note"].iloc[0] == "two\nlines" and ev["note"].iloc[1:].isna().all()  # quoted or not, empty is missing
    assert ev["note.1"].tolist() == ["a", "NA", "00123"]  # text stays text: 'NA' is a value, 00123 keeps its zeros


def test_a_csv_row_with_the_wrong_number_of_fields_is_an_error_naming_the_row(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\nu1,visit,2025-01-01\nu2,visit,with,comma,2025-01-02\n")
    with pytest.raises(EventDataError, match=r"e.csv: a row has 5 fields where the header has 3 .*visit,with,comma"):
        load_events(path)


def test_a_csv_that_is_not_utf8_is_an_error_that_says_how_to_convert_it(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes("user_id,event,timestamp\nu1,caf\xe9,2025-01-01\n".encode("latin-1"))
    with pytest.raises(EventDataError, match=r"e.csv: the file is not UTF-8 text, e.g. line 2: .*iconv"):
        load_events(path)
