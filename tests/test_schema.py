"""The canonical table's schema: exactly DESIGN.md's columns, and its invariants enforced."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pandera.errors import SchemaErrors

from data_sources import schema

DESIGN_COLUMNS = (
    "source record_id alloc allocation_share funder_id funder_name funder_type recipient_id recipient_name "
    "recipient_type implementer_name title description flow_type sector_code sector_name theme source_sector "
    "amount currency amount_usd fx_rate fx_note year date start_date end_date country_iso3 country_name region "
    "admin1_pcode admin1_name lat lon geo_level duplicate_of source_file load_id"
).split()


def _row(**values) -> dict:
    row = dict.fromkeys(schema.COLUMN_NAMES)
    row.update(source="iati", record_id="A-1#t0", alloc=0, allocation_share=1.0, flow_type="disbursement",
               amount=100.0, currency="EUR", amount_usd=110.0, fx_rate=1.1, fx_note="ECB", year=2020,
               date="2020-03-01", country_iso3="KEN", lat=-1.3, lon=36.8, geo_level="point", source_file="f",
               load_id=1)
    row.update(values)
    return row


def _frame(*rows: dict) -> pd.DataFrame:
    return schema.coerce(pd.DataFrame(list(rows), columns=list(schema.COLUMN_NAMES)))


def test_columns_are_the_design_contract_in_order_then_our_own():
    # DESIGN.md fixes its columns and their order; columns it leaves to us come after them.
    assert list(schema.COLUMN_NAMES) == [*DESIGN_COLUMNS, "allocation_basis", "recipient_country_iso3"]
    assert list(schema.empty_frame().columns) == [*DESIGN_COLUMNS, "allocation_basis", "recipient_country_iso3"]


def test_a_good_row_passes():
    schema.validate(_frame(_row(), _row(alloc=1, amount_usd=None, fx_rate=None, fx_note="no rate for XYZ 2020",
                                        currency="XYZ", lat=None, lon=None, geo_level="unknown")))


@pytest.mark.parametrize("bad", [
    {"source": "facebook"},
    {"allocation_share": 0.0},
    {"allocation_share": 1.5},
    {"flow_type": "loan"},
    {"geo_level": "street"},
    {"currency": "euro"},
    {"amount_usd": math.inf},
    {"amount_usd": math.nan, "fx_note": None},
    {"lat": 95.0},
    {"lon": None},
    {"date": "01/03/2020"},
    {"country_iso3": "KE"},
    {"year": 1200},
    {"record_id": None},
    {"amount_usd": 110.0, "fx_rate": None},
])
def test_invariant_violations_are_refused(bad):
    with pytest.raises(SchemaErrors):
        schema.validate(_frame(_row(**bad)))


# --- the fast path (schema.plain_rows) is never looser than the pandera schema ------------------

def _values(row: dict) -> tuple:
    return tuple(row[name] for name in schema.COLUMN_NAMES)


_REFUSED_BY_SCHEMA = [
    {"source": "facebook"}, {"allocation_share": 0.0}, {"allocation_share": 1.5}, {"allocation_share": math.nan},
    {"flow_type": "loan"}, {"geo_level": "street"}, {"currency": "euro"}, {"currency": "EU"},
    {"amount_usd": math.inf}, {"amount": -math.inf}, {"amount_usd": math.nan, "fx_note": None},
    {"amount_usd": None, "fx_note": None}, {"lat": 95.0}, {"lon": -180.5}, {"lon": None}, {"lat": math.nan},
    {"date": "01/03/2020"}, {"start_date": "2020-3-1"}, {"end_date": "x"}, {"country_iso3": "KE"},
    {"country_iso3": "ken"}, {"year": 1200}, {"year": 2101}, {"alloc": -1}, {"record_id": None},
    {"source_file": None}, {"load_id": None}, {"geo_level": None}, {"flow_type": None},
    {"amount_usd": 110.0, "fx_rate": None}, {"fx_rate": 0.0}, {"fx_rate": -1.0},
]


@pytest.mark.parametrize("bad", _REFUSED_BY_SCHEMA)
def test_the_fast_checks_refuse_whatever_the_schema_refuses(bad):
    with pytest.raises(SchemaErrors):
        schema.validate(_frame(_row(**bad)))
    assert schema.plain_rows([_values(_row()), _values(_row(**{"alloc": 1, **bad}))]) is None


@pytest.mark.parametrize("odd", [
    {"year": True}, {"amount": "100"}, {"title": 5}, {"date": pd.Timestamp("2020-01-01")},
    {"year": 2020.0}, {"alloc": None}, {"amount": 10**400},
])
def test_values_that_are_not_plain_are_left_to_the_schema(odd):
    assert schema.plain_rows([_values(_row(**odd))]) is None


def test_the_fast_path_gives_the_values_coerce_gives():
    rows = [_row(), _row(alloc=1, amount=7, amount_usd=None, fx_rate=None, fx_note="no rate for XYZ 2020",
                         currency="XYZ", lat=None, lon=None, geo_level="unknown", title="Wells", year=None),
            _row(alloc=2, amount=math.nan, amount_usd=math.nan, fx_rate=math.nan, fx_note=None)]
    plain = schema.plain_rows([_values(r) for r in rows])
    assert plain is not None
    frame = schema.validate(_frame(*rows))
    expected = [tuple(None if pd.isna(v) else v for v in row) for row in frame.astype(object).itertuples(index=False)]
    assert plain == expected
    assert [type(v) for v in plain[1]] == [type(v) for v in expected[1]]
    assert plain[1][schema.COLUMN_NAMES.index("amount")] == 7.0
    assert isinstance(plain[1][schema.COLUMN_NAMES.index("amount")], float)
