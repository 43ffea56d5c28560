"""The fundatlas command line end to end on real files: load, summary, export; and the app's export
route gives byte-identical files for the same filters."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app import create_app
from data_sources.cli import main
from tests.conftest import shared_file

FILES = [("iati", "dportal_foodsecurity.xml"), ("360giving", "esmee_grantnav-20180903134856.json")]


@pytest.fixture
def loaded_db(store_url, capsys):
    paths = [str(shared_file(*f)) for f in FILES]
    assert main(["load", *paths, "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert out.count("succeeded") == 2
    return store_url


def test_load_prints_counts_and_fails_on_a_bad_file(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    bad = tmp_path / "notes.xml"
    bad.write_text("<notes><note>hello</note></notes>")
    good = shared_file(*FILES[1])
    assert main(["load", str(good), str(bad), "--db", db, "--report", str(tmp_path / "report.csv")]) == 1
    captured = capsys.readouterr()
    assert "5 records read, 5 rows stored, 0 records rejected" in captured.out
    assert "notes.xml" in captured.err and "format not recognised" in captured.err
    report = (tmp_path / "report.csv").read_text(encoding="utf-8-sig")
    assert "notes.xml" in report


def test_summary_json(loaded_db, capsys):
    assert main(["summary", "--json", "--db", loaded_db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["by_source"]) == {"iati", "360giving"}
    assert data["by_source"]["360giving"]["records"] == 5
    assert data["usd"] == pytest.approx(sum(v["usd"] for v in data["by_source"].values()))


def test_export_filters_and_matches_the_app_route(loaded_db, tmp_path):
    out = tmp_path / "gb.csv"
    args = ["--source", "360giving", "--year-from", "2017", "--country", "GBR"]
    assert main(["export", "--format", "csv", "-o", str(out), "--db", loaded_db, *args]) == 0
    data = out.read_bytes()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows and all(r["source"] == "360giving" and int(r["year"]) >= 2017 for r in rows)
    assert all(r["country_iso3"] == "GBR" for r in rows)

    client = create_app(database_url=loaded_db, auto_demo=False).server.test_client()
    response = client.get("/export/csv?source=360giving&year-from=2017&country=GBR")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.data == data
    assert client.get("/export/csv?country=nowhere").status_code == 400


@pytest.mark.parametrize("fmt", ["xlsx", "geojson"])
def test_other_export_formats(loaded_db, tmp_path, fmt):
    out = tmp_path / f"all.{fmt}"
    assert main(["export", "--format", fmt, "-o", str(out), "--db", loaded_db]) == 0
    assert out.stat().st_size > 1000


def test_load_by_url_iati_file_and_fts_api_query(http_server, tmp_path, monkeypatch, capsys):
    """URLs load like paths: a file URL as is, an FTS API query with every page followed."""
    db = f"sqlite:///{tmp_path / 'url.sqlite'}"
    iati_url = http_server.add_file("/files/activities.xml", shared_file("iati", "dportal_foodsecurity.xml"))
    first_page = http_server.add_fts_pages("/pages")
    monkeypatch.setenv("FUNDATLAS_FTS_API_HOSTS", "127.0.0.1")
    fts_url = http_server.add_redirect("/v1/public/fts/flow", first_page)
    assert main(["load", iati_url, fts_url + "?locationid=1&year=2020", "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"{iati_url} [iati] succeeded: 57 records read, " in out
    assert "[ocha_fts] succeeded: 484 records read" in out  # 200 + 200 + 84 flows over three pages
    assert main(["summary", "--json", "--db", db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["by_source"]["ocha_fts"]["records"] == 484
    # The same URL again: same content, nothing changes.
    assert main(["load", iati_url, "--db", db]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_load_by_url_reports_a_dead_server(http_server, tmp_path, capsys):
    url = http_server.add_status("/gone.xml", 404)
    assert main(["load", url, "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]) == 1
    assert "404" in capsys.readouterr().err
