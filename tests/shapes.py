"""Four small event logs shaped unlike the bundled sample, each in the format such data usually comes in.

Each writer makes an export in ``folder`` and returns what the report needs to run on it: the loading
notebook's parameters and a stage map (nothing else of the report config changes). The shapes follow real
public logs: a shop clickstream without revenue, channels or users table (retentioneering's simple_shop), a
purchases-only table with ``yyyymmdd`` integer dates and real repeat purchases in a whitespace-separated
``.txt`` (CDNOW), a subscription log in months with a Yes/No churn flag (IBM Telco turned into events), and a
loan-application case log in XES whose events share timestamps (BPI Challenge 2012).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Shape:
    name: str
    loading: dict[str, Any]  # the data_loading notebook's parameters
    stage_map: dict[str, Any]  # config/journey.yaml for this log


def clickstream(folder: Path, users: int = 600, seed: int = 1) -> Shape:
    """Sessions through a shop: catalog, products, cart, delivery, payment; no value, channel or users table."""
    rng = np.random.default_rng(seed)
    steps = ["main", "catalog", "product", "cart", "delivery_choice", "delivery", "payment_choice", "payment", "payment_done"]
    go_on = np.array([0.9, 0.8, 0.6, 0.55, 0.8, 0.9, 0.8, 0.75])
    rows = []
    start = pd.Timestamp("2024-03-01").value // 10**9
    for s in range(3):  # up to three visits per user (users x visits x steps, built as arrays)
        alive = rng.random(users) < [1.0, 0.45, 0.2][s]
        t0 = start + rng.integers(0, 120 * 86400, users) + s * 20 * 86400
        reach = np.cumprod(np.c_[np.ones(users), rng.random((users, len(go_on))) < go_on], axis=1).astype(bool)
        for k, step in enumerate(steps):
            mask = alive & reach[:, k]
            name = step
            if step == "product":
                name = np.where(rng.random(users) < 0.5, "product1", "product2")
            elif step == "delivery":
                name = np.where(rng.random(users) < 0.6, "delivery_courier", "delivery_pickup")
            elif step == "payment":
                name = np.where(rng.random(users) < 0.7, "payment_card", "payment_cash")
            names = np.broadcast_to(np.asarray(name, dtype=object), (users,))
            rows.append(pd.DataFrame({"client_id": np.arange(users)[mask], "action": names[mask],
                                      "ts": t0[mask] + k * rng.integers(5, 300, mask.sum())}))
        lost = alive & ~reach[:, -1]
        rows.append(pd.DataFrame({"client_id": np.arange(users)[lost], "action": "lost", "ts": t0[lost] + 3000}))
    log = pd.concat(rows, ignore_index=True).sort_values(["client_id", "ts"])
    log["ts"] = pd.to_datetime(log["ts"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    log.to_csv(folder / "shop.csv", index=False)
    return Shape("clickstream", {"source": str(folder / "shop.csv"),
                                 "mapping": {"client_id": "user_id", "action": "event", "ts": "timestamp"}},
                 {"stages": [{"name": "browse", "events": ["main", "catalog"]},
                             {"name": "product", "events": ["product1", "product2"]},
                             {"name": "cart", "events": ["cart"]},
                             {"name": "checkout", "events": ["delivery_choice", "delivery_courier", "delivery_pickup",
                                                             "payment_choice", "payment_card", "payment_cash"]},
                             {"name": "purchase", "events": ["payment_done"]}],
                  "funnel": ["catalog", ["product1", "product2"], "cart", "payment_choice", "payment_done"],
                  "goal": "payment_done",
                  "kpi_events": {"purchase": "payment_done", "add_to_cart": "cart"}})


def purchases(folder: Path, customers: int = 400, seed: int = 2) -> Shape:
    """CDNOW-like purchases: id, yyyymmdd date, quantity, amount, whitespace-separated; real repeat purchases
    on one day with the same amount are identical rows."""
    rng = np.random.default_rng(seed)
    n = rng.geometric(0.35, customers)
    cust = np.repeat(np.arange(1, customers + 1), n)
    first = np.repeat(rng.integers(0, 90, customers), n)
    day = np.where(np.r_[True, cust[1:] != cust[:-1]], first, first + rng.integers(0, 540, len(cust)))
    amount = np.round(rng.gamma(2.0, 15.0, len(cust)), 2)
    log = pd.DataFrame({"customer": [f"{c:05d}" for c in cust],
                        "date": (pd.Timestamp("1997-01-01") + pd.to_timedelta(day, unit="D")).strftime("%Y%m%d").astype(int),
                        "quantity": rng.integers(1, 4, len(cust)), "amount": amount})
    log = pd.concat([log, log.iloc[::37]], ignore_index=True)  # the same purchase twice on a day: real repeats
    log = log.sort_values(["customer", "date"], kind="stable")
    with open(folder / "cdnow.txt", "w") as fh:
        fh.write("customer date quantity amount\n")
        for line in log.astype(str).agg(" ".join, axis=1):
            fh.write(line + "\n")
    return Shape("purchases", {"source": str(folder / "cdnow.txt"),
                               "mapping": {"customer": "user_id", "date": "timestamp", "amount": "value"},
                               "default_event": "purchase", "timestamp_format": "%Y%m%d", "drop_duplicates": False},
                 {"stages": [{"name": "customer", "events": ["purchase"]}],
                  "funnel": ["purchase", "purchase", "purchase"], "goal": "purchase",
                  "kpi_events": {"purchase": "purchase"}})


def subscriptions(folder: Path, customers: int = 500, seed: int = 3) -> Shape:
    """Telco-like subscriptions as events: a start (contract, internet service), a monthly charge each month
    (value), and a churn event with a Yes/No flag; tenure in months, up to six years."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], customers, p=[0.55, 0.25, 0.2])
    hazard = np.select([contract == "Month-to-month", contract == "One year"], [0.06, 0.02], 0.008)
    tenure = np.minimum(rng.geometric(hazard), 72)
    start_month = rng.integers(0, 72, customers)
    observed = np.minimum(tenure, 72 - start_month)
    churned = tenure <= 72 - start_month
    ids = np.array([f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ'), 5))}"
                    for _ in range(customers)])
    origin = pd.Timestamp("2019-01-01", tz="UTC")
    months = np.repeat(np.arange(customers), observed)
    offset = np.concatenate([np.arange(k) for k in observed])
    charge = pd.DataFrame({"customerID": ids[months], "event": "monthly_charge",
                           "timestamp": origin + pd.to_timedelta((start_month[months] + offset) * 30.44, unit="D"),
                           "MonthlyCharges": np.round(rng.uniform(20, 110, customers)[months], 2)})
    start = pd.DataFrame({"customerID": ids, "event": "start", "timestamp": origin + pd.to_timedelta(start_month * 30.44, unit="D"),
                          "Contract": contract, "InternetService": rng.choice(["DSL", "Fiber optic", "No"], customers)})
    end = pd.DataFrame({"customerID": ids[churned], "event": "churn", "Churn": "Yes",
                        "timestamp": origin + pd.to_timedelta((start_month + observed)[churned] * 30.44, unit="D")})
    log = pd.concat([start, charge, end], ignore_index=True).sort_values(["customerID", "timestamp"], kind="stable")
    log.to_parquet(folder / "telco.parquet", index=False)
    return Shape("subscriptions", {"source": str(folder / "telco.parquet"),
                                   "mapping": {"customerID": "user_id", "MonthlyCharges": "value"}},
                 {"stages": [{"name": "start", "events": ["start"]}, {"name": "paying", "events": ["monthly_charge"]},
                             {"name": "left", "events": ["churn"]}],
                  "funnel": ["start", "monthly_charge"], "goal": "monthly_charge",
                  "kpi_events": {"signup": "start", "subscription_cancelled": "churn", "subscription_renewed": "monthly_charge"}})


def case_log(folder: Path, cases: int = 400, seed: int = 4) -> Shape:
    """BPIC-2012-like loan applications in XES: several events of a case share one timestamp, times carry a
    +01:00 offset, the requested amount is a case attribute."""
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp("2011-10-01T08:00:00+01:00")
    lines = ['<?xml version="1.0" encoding="UTF-8" ?>', '<log xes.version="1.0" xmlns="http://www.xes-standard.org/">']
    for c in range(cases):
        t = origin + pd.Timedelta(minutes=int(rng.integers(0, 150 * 24 * 60)))
        trace = [("A_SUBMITTED", t), ("A_PARTLYSUBMITTED", t)]  # the same instant
        if rng.random() < 0.7:
            t = t + pd.Timedelta(minutes=int(rng.integers(1, 600)))
            trace.append(("A_PREACCEPTED", t))
            if rng.random() < 0.7:
                t = t + pd.Timedelta(hours=int(rng.integers(1, 72)))
                trace += [("A_ACCEPTED", t), ("O_SELECTED", t), ("O_CREATED", t), ("O_SENT", t)]
                t = t + pd.Timedelta(days=int(rng.integers(1, 20)))
                outcome = "A_APPROVED" if rng.random() < 0.5 else "A_CANCELLED"
                trace += [(outcome, t), ("A_REGISTERED" if outcome == "A_APPROVED" else "O_CANCELLED", t)]
            else:
                trace.append(("A_DECLINED", t + pd.Timedelta(hours=2)))
        else:
            trace.append(("A_DECLINED", t + pd.Timedelta(minutes=5)))
        lines.append(f'<trace><string key="concept:name" value="{173688 + c}"/>'
                     f'<string key="AMOUNT_REQ" value="{int(rng.integers(1, 50)) * 1000}"/>')
        for name, when in trace:
            lines.append(f'<event><string key="org:resource" value="{int(rng.integers(10000, 10010))}"/>'
                         f'<string key="lifecycle:transition" value="COMPLETE"/><string key="concept:name" value="{name}"/>'
                         f'<date key="time:timestamp" value="{when.isoformat(timespec="milliseconds")}"/></event>')
        lines.append("</trace>")
    lines.append("</log>")
    (folder / "loans.xes").write_text("\n".join(lines))
    return Shape("case_log", {"source": str(folder / "loans.xes")},
                 {"stages": [{"name": "application", "events": ["A_SUBMITTED", "A_PARTLYSUBMITTED"]},
                             {"name": "offer", "events": ["A_PREACCEPTED", "A_ACCEPTED", "O_SELECTED", "O_CREATED", "O_SENT"]},
                             {"name": "decision", "events": ["A_APPROVED", "A_REGISTERED", "A_DECLINED", "A_CANCELLED", "O_CANCELLED"]}],
                  "funnel": ["A_SUBMITTED", "A_PREACCEPTED", "A_ACCEPTED", "A_APPROVED"], "goal": "A_APPROVED",
                  "kpi_events": {}})


SHAPES = {"clickstream": clickstream, "purchases": purchases, "subscriptions": subscriptions, "case_log": case_log}
