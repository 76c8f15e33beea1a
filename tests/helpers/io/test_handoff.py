"""helpers.io.handoff: write_events and hand-offs between notebooks."""

from __future__ import annotations

import pandas as pd
from io_files import CSV, write

from helpers.io import (
    load_events,
    read_load_info,
    write_events,
)


def test_write_events_round_trips_and_keeps_the_load_record(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV + "007,visit,2025-01-01T10:00:00Z,web,,home\n"))
    out = write_events(ev, tmp_path / "out" / "events.parquet")
    back = load_events(out)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), ev.reset_index(drop=True), check_dtype=False)
    assert read_load_info(out)["duplicates_removed"] == 1


def test_a_handoff_is_read_only_for_the_events_it_was_made_from(tmp_path):
    from helpers.io import current_handoff, handoff_note, write_handoff

    ev = load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01"]}))
    events = write_events(ev, tmp_path / "events.parquet")
    personas = write_handoff(pd.DataFrame({"user_id": ["u1"], "persona": ["x"]}), tmp_path / "personas.parquet", events)
    assert current_handoff(personas, events) == personas and handoff_note(personas, events) == ""
    write_events(ev, events)  # a later run writes its events: the personas belong to the earlier one
    assert current_handoff(personas, events) is None
    assert "made from other events, so it is not used" in handoff_note(personas, events)
