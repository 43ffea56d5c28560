"""Themes from DAC purpose codes and from free text, checked on real classifications."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from data_sources import themes
from data_sources.errors import LoadError
from tests.conftest import shared_file


@pytest.fixture(autouse=True)
def _no_user_keywords(monkeypatch):
    monkeypatch.delenv(themes.ENV_VAR, raising=False)
    yield
    themes.clear_cache()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("14030", ("Water Supply & Sanitation", "WASH")),
        ("140", ("Water Supply & Sanitation", "WASH")),
        (14030, ("Water Supply & Sanitation", "WASH")),
        ("14030.0", ("Water Supply & Sanitation", "WASH")),
        ("12220", ("Basic Health", "Health")),
        ("13020", ("Population Policies/Programmes & Reproductive Health", "Health")),
        ("11220", ("Basic Education", "Education")),
        ("15180", ("Government & Civil Society-general", "Gender Equality")),  # 5-digit override
        ("16061", ("Other Social Infrastructure & Services", "Arts & Culture")),
        ("16010", ("Other Social Infrastructure & Services", "Social Protection")),
        ("23210", ("Energy generation, renewable sources", "Energy")),
        ("31120", ("Agriculture", "Food & Agriculture")),
        ("72010", ("Emergency Response", "Humanitarian")),
        ("99810", ("Unallocated / Unspecified", "Multisector & Other")),
        ("999", (None, None)),
        ("1403", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("WASH", (None, None)),
    ],
)
def test_dac_category(code, expected):
    assert themes.dac_category(code) == expected


def test_shipped_csvs_use_only_project_themes():
    for name in ("dac_categories.csv", "theme_keywords.csv"):
        with open(themes.DATA_DIR / name, encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert rows
        assert {r["theme"] for r in rows} <= set(themes.THEMES), name
    assert len(themes.THEMES) == 14


def test_every_crs_water_row_is_wash_with_a_subtheme():
    crs = pd.read_csv(shared_file("oecd_crs", "water_germany_crs_microdata.csv"), sep=";", dtype=str)
    for code in crs["SectorCode"].dropna().unique():
        assert themes.dac_category(code)[1] == "WASH"
    # The CRS extract's purpose names map 1:1 onto the 140xx sub-themes.
    with open(themes.DATA_DIR / "wash_subthemes.csv", encoding="utf-8") as handle:
        by_name = {r["name"].replace(" / ", "/"): r["code"] for r in csv.DictReader(handle)}
    for purpose in crs["PurposeName"].dropna().unique():
        assert themes.wash_subtheme(by_name[purpose]) is not None, purpose


def test_wash_subtheme():
    assert themes.wash_subtheme("14031") == "water"
    assert themes.wash_subtheme("14032") == "sanitation"
    assert themes.wash_subtheme("14010") == "water governance"
    assert themes.wash_subtheme(14030) == "water & sanitation"
    assert themes.wash_subtheme("12220") is None
    assert themes.wash_subtheme(None) is None


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Arts", "Arts & Culture"),
        ("access to art,arts education,music,participatory arts", "Arts & Culture"),
        ("water", "WASH"),
        ("Operatioanl Presence: Water, Sanitation & Hygiene", "WASH"),
        ("Operational Presence: Education in Emergencies", "Education"),
        ("Operational Presence: Emergency Shelter & Non-Food Items", "Humanitarian"),
        ("Operational Presence: Food Security & Agriculture", "Food & Agriculture"),
        ("Human Rights, particularly access to justice", "Governance & Civil Society"),
        ("Migrants and Refugees", "Humanitarian"),
        ("Local hospice care", "Health"),
        ("Primary SCHOOLS", "Education"),
        ("agricultural cooperatives", "Food & Agriculture"),
        ("Tackling homelessness", "Social Protection"),
        ("women's rights", "Gender Equality"),
        ("Trade Up (TU)", "Economic Development"),
        ("Climate adaptation", "Environment & Climate"),
    ],
)
def test_theme_for_text(text, theme):
    assert themes.theme_for_text(text) == theme


@pytest.mark.parametrize("text", [None, "", "   ", "Children and young people", "washington", "waterways"])
def test_theme_for_text_unknown(text):
    assert themes.theme_for_text(text) is None


def test_real_360giving_programmes_and_classifications():
    xlsx = pd.read_excel(shared_file("360giving", "abct_a001p00000zgyHZAAY.xlsx"))
    programmes = xlsx["Grant Programme:Title"].dropna().unique()
    assert {p: themes.theme_for_text(p) for p in programmes} == {
        "Migrants and Refugees": "Humanitarian",
        "Human Rights, particularly access to justice": "Governance & Civil Society",
        "Criminal Justice and penal reform": "Governance & Civil Society",
    }
    grants = json.loads(shared_file("360giving", "esmee_grantnav-20180903134856.json").read_text())["grants"]
    found = [themes.theme_for_text(" ".join(c["title"] for c in g["classifications"])) for g in grants]
    assert found.count("Arts & Culture") == 2  # Effervescent, Philharmonia Orchestra


def test_user_keywords_come_first(monkeypatch, tmp_path):
    extra = tmp_path / "keywords.csv"
    extra.write_text("keyword,theme\npub*,Economic Development\nwater,Environment & Climate\n")
    monkeypatch.setenv(themes.ENV_VAR, str(extra))
    assert themes.theme_for_text("More Than a Pub (MTP)") == "Economic Development"
    assert themes.theme_for_text("clean water") == "Environment & Climate"
    assert themes.theme_for_text("hospice") == "Health"  # shipped rows still apply


def test_user_keywords_with_unknown_theme_fail(monkeypatch, tmp_path):
    extra = tmp_path / "keywords.csv"
    extra.write_text("keyword,theme\npub,Pubs\n")
    monkeypatch.setenv(themes.ENV_VAR, str(extra))
    with pytest.raises(LoadError, match="unknown theme 'Pubs'"):
        themes.theme_for_text("a pub")


# --- the sector crosswalk: FTS global clusters, HXL #sector / 3W cluster codes, 360Giving ----------


@pytest.fixture
def _no_user_crosswalk(monkeypatch):
    monkeypatch.delenv(themes.CROSSWALK_ENV_VAR, raising=False)
    themes.clear_cache()


@pytest.mark.usefixtures("_no_user_crosswalk")
@pytest.mark.parametrize(
    ("scheme", "value", "expected"),
    [
        ("fts_global_cluster", "11", ("WASH", None)),
        ("fts_global_cluster", "Water Sanitation Hygiene", ("WASH", None)),
        ("fts_global_cluster", "Water, Sanitation & Hygiene", ("WASH", None)),
        ("fts_global_cluster", "Emergency Shelter and NFI", ("Humanitarian", "shelter")),
        ("fts_global_cluster", "Camp Coordination / Management", ("Humanitarian", "camp coordination")),
        ("fts_global_cluster", "Emergency Telecommunications", ("Humanitarian", "emergency telecommunications")),
        ("fts_global_cluster", "Nutrition", ("Health", "nutrition")),
        ("hxl_sector", "wsh", ("WASH", None)),
        ("hxl_sector", "WASH", ("WASH", None)),
        ("hxl_sector", "SAN", ("WASH", "sanitation")),
        ("hxl_sector", "CCCM", ("Humanitarian", "camp coordination")),
        ("hxl_sector", "ERY", ("Humanitarian", "early recovery")),
        ("hxl_sector", "FSAC_OP", ("Food & Agriculture", "food security")),
        ("360giving", "105", ("Social Protection", "poverty")),
        ("360giving", "Water", ("WASH", "water")),
        ("360giving", "hygiene", ("WASH", "hygiene")),
        ("hxl_sector", "Health", ("Health", None)),
        ("hxl_sector", "nothing like it", (None, None)),
        ("hxl_sector", "", (None, None)),
        ("hxl_sector", None, (None, None)),
        ("unknown_scheme", "WASH", (None, None)),
    ],
)
def test_sector_theme(scheme, value, expected):
    assert themes.sector_theme(scheme, value) == expected


def test_crosswalk_covers_every_real_cluster_and_3w_code(_no_user_crosswalk):
    # Every FTS global cluster of the real flows, by id and by name, and every 3W cluster code.
    page = shared_file("ocha_fts", "custom-search-locationid-1-year-2020.json")
    flows = json.loads(page.read_text())["data"]["flows"]
    clusters = {(o["id"], o["name"]) for f in flows for o in f["destinationObjects"] if o["type"] == "GlobalCluster"}
    assert len(clusters) >= 10
    for cluster_id, name in clusters:
        by_id, by_name = themes.sector_theme("fts_global_cluster", cluster_id), themes.sector_theme(
            "fts_global_cluster", name)
        assert by_id == by_name and by_id[0] in themes.THEMES, name
        # The crosswalk agrees with the keyword themes the FTS loader gives today, where those exist.
        assert themes.theme_for_text(name) in (None, by_id[0]), name
    frame = pd.read_csv(shared_file("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_"
                                    "january_march_2024.csv"), skiprows=[1], dtype=str)
    for code, name in frame[["CLUSTER_SECTOR_CODE", "CLUSTER_SECTOR_NAME"]].drop_duplicates().itertuples(index=False):
        assert themes.sector_theme("hxl_sector", code)[0] == themes.theme_for_text(name), code
    with open(themes.DATA_DIR / "sector_crosswalk.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["theme"] for r in rows} <= set(themes.THEMES)
    assert {r["scheme"] for r in rows} == set(themes.SCHEMES)


def test_user_crosswalk_wins_and_adds_schemes(monkeypatch, tmp_path):
    extra = tmp_path / "crosswalk.csv"
    extra.write_text("scheme,code,name,theme,subtheme\nhxl_sector,WASH,,Health,hygiene\n"
                     "my_scheme,X1,Wells,WASH,water\n")
    monkeypatch.setenv(themes.CROSSWALK_ENV_VAR, str(extra))
    assert themes.sector_theme("hxl_sector", "wash") == ("Health", "hygiene")
    assert themes.sector_theme("hxl_sector", "WSH") == ("WASH", None)  # shipped rows still apply
    assert themes.sector_theme("my_scheme", "wells") == ("WASH", "water")


def test_user_crosswalk_with_bad_rows_fails(monkeypatch, tmp_path):
    extra = tmp_path / "crosswalk.csv"
    monkeypatch.setenv(themes.CROSSWALK_ENV_VAR, str(extra))
    extra.write_text("scheme,code,name,theme,subtheme\nhxl_sector,XX,,Pubs,\n")
    with pytest.raises(LoadError, match="unknown theme 'Pubs'"):
        themes.sector_theme("hxl_sector", "XX")
    themes.clear_cache()
    extra.write_text("scheme,code,name,theme\nhxl_sector,,,WASH\n")
    with pytest.raises(LoadError, match="missing columns"):
        themes.sector_theme("hxl_sector", "XX")
    themes.clear_cache()
    extra.write_text("scheme,code,name,theme,subtheme\nhxl_sector,,,WASH,\n")
    with pytest.raises(LoadError, match="a scheme and a code or a name"):
        themes.sector_theme("hxl_sector", "XX")
