"""What each persona is worth: conversion, revenue and churn per persona, the headline, and the hand-off file.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis, observed_end
from helpers.personas.model import PersonaModel


def persona_kpis(
    events: pd.DataFrame | ibis.Table,
    labels: pd.Series | pd.DataFrame,
    *,
    purchase_events: Sequence[str] | None = None,
    survey_event: str = "nps_response",
    churn_event: str | None = "subscription_cancelled",
    inactivity: str = "30D",
    observed_until: str | pd.Timestamp | None = None,
    names: Mapping | None = None,
    customer_values: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The table a stakeholder asks for first: per persona, conversion, revenue, NPS and churn.

    One row per persona and a last row ``(all)``:

    - ``users``, ``share_of_users``;
    - ``purchasers`` (users with any of ``purchase_events``), ``conversion`` with its
      95% Wilson interval ``conversion_low`` / ``conversion_high``;
    - ``revenue_per_user``: the sum of purchase ``value`` over all the persona's users;

    ``purchase_events=None`` takes ``purchase`` and ``repeat_purchase`` when the
    data has them, else every event that carries a ``value`` except the survey
    answers (``*_response``); with none of those, conversion and revenue are
    unavailable (NaN, and ``.attrs["unavailable"]`` says why), never a crash.
    - ``nps_respondents``, ``nps``: % promoters (9-10) minus % detractors (0-6) of each
      respondent's latest ``survey_event`` score, with a 95% normal interval
      (``nps_low``, ``nps_high``; variance ``(p + d - (p - d)^2) / n``);
    - ``churned``, ``churn_share``: users who did ``churn_event`` or whose last event is
      more than ``inactivity`` before ``observed_until`` (default: the last timestamp).

    ``labels`` is a Series (index ``user_id``, e.g. ``PersonaModel.labels_``) or a
    DataFrame with ``user_id`` and ``persona``; only labelled users count, and a
    labelled user without events counts as a user who did nothing. ``names``
    maps persona to a display name (``PersonaModel.short_names_``).

    ``customer_values`` (``helpers.value.analyse_value(...).values``: ``user_id``, ``p_alive`` and
    ``customer_value``, or ``expected_purchases`` without spend) adds ``predicted_value_per_user`` (the
    persona's predicted value over the value horizon, or expected purchases, per user; users who never bought
    count 0) and ``p_alive`` (the mean probability that its customers are still customers).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "event": ["purchase", "nps_response", "visit", "nps_response"],
    ...                    "value": [30.0, 10.0, None, 3.0],
    ...                    "timestamp": pd.to_datetime(["2025-03-01", "2025-03-02", "2025-01-01", "2025-03-02"], utc=True)})
    >>> k = persona_kpis(ev, pd.Series({"a": "fans", "b": "others", "c": "others"}))
    >>> k[["persona", "users", "conversion", "revenue_per_user", "nps", "churn_share"]].values.tolist()
    [['fans', 1, 1.0, 30.0, 100.0, 0.0], ['others', 2, 0.0, 0.0, -100.0, 0.5], ['(all)', 3, 0.3333333333333333, 10.0, 0.0, 0.3333333333333333]]
    """
    from helpers.stats import wilson_interval

    if isinstance(labels, pd.DataFrame):
        if not {"user_id", "persona"} <= set(labels.columns):
            raise EventDataError(f"persona_kpis: labels need 'user_id' and 'persona' columns, got {list(labels.columns)}.")
        labels = labels.set_index("user_id")["persona"]
    labels = labels.copy()
    labels.index = labels.index.astype(str)
    labels.index.name = "user_id"
    if labels.empty:
        raise EventDataError("persona_kpis: no labelled users.")
    t = as_ibis(events)
    until = observed_end(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    has_value = "value" in t.columns
    purchase_events = _revenue_events(t, purchase_events, has_value)
    # (events are never null: a column that is always false, so the aggregations keep their shape)
    is_purchase = t.event.isin(purchase_events) if purchase_events else t.event.isnull()
    aggs = {"_purchases": is_purchase.cast("int64").sum(), "_last_seen": t.timestamp.max(),
            "_revenue": t.value.sum(where=is_purchase) if has_value else ibis.literal(0.0),
            "_cancelled": (t.event == churn_event).cast("int64").sum() if churn_event else ibis.literal(0)}
    if has_value:
        aggs["_score"] = t.value.argmax(t.timestamp, where=(t.event == survey_event) & t.value.notnull())
    per_user = t.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()
    per_user["user_id"] = per_user["user_id"].astype(str)
    per_user = per_user.set_index("user_id").reindex(labels.index)
    last_seen = pd.to_datetime(per_user["_last_seen"], utc=True)
    quiet = (until - last_seen) > pd.Timedelta(inactivity)
    score = per_user["_score"].astype(float) if has_value else pd.Series(np.nan, index=per_user.index)
    df = pd.DataFrame({
        "persona": labels.to_numpy(),
        "purchaser": per_user["_purchases"].fillna(0).to_numpy() > 0,
        "revenue": per_user["_revenue"].astype(float).fillna(0.0).to_numpy(),
        "respondent": score.notna().to_numpy(),
        "promoter": (score >= 9).to_numpy(),
        "detractor": (score <= 6).to_numpy(),
        "churned": ((per_user["_cancelled"].fillna(0).to_numpy() > 0) | quiet.fillna(False).to_numpy()),
    })
    grouped = df.groupby("persona", sort=True, observed=True).sum(numeric_only=False)
    grouped["users"] = df.groupby("persona", sort=True, observed=True).size()
    total = df.drop(columns="persona").sum().to_frame().T
    total["users"] = len(df)
    total.index = ["(all)"]
    table = pd.concat([grouped, total])
    out = pd.DataFrame({"persona": table.index.astype(object), "users": table["users"].astype(int).to_numpy()})
    if names is not None:
        out.insert(1, "name", [names.get(p, str(p)) for p in table.index[:-1]] + ["(all)"])
    n = out["users"].to_numpy(float)
    out["share_of_users"] = n / len(df)
    out["purchasers"] = table["purchaser"].astype(int).to_numpy()
    out["conversion"] = out["purchasers"] / n
    out["conversion_low"], out["conversion_high"] = wilson_interval(out["purchasers"].to_numpy(float), n)
    out["revenue_per_user"] = table["revenue"].astype(float).to_numpy() / n
    r = table["respondent"].astype(float).to_numpy()
    out["nps_respondents"] = r.astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, d = table["promoter"].to_numpy(float) / r, table["detractor"].to_numpy(float) / r
        half = 1.959963984540054 * np.sqrt((p + d - (p - d) ** 2) / r)
    out["nps"] = 100 * (p - d)
    out["nps_low"], out["nps_high"] = 100 * (p - d - half), 100 * (p - d + half)
    out["churned"] = table["churned"].astype(int).to_numpy()
    out["churn_share"] = out["churned"] / n
    if customer_values is not None:
        measure = "customer_value" if "customer_value" in customer_values.columns else "expected_purchases"
        cv = customer_values.assign(user_id=customer_values["user_id"].astype(str)).drop_duplicates("user_id")
        cv = cv.set_index("user_id")[[measure, "p_alive"]].reindex(labels.index)
        per = pd.DataFrame({"persona": labels.to_numpy(), "v": cv[measure].fillna(0.0).to_numpy(float),
                            "p": cv["p_alive"].to_numpy(float)})
        by = per.groupby("persona", sort=True, observed=True).agg(v=("v", "sum"), p=("p", "mean"))
        by.loc["(all)"] = [per["v"].sum(), per["p"].mean()]
        by = by.reindex(table.index)
        out["predicted_value_per_user"] = by["v"].to_numpy(float) / n
        out["p_alive"] = by["p"].to_numpy(float)
        out.attrs["predicted_value"] = measure
    out = out.reset_index(drop=True)
    unavailable = {}
    if not purchase_events:
        out[["purchasers", "conversion", "conversion_low", "conversion_high", "revenue_per_user"]] = np.nan
        unavailable["conversion"] = unavailable["revenue"] = "no purchase event and no event with a value"
    elif not has_value:
        out["revenue_per_user"] = np.nan
        unavailable["revenue"] = "the events have no value column"
    if not out["nps_respondents"].sum():
        unavailable["nps"] = f"no {survey_event} answers with a score"
    out.attrs.update(purchase_events=list(purchase_events), unavailable=unavailable)
    return out


def _revenue_events(t: ibis.Table, given: Sequence[str] | None, has_value: bool) -> list[str]:
    if given is not None:
        return list(given)
    present = set(t.select("event").distinct().execute()["event"].astype(str))
    named = [e for e in ("purchase", "repeat_purchase") if e in present]
    if named or not has_value:
        return named
    valued = t.filter(t.value.notnull() & ~t.event.endswith("_response")).select("event").distinct().execute()
    return sorted(valued["event"].astype(str))


def persona_table(model: PersonaModel, kpis: pd.DataFrame) -> pd.DataFrame:
    """The table the business acts on: each persona's name, what sets it apart, size and KPIs, and its revenue share.

    ``kpis`` comes from :func:`persona_kpis` on ``model.labels_``; ``revenue_share`` is
    the persona's share of all revenue, next to its ``share`` of users.
    """
    k = kpis[kpis["persona"].astype(str) != "(all)"].copy()
    k["persona"] = k["persona"].astype(int)
    out = model.summary().merge(k.drop(columns=[c for c in ("name", "users") if c in k.columns]), on="persona", how="left")
    revenue = out["revenue_per_user"] * out["users"]
    out["revenue_share"] = revenue / revenue.sum() if revenue.sum() > 0 else np.nan
    from helpers.units import declare

    predicted = [c for c in ("predicted_value_per_user", "p_alive") if c in out.columns]
    out = out[["name", "description", "users", "share", "stability", "conversion", "revenue_per_user", "revenue_share", *predicted,
               "nps", "nps_respondents", "churn_share"]]
    value_unit = "money" if kpis.attrs.get("predicted_value", "customer_value") == "customer_value" else "number"
    return declare(out, {"users": "count", "share": "rate", "stability": "number", "conversion": "rate", "revenue_per_user": "money",
                         "revenue_share": "rate", "nps": "score", "nps_respondents": "count", "churn_share": "rate",
                         "predicted_value_per_user": value_unit, "p_alive": "rate"},
                   headers={"name": "Persona", "description": "What sets it apart", "share": "Share of users",
                            "stability": "Stability (bootstrap Jaccard)", "revenue_per_user": "Revenue per user", "revenue_share": "Share of revenue", "nps": "NPS",
                            "nps_respondents": "NPS respondents", "churn_share": "Churned",
                            "predicted_value_per_user": ("Predicted value per user" if value_unit == "money"
                                                         else "Predicted purchases per user"),
                            "p_alive": "Customers still active (P(alive))"})


def kpi_headline(table: pd.DataFrame, kpis: pd.DataFrame | None = None) -> str:
    """One sentence from :func:`persona_table`: the persona worth most and the one most at risk.

    With ``kpis`` (from :func:`persona_kpis`), the measures it could not compute are named, with the reason.

    Examples
    --------
    >>> t = pd.DataFrame({"name": ["A", "B"], "share": [.6, .4], "revenue_share": [.2, .8], "churn_share": [.5, .1],
    ...                   "conversion": [.1, .7]})
    >>> kpi_headline(t)
    'B: 40% of users bring 80% of revenue (70% convert). A churns most: 50% of its users are gone.'
    """
    parts = []
    if table["revenue_share"].notna().any():
        best = table.loc[table["revenue_share"].idxmax()]
        parts.append(f"{best['name']}: {best['share']:.0%} of users bring {best['revenue_share']:.0%} of revenue "
                     f"({best['conversion']:.0%} convert).")
    elif table["conversion"].notna().any():
        best = table.loc[table["conversion"].idxmax()]
        parts.append(f"{best['name']} converts most: {best['conversion']:.0%} ({best['share']:.0%} of users); "
                     "revenue is unavailable.")
    else:
        largest = table.loc[table["share"].idxmax()]
        parts.append(f"{largest['name']} is the largest persona ({largest['share']:.0%} of users); conversion and "
                     "revenue are unavailable (no purchase event and no value in the data).")
    if table["churn_share"].notna().any():
        risk = table.loc[table["churn_share"].idxmax()]
        parts.append(f"{risk['name']} churns most: {risk['churn_share']:.0%} of its users are gone.")
    missing = (kpis.attrs.get("unavailable") or {}) if kpis is not None else {}
    if missing:
        parts.append("Unavailable: " + "; ".join(f"{k} ({why})" for k, why in missing.items()) + ".")
    return " ".join(parts)


def save_personas(model: PersonaModel, path, events_path=None) -> pd.DataFrame:
    """Write ``user_id``, ``persona`` (short name) and ``persona_id`` to Parquet, atomically; returns the table.

    The funnel and retention notebooks read it for their persona breakdowns.
    With ``events_path`` the file is stamped with those events' fingerprint
    (:func:`helpers.io.write_handoff`), so a later run on other data ignores it.
    """
    from helpers.io import write_handoff

    table = pd.DataFrame({"user_id": model.labels_.index.astype(str),
                          "persona": model.labels_.map(model.short_names_).astype(str).to_numpy(),
                          "persona_id": model.labels_.to_numpy()})
    if events_path is not None:
        write_handoff(table, path, events_path)
        return table
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)
    return table
