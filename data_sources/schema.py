"""The canonical allocation table of ../shared/DESIGN.md, defined once.

Everything else (store columns, exports, validation) derives from ``COLUMNS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

SOURCES = ("360giving", "iati", "oecd_crs", "ocha_fts", "hdx_3w", "table")
FLOW_TYPES = ("commitment", "disbursement", "expenditure", "pledge", "grant", "presence")
GEO_LEVELS = ("point", "admin2", "admin1", "country", "region", "unknown")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "int", "float", "date"
    required: bool = False
    doc: str = ""


# Order matters: exports write the canonical columns in exactly this order.
COLUMNS: tuple[Column, ...] = (
    Column("source", "str", True, "stream the row came from"),
    Column("record_id", "str", True, "stable id of the record inside its source"),
    Column("alloc", "int", True, "index of the allocation within its record"),
    Column("allocation_share", "float", True, "share of the record, in (0, 1]"),
    Column("funder_id", "str"),
    Column("funder_name", "str"),
    Column("funder_type", "str"),
    Column("recipient_id", "str"),
    Column("recipient_name", "str"),
    Column("recipient_type", "str"),
    Column("implementer_name", "str"),
    Column("title", "str"),
    Column("description", "str"),
    Column("flow_type", "str", True),
    Column("sector_code", "str"),
    Column("sector_name", "str"),
    Column("theme", "str"),
    Column("source_sector", "str"),
    Column("amount", "float"),
    Column("currency", "str"),
    Column("amount_usd", "float"),
    Column("fx_rate", "float", doc="US dollars per unit of `currency` for `year`"),
    Column("fx_note", "str", doc="why amount_usd is empty, or where the rate came from"),
    Column("year", "int"),
    Column("date", "date"),
    Column("start_date", "date"),
    Column("end_date", "date"),
    Column("country_iso3", "str"),
    Column("country_name", "str"),
    Column("region", "str"),
    Column("admin1_pcode", "str"),
    Column("admin1_name", "str"),
    Column("lat", "float"),
    Column("lon", "float"),
    Column("geo_level", "str", True),
    Column("duplicate_of", "str"),
    Column("source_file", "str", True),
    Column("load_id", "int", True),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMN_KINDS: dict[str, str] = {c.name: c.kind for c in COLUMNS}

_PANDAS_DTYPES = {"str": "object", "int": "Int64", "float": "float64", "date": "object"}


def empty_frame() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series(dtype=_PANDAS_DTYPES[c.kind]) for c in COLUMNS})


def coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns, in order, with canonical dtypes."""
    out = pd.DataFrame(index=frame.index)
    for col in COLUMNS:
        values = frame[col.name] if col.name in frame.columns else pd.Series(None, index=frame.index)
        if col.kind == "int":
            out[col.name] = pd.to_numeric(values, errors="raise").astype("Int64")
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(values, errors="raise").astype("float64")
        else:
            out[col.name] = values.astype("object").where(values.notna(), None)
    return out


def _finite_or_null(series: pd.Series) -> pd.Series:
    return series.isna() | series.map(lambda v: math.isfinite(v) if v is not None else True)


def _iso_date_or_null(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).str.fullmatch(r"\d{4}-\d{2}-\d{2}")


_CHECKS: dict[str, list[pa.Check]] = {
    "source": [pa.Check.isin(SOURCES)],
    "alloc": [pa.Check.ge(0)],
    "allocation_share": [pa.Check.gt(0), pa.Check.le(1.0 + 1e-9)],
    "flow_type": [pa.Check.isin(FLOW_TYPES)],
    "geo_level": [pa.Check.isin(GEO_LEVELS)],
    "currency": [pa.Check.str_matches(r"^[A-Z]{3}$")],
    "amount": [pa.Check(_finite_or_null, element_wise=False, error="amount must be finite")],
    "amount_usd": [pa.Check(_finite_or_null, element_wise=False, error="amount_usd must be finite")],
    "fx_rate": [pa.Check.gt(0)],
    "year": [pa.Check.in_range(1900, 2100)],
    "date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "start_date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "end_date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "country_iso3": [pa.Check.str_matches(r"^[A-Z]{3}$")],
    "lat": [pa.Check.in_range(-90, 90)],
    "lon": [pa.Check.in_range(-180, 180)],
}

_PANDERA_DTYPES = {"str": object, "int": "Int64", "float": float, "date": object}

ALLOCATION_SCHEMA = pa.DataFrameSchema(
    {
        c.name: pa.Column(
            _PANDERA_DTYPES[c.kind],
            checks=_CHECKS.get(c.name, []),
            nullable=not c.required,
            required=True,
        )
        for c in COLUMNS
    },
    checks=[
        pa.Check(
            lambda df: df["amount_usd"].isna() | df["fx_rate"].notna(),
            error="amount_usd needs the fx_rate it was converted at",
        ),
        pa.Check(
            lambda df: df["amount_usd"].notna() | df["amount"].isna() | df["fx_note"].notna(),
            error="an amount without amount_usd needs an fx_note saying why",
        ),
        pa.Check(
            lambda df: df["lat"].isna() == df["lon"].isna(),
            error="lat and lon are given together",
        ),
    ],
    strict=True,
    ordered=True,
    name="allocations",
)


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate a canonical frame; raises ``pandera.errors.SchemaErrors`` listing every failure."""
    return ALLOCATION_SCHEMA.validate(frame, lazy=True)
