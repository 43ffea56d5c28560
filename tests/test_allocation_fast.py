"""The one-place, one-sector path of ``allocation.allocate`` gives what the general split gives."""

from __future__ import annotations

import itertools
import math

from data_sources import allocation
from data_sources.records import Place, SectorShare, SourceRecord

SHARES = [None, 0, 0.0, -0.0, -1, 0.3, 1, 2, 1.0, math.nan, math.inf]
AMOUNTS = [None, 0, 5, 5.0, -3.5, math.nan, 1e300]


def _same(a: object, b: object) -> bool:
    """Equal and of the same type; NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _fields(found: list[allocation.Allocation]) -> list[tuple[object, ...]]:
    return [(a.alloc, a.share, a.amount, a.basis, a.place.share, a.place.country, a.sector.code) for a in found]


def test_one_place_one_sector_is_the_general_split() -> None:
    checked = 0
    for place_share, sector_share, amount, places, sectors in itertools.product(
        SHARES, SHARES, AMOUNTS, (0, 1), (0, 1)
    ):
        record = SourceRecord(
            "iati", "r", "commitment", amount, "EUR", 2020,
            places=[Place(share=place_share, country="KE")][:places],
            sectors=[SectorShare(share=sector_share, code="12250")][:sectors],
        )
        fast, general = allocation._allocate_one(record), allocation._allocate_split(record)
        assert len(fast) == len(general)
        for mine, theirs in zip(_fields(fast), _fields(general), strict=True):
            assert all(_same(x, y) for x, y in zip(mine, theirs, strict=True)), (mine, theirs)
        through_allocate = _fields(allocation.allocate(record))
        for mine, theirs in zip(through_allocate, _fields(fast), strict=True):
            assert all(_same(x, y) for x, y in zip(mine, theirs, strict=True))
        checked += len(fast)
    assert checked > 0


def test_the_one_place_is_a_copy_with_its_normalised_share() -> None:
    place = Place(share=0.4, country="KE")
    record = SourceRecord("iati", "r", "commitment", 10, "EUR", 2020, places=[place])
    (only,) = allocation.allocate(record)
    assert only.place is not place and place.share == 0.4  # the record's own place is unchanged
    assert (only.share, only.amount, only.basis, only.place.share) == (1.0, 10.0, "whole", 1.0)
    assert type(only.amount) is float  # amount - 0.0, as the general path's remainder
