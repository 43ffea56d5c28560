"""One identity per organisation across streams, built from the funders, recipients and implementers
of the allocations table.

``build_organisations(conn)`` takes every distinct (source, id, name) that the rows name — a *mention* —
and unites mentions into identities, in this order:

1. the same registered identifier (``orgids.parse_identifier``: org-id.guide ids, DAC codes written
   any of IATI's ways, IATI legacy refs), whatever the source;
2. the same source-local identifier within one source (``TF`` in IATI, a 3W sheet's own code);
3. the same name after ``orgids.name_key`` (case, accents, punctuation, "The", "Ltd", word order);
4. names one small typo apart (``orgids.near_names``: same words but one, which differs by one edit in
   a word of six letters or more).

Nothing ever unites two groups that hold different registered identifiers: the union-find refuses it.
When one name is used by groups with different identifiers (two charities called "Example Trust"),
the mentions of that name without any identifier join none of them and form their own identity.

Two tables on the store's metadata hold the result (rebuilt whole by each pass):

* ``organisations``: ``org_key`` (the registered identifier when there is one, e.g. ``GB-CHC-1159982``,
  else ``n:`` and the normalised name, e.g. ``n:example-trust``), ``display_name`` (the name used by the
  most rows; ties go to the longer name, then the alphabetically first), ``identifier`` and its
  ``identifier_kind``, ``registry`` (the org-id list's name), ``rows`` (allocation rows naming it, once
  per role) and ``sources``.
* ``organisation_aliases``: every raw id and name seen, with its ``org_key``, ``kind`` (``id`` or
  ``name``), the ``source`` that wrote it, its ``normalised`` form, whether an id is ``registered``,
  ``rows`` and, for names, ``bare_rows`` (rows where the name came without any id).
* ``organisation_mentions``: every (``role``, ``source``, ``party_id``, ``party_name``) the funder and
  recipient columns hold, exactly as written (NULLs and blanks too), with its ``org_key``: the exact
  join that gives each allocation row its parties' identities (``party_key``, ``mention_match``).

The lookups (``identity_of``, ``members``, ``member_clause``, ``display_names``, ``search``,
``profile_identifiers``) read those tables; on a store where the pass never ran they find nothing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    false,
    func,
    inspect,
    or_,
    select,
    tuple_,
)

from data_sources import orgids
from data_sources.filters import contains_pattern
from data_sources.store import allocations, mark_changed, metadata

organisations = Table(
    "organisations",
    metadata,
    Column("org_key", String(300), primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("identifier", String(300)),
    Column("identifier_kind", String(16)),
    Column("registry", Text),
    Column("rows", Integer, nullable=False),
    Column("sources", Text, nullable=False),
    Index("ux_organisations_identifier", "identifier", unique=True),
)

organisation_aliases = Table(
    "organisation_aliases",
    metadata,
    Column("alias_id", Integer, primary_key=True, autoincrement=True),
    Column("org_key", String(300), nullable=False),
    Column("kind", String(4), nullable=False),  # id | name
    Column("value", Text, nullable=False),  # exactly as the source wrote it
    Column("normalised", Text),
    Column("registered", Boolean, nullable=False, default=False),
    Column("source", String(16), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("bare_rows", Integer, nullable=False, default=0),
    Index("ix_organisation_aliases_org", "org_key"),
    Index("ix_organisation_aliases_value", "kind", "value"),
    Index("ix_organisation_aliases_normalised", "kind", "normalised"),
)

# One row: the digest of the last build, so an unchanged store is not rewritten (nor marked changed).
organisation_state = Table(
    "organisation_state",
    metadata,
    Column("state_id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
)

# The parties a row names, exactly as written, and their identity: allocations reach their identities by
# an exact, NULL-safe join on (role, source, party_id, party_name). Raw values are never indexed on
# PostgreSQL (hostile files hold values past its b-tree entry limit; it hash-joins this table instead);
# SQLite, which only loops over an index, gets one.
organisation_mentions = Table(
    "organisation_mentions",
    metadata,
    Column("mention_id", Integer, primary_key=True, autoincrement=True),
    Column("role", String(16), nullable=False),  # funder | recipient
    Column("source", String(16), nullable=False),
    Column("party_id", Text),
    Column("party_name", Text),
    Column("org_key", String(300), nullable=False),
    Column("rows", Integer, nullable=False),
    Index("ix_organisation_mentions_org", "role", "org_key"),
)
Index("ix_organisation_mentions_raw", organisation_mentions.c.role, organisation_mentions.c.source,
      organisation_mentions.c.party_id, organisation_mentions.c.party_name).ddl_if(dialect="sqlite")

TABLES = (organisations, organisation_aliases, organisation_mentions, organisation_state)
# The party columns of an allocation row, by role.
ROLES = {"funder": ("funder_id", "funder_name"), "recipient": ("recipient_id", "recipient_name")}
# Longer raw values (hostile or broken files) still count in their identity but get no alias row, which
# keeps every indexed value well under PostgreSQL's b-tree entry limit.
MAX_ALIAS_CHARS = 1000
# Fuzzy blocks larger than this are compared with rapidfuzz's cdist instead of pair by pair.
_CDIST_FROM = 64


# --- reading the mentions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Mention:
    source: str
    raw_id: str | None
    raw_name: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_parties(conn) -> list[tuple[str, str, str | None, str | None, int]]:
    """Rows per distinct (role, source, id, name) of the funder and recipient columns, as written."""
    A = allocations.c
    found = []
    for role, (id_name, name_name) in ROLES.items():
        id_col, name_col = A[id_name], A[name_name]
        found.extend((role, source, raw_id, raw_name, rows) for source, raw_id, raw_name, rows in conn.execute(
            select(A.source, id_col, name_col, func.count()).group_by(A.source, id_col, name_col)))
    return found


def _mention_of(source: str, raw_id: object, raw_name: object) -> Mention | None:
    mention = Mention(source, _text(raw_id), _text(raw_name))
    return mention if mention.raw_id or mention.raw_name else None


def read_mentions(conn, parties: list[tuple[str, str, str | None, str | None, int]] | None = None
                  ) -> Counter[Mention]:
    """Rows per distinct (source, id, name) over funders, recipients and implementers (``parties``:
    what ``read_parties`` gave, when already read)."""
    A = allocations.c
    found: Counter[Mention] = Counter()
    for _role, source, raw_id, raw_name, rows in (read_parties(conn) if parties is None else parties):
        mention = _mention_of(source, raw_id, raw_name)
        if mention:
            found[mention] += rows
    for source, raw_name, rows in conn.execute(
            select(A.source, A.implementer_name, func.count()).group_by(A.source, A.implementer_name)):
        if _text(raw_name):
            found[Mention(source, None, raw_name)] += rows
    return found


# --- grouping --------------------------------------------------------------------------------------
class _Groups:
    """Union-find over mentions; each root holds its registered identifier, and a union of two roots
    with different identifiers is refused."""

    def __init__(self, count: int, identifiers: Sequence[str | None]):
        self.parent = list(range(count))
        self.identifier = list(identifiers)
        self.refused = 0

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        ia, ib = self.identifier[ra], self.identifier[rb]
        if ia and ib and ia != ib:
            self.refused += 1
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.identifier[ra] = ia or ib
        return True

    def union_all(self, members: Iterable[int]) -> int:
        """Unite ``members`` unless their groups hold two different identifiers; then unite only the
        groups without one (an ambiguous name joins no identified group). Returns the unions made."""
        roots = sorted({self.find(m) for m in members})
        held = {self.identifier[r] for r in roots} - {None}
        if len(held) > 1:
            self.refused += 1
            roots = [r for r in roots if self.identifier[r] is None]
        return sum(self.union(roots[0], r) for r in roots[1:])


def fuzzy_pairs(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of distinct name keys that ``orgids.near_names`` accepts, found by blocking: two keys with
    the same words but one share the block "all their words but that one"."""
    blocks: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    for key in keys:
        words = key.split()
        if len(words) < orgids.FUZZY_MIN_WORDS:
            continue
        for i, word in enumerate(words):
            if len(word) >= orgids.FUZZY_MIN_WORD and word.isalpha():
                blocks[(*words[:i], *words[i + 1:])].append((word, key))
    pairs: set[tuple[str, str]] = set()
    for members in blocks.values():
        if len(members) < 2:
            continue
        # Typos in the first letter are not looked for: it keeps blocks small at 100k names.
        by_letter: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for word, key in members:
            by_letter[word[0]].append((word, key))
        for group in by_letter.values():
            pairs.update(_near_in_group(group))
    return sorted(pairs)


def _near_in_group(group: list[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    if len(group) < 2:
        return ()
    words = [w for w, _ in group]
    found = []
    if len(group) < _CDIST_FROM:
        candidates = ((i, j) for i in range(len(group)) for j in range(i + 1, len(group)))
        candidates = [(i, j) for i, j in candidates if DamerauLevenshtein.distance(
            words[i], words[j], score_cutoff=orgids.FUZZY_MAX_EDITS) <= orgids.FUZZY_MAX_EDITS]
    else:
        matrix = process.cdist(words, words, scorer=DamerauLevenshtein.distance,
                               score_cutoff=orgids.FUZZY_MAX_EDITS, workers=-1)
        rows, cols = (matrix <= orgids.FUZZY_MAX_EDITS).nonzero()
        candidates = [(i, j) for i, j in zip(rows.tolist(), cols.tolist(), strict=True) if i < j]
    for i, j in candidates:
        (wa, ka), (wb, kb) = group[i], group[j]
        if ka != kb and wa != wb and orgids.near_words(wa, wb):
            found.append((min(ka, kb), max(ka, kb)))
    return found


@dataclass
class Identity:
    org_key: str
    display_name: str
    identifier: orgids.Identifier | None
    mentions: list[tuple[Mention, int]] = field(default_factory=list)


def group_mentions(mentions: Counter[Mention]) -> tuple[list[Identity], dict[str, int]]:
    """The identities of ``mentions`` (pure: no store), and counts of what each stage did."""
    items = sorted(mentions.items(), key=lambda kv: (kv[0].source, kv[0].raw_id or "", kv[0].raw_name or ""))
    parsed = [orgids.parse_identifier(m.raw_id, m.source) for m, _ in items]
    groups = _Groups(len(items), [p.value if p and p.registered else None for p in parsed])
    stats = {"by_identifier": 0, "by_local_id": 0, "by_name": 0, "by_fuzzy_name": 0}

    by_registered: dict[str, list[int]] = defaultdict(list)
    by_local: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, ((mention, _rows), ident) in enumerate(zip(items, parsed, strict=True)):
        if ident and ident.registered:
            by_registered[ident.value].append(i)
        elif ident:
            by_local[(mention.source, ident.value)].append(i)
        key = orgids.name_key(mention.raw_name)
        if key:
            by_name[key].append(i)
    for members in by_registered.values():
        stats["by_identifier"] += groups.union_all(members)
    for local in sorted(by_local):
        stats["by_local_id"] += groups.union_all(by_local[local])
    for key in sorted(by_name):
        stats["by_name"] += groups.union_all(by_name[key])
    for a, b in fuzzy_pairs(by_name):
        stats["by_fuzzy_name"] += groups.union_all(by_name[a] + by_name[b])
    stats["refused"] = groups.refused

    members_of: dict[int, list[int]] = defaultdict(list)
    for i in range(len(items)):
        members_of[groups.find(i)].append(i)
    identities = [_identity([items[i] for i in idx], groups.identifier[root])
                  for root, idx in members_of.items()]
    _assign_keys(identities)
    return identities, stats


def _display_name(mentions: list[tuple[Mention, int]]) -> str | None:
    """The most used name, counting spellings of one normalised name together; within it the most used
    spelling. Ties: the longer (fuller) name, then the alphabetically first."""
    spellings: Counter[str] = Counter()
    for mention, rows in mentions:
        if mention.raw_name:
            spellings[" ".join(mention.raw_name.split())] += rows
    if not spellings:
        return None
    by_name: Counter[str] = Counter()
    for spelling, rows in spellings.items():
        by_name[orgids.normalise_name(spelling) or spelling] += rows

    def rank(spelling: str) -> tuple:
        name = orgids.normalise_name(spelling) or spelling
        return -by_name[name], -len(name), name, -spellings[spelling], -len(spelling), spelling

    return min(spellings, key=rank)


def _identity(mentions: list[tuple[Mention, int]], identifier: str | None) -> Identity:
    ident = orgids.parse_identifier(identifier) if identifier else None  # canonical forms parse to themselves
    name = _display_name(mentions)
    if name is None:
        name = identifier or next(m.raw_id for m, _ in mentions if m.raw_id)
    return Identity("", name, ident, mentions)


def _slug(text: str) -> str:
    slug = re.sub(r"\s+", "-", text.strip())
    return slug if len(slug) <= 120 else slug[:100] + "#" + hashlib.sha1(slug.encode()).hexdigest()[:12]


def _assign_keys(identities: list[Identity]) -> None:
    """``org_key``: the registered identifier, else ``n:`` + the name key, else ``l:source:id``;
    a clash (two unidentified groups with one name) gets ``~2``, ``~3``... in a stable order."""
    identities.sort(key=lambda o: (-sum(r for _, r in o.mentions), o.display_name,
                                   min((m.source, m.raw_id or "", m.raw_name or "") for m, _ in o.mentions)))
    taken: set[str] = set()
    for org in identities:
        if org.identifier:
            key = org.identifier.value
        else:
            name = orgids.normalise_name(org.display_name)
            if name:
                key = "n:" + _slug(name)
            else:
                source, raw_id = min((m.source, m.raw_id or "") for m, _ in org.mentions)
                if len(raw_id) > 100:
                    raw_id = raw_id[:80] + "#" + hashlib.sha1(raw_id.encode()).hexdigest()[:12]
                key = f"l:{source}:{raw_id}"
        base, n = key, 1
        while key in taken:
            n += 1
            key = f"{base}~{n}"
        taken.add(key)
        org.org_key = key


# --- the pass --------------------------------------------------------------------------------------
def _rows_for(identities: list[Identity]) -> tuple[list[dict], list[dict]]:
    prefix_names = {p.code: p.name for p in orgids.prefixes().values()}
    orgs, aliases = [], []
    for org in identities:
        ident = org.identifier
        orgs.append({
            "org_key": org.org_key,
            "display_name": org.display_name,
            "identifier": ident.value if ident else None,
            "identifier_kind": ident.kind if ident else None,
            "registry": prefix_names.get(ident.prefix or "") if ident else None,
            "rows": sum(r for _, r in org.mentions),
            "sources": ",".join(sorted({m.source for m, _ in org.mentions})),
        })
        found: dict[tuple[str, str, str], dict] = {}
        for mention, rows in org.mentions:
            if mention.raw_id and len(mention.raw_id) <= MAX_ALIAS_CHARS:
                parsed = orgids.parse_identifier(mention.raw_id, mention.source)
                alias = found.setdefault(("id", mention.source, mention.raw_id), {
                    "org_key": org.org_key, "kind": "id", "value": mention.raw_id, "source": mention.source,
                    "normalised": parsed.value, "registered": parsed.registered, "rows": 0, "bare_rows": 0})
                alias["rows"] += rows
            if mention.raw_name and len(mention.raw_name) <= MAX_ALIAS_CHARS:
                alias = found.setdefault(("name", mention.source, mention.raw_name), {
                    "org_key": org.org_key, "kind": "name", "value": mention.raw_name, "source": mention.source,
                    "normalised": orgids.normalise_name(mention.raw_name), "registered": False,
                    "rows": 0, "bare_rows": 0})
                alias["rows"] += rows
                if not mention.raw_id:
                    alias["bare_rows"] += rows
        aliases.extend(found[k] for k in sorted(found))
    return orgs, aliases


def _mention_rows(identities: list[Identity], parties: list[tuple[str, str, str | None, str | None, int]]
                  ) -> list[dict]:
    """One row per raw (role, source, id, name) that names someone, with its identity's key."""
    key_of = {mention: org.org_key for org in identities for mention, _rows in org.mentions}
    rows = []
    for role, source, raw_id, raw_name, count in sorted(
            parties, key=lambda p: (p[0], p[1], p[2] is not None, p[2] or "", p[3] is not None, p[3] or "")):
        mention = _mention_of(source, raw_id, raw_name)
        if mention:
            rows.append({"role": role, "source": source, "party_id": raw_id, "party_name": raw_name,
                         "org_key": key_of[mention], "rows": count})
    return rows


def _digest(*tables: list[dict]) -> str:
    h = hashlib.sha256()
    for rows in tables:
        for row in rows:  # every row dict is built with its keys in one order
            h.update("\x1f".join(map(str, row.values())).encode() + b"\x1e")
        h.update(b"\0")
    return h.hexdigest()


def _insert_many(conn, table: Table, rows: list[dict]) -> None:
    """Insert ``rows`` in the caller's transaction; PostgreSQL gets COPY (about ten times faster at 100k)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    # Table and column names come from this module's own metadata, never from input.
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def build_organisations(conn) -> dict:
    """Rebuild the organisation identities from the allocations, inside the caller's transaction.

    Idempotent: when the result is what is stored already nothing is written. Returns counts:
    organisations, aliases, registered (identities with a registered identifier), mentions, the unions
    each stage made, refused (unions refused because two identifiers differ), changed, seconds.
    """
    started = time.perf_counter()
    metadata.create_all(conn, tables=list(TABLES))
    parties = read_parties(conn)
    mentions = read_mentions(conn, parties)
    identities, stats = group_mentions(mentions)
    orgs, aliases = _rows_for(identities)
    mention_rows = _mention_rows(identities, parties)
    digest = _digest(orgs, aliases, mention_rows)
    stored = conn.execute(select(organisation_state.c.digest).where(organisation_state.c.state_id == 1)).scalar()
    changed = stored != digest
    if changed:
        conn.execute(delete(organisation_mentions))
        conn.execute(delete(organisation_aliases))
        conn.execute(delete(organisations))
        _insert_many(conn, organisations, orgs)
        _insert_many(conn, organisation_aliases, aliases)
        _insert_many(conn, organisation_mentions, mention_rows)
        now = datetime.now(UTC)
        if stored is None:
            conn.execute(organisation_state.insert().values(state_id=1, digest=digest, built_at=now))
        else:
            conn.execute(organisation_state.update().where(organisation_state.c.state_id == 1)
                         .values(digest=digest, built_at=now))
        mark_changed(conn)
    return {
        "organisations": len(orgs),
        "aliases": len(aliases),
        "party_mentions": len(mention_rows),
        "registered": sum(1 for o in orgs if o["identifier"]),
        "mentions": len(mentions),
        **stats,
        "changed": changed,
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- lookups ---------------------------------------------------------------------------------------
def _ready(conn) -> bool:
    return inspect(conn).has_table(organisation_aliases.name)


def mentions_ready(conn) -> bool:
    """Whether the pass has made the table that gives allocation rows their identities."""
    return inspect(conn).has_table(organisation_mentions.name)


def _same(left: ColumnElement, right: ColumnElement, dialect: str) -> ColumnElement[bool]:
    """``left`` equals ``right``, NULL equal to NULL only. PostgreSQL cannot hash ``IS NOT DISTINCT
    FROM``, so it gets an equality on coalesced values (hashable) and the NULLs compared apart."""
    if dialect == "postgresql":
        return and_(func.coalesce(left, "") == func.coalesce(right, ""), left.is_(None) == right.is_(None))
    return left.is_not_distinct_from(right)  # SQLite: ``IS``, which uses the index


def mention_match(mentions, role: str, table: Table, dialect: str) -> ColumnElement[bool]:
    """The join condition between ``mentions`` (``organisation_mentions`` or an alias of it) and the
    ``table`` row whose ``role`` (funder, recipient) it names: exact and NULL-safe."""
    id_name, name_name = ROLES[role]
    m = mentions.c
    return and_(m.role == role, m.source == table.c.source, _same(m.party_id, table.c[id_name], dialect),
                _same(m.party_name, table.c[name_name], dialect))


def raw_party_key(table: Table, role: str) -> ColumnElement:
    """A party's key where no identity is known: its id where it has one, else its name."""
    id_name, name_name = ROLES[role]
    return func.coalesce(table.c[id_name], table.c[name_name])


def party_key(mentions, role: str, table: Table) -> ColumnElement:
    """A row's party key, with ``mentions`` outer-joined by ``mention_match``: its identity's
    ``org_key``, else (a row the pass has not seen) its id, else its name."""
    return func.coalesce(mentions.c.org_key, raw_party_key(table, role))


# Above this many raw values, ``identity_match`` leaves out its cheap first test.
MAX_PREFILTER_VALUES = 5000


def mention_values(conn, role: str, org_keys: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """The raw ids and names these identities' ``role`` mentions hold (None when there are too many)."""
    M = organisation_mentions.c
    rows = conn.execute(select(M.party_id, M.party_name).where(M.role == role, M.org_key.in_(list(org_keys)))
                        .limit(MAX_PREFILTER_VALUES + 1)).all()
    if len(rows) > MAX_PREFILTER_VALUES:
        return None
    return sorted({i for i, _ in rows if i is not None}), sorted({n for _, n in rows if n is not None})


def _exact_tuple(source: ColumnElement, party_id: ColumnElement, party_name: ColumnElement) -> list[ColumnElement]:
    # NULL-safe and hashable: each value coalesced, and whether it was NULL beside it.
    return [source, func.coalesce(party_id, ""), party_id.is_(None),
            func.coalesce(party_name, ""), party_name.is_(None)]


def identity_match(role: str, org_keys: Sequence[str], table: Table,
                   values: tuple[list[str], list[str]] | None = None) -> ColumnElement[bool]:
    """Rows of ``table`` whose ``role`` is one of the identities ``org_keys``: their exact (source, id,
    name) is one of those identities' mentions. An uncorrelated row-value ``IN``: both databases read
    the few mentions once and hash them (a correlated EXISTS costs PostgreSQL a JIT compile per query
    on its estimate alone).

    ``values`` (``mention_values``): the ids and names those mentions hold; a row without one of them
    cannot match, and testing that first spares most rows the tuple."""
    id_name, name_name = ROLES[role]
    M = organisation_mentions.c
    mentions = select(*_exact_tuple(M.source, M.party_id, M.party_name)).where(
        M.role == role, M.org_key.in_(list(org_keys)))
    match = tuple_(*_exact_tuple(table.c.source, table.c[id_name], table.c[name_name])).in_(mentions)
    if values is None:
        return match
    ids, names = values
    if not ids and not names:
        return false()
    return and_(or_(table.c[id_name].in_(ids), table.c[name_name].in_(names)), match)


def identity_of(conn, value: str | None) -> str | None:
    """The ``org_key`` for a raw id or name (or an org_key), None when unknown.

    Tried in order: an org_key; a registered identifier in any spelling (``gb-chc-1159982``,
    ``DAC-1601``); a raw id as a source wrote it; a raw name; a normalised name. A value shared by
    several identities gives the one with the most rows.
    """
    text = (value or "").strip()
    if not text or not _ready(conn):
        return None
    OC, AC = organisations.c, organisation_aliases.c
    if conn.execute(select(OC.org_key).where(OC.org_key == text)).scalar() is not None:
        return text
    parsed = orgids.parse_identifier(text)
    if parsed and parsed.registered:
        found = conn.execute(select(OC.org_key).where(OC.identifier == parsed.value)).scalar()
        if found is not None:
            return found
    candidates = [(AC.kind == "id") & (AC.value == text), (AC.kind == "name") & (AC.value == text)]
    name = orgids.normalise_name(text)
    if name:
        candidates.append((AC.kind == "name") & (AC.normalised == name))
    for condition in candidates:
        found = conn.execute(select(AC.org_key).where(condition).group_by(AC.org_key)
                             .order_by(func.sum(AC.rows).desc(), AC.org_key).limit(1)).scalar()
        if found is not None:
            return found
    return None


def members(conn, org_keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Every raw id and every raw name of these identities, as the sources wrote them (sorted).

    A name can belong to several identities (two charities called "Example Trust"); to select exactly
    one identity's rows use ``member_clause``.
    """
    keys = sorted(set(org_keys))
    if not keys or not _ready(conn):
        return [], []
    AC = organisation_aliases.c
    rows = conn.execute(select(AC.kind, AC.value).where(AC.org_key.in_(keys)).distinct()).all()
    return sorted({v for k, v in rows if k == "id"}), sorted({v for k, v in rows if k == "name"})


def member_clause(conn, org_keys: Iterable[str], id_col, name_col, source_col=None) -> ColumnElement[bool]:
    """A condition on an allocations-like table that holds for exactly the rows of these identities.

    Rows with an id match by id (registered ids from any source; local ids only from their own source
    when ``source_col`` is given); rows without an id match by a name these identities use without
    one. ``id_col`` may be None (``implementer_name``): then any of their names matches.
    """
    keys = sorted(set(org_keys))
    if not keys or not _ready(conn):
        return false()
    AC = organisation_aliases.c
    rows = conn.execute(select(AC.kind, AC.value, AC.source, AC.registered, AC.bare_rows)
                        .where(AC.org_key.in_(keys))).all()
    if id_col is None:
        names = sorted({v for k, v, _s, _r, _b in rows if k == "name"})
        return name_col.in_(names) if names else false()
    registered = sorted({v for k, v, _s, r, _b in rows if k == "id" and (r or source_col is None)})
    local: dict[str, set[str]] = defaultdict(set)
    for kind, value, source, is_registered, _bare in rows:
        if kind == "id" and not is_registered and source_col is not None:
            local[source].add(value)
    bare_names = sorted({v for k, v, _s, _r, b in rows if k == "name" and b > 0})
    parts: list[ColumnElement[bool]] = []
    if registered:
        parts.append(id_col.in_(registered))
    parts.extend(and_(source_col == source, id_col.in_(sorted(values))) for source, values in sorted(local.items()))
    if bare_names:
        parts.append(and_(id_col.is_(None), name_col.in_(bare_names)))
    return or_(*parts) if parts else false()


def display_names(conn, org_keys: Iterable[str]) -> dict[str, str]:
    keys = sorted(set(org_keys))
    if not keys or not _ready(conn):
        return {}
    OC = organisations.c
    return dict(conn.execute(select(OC.org_key, OC.display_name).where(OC.org_key.in_(keys))).all())


def search(conn, text: str, limit: int = 20) -> list[dict]:
    """Identities whose names or ids contain ``text`` (normalised), the most used first: for dropdowns.
    Each: org_key, display_name, identifier, rows."""
    if not _ready(conn):
        return []
    OC, AC = organisations.c, organisation_aliases.c
    name = orgids.normalise_name(text) or ""
    ident = orgids.clean_identifier(text) or ""
    query = select(OC.org_key, OC.display_name, OC.identifier, OC.rows)
    if name or ident:
        conditions = []
        if name:
            conditions.append((AC.kind == "name") & AC.normalised.like(contains_pattern(name), escape="\\"))
        if ident:
            conditions.append((AC.kind == "id") & AC.normalised.like(contains_pattern(ident), escape="\\"))
        hits = select(AC.org_key).where(or_(*conditions))
        query = query.where(OC.org_key.in_(hits))
    query = query.order_by(OC.rows.desc(), OC.display_name, OC.org_key).limit(max(1, min(int(limit), 1000)))
    return [dict(row._mapping) for row in conn.execute(query)]


def profile_identifiers(conn, org_key: str) -> dict | None:
    """Everything known about one identity: its display name, identifier and registry, and every id and
    name seen, each with the sources that used it and their rows. None when unknown."""
    if not _ready(conn):
        return None
    OC, AC = organisations.c, organisation_aliases.c
    org = conn.execute(select(organisations).where(OC.org_key == org_key)).mappings().first()
    if org is None:
        return None
    seen: dict[tuple[str, str], dict] = {}
    for alias in conn.execute(select(organisation_aliases).where(AC.org_key == org_key)
                              .order_by(AC.kind, AC.value, AC.source)).mappings():
        entry = seen.setdefault((alias["kind"], alias["value"]), {
            "value": alias["value"], "normalised": alias["normalised"], "registered": alias["registered"],
            "sources": {}, "rows": 0})
        entry["sources"][alias["source"]] = entry["sources"].get(alias["source"], 0) + alias["rows"]
        entry["rows"] += alias["rows"]

    def listed(kind: str) -> list[dict]:
        return sorted((v for (k, _), v in seen.items() if k == kind), key=lambda e: (-e["rows"], e["value"]))

    return {**dict(org), "ids": listed("id"), "names": listed("name")}
