"""The co-funder finder's aggregates: who funds here, who funds like whom, who funds whom together.

Two layers. The *grouped sums* (``party_sums``, ``party_stats``) read the store: with numpy on the
columnar copy when the reader has one (``reader.table``), else with SQL on the party-key joins of
``data_sources.queries``; both give the same frames (tests compare them on SQLite and PostgreSQL).
Everything else is plain pandas/numpy over those frames, so a million rows cost one pass per frame
and only small results are cached and sent to the browser.

Totals count each amount once (rows with ``duplicate_of`` are left out); funders and recipients are
organisation identities (their party keys); money is in the display ``currency``.

Similarity ("funders like this one"): for each of recipients, countries and themes, a funder's
*profile* is its money share per item (each share = the funder's money to that item / its money to
all items; a funder whose money there is zero uses its row counts instead). Two profiles compare by
weighted Jaccard, J = sum(min(a, b)) / sum(max(a, b)) over the items, 0 (nothing shared) to 1 (the same
split). The score is ``SIMILARITY_WEIGHTS``-weighted: recipients 0.5, countries 0.3, themes 0.2 — who
they fund matters most to an NGO looking for co-funders, then where, then what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sqlalchemy import distinct, func, literal, select

from data_sources import columnar
from data_sources.filters import Filters

ROLES = ("funder", "recipient")
OTHERS = ("funder", "recipient", "country", "theme")
SIMILARITY_WEIGHTS = {"recipient": 0.5, "country": 0.3, "theme": 0.2}
MAX_FUNDERS_SHOWN = 200
TOP_ITEMS = 3
NETWORK_FUNDERS, NETWORK_RECIPIENTS = 60, 200
MAX_BASKET = 12

SUM_COLUMNS = ["key", "other", "usd", "rows"]
STAT_COLUMNS = ["key", "label", "usd", "records", "rows", "first_year", "last_year"]


def other_role(role: str) -> str:
    return "recipient" if role == "funder" else "funder"


def _check(role: str, other: str | None = None) -> None:
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if other is not None and (other not in OTHERS or other == role):
        raise ValueError(f"other: {other!r} is not one of {', '.join(o for o in OTHERS if o != role)}")


# --- the grouped sums: columnar or SQL ---------------------------------------------------------------


def party_sums(reader, filters: Filters, role: str, other: str, currency: str = "USD",
               keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Money (``usd``, in ``currency``) and counted rows per (``role`` party key, ``other`` value) over the
    rows ``filters`` select, counted once; rows whose key or other value is empty are left out.
    ``other`` is the other role, ``country`` (ISO3) or ``theme``; ``keys``: only these party keys (what
    keeps a million rows cheap when only the top few are shown). Sorted by key, then other."""
    _check(role, other)
    keys = None if keys is None else [str(k) for k in keys]
    table = getattr(reader, "table", None)
    frame = _sums_columnar(table, filters, role, other, currency, keys) if table is not None else _sums_sql(
        reader.engine, filters, role, other, currency, keys)
    return frame.sort_values(["key", "other"], kind="stable").reset_index(drop=True)


def party_stats(reader, filters: Filters, role: str, currency: str = "USD") -> pd.DataFrame:
    """Per ``role`` party key: its label, money, distinct records, counted rows, first and last year
    (NaN where no row has a year). Sorted by key."""
    _check(role)
    table = getattr(reader, "table", None)
    frame = _stats_columnar(table, filters, role, currency) if table is not None else _stats_sql(
        reader.engine, filters, role, currency)
    return frame.sort_values("key", kind="stable").reset_index(drop=True)


def _sums_columnar(table, filters: Filters, role: str, other: str, currency: str,
                   wanted: list[str] | None) -> pd.DataFrame:
    chosen = table.counted(filters)
    keys, others = table.dims[role], table.dims[other]
    key_codes, other_codes = keys.codes[chosen], others.codes[chosen]
    keep = (key_codes >= 0) & (other_codes >= 0)
    if wanted is not None:
        keep &= keys.lookup(wanted)[key_codes]
    span = np.int64(len(others.values))
    # One int64 per (key, other) pair: np.unique groups them, bincount sums their money.
    combined = key_codes[keep].astype(np.int64) * span + other_codes[keep].astype(np.int64)
    money = table.money(currency)[chosen][keep]
    dense = int(len(keys.values)) * int(span)
    if dense <= 4 * len(combined) + (1 << 20):  # few possible pairs (x country, x theme): count them all
        rows = np.bincount(combined, minlength=dense)
        pairs = np.flatnonzero(rows)
        usd = np.bincount(combined, weights=money, minlength=dense)[pairs]
        rows = rows[pairs]
    else:  # funder x recipient: only the pairs that occur, by sorting
        pairs, inverse = np.unique(combined, return_inverse=True)
        usd = np.bincount(inverse, weights=money, minlength=len(pairs))
        rows = np.bincount(inverse, minlength=len(pairs))
    import pyarrow as pa

    return pd.DataFrame({
        "key": keys.values.take(pa.array(pairs // span)).to_pylist() if len(pairs) else [],
        "other": others.values.take(pa.array(pairs % span)).to_pylist() if len(pairs) else [],
        "usd": usd.astype(float), "rows": rows.astype(np.int64),
    }, columns=SUM_COLUMNS)


def _stats_columnar(table, filters: Filters, role: str, currency: str) -> pd.DataFrame:
    import pyarrow as pa

    dim = table.dims[role]
    g = table.grouped(filters, role, currency)
    codes, picked, size, present, usd, rows = g.codes, g.chosen, g.size, g.present, g.usd, g.rows
    records = columnar.distinct_per_group(codes, table.arrays["record"][picked], size)
    years = table.arrays["year"][picked].astype(np.float64)
    first = np.full(size, np.inf)
    last = np.full(size, -np.inf)
    has_year = ~np.isnan(years)
    np.minimum.at(first, codes[has_year], years[has_year])
    np.maximum.at(last, codes[has_year], years[has_year])
    take = pa.array(present)
    return pd.DataFrame({
        "key": dim.values.take(take).to_pylist(),
        "label": table.dims[f"{role}_label"].values.take(take).to_pylist(),
        "usd": usd[present].astype(float), "records": records[present].astype(np.int64),
        "rows": rows[present].astype(np.int64),
        "first_year": np.where(np.isfinite(first[present]), first[present], np.nan),
        "last_year": np.where(np.isfinite(last[present]), last[present], np.nan),
    }, columns=STAT_COLUMNS)


def _sql_other(keys: dict, other: str):
    from data_sources.queries import A

    if other in ROLES:
        return keys[other]
    return A.country_iso3 if other == "country" else A.theme


def _sums_sql(engine, filters: Filters, role: str, other: str, currency: str,
              wanted: list[str] | None) -> pd.DataFrame:
    from data_sources.queries import Parties, money_column

    with engine.connect() as conn:
        parties = Parties.of(conn)
        source, keys = parties.joined(tuple(r for r in ROLES if r in (role, other)))
        key, value = keys[role], _sql_other(keys, other)
        query = (select(key.label("key"), value.label("other"),
                        func.coalesce(func.sum(money_column(currency)), 0.0).label("usd"), func.count().label("rows"))
                 .select_from(source)
                 .where(parties.counted(filters), key.is_not(None), value.is_not(None))
                 .group_by(key, value))
        if wanted is not None:
            query = query.where(key.in_(wanted) if wanted else literal(False))
        found = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in found], columns=SUM_COLUMNS)
    frame["usd"] = frame["usd"].astype(float)
    frame["rows"] = frame["rows"].astype(np.int64)
    return frame


def _stats_sql(engine, filters: Filters, role: str, currency: str) -> pd.DataFrame:
    from data_sources.queries import A, Parties, _record_key, money_column

    name = A.funder_name if role == "funder" else A.recipient_name
    with engine.connect() as conn:
        parties = Parties.of(conn)
        source, keys = parties.joined((role,))
        key = keys[role]
        query = (select(key.label("key"), func.max(name).label("label"),
                        func.coalesce(func.sum(money_column(currency)), 0.0).label("usd"),
                        func.count(distinct(_record_key())).label("records"), func.count().label("rows"),
                        func.min(A.year).label("first_year"), func.max(A.year).label("last_year"))
                 .select_from(source).where(parties.counted(filters), key.is_not(None)).group_by(key))
        found = [tuple(r) for r in conn.execute(query).all()]
        labels = parties.relabel([(r[1], r[0]) for r in found]) if found else []
    frame = pd.DataFrame(found, columns=STAT_COLUMNS)
    frame["label"] = labels
    for column in ("usd", "first_year", "last_year"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("records", "rows"):
        frame[column] = frame[column].astype(np.int64)
    return frame


def _labels(reader, kind: str, values: Sequence[str]) -> dict[str, str]:
    values = [v for v in dict.fromkeys(values) if v is not None]
    return reader.labels_for(kind, values) if values else {}


# --- 1. funders active here, ranked ------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing a party funds (or is funded by): its key or code, label and money."""

    value: str
    label: str
    usd: float


@dataclass(frozen=True)
class PartySummary:
    key: str
    label: str
    usd: float
    records: int
    first_year: int | None
    last_year: int | None
    themes: tuple[Item, ...]
    countries: tuple[Item, ...]
    counterparts: tuple[Item, ...]  # a funder's recipients (a recipient's funders)


@dataclass(frozen=True)
class Ranking:
    role: str
    total: int  # how many parties the filters hold
    usd: float  # their money, all together
    parties: tuple[PartySummary, ...]


def _year(value: float) -> int | None:
    return int(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None


def _ordered(stats: pd.DataFrame) -> pd.DataFrame:
    # Largest first; ties by key, so the order never depends on the backend.
    return stats.sort_values(["usd", "key"], ascending=[False, True], kind="stable")


def _top_items(sums: pd.DataFrame, keys: Sequence[str], per_key: int) -> dict[str, list[tuple[str, float]]]:
    picked = sums[sums["key"].isin(list(keys))]
    picked = picked.sort_values(["key", "usd", "other"], ascending=[True, False, True], kind="stable")
    return {k: list(zip(g["other"].head(per_key), g["usd"].head(per_key).astype(float), strict=True))
            for k, g in picked.groupby("key", sort=False)}


def rank_parties(reader, filters: Filters, role: str = "funder", limit: int = 25, currency: str = "USD",
                 per_party: int = TOP_ITEMS) -> Ranking:
    """The ``limit`` largest ``role`` parties under ``filters``, each with its money, records, years
    active and its top themes, countries and counterparts (recipients of a funder) here."""
    _check(role)
    limit = max(0, min(int(limit), MAX_FUNDERS_SHOWN))
    stats = _ordered(party_stats(reader, filters, role, currency))
    top = stats.head(limit)
    keys = top["key"].tolist()
    counterpart = other_role(role)
    tops = {other: _top_items(party_sums(reader, filters, role, other, currency, keys), keys, per_party)
            for other in ("theme", "country", counterpart)}
    countries = _labels(reader, "country", [v for items in tops["country"].values() for v, _ in items])
    partners = _labels(reader, counterpart, [v for items in tops[counterpart].values() for v, _ in items])

    def items(other: str, key: str, labels: dict[str, str] | None) -> tuple[Item, ...]:
        return tuple(Item(str(v), str((labels or {}).get(v, v)), float(usd)) for v, usd in tops[other].get(key, []))

    parties = tuple(
        PartySummary(str(r.key), str(r.label or r.key), float(r.usd), int(r.records), _year(r.first_year),
                     _year(r.last_year), items("theme", r.key, None), items("country", r.key, countries),
                     items(counterpart, r.key, partners))
        for r in top.itertuples(index=False))
    return Ranking(role, len(stats), float(stats["usd"].sum()), parties)


# --- 2. funders like this one ------------------------------------------------------------------------


@dataclass(frozen=True)
class Similar:
    key: str
    label: str
    score: float  # 0..1, the weighted mean of the three Jaccard indexes
    jaccard: dict[str, float]  # per dimension (recipient, country, theme)
    shared: dict[str, int]  # how many recipients, countries, themes both fund
    usd: float  # the other funder's money under the filters (less the funder filter)


@dataclass(frozen=True)
class Similarity:
    target: str
    target_label: str
    found: bool  # the target funds anything under the filters
    similar: tuple[Similar, ...]


def _shares(sums: pd.DataFrame) -> pd.DataFrame:
    """Each (key, other)'s share of its key's money (or of its rows where the key's money is zero)."""
    money = sums.groupby("key")["usd"].transform("sum")
    rows = sums.groupby("key")["rows"].transform("sum")
    share = np.where(money > 0, sums["usd"] / money.where(money > 0, 1.0), sums["rows"] / rows.where(rows > 0, 1))
    return pd.DataFrame({"key": sums["key"], "other": sums["other"], "share": share.astype(float)})


def weighted_jaccard(shares: pd.DataFrame, target: str) -> pd.DataFrame:
    """Per other key: weighted Jaccard of its shares with ``target``'s, and how many items both hold.
    Shares sum to 1 per key, so sum(max) = 2 - sum(min): only shared items need reading."""
    mine = shares[shares["key"] == target][["other", "share"]].rename(columns={"share": "mine"})
    both = shares[shares["key"] != target].merge(mine, on="other", how="inner")
    both["low"] = np.minimum(both["share"], both["mine"])
    grouped = both.groupby("key").agg(low=("low", "sum"), shared=("other", "count"))
    grouped["jaccard"] = grouped["low"] / (2.0 - grouped["low"]).clip(lower=1e-12)
    return grouped[["jaccard", "shared"]]


def similar_funders(reader, filters: Filters, target: str, limit: int = 10, currency: str = "USD") -> Similarity:
    """Funders ranked by how alike their recipients, countries and themes are to ``target``'s (a funder's
    party key) over the rows ``filters`` select, the funder filter left out (see the module's docstring)."""
    universe = replace(filters, funders=())
    stats = party_stats(reader, universe, "funder", currency).set_index("key")
    if target not in stats.index:
        label = _labels(reader, "funder", [target]).get(target, target)
        return Similarity(target, label, False, ())
    scores = pd.DataFrame(index=stats.index.drop(target))
    for other, _weight in SIMILARITY_WEIGHTS.items():
        found = weighted_jaccard(_shares(party_sums(reader, universe, "funder", other, currency)), target)
        scores[f"j_{other}"] = found["jaccard"]
        scores[f"n_{other}"] = found["shared"]
    scores = scores.fillna(0.0)
    scores["score"] = sum(w * scores[f"j_{o}"] for o, w in SIMILARITY_WEIGHTS.items())
    scores = scores[scores["score"] > 0]
    scores = scores.rename_axis(None)
    scores["key"] = scores.index
    scores = scores.sort_values(["score", "key"], ascending=[False, True], kind="stable").head(max(0, int(limit)))
    similar = tuple(
        Similar(str(k), str(stats.at[k, "label"] or k), float(r["score"]),
                {o: float(r[f"j_{o}"]) for o in SIMILARITY_WEIGHTS},
                {o: int(r[f"n_{o}"]) for o in SIMILARITY_WEIGHTS}, float(stats.at[k, "usd"]))
        for k, r in scores.iterrows())
    return Similarity(target, str(stats.at[target, "label"] or target), True, similar)


def single_party(reader, filters: Filters, role: str = "funder") -> str | None:
    """The party key of the one ``role`` in the filters (a value may be a raw id or name: the key its
    rows carry), else None."""
    if len(getattr(filters, role + "s")) != 1:
        return None
    keys = party_stats(reader, filters, role).sort_values(["usd", "key"], ascending=[False, True])["key"].tolist()
    return keys[0] if keys else None


# --- 3. the network ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    role: str
    usd: float
    x: float
    y: float
    partners: int  # how many shown nodes of the other role it is linked to


@dataclass(frozen=True)
class Network:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int, float], ...]  # (funder node, recipient node, money)
    funders_total: int  # before the caps
    recipients_total: int


def network(reader, filters: Filters, currency: str = "USD", max_funders: int = NETWORK_FUNDERS,
            max_recipients: int = NETWORK_RECIPIENTS) -> Network:
    """The largest funders (by money) that fund a recipient and, of what they fund, the largest
    recipients, with their links; laid out by ``layout``. ``funders_total`` and ``recipients_total``
    count all the funders and recipients under the filters. Only the candidates' links are grouped, so
    a million rows with a million links cost what the shown ones cost."""
    ordered = _ordered(party_stats(reader, filters, "funder", currency))["key"].tolist()
    totals = (len(ordered), len(party_stats(reader, filters, "recipient", currency)))
    wanted = max_funders
    while True:  # widen the candidates until enough of them fund a recipient (or none are left)
        candidates = ordered[:wanted]
        shown = party_sums(reader, filters, "funder", "recipient", currency, candidates)
        linked = set(shown["key"])
        top_funders = [k for k in candidates if k in linked][:max_funders]
        if len(top_funders) >= max_funders or wanted >= len(ordered):
            break
        wanted *= 2
    if shown.empty:
        return Network((), (), *totals)
    shown = shown[shown["key"].isin(top_funders)]
    recipient_usd = shown["usd"].groupby(shown["other"]).sum().reset_index(name="usd").rename(columns={"other": "key"})
    top_recipients = _ordered(recipient_usd).head(max_recipients)["key"].tolist()
    shown = shown[shown["other"].isin(top_recipients)]
    funders = sorted(top_funders)
    recipients = sorted(top_recipients)
    index = {("funder", k): i for i, k in enumerate(funders)}
    index.update({("recipient", k): len(funders) + i for i, k in enumerate(recipients)})
    edges = tuple((index[("funder", f)], index[("recipient", r)], float(u))
                  for f, r, u in zip(shown["key"], shown["other"], shown["usd"], strict=True))
    positions = layout(len(funders) + len(recipients), [(a, b, w) for a, b, w in edges])
    usd_of = {**{("funder", k): float(v) for k, v in shown.groupby("key")["usd"].sum().items()},
              **{("recipient", k): float(v) for k, v in shown.groupby("other")["usd"].sum().items()}}
    degree = np.bincount([a for a, _b, _w in edges] + [b for _a, b, _w in edges],
                         minlength=len(funders) + len(recipients))
    labels = {"funder": _labels(reader, "funder", funders), "recipient": _labels(reader, "recipient", recipients)}
    nodes = tuple(
        Node(k, labels[role].get(k, k), role, usd_of.get((role, k), 0.0), float(positions[index[(role, k)], 0]),
             float(positions[index[(role, k)], 1]), int(degree[index[(role, k)]]))
        for role, keys in (("funder", funders), ("recipient", recipients)) for k in keys)
    return Network(nodes, edges, *totals)


def layout(count: int, edges: Sequence[tuple[int, int, float]], iterations: int = 150, seed: int = 7) -> np.ndarray:
    """A seeded force layout (Fruchterman–Reingold) of ``count`` nodes in the unit square: linked nodes
    attract (more strongly for more money, on a log scale), all nodes repel. Deterministic for the same
    input: a fixed seed and node order, no randomness elsewhere. O(count²) per step: a few hundred nodes
    take milliseconds."""
    if count == 0:
        return np.zeros((0, 2))
    rng = np.random.default_rng(seed)
    pos = rng.random((count, 2))
    if count == 1:
        return np.full((1, 2), 0.5)
    k = 1.0 / math.sqrt(count)
    src = np.array([a for a, _b, _w in edges], dtype=np.int64)
    dst = np.array([b for _a, b, _w in edges], dtype=np.int64)
    money = np.array([max(w, 0.0) for _a, _b, w in edges], dtype=float)
    # Rounded: sums added in another order (SQL or numpy) must not move a node.
    scaled = np.round(np.log1p(money), 6)
    strength = 1.0 + scaled / max(float(scaled.max()) if len(scaled) else 1.0, 1e-9)
    temperature = 0.1
    for _step in range(iterations):
        # x and y apart: two n x n planes, not an n x n x 2 block (several times faster to reduce).
        dx = pos[:, 0][:, None] - pos[:, 0][None, :]
        dy = pos[:, 1][:, None] - pos[:, 1][None, :]
        push = (k * k) / (dx * dx + dy * dy + 1e-12)
        move = np.stack([(push * dx).sum(axis=1), (push * dy).sum(axis=1)], axis=1)
        if len(src):
            d = pos[src] - pos[dst]
            length = np.sqrt((d ** 2).sum(axis=1)) + 1e-9
            pull = (length / k * strength)[:, None] * d
            np.add.at(move, src, -pull)
            np.add.at(move, dst, pull)
        move -= (pos - 0.5) * 0.05 * count * k  # a little gravity keeps unlinked parts in view
        size = np.sqrt((move ** 2).sum(axis=1)) + 1e-9
        pos += move / size[:, None] * np.minimum(size, temperature)[:, None]
        temperature *= 0.97
    low, high = pos.min(axis=0), pos.max(axis=0)
    return (pos - low) / np.where(high - low > 0, high - low, 1.0)


# --- 4. baskets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    key: str
    label: str
    usd: float
    records: int
    counterparts: int  # how many recipients (of a funder member) under the filters


@dataclass(frozen=True)
class SharedItem:
    value: str
    label: str
    usd: float  # the members' money to it, together
    members: tuple[str, ...]  # which members (keys), largest first


@dataclass(frozen=True)
class Basket:
    role: str
    members: tuple[Member, ...]
    shared_counterparts: tuple[SharedItem, ...]  # funded (or funding) more than one member
    shared_countries: tuple[SharedItem, ...]
    shared_themes: tuple[SharedItem, ...]
    matrix_count: tuple[tuple[int, ...], ...]  # [i][j]: counterparts members i and j share (i == j: all of i's)
    matrix_usd: tuple[tuple[float, ...], ...]  # [i][j]: money i and j give (get) to (from) those, together
    shared_totals: dict[str, int]  # how many counterparts, countries, themes are shared (before ``limit``)


def _shared(sums: pd.DataFrame, members: list[str], labels: dict[str, str], limit: int) -> tuple[SharedItem, ...]:
    picked = sums[sums["key"].isin(members)]
    order = {k: i for i, k in enumerate(members)}
    items = []
    for value, group in picked.groupby("other", sort=True):
        if group["key"].nunique() < 2:
            continue
        group = group.assign(rank=group["key"].map(order)).sort_values(["usd", "rank"], ascending=[False, True])
        items.append(SharedItem(str(value), str(labels.get(value, value)), float(group["usd"].sum()),
                                tuple(str(k) for k in group["key"])))
    items.sort(key=lambda s: (-len(s.members), -s.usd, s.value))
    return tuple(items[:limit])


def basket(reader, filters: Filters, role: str = "funder", currency: str = "USD", limit: int = 25) -> Basket | None:
    """When several ``role`` parties are in the filters: each member's totals and what they share, or
    None when the filters hold fewer than two of them. Members are the party keys the filtered rows
    carry (at most ``MAX_BASKET``, the largest)."""
    _check(role)
    if len(getattr(filters, role + "s")) < 2:
        return None
    stats = _ordered(party_stats(reader, filters, role, currency)).head(MAX_BASKET)
    members = stats["key"].tolist()
    if len(members) < 2:
        return None
    counterpart = other_role(role)
    sums = {other: party_sums(reader, filters, role, other, currency, members)
            for other in (counterpart, "country", "theme")}
    links = sums[counterpart][sums[counterpart]["key"].isin(members)]
    counts = links.groupby("key")["other"].nunique()
    shared_links = _shared(links, members, {}, 10 ** 6)
    labels = _labels(reader, counterpart, [s.value for s in shared_links[:limit]])
    shared_links = tuple(replace(s, label=labels.get(s.value, s.value)) if n < limit else s
                         for n, s in enumerate(shared_links))
    countries = _shared(sums["country"], members, {}, 10 ** 6)
    country_labels = _labels(reader, "country", [s.value for s in countries])
    countries = tuple(replace(s, label=country_labels.get(s.value, s.value)) for s in countries)
    themes = _shared(sums["theme"], members, {}, 10 ** 6)
    # The matrix: for each pair of members, the counterparts both link to, and both members' money to them.
    by_member = {k: g.set_index("other")["usd"] for k, g in links.groupby("key")}
    count_rows, usd_rows = [], []
    for a in members:
        mine = by_member.get(a, pd.Series(dtype=float))
        count_row, usd_row = [], []
        for b in members:
            if a == b:
                count_row.append(int(len(mine)))
                usd_row.append(float(mine.sum()))
                continue
            theirs = by_member.get(b, pd.Series(dtype=float))
            common = mine.index.intersection(theirs.index)
            count_row.append(int(len(common)))
            usd_row.append(float(mine[common].sum() + theirs[common].sum()))
        count_rows.append(tuple(count_row))
        usd_rows.append(tuple(usd_row))
    member_rows = tuple(Member(str(r.key), str(r.label or r.key), float(r.usd), int(r.records),
                               int(counts.get(r.key, 0))) for r in stats.itertuples(index=False))
    totals = {"counterparts": len(shared_links), "countries": len(countries), "themes": len(themes)}
    return Basket(role, member_rows, shared_links[:limit], countries[:limit], themes[:limit], tuple(count_rows),
                  tuple(usd_rows), totals)
