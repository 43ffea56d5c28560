"""Turn a source record into canonical allocation rows: places to ISO3, money to USD, sectors to themes.

Enrichment happens once, at load time, so the app only reads finished rows.
"""

from __future__ import annotations

import math

from data_sources import fx, geography, themes
from data_sources.allocation import Allocation, allocate
from data_sources.records import SourceRecord


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def _sector_fields(allocation: Allocation) -> tuple[str | None, str | None, str | None]:
    """(sector_code, sector_name, theme) of one allocation's sector."""
    code = _clean(allocation.sector.code)
    if not code:
        # A sector without a DAC code (an FTS cluster, say) still gives its own row a theme.
        return None, None, themes.theme_for_text(_clean(allocation.sector.name))
    category_name, theme = themes.dac_category(code)
    name = _clean(allocation.sector.name) or category_name
    return code, name, theme


def _place_fields(allocation: Allocation) -> dict[str, object]:
    place = allocation.place
    iso3 = geography.to_iso3(place.country) if place.country else None
    region = None
    if iso3 is None and place.region:
        region = geography.region_name(str(place.region))
    lat, lon, level = place.lat, place.lon, "unknown"
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        level = "point"
    else:
        lat = lon = None
        if place.admin1_pcode:
            level = "admin1"
        elif iso3:
            point = geography.representative_point(iso3)
            if point is not None:
                lat, lon = point
            level = "country"
        elif region:
            level = "region"
    return {
        "country_iso3": iso3,
        "country_name": geography.country_name(iso3) if iso3 else None,
        "region": region,
        "admin1_pcode": _clean(place.admin1_pcode),
        "admin1_name": _clean(place.admin1_name),
        "lat": lat,
        "lon": lon,
        "geo_level": level,
    }


def _money_fields(record: SourceRecord, amount: float | None, share: float) -> dict[str, object]:
    currency = (record.currency or "").strip().upper() or None
    if amount is None:
        return {"amount": None, "currency": currency, "amount_usd": None, "fx_rate": None, "fx_note": None}
    if record.amount_usd is not None and math.isfinite(record.amount_usd) and record.amount:
        usd = record.amount_usd * share
        rate = record.amount_usd / record.amount
        if math.isfinite(rate) and rate > 0:
            return {"amount": amount, "currency": currency, "amount_usd": usd, "fx_rate": rate,
                    "fx_note": "US dollars as stated by the source"}
    if currency is None or record.year is None:
        note = "no currency given" if currency is None else "no year to choose a rate"
        return {"amount": amount, "currency": currency, "amount_usd": None, "fx_rate": None, "fx_note": note}
    rate, note = fx.usd_rate(currency, record.year)
    usd = amount * rate if rate is not None else None
    if usd is not None and not math.isfinite(usd):
        usd, note = None, f"conversion of {amount} {currency} is not finite"
    return {"amount": amount, "currency": currency, "amount_usd": usd, "fx_rate": rate, "fx_note": note}


def canonical_rows(record: SourceRecord, source_file: str, load_id: int) -> list[dict[str, object]]:
    """The canonical rows (dicts keyed by schema column names) of one source record."""
    base = {
        "source": record.source,
        "record_id": record.record_id,
        "funder_id": _clean(record.funder_id),
        "funder_name": _clean(record.funder_name),
        "funder_type": _clean(record.funder_type),
        "recipient_id": _clean(record.recipient_id),
        "recipient_name": _clean(record.recipient_name),
        "recipient_type": _clean(record.recipient_type),
        "implementer_name": _clean(record.implementer_name),
        "title": _clean(record.title),
        "description": _clean(record.description),
        "flow_type": record.flow_type,
        "source_sector": _clean(record.source_sector),
        "year": record.year,
        "date": record.date,
        "start_date": record.start_date,
        "end_date": record.end_date,
        "duplicate_of": None,
        "source_file": source_file,
        "load_id": load_id,
    }
    text_theme = themes.theme_for_text(record.theme_hint or record.source_sector)
    rows = []
    for allocation in allocate(record):
        code, name, theme = _sector_fields(allocation)
        row = dict(base)
        row.update(alloc=allocation.alloc, allocation_share=allocation.share)
        row.update(sector_code=code, sector_name=name, theme=theme or text_theme)
        row.update(_money_fields(record, allocation.amount, allocation.share))
        row.update(_place_fields(allocation))
        rows.append(row)
    return rows
