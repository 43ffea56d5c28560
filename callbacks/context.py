"""What callbacks share: the store, its columnar copy, and a cache of computed results.

Reads go through a *reader*: the columnar copy (``data_sources.columnar``) when it is ready for the
store's current data version, else SQL on the store (``SqlReader``) while the copy is being built in
a background thread. Both give the same results, so cached values are shared between them.

The result cache is flask-caching: Redis when ``REDIS_URL`` is set (shared by every worker and
replica), else a per-process in-memory cache. Keys hold the data version, so a finished load is
seen at once (the version is re-read at most once a second).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from flask import Flask
from flask_caching import Cache
from sqlalchemy import Engine

from data_sources import columnar, map_views, queries
from data_sources.filters import Filters

T = TypeVar("T")
log = logging.getLogger(__name__)
VERSION_TTL_S = 1.0
CACHE_TIMEOUT_S = 24 * 3600  # keys change with the data version; this only bounds what is kept


class SqlReader:
    """The views' aggregates straight from the store (the fallback while the copy is built)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def country_totals(self, filters: Filters, currency: str = "USD", basis: str = "spent"):
        return queries.country_totals(self.engine, filters, currency, basis)

    def headline(self, filters: Filters, currency: str = "USD") -> queries.Headline:
        return queries.headline(self.engine, filters, currency)

    def totals_by(self, filters: Filters, dimension: str, limit: int = 10, currency: str = "USD"):
        return queries.totals_by(self.engine, filters, dimension, limit, currency)

    def row_count(self, filters: Filters) -> int:
        return queries.filtered_row_count(self.engine, filters)

    def table_page(self, filters: Filters, start: int, end: int, sort: Sequence[tuple[str, str]],
                   columns: Sequence[str]) -> tuple[list[dict], int]:
        return queries.table_page(self.engine, filters, start, end, sort, columns=columns)

    def options(self, kind: str, limit: int = 50) -> list[dict[str, str]]:
        return queries.options(self.engine, kind, "", limit)

    def labels_for(self, kind: str, values: Sequence[str]) -> dict[str, str]:
        return queries.labels_for(self.engine, kind, values)


class ColumnarReader(SqlReader):
    """The same answers from the columnar copy; pages still read their rows from the store."""

    def __init__(self, engine: Engine, table: columnar.ColumnarTable):
        super().__init__(engine)
        self.table = table

    def country_totals(self, filters: Filters, currency: str = "USD", basis: str = "spent"):
        return self.table.country_totals(filters, currency, basis)

    def headline(self, filters: Filters, currency: str = "USD") -> queries.Headline:
        return self.table.headline(filters, currency)

    def totals_by(self, filters: Filters, dimension: str, limit: int = 10, currency: str = "USD"):
        return self.table.totals_by(filters, dimension, limit, currency)

    def row_count(self, filters: Filters) -> int:
        return self.table.row_count(filters)

    def table_page(self, filters: Filters, start: int, end: int, sort: Sequence[tuple[str, str]],
                   columns: Sequence[str]) -> tuple[list[dict], int]:
        row_ids = self.table.page_row_ids(filters, start, end, sort)
        if row_ids is None:  # a text sort: the database's collation decides the order
            rows, _total = queries.table_page(self.engine, filters, start, end, sort, columns=columns)
        else:
            rows = queries.rows_by_id(self.engine, row_ids, columns)
        return rows, self.table.row_count(filters)

    def options(self, kind: str, limit: int = 50) -> list[dict[str, str]]:
        found = self.table.options(kind, limit)
        return found if found is not None else super().options(kind, limit)

    def labels_for(self, kind: str, values: Sequence[str]) -> dict[str, str]:
        found = self.table.labels_for(kind, values)
        return found if found is not None else super().labels_for(kind, values)


def make_cache(server: Flask | None = None, redis_url: str | None = None, prefix: str = "fundatlas") -> Cache:
    """flask-caching on ``server`` (a bare Flask app when None): Redis at ``redis_url`` (or
    ``REDIS_URL``) when set, else in this process."""
    redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL")
    if redis_url:
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_KEY_PREFIX": prefix + ":",
                  "CACHE_DEFAULT_TIMEOUT": CACHE_TIMEOUT_S}
    else:
        config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 512, "CACHE_DEFAULT_TIMEOUT": CACHE_TIMEOUT_S}
    cache = Cache(config=config)
    cache.init_app(server if server is not None else Flask(__name__), config=config)
    return cache


@dataclass
class AppContext:
    engine: Engine
    use_columnar: bool = True
    cache: Cache | None = None
    _version: tuple[float, str] | None = field(default=None, repr=False)
    _table: columnar.ColumnarTable | None = field(default=None, repr=False)
    _building: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = make_cache(prefix=f"fundatlas:{columnar.store_key(self.engine)}")

    # --- the data version and the reader --------------------------------------------------
    def data_version(self) -> str:
        now = time.monotonic()
        cached = self._version
        if cached is None or now - cached[0] > VERSION_TTL_S:
            cached = (now, queries.data_version(self.engine))
            self._version = cached
        return cached[1]

    def reader(self) -> SqlReader:
        """The columnar copy's reader when it matches the data version, else SQL (and the copy is
        brought up to date in the background)."""
        if not self.use_columnar:
            return SqlReader(self.engine)
        version = self.data_version()
        table = self._table
        if table is not None and table.version == version:
            return ColumnarReader(self.engine, table)
        self._refresh_in_background()
        return SqlReader(self.engine)

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._building is not None and self._building.is_alive():
                return
            self._building = threading.Thread(target=self.refresh_columnar, name="fundatlas-columnar", daemon=True)
            self._building.start()

    def refresh_columnar(self) -> columnar.ColumnarTable | None:
        """Open (or build) the copy for the current data version; errors leave SQL in charge."""
        try:
            table = columnar.ensure(self.engine)
            table.warm()
            map_views.warm(table, self.engine)  # the map's columns the copy lacks (place precision, region)
            # The copy's lookups are millions of long-lived objects: leave them out of the garbage
            # collector's full passes, which would otherwise pause a request for a tenth of a second.
            gc.freeze()
        except Exception:  # the app keeps answering from SQL; the log says why
            log.exception("could not build the columnar copy; answering from SQL")
            return None
        self._table = table
        self._version = None  # re-read: the copy may be newer than the version last seen
        return table

    def wait_for_columnar(self, timeout: float = 600) -> bool:
        """Block until the copy is ready (start-up and tests); True when it is."""
        if not self.use_columnar:
            return False
        self.reader()
        building = self._building
        if building is not None:
            building.join(timeout)
        return isinstance(self.reader(), ColumnarReader)

    # --- cached results -------------------------------------------------------------------
    def cached(self, name: str, compute: Callable[[SqlReader, Filters], T], filters: Filters) -> T:
        """``compute(reader, filters)``, memoised by (name, data version, filters) in the cache."""
        raw = f"{name}|{self.data_version()}|{filters!r}"
        key = hashlib.sha256(raw.encode()).hexdigest()
        try:
            value = self.cache.get(key)
        except Exception:  # a cache that is away slows the app down; it must not break it
            log.warning("cache unavailable; computing %s", name, exc_info=True)
            value = None
        if value is not None:
            return value
        value = compute(self.reader(), filters)
        try:
            self.cache.set(key, value)
        except Exception:
            log.warning("cache unavailable; %s not stored", name, exc_info=True)
        return value
