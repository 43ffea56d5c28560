"""Profiles of one funder or one recipient: what the /funder/<key> and /recipient/<key> pages show.

A profile's rows are ``Filters(funders=(key,))`` (or ``recipients``): the key may be an identity's
``org_key``, a raw id or a raw name, as everywhere else. Its aggregates come from the reader (the
columnar copy, else SQL), so a profile costs what a map update costs. One aggregate is new here:
*shared partners* — for a funder, the other funders that fund its recipients, with the amounts they
share (``shared_partners_columnar`` and ``shared_partners_sql`` give equal answers; tests compare).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, func, select

from data_sources import organisations, queries
from data_sources.columnar import ColumnarTable, _top_order
from data_sources.filters import FilterError, Filters
from data_sources.store import allocations, loads

ROLES = ("funder", "recipient")
OTHER = {"funder": "recipient", "recipient": "funder"}
PEER_COLUMNS = ["value", "label", "usd", "shared", "own_usd"]
SOURCES_SHOWN = 50
TOP = 10
A = allocations.c


def selection(role: str, key: str, base: Filters | None = None) -> Filters:
    """The rows of the organisation ``key`` in ``role`` (within ``base``); FilterError for a bad key."""
    if role not in ROLES:
        raise FilterError(f"a profile is a funder's or a recipient's, not a {role!r}'s")
    chosen = replace(base or Filters(), **{f"{role}s": (key,)})
    if not getattr(chosen, f"{role}s"):
        raise FilterError("a profile needs an organisation's key")
    return chosen


# --- shared partners: the new aggregate, over the columnar copy and in SQL ---------------------


def shared_partners_columnar(table: ColumnarTable, role: str, key: str, currency: str = "USD", limit: int = 20,
                             base: Filters | None = None) -> pd.DataFrame:
    """Other parties of ``role`` that share partners with ``key`` (for a funder: the funders of its
    recipients), largest shared amount first: ``value`` (their key), ``label``, ``usd`` (their money to
    the shared partners, in ``currency``), ``shared`` (how many partners), ``own_usd`` (``key``'s money
    to those same partners). "Other" means a party key none of ``key``'s own rows carries."""
    base = base or Filters()
    other = OTHER[role]
    money = table.money(currency)
    party, partner = table.dims[role], table.dims[other]
    n_party, n_partner = len(party.values), len(partner.values)
    own = table.counted(selection(role, key, base))
    own_partner = partner.codes[own]
    known = own_partner >= 0
    own_usd = np.bincount(own_partner[known], weights=money[own][known], minlength=n_partner)
    # Lookup tables indexed by code, with one extra last slot that code -1 (NULL) reads.
    is_partner = np.zeros(n_partner + 1, dtype=bool)
    is_partner[np.unique(own_partner[known])] = True
    excluded = np.zeros(n_party + 1, dtype=bool)
    excluded[np.unique(party.codes[own])] = True  # its own keys (a -1 lands in the NULL slot)
    excluded[-1] = True
    rows = table.counted(base)
    peer, shared_with = party.codes[rows], partner.codes[rows]
    keep = is_partner[shared_with] & ~excluded[peer]
    rows, peer, shared_with = rows[keep], peer[keep], shared_with[keep]
    if len(rows) == 0:
        return pd.DataFrame(columns=PEER_COLUMNS)
    # One group per (peer, partner) pair: the number of partners shared is the number of pairs.
    pairs, pair_of_row = np.unique(peer.astype(np.int64) * n_partner + shared_with, return_inverse=True)
    pair_usd = np.bincount(pair_of_row, weights=money[rows])
    pair_peer, pair_partner = pairs // n_partner, pairs % n_partner
    peer_usd = np.bincount(pair_peer, weights=pair_usd, minlength=n_party)
    shared = np.bincount(pair_peer, minlength=n_party)
    peer_own_usd = np.bincount(pair_peer, weights=own_usd[pair_partner], minlength=n_party)
    present = np.flatnonzero(shared > 0)
    order = present[_top_order(peer_usd[present], party.values.take(pa.array(present)), limit)]
    take = pa.array(order)
    return pd.DataFrame({
        "value": party.values.take(take).to_pylist(),
        "label": table.dims[f"{role}_label"].values.take(take).to_pylist(),
        "usd": peer_usd[order].astype(float), "shared": shared[order].astype(int),
        "own_usd": peer_own_usd[order].astype(float),
    }, columns=PEER_COLUMNS)


def shared_partners_sql(engine: Engine, role: str, key: str, currency: str = "USD", limit: int = 20,
                        base: Filters | None = None) -> pd.DataFrame:
    """``shared_partners_columnar``'s answer from the store, in one statement."""
    base = base or Filters()
    other = OTHER[role]
    money = func.coalesce(queries.money_column(currency), 0.0)
    name_col = A[f"{role}_name"]
    with engine.connect() as conn:
        parties = queries.Parties.of(conn)
        own_source, own_keys = parties.joined(queries.PARTIES)
        own = (select(own_keys[role].label("party"), own_keys[other].label("partner"), money.label("usd"))
               .select_from(own_source).where(parties.counted(selection(role, key, base))).cte("profile_own"))
        partners = (select(own.c.partner, func.sum(own.c.usd).label("own_usd")).where(own.c.partner.is_not(None))
                    .group_by(own.c.partner).cte("profile_partners"))
        own_parties = select(own.c.party).where(own.c.party.is_not(None)).distinct()
        source, keys = parties.joined(queries.PARTIES)
        pairs = (
            select(keys[role].label("value"), func.max(name_col).label("label"), keys[other].label("partner"),
                   func.sum(money).label("usd"))
            .select_from(source)
            .where(parties.counted(base), keys[role].is_not(None), keys[role].not_in(own_parties),
                   keys[other].in_(select(partners.c.partner)))
            .group_by(keys[role], keys[other])
            .subquery("profile_pairs")
        )
        usd = func.sum(pairs.c.usd)
        query = (
            select(pairs.c.value, func.max(pairs.c.label).label("label"), usd.label("usd"),
                   func.count().label("shared"), func.sum(partners.c.own_usd).label("own_usd"))
            .select_from(pairs.join(partners, pairs.c.partner == partners.c.partner))
            .group_by(pairs.c.value)
            .order_by(usd.desc(), pairs.c.value)
            .limit(limit)
        )
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=PEER_COLUMNS)
        if len(frame):
            frame["label"] = parties.relabel(list(zip(frame["label"], frame["value"], strict=True)))
    frame["usd"] = frame["usd"].astype(float)
    frame["own_usd"] = frame["own_usd"].astype(float)
    frame["shared"] = frame["shared"].astype(int)
    return frame


def shared_partners(reader, role: str, key: str, currency: str = "USD", limit: int = 20) -> pd.DataFrame:
    """Shared partners through a reader: the columnar copy when it has one, else SQL."""
    table = getattr(reader, "table", None)
    if table is not None:
        return shared_partners_columnar(table, role, key, currency, limit)
    return shared_partners_sql(reader.engine, role, key, currency, limit)


# --- provenance and identity -------------------------------------------------------------------


def sources_of(engine: Engine, filters: Filters, limit: int = SOURCES_SHOWN) -> pd.DataFrame:
    """Streams and files the selected rows came from, with the load that brought them and when:
    source, source_file, load_id, rows, loaded_at (largest first)."""
    with engine.connect() as conn:
        where = queries.Parties.of(conn).where(filters)
        rows = func.count().label("rows")
        query = (
            select(A.source, A.source_file, A.load_id, rows, func.max(loads.c.finished_at).label("loaded_at"))
            .select_from(allocations.outerjoin(loads, loads.c.load_id == A.load_id))
            .where(where)
            .group_by(A.source, A.source_file, A.load_id)
            .order_by(rows.desc(), A.source, A.source_file, A.load_id)
            .limit(limit)
        )
        return pd.DataFrame(conn.execute(query).mappings().all(),
                            columns=["source", "source_file", "load_id", "rows", "loaded_at"])


def identity_for(engine: Engine, key: str) -> dict | None:
    """The identity a profile key names (an org_key, a raw id or a raw name): ``profile_identifiers``'s
    answer (display_name, identifier, registry, ids, names ...), or None when none is known."""
    with engine.connect() as conn:
        org_key = organisations.identity_of(conn, key)
        return organisations.profile_identifiers(conn, org_key) if org_key else None


# --- the whole profile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    role: str
    key: str
    name: str
    identity: dict | None  # profile_identifiers(), when the key names a known identity
    headline: queries.Headline
    row_count: int  # rows listed (duplicates too), as the table and exports hold
    years: pd.DataFrame  # label, value, usd
    themes: pd.DataFrame
    countries: pd.DataFrame  # iso3, name, usd, records, funders, recipients
    partners: pd.DataFrame  # the other role's top parties: label, value, usd
    peers: pd.DataFrame  # for a funder: shared_partners; for a recipient: its funders (label, value, usd)
    sources: pd.DataFrame

    @property
    def other(self) -> str:
        return OTHER[self.role]


def compute_profile(reader, role: str, key: str, currency: str = "USD") -> Profile | None:
    """Everything a profile page shows, through ``reader``; None when the key selects no rows (or is
    not a key at all)."""
    try:
        filters = selection(role, key)
    except FilterError:
        return None
    row_count = reader.row_count(filters)
    if row_count == 0:
        return None
    other = OTHER[role]
    identity = identity_for(reader.engine, key)
    partners = reader.totals_by(filters, other, TOP, currency)
    if identity is not None:
        name = identity["display_name"]
    else:
        name = reader.labels_for(role, [key]).get(key, key)
    peers = shared_partners(reader, role, key, currency, TOP) if role == "funder" else partners
    return Profile(
        role=role, key=key, name=str(name), identity=identity, headline=reader.headline(filters, currency),
        row_count=row_count, years=reader.totals_by(filters, "year", TOP, currency),
        themes=reader.totals_by(filters, "theme", TOP, currency),
        countries=reader.country_totals(filters, currency), partners=partners, peers=peers,
        sources=sources_of(reader.engine, filters),
    )
