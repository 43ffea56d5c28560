"""The canonical allocation table of ../shared/DESIGN.md, defined once.

Everything else (store columns, exports, validation) derives from ``COLUMNS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

SOURCES = ("360giving", "iati", "oecd_crs", "ocha_fts", "hdx_3w", "table")
FLOW_TYPES = ("commitment", "disbursement", "expenditure", "pledge", "grant", "presence")
GEO_LEVELS = ("point", "admin2", "admin1", "country", "region", "unknown")
ALLOCATION_BASES = ("whole", "source shares", "even split")


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
    # fundatlas's own columns, after the contract's (../shared/DESIGN.md leaves them to us):
    Column("allocation_basis", "str", doc="how the record was split: whole, source shares or even split"),
    Column("recipient_country_iso3", "str",
           doc="ISO3 of the country where the recipient is based, where the source tells it"),
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
    "allocation_basis": [pa.Check.isin(ALLOCATION_BASES)],
    "currency": [pa.Check.str_matches(r"^[A-Z]{3}$")],
    "amount": [pa.Check(_finite_or_null, element_wise=False, error="amount must be finite")],
    "amount_usd": [pa.Check(_finite_or_null, element_wise=False, error="amount_usd must be finite")],
    "fx_rate": [pa.Check.gt(0)],
    "year": [pa.Check.in_range(1900, 2100)],
    "date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "start_date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "end_date": [pa.Check(_iso_date_or_null, element_wise=False, error="dates are YYYY-MM-DD")],
    "country_iso3": [pa.Check.str_matches(r"^[A-Z]{3}$")],
    "recipient_country_iso3": [pa.Check.str_matches(r"^[A-Z]{3}$")],
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


# --- the fast path: plain rows checked with numpy, the schema's own checks when in doubt ---------

_NONE = type(None)
_PLAIN_TYPES = {"str": {str, _NONE}, "date": {str, _NONE}, "int": {int, _NONE}, "float": {float, int, _NONE}}
_INT64_MAX = 2**63 - 1
_UPPER3 = re.compile(r"[A-Z]{3}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ALLOWED = {"source": frozenset(SOURCES), "flow_type": frozenset(FLOW_TYPES), "geo_level": frozenset(GEO_LEVELS),
            "allocation_basis": frozenset(ALLOCATION_BASES)}
_RANGES = {"lat": 90.0, "lon": 180.0}


def plain_rows(rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]] | None:
    """``rows`` (value tuples in ``COLUMN_NAMES`` order) as the store's values, when every value is a
    plain ``str``, ``int``, ``float`` or None and the rows pass every check of ``ALLOCATION_SCHEMA``.

    None when a value is not plain or any check fails or might: the caller then runs the pandera
    schema, which names each failure. These checks are never looser than the schema's (a test
    holds them side by side), so a row this accepts is a row the schema accepts, with the values
    ``coerce`` would give it (floats for float columns, None for NaN), at a fraction of the cost.
    """
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    if len(columns) != len(COLUMNS):
        return None
    out: list[Sequence[object]] = []
    numbers: dict[str, np.ndarray] = {}
    for col, values in zip(COLUMNS, columns, strict=True):
        types = set(map(type, values))
        if not types <= _PLAIN_TYPES[col.kind] or (col.required and _NONE in types):
            return None
        if col.kind == "float":
            try:
                array = np.array([math.nan if v is None else v for v in values], dtype="float64")
            except OverflowError:
                return None
            if col.required and np.isnan(array).any():
                return None
            numbers[col.name] = array
            plain = array.astype(object)
            plain[np.isnan(array)] = None
            out.append(plain.tolist())
            continue
        if not _column_passes(col, values):
            return None
        out.append(values)
    if not _numbers_pass(numbers, columns[COLUMN_NAMES.index("fx_note")]):
        return None
    return list(zip(*out, strict=True))


def _column_passes(col: Column, values: Sequence[object]) -> bool:
    distinct = set(values) - {None}
    if col.kind == "int":
        low, high = (1900, 2100) if col.name == "year" else (0 if col.name == "alloc" else -_INT64_MAX, _INT64_MAX)
        return not distinct or (low <= min(distinct) and max(distinct) <= high)  # type: ignore[type-var]
    if col.name in _ALLOWED:
        return distinct <= _ALLOWED[col.name]
    if col.name in ("currency", "country_iso3", "recipient_country_iso3"):
        return all(_UPPER3.fullmatch(v) for v in distinct)  # type: ignore[arg-type]
    if col.kind == "date":
        return all(_ISO_DATE.fullmatch(v) for v in distinct)  # type: ignore[arg-type]
    return True


def _numbers_pass(numbers: dict[str, np.ndarray], fx_note: Sequence[object]) -> bool:
    share, amount, usd, rate = (numbers[n] for n in ("allocation_share", "amount", "amount_usd", "fx_rate"))
    lat, lon = numbers["lat"], numbers["lon"]
    with np.errstate(invalid="ignore"):
        if not ((share > 0) & (share <= 1.0 + 1e-9)).all():
            return False
        if np.isinf(amount).any() or np.isinf(usd).any() or not (np.isnan(rate) | (rate > 0)).all():
            return False
        for name, array in (("lat", lat), ("lon", lon)):
            if not (np.isnan(array) | (np.abs(array) <= _RANGES[name])).all():
                return False
    if not (np.isnan(lat) == np.isnan(lon)).all():
        return False
    if (~np.isnan(usd) & np.isnan(rate)).any():
        return False
    unexplained = np.flatnonzero(np.isnan(usd) & ~np.isnan(amount))
    return all(fx_note[i] is not None for i in unexplained)
