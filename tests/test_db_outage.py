"""The database going away mid-session: the user gets a clear message (no stack trace), and the app
works again when the database is back. Real PostgreSQL behind a TCP proxy the test cuts."""

from __future__ import annotations

import json

from sqlalchemy import make_url

from app import DATABASE_AWAY, create_app
from data_sources.loading import load_file
from data_sources.store import open_store
from layouts import ids
from tests.conftest import shared_file
from tests.tcp_proxy import TcpProxy


def _headline_request(app, search: str) -> dict:
    key = next(k for k in app.callback_map if f"{ids.HEADLINE_USD}.children" in k)
    outputs = [{"id": part.split(".")[0], "property": part.split(".")[1]} for part in key.strip(".").split("...")]
    return {
        "output": key, "outputs": outputs, "changedPropIds": [f"{ids.URL}.search"],
        "inputs": [{"id": ids.URL, "property": "search", "value": search}], "state": [],
    }


def test_database_away_then_back(pg_template, tmp_path, monkeypatch):
    import callbacks.context
    from tests.conftest import _drop_pg, _new_pg_url

    # The app re-reads the data version at most once a second (within it, a cached answer is served
    # even with the database away); here it re-reads at once, so the outage shows on the next request.
    monkeypatch.setattr(callbacks.context, "VERSION_TTL_S", 0.0)

    url = _new_pg_url(pg_template)
    try:
        load_file(open_store(url), shared_file("iati", "dportal_foodsecurity.xml"))
        real = make_url(url)
        proxy = TcpProxy((real.host, real.port)).start()
        app = create_app(database_url=real.set(port=proxy.port).render_as_string(hide_password=False),
                         auto_demo=False)
        client = app.server.test_client()
        payload = _headline_request(app, "?source=iati")

        ok = client.post("/_dash-update-component", json=payload)
        assert ok.status_code == 200
        usd = json.loads(ok.data)["response"][ids.HEADLINE_USD]["children"]
        assert usd.startswith("$")

        proxy.stop()  # the database goes away mid-session
        away = client.post("/_dash-update-component", json=payload)
        body = away.data.decode()
        assert away.status_code == 200 and DATABASE_AWAY in body
        assert "Traceback" not in body and "psycopg" not in body
        assert ids.HEADLINE_USD not in json.loads(body).get("response", {})  # old figures stay
        export = client.get("/export/csv?source=iati")
        assert export.status_code == 503 and "not reachable" in export.data.decode()

        proxy.start()  # ... and comes back
        again = client.post("/_dash-update-component", json=_headline_request(app, "?source=iati&year-from=1990"))
        assert again.status_code == 200
        assert json.loads(again.data)["response"][ids.HEADLINE_USD]["children"] == usd
        proxy.stop()
    finally:
        _drop_pg(url)
