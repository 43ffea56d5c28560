"""Data quality: how much of the stored money is usable, per source and per load.

``quality_report(engine)`` measures, for all rows and per group (``by``: ``source``, ``load``):

* the share of money, and of rows, with a known place (``country_iso3``), a known sector (a DAC
  ``sector_code``), a known theme, and a known recipient (``recipient_id`` or ``recipient_name``);
  money is measured as the absolute US-dollar value, so negative corrections do not cancel
  positive amounts and every share lies in [0, 1]; money shares are None when the group has no
  USD value at all;
* the share of rows with an amount that have a US-dollar value (``usd`` in ``rows``); no money
  share, since the money without a USD value cannot be summed in USD;
* duplicates found (rows with ``duplicate_of`` and their USD, see ``duplicates``), and per stream
  the raw total, the total counted once and the excluded USD;
* place names no admin area matched, from the place matching of ``boundaries`` (table
  ``place_matches``; an empty list when no boundaries were added).

Every figure counts all stored rows, duplicates included: quality is a property of what each
source sent. Only ``counted_usd`` leaves duplicates out.
"""

from __future__ import annotations

from sqlalchemy import Engine, case, func, inspect, or_, select

from data_sources.duplicates import duplicate_links, stream_totals
from data_sources.store import allocations, loads

A = allocations.c
# The table in which ``boundaries`` records how each source place name matched (or did not).
PLACE_MATCHES_TABLE = "place_matches"
GROUPINGS = ("source", "load")
KNOWN = {
    "place": A.country_iso3.is_not(None),
    "sector": A.sector_code.is_not(None),
    "theme": A.theme.is_not(None),
    "recipient": or_(A.recipient_id.is_not(None), A.recipient_name.is_not(None)),
}


def _aggregates() -> list:
    usd = func.abs(A.amount_usd)
    columns = [
        func.count().label("rows"),
        func.coalesce(func.sum(usd), 0.0).label("usd_abs"),
        func.count(A.amount_usd).label("rows_usd"),
        func.count(A.amount).label("rows_amount"),
        func.coalesce(func.sum(A.amount_usd), 0.0).label("raw_usd"),
        func.coalesce(func.sum(case((A.duplicate_of.is_(None), A.amount_usd), else_=0.0)), 0.0).label("counted_usd"),
        func.coalesce(func.sum(case((A.duplicate_of.is_not(None), 1), else_=0)), 0).label("duplicate_rows"),
        func.coalesce(func.sum(case((A.duplicate_of.is_not(None), A.amount_usd), else_=0.0)), 0.0)
        .label("duplicate_usd"),
    ]
    for name, known in KNOWN.items():
        columns.append(func.coalesce(func.sum(case((known, 1), else_=0)), 0).label(f"rows_{name}"))
        columns.append(func.coalesce(func.sum(case((known, usd), else_=0.0)), 0.0).label(f"usd_{name}"))
    return columns


def _share(part: float, whole: float) -> float | None:
    return min(1.0, float(part) / float(whole)) if whole else None


def metrics(row) -> dict:
    """The figures of one aggregate row (a mapping of ``_aggregates`` labels)."""
    usd_abs = float(row["usd_abs"])
    return {
        "rows": int(row["rows"]),
        "usd": float(row["raw_usd"]),
        "counted_usd": float(row["counted_usd"]),
        "money_share": {name: _share(row[f"usd_{name}"], usd_abs) for name in KNOWN},
        "row_share": {
            **{name: _share(row[f"rows_{name}"], row["rows"]) for name in KNOWN},
            "usd": _share(row["rows_usd"], row["rows_amount"]),
        },
        "rows_without_usd": int(row["rows_amount"]) - int(row["rows_usd"]),
        "duplicates": {"rows": int(row["duplicate_rows"]), "usd": float(row["duplicate_usd"])},
    }


def unmatched_place_names(engine: Engine, limit: int = 100) -> list[dict]:
    """Source place names no admin area matched (``boundaries.unmatched_places``: country, level,
    code, name, rows, reason, nearest), most rows first; [] when no place matching has been stored."""
    if not inspect(engine).has_table(PLACE_MATCHES_TABLE):
        return []
    from data_sources import boundaries  # only when its table exists: boundaries are optional

    with engine.connect() as conn:
        return boundaries.unmatched_places(conn)[: max(0, limit)]


def quality_report(engine: Engine, by: tuple[str, ...] = GROUPINGS) -> dict:
    """Quality figures overall and per group in ``by`` (``source``, ``load``); see the module docstring."""
    unknown = set(by) - set(GROUPINGS)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; use {GROUPINGS}")
    report: dict = {}
    with engine.connect() as conn:
        overall = conn.execute(select(*_aggregates())).mappings().one()
        report["overall"] = metrics(overall)
        if "source" in by:
            query = select(A.source, *_aggregates()).group_by(A.source).order_by(A.source)
            report["by_source"] = {r["source"]: metrics(r) for r in conn.execute(query).mappings()}
        if "load" in by:
            query = (
                select(A.load_id, func.max(loads.c.source_file).label("source_file"),
                       func.max(loads.c.format).label("format"), func.max(A.source).label("source"),
                       *_aggregates())
                .select_from(allocations.outerjoin(loads, loads.c.load_id == A.load_id))
                .group_by(A.load_id)
                .order_by(A.load_id)
            )
            report["by_load"] = [
                {"load_id": r["load_id"], "source_file": r["source_file"], "format": r["format"] or r["source"],
                 **metrics(r)}
                for r in conn.execute(query).mappings()
            ]
        report["duplicates"] = _duplicates(conn)
    report["unmatched_place_names"] = unmatched_place_names(engine)
    return report


def _duplicates(conn) -> dict:
    """Raw vs counted USD per stream, and the links per rule from the ledger."""
    streams = stream_totals(conn)
    by_rule: dict[str, dict] = {}
    if inspect(conn).has_table(duplicate_links.name):
        L = duplicate_links.c
        query = (select(L.rule, func.count(), func.coalesce(func.sum(L.amount_usd), 0.0))
                 .group_by(L.rule).order_by(L.rule))
        by_rule = {rule: {"rows": int(n), "usd": float(usd)} for rule, n, usd in conn.execute(query)}
    return {
        "rows": sum(s["excluded_rows"] for s in streams.values()),
        "usd": sum(s["excluded_usd"] for s in streams.values()),
        "by_stream": streams,
        "by_rule": by_rule,
    }


# --------------------------------------------------------------------------- the command line


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{value:4.0%}"


def _quality_line(label: str, m: dict) -> str:
    money, rows = m["money_share"], m["row_share"]
    return (f"  {label:<34.34} {m['rows']:>9,} rows ${m['usd']:>18,.0f}  money with place {_pct(money['place'])} "
            f"sector {_pct(money['sector'])} theme {_pct(money['theme'])} recipient {_pct(money['recipient'])}  "
            f"rows with USD {_pct(rows['usd'])}  duplicates {m['duplicates']['rows']:,}")


def print_quality(engine: Engine, args) -> int:
    """``fundatlas quality [--json]``."""
    import json

    report = quality_report(engine)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(_quality_line("all rows", report["overall"]))
    print("by source")
    for source, m in report["by_source"].items():
        print(_quality_line(source, m))
    print("by load")
    for m in report["by_load"]:
        print(_quality_line(f"#{m['load_id']} {str(m['source_file']).rsplit('/', 1)[-1]}", m))
    dups = report["duplicates"]
    print(f"duplicates: {dups['rows']:,} rows, ${dups['usd']:,.0f} excluded from totals")
    names = report["unmatched_place_names"]
    print(f"unmatched place names: {len(names)}" if names else "unmatched place names: none recorded")
    for entry in names[:20]:
        print("  " + ", ".join(f"{k}={v}" for k, v in entry.items()))
    return 0


def print_duplicates(engine: Engine, args) -> int:
    """``fundatlas duplicates [--json] [--limit N]``."""
    import json

    from data_sources.duplicates import ledger

    data = ledger(engine, limit=max(0, args.limit))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"raw ${data['raw_usd']:,.0f}  counted once ${data['counted_usd']:,.0f}  "
          f"excluded rows {data['excluded_rows']:,}")
    for source, s in data["streams"].items():
        print(f"  {source:<12} raw ${s['raw_usd']:>18,.0f}  counted ${s['counted_usd']:>18,.0f}  "
              f"excluded ${s['excluded_usd']:>16,.0f} in {s['excluded_rows']:,} rows")
    for e in data["excluded"]:
        usd = "no USD" if e["amount_usd"] is None else f"${e['amount_usd']:,.0f}"
        print(f"{e['duplicate_row']} ({usd}) counted as {e['counted_row']} [{e['rule']}]: {e['detail']}")
    if data["excluded_rows"] > len(data["excluded"]):
        print(f"... and {data['excluded_rows'] - len(data['excluded']):,} more (--limit N)")
    return 0
