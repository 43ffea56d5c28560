"""Turn a source record into canonical allocation rows: places to ISO3, money to USD, sectors to themes.

Enrichment happens once, at load time, so the app only reads finished rows.
"""

from __future__ import annotations

import math
from functools import lru_cache

from data_sources import fx, geography, themes
from data_sources.allocation import Allocation, allocate
from data_sources.records import Place, SourceRecord
from data_sources.schema import COLUMN_NAMES


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = (text if text.__class__ is str else str(text)).strip()  # str() of a str is itself
    return text or None


# The sector crosswalk's scheme for each stream's own sector texts (data/sector_crosswalk.csv).
CROSSWALK_SCHEMES = {"ocha_fts": "fts_global_cluster", "hdx_3w": "hxl_sector", "360giving": "360giving"}


def theme_of_source_sector(source: str, text: str | None) -> str | None:
    """The theme of a stream's own sector text: each "; "-separated part looked up in the sector
    crosswalk for the stream's scheme (codes or names), first match wins; else the keyword rules."""
    if not text:
        return None
    scheme = CROSSWALK_SCHEMES.get(source)
    if scheme:
        for part in text.split(";"):
            theme, _subtheme = themes.sector_theme(scheme, part.strip())
            if theme:
                return theme
    return themes.theme_for_text(text)


def _sector_fields(allocation: Allocation, source: str) -> tuple[str | None, str | None, str | None]:
    """(sector_code, sector_name, theme) of one allocation's sector."""
    sector = allocation.sector
    code = _clean(sector.code)
    if not code:
        # A sector without a DAC code (an FTS cluster, say) still gives its own row a theme.
        return None, None, theme_of_source_sector(source, _clean(sector.name))
    name = sector.name
    if name is None or name.__class__ is str:  # text: equal keys, equal answers
        return _coded_sector_fields(code, name)
    return _coded_sector_fields.__wrapped__(code, name)


@lru_cache(maxsize=8192)
def _coded_sector_fields(code: str, name: object) -> tuple[str | None, str | None, str | None]:
    # Cached: a file names the same few hundred (code, name) pairs on every row; the DAC table is fixed.
    category_name, theme = themes.dac_category(code)
    return code, _clean(name) or category_name, theme  # type: ignore[arg-type]


@lru_cache(maxsize=65536)
def _country_fields(country: object, region: object) -> tuple[str | None, str | None, str | None]:
    """(country_iso3, country_name, region) of a place's country and region text; cached, because a
    file names the same few hundred places again and again and name matching is slow."""
    iso3 = geography.to_iso3(country) if country else None  # type: ignore[arg-type]
    region_name = geography.region_name(str(region)) if iso3 is None and region else None
    return iso3, (geography.country_name(iso3) if iso3 else None), region_name


@lru_cache(maxsize=4096)
def _iso3(country: str | None) -> str | None:
    return geography.to_iso3(country) if country else None


def _place_values(place: Place) -> tuple[object, ...]:
    """(country_iso3, country_name, region, admin1_pcode, admin1_name, lat, lon, geo_level) of a place."""
    area = (place.country, place.region, place.admin1_pcode, place.admin1_name)
    # Cached only for text (what loaders give): equal keys then mean equal answers (0.0 and -0.0,
    # or 1 and True, are equal keys whose text differs).
    if all(value is None or value.__class__ is str for value in area):
        values = _area_values(*area)
    else:
        values = _area_values.__wrapped__(*area)
    lat, lon = place.lat, place.lon
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        return (*values[:5], lat, lon, "point")  # the source's own point, as it gave it
    return values


@lru_cache(maxsize=16384)
def _area_values(country: object, region: object, admin1_pcode: object, admin1_name: object) -> tuple[object, ...]:
    """``_place_values`` of a place without a point of its own. Cached: a file names the same few
    thousand places again and again, and every step is a pure function."""
    try:
        iso3, country_name, region_name = _country_fields(country, region)
    except TypeError:  # an unhashable value from a loader: the same answer, uncached
        iso3, country_name, region_name = _country_fields.__wrapped__(country, region)
    lat = lon = None
    level = "unknown"
    if admin1_pcode:
        level = "admin1"
    elif iso3:
        point = geography.representative_point(iso3)
        if point is not None:
            lat, lon = point
        level = "country"
    elif region_name:
        level = "region"
    return (iso3, country_name, region_name, _clean(admin1_pcode), _clean(admin1_name), lat, lon, level)  # type: ignore[arg-type]


def _money_values(record: SourceRecord, amount: float | None, share: float) -> tuple[object, ...]:
    """(amount, currency, amount_usd, fx_rate, fx_note) of one allocation."""
    return _Money(record).values(amount, share)


class _Money:
    """What the money columns of a record's allocations share, worked out once per record: the
    currency, and whether the source's dollars or our annual rate (looked up once) converts them."""

    __slots__ = ("currency", "stated", "rate", "note")

    def __init__(self, record: SourceRecord):
        self.currency = (record.currency or "").strip().upper() or None
        self.stated: float | None = None  # the source's US dollars for the whole record, when usable
        self.rate: float | None = None
        self.note: str | None = None
        if record.amount is None:
            return  # every allocation's amount is None: nothing to convert
        if record.amount_usd is not None and math.isfinite(record.amount_usd) and record.amount:
            rate = record.amount_usd / record.amount
            if math.isfinite(rate) and rate > 0:
                self.stated, self.rate, self.note = record.amount_usd, rate, "US dollars as stated by the source"
                return
        if self.currency is None or record.year is None:
            self.note = "no currency given" if self.currency is None else "no year to choose a rate"
            return
        self.rate, self.note = fx.usd_rate(self.currency, record.year)

    def values(self, amount: float | None, share: float) -> tuple[object, ...]:
        currency = self.currency
        if amount is None:
            return None, currency, None, None, None
        if self.stated is not None:
            return amount, currency, self.stated * share, self.rate, self.note
        rate, note = self.rate, self.note
        usd = amount * rate if rate is not None else None
        if usd is not None and not math.isfinite(usd):
            usd, note = None, f"conversion of {amount} {currency} is not finite"
        return amount, currency, usd, rate, note


def canonical_values(record: SourceRecord, source_file: str, load_id: int) -> list[tuple[object, ...]]:
    """The canonical rows of one source record as value tuples in ``schema.COLUMN_NAMES`` order
    (what the store inserts, without a dict per row)."""
    funder = (_clean(record.funder_id), _clean(record.funder_name), _clean(record.funder_type),
              _clean(record.recipient_id), _clean(record.recipient_name), _clean(record.recipient_type),
              _clean(record.implementer_name), _clean(record.title), _clean(record.description),
              record.flow_type)
    source_sector = _clean(record.source_sector)
    when = (record.year, record.date, record.start_date, record.end_date)
    text_theme = theme_of_source_sector(record.source, record.theme_hint or record.source_sector)
    based = _iso3(_clean(record.recipient_country))
    rows = []
    money = None
    for allocation in allocate(record):
        code, name, theme = _sector_fields(allocation, record.source)
        if money is None:  # once per record, at the first row (a record may have none)
            money = _Money(record)
        rows.append(
            (record.source, record.record_id, allocation.alloc, allocation.share, *funder,
             code, name, theme or text_theme, source_sector,
             *money.values(allocation.amount, allocation.share), *when,
             *_place_values(allocation.place), None, source_file, load_id, allocation.basis, based)
        )
    return rows


def canonical_rows(record: SourceRecord, source_file: str, load_id: int) -> list[dict[str, object]]:
    """The canonical rows (dicts keyed by schema column names) of one source record."""
    return [dict(zip(COLUMN_NAMES, row, strict=True)) for row in canonical_values(record, source_file, load_id)]
