"""Streams' own sector texts get their theme from the shipped crosswalk, then from the keyword rules."""

from __future__ import annotations

from sqlalchemy import func, select

from data_sources.enrich import theme_of_source_sector
from data_sources.loading import load_file
from data_sources.store import allocations
from tests.conftest import shared_file


def test_each_stream_uses_its_own_scheme_then_the_keywords():
    assert theme_of_source_sector("hdx_3w", "WASH_OP; Operational Presence") == "WASH"
    assert theme_of_source_sector("ocha_fts", "Water Sanitation Hygiene") == "WASH"
    assert theme_of_source_sector("360giving", "The Advancement Of Health Or Saving Of Lives") == "Health"
    assert theme_of_source_sector("360giving", "102") == "Education"
    assert theme_of_source_sector("iati", "water supply and sanitation") == "WASH"  # no scheme: keywords
    assert theme_of_source_sector("hdx_3w", None) is None


def test_real_3w_clusters_get_themes(sqlite_engine):
    path = shared_file("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv")
    assert load_file(sqlite_engine, path).status == "succeeded"
    with sqlite_engine.connect() as conn:
        themed, total = conn.execute(select(func.count(allocations.c.theme), func.count())).one()
        wash = conn.execute(select(func.count()).where(allocations.c.theme == "WASH")).scalar_one()
    assert themed == total > 10_000  # every cluster of the file is in the crosswalk
    assert wash > 500
