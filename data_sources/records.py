"""What a loader yields: one source record, before it is split into allocation rows.

Loaders parse their format into ``SourceRecord``; ``allocation.allocate`` splits it over its
places and sectors; ``enrich`` adds ISO3 codes, USD amounts, themes and points. Loaders never
touch the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import numpy as np


@dataclass(slots=True)
class Place:
    """One place a record names, with the source's share where it states one.

    ``share`` is a fraction (percentage / 100) or None when the source gives none; shares are
    normalised over a record's places by ``allocation.allocate``.
    ``country`` is whatever the source gives (ISO2, ISO3, numeric or a name); enrichment turns it
    into ISO3. ``lat``/``lon`` are a point the source states (WGS84 degrees).
    """

    share: float | None = None
    country: str | None = None
    region: str | None = None
    admin1_pcode: str | None = None
    admin1_name: str | None = None
    lat: float | None = None
    lon: float | None = None

    def copy(self) -> Self:
        """A shallow copy: the same field values in a new object (faster than ``dataclasses.replace``
        or ``copy.copy``, which a load calls for every place of every record)."""
        return type(self)(self.share, self.country, self.region, self.admin1_pcode, self.admin1_name,
                          self.lat, self.lon)


@dataclass(slots=True)
class SectorShare:
    """One sector a record names. ``code`` is an OECD DAC 5-digit purpose code when known."""

    share: float | None = None
    code: str | None = None
    name: str | None = None

    def copy(self) -> Self:
        """A shallow copy (see ``Place.copy``)."""
        return type(self)(self.share, self.code, self.name)


# Slots: no attribute dict per record, place or sector. A load holds many of them at once, and each
# dict is one more object for the garbage collector to walk.
@dataclass(slots=True)
class SourceRecord:
    """One funding item as its source states it (a grant, a transaction, a budget...)."""

    source: str
    record_id: str
    flow_type: str
    amount: float | None
    currency: str | None
    year: int | None
    date: str | None = None  # YYYY-MM-DD
    start_date: str | None = None
    end_date: str | None = None
    funder_id: str | None = None
    funder_name: str | None = None
    funder_type: str | None = None
    recipient_id: str | None = None
    recipient_name: str | None = None
    recipient_type: str | None = None
    implementer_name: str | None = None
    title: str | None = None
    description: str | None = None
    source_sector: str | None = None  # the source's own classification text, untouched
    theme_hint: str | None = None  # free text the theme crosswalk may use (e.g. 360Giving classifications)
    # US dollars for the whole record when the source states them (FTS amountUSD): kept as given,
    # split by share like the amount, instead of converting at our annual rate.
    amount_usd: float | None = None
    # Where the recipient organisation is based, where the source tells it (a country as ``Place.country``
    # takes it: ISO2, ISO3 or a name); enrichment stores it as ``recipient_country_iso3``.
    recipient_country: str | None = None
    places: list[Place] = field(default_factory=list)
    sectors: list[SectorShare] = field(default_factory=list)
    # Points (lat, lon) the source gives for the whole record (e.g. IATI <location>), not tied to
    # one of ``places``; allocation puts each in the place whose country contains it.
    points: list[tuple[float, float]] = field(default_factory=list)


class SeenIds:
    """The record ids a loader has read, each with where it was, in memory that grows slowly.

    A dict of a million ids takes some 170 MB (an object per id and per place). Here the recent ids
    sit in a small dict; every ``batch`` ids they move into a sorted NumPy array of bytes (some 40
    bytes an id), one array per batch, never merged (a merge would need the whole set twice over
    for a moment). A bit set of the ids' hashes answers most "not seen" without searching the
    arrays. Exact: an id is its UTF-8 bytes plus a closing byte, so NumPy's dropping of trailing NUL
    bytes cannot make two ids equal; ids or places longer than ``WIDTH`` bytes stay in a dict, so
    that one long id cannot widen every slot of an array.
    """

    WIDTH = 96
    BITS = 1 << 24  # 2 MB; about 1 % of new ids search the arrays at a million ids

    def __init__(self, batch: int = 16_384):
        self.batch = batch
        self.recent: dict[str, str] = {}
        self.long: dict[str, str] = {}
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted ids, their places)
        # A bytearray, not a NumPy array: reading or setting one byte is a plain int operation,
        # without a NumPy scalar per look-up (this runs for every id of a file).
        self.bits = bytearray(self.BITS // 8)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _may_hold(self, record_id: str) -> bool:
        h = hash(record_id)
        first, second = h & (self.BITS - 1), (h >> 24) & (self.BITS - 1)
        bits = self.bits
        return bool(bits[first >> 3] & (1 << (first & 7))) and bool(bits[second >> 3] & (1 << (second & 7)))

    def get(self, record_id: str) -> str | None:
        """Where ``record_id`` was first read, or None if it was not."""
        found = self.recent.get(record_id) or self.long.get(record_id)
        if found is not None or not self.runs or not self._may_hold(record_id):
            return found
        key = _packed(record_id)
        for ids, wheres in self.runs:
            if len(key) > ids.itemsize:
                continue  # longer than any id in this array
            # The key in the array's own type: a key of another width would make NumPy copy the array.
            at = int(np.searchsorted(ids, np.array(key, dtype=ids.dtype)))
            if at < len(ids) and ids[at] == key:
                return wheres[at][:-1].decode("utf-8", "surrogatepass")
        return None

    def add(self, record_id: str, where: str) -> None:
        """Remember ``record_id`` (not seen before: ask ``get`` first), read at ``where``."""
        self.count += 1
        self.recent[record_id] = where
        if len(self.recent) < self.batch:
            return
        keys, places = [], []
        bits = self.bits
        for record, spot in self.recent.items():
            key, place = _packed(record), _packed(spot)
            if len(key) > self.WIDTH or len(place) > self.WIDTH:
                self.long[record] = spot
                continue
            keys.append(key)
            places.append(place)
            h = hash(record)
            for bit in (h & (self.BITS - 1), (h >> 24) & (self.BITS - 1)):
                bits[bit >> 3] |= 1 << (bit & 7)
        if keys:
            ids = np.array(keys)
            order = np.argsort(ids, kind="stable")
            self.runs.append((ids[order], np.array(places)[order]))
        self.recent = {}


def _packed(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass") + b"\x01"
