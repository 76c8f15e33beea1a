"""helpers.io.users: User tables beside the events."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.io import (
    EventDataError,
)


def test_user_attribute_takes_the_first_column_found_and_skips_missing_files(tmp_path):
    from helpers.io import user_attribute

    users = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": ["u1", "u2"], "acquisition_channel": ["ads", "search"]}).to_parquet(users)
    got = user_attribute(["persona", "acquisition_channel"], [tmp_path / "personas.parquet", users])
    assert got.name == "acquisition_channel" and got.to_dict() == {"u1": "ads", "u2": "search"}
    assert user_attribute("variant", ["data/sample/users.parquet"]).isin(["A", "B"]).all()  # relative to the root
    with pytest.raises(EventDataError, match=r"none of the columns \['persona'\]"):
        user_attribute("persona", [users])
