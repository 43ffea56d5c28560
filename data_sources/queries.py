"""Read queries: aggregates for the map and headline, table pages, option lists, summaries.

All filtering and aggregation happens in SQL with bound parameters, so the app never pulls raw
rows beyond one table page. Totals count each amount once: rows with ``duplicate_of`` set are
left out of sums and counts (they stay in tables and exports for provenance).

Funders and recipients are organisation identities (``data_sources.organisations``): a row's party
key is its identity's ``org_key`` where the organisations pass has seen the row's (source, id, name),
else its id, else its name. Options, breakdowns and distinct counts group by that key and show the
identity's display name (else the largest raw name); a filter value matches a row whose key, raw id
or raw name it is, so links made with raw ids and names keep working.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.sql import FromClause

from data_sources import fx, geography, organisations
from data_sources.filters import Filters, contains_pattern
from data_sources.schema import COLUMN_NAMES
from data_sources.store import allocations, load_rejections, loads, store_state

A = allocations.c
TABLE_PAGE_MAX = 500
SORTABLE = frozenset(COLUMN_NAMES)


PARTIES = ("funder", "recipient")


@dataclass(frozen=True)
class Parties:
    """How this store's rows reach their funders' and recipients' identities: the one way to turn
    ``Filters`` into SQL over organisation identities (``where``, ``counted``) and to group by them
    (``joined``, ``relabel``), for every module that queries the store."""

    conn: Connection  # open while the query is built: filters read their identities' raw values
    identities: bool  # the organisations pass has made its table of mentions

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    @classmethod
    def of(cls, conn: Connection) -> Parties:
        return cls(conn, organisations.mentions_ready(conn))

    def _match(self, role: str, values: tuple[str, ...]) -> ColumnElement[bool]:
        return organisations.identity_match(role, values, allocations,
                                            organisations.mention_values(self.conn, role, values))

    def where(self, filters: Filters) -> ColumnElement[bool]:
        return filters.where(allocations, self._match if self.identities else None)

    def counted(self, filters: Filters) -> ColumnElement[bool]:
        return and_(self.where(filters), A.duplicate_of.is_(None))

    def joined(self, roles: Sequence[str]) -> tuple[FromClause, dict[str, ColumnElement]]:
        """``allocations`` outer-joined to each role's mentions, and each role's party key over it."""
        source: FromClause = allocations
        keys = {}
        for role in roles:
            if self.identities:
                mentions = organisations.organisation_mentions.alias(f"{role}_mention")
                source = source.outerjoin(mentions, organisations.mention_match(mentions, role, allocations,
                                                                                self.dialect))
                keys[role] = organisations.party_key(mentions, role, allocations)
            else:
                keys[role] = organisations.raw_party_key(allocations, role)
        return source, keys

    def relabel(self, labelled: list[tuple[object, object]]) -> list[object]:
        """Party keys' labels: the identity's display name where the key is an identity's, else the
        label given (the largest raw name)."""
        if not self.identities:
            return [label for label, _value in labelled]
        names = organisations.display_names(self.conn, [str(value) for _label, value in labelled])
        return [names.get(str(value), label) for label, value in labelled]





def money_column(currency: str = "USD") -> ColumnElement:
    """``amount_usd`` in the display ``currency`` at each row's year's annual rate (``fx.display_factors``)."""
    factors, _note = fx.display_factors(currency)
    if not factors:
        return A.amount_usd
    years = sorted(factors)
    nearest = case({y: literal(factors[y]) for y in years}, value=A.year,
                   else_=case((A.year < years[0], literal(factors[years[0]])), else_=literal(factors[years[-1]])))
    return A.amount_usd * nearest


def _record_key():
    # A record is (source, record_id); allocation rows of one record share it.
    return A.source + literal(":") + A.record_id


def data_version(engine: Engine, conn: Connection | None = None) -> str:
    """Changes whenever a load finishes or a pass changes stored rows (``store.mark_changed``): cache
    keys include it so caches never serve stale data. ``conn``: read it inside that connection's
    transaction (a snapshot that also reads the rows)."""
    with contextlib.ExitStack() as stack:
        if conn is None:
            conn = stack.enter_context(engine.connect())
        row = conn.execute(select(func.max(loads.c.load_id), func.count()).select_from(loads)).one()
        revision = conn.execute(select(func.max(store_state.c.revision))).scalar()
    return f"{row[0]}-{row[1]}-{revision or 0}"


BASES = ("spent", "based")  # see ``view.BASES``: a row's place, or its recipient's home country


def country_totals(engine: Engine, filters: Filters, currency: str = "USD", basis: str = "spent") -> pd.DataFrame:
    """Money (column ``usd``, in ``currency``), records, funders and recipients per country (rows with a
    country only): the country where the money is spent (``basis`` ``spent``: ``country_iso3``) or where
    the recipient is based (``based``: ``recipient_country_iso3``, named from the shipped country list)."""
    if basis not in BASES:
        raise ValueError(f"basis: {basis!r} is not one of {', '.join(BASES)}")
    country = A.country_iso3 if basis == "spent" else A.recipient_country_iso3
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source, keys = parties.joined(PARTIES)
        query = (
            select(
                country.label("iso3"),
                (func.max(A.country_name) if basis == "spent" else null()).label("name"),
                func.coalesce(func.sum(money_column(currency)), 0.0).label("usd"),
                func.count(distinct(_record_key())).label("records"),
                func.count(distinct(keys["funder"])).label("funders"),
                func.count(distinct(keys["recipient"])).label("recipients"),
            )
            .select_from(source)
            .where(parties.counted(filters), country.is_not(None))
            .group_by(country)
            .order_by(country)
        )
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[
            "iso3", "name", "usd", "records", "funders", "recipients",
        ])
    if basis == "based":
        frame["name"] = frame["iso3"].map(recipient_country_name)
    return frame


def recipient_country_name(iso3: str) -> str:
    """The name a recipient's home country shows (the store keeps only its code)."""
    return geography.country_name(iso3) or iso3


@dataclass(frozen=True)
class Headline:
    usd: float
    records: int
    funders: int
    recipients: int
    rows: int
    usd_without_country: float
    amounts_without_usd: int
    usd_by_flow_type: dict[str, float]


def headline(engine: Engine, filters: Filters, currency: str = "USD") -> Headline:
    """Totals counted once; money figures in ``currency`` (the field names say usd for history)."""
    money = money_column(currency)
    with engine.connect() as conn:
        parties = Parties.of(conn)
        where = parties.counted(filters)
        source, keys = parties.joined(PARTIES)
        query = select(
            func.coalesce(func.sum(money), 0.0),
            func.count(distinct(_record_key())),
            func.count(distinct(keys["funder"])),
            func.count(distinct(keys["recipient"])),
            func.count(),
            func.coalesce(func.sum(case((A.country_iso3.is_(None), money), else_=0.0)), 0.0),
            func.coalesce(func.sum(case((and_(A.amount.is_not(None), A.amount_usd.is_(None)), 1), else_=0)), 0),
        ).select_from(source).where(where)
        by_flow = select(A.flow_type, func.coalesce(func.sum(money), 0.0)).where(where).group_by(A.flow_type)
        row = conn.execute(query).one()
        flows = {r[0]: float(r[1]) for r in conn.execute(by_flow)}
    return Headline(float(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5]),
                    int(row[6]), flows)


def table_page(
    engine: Engine,
    filters: Filters,
    start: int,
    end: int,
    sort: Sequence[tuple[str, str]] = (),
    columns: Sequence[str] = COLUMN_NAMES,
) -> tuple[list[dict], int]:
    """Rows ``start``..``end`` of the filtered table (all rows, duplicates included) and the row count."""
    if not 0 <= start <= end or end - start > TABLE_PAGE_MAX:
        raise ValueError(f"a page is 0 < rows <= {TABLE_PAGE_MAX}")
    order = []
    for column, direction in sort:
        if column not in SORTABLE or direction not in ("asc", "desc"):
            raise ValueError(f"cannot sort by {column!r} {direction!r}")
        order.append(getattr(A[column], direction)())
    order.append(A.row_id.asc())  # stable paging
    with engine.connect() as conn:
        where = Parties.of(conn).where(filters)
        query = select(*(A[c] for c in columns)).where(where).order_by(*order).offset(start).limit(end - start)
        rows = [dict(r) for r in conn.execute(query).mappings()]
        total = conn.execute(select(func.count()).select_from(allocations).where(where)).scalar_one()
    return rows, int(total)


def rows_by_id(engine: Engine, row_ids: Sequence[int], columns: Sequence[str] = COLUMN_NAMES) -> list[dict]:
    """The rows with these ``row_id`` values, in the order given (a table page chosen elsewhere)."""
    if len(row_ids) > TABLE_PAGE_MAX:
        raise ValueError(f"a page is at most {TABLE_PAGE_MAX} rows")
    if not row_ids:
        return []
    query = select(A.row_id.label("_row_id"), *(A[c] for c in columns)).where(A.row_id.in_(list(row_ids)))
    with engine.connect() as conn:
        found = {r["_row_id"]: r for r in conn.execute(query).mappings()}
    return [{c: found[i][c] for c in columns} for i in row_ids if i in found]


def iter_rows(engine: Engine, filters: Filters, chunk: int = 5000) -> Iterator[dict]:
    """Every filtered row, canonical columns in order, streamed in ``chunk``-sized batches."""
    with engine.connect() as conn:
        query = select(*(A[c] for c in COLUMN_NAMES)).where(Parties.of(conn).where(filters)).order_by(A.row_id)
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for row in result.mappings():
            yield dict(row)


_OPTION_COLUMNS = {
    "funder": (A.funder_name, A.funder_id),
    "recipient": (A.recipient_name, A.recipient_id),
    "country": (A.country_name, A.country_iso3),
    "theme": (A.theme, A.theme),
    "sector": (A.sector_name, A.sector_code),
    "source": (A.source, A.source),
}


def _option_value(kind: str, keys: dict[str, ColumnElement]) -> ColumnElement:
    """What a filter of ``kind`` takes: a party's key (see ``Parties``), else the code column."""
    return keys[kind] if kind in PARTIES else _OPTION_COLUMNS[kind][1]


def _option_source(parties: Parties, kind: str) -> tuple[FromClause, ColumnElement]:
    source, keys = parties.joined((kind,) if kind in PARTIES else ())
    return source, _option_value(kind, keys)


def options(engine: Engine, kind: str, search: str = "", limit: int = 50) -> list[dict[str, str]]:
    """Dropdown options ``{"label", "value"}`` for ``kind``, largest USD first, matching ``search``
    (a raw name or id; an identity's total then counts its rows that match)."""
    label_col, value_col = _OPTION_COLUMNS[kind]
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source, value = _option_source(parties, kind)
        query = select(func.max(label_col).label("label"), value.label("value")).select_from(source)\
            .where(value.is_not(None))
        if search:
            pattern = contains_pattern(search.lower())
            query = query.where(
                func.lower(label_col).like(pattern, escape="\\") | func.lower(cast(value_col, String)).like(
                    pattern, escape="\\"
                )
            )
        query = query.group_by(value).order_by(func.sum(A.amount_usd).desc().nulls_last(), value).limit(limit)
        found = [(r.label, r.value) for r in conn.execute(query)]
        labels = parties.relabel(found) if kind in PARTIES else [label for label, _v in found]
    return [{"label": str(label or v), "value": str(v)} for label, (_raw, v) in zip(labels, found, strict=True)]


BREAKDOWNS = ("year", "funder", "recipient", "theme")


def totals_by(engine: Engine, filters: Filters, dimension: str, limit: int = 10, currency: str = "USD",
              ) -> pd.DataFrame:
    """USD per year (all years) or per funder, recipient or theme (the ``limit`` largest), counted
    once; ``value`` is what the matching filter takes (a party's key: its identity, else its id,
    else its name). No distinct record counts: the charts do not show them, and they are the costly
    part at scale."""
    if dimension not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {dimension!r}; one of {', '.join(BREAKDOWNS)}")
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source: FromClause = allocations
        if dimension == "year":
            label = value = A.year
        elif dimension == "theme":
            label = value = func.coalesce(A.theme, literal("(no theme)"))
        else:
            source, value = _option_source(parties, dimension)
            label = func.max(_OPTION_COLUMNS[dimension][0])
        usd = func.coalesce(func.sum(money_column(currency)), 0.0)
        group = value if dimension in PARTIES else label
        query = (
            select(label.label("label"), value.label("value"), usd.label("usd"))
            .select_from(source)
            .where(parties.counted(filters), value.is_not(None))
            .group_by(group)
        )
        if dimension == "year":
            query = query.order_by(A.year)
        else:
            query = query.order_by(usd.desc(), group).limit(limit)
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["label", "value", "usd"])
        if dimension in PARTIES and len(frame):
            frame["label"] = parties.relabel(list(zip(frame["label"], frame["value"], strict=True)))
        return frame


def options_for(
    engine: Engine, kind: str, selected: Sequence[str], search: str = "", limit: int = 50,
    found: list[dict] | None = None,
) -> list[dict]:
    """Options matching ``search`` (or ``found``, already fetched) plus the ``selected`` values,
    labelled, so a dropdown can show them."""
    found = options(engine, kind, search, limit) if found is None else list(found)
    known = {o["value"] for o in found}
    missing = [v for v in selected if v not in known]
    if missing:
        labels = labels_for(engine, kind, missing)
        found = [{"label": labels.get(v, v), "value": v} for v in missing] + found
    return found


def labels_for(engine: Engine, kind: str, values: Sequence[str]) -> dict[str, str]:
    """Display labels (names) of option values (party keys, or codes) of ``kind``; values no row
    has as its key are left out."""
    label_col = _OPTION_COLUMNS[kind][0]
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source, value = _option_source(parties, kind)
        query = select(func.max(label_col), value).select_from(source).where(value.in_(list(values))).group_by(value)
        found = [(label, v) for label, v in conn.execute(query)]
        labels = parties.relabel(found) if kind in PARTIES else [label for label, _v in found]
    return {str(v): str(label or v) for label, (_raw, v) in zip(labels, found, strict=True)}


def year_bounds(engine: Engine) -> tuple[int, int] | None:
    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(A.year), func.max(A.year))).one()
    return (int(low), int(high)) if low is not None else None


def filtered_row_count(engine: Engine, filters: Filters) -> int:
    """Rows the table and exports hold for ``filters`` (duplicates included, as they are listed)."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(allocations).where(Parties.of(conn).where(filters))
        return int(conn.execute(query).scalar_one())


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(allocations)).scalar_one())


def recent_loads(engine: Engine, limit: int | None = 20, load_id: int | None = None) -> pd.DataFrame:
    query = select(loads).order_by(loads.c.load_id.desc()).limit(limit)
    if load_id is not None:
        query = query.where(loads.c.load_id == load_id)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def rejections(engine: Engine, load_id: int, limit: int | None = None) -> pd.DataFrame:
    query = select(load_rejections).where(load_rejections.c.load_id == load_id).order_by(
        load_rejections.c.rejection_id
    ).limit(limit)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def current_source_files(engine: Engine) -> list[str]:
    query = select(loads.c.source_file).where(loads.c.status == "succeeded").order_by(loads.c.load_id)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def summary(engine: Engine, filters: Filters | None = None) -> dict:
    """Totals counted once: overall, by source and by year (for ``fundatlas summary``)."""
    filters = filters or Filters()
    metrics = (
        func.count(distinct(_record_key())).label("records"),
        func.count().label("rows"),
        func.coalesce(func.sum(A.amount_usd), 0.0).label("usd"),
    )
    with engine.connect() as conn:
        where = Parties.of(conn).counted(filters)
        total = conn.execute(select(*metrics).where(where)).mappings().one()
        by_source = conn.execute(select(A.source, *metrics).where(where).group_by(A.source).order_by(A.source))
        by_year = conn.execute(select(A.year, *metrics).where(where).group_by(A.year).order_by(A.year))
        by_flow = conn.execute(select(A.flow_type, *metrics).where(where).group_by(A.flow_type).order_by(A.flow_type))
        duplicates = conn.execute(select(func.count()).where(A.duplicate_of.is_not(None))).scalar_one()
        return {
            "records": int(total["records"]),
            "rows": int(total["rows"]),
            "usd": float(total["usd"]),
            "duplicate_rows_excluded": int(duplicates),
            "by_source": {r.source: {"records": r.records, "rows": r.rows, "usd": float(r.usd)} for r in by_source},
            # A commitment and its disbursements are the same money at two stages: compare like with like.
            "by_flow_type": {
                r.flow_type: {"records": r.records, "rows": r.rows, "usd": float(r.usd)} for r in by_flow
            },
            "by_year": {
                (str(r.year) if r.year is not None else "unknown"): {
                    "records": r.records, "rows": r.rows, "usd": float(r.usd),
                }
                for r in by_year
            },
        }
