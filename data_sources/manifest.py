"""The manifest of an export: what was asked for, where the rows came from, how money was converted.

``build_manifest`` answers, for the filtered rows of an export: the filters and the query string,
when and by which fundatlas version it was made, how many rows, each source file the rows came
from with its load (date, status), each (currency, year) among the rows with the annual rate
(``fx.usd_rate``) and the rates the rows were stored at, the duplicate rules
(``data_sources.duplicates``) and how many listed rows they leave out of totals, and the display
currency with its rates note (``fx.display_factors``). The app serves it at
``/export/manifest.json?<the export's query>`` and embeds it in XLSX and GeoJSON exports; the CLI
writes it with ``fundatlas export --manifest FILE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata

from sqlalchemy import Engine, func, select

from data_sources import duplicates, fx
from data_sources.filters import Filters
from data_sources.queries import Parties
from data_sources.schema import COLUMN_NAMES
from data_sources.store import allocations, loads
from data_sources.view import View

A = allocations.c
L = loads.c

# What each rule of ``data_sources.duplicates`` does, in a sentence (its module docstring has the detail).
DUPLICATE_RULES: dict[str, str] = {
    duplicates.RULE_GRANT_IATI: (
        "A 360Giving grant also published in IATI (same funder and recipient org ids, currency and year, "
        "amounts within 0.5 %, an IATI commitment or disbursement, places agreeing): the 360Giving grant "
        "counts, the IATI rows are kept but left out of totals."
    ),
    duplicates.RULE_IATI_CRS: (
        "A donor's IATI transactions and its OECD CRS rows for the same project (same DAC donor, project "
        "id, year, recipient country and flow type, USD totals within 10 %): the IATI rows count, the CRS "
        "rows are kept but left out of totals."
    ),
}


def fundatlas_version() -> str:
    try:
        return metadata.version("fundatlas")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def build_manifest(
    engine: Engine,
    filters: Filters,
    view: View | None = None,
    *,
    query_string: str = "",
    export: dict | None = None,
    columns: Sequence[str] = COLUMN_NAMES,
) -> dict:
    """The manifest of the export of ``filters``'s rows (see the module docstring); ``export`` says
    what the file is (format, kind, summary dimension); ``view`` gives the display currency."""
    view = view or View()
    with engine.connect() as conn:
        where = Parties.of(conn).where(filters)
        counts = conn.execute(select(func.count(), func.count(A.duplicate_of)).where(where)).one()
        per_load = conn.execute(
            select(A.load_id, A.source, A.source_file, func.count().label("rows"))
            .where(where).group_by(A.load_id, A.source, A.source_file).order_by(A.load_id, A.source)
        ).all()
        load_ids = sorted({r.load_id for r in per_load})
        load_rows = {r.load_id: r for r in conn.execute(select(loads).where(L.load_id.in_(load_ids)))} \
            if load_ids else {}
        pairs = conn.execute(
            select(A.currency, A.year, func.count().label("rows"), func.min(A.fx_rate).label("low"),
                   func.max(A.fx_rate).label("high"))
            .where(where, A.currency.is_not(None)).group_by(A.currency, A.year).order_by(A.currency, A.year)
        ).all()
        years = [r[0] for r in conn.execute(
            select(A.year).where(where, A.year.is_not(None)).group_by(A.year).order_by(A.year))]
    return {
        "fundatlas_version": fundatlas_version(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "export": export or {"kind": "rows"},
        "query_string": query_string.removeprefix("?"),
        "filters": filters.to_mapping(),
        "columns": list(columns),
        "row_count": int(counts[0]),
        "duplicate_rows": int(counts[1]),
        "counted_rows": int(counts[0]) - int(counts[1]),
        "files": [_file_entry(r, load_rows.get(r.load_id)) for r in per_load],
        "exchange_rates": [_rate_entry(r) for r in pairs],
        "duplicate_rules": [{"rule": rule, "does": does} for rule, does in DUPLICATE_RULES.items()],
        "display_currency": _display_entry(view.currency, years),
    }


def _when(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (None if value is None else str(value))


def _file_entry(row, load) -> dict:
    entry = {"load_id": row.load_id, "source": row.source, "source_file": row.source_file, "rows": int(row.rows)}
    if load is None:  # the rows' load is no longer in the ledger: say so rather than guess
        return {**entry, "status": "unknown", "loaded_at": None, "started_at": None}
    return {**entry, "status": load.status, "format": load.format, "loaded_at": _when(load.finished_at),
            "started_at": _when(load.started_at), "records_read": load.records_read,
            "rows_stored": load.rows_stored, "records_rejected": load.records_rejected}


def _rate_entry(row) -> dict:
    rate, note = fx.usd_rate(row.currency, row.year) if row.year is not None else (None, "no year")
    entry = {"currency": row.currency, "year": row.year, "rows": int(row.rows), "usd_per_unit": rate, "note": note}
    # A stream may state its own conversion (FTS gives amountUSD): say what the rows hold when it differs.
    low, high = row.low, row.high
    if low is not None and (rate is None or abs(low - rate) > 1e-9 * rate or abs(high - rate) > 1e-9 * rate):
        entry["rows_usd_per_unit"] = low if low == high else [low, high]
    return entry


def _display_entry(currency: str, years: Sequence[int]) -> dict:
    factors, note = fx.display_factors(currency)
    entry: dict = {"currency": currency, "note": note}
    if factors:
        entry["per_usd_by_year"] = {str(y): fx.display_factor(factors, y) for y in years}
    return entry
