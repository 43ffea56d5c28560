"""A narrow columnar copy of the store for the dashboard's aggregates (the "mirror").

SQL over a million-row row store takes seconds per aggregate; the dashboard needs a few hundred
milliseconds for a whole filter change. So the columns the views filter and group on are copied, once
per data version, into integer-coded numpy arrays: every filter becomes a boolean mask built from
small lookup tables, every breakdown a ``bincount``, and distinct counts per country use orders
sorted once at build time. Only page rows are still read from the store (by ``row_id``).

The copy is written to disk (one folder per data version, written under a lock and renamed into
place) and memory-mapped, so several app workers share one copy in the page cache and a restarted
worker is warm at once. It is a cache: deleting it is always safe.

Funders and recipients are organisation identities, as in ``data_sources.queries``: each row's party
key is the ``org_key`` the organisations pass gave its (source, id, name) — read from
``organisation_mentions`` and matched to the rows' dictionary codes with numpy, no per-row Python —
else its id, else its name; a party filter matches the key, the raw id or the raw name.

Results equal the SQL queries in ``data_sources.queries`` (tests compare both on SQLite and
PostgreSQL), with one documented difference: a party key that is no identity's is labelled with the
largest of its names over all rows, where SQL takes the largest over the filtered rows (they differ
only for an id published under several names); an identity's key shows its display name in both.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from data_sources.filters import Filters

FORMAT_VERSION = "4"  # 4: recipient_country
# Dictionary-encoded columns: name -> SQL expression read from the store.
_DIMENSIONS = {
    "source": "source",
    "country": "country_iso3",
    "country_name": "country_name",
    "recipient_country": "recipient_country_iso3",
    "admin1": "admin1_pcode",
    "theme": "theme",
    "sector": "sector_code",
    "sector_name": "sector_name",
    "flow_type": "flow_type",
    "funder_id": "funder_id",
    "funder_name": "funder_name",
    "recipient_id": "recipient_id",
    "recipient_name": "recipient_name",
}
# Free-text columns, kept only lower-cased (what ``q`` matches against), dictionary-encoded.
_TEXTS = ("title", "description", "implementer_name")
_SELECT = (
    "SELECT " + ", ".join(  # noqa: S608 - fixed column names only
        f"{column} AS {name}" for name, column in _DIMENSIONS.items()
    ) + ", "
    + ", ".join(_TEXTS) + ", source || ':' || record_id AS record, row_id, year, "
    "CASE WHEN amount IS NULL THEN 0 ELSE 1 END AS has_amount, amount_usd AS usd, "
    "CASE WHEN duplicate_of IS NULL THEN 1 ELSE 0 END AS counted, allocation_share AS share, amount, fx_rate, "
    "lat, lon FROM allocations ORDER BY row_id"
)
_PARTIES = ("funder", "recipient")
_SEARCHED = (*_TEXTS, "funder_name", "recipient_name")  # what ``q`` looks in
# Columns a page may be sorted by here (numbers); other sorts go to SQL.
NUMERIC_SORTS = {"amount": "amount", "amount_usd": "usd", "year": "year", "allocation_share": "share",
                 "fx_rate": "fx_rate", "lat": "lat", "lon": "lon"}
MASK_CACHE = 16
BUILD_TIMEOUT_S = 3 * 3600
# What the organisations pass wrote: each raw party mention's identity, and identities' display names.
_MENTIONS_SELECT = "SELECT role, source, party_id, party_name, org_key FROM organisation_mentions"
_NAMES_SELECT = "SELECT org_key, display_name FROM organisations"


def cache_root() -> Path:
    """Where copies live: ``FUNDATLAS_CACHE_DIR``, else the user cache directory."""
    configured = os.environ.get("FUNDATLAS_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fundatlas", appauthor=False))


def store_key(engine: Engine) -> str:
    """A folder name for this store: its URL without the password, hashed."""
    url = make_url(str(engine.url)).set(password=None)
    return hashlib.sha256(url.render_as_string(hide_password=False).encode()).hexdigest()[:16]


def _lowered(values: pa.Array, dialect: str) -> pa.Array:
    # What SQL's lower(column) gives on each database: SQLite folds ASCII letters only.
    return pc.ascii_lower(values) if dialect == "sqlite" else pc.utf8_lower(values)


@dataclass(frozen=True)
class Identities:
    """The organisations pass's result: ``mentions`` (role, source, party_id, party_name, org_key: one
    row per raw party as written) and ``names`` (org_key, display_name)."""

    mentions: pa.Table
    names: pa.Table

    @classmethod
    def from_tables(cls, mentions: pa.Table, names: pa.Table) -> Identities:
        # Cast: connectorx types the columns of an empty result loosely.
        def strings(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
            return pa.table({c: table.column(c).combine_chunks().cast(pa.string()) for c in columns})

        return cls(strings(mentions, ("role", "source", "party_id", "party_name", "org_key")),
                   strings(names, ("org_key", "display_name")))


@dataclass
class Dimension:
    """One dictionary-encoded column: ``codes`` index ``values``; -1 is NULL."""

    codes: np.ndarray
    values: pa.Array
    _index: dict[str, int] | None = None

    def code_of(self) -> dict[str, int]:
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.values.to_pylist())}
        return self._index

    def lookup(self, wanted: Sequence[str]) -> np.ndarray:
        """A table ``t`` with ``t[codes]`` True where the value is one of ``wanted`` (NULL never)."""
        table = np.zeros(len(self.values) + 1, dtype=bool)  # the extra last slot answers code -1
        index = self.code_of()
        for value in wanted:
            code = index.get(value)
            if code is not None:
                table[code] = True
        return table


def _encode(chunks: list[pa.Array]) -> tuple[np.ndarray, pa.Array]:
    encoded = pa.chunked_array(chunks, type=pa.string()).combine_chunks().dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, encoded.dictionary


def _group_starts(order: np.ndarray, keys: Sequence[np.ndarray]) -> np.ndarray:
    """Along ``order``, the index of each row's group of equal ``keys`` (consecutive ids)."""
    change = np.zeros(len(order), dtype=bool)
    if len(order):
        change[0] = True
    for key in keys:
        sorted_key = key[order]
        change[1:] |= sorted_key[1:] != sorted_key[:-1]
    return np.cumsum(change, dtype=np.int64).astype(np.int32) - 1


class ColumnarTable:
    """The copy in memory (or memory-mapped): arrays by name and the dimensions' values."""

    def __init__(self, arrays: dict[str, np.ndarray], values: dict[str, pa.Array], meta: dict):
        self.arrays = arrays
        self.meta = meta
        self.version: str = meta["data_version"]
        self.dialect: str = meta["dialect"]
        self.rows = int(meta["rows"])
        self.dims = {name: Dimension(arrays[f"{name}.codes"], values[name]) for name in values}
        self._masks: OrderedDict[object, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # --- building -------------------------------------------------------------------------
    @classmethod
    def build(cls, engine: Engine, progress: Callable[[int], None] | None = None) -> ColumnarTable:
        """Read the store once (connectorx: straight into Arrow, several times faster than rows
        through the DB-API) and encode it. A load finishing during the read means another try."""
        import connectorx

        from data_sources.queries import data_version

        dialect = engine.dialect.name
        url = make_url(str(engine.url))
        if dialect == "sqlite":
            source = f"sqlite://{Path(url.database or '').resolve()}"  # a relative path, made absolute
        elif dialect == "postgresql":
            source = url.set(drivername="postgresql").render_as_string(hide_password=False)
        else:
            raise ValueError(f"the columnar copy reads SQLite or PostgreSQL stores, not {dialect}")
        for _attempt in range(5):
            version = data_version(engine)
            table = connectorx.read_sql(source, _SELECT, return_type="arrow")
            identities = None
            if _has_identities(engine):
                identities = Identities.from_tables(
                    connectorx.read_sql(source, _MENTIONS_SELECT, return_type="arrow"),
                    connectorx.read_sql(source, _NAMES_SELECT, return_type="arrow"))
            if data_version(engine) == version:
                break
        else:
            raise RuntimeError("the store kept changing while its columnar copy was read; try again later")
        if progress is not None:
            progress(table.num_rows)
        return cls._from_arrow(table, {"data_version": version, "dialect": dialect, "rows": table.num_rows,
                                       "format": FORMAT_VERSION, "built_by": f"{os.getpid()}-{time.time_ns()}"},
                               identities)

    @classmethod
    def _from_arrow(cls, table: pa.Table, meta: dict, identities: Identities | None = None) -> ColumnarTable:
        arrays: dict[str, np.ndarray] = {}
        values: dict[str, pa.Array] = {}

        def column(name: str) -> pa.Array:
            return table.column(name).combine_chunks()

        def numbers(name: str, dtype) -> np.ndarray:
            # Cast first: connectorx types the columns of an empty result loosely.
            if dtype in (np.float32, np.float64):
                data = column(name).cast(pa.float64()).fill_null(float("nan"))
            else:
                data = column(name).cast(pa.int64()).fill_null(0)
            return data.to_numpy(zero_copy_only=False).astype(dtype, copy=False)

        for name in _DIMENSIONS:
            arrays[f"{name}.codes"], values[name] = _encode([column(name).cast(pa.string())])
        for name in _TEXTS:
            codes, dictionary = _encode([column(name).cast(pa.string())])
            arrays[f"{name}.codes"], values[name] = codes, _lowered(dictionary, meta["dialect"])
        arrays["record"], _records = _encode([column("record").cast(pa.string())])
        for name, dtype in (("row_id", np.int64), ("year", np.float32), ("has_amount", bool), ("usd", np.float64),
                            ("counted", bool), ("share", np.float64), ("amount", np.float64),
                            ("fx_rate", np.float64), ("lat", np.float64), ("lon", np.float64)):
            arrays[name] = numbers(name, dtype)
        arrays["usd0"] = np.nan_to_num(arrays["usd"], nan=0.0)
        # A party's key is its identity's org_key, else its id, else its name (what the filter and the
        # charts use).
        for party in _PARTIES:
            id_codes, name_codes = arrays[f"{party}_id.codes"], arrays[f"{party}_name.codes"]
            id_text = values[f"{party}_id"].take(pa.array(id_codes, mask=id_codes < 0))
            name_text = values[f"{party}_name"].take(pa.array(name_codes, mask=name_codes < 0))
            key_text = pc.coalesce(id_text, name_text)
            if identities is not None:
                mentions = identities.mentions.filter(pc.equal(identities.mentions.column("role"), party))
                found = mention_of_rows(mentions, arrays["source.codes"], values["source"], id_codes,
                                        values[f"{party}_id"], name_codes, values[f"{party}_name"])
                if (found >= 0).any():
                    org_keys = mentions.column("org_key").combine_chunks().take(pa.array(np.maximum(found, 0)))
                    key_text = pc.if_else(pa.array(found >= 0), org_keys, key_text)
            codes, dictionary = _encode([key_text])
            arrays[f"{party}.codes"], values[party] = codes, dictionary
            # The label a key shows: its identity's display name, else the largest of its names (SQL max()).
            label = _largest_label(codes, len(dictionary), name_codes, values[f"{party}_name"])
            if identities is not None and len(dictionary):
                names = identities.names
                display = names.column("display_name").combine_chunks().take(
                    pc.index_in(dictionary, value_set=names.column("org_key").combine_chunks()))
                label = pc.coalesce(display, label)
            values[f"{party}_label"] = label
            arrays[f"{party}_label.codes"] = np.zeros(0, dtype=np.int32)  # labels are by key, not by row
            # Totals over every row (duplicates too), for the dropdowns' order.
            arrays[f"{party}.usd_all"] = np.bincount(codes[codes >= 0], weights=arrays["usd0"][codes >= 0],
                                                     minlength=len(dictionary))
        for name in ("country", "theme", "sector", "source"):
            codes = arrays[f"{name}.codes"]
            arrays[f"{name}.usd_all"] = np.bincount(codes[codes >= 0], weights=arrays["usd0"][codes >= 0],
                                                    minlength=len(values[name]))
        # Distinct counts per country: each row's (country, key) pair as a dense group number, and each
        # group's country. Counting a selection's distinct pairs is then two bincounts, no sorting.
        country = arrays["country.codes"]
        for suffix, key in (("record", arrays["record"]), ("funder", arrays["funder.codes"]),
                            ("recipient", arrays["recipient.codes"])):
            order = np.lexsort((key, country))
            groups = _group_starts(order, (country, key))
            group_of_row = np.empty(len(order), dtype=np.int32)
            group_of_row[order] = groups
            # NULL keys and rows without a country are not counted (SQL count(DISTINCT) skips NULL).
            group_of_row[(key < 0) | (country < 0)] = -1
            group_country = np.full(int(groups.max(initial=-1)) + 1, -1, dtype=np.int32)
            group_country[groups] = country[order]
            arrays[f"by_country_{suffix}.group"] = group_of_row
            arrays[f"by_country_{suffix}.country"] = group_country
        # The name each country and sector shows: the largest, as SQL max().
        for name, label_of in (("country", "country_name"), ("sector", "sector_name")):
            values[f"{name}_label"] = _largest_label(arrays[f"{name}.codes"], len(values[name]),
                                                     arrays.get(f"{label_of}.codes"), values.get(label_of))
            arrays[f"{name}_label.codes"] = np.zeros(0, dtype=np.int32)
        return cls(arrays, values, meta)

    # --- disk -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in self.arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        for name, dim in self.dims.items():
            with pa.OSFile(str(folder / f"{name}.values.arrow"), "wb") as sink:
                batch = pa.record_batch([dim.values], names=["value"])
                with pa.ipc.new_file(sink, batch.schema) as writer:
                    writer.write_batch(batch)
        (folder / "meta.json").write_text(json.dumps(self.meta))

    @classmethod
    def open(cls, folder: Path) -> ColumnarTable:
        """Memory-map a saved copy."""
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder}: columnar copy of another format")
        # Plain ndarray views of the maps: numpy's memmap subclass adds a cost to every indexing.
        arrays = {p.name.removesuffix(".npy"): np.load(p, mmap_mode="r", allow_pickle=False).view(np.ndarray)
                  for p in folder.glob("*.npy")}
        values = {}
        for path in folder.glob("*.values.arrow"):
            with pa.memory_map(str(path), "r") as source:
                values[path.name.removesuffix(".values.arrow")] = pa.ipc.open_file(source).read_all().column(0)\
                    .combine_chunks()
        return cls(arrays, values, meta)

    def warm(self) -> None:
        """Read every mapped array once, so the first filter change does not wait on the disk, and
        work out what is derived once per process."""
        for array in self.arrays.values():
            if array.size:
                np.add.reduce(array.view(np.uint8).reshape(-1)[:: 4096])  # one byte per page
        self._derived("year_code")
        self._derived("records")
        for name in _SEARCHED:
            self._haystack(name)
        for dim in self.dims.values():  # the value -> code lookups filters use
            if len(dim.codes):
                dim.code_of()
        everything = Filters()
        self.country_totals(everything)
        self.headline(everything)
        for dimension in ("year", "funder", "recipient", "theme"):
            self.totals_by(everything, dimension)

    # --- filtering ------------------------------------------------------------------------
    def _memo(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, kept read-only in a small per-process LRU shared by masks and selections."""
        with self._lock:
            if key in self._masks:
                self._masks.move_to_end(key)
                return self._masks[key]
        value = compute()
        value.flags.writeable = False
        with self._lock:
            self._masks[key] = value
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return value

    def mask(self, filters: Filters) -> np.ndarray:
        """Rows matching ``filters`` (all rows, duplicates included), memoised."""
        return self._memo(("mask", filters), lambda: self._compute_mask(filters))

    def _compute_mask(self, f: Filters) -> np.ndarray:
        a = self.arrays
        mask = np.ones(self.rows, dtype=bool)
        for attr, name in (("countries", "country"), ("admin1", "admin1"), ("themes", "theme"),
                           ("sectors", "sector"), ("sources", "source"), ("flow_types", "flow_type")):
            wanted = getattr(f, attr)
            if wanted:
                dim = self.dims[name]
                mask &= dim.lookup(wanted)[dim.codes]
        for attr, party in (("funders", "funder"), ("recipients", "recipient")):
            wanted = getattr(f, attr)
            if wanted:  # the party's key (its identity), its raw id or its raw name
                key, by_id, by_name = self.dims[party], self.dims[f"{party}_id"], self.dims[f"{party}_name"]
                mask &= (key.lookup(wanted)[key.codes] | by_id.lookup(wanted)[by_id.codes]
                         | by_name.lookup(wanted)[by_name.codes])
        if f.year_from is not None:
            mask &= a["year"] >= f.year_from  # NaN (no year) compares False, as NULL does in SQL
        if f.year_to is not None:
            mask &= a["year"] <= f.year_to
        if f.min_usd is not None:
            mask &= a["usd"] >= f.min_usd
        if f.q:
            mask &= self._text_mask(f.q.lower())
        return mask

    def _text_mask(self, needle: str) -> np.ndarray:
        """Rows whose title, description or names contain ``needle`` (lower-cased), memoised by
        needle so that changing other filters does not search again."""

        def search() -> np.ndarray:
            found = np.zeros(self.rows, dtype=bool)
            for name in _SEARCHED:
                table = np.append(self._haystack(name).hits(needle), False)  # the last slot answers code -1
                found |= table[self.dims[name].codes]
            return found

        return self._memo(("text", needle), search)

    def _haystack(self, name: str) -> Haystack:
        cache = self.__dict__.setdefault("_haystacks", {})
        if name not in cache:
            values = self.dims[name].values if name in _TEXTS else self._lowered_names(name)
            cache[name] = Haystack(values)
        return cache[name]

    def _lowered_names(self, name: str) -> pa.Array:
        cache = self.__dict__.setdefault("_lowered_cache", {})
        if name not in cache:
            cache[name] = _lowered(self.dims[name].values, self.dialect)
        return cache[name]

    def counted(self, filters: Filters) -> np.ndarray:
        """Indexes of rows matching ``filters`` that totals count (not a duplicate of another row)."""
        return self._memo(("counted", filters),
                          lambda: np.flatnonzero(self.mask(filters) & self.arrays["counted"]))

    def _derived(self, name: str) -> np.ndarray | int:
        """Arrays and sizes worked out once per process from the saved ones."""
        cache = self.__dict__.setdefault("_derived_cache", {})
        if name not in cache:
            a = self.arrays
            if name == "year_first":
                years = a["year"][~np.isnan(a["year"])]
                cache[name] = int(years.min()) if len(years) else 0
            elif name == "year_code":  # year - first year, -1 where there is none
                first = self._derived("year_first")
                cache[name] = np.where(np.isnan(a["year"]), -1, a["year"] - first).astype(np.int32)
            elif name == "records":
                cache[name] = int(a["record"].max(initial=-1)) + 1
        return cache[name]

    def money(self, currency: str = "USD") -> np.ndarray:
        """Each row's ``amount_usd`` (0 where empty) in the display ``currency`` at its year's rate, as
        ``queries.money_column``; computed once per currency and process."""
        if currency == "USD":
            return self.arrays["usd0"]
        cache = self.__dict__.setdefault("_money_cache", {})
        if currency not in cache:
            from data_sources import fx

            factors, _note = fx.display_factors(currency)
            first = self._derived("year_first")
            year_code = self._derived("year_code")
            span = int(year_code.max(initial=-1)) + 1
            by_code = np.array([fx.display_factor(factors, first + i) for i in range(span)] + [
                fx.display_factor(factors, None)])  # the last entry: rows without a year
            cache[currency] = self.arrays["usd0"] * by_code[np.where(year_code < 0, span, year_code)]
        return cache[currency]

    # --- aggregates (the same frames and records as ``queries``) -----------------------------
    def _distinct_per_country(self, chosen: np.ndarray, suffix: str) -> np.ndarray:
        """Per country, how many distinct keys (records, funders, recipients) the rows ``chosen`` hold."""
        group_country = self.arrays[f"by_country_{suffix}.country"]
        groups = self.arrays[f"by_country_{suffix}.group"][chosen]
        present = np.flatnonzero(np.bincount(groups[groups >= 0], minlength=len(group_country)))
        return np.bincount(group_country[present], minlength=len(self.dims["country"].values))

    def country_totals(self, filters: Filters, currency: str = "USD", basis: str = "spent") -> pd.DataFrame:
        """As ``queries.country_totals``: per country where the money is spent, or where the recipient is based."""
        if basis == "based":
            return self._recipient_country_totals(filters, currency)
        if basis != "spent":
            raise ValueError(f"basis: {basis!r} is not one of spent, based")
        chosen = self.counted(filters)
        country_codes = self.dims["country"].codes[chosen]
        keep = country_codes >= 0
        chosen, country_codes = chosen[keep], country_codes[keep]
        n = len(self.dims["country"].values)
        present = np.bincount(country_codes, minlength=n) > 0
        usd = np.bincount(country_codes, weights=self.money(currency)[chosen], minlength=n)
        records = self._distinct_per_country(chosen, "record")
        funders = self._distinct_per_country(chosen, "funder")
        recipients = self._distinct_per_country(chosen, "recipient")
        codes = np.flatnonzero(present)
        take = pa.array(codes)
        frame = pd.DataFrame({"iso3": self.dims["country"].values.take(take).to_pylist(),
                              "name": self.dims["country_label"].values.take(take).to_pylist(),
                              "usd": usd[codes], "records": records[codes].astype(int),
                              "funders": funders[codes].astype(int), "recipients": recipients[codes].astype(int)})
        return frame.sort_values("iso3", kind="stable").reset_index(drop=True)

    def grouped(self, filters: Filters, name: str, currency: str = "USD") -> Grouped:
        """Counted rows of ``filters`` that have a ``name`` value, with money and rows per value."""
        dim = self.dims[name]
        chosen = self.counted(filters)
        codes = dim.codes[chosen]
        keep = codes >= 0
        chosen, codes = chosen[keep], codes[keep]
        size = len(dim.values)
        rows = np.bincount(codes, minlength=size)
        return Grouped(chosen, codes, size, np.flatnonzero(rows), rows,
                       np.bincount(codes, weights=self.money(currency)[chosen], minlength=size))

    def _recipient_country_totals(self, filters: Filters, currency: str) -> pd.DataFrame:
        # The recipient's home country is a view the map shows now and then: distinct counts sort the
        # chosen rows' (country, key) pairs instead of keeping precomputed groups per row.
        from data_sources.queries import recipient_country_name

        g = self.grouped(filters, "recipient_country", currency)
        counts = {name: distinct_per_group(g.codes, keys[g.chosen], g.size)[g.present].astype(int) for name, keys in (
            ("records", self.arrays["record"]), ("funders", self.dims["funder"].codes),
            ("recipients", self.dims["recipient"].codes))}
        iso3 = self.dims["recipient_country"].values.take(pa.array(g.present)).to_pylist()
        frame = pd.DataFrame({"iso3": iso3, "name": [recipient_country_name(c) for c in iso3],
                              "usd": g.usd[g.present], **counts})
        return frame.sort_values("iso3", kind="stable").reset_index(drop=True)

    def headline(self, filters: Filters, currency: str = "USD"):
        from data_sources.queries import Headline

        a = self.arrays
        chosen = self.counted(filters)
        usd = self.money(currency)[chosen]

        def distinct(codes: np.ndarray, size: int) -> int:
            picked = codes[chosen]
            return int(np.count_nonzero(np.bincount(picked[picked >= 0], minlength=size)))

        flow = self.dims["flow_type"]
        flow_codes = flow.codes[chosen]
        known = flow_codes >= 0
        flow_usd = np.bincount(flow_codes[known], weights=usd[known], minlength=len(flow.values))
        flow_present = np.bincount(flow_codes[known], minlength=len(flow.values)) > 0
        flows = {flow.values[int(i)].as_py(): float(flow_usd[i]) for i in np.flatnonzero(flow_present)}
        if not known.all():
            flows[None] = float(usd[~known].sum())  # type: ignore[index]
        return Headline(
            usd=float(usd.sum()),
            records=distinct(a["record"], self._derived("records")),
            funders=distinct(self.dims["funder"].codes, len(self.dims["funder"].values)),
            recipients=distinct(self.dims["recipient"].codes, len(self.dims["recipient"].values)),
            rows=len(chosen),
            usd_without_country=float(usd[self.dims["country"].codes[chosen] < 0].sum()),
            amounts_without_usd=int(np.count_nonzero(a["has_amount"][chosen] & np.isnan(a["usd"][chosen]))),
            usd_by_flow_type=flows,
        )

    def totals_by(self, filters: Filters, dimension: str, limit: int = 10, currency: str = "USD") -> pd.DataFrame:
        money = self.money(currency)
        chosen = self.counted(filters)
        if dimension == "year":
            codes = self._derived("year_code")[chosen]
            keep = codes >= 0
            size = int(codes.max(initial=-1)) + 1
            present = np.flatnonzero(np.bincount(codes[keep], minlength=size) > 0)
            sums = np.bincount(codes[keep], weights=money[chosen][keep], minlength=size)
            years = present.astype(np.int64) + self._derived("year_first")
            return pd.DataFrame({"label": years, "value": years, "usd": sums[present].astype(float)})
        if dimension == "theme":
            dim = self.dims["theme"]
            values = pa.concat_arrays([dim.values, pa.array(["(no theme)"])])  # code -1 reads the last one
            codes = dim.codes[chosen]
            codes = np.where(codes < 0, len(values) - 1, codes)
            return self._top(codes, money[chosen], values, values, limit)
        if dimension in _PARTIES:
            dim = self.dims[dimension]
            codes = dim.codes[chosen]
            keep = codes >= 0
            labels = self.dims[f"{dimension}_label"].values
            return self._top(codes[keep], money[chosen][keep], labels, dim.values, limit)
        raise ValueError(f"unknown breakdown {dimension!r}")

    @staticmethod
    def _top(codes: np.ndarray, usd: np.ndarray, labels: pa.Array, values: pa.Array, limit: int) -> pd.DataFrame:
        size = len(values)
        present = np.flatnonzero(np.bincount(codes, minlength=size) > 0)
        sums = np.bincount(codes, weights=usd, minlength=size)[present]
        # Largest first; ties by value, as SQL's ORDER BY usd DESC, value.
        order = _top_order(sums, values.take(pa.array(present)), limit)
        chosen = pa.array(present[order])
        return pd.DataFrame({"label": labels.take(chosen).to_pylist(), "value": values.take(chosen).to_pylist(),
                             "usd": sums[order].astype(float)})

    def row_count(self, filters: Filters) -> int:
        return int(np.count_nonzero(self.mask(filters)))

    def page_row_ids(self, filters: Filters, start: int, end: int,
                     sort: Sequence[tuple[str, str]] = ()) -> list[int] | None:
        """The ``row_id`` of rows ``start``..``end`` in the table's order, or None when the sort is one
        this copy does not reproduce (text columns: the database's collation decides)."""
        if any(column not in NUMERIC_SORTS for column, _direction in sort):
            return None
        a = self.arrays
        chosen = np.flatnonzero(self.mask(filters))
        if sort:
            keys = [a["row_id"][chosen]]  # last resort: row_id, ascending (stable paging)
            for column, direction in reversed(sort):
                values = a[NUMERIC_SORTS[column]][chosen].astype(np.float64)
                # NULLs sort first ascending on SQLite, last on PostgreSQL (and the reverse descending).
                nulls_low = self.dialect == "sqlite"
                filled = np.where(np.isnan(values), -np.inf if nulls_low else np.inf, values)
                keys.append(-filled if direction == "desc" else filled)
            chosen = chosen[np.lexsort(keys)]
        return [int(v) for v in a["row_id"][chosen[start:end]]]

    def labels_for(self, kind: str, wanted: Sequence[str]) -> dict[str, str] | None:
        """Display labels of option values of ``kind`` (None for kinds not kept here)."""
        if kind not in self._OPTION_DIMS:
            return None
        value_dim, label_dim = self._OPTION_DIMS[kind]
        index = self.dims[value_dim].code_of()
        labels = self.dims[label_dim].values
        found = {}
        for value in wanted:
            code = index.get(value)
            if code is not None:
                found[value] = str(labels[code].as_py() or value)
        return found

    # --- dropdowns --------------------------------------------------------------------------
    _OPTION_DIMS = {"funder": ("funder", "funder_label"), "recipient": ("recipient", "recipient_label"),
                    "country": ("country", "country_label"), "theme": ("theme", "theme"),
                    "sector": ("sector", "sector_label"), "source": ("source", "source")}

    def options(self, kind: str, limit: int = 50) -> list[dict[str, str]] | None:
        """The ``limit`` largest values of ``kind`` by USD over every row (the dropdowns' first list);
        None for kinds whose labels are not kept here."""
        if kind not in self._OPTION_DIMS or self._OPTION_DIMS[kind][1] is None:
            return None
        value_dim, label_dim = self._OPTION_DIMS[kind]
        values = self.dims[value_dim].values
        order = pa.array(_top_order(self.arrays[f"{value_dim}.usd_all"], values, limit))
        return [{"label": str(label or value), "value": str(value)}
                for label, value in zip(self.dims[label_dim].values.take(order).to_pylist(),
                                        values.take(order).to_pylist(), strict=True)]


@dataclass(frozen=True)
class Grouped:
    """``ColumnarTable.grouped``: the rows (indexes), their value codes, how many codes there are, the
    codes present, and rows and money per code."""

    chosen: np.ndarray
    codes: np.ndarray
    size: int
    present: np.ndarray
    rows: np.ndarray
    usd: np.ndarray


def distinct_values(values: np.ndarray) -> np.ndarray:
    """The distinct values, by one sort (numpy's hashing ``unique`` is several times slower here)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


def distinct_per_group(groups: np.ndarray, keys: np.ndarray, size: int) -> np.ndarray:
    """Per group code (0..size-1), how many distinct non-negative keys its rows hold (SQL's
    count(DISTINCT) per group, which skips NULL)."""
    keys = keys.astype(np.int64)
    known = keys >= 0
    span = int(keys.max(initial=0)) + 1
    pairs = distinct_values(groups[known].astype(np.int64) * span + keys[known])
    return np.bincount(pairs // span, minlength=size)


class Haystack:
    """An Arrow string array prepared for literal substring search: its UTF-8 bytes in one buffer and
    its offsets as a list, kept per dimension so each search only scans."""

    def __init__(self, values: pa.Array):
        values = values.cast(pa.string())
        self.size = len(values)
        _validity, offsets_buffer, data = values.buffers() if self.size else (None, None, None)
        if data is None or offsets_buffer is None:
            self.text, self.offsets = b"", [0] * (self.size + 1)
        else:
            offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[values.offset : values.offset + self.size + 1]
            self.text = data.to_pybytes()
            self.offsets = offsets.tolist()
        self.valid = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None

    def hits(self, needle: str) -> np.ndarray:
        """Which strings contain ``needle``. ``bytes.find`` scans the buffer at memchr speed; after a
        match the scan jumps to the next string, so the loop runs once per matching string, and a
        match that runs across a string's end is skipped by one byte, never hiding a real one."""
        found = np.zeros(self.size, dtype=bool)
        pattern = needle.encode("utf-8")
        if not pattern:  # the empty needle is in every string there is
            found[:] = True
            return found & self.valid if self.valid is not None else found
        text, offsets, width = self.text, self.offsets, len(pattern)
        limit = offsets[-1]  # the array's last byte: a sliced array's buffer may go on
        position = text.find(pattern, offsets[0], limit)
        while position != -1:
            owner = bisect.bisect_right(offsets, position) - 1
            end = offsets[owner + 1]
            if position + width <= end:
                found[owner] = True
                position = text.find(pattern, end, limit)
            else:
                position = text.find(pattern, position + 1, limit)
        if self.valid is not None:
            found &= self.valid
        return found


def substring_hits(values: pa.Array, needle: str) -> np.ndarray:
    """Which of ``values`` contain ``needle``, literally (``Haystack.hits`` on a fresh haystack)."""
    return Haystack(values).hits(needle)


def _codes_in(column: pa.Array, dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code in ``dictionary`` (-1 for NULL), and where a value is absent from it."""
    found = pc.index_in(column, value_set=dictionary).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    absent = (found < 0) & column.is_valid().to_numpy(zero_copy_only=False)
    return found, absent


def mention_of_rows(mentions: pa.Table, source_codes: np.ndarray, sources: pa.Array, id_codes: np.ndarray,
                    ids: pa.Array, name_codes: np.ndarray, names: pa.Array) -> np.ndarray:
    """For each row, the index of the ``mentions`` row with its exact (source, id, name), NULL equal to
    NULL as SQL's NULL-safe join; -1 for none. The mentions' values become the rows' dictionary codes,
    then both become one integer per triple: a sorted search, no per-row Python."""
    if mentions.num_rows == 0 or len(source_codes) == 0:
        return np.full(len(source_codes), -1, dtype=np.int64)
    source, source_absent = _codes_in(mentions.column("source").combine_chunks(), sources)
    party_id, id_absent = _codes_in(mentions.column("party_id").combine_chunks(), ids)
    party_name, name_absent = _codes_in(mentions.column("party_name").combine_chunks(), names)
    # A mention with a value no row holds names no row; a NULL source names none either.
    usable = np.flatnonzero(~(source_absent | id_absent | name_absent) & (source >= 0))
    id_span, name_span = len(ids) + 1, len(names) + 1

    def triple(s: np.ndarray, i: np.ndarray, n: np.ndarray) -> np.ndarray:
        return (s.astype(np.int64) * id_span + (i.astype(np.int64) + 1)) * name_span + (n.astype(np.int64) + 1)

    wanted = triple(source[usable], party_id[usable], party_name[usable])
    order = np.argsort(wanted, kind="stable")
    wanted, usable = wanted[order], usable[order]
    rows = triple(source_codes, id_codes, name_codes)
    if len(wanted) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(wanted, rows), len(wanted) - 1)
    return np.where(wanted[at] == rows, usable[at], -1)


def _has_identities(engine: Engine) -> bool:
    from data_sources.organisations import mentions_ready

    with engine.connect() as conn:
        return mentions_ready(conn)


def _largest_label(codes: np.ndarray, size: int, label_codes: np.ndarray, labels: pa.Array) -> pa.Array:
    """Per value of a dimension, the largest of the labels its rows carry (NULL where none)."""
    frame = pd.DataFrame({"code": codes, "label": label_codes})
    frame = frame[(frame["code"] >= 0) & (frame["label"] >= 0)].drop_duplicates()
    names = np.asarray(labels.to_pylist(), dtype=object)
    largest = np.full(size, None, dtype=object)
    if len(frame):
        frame["text"] = names[frame["label"].to_numpy()]
        best = frame.groupby("code")["text"].max()
        largest[best.index.to_numpy()] = best.to_numpy()
    return pa.array(largest, type=pa.string())


def _top_order(sums: np.ndarray, keys: pa.Array, limit: int) -> np.ndarray:
    """Indexes of the ``limit`` largest ``sums``, ties by ``keys`` ascending (only the candidates'
    keys are read, so a dimension of a million values costs no more than one of ten)."""
    if len(sums) > limit:
        threshold = np.partition(sums, len(sums) - limit)[len(sums) - limit]
        candidates = np.flatnonzero(sums >= threshold)
    else:
        candidates = np.arange(len(sums))
    names = dict(zip(candidates.tolist(), keys.take(pa.array(candidates)).to_pylist(), strict=True))
    ordered = sorted(candidates.tolist(), key=lambda i: (-sums[i], names[i]))
    return np.asarray(ordered[:limit], dtype=np.int64)


# --- the copy on disk, per store and data version --------------------------------------------


def folder_for(engine: Engine, version: str, root: Path | None = None) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in version)
    return (root or cache_root()) / store_key(engine) / f"v{FORMAT_VERSION}-{safe}"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(engine: Engine, root: Path | None = None) -> ColumnarTable:
    """The copy for the store's current data version: opened from disk, else built (one process at a
    time; others wait for it and open it) and saved. Older versions of this store are removed.

    The build runs in a child process: connectorx carries its own SQLite library, and two SQLite
    libraries in one process break each other's file locks (SQLite's documented corruption hazard).
    The child also takes the build's memory peak with it when it exits."""
    from data_sources.queries import data_version

    version = data_version(engine)
    folder = folder_for(engine, version, root)
    if (folder / "meta.json").exists():
        return ColumnarTable.open(folder)
    with _locked(folder.parent / ".lock"):
        if (folder / "meta.json").exists():  # built by another process while this one waited
            return ColumnarTable.open(folder)
        scratch = folder.with_name(folder.name + f".tmp{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(scratch, ignore_errors=True)
        built = _build_in_child(engine, scratch)
        target = folder_for(engine, built["data_version"], root)  # the version the build read
        if not (target / "meta.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        for old in target.parent.iterdir():
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)
    return ColumnarTable.open(target)


_URL_VARIABLE = "FUNDATLAS_COLUMNAR_SOURCE"


def _build_in_child(engine: Engine, folder: Path) -> dict:
    """Build and save the copy into ``folder`` in a child process; its meta, or a clear error."""
    env = {**os.environ, _URL_VARIABLE: engine.url.render_as_string(hide_password=False)}  # not in argv: ps shows it
    done = subprocess.run([sys.executable, "-m", "data_sources.columnar", str(folder)], env=env,
                          capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT_S)
    meta_path = folder / "meta.json"
    if done.returncode != 0 or not meta_path.exists():
        shutil.rmtree(folder, ignore_errors=True)
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the columnar copy failed (exit {done.returncode}): {detail}")
    return json.loads(meta_path.read_text())


def _main(argv: Sequence[str]) -> int:
    from data_sources.store import make_engine

    engine = make_engine(os.environ[_URL_VARIABLE])
    table = ColumnarTable.build(engine)
    table.save(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
