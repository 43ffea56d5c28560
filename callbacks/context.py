"""What callbacks share: the store's engine and a small cache of query results.

The cache key includes the store's data version, so a finished load is seen at once; entries
are per process (several gunicorn workers each keep their own).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import TypeVar

from sqlalchemy import Engine

from data_sources import queries
from data_sources.filters import Filters

T = TypeVar("T")


@dataclass
class AppContext:
    engine: Engine
    cache_size: int = 256
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def cached(self, name: str, compute: Callable[[Engine, Filters], T], filters: Filters) -> T:
        """``compute(engine, filters)``, memoised by (name, data version, filters)."""
        key = (name, queries.data_version(self.engine), filters)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute(self.engine, filters)
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return value
