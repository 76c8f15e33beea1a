"""Stage KPIs (:data:`KPIS`, :func:`stage_kpis`) and touchpoints per stage (:func:`touchpoint_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, epoch_us, to_utc_series
from helpers.journey.progression import JourneyProgression, stage_progression
from helpers.journey.satisfaction import _nps_summary, _survey_scores
from helpers.journey.stages import StageMap, _prepare, _tagged
from helpers.stats import wilson_interval


@dataclass(frozen=True)
class Kpi:
    """A stage metric: its definition in words, its unit, and the events it needs (roles in ``kpi_events``)."""

    name: str
    definition: str
    unit: str  # "share", "users", "count", "days", "minutes", "per session", "score"
    needs: tuple[str, ...]
    compute: Callable[["_Context"], dict] = field(repr=False, compare=False)


@dataclass
class _Context:
    t: ibis.Table
    stage_map: StageMap
    until: pd.Timestamp
    present: set[str]
    users_by_event: dict[str, int]
    all_users: int
    inactivity: pd.Timedelta = pd.Timedelta(days=30)
    _cache: dict = field(default_factory=dict)

    def ev(self, role: str) -> str:
        return self.stage_map.event(role)

    def users_with(self, *roles: str) -> int:
        """Users who did every one of the events."""
        if len(roles) == 1:
            return self.users_by_event.get(self.ev(roles[0]), 0)
        firsts = self.first_times()
        return int(firsts[[self.ev(r) for r in roles]].notna().all(axis=1).sum())

    def first_times(self) -> pd.DataFrame:
        """Per user (who did any of them), the first time of each event named by a KPI that combines events:
        one query serves them all (activation, checkout completion, repeat purchase, renewal, time to first
        value), instead of one query each."""
        if "first_times" not in self._cache:
            t = self.t
            # Only the KPIs that combine events read these (single-event counts come from users_by_event).
            names = sorted({self.ev(r) for k in KPIS.values() if len(k.needs) > 1 for r in k.needs} & self.present)
            per = t.filter(t.event.isin(names)).group_by("user_id").aggregate(
                **{f"_{i}": t.timestamp.min(where=t.event == e) for i, e in enumerate(names)})
            df = per.to_pyarrow().to_pandas().set_index("user_id")
            df.columns = names
            for col in names:
                df[col] = to_utc_series(df[col])
            self._cache["first_times"] = df
        return self._cache["first_times"]

    def sessions(self) -> pd.DataFrame:
        if "sessions" not in self._cache:
            t = self.t
            if "session_id" not in t.columns:
                from helpers.paths import sessionize

                t = sessionize(t)
            page = self.ev("page_view")
            s = t.group_by(["user_id", "session_id"]).aggregate(
                n=t.count(), pages=(t.event == page).cast("int64").sum(),
                seconds=(epoch_us(t.timestamp.max()) - epoch_us(t.timestamp.min())) / 1e6)
            self._cache["sessions"] = s.aggregate(
                sessions=s.count(), pages=s.pages.sum(), bounces=(s.n == 1).cast("int64").sum(),
                engaged=(s.n > 1).cast("int64").sum(), median_seconds=ibis.cases((s.n > 1, s.seconds), else_=None).median()).execute().iloc[0]
        return self._cache["sessions"]


def _share(k: int, n: int) -> dict:
    if n == 0:
        return {"value": np.nan, "numerator": k, "denominator": n}
    lo, hi = wilson_interval(np.array([float(k)]), np.array([float(n)]))
    return {"value": k / n, "numerator": k, "denominator": n, "ci_low": float(lo[0]), "ci_high": float(hi[0])}


def _reach(c: _Context) -> dict:
    first = _tagged(c.t, c.stage_map)
    n = int(first.filter(first._stage == 0).user_id.nunique().execute())
    return {"value": float(n), "numerator": n, "denominator": c.all_users}


def _median_days_between(c: _Context, a: str, b: str) -> dict:
    firsts = c.first_times()
    first_a, first_b = firsts[c.ev(a)], firsts[c.ev(b)]
    days = ((first_b - first_a).dt.total_seconds() / 86_400)[first_a.notna() & first_b.notna() & (first_b >= first_a)]
    n = len(days)
    return {"value": float(days.median()) if n else np.nan, "numerator": n, "denominator": n}


def _churn(c: _Context) -> dict:
    from helpers.retention import user_lifetimes

    cancel = c.ev("subscription_cancelled")
    life = user_lifetimes(c.t, start_event=c.ev("signup") if c.ev("signup") in c.present else None,
                          churn_event=cancel if cancel in c.present else None, inactivity=c.inactivity, observed_until=c.until)
    return _share(int(life["churned"].sum()), len(life))


def _renewal(c: _Context) -> dict:
    # Buyers whose first purchase is more than 30 days old have had a renewal due.
    firsts = c.first_times()
    bought, renewed = firsts[c.ev("purchase")], firsts[c.ev("subscription_renewed")].notna()
    due = bought.notna() & (bought <= c.until - pd.Timedelta(days=30))
    return _share(int((due & renewed).sum()), int(due.sum()))


def _nps(c: _Context) -> dict:
    table = _survey_scores(c.t, c.ev("nps_response"))
    return _nps_summary(table["score"]) if len(table) else {"value": np.nan, "numerator": 0, "denominator": 0}


def _session_kpi(field_: str) -> Callable[[_Context], dict]:
    def compute(c: _Context) -> dict:
        s = c.sessions()
        n = int(s["sessions"])
        if field_ == "pages":
            return {"value": float(s["pages"]) / n if n else np.nan, "numerator": int(s["pages"]), "denominator": n}
        if field_ == "bounces":
            return _share(int(s["bounces"]), n)
        engaged = int(s["engaged"])
        return {"value": float(s["median_seconds"]) / 60 if engaged else np.nan, "numerator": engaged, "denominator": n}
    return compute


KPIS: dict[str, Kpi] = {k.name: k for k in [
    Kpi("reach", "users with at least one event of the first stage", "users", (), _reach),
    Kpi("click_through_rate", "users who clicked an ad / users who saw an ad impression", "share",
        ("ad_impression", "ad_click"), lambda c: _share(c.users_with("ad_impression", "ad_click"), c.users_with("ad_impression"))),
    Kpi("pages_per_session", "page views / sessions (all sessions)", "per session", ("page_view",), _session_kpi("pages")),
    Kpi("bounce_rate", "sessions with a single event / sessions", "share", (), _session_kpi("bounces")),
    Kpi("time_on_site", "median length of sessions with more than one event, first to last event (a single-event "
        "session has no measurable length)", "minutes", (),
        _session_kpi("seconds")),
    Kpi("signup_rate", "users who signed up / all users", "share", ("signup",),
        lambda c: _share(c.users_with("signup"), c.all_users)),
    Kpi("add_to_cart_rate", "users who added to cart / all users", "share", ("add_to_cart",),
        lambda c: _share(c.users_with("add_to_cart"), c.all_users)),
    Kpi("checkout_completion", "users who started checkout and purchased / users who started checkout", "share",
        ("checkout_started", "purchase"),
        lambda c: _share(c.users_with("checkout_started", "purchase"), c.users_with("checkout_started"))),
    Kpi("activation_rate", "users who signed up and reached first value / users who signed up", "share",
        ("signup", "first_value"), lambda c: _share(c.users_with("signup", "first_value"), c.users_with("signup"))),
    Kpi("time_to_first_value", "median days from a user's first signup to their first first_value (after it)", "days",
        ("signup", "first_value"), lambda c: _median_days_between(c, "signup", "first_value")),
    Kpi("churn_rate", "users who signed up and churned (cancelled, or silent for 30 days at the end of the data) / "
        "users who signed up", "share", ("signup",), _churn),
    Kpi("repeat_purchase_rate", "buyers with a repeat purchase / buyers", "share", ("purchase", "repeat_purchase"),
        lambda c: _share(c.users_with("purchase", "repeat_purchase"), c.users_with("purchase"))),
    Kpi("renewal_rate", "buyers who renewed / buyers whose first purchase is more than 30 days old", "share",
        ("purchase", "subscription_renewed"), _renewal),
    Kpi("nps", "net promoter score: % promoters (9-10) - % detractors (0-6) of each respondent's latest 0-10 "
        "answer, 95% normal interval", "score", ("nps_response",), _nps),
    Kpi("referral_rate", "users who sent a referral / all users", "share", ("referral_sent",),
        lambda c: _share(c.users_with("referral_sent"), c.all_users)),
    Kpi("review_volume", "number of reviews written", "count", ("review",),
        lambda c: {"value": float(c.t.filter(c.t.event == c.ev("review")).count().execute()),
                   "numerator": c.users_with("review"), "denominator": c.all_users}),
]}


def stage_kpis(
    events: pd.DataFrame | ibis.Table,
    stage_map: StageMap | str | Path | Mapping[str, Any],
    *,
    observed_until: Any = None,
    inactivity: str | pd.Timedelta = "30D",
    known_events: set[str] | None = None,
) -> pd.DataFrame:
    """Each stage's KPIs with their definitions; a KPI whose events are missing is ``available=False`` with NaN, never 0.

    Columns: ``stage``, ``kpi``, ``value``, ``unit``, ``ci_low``, ``ci_high`` (shares:
    Wilson; NPS: normal), ``numerator``, ``denominator``, ``available``, ``definition``.
    ``inactivity`` is the silence after which ``churn_rate`` counts a user as gone.
    ``known_events``: the event names of the whole data when ``events`` is a
    window of it (:func:`journey_changes`): the map is checked against them, and
    a KPI is unavailable only when they lack its events (in the window it is 0).
    """
    t, stage_map, until, present = _prepare(events, stage_map, observed_until, known_events)
    by_event = t.group_by("event").aggregate(users=t.user_id.nunique()).execute()
    ctx = _Context(t, stage_map, until, present, dict(zip(by_event["event"], by_event["users"].astype(int))),
                   int(t.user_id.nunique().execute()), pd.Timedelta(inactivity))
    rows = []
    for stage in stage_map.stages:
        for name in stage.kpis:
            kpi = KPIS[name]
            missing = [stage_map.event(r) for r in kpi.needs if stage_map.event(r) not in present]
            row = {"stage": stage.name, "kpi": name, "unit": kpi.unit, "definition": kpi.definition,
                   "available": not missing, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "numerator": np.nan, "denominator": np.nan}
            if missing:
                row["definition"] += f" (unavailable: no {', '.join(missing)} events)"
            else:
                row.update(kpi.compute(ctx))
            rows.append(row)
    cols = ["stage", "kpi", "value", "unit", "ci_low", "ci_high", "numerator", "denominator", "available", "definition"]
    return pd.DataFrame(rows, columns=cols)


def touchpoint_headline(touchpoints: pd.DataFrame, *, min_users: int = 100) -> str:
    """One sentence on :func:`touchpoint_matrix`: the stage where the channel matters most (the widest gap in the
    share moving on between channels with at least ``min_users`` users there).

    Examples
    --------
    >>> t = pd.DataFrame({"stage": ["visit"] * 2 + ["buy"], "channel": ["ads", "email", "web"], "users": [200, 150, 90],
    ...                   "reached_next": [40, 90, 0], "conversion_to_next": [0.2, 0.6, float("nan")]})
    >>> touchpoint_headline(t)
    'The channel matters most at visit: 60% of those seen there through email move on, against 20% through ads.'
    """
    t = touchpoints.dropna(subset=["conversion_to_next"])
    t = t[t["users"] >= min_users]
    spread = t.groupby("stage", sort=False)["conversion_to_next"].agg(lambda s: s.max() - s.min())
    if spread.empty or not spread.max():
        return f"No stage has two channels with {min_users}+ users to compare."
    stage = spread.idxmax()
    rows = t[t["stage"] == stage]
    best, worst = rows.loc[rows["conversion_to_next"].idxmax()], rows.loc[rows["conversion_to_next"].idxmin()]
    return (f"The channel matters most at {stage}: {best['conversion_to_next']:.0%} of those seen there through "
            f"{best['channel']} move on, against {worst['conversion_to_next']:.0%} through {worst['channel']}.")


def touchpoint_matrix(
    events: pd.DataFrame | ibis.Table,
    stage_map: StageMap | str | Path | Mapping[str, Any],
    *,
    observed_until: Any = None,
    progression: JourneyProgression | None = None,
) -> pd.DataFrame:
    """Stages x channels: users with a stage event through the channel, and the share of them who reached the next stage.

    One row per (stage, channel): ``users``, ``reached_next`` (users who went on to
    reach the next stage, by :func:`stage_progression`'s rule), ``conversion_to_next``
    (NaN for the last stage).
    """
    t, stage_map, until, _ = _prepare(events, stage_map, observed_until)
    if "channel" not in t.columns:
        raise EventDataError("touchpoint_matrix: the events have no 'channel' column.")
    progression = progression or stage_progression(t, stage_map, observed_until=until)
    tagged = _tagged(t, stage_map)
    pairs = tagged.filter(tagged.channel.notnull()).select("user_id", "_stage", "channel").distinct()
    pairs = pairs.to_pyarrow().to_pandas()
    pairs["user_id"] = pairs["user_id"].astype(str)
    names = stage_map.names
    # Did the user reach the stage after this one? A lookup by position (two merges cost 2 s at 500k users).
    has_reached = progression.reached.reindex(columns=names).notna().to_numpy()
    has_reached = np.column_stack([has_reached, np.zeros(len(has_reached), dtype=bool)])  # past the last stage: never
    row = progression.reached.index.get_indexer(pairs["user_id"])
    stage = pairs["_stage"].to_numpy().astype(int)
    pairs["_went_on"] = np.where(row >= 0, has_reached[row, stage + 1], False)
    out = pairs.groupby(["_stage", "channel"], observed=True).agg(users=("user_id", "size"),
                                                                  reached_next=("_went_on", "sum")).reset_index()
    last = out["_stage"] == len(names) - 1
    out["conversion_to_next"] = np.where(last, np.nan, out["reached_next"] / out["users"])
    out["reached_next"] = np.where(last, np.nan, out["reached_next"])
    out.insert(0, "stage", [names[int(i)] for i in out["_stage"]])
    out = out.drop(columns="_stage")
    return out.sort_values(["stage", "users"], key=lambda s: s.map(names.index) if s.name == "stage" else -s,
                           ).reset_index(drop=True)
