"""Audiences: lists of internal user ids, with the reason and the as-of date, for a CRM or automation tool.

:func:`export_audience` writes ``data/audiences/<name>.csv`` and ``.parquet``
(``user_id``, ``audience``, ``reason``, ``as_of``), one row per user. The
builders return the users of the standard audiences with the reason in words.
Reports show audience sizes and definitions (:func:`audience_summary`), never ids.
"""

from __future__ import annotations

import csv

import re
from pathlib import Path
from typing import Any, Sequence

import ibis
import pandas as pd

from helpers.io import EventDataError, as_ibis, observed_end, to_utc

__all__ = ["STANDARD", "at_risk", "audience_summary", "dropped_at_step", "export_audience", "export_standard",
           "audience_sizes", "likely_lapsed_high_value", "promoters_without_referral",
           "stalled_new_users"]




FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def _spreadsheet_safe(value: Any) -> Any:
    """A text field a spreadsheet will not run: a leading apostrophe before a formula character (OWASP)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def export_audience(users: pd.Series | pd.Index | Sequence[str] | pd.DataFrame, name: str, *, reason: str,
                    as_of: Any, directory: str | Path | None = None) -> dict:
    """Write an audience (CSV and Parquet, atomically) and return its summary (``name``, ``users``, ``reason``, paths).

    ``users``: user ids (a DataFrame must have ``user_id``); duplicates are written once.

    The CSV is safe to open in a spreadsheet or import into a CRM: every field
    is quoted (an id with a comma, quote, line feed or bare carriage return
    stays one field), and a field that begins with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return, which a spreadsheet would run as a formula,
    is written with a leading apostrophe (``'=HYPERLINK(...)``): strip one
    leading apostrophe from such ids on import (:data:`FORMULA_PREFIXES`).
    The Parquet file keeps every id exactly as it is.

    Examples
    --------
    >>> import tempfile
    >>> info = export_audience(["u1", "u2", "u1"], "stalled", reason="no first value after 7 days",
    ...                        as_of="2025-06-30", directory=tempfile.mkdtemp())
    >>> info["users"], pd.read_csv(info["csv"]).columns.tolist()
    (2, ['user_id', 'audience', 'reason', 'as_of'])
    """
    from helpers.config import AUDIENCES_DIR, resolve_path

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name or ""):
        raise ValueError(f"audience name {name!r}: use letters, digits, '_' and '-' (it becomes a file name).")
    if not reason or not reason.strip():
        raise ValueError(f"audience {name!r}: give the reason users are in it (it travels with the list).")
    if isinstance(users, pd.DataFrame):
        if "user_id" not in users.columns:
            raise EventDataError(f"audience {name!r}: a table of users needs a 'user_id' column.")
        ids = users["user_id"]
    else:
        ids = pd.Series(list(users) if not isinstance(users, pd.Series) else users.to_numpy())
    ids = ids.dropna().astype(str).drop_duplicates().sort_values()
    stamp = to_utc(as_of)
    table = pd.DataFrame({"user_id": ids.to_numpy(), "audience": name, "reason": reason,
                          "as_of": stamp.isoformat()})
    folder = resolve_path(directory if directory is not None else AUDIENCES_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in ("csv", "parquet"):
        path = folder / f"{name}.{kind}"
        tmp = folder / f".{name}.{kind}.tmp"
        if kind == "csv":
            table.map(_spreadsheet_safe).to_csv(tmp, index=False, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        else:
            table.to_parquet(tmp, index=False)
        tmp.replace(path)
        paths[kind] = str(path)
    return {"name": name, "users": len(table), "reason": reason, "as_of": stamp, **paths}


def audience_summary(exported: Sequence[dict]) -> pd.DataFrame:
    """Sizes and definitions of exported audiences, for a report (no ids, no paths)."""
    return pd.DataFrame([{"audience": e["name"], "users": e["users"] if e["users"] is not None else pd.NA,
                          "definition": e["reason"],
                          "as of": f"{e['as_of']:%Y-%m-%d %H:%M} UTC"} for e in exported],
                        columns=["audience", "users", "definition", "as of"]).astype({"users": "Int64"})


def dropped_at_step(result, step: int | str, *, within_days: int | None = None) -> tuple[pd.Series, str]:
    """Users whose furthest funnel step is ``step`` (dropped there, not still in progress), from ``compute_funnel``;
    with ``within_days``, only those whose attempt started that recently before ``observed_until``."""
    k = step if isinstance(step, int) else next((i + 1 for i, s in enumerate(result.steps) if s.label == step), None)
    if k is None or not 1 <= k < len(result.steps):
        raise ValueError(f"step {step!r}: choose a step before the last one ({[s.label for s in result.steps[:-1]]}).")
    pu = result.per_user
    keep = (pu["furthest_step"] == k) & ~pu["in_progress"]
    reason = f"reached {result.steps[k - 1].label} but not {result.steps[k].label} within {result.conversion_window}"
    if within_days is not None:
        keep &= pu["attempt_start"] >= result.observed_until - pd.Timedelta(days=within_days)
        reason += f", attempt started in the last {within_days} days"
    return pu.loc[keep, "user_id"].astype(str).reset_index(drop=True), reason


def at_risk(risk, threshold: float) -> tuple[pd.Series, str]:
    """Active users whose calibrated churn probability (``churn_risk``) is at least ``threshold``.

    The calibrated probability is the model's mapped onto the churn rates seen on
    the time split, so that "at least 50%" means about half of them churn.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold is a probability between 0 and 1, got {threshold}.")
    s, column = risk.scores, risk.probability
    kind = "calibrated churn probability" if column == "calibrated_probability" else "churn probability"
    reason = (f"active at {risk.observed_until:%Y-%m-%d}, {kind} within {risk.horizon.days} days "
              f">= {threshold:.0%} (model validated: concordance {risk.validation['concordance']:.2f})")
    return s.loc[s[column] >= threshold, "user_id"].astype(str).reset_index(drop=True), reason


def promoters_without_referral(events: pd.DataFrame | ibis.Table, *, survey_event: str = "nps_response",
                               referral_event: str = "referral_sent") -> tuple[pd.Series, str]:
    """Users whose latest 0-10 survey answer is 9 or 10 and who never sent a referral."""
    t = as_ibis(events)
    s = t.filter((t.event == survey_event) & t.value.notnull())
    latest = s.group_by("user_id").aggregate(score=s.value.argmax(s.timestamp))
    referred = t.filter(t.event == referral_event).select("user_id").distinct()
    promoters = latest.filter(latest.score >= 9).anti_join(referred, "user_id")
    ids = promoters.select("user_id").to_pyarrow().to_pandas()["user_id"].astype(str).sort_values()
    return ids.reset_index(drop=True), f"latest {survey_event} of 9-10 and no {referral_event}"


def stalled_new_users(events: pd.DataFrame | ibis.Table, *, after_days: int = 7, start_event: str = "signup",
                      value_event: str = "first_value", observed_until: Any = None) -> tuple[pd.Series, str]:
    """Users who did ``start_event`` more than ``after_days`` days before ``observed_until`` (and within twice that)
    and have not reached ``value_event``."""
    t = as_ibis(events)
    until = observed_end(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    per = t.filter(t.event.isin([start_event, value_event])).group_by("user_id").aggregate(
        started=t.timestamp.min(where=t.event == start_event), valued=(t.event == value_event).cast("int64").max())
    lo, hi = until - pd.Timedelta(days=2 * after_days), until - pd.Timedelta(days=after_days)
    stalled = per.filter(per.started.notnull() & (per.valued == 0) & (per.started >= lo.to_pydatetime())
                         & (per.started < hi.to_pydatetime()))
    ids = stalled.select("user_id").to_pyarrow().to_pandas()["user_id"].astype(str).sort_values()
    return ids.reset_index(drop=True), (f"{start_event} {after_days}-{2 * after_days} days before "
                                        f"{until:%Y-%m-%d} and no {value_event} since")


STANDARD = ("at_risk", "promoters_without_referral", "stalled_new_users", "dropped_at_step", "likely_lapsed_high_value")


def likely_lapsed_high_value(events: pd.DataFrame | ibis.Table, *, value_analysis=None, p_alive_below: float = 0.5,
                             top_share: float = 0.2) -> tuple[pd.Series, str]:
    """Top spenders to date who are now more likely gone than not (BG/NBD P(alive) < ``p_alive_below``): the
    win-back audience of :func:`helpers.value.likely_lapsed_high_value`. Without ``value_analysis``
    (:func:`helpers.value.analyse_value`) the models are fitted here on the ``purchase`` and
    ``repeat_purchase`` events (daily periods); an :class:`EventDataError` says when there are none."""
    from helpers import value as cv

    if value_analysis is None:
        inputs = cv.value_inputs(events)
        value_analysis, cannot = cv.value_page(events, inputs)
        if value_analysis is None:
            raise EventDataError(cannot)
    return cv.likely_lapsed_high_value(value_analysis, p_alive_below=p_alive_below, top_share=top_share)


def export_standard(names: Sequence[str], *, events: pd.DataFrame | ibis.Table, risk=None, threshold: float = 0.5,
                    funnel_result=None, drop_step: int | str | None = None, drop_within_days: int | None = 30,
                    stalled_after_days: int = 7, value_analysis=None, directory: str | Path | None = None) -> list[dict]:
    """Build and export the standard audiences named (any of :data:`STANDARD`); returns their summaries.

    ``likely_lapsed_high_value`` uses ``value_analysis`` (:func:`helpers.value.analyse_value`) or fits the
    customer value models on the purchases; it is skipped, with the reason, when there are no purchases or the
    model does not fit them.

    ``at_risk`` needs ``risk`` (:func:`helpers.risk.churn_risk`); ``dropped_at_step``
    needs ``funnel_result`` and ``drop_step``; ``promoters_without_referral`` needs
    survey answers with a score (``nps_response`` and a ``value`` column);
    ``stalled_new_users`` needs ``signup`` and ``first_value`` events. An audience
    whose inputs the data lacks is not built: its summary has ``users=None`` and
    ``skipped`` says why (shown by :func:`audience_summary`). Everything is as of
    the data's end.
    """
    unknown = [n for n in names if n not in STANDARD]
    if unknown:
        raise ValueError(f"unknown audience(s) {unknown}; the standard ones are {', '.join(STANDARD)}.")
    t = as_ibis(events)
    as_of = observed_end(t)
    present = set(t.select("event").distinct().execute()["event"].astype(str))
    out = []
    for name in names:
        why = _missing_inputs(name, t, present, risk, funnel_result, drop_step)
        if why:
            out.append({"name": name, "users": None, "reason": f"not built: {why}", "as_of": as_of, "skipped": why})
            continue
        if name == "at_risk":
            ids, reason = at_risk(risk, threshold)
        elif name == "promoters_without_referral":
            ids, reason = promoters_without_referral(t)
        elif name == "stalled_new_users":
            ids, reason = stalled_new_users(t, after_days=stalled_after_days, observed_until=as_of)
        elif name == "likely_lapsed_high_value":
            try:
                ids, reason = likely_lapsed_high_value(t, value_analysis=value_analysis)
            except EventDataError as exc:
                out.append({"name": name, "users": None, "reason": f"not built: {exc}", "as_of": as_of,
                            "skipped": str(exc)})
                continue
        else:
            ids, reason = dropped_at_step(funnel_result, drop_step, within_days=drop_within_days)
            name = f"dropped_after_{re.sub(r'[^A-Za-z0-9_-]+', '_', str(drop_step))}"
        out.append(export_audience(ids, name, reason=reason, as_of=as_of, directory=directory))
    return out


def _missing_inputs(name: str, t: ibis.Table, present: set[str], risk, funnel_result, drop_step) -> str:
    """Why an audience cannot be built from these inputs, in words ("" when it can)."""
    if name == "at_risk":
        return "" if risk is not None else "no validated churn-risk model"
    if name == "likely_lapsed_high_value":
        return ""  # known only once the models are fitted (see export_standard)
    if name == "promoters_without_referral":
        if "nps_response" not in present or "value" not in t.columns:
            return "no survey answers (nps_response with a score) in the data"
        return ""
    if name == "stalled_new_users":
        lacking = [e for e in ("signup", "first_value") if e not in present]
        return f"no {' or '.join(lacking)} event in the data" if lacking else ""
    if funnel_result is None or drop_step is None:
        return "no funnel step to read drop-offs at"
    return ""


def audience_sizes(exported: Sequence[dict]) -> dict[str, int]:
    """Audience name -> users, for the run record."""
    return {e["name"]: int(e["users"]) for e in exported if e["users"] is not None}
