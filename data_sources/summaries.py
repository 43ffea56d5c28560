"""Summary exports: totals of the filtered rows per funder, per recipient, per place or per year.

Counted once, like every total: rows with ``duplicate_of`` set are left out. Each line has the money
in US dollars (``amount_usd``) and, when the display currency is not USD, in that currency
(``amount_gbp``, ``amount_eur``: ``queries.money_column``), the distinct records and the rows.
Funders and recipients are organisation identities (their party key, as filters take it, and the
identity's display name). Places are (country, admin-1 area) pairs, empty where the rows have none.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, distinct, func, literal, select

from data_sources.export import iter_csv, write_xlsx, xlsx_chunks
from data_sources.filters import Filters
from data_sources.queries import Parties, money_column
from data_sources.store import allocations

A = allocations.c
SUMMARY_BYS = ("funder", "recipient", "place", "year")
SUMMARY_FORMATS = ("csv", "xlsx")
_KEYS = {
    "funder": ("funder", "funder_name"),
    "recipient": ("recipient", "recipient_name"),
    "place": ("country_iso3", "country_name", "admin1_pcode", "admin1_name"),
    "year": ("year",),
}


class SummaryError(ValueError):
    """A summary dimension or format that does not exist."""


def money_name(currency: str) -> str:
    return f"amount_{currency.lower()}"


def summary_columns(by: str, currency: str = "USD") -> tuple[str, ...]:
    if by not in SUMMARY_BYS:
        raise SummaryError(f"unknown summary {by!r}; one of {', '.join(SUMMARY_BYS)}")
    money = ("amount_usd",) + ((money_name(currency),) if currency != "USD" else ())
    return (*_KEYS[by], *money, "records", "rows")


def summary_kinds(by: str, currency: str = "USD") -> dict[str, str]:
    """Column kinds for the writers: numbers stay numbers, text is neutralised."""
    numbers = {"amount_usd": "float", money_name(currency): "float", "records": "int", "rows": "int", "year": "int"}
    return {c: numbers.get(c, "str") for c in summary_columns(by, currency)}


def summary_rows(engine: Engine, filters: Filters, by: str, currency: str = "USD") -> list[dict]:
    """One dict per group (``summary_columns``), the largest US-dollar total first (years in order)."""
    columns = summary_columns(by, currency)
    usd = func.coalesce(func.sum(A.amount_usd), 0.0)
    shown = func.coalesce(func.sum(money_column(currency)), 0.0)
    records = func.count(distinct(A.source + literal(":") + A.record_id))
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source = allocations
        if by in ("funder", "recipient"):
            source, keys = parties.joined((by,))
            groups = [keys[by]]
            labels = [keys[by].label(by), func.max(A[f"{by}_name"]).label(f"{by}_name")]
        elif by == "place":
            groups = [A.country_iso3, A.admin1_pcode]
            labels = [A.country_iso3, func.max(A.country_name).label("country_name"), A.admin1_pcode,
                      func.max(A.admin1_name).label("admin1_name")]
        else:
            groups, labels = [A.year], [A.year]
        money = [usd.label("amount_usd")] + ([shown.label(money_name(currency))] if currency != "USD" else [])
        order = [A.year] if by == "year" else [usd.desc(), *groups]
        query = (select(*labels, *money, records.label("records"), func.count().label("rows"))
                 .select_from(source).where(parties.counted(filters)).group_by(*groups).order_by(*order))
        found = [dict(r) for r in conn.execute(query).mappings()]
        if by in ("funder", "recipient") and found:
            names = parties.relabel([(r[f"{by}_name"], r[by]) for r in found if r[by] is not None])
            named = iter(names)
            for row in found:
                if row[by] is not None:
                    row[f"{by}_name"] = next(named)
    return [{c: row.get(c) for c in columns} for row in found]


def summary_chunks(engine: Engine, filters: Filters, by: str, fmt: str, currency: str = "USD",
                   manifest: dict | None = None) -> Iterator[bytes]:
    """The summary as CSV or XLSX bytes (XLSX with the manifest sheet when ``manifest`` is given)."""
    if fmt not in SUMMARY_FORMATS:
        raise SummaryError(f"unknown summary format {fmt!r}; one of {', '.join(SUMMARY_FORMATS)}")
    columns, kinds = summary_columns(by, currency), summary_kinds(by, currency)
    rows = summary_rows(engine, filters, by, currency)
    if fmt == "csv":
        yield from iter_csv(rows, columns, kinds)
    else:
        yield from xlsx_chunks(lambda out: write_xlsx(rows, out, columns, manifest, f"by {by}", kinds))
