"""Duplicates across streams: rows that report money another stream already reports.

``link_duplicates(conn)`` sets ``allocations.duplicate_of`` on each such row to the id of the row
that counts instead, and writes one ledger row per excluded row to ``duplicate_links``. Totals,
maps and charts leave rows with ``duplicate_of`` out (``queries``); the rows themselves stay, for
provenance. The pass is conservative: it links only when every rule below holds, and leaves
anything doubtful counted twice rather than risk dropping money.

Row ids
-------
A row is named ``{source}:{record_id}:{alloc}`` (``iati:DE-1-201462044#t0:0``), the stream's own
stable ids, so links survive the store renumbering rows. ``row_ref`` builds one, ``split_ref``
reads one back (record ids may hold ``:``; source and alloc never do).

Rules
-----
``360giving-iati``: a 360Giving grant also published in IATI (UK funders publish both). A grant
and an IATI transaction are the same money when all hold:

* same funder org id and same recipient org id (case-insensitive; both must be given);
* same currency, same year, and amounts within ``GRANT_TOLERANCE`` (0.5 %, at least 1 unit) of
  each other, each record's amount being the sum of its rows;
* the IATI transaction is a ``commitment`` or a ``disbursement`` (the award, or its payment when
  the publisher reports no commitment); pledges, budgets and expenditure are not grants;
* the places agree: every country of the IATI record is a country of the grant, or the grant
  names no country.

Matching is one-to-one: a grant links to at most one IATI transaction and back, preferring a
commitment, then the closest amount. The **360Giving grant counts** (it carries UK beneficiary
locations and recipient details IATI lacks); the IATI rows become its duplicates, each pointing at
the grant row in the same country (else the grant's first row).

``iati-crs``: a donor's IATI transactions and its OECD CRS rows for the same project. A block of
CRS rows and a block of IATI rows are the same money when they share all of:

* donor: the CRS ``funder_id`` ``XM-DAC-{DonorCode}`` and the IATI funder's org ref mapped to a
  DAC donor code by ``dac_donor_code`` (``XM-DAC-5`` and ``XM-DAC-5-7`` -> 5; ``DAC-1601`` ->
  1601; government refs such as ``DE-1`` or ``GB-GOV-1`` through ``data/dac_donors.csv``, which
  ``FUNDATLAS_DAC_DONORS`` extends with a CSV of the same columns);
* project: the CRS project id (``crs_project_id``: today the ``CRSid`` the CRS loader keeps at the
  start of ``record_id``) equals the IATI activity identifier, or that identifier without the
  funder's org-ref prefix, compared on letters and digits only (``project_key``);
* year, recipient country (both known) and flow type (commitment or disbursement);
* and the blocks' US-dollar totals agree within ``CRS_TOLERANCE`` (10 %: the CRS converts at DAC
  rates, this project at IMF annual rates), every row having a USD value.

The **IATI rows count** (transactions with dates, sub-national locations and implementers; the CRS
gives a yearly row per project); each CRS row points at the block's first IATI row.

A row that a rule would point at but which is itself a duplicate is resolved to the row that
counts, so ``duplicate_of`` always names a counted row.

The ledger (``duplicate_links``) holds per excluded row: its id and stream, the counted row's id
and stream, the rule, a readable detail, and the excluded USD. Raw totals minus the ledger's USD
are the de-duplicated totals, exactly.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    inspect,
    select,
)

from data_sources import store
from data_sources.errors import LoadError
from data_sources.store import allocations

A = allocations.c
RULE_GRANT_IATI = "360giving-iati"
RULE_IATI_CRS = "iati-crs"
GRANT_TOLERANCE = 0.005  # relative; amounts in the same currency
GRANT_TOLERANCE_UNITS = 1.0  # and at least one unit of the currency (rounding to whole pounds)
CRS_TOLERANCE = 0.10  # relative, between USD totals of a CRS block and an IATI block
MIN_PROJECT_KEY = 5  # shorter keys ("1", "A12") say too little to tie two records together
DONORS_ENV_VAR = "FUNDATLAS_DAC_DONORS"
DONORS_FILE = Path(__file__).resolve().parent / "data" / "dac_donors.csv"
_GRANT_FLOWS = ("commitment", "disbursement")
_CRS_FLOWS = ("commitment", "disbursement")
_CHUNK = 5000

duplicate_links = Table(
    "duplicate_links",
    store.metadata,
    Column("duplicate_row", Text, primary_key=True),  # the excluded row, source:record_id:alloc
    Column("source", String(16), nullable=False),
    Column("counted_row", Text, nullable=False),  # the row that counts instead
    Column("counted_source", String(16), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("amount_usd", Float(precision=53)),  # the excluded USD (None: the row has no USD value)
)


# --------------------------------------------------------------------------- ids and keys


def row_ref(source: str, record_id: str, alloc: int) -> str:
    """The id a ``duplicate_of`` holds: ``{source}:{record_id}:{alloc}``."""
    return f"{source}:{record_id}:{int(alloc)}"


def split_ref(ref: str) -> tuple[str, str, int]:
    """(source, record_id, alloc) of a ``row_ref``."""
    source, rest = ref.split(":", 1)
    record_id, alloc = rest.rsplit(":", 1)
    return source, record_id, int(alloc)


_IATI_SUFFIX = re.compile(r"#[tb]\d+")
_CRS_KEY = re.compile(r"(?P<id>.+)-(?:\d{4}|na)-[0-9a-f]{16}(?:~\d+)?#[cd]")
_DAC_REF = re.compile(r"(?:XM-)?DAC-(\d+)(?:-.*)?", re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def iati_activity_id(record_id: str) -> str | None:
    """The IATI activity identifier of an IATI ``record_id`` (``{identifier}#t{n}`` or ``#b{n}``)."""
    head, sep, tail = record_id.rpartition("#")
    return head if sep and head and _IATI_SUFFIX.fullmatch("#" + tail) else None


def crs_project_id(record_id: str) -> str | None:
    """The project id a CRS ``record_id`` carries (its ``CRSid``); None for rows keyed by digest only."""
    m = _CRS_KEY.fullmatch(record_id)
    return m["id"] if m and not record_id.startswith("crs-") else None


def project_key(text: str | None) -> str | None:
    """A project id compared on letters and digits only, upper case; None when too short to trust."""
    if not text:
        return None
    key = _NOT_ALNUM.sub("", text.upper())
    return key if len(key) >= MIN_PROJECT_KEY else None


def iati_project_keys(record_id: str, funder_id: str | None) -> set[str]:
    """Keys an IATI row's project may appear under in the CRS: the activity identifier, and that
    identifier without the funder's org-ref prefix (``DE-1-201462044`` -> ``201462044``)."""
    identifier = iati_activity_id(record_id)
    if identifier is None:
        return set()
    keys = {project_key(identifier)}
    if funder_id and identifier.upper().startswith(funder_id.upper() + "-"):
        keys.add(project_key(identifier[len(funder_id) + 1 :]))
    return {k for k in keys if k}


@cache
def _donor_table(user_file: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for path in [DONORS_FILE, *([Path(user_file)] if user_file else [])]:  # the user's rows win
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                missing = {"org_ref", "dac_donor_code"} - set(reader.fieldnames or [])
                if missing:
                    raise LoadError(str(path), f"missing columns {sorted(missing)}; expected org_ref, dac_donor_code")
                for line, row in enumerate(reader, start=2):
                    ref, code = (row["org_ref"] or "").strip(), (row["dac_donor_code"] or "").strip()
                    if not ref or not code.isdigit():
                        raise LoadError(str(path), f"need an org ref and a numeric DAC donor code, got {ref!r}, "
                                        f"{code!r}", record=f"line {line}", field="dac_donor_code")
                    table[ref.upper()] = code
        except OSError as exc:
            raise LoadError(str(path), f"cannot read: {exc}") from exc
    return table


def dac_donor_code(org_ref: str | None) -> str | None:
    """The OECD DAC donor code an org ref stands for: ``XM-DAC-5``/``XM-DAC-5-7``/``DAC-5`` -> ``5``,
    else the donor table (``DE-1`` -> ``5``); None when unknown."""
    if not org_ref:
        return None
    ref = org_ref.strip()
    m = _DAC_REF.fullmatch(ref)
    if m:
        return str(int(m[1]))
    return _donor_table(os.environ.get(DONORS_ENV_VAR, "").strip()).get(ref.upper())


def amounts_agree(a: float, b: float, tolerance: float, units: float = 0.0) -> bool:
    """Same sign, and within ``tolerance`` of the larger (or ``units``, whichever is larger)."""
    if (a < 0) != (b < 0):
        return False
    return abs(a - b) <= max(tolerance * max(abs(a), abs(b)), units)


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class Link:
    row_id: int  # the store's row id of the excluded row (for the update only)
    ref: str  # the excluded row
    counted_ref: str  # the row that counts instead
    rule: str
    detail: str
    amount_usd: float | None


@dataclass(frozen=True)
class Grant:
    """A 360Giving or IATI record as the ``360giving-iati`` rule sees it."""

    record_id: str
    flow_type: str
    amount: float


def match_grants(pairs: Iterable[tuple[Grant, Grant]]) -> list[tuple[Grant, Grant]]:
    """One-to-one (grant, IATI record) matches among candidate pairs with equal funder, recipient,
    currency and year: amounts within tolerance; a commitment before a disbursement, then the
    closest amount, then ids (so the result does not depend on the order of ``pairs``)."""
    agreeing = [
        (g, i) for g, i in pairs
        if i.flow_type in _GRANT_FLOWS and amounts_agree(g.amount, i.amount, GRANT_TOLERANCE, GRANT_TOLERANCE_UNITS)
    ]
    agreeing.sort(key=lambda p: (_GRANT_FLOWS.index(p[1].flow_type), abs(p[0].amount - p[1].amount),
                                 p[0].record_id, p[1].record_id))
    used_grants: set[str] = set()
    used_iati: set[str] = set()
    matched = []
    for grant, iati in agreeing:
        if grant.record_id in used_grants or iati.record_id in used_iati:
            continue
        used_grants.add(grant.record_id)
        used_iati.add(iati.record_id)
        matched.append((grant, iati))
    return matched


@dataclass(frozen=True)
class Row:
    row_id: int
    ref: str
    alloc: int
    country: str | None
    usd: float | None
    amount: float | None = None


def pair_rows(counted: Sequence[Row], duplicates: Sequence[Row]) -> list[tuple[Row, Row]] | None:
    """(duplicate row, counted row) for each row of a duplicate record: the counted record's first
    row in the same country, else its first row when it names no country; None when the places
    disagree (a duplicate row in a country the counted record does not name)."""
    ordered = sorted(counted, key=lambda r: r.alloc)
    if not ordered:
        return None
    by_country: dict[str, Row] = {}
    for row in ordered:
        if row.country:
            by_country.setdefault(row.country, row)
    pairs = []
    for row in sorted(duplicates, key=lambda r: r.alloc):
        target = by_country.get(row.country) if row.country else None
        if target is None:
            if row.country and by_country:
                return None
            target = ordered[0]
        pairs.append((row, target))
    return pairs


def _grant_side(source: str, flows: Sequence[str] | None):
    """The first row of each record (its record-level fields) that the rule can compare."""
    where = [A.source == source, A.alloc == 0, A.funder_id.is_not(None), A.recipient_id.is_not(None),
             A.currency.is_not(None), A.year.is_not(None)]
    if flows:
        where.append(A.flow_type.in_(flows))
    funder, recipient = func.upper(A.funder_id), func.upper(A.recipient_id)
    # Grouped, so SQLite materialises the side and joins through an automatic index, not a loop.
    return (select(A.record_id.label("record_id"), funder.label("funder"), recipient.label("recipient"),
                   A.currency.label("currency"), A.year.label("year"), A.flow_type.label("flow_type"))
            .where(*where).group_by(A.record_id, funder, recipient, A.currency, A.year, A.flow_type).subquery())


def _rows_of(conn: Connection, source: str, record_ids: Iterable[str]) -> dict[str, list[Row]]:
    ids = sorted(set(record_ids))
    found: dict[str, list[Row]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        query = select(A.row_id, A.record_id, A.alloc, A.country_iso3, A.amount_usd, A.amount).where(
            A.source == source, A.record_id.in_(ids[start : start + _CHUNK]))
        for row_id, record_id, alloc, country, usd, amount in conn.execute(query):
            found[record_id].append(Row(row_id, row_ref(source, record_id, alloc), alloc, country, usd, amount))
    return found


def _record_amount(rows: Sequence[Row]) -> float | None:
    return None if not rows or any(r.amount is None for r in rows) else sum(r.amount for r in rows)  # type: ignore[misc]


def grant_iati_links(conn: Connection) -> list[Link]:
    """Links of the ``360giving-iati`` rule (see the module docstring)."""
    g = _grant_side("360giving", None)
    i = _grant_side("iati", _GRANT_FLOWS)
    candidates = conn.execute(
        select(g.c.record_id, g.c.flow_type, i.c.record_id, i.c.flow_type, g.c.currency)
        .select_from(g.join(i, and_(g.c.funder == i.c.funder, g.c.recipient == i.c.recipient,
                                    g.c.currency == i.c.currency, g.c.year == i.c.year)))
    ).all()
    if not candidates:
        return []
    grant_rows = _rows_of(conn, "360giving", (c[0] for c in candidates))
    iati_rows = _rows_of(conn, "iati", (c[2] for c in candidates))
    pairs = []
    for grant_id, grant_flow, iati_id, iati_flow, _currency in candidates:
        grant_amount, iati_amount = _record_amount(grant_rows[grant_id]), _record_amount(iati_rows[iati_id])
        if grant_amount is None or iati_amount is None:
            continue
        if pair_rows(grant_rows[grant_id], iati_rows[iati_id]) is None:
            continue  # the places disagree
        pairs.append((Grant(grant_id, grant_flow, grant_amount), Grant(iati_id, iati_flow, iati_amount)))
    currency = {(c[0], c[2]): c[4] for c in candidates}
    links = []
    for grant, iati in match_grants(pairs):
        detail = (f"IATI {iati.flow_type} {iati.amount:,.2f} and 360Giving grant {grant.amount:,.2f} "
                  f"{currency[(grant.record_id, iati.record_id)]}: same funder, recipient and year")
        for duplicate, target in pair_rows(grant_rows[grant.record_id], iati_rows[iati.record_id]) or []:
            links.append(Link(duplicate.row_id, duplicate.ref, target.ref, RULE_GRANT_IATI, detail, duplicate.usd))
    return links


_keys = MetaData()
# Derived keys of the iati-crs candidates, for an indexed join in the database.
_crs_keys = Table(
    "fundatlas_crs_keys",
    _keys,
    Column("row_id", Integer, nullable=False),
    Column("side", String(1), nullable=False),  # c: CRS, i: IATI
    Column("ref", Text, nullable=False),
    Column("donor", String(16), nullable=False),
    Column("project", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("country", String(3), nullable=False),
    Column("flow", String(16), nullable=False),
    Column("usd", Float(precision=53)),
    prefixes=["TEMPORARY"],
)
_BLOCK = ("donor", "project", "year", "country", "flow")
Index("ix_fundatlas_crs_keys", *(_crs_keys.c[name] for name in _BLOCK))
_KEY_COLUMNS = (A.row_id, A.record_id, A.alloc, A.funder_id, A.year, A.country_iso3, A.flow_type, A.amount_usd)
_KEY_FILTER = (A.country_iso3.is_not(None), A.year.is_not(None), A.flow_type.in_(_CRS_FLOWS))


def _stream(conn: Connection, query) -> Iterator:
    # A server-side cursor on PostgreSQL, so a million candidate rows are not held in memory at once.
    return conn.execute(query.execution_options(stream_results=True, yield_per=_CHUNK))


def _crs_side(conn: Connection) -> Iterator[tuple]:
    """Key tuples (``_crs_keys`` column order) of the CRS rows with a project id, a DAC donor, a
    country and a year."""
    funders = {f: code for (f,) in conn.execute(
        select(A.funder_id).where(A.source == "oecd_crs", A.funder_id.is_not(None)).distinct())
        if (code := dac_donor_code(f))}
    if not funders:
        return
    query = select(*_KEY_COLUMNS).where(A.source == "oecd_crs", A.funder_id.in_(list(funders)),
                                        ~A.record_id.like("crs-%"), *_KEY_FILTER)
    for row_id, record_id, alloc, funder, year, country, flow, usd in _stream(conn, query):
        key = project_key(crs_project_id(record_id))
        if key:
            yield (row_id, "c", row_ref("oecd_crs", record_id, alloc), funders[funder], key, year, country, flow, usd)


def _iati_side(conn: Connection, wanted: set[tuple[str, str]]) -> Iterator[tuple]:
    """Key tuples of the IATI rows whose (DAC donor, project key) is in ``wanted``."""
    donors = {donor for donor, _key in wanted}
    funders = {f: code for (f,) in conn.execute(
        select(A.funder_id).where(A.source == "iati", A.funder_id.is_not(None)).distinct())
        if (code := dac_donor_code(f)) in donors}
    if not funders:
        return
    query = select(*_KEY_COLUMNS).where(A.source == "iati", A.funder_id.in_(list(funders)), *_KEY_FILTER)
    for row_id, record_id, alloc, funder, year, country, flow, usd in _stream(conn, query):
        donor = funders[funder]
        for key in iati_project_keys(record_id, funder):
            if (donor, key) in wanted:
                yield (row_id, "i", row_ref("iati", record_id, alloc), donor, key, year, country, flow, usd)


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _insert_keys(conn: Connection, rows: Iterable[tuple]) -> Iterator[tuple]:
    """Write key tuples to the temporary table in batches (the driver's executemany of tuples, no
    per-row parameter dicts); yields each row as it is taken."""
    mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    names = [c.name for c in _crs_keys.columns]
    values = ", ".join([mark or "?"] * len(names))
    # Fixed table and column names; every value is a bound parameter.
    statement = f"INSERT INTO {_crs_keys.name} ({', '.join(names)}) VALUES ({values})"  # noqa: S608
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        yield row
        if len(batch) >= _CHUNK:
            _flush(conn, statement, names, batch, mark)
            batch = []
    if batch:
        _flush(conn, statement, names, batch, mark)


def _flush(conn: Connection, statement: str, names: list[str], batch: list[tuple], mark: str | None) -> None:
    if mark is None:  # a driver with named parameters: SQLAlchemy's own insert
        conn.execute(_crs_keys.insert(), [dict(zip(names, row, strict=True)) for row in batch])
    else:
        conn.exec_driver_sql(statement, batch)


def iati_crs_links(conn: Connection) -> list[Link]:
    """Links of the ``iati-crs`` rule (see the module docstring)."""
    _crs_keys.drop(conn, checkfirst=True)
    _crs_keys.create(conn)
    try:
        wanted = {(row[3], row[4]) for row in _insert_keys(conn, _crs_side(conn))}
        if not wanted:
            return []  # the common case: no CRS row with a project id
        if not sum(1 for _ in _insert_keys(conn, _iati_side(conn, wanted))):  # all of them, then flush
            return []
        index_columns = [_crs_keys.c[name] for name in _BLOCK]
        t, other = _crs_keys, _crs_keys.alias("other")
        same_block = and_(*(other.c[name] == t.c[name] for name in _BLOCK))
        query = (select(t.c.side, t.c.row_id, t.c.ref, t.c.usd, *index_columns)
                 .where(exists().where(same_block, other.c.side != t.c.side))
                 .order_by(*index_columns, t.c.side, t.c.ref))
        blocks: dict[tuple, dict[str, list[Row]]] = defaultdict(lambda: {"c": [], "i": []})
        for side, row_id, ref, usd, *block in conn.execute(query):
            blocks[tuple(block)][side].append(Row(row_id, ref, 0, block[3], usd))
    finally:
        _crs_keys.drop(conn, checkfirst=True)
    return [link for block, sides in blocks.items() for link in _crs_block_links(block, sides["c"], sides["i"])]


def _crs_block_links(block: tuple, crs: list[Row], iati: list[Row]) -> list[Link]:
    if any(r.usd is None for r in crs + iati):
        return []  # a total that cannot be compared is no evidence
    crs_usd, iati_usd = sum(r.usd for r in crs), sum(r.usd for r in iati)  # type: ignore[misc]
    if not amounts_agree(crs_usd, iati_usd, CRS_TOLERANCE):
        return []
    donor, project, year, country, flow = block
    counted = min(iati, key=lambda r: r.ref)
    detail = (f"DAC donor {donor}, project {project}, {year}, {country}, {flow}: {len(crs)} CRS row(s) "
              f"USD {crs_usd:,.2f}, {len(iati)} IATI row(s) USD {iati_usd:,.2f}")
    return [Link(r.row_id, r.ref, counted.ref, RULE_IATI_CRS, detail, r.usd) for r in crs]


def resolve(links: Sequence[Link]) -> list[Link]:
    """One link per excluded row (the first rule's), each pointing at a row that is not excluded."""
    first: dict[str, Link] = {}
    for link in links:
        first.setdefault(link.ref, link)
    resolved = []
    for link in first.values():
        target, seen = link.counted_ref, {link.ref}
        while target in first and target not in seen:  # follow the chain to the row that counts
            seen.add(target)
            target = first[target].counted_ref
        if target in seen:
            continue  # a cycle would exclude every row of it: keep them all counted
        resolved.append(link if target == link.counted_ref else Link(
            link.row_id, link.ref, target, link.rule, f"{link.detail} (via {link.counted_ref})", link.amount_usd))
    return resolved


def find_links(conn: Connection) -> list[Link]:
    """Every link the rules find, in rule order, chains resolved; reads only."""
    return resolve([*grant_iati_links(conn), *iati_crs_links(conn)])


# --------------------------------------------------------------------------- the pass


def link_duplicates(conn: Connection) -> dict:
    """Recompute every duplicate link inside the caller's transaction (idempotent: a second run
    changes nothing); ``store.mark_changed`` when a link or the ledger changed. Returns counts."""
    duplicate_links.create(conn, checkfirst=True)
    links = find_links(conn)
    wanted = {link.row_id: link.counted_ref for link in links}
    current = dict(conn.execute(select(A.row_id, A.duplicate_of).where(A.duplicate_of.is_not(None))).all())
    updates = [{"r": row_id, "d": ref} for row_id, ref in wanted.items() if current.get(row_id) != ref]
    updates += [{"r": row_id, "d": None} for row_id in current if row_id not in wanted]
    if updates:
        statement = allocations.update().where(A.row_id == bindparam("r")).values(duplicate_of=bindparam("d"))
        for start in range(0, len(updates), _CHUNK):
            conn.execute(statement, updates[start : start + _CHUNK])
    ledger = {
        (link.ref, link.ref.split(":", 1)[0], link.counted_ref, link.counted_ref.split(":", 1)[0], link.rule,
         link.detail, link.amount_usd)
        for link in links
    }
    columns = [c.name for c in duplicate_links.columns]
    stored = {tuple(r) for r in conn.execute(select(*duplicate_links.columns))}
    ledger_changed = stored != ledger
    if ledger_changed:
        conn.execute(duplicate_links.delete())
        rows = [dict(zip(columns, entry, strict=True)) for entry in sorted(ledger, key=lambda e: e[0])]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(duplicate_links.insert(), rows[start : start + _CHUNK])
    changed = bool(updates) or ledger_changed
    if changed:
        store.mark_changed(conn)
    by_rule: dict[str, dict[str, float]] = {}
    for link in links:
        entry = by_rule.setdefault(link.rule, {"rows": 0, "usd": 0.0})
        entry["rows"] += 1
        entry["usd"] += link.amount_usd or 0.0
    return {
        "links": len(links),
        "usd_excluded": sum(link.amount_usd or 0.0 for link in links),
        "by_rule": by_rule,
        "rows_updated": len(updates),
        "changed": changed,
    }


# --------------------------------------------------------------------------- reading the ledger


def stream_totals(conn: Connection) -> dict[str, dict]:
    """Per stream: raw USD (every row), USD counted once, excluded USD and rows."""
    query = select(
        A.source,
        func.coalesce(func.sum(A.amount_usd), 0.0),
        func.coalesce(func.sum(case((A.duplicate_of.is_(None), A.amount_usd), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((A.duplicate_of.is_not(None), A.amount_usd), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((A.duplicate_of.is_not(None), 1), else_=0)), 0),
    ).group_by(A.source).order_by(A.source)
    return {
        source: {"raw_usd": float(raw), "counted_usd": float(counted), "excluded_usd": float(excluded),
                 "excluded_rows": int(rows)}
        for source, raw, counted, excluded, rows in conn.execute(query)
    }


def ledger(engine: Engine, limit: int | None = 100) -> dict:
    """The double-count ledger: raw vs counted totals per stream, and the excluded rows (largest USD
    first, at most ``limit``; None for all) with the rule, the detail and the row that counts."""
    with engine.connect() as conn:
        streams = stream_totals(conn)
        excluded: list[dict] = []
        total = 0
        if inspect(conn).has_table(duplicate_links.name):
            L = duplicate_links.c
            total = conn.execute(select(func.count()).select_from(duplicate_links)).scalar_one()
            query = select(L.duplicate_row, L.source, L.counted_row, L.counted_source, L.rule, L.detail,
                           L.amount_usd).order_by(func.abs(func.coalesce(L.amount_usd, 0.0)).desc(), L.duplicate_row)
            if limit is not None:
                query = query.limit(int(limit))
            excluded = [dict(r) for r in conn.execute(query).mappings()]
    return {
        "streams": streams,
        "raw_usd": sum(s["raw_usd"] for s in streams.values()),
        "counted_usd": sum(s["counted_usd"] for s in streams.values()),
        "excluded_rows": total,
        "excluded": excluded,
    }
