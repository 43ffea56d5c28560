"""The dashboard in headless Chromium: filters drive map, figures and table; a map click filters;
the Export CSV link downloads exactly what `fundatlas export` writes for the same filters; the
page asks nothing of any host but its own."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains

from app import create_app
from data_sources.cli import main as cli_main
from layouts import ids

pytestmark = pytest.mark.browser

MAP_Z = f"return document.getElementById('{ids.MAP}').querySelector('.js-plotly-plot').data[0].z"


def _text(dash_duo, element_id: str) -> str:
    return dash_duo.find_element(f"#{element_id}").text


def _wait_change(dash_duo, element_id: str, old: str, timeout: float = 15) -> str:
    dash_duo.wait_for_element(f"#{element_id}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = _text(dash_duo, element_id)
        if value not in (old, "…", ""):
            return value
        time.sleep(0.1)
    raise AssertionError(f"#{element_id} stayed {old!r}")


def _wait_until(condition, timeout: float = 15, message: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def _query(dash_duo) -> dict:
    return parse_qs(urlparse(dash_duo.driver.current_url).query)


def _grid_first_rows(dash_duo) -> list[str]:
    dash_duo.wait_for_element(f"#{ids.TABLE} .ag-row .ag-cell")
    # Read in one script: the grid is rebuilt when filters change, which would stale held elements.
    # Visible columns only: AG Grid does not render columns scrolled out of view.
    return dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).slice(0, 5).map(e => e.textContent)",
        f"#{ids.TABLE} .ag-row [col-id='title']",
    )


def _click_country(dash_duo, iso3: str) -> None:
    # plotly keeps each shape's location id in the path's bound data.
    path = dash_duo.driver.execute_script(
        "const paths = document.querySelectorAll(arguments[0]);"
        "for (const p of paths) { if (p.__data__ && p.__data__.loc === arguments[1]) return p; } return null;",
        f"#{ids.MAP} .choroplethlocation", iso3,
    )
    assert path is not None, f"no map shape for {iso3}"
    ActionChains(dash_duo.driver).move_to_element(path).click().perform()


def test_filters_map_click_and_csv_export(dash_duo, demo_store, tmp_path):
    app = create_app(database_url=demo_store, auto_demo=False)
    dash_duo.start_server(app)
    dash_duo.wait_for_text_to_equal("#demo-banner", dash_duo.find_element("#demo-banner").text)
    total = _wait_change(dash_duo, ids.HEADLINE_USD, "…")
    records = _text(dash_duo, ids.HEADLINE_RECORDS)
    rows_text = _wait_change(dash_duo, ids.TABLE_COUNT, "")
    dash_duo.wait_for_element(f"#{ids.MAP} .choroplethlocation")
    z_before = dash_duo.driver.execute_script(MAP_Z)
    first_rows = _grid_first_rows(dash_duo)

    # A filter: theme WASH. Figures, map, table and URL follow.
    dash_duo.select_dcc_dropdown(f"#{ids.THEME}", value="WASH")
    assert _wait_change(dash_duo, ids.HEADLINE_USD, total) != total
    assert _text(dash_duo, ids.HEADLINE_RECORDS) != records
    assert _wait_change(dash_duo, ids.TABLE_COUNT, rows_text) != rows_text
    assert _query(dash_duo)["theme"] == ["WASH"]
    _wait_until(lambda: dash_duo.driver.execute_script(MAP_Z) != z_before, message="the map to follow")
    _wait_until(lambda: _grid_first_rows(dash_duo) != first_rows, message="the table to follow")
    wash_total = _text(dash_duo, ids.HEADLINE_USD)

    # Clicking Kenya filters everything to Kenya.
    _click_country(dash_duo, "KEN")
    _wait_until(lambda: "country" in _query(dash_duo), message="the click to reach the URL")
    assert _query(dash_duo)["country"] == ["KEN"]
    kenya_total = _wait_change(dash_duo, ids.HEADLINE_USD, wash_total)
    assert kenya_total != wash_total

    # The Export CSV link carries the view's filters; its file equals the CLI's export byte for byte.
    href = dash_duo.find_element(f"#{ids.EXPORT_CSV}").get_attribute("href")
    assert parse_qs(urlparse(href).query) == {"theme": ["WASH"], "country": ["KEN"]}
    downloaded = requests.get(href, timeout=30)
    assert downloaded.status_code == 200
    cli_file = tmp_path / "cli.csv"
    assert cli_main(["export", "--db", demo_store, "--theme", "WASH", "--country", "KEN", "-o", str(cli_file)]) == 0
    assert downloaded.content == cli_file.read_bytes()
    assert downloaded.content.startswith(b"\xef\xbb\xbf")
    assert downloaded.content.count(b"\r\n") - 1 == int(_text(dash_duo, ids.TABLE_COUNT).split()[0].replace(",", ""))

    # A bar of the top funders chart filters by that funder; its chip removes the filter again.
    before = _text(dash_duo, ids.HEADLINE_USD)
    dash_duo.wait_for_element(f"#{ids.CHART_FUNDERS} .bars .point path")
    ActionChains(dash_duo.driver).move_to_element(
        dash_duo.find_elements(f"#{ids.CHART_FUNDERS} .bars .point path")[-1]).click().perform()
    _wait_until(lambda: "funder" in _query(dash_duo), message="the bar click to reach the URL")
    funder = _query(dash_duo)["funder"][0]
    assert _wait_change(dash_duo, ids.HEADLINE_USD, before) != before
    chip = f"#{ids.ACTIVE_FILTERS} button[aria-label^='Remove the filter funder']"
    dash_duo.wait_for_element(chip)
    # Found and clicked in one script: the chips re-render as the figures update.
    dash_duo.driver.execute_script("document.querySelector(arguments[0]).click()", chip)
    _wait_until(lambda: "funder" not in _query(dash_duo), message="the chip to remove the funder")
    # The filter takes an organisation identity; the demo's ids are local, so identities go by name.
    assert funder.startswith("n:demo-")
    _wait_until(lambda: _text(dash_duo, ids.HEADLINE_USD) == before, message="the figures to come back")

    # A shared URL restores the view.
    dash_duo.driver.get(dash_duo.server_url + "/?theme=WASH&country=KEN")
    assert _wait_change(dash_duo, ids.HEADLINE_USD, "…") == kenya_total

    # Nothing was asked of any other host.
    resources = dash_duo.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    outside = [r for r in resources if not r.startswith(dash_duo.server_url)]
    assert outside == []
    dash_duo.driver.save_screenshot(str(tmp_path / "dashboard.png"))
    assert dash_duo.get_logs() == []


HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">Evil & Co'
HOSTILE_TITLE = "<script>window.__pwned=2</script>Wells"


def test_names_and_titles_with_html_render_as_text(dash_duo, tmp_path):
    import json as _json

    from data_sources.loading import load_file
    from data_sources.store import open_store

    grants = {"grants": [{
        "id": "360G-HOSTILE-1", "title": HOSTILE_TITLE, "currency": "GBP", "amountAwarded": 1000,
        "awardDate": "2021-04-01", "fundingOrganization": [{"id": "XX-DEMO-EVIL", "name": HOSTILE_NAME}],
        "recipientOrganization": [{"id": "XX-DEMO-R9", "name": "=HYPERLINK(\"http://x\")"}],
        "beneficiaryLocation": [{"countryCode": "KE"}],
    }]}
    path = tmp_path / "hostile.json"
    path.write_text(_json.dumps(grants), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hostile.sqlite'}"
    load_file(open_store(url), path)

    dash_duo.start_server(create_app(database_url=url, auto_demo=False))
    # The grid is rebuilt once the URL is read, so wait on text rather than hold an element.
    dash_duo.wait_for_text_to_equal(f"#{ids.TABLE} .ag-row [col-id='title']", HOSTILE_TITLE)
    dash_duo.wait_for_text_to_equal(f"#{ids.TABLE} .ag-row [col-id='funder_name']", HOSTILE_NAME)
    dash_duo.driver.get(dash_duo.server_url + "/sources")
    dash_duo.wait_for_contains_text(f"#{ids.SOURCES_CONTENT}", "hostile.json")
    assert dash_duo.driver.execute_script("return window.__pwned === undefined")
    assert dash_duo.get_logs() == []
