"""Each user's path through the dashboard, in headless Chromium on the demo store:

* a funder drills from the world into Afghanistan's provinces, picks one, and goes back up;
* an NGO finds the co-funders of a place and theme and opens a funder's profile;
* a staff member sets filters and exports CSV, XLSX and GeoJSON holding exactly the filtered rows;
* every page fits a phone's width, and no page asks anything of another host.
"""

from __future__ import annotations

import csv
import io
import json
import time
from urllib.parse import parse_qs, urlparse

import openpyxl
import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains

from app import create_app
from data_sources import queries
from data_sources.filters import Filters
from data_sources.store import open_store
from layouts import ids

pytestmark = pytest.mark.browser

# The map's figure as plotly holds it: each trace's locations and the kind of shape it draws.
MAP_TRACES = (f"return document.getElementById('{ids.MAP}').querySelector('.js-plotly-plot').data"
              ".map(t => ({kind: t.customdata && t.customdata.length ? t.customdata[0][t.customdata[0].length - 1]"
              " : null, locations: t.locations || []}))")


def _wait_until(condition, timeout: float = 20, message: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def _query(dash_duo) -> dict:
    return parse_qs(urlparse(dash_duo.driver.current_url).query)


def _text(dash_duo, element_id: str) -> str:
    return dash_duo.find_element(f"#{element_id}").text


def _shape(dash_duo, location: str):
    return dash_duo.driver.execute_script(
        "for (const p of document.querySelectorAll(arguments[0])) {"
        "  if (p.__data__ && p.__data__.loc === arguments[1]) return p; } return null;",
        f"#{ids.MAP} .choroplethlocation", location)


def _hover_text(dash_duo) -> str:
    return dash_duo.driver.execute_script(
        f"const h = document.querySelector('#{ids.MAP} .hoverlayer .hovertext'); return h ? h.textContent : '';")


def _click_shape_showing(dash_duo, location: str, expected_hover: str) -> bool:
    """Move onto a map shape and click it only when its own hover label shows (not a marker's above it)."""
    path = _shape(dash_duo, location)
    if path is None:
        return False
    ActionChains(dash_duo.driver).move_to_element(path).perform()
    try:
        _wait_until(lambda: expected_hover in _hover_text(dash_duo), timeout=3, message="the hover label")
    except AssertionError:
        return False
    ActionChains(dash_duo.driver).click().perform()
    return True


def test_funder_drills_from_world_to_admin1_and_back(dash_duo, demo_store):
    engine = open_store(demo_store)
    dash_duo.start_server(create_app(database_url=demo_store, auto_demo=False))
    dash_duo.wait_for_element(f"#{ids.MAP} .choroplethlocation")
    world_total = _wait_until(lambda: _text(dash_duo, ids.HEADLINE_USD).replace("…", ""), message="the headline")

    # The world map: a click on Afghanistan drills into its provinces (the demo adds its admin-1 areas).
    assert _click_shape_showing(dash_duo, "AFG", "Afghanistan")
    _wait_until(lambda: _query(dash_duo).get("drill") == ["AFG"], message="the drill-down to reach the URL")
    assert _query(dash_duo)["country"] == ["AFG"]
    dash_duo.wait_for_contains_text(f"#{ids.MAP_CRUMB}", "Afghanistan")
    areas = _wait_until(lambda: [t for t in dash_duo.driver.execute_script(MAP_TRACES) if t["kind"] == "admin1"],
                        message="the provinces to be drawn")
    codes = areas[0]["locations"]
    with engine.connect() as conn:
        stored = {r[0] for r in conn.exec_driver_sql(
            "SELECT code FROM admin_areas WHERE country_iso3 = 'AFG' AND level = 1")}
    assert set(codes) == stored and len(codes) >= 30
    afghanistan = queries.headline(engine, Filters(countries=("AFG",)))
    _wait_until(lambda: _text(dash_duo, ids.HEADLINE_USD) not in (world_total, "…"), message="the figures to follow")

    # A province: its area filter; the figures are that province's.
    names = dict(engine.connect().exec_driver_sql(
        "SELECT code, name FROM admin_areas WHERE country_iso3 = 'AFG' AND level = 1").fetchall())
    clicked = next((code for code in codes if _click_shape_showing(dash_duo, code, names[code])), None)
    assert clicked is not None, "no province could be clicked"
    _wait_until(lambda: _query(dash_duo).get("admin1") == [clicked], message="the province to reach the URL")
    province = queries.headline(engine, Filters(countries=("AFG",), admin1=(clicked,)))
    assert province.records <= afghanistan.records
    _wait_until(lambda: _text(dash_duo, ids.HEADLINE_RECORDS) == f"{province.records:,}",
                message="the province's record count")

    # "World" in the breadcrumb goes back up: no drill, no country, no province.
    dash_duo.find_element(f"#{ids.MAP_WORLD}").click()
    _wait_until(lambda: not {"drill", "country", "admin1"} & set(_query(dash_duo)), message="the way back up")
    _wait_until(lambda: _text(dash_duo, ids.HEADLINE_USD) == world_total, message="the world's figures")
    _wait_until(lambda: not [t for t in dash_duo.driver.execute_script(MAP_TRACES) if t["kind"] == "admin1"],
                message="the world map")

    # Without a mouse: choosing Afghanistan alone in the country dropdown drills in as well.
    dash_duo.select_dcc_dropdown(f"#{ids.COUNTRY}", value="Afghanistan")
    _wait_until(lambda: _query(dash_duo).get("drill") == ["AFG"], message="the dropdown's drill-down")
    dash_duo.wait_for_contains_text(f"#{ids.MAP_CRUMB}", "Afghanistan")
    assert dash_duo.get_logs() == []


def test_ngo_finds_cofunders_for_a_place_and_theme_and_opens_a_profile(dash_duo, demo_store):
    engine = open_store(demo_store)
    dash_duo.start_server(create_app(database_url=demo_store, auto_demo=False))
    dash_duo.driver.get(dash_duo.server_url + "/cofunders?theme=WASH&country=KEN")
    top = queries.totals_by(engine, Filters(themes=("WASH",), countries=("KEN",)), "funder", 3)
    # The ranking lists the funders of WASH in Kenya, largest first, as the store's own totals say.
    dash_duo.wait_for_contains_text(f"#{ids.COFUNDERS_RANKING}", top["label"].iloc[0], timeout=30)
    ranking = _text(dash_duo, ids.COFUNDERS_RANKING)
    positions = [ranking.index(label) for label in top["label"]]
    assert positions == sorted(positions)
    assert dash_duo.find_element(f"#{ids.PAGE_MAIN}").is_displayed() is False

    # The first funder's profile link opens its profile page.
    link = dash_duo.find_element(f"#{ids.COFUNDERS_RANKING} a[href^='/funder/']")
    name = link.text
    link.click()
    _wait_until(lambda: urlparse(dash_duo.driver.current_url).path.startswith("/funder/"), message="the profile")
    dash_duo.wait_for_contains_text(f"#{ids.PROFILE_CONTENT}", name, timeout=30)
    assert dash_duo.find_element(f"#{ids.PAGE_PROFILE}").is_displayed()
    assert not dash_duo.find_element(f"#{ids.PAGE_COFUNDERS}").is_displayed()
    key = top["value"].iloc[0]
    rows = queries.filtered_row_count(engine, Filters(funders=(key,)))
    dash_duo.wait_for_contains_text(f"#{ids.PROFILE_TABLE_COUNT}", f"{rows:,}", timeout=30)
    assert dash_duo.get_logs() == []


def _record_keys(rows) -> list[tuple[str, str, int]]:
    return sorted((str(r["source"]), str(r["record_id"]), int(r["alloc"])) for r in rows)


def test_staff_set_filters_and_export_exactly_those_rows(dash_duo, demo_store):
    engine = open_store(demo_store)
    dash_duo.start_server(create_app(database_url=demo_store, auto_demo=False))
    dash_duo.driver.get(dash_duo.server_url + "/?theme=WASH")
    dash_duo.wait_for_element(f"#{ids.TABLE} .ag-row")
    dash_duo.select_dcc_dropdown(f"#{ids.COUNTRY}", value="Kenya")
    _wait_until(lambda: _query(dash_duo).get("country") == ["KEN"], message="the country filter")
    search = dash_duo.find_element(f"#{ids.TABLE_SEARCH}")
    search.send_keys("water")
    _wait_until(lambda: _query(dash_duo).get("q") == ["water"], message="the quick search")
    filters = Filters(themes=("WASH",), countries=("KEN",), q="water")
    expected = _record_keys(queries.iter_rows(engine, filters))
    assert expected, "the demo has WASH rows in Kenya about water"
    _wait_until(lambda: _text(dash_duo, ids.TABLE_COUNT).startswith(f"{len(expected):,} "), message="the row count")

    def href(link_id: str) -> str:
        return _wait_until(lambda: (lambda h: h if "q=water" in h else None)(
            dash_duo.find_element(f"#{link_id}").get_attribute("href")), message=f"{link_id} to follow")

    csv_file = requests.get(href(ids.EXPORT_CSV), timeout=60)
    assert csv_file.status_code == 200 and csv_file.content.startswith(b"\xef\xbb\xbf")
    assert _record_keys(csv.DictReader(io.StringIO(csv_file.content.decode("utf-8-sig")))) == expected

    xlsx_file = requests.get(href(ids.EXPORT_XLSX), timeout=60)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_file.content), read_only=True)["allocations"]
    lines = list(sheet.iter_rows(values_only=True))
    assert _record_keys(dict(zip(lines[0], line, strict=True)) for line in lines[1:]) == expected

    geojson = json.loads(requests.get(href(ids.EXPORT_GEOJSON), timeout=60).content)
    assert _record_keys(f["properties"] for f in geojson["features"]) == expected
    manifest = geojson["fundatlas_manifest"]
    assert parse_qs(manifest["query_string"]) == {"theme": ["WASH"], "country": ["KEN"], "q": ["water"]}
    assert dash_duo.get_logs() == []


PAGES = ("/", "/?country=AFG&drill=AFG", "/cofunders?theme=WASH", "/funder/n%3Ademo-global-water-facility",
         "/sources", "/about", "/embed")


def test_every_page_fits_a_phone_and_asks_nothing_of_other_hosts(dash_duo, demo_store, tmp_path):
    dash_duo.start_server(create_app(database_url=demo_store, auto_demo=False))
    driver = dash_duo.driver
    for width, label in ((1400, "laptop"), (390, "phone")):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
        for path in PAGES:
            driver.get(dash_duo.server_url + path)
            dash_duo.wait_for_element(f"#{ids.PAGE_WORKSPACE}")
            _wait_until(lambda: driver.execute_script(
                "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0"
                " && document.body.innerText.length > 20"), message=f"{path} to load")
            time.sleep(0.5)
            scroll_width = driver.execute_script("return document.documentElement.scrollWidth")
            assert scroll_width <= width + 1, f"{path} scrolls sideways at {width} px ({scroll_width} px wide)"
            driver.save_screenshot(str(tmp_path / f"{label}{path.replace('/', '_')}.png"))
            outside = [r for r in driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
                if not r.startswith(dash_duo.server_url)]
            assert outside == [], path
    assert dash_duo.get_logs() == []
