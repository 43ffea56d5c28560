"""A narrow columnar copy of the store for the dashboard's aggregates (the "mirror").

SQL over a million-row row store takes seconds per aggregate; the dashboard needs a few hundred
milliseconds for a whole filter change. So the columns the views filter and group on are copied, once
per data version, into integer-coded numpy arrays: every filter becomes a boolean mask built from
small lookup tables, every breakdown a ``bincount``, and distinct counts per country use orders
sorted once at build time. Only page rows are still read from the store (by ``row_id``).

The copy is written to disk (one folder per data version, written under a lock and renamed into
place) and memory-mapped, so several app workers share one copy in the page cache and a restarted
worker is warm at once. It is a cache: deleting it is always safe.

Results equal the SQL queries in ``data_sources.queries`` (tests compare both on SQLite and
PostgreSQL), with one documented difference: an organisation's label is the largest of its names
over all rows, where SQL takes the largest over the filtered rows (they differ only for an id
published under several names).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
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

FORMAT_VERSION = "1"
FETCH_ROWS = 100_000
# Dictionary-encoded columns: name -> SQL expression read from the store.
_DIMENSIONS = {
    "source": "source",
    "country": "country_iso3",
    "country_name": "country_name",
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
_PARTIES = ("funder", "recipient")
# Columns a page may be sorted by here (numbers); other sorts go to SQL.
NUMERIC_SORTS = {"amount": "amount", "amount_usd": "usd", "year": "year", "allocation_share": "share",
                 "fx_rate": "fx_rate", "lat": "lat", "lon": "lon"}
MASK_CACHE = 16


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
        self._masks: OrderedDict[Filters, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # --- building -------------------------------------------------------------------------
    @classmethod
    def build(cls, engine: Engine, progress: Callable[[int], None] | None = None) -> ColumnarTable:
        """Read the store once, in one snapshot, and encode it."""
        from data_sources.queries import data_version

        dialect = engine.dialect.name
        names = [*_DIMENSIONS, *_TEXTS]
        select_list = ", ".join(
            [*(_DIMENSIONS[n] for n in _DIMENSIONS), *_TEXTS,
             "source || ':' || record_id", "row_id", "year", "amount IS NOT NULL", "amount_usd",
             "duplicate_of IS NULL", "allocation_share", "amount", "fx_rate", "lat", "lon"]
        )
        text_chunks: dict[str, list[pa.Array]] = {n: [] for n in [*names, "record"]}
        number_chunks: dict[str, list[np.ndarray]] = {
            n: [] for n in ("row_id", "year", "has_amount", "usd", "counted", "share", "amount", "fx_rate",
                            "lat", "lon")
        }
        with engine.connect() as conn:
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            else:
                conn.exec_driver_sql("BEGIN")  # one snapshot for the version and the rows (WAL)
            version = data_version(engine, conn)
            result = conn.exec_driver_sql(f"SELECT {select_list} FROM allocations ORDER BY row_id")  # noqa: S608
            read = 0
            while batch := result.fetchmany(FETCH_ROWS):
                columns = list(zip(*batch, strict=True))
                for position, name in enumerate([*names, "record"]):
                    text_chunks[name].append(pa.array(columns[position], type=pa.string()))
                row_id, year, has_amount, usd, counted, share, amount, fx_rate, lat, lon = columns[len(names) + 1 :]
                number_chunks["row_id"].append(np.asarray(row_id, dtype=np.int64))
                number_chunks["year"].append(np.asarray([np.nan if y is None else y for y in year],
                                                        dtype=np.float32))
                number_chunks["has_amount"].append(np.asarray(has_amount, dtype=bool))
                number_chunks["counted"].append(np.asarray(counted, dtype=bool))
                for name, column in (("usd", usd), ("share", share), ("amount", amount), ("fx_rate", fx_rate),
                                     ("lat", lat), ("lon", lon)):
                    number_chunks[name].append(np.asarray(column, dtype=np.float64))  # None -> NaN
                read += len(batch)
                if progress is not None:
                    progress(read)
        return cls._from_chunks(text_chunks, number_chunks, {"data_version": version, "dialect": dialect,
                                                             "rows": read, "format": FORMAT_VERSION})

    @classmethod
    def _from_chunks(cls, text_chunks: dict, number_chunks: dict, meta: dict) -> ColumnarTable:
        arrays: dict[str, np.ndarray] = {}
        values: dict[str, pa.Array] = {}

        def concat(name: str, dtype) -> np.ndarray:
            parts = number_chunks[name]
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

        for name in _DIMENSIONS:
            arrays[f"{name}.codes"], values[name] = _encode(text_chunks[name])
        for name in _TEXTS:
            codes, dictionary = _encode(text_chunks[name])
            arrays[f"{name}.codes"], values[name] = codes, _lowered(dictionary, meta["dialect"])
        record_codes, _records = _encode(text_chunks["record"])
        arrays["record"] = record_codes
        for name, dtype in (("row_id", np.int64), ("year", np.float32), ("has_amount", bool), ("usd", np.float64),
                            ("counted", bool), ("share", np.float64), ("amount", np.float64),
                            ("fx_rate", np.float64), ("lat", np.float64), ("lon", np.float64)):
            arrays[name] = concat(name, dtype)
        arrays["usd0"] = np.nan_to_num(arrays["usd"], nan=0.0)
        # A party's key is its id where it has one, else its name (what the filter and the charts use).
        for party in _PARTIES:
            id_codes, name_codes = arrays[f"{party}_id.codes"], arrays[f"{party}_name.codes"]
            id_text = values[f"{party}_id"].take(pa.array(id_codes, mask=id_codes < 0))
            name_text = values[f"{party}_name"].take(pa.array(name_codes, mask=name_codes < 0))
            codes, dictionary = _encode([pc.coalesce(id_text, name_text)])
            arrays[f"{party}.codes"], values[party] = codes, dictionary
            # The label a key shows: the largest of its names, as SQL max().
            values[f"{party}_label"] = _largest_label(codes, len(dictionary), name_codes, values[f"{party}_name"])
            arrays[f"{party}_label.codes"] = np.zeros(0, dtype=np.int32)  # labels are by key, not by row
            # Totals over every row (duplicates too), for the dropdowns' order.
            arrays[f"{party}.usd_all"] = np.bincount(codes[codes >= 0], weights=arrays["usd0"][codes >= 0],
                                                     minlength=len(dictionary))
        for name in ("country", "theme", "sector", "source"):
            codes = arrays[f"{name}.codes"]
            arrays[f"{name}.usd_all"] = np.bincount(codes[codes >= 0], weights=arrays["usd0"][codes >= 0],
                                                    minlength=len(values[name]))
        # Orders for distinct counts per country: rows sorted by (country, key), and each row's group.
        country = arrays["country.codes"]
        for suffix, key in (("record", arrays["record"]), ("funder", arrays["funder.codes"]),
                            ("recipient", arrays["recipient.codes"])):
            order = np.lexsort((key, country)).astype(np.int32)
            keep = key[order] >= 0  # NULL keys are not counted (SQL count(DISTINCT) skips NULL)
            order = order[keep]
            arrays[f"by_country_{suffix}.order"] = order
            arrays[f"by_country_{suffix}.group"] = _group_starts(order, (country, key))
            arrays[f"by_country_{suffix}.country"] = country[order]
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
        arrays = {p.name.removesuffix(".npy"): np.load(p, mmap_mode="r", allow_pickle=False)
                  for p in folder.glob("*.npy")}
        values = {}
        for path in folder.glob("*.values.arrow"):
            with pa.memory_map(str(path), "r") as source:
                values[path.name.removesuffix(".values.arrow")] = pa.ipc.open_file(source).read_all().column(0)\
                    .combine_chunks()
        return cls(arrays, values, meta)

    # --- filtering ------------------------------------------------------------------------
    def mask(self, filters: Filters) -> np.ndarray:
        """Rows matching ``filters`` (all rows, duplicates included), memoised."""
        with self._lock:
            if filters in self._masks:
                self._masks.move_to_end(filters)
                return self._masks[filters]
        mask = self._compute_mask(filters)
        mask.flags.writeable = False
        with self._lock:
            self._masks[filters] = mask
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

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
            if wanted:
                by_id, by_name = self.dims[f"{party}_id"], self.dims[f"{party}_name"]
                mask &= by_id.lookup(wanted)[by_id.codes] | by_name.lookup(wanted)[by_name.codes]
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
        found = np.zeros(self.rows, dtype=bool)
        for name in (*_TEXTS, "funder_name", "recipient_name"):
            dim = self.dims[name]
            values = dim.values if name in _TEXTS else self._lowered_names(name)
            hits = pc.match_substring(values, needle).fill_null(False).to_numpy(zero_copy_only=False)
            table = np.append(hits, False)
            found |= table[dim.codes]
        return found

    def _lowered_names(self, name: str) -> pa.Array:
        cache = self.__dict__.setdefault("_lowered_cache", {})
        if name not in cache:
            cache[name] = _lowered(self.dims[name].values, self.dialect)
        return cache[name]

    def counted(self, filters: Filters) -> np.ndarray:
        """Rows matching ``filters`` that totals count (not a duplicate of another row)."""
        return self.mask(filters) & self.arrays["counted"]

    # --- aggregates (the same frames and records as ``queries``) -----------------------------
    def _distinct_per_country(self, mask: np.ndarray, suffix: str) -> np.ndarray:
        a = self.arrays
        order = a[f"by_country_{suffix}.order"]
        chosen = mask[order]
        groups = a[f"by_country_{suffix}.group"][chosen]
        countries = a[f"by_country_{suffix}.country"][chosen]
        first = np.ones(len(groups), dtype=bool)
        first[1:] = groups[1:] != groups[:-1]
        countries = countries[first]
        return np.bincount(countries[countries >= 0], minlength=len(self.dims["country"].values))

    def country_totals(self, filters: Filters) -> pd.DataFrame:
        a = self.arrays
        mask = self.counted(filters)
        country = self.dims["country"].codes
        with_country = mask & (country >= 0)
        n = len(self.dims["country"].values)
        present = np.bincount(country[with_country], minlength=n) > 0
        usd = np.bincount(country[with_country], weights=a["usd0"][with_country], minlength=n)
        records = self._distinct_per_country(with_country, "record")
        funders = self._distinct_per_country(with_country, "funder")
        recipients = self._distinct_per_country(with_country, "recipient")
        codes = np.flatnonzero(present)
        iso3 = np.asarray(self.dims["country"].values.to_pylist(), dtype=object)[codes]
        labels = np.asarray(self.dims["country_label"].values.to_pylist(), dtype=object)[codes]
        frame = pd.DataFrame({"iso3": iso3, "name": labels, "usd": usd[codes], "records": records[codes],
                              "funders": funders[codes], "recipients": recipients[codes]})
        frame = frame.sort_values("iso3", kind="stable").reset_index(drop=True)
        for column in ("records", "funders", "recipients"):
            frame[column] = frame[column].astype(int)
        return frame

    def headline(self, filters: Filters):
        from data_sources.queries import Headline

        a = self.arrays
        mask = self.counted(filters)

        def distinct(codes: np.ndarray, size: int) -> int:
            chosen = codes[mask]
            return int(np.count_nonzero(np.bincount(chosen[chosen >= 0], minlength=size)))

        flow = self.dims["flow_type"]
        flow_codes = flow.codes[mask]
        flow_usd = np.bincount(flow_codes[flow_codes >= 0], weights=a["usd0"][mask][flow_codes >= 0],
                               minlength=len(flow.values))
        flow_present = np.bincount(flow_codes[flow_codes >= 0], minlength=len(flow.values)) > 0
        flows = {flow.values[int(i)].as_py(): float(flow_usd[i]) for i in np.flatnonzero(flow_present)}
        if np.any(flow_codes < 0):
            flows[None] = float(a["usd0"][mask][flow_codes < 0].sum())  # type: ignore[index]
        return Headline(
            usd=float(a["usd0"][mask].sum()),
            records=distinct(a["record"], int(a["record"].max(initial=-1)) + 1),
            funders=distinct(self.dims["funder"].codes, len(self.dims["funder"].values)),
            recipients=distinct(self.dims["recipient"].codes, len(self.dims["recipient"].values)),
            rows=int(np.count_nonzero(mask)),
            usd_without_country=float(a["usd0"][mask & (self.dims["country"].codes < 0)].sum()),
            amounts_without_usd=int(np.count_nonzero(mask & a["has_amount"] & np.isnan(a["usd"]))),
            usd_by_flow_type=flows,
        )

    def totals_by(self, filters: Filters, dimension: str, limit: int = 10) -> pd.DataFrame:
        a = self.arrays
        mask = self.counted(filters)
        if dimension == "year":
            years = a["year"][mask]
            keep = ~np.isnan(years)
            frame = pd.DataFrame({"year": years[keep].astype(np.int64), "usd": a["usd0"][mask][keep]})
            grouped = frame.groupby("year", sort=True)["usd"].sum()
            return pd.DataFrame({"label": grouped.index.to_numpy(), "value": grouped.index.to_numpy(),
                                 "usd": grouped.to_numpy(dtype=float)})
        if dimension == "theme":
            dim = self.dims["theme"]
            labels = [*dim.values.to_pylist(), "(no theme)"]  # code -1 reads the last label
            codes = np.where(dim.codes[mask] < 0, len(labels) - 1, dim.codes[mask])
            values = np.asarray(labels, dtype=object)
            return self._top(codes, a["usd0"][mask], values, values, limit)
        if dimension in _PARTIES:
            dim = self.dims[dimension]
            codes = dim.codes[mask]
            keep = codes >= 0
            values = np.asarray(dim.values.to_pylist(), dtype=object)
            labels = np.asarray(self.dims[f"{dimension}_label"].values.to_pylist(), dtype=object)
            return self._top(codes[keep], a["usd0"][mask][keep], labels, values, limit)
        raise ValueError(f"unknown breakdown {dimension!r}")

    @staticmethod
    def _top(codes: np.ndarray, usd: np.ndarray, labels: np.ndarray, values: np.ndarray, limit: int) -> pd.DataFrame:
        size = len(values)
        present = np.flatnonzero(np.bincount(codes, minlength=size) > 0)
        sums = np.bincount(codes, weights=usd, minlength=size)[present]
        keys = values[present]
        order = _top_order(sums, keys, limit)  # largest first; ties by value, as SQL's ORDER BY usd DESC, value
        chosen = present[order]
        return pd.DataFrame({"label": labels[chosen], "value": values[chosen], "usd": sums[order].astype(float)})

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
        values = np.asarray(self.dims[value_dim].values.to_pylist(), dtype=object)
        labels = np.asarray(self.dims[label_dim].values.to_pylist(), dtype=object)
        usd = self.arrays[f"{value_dim}.usd_all"]
        order = _top_order(usd, values, limit)
        return [{"label": str(labels[i] or values[i]), "value": str(values[i])} for i in order]


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


def _top_order(sums: np.ndarray, keys: np.ndarray, limit: int) -> np.ndarray:
    """Indexes of the ``limit`` largest ``sums``, ties by ``keys`` ascending."""
    if len(sums) > limit:
        threshold = np.partition(sums, len(sums) - limit)[len(sums) - limit]
        candidates = np.flatnonzero(sums >= threshold)
    else:
        candidates = np.arange(len(sums))
    ordered = sorted(candidates.tolist(), key=lambda i: (-sums[i], keys[i]))
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


def ensure(engine: Engine, root: Path | None = None, progress: Callable[[int], None] | None = None) -> ColumnarTable:
    """The copy for the store's current data version: opened from disk, else built (one process at a
    time; others wait for it and open it) and saved. Older versions of this store are removed."""
    from data_sources.queries import data_version

    version = data_version(engine)
    folder = folder_for(engine, version, root)
    if (folder / "meta.json").exists():
        return ColumnarTable.open(folder)
    with _locked(folder.parent / ".lock"):
        if (folder / "meta.json").exists():  # built by another process while this one waited
            return ColumnarTable.open(folder)
        table = ColumnarTable.build(engine, progress)
        target = folder_for(engine, table.version, root)  # the version read in the build's snapshot
        scratch = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        table.save(scratch)
        if not (target / "meta.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        for old in target.parent.iterdir():
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)
    return ColumnarTable.open(target)
