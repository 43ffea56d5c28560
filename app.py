"""fundatlas dashboard: ``python app.py`` or ``fundatlas serve``; ``gunicorn app:server`` in production.

create_app() only assembles: the layout comes from ``layouts``, behaviour from ``callbacks``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import dash_bootstrap_components as dbc  # noqa: F401  (registers the components' assets)
from dash import Dash, set_props
from flask import Response, abort, request
from sqlalchemy.exc import DBAPIError

from callbacks import about, charts, cofunders, export, filters, headline, map, pages, profile, sources, table, view
from callbacks.context import AppContext, make_cache
from callbacks.downloads import register_routes as register_download_routes
from data_sources import columnar, config, queries
from data_sources.export import MEDIA_TYPES, REPORT_COLUMNS, iter_csv
from data_sources.filters import Filters
from data_sources.store import open_store
from layouts import ids
from layouts.main import page, unavailable_page

logger = logging.getLogger("fundatlas")
ASSETS = Path(__file__).resolve().parent / "assets"
SECURITY_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def content_security_policy(script_hashes: list[str], frame_ancestors: str = "'self'") -> str:
    """Everything from this server only; inline scripts only by hash. Styles allow inline because
    plotly.js and AG Grid write <style> elements at run time. ``frame_ancestors``: who may frame the
    page (only this server, except the embed page)."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' " + " ".join(script_hashes),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])


def _demo_label(engine) -> str | None:
    from data_sources.demo import DEMO_LABEL, is_demo_file

    files = queries.current_source_files(engine)
    return f"{DEMO_LABEL}: this map shows generated demo files, not real funding." if any(
        is_demo_file(Path(f).name) for f in files) else None


def _ensure_data(engine, auto_demo: bool) -> None:
    if queries.row_count(engine) == 0 and auto_demo:
        from data_sources.cli import run_demo

        print("fundatlas: the store is empty; building the demo data set (fictional organisations)...",
              file=sys.stderr)
        run_demo(engine)


DATABASE_AWAY = ("The database is not reachable right now, so this view could not be updated. "
                 "It will work again as soon as the database is back: change a filter or reload the page.")
UNEXPECTED = "Something went wrong while updating this view; the error has been logged."


def on_callback_error(error: Exception) -> None:
    """Callbacks that fail show a plain message, never a stack trace; outputs keep their values."""
    if isinstance(error, DBAPIError):
        logger.warning("database unavailable during a callback: %s", error.__class__.__name__)
        set_props(ids.STATUS, {"children": DATABASE_AWAY, "is_open": True})
    else:
        logger.exception("callback failed", exc_info=error)
        set_props(ids.STATUS, {"children": UNEXPECTED, "is_open": True})


def _protect(app: Dash) -> None:
    """A login for private deployments (FUNDATLAS_BASIC_AUTH); it covers every route, exports included."""
    users = config.basic_auth_users()
    if not users:
        return
    import hmac

    from dash_auth import BasicAuth

    def check(username: str, password: str) -> bool:
        expected = users.get(username)
        # Compare in constant time so response times do not give the password away.
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    BasicAuth(app, auth_func=check, secret_key=app.server.secret_key)


def _register_report_route(app: Dash, engine) -> None:
    @app.server.route("/report/<int:load_id>.csv")
    def load_report(load_id: int):
        rejected = queries.rejections(engine, load_id)
        loads = queries.recent_loads(engine, limit=None, load_id=load_id)
        if loads.empty:
            abort(404)
        source_file = loads.iloc[0]["source_file"]
        rows = [] if rejected.empty else [
            {"file": source_file, **r} for r in rejected[["record_id", "field", "reason"]].to_dict("records")
        ]
        return Response(
            iter_csv(rows, REPORT_COLUMNS), mimetype=MEDIA_TYPES["csv"],
            headers={"Content-Disposition": f'attachment; filename="fundatlas-load-{load_id}-report.csv"'},
        )


def create_app(database_url: str | None = None, auto_demo: bool | None = None) -> Dash:
    """A dashboard on the store at ``database_url`` (default: FUNDATLAS_DB or the SQLite default)."""
    engine = open_store(config.database_url(database_url))
    _ensure_data(engine, config.auto_demo_enabled() if auto_demo is None else auto_demo)
    app = Dash(
        __name__,
        title="fundatlas · who funds what, where",
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title=None,
        on_error=on_callback_error,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.server.secret_key = config.secret_key()
    _protect(app)
    context = AppContext(engine, use_columnar=config.columnar_enabled(),
                         cache=make_cache(app.server, prefix=f"fundatlas:{columnar.store_key(engine)}"))
    context.reader()  # starts opening (or building) the columnar copy in the background
    app.server.extensions["fundatlas"] = context

    def layout_inputs(reader, _filters):
        # Whole-table scans: cached per data version, not paid on every page load.
        bounds = queries.year_bounds(engine) or (2000, 2025)
        themes = [o["value"] for o in reader.options("theme", 100)]
        return bounds, themes, _demo_label(engine)

    def serve_layout():
        try:
            return page(*context.cached("layout_inputs", layout_inputs, Filters()))
        except DBAPIError:
            logger.warning("database unavailable while serving the page")
            return unavailable_page(DATABASE_AWAY.replace("change a filter or reload", "reload"))

    app.layout = serve_layout
    for module in (pages, filters, view, map, charts, headline, table, export, sources, about, profile, cofunders):
        module.register(app, context)
    register_download_routes(app, engine)
    _register_report_route(app, engine)

    hashes = list(app.csp_hashes())
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy(hashes)}
    # The embed page (/embed: the map alone) may be framed by a funder's own site.
    embed_headers = {**{k: v for k, v in SECURITY_HEADERS.items() if k != "X-Frame-Options"},
                     "Content-Security-Policy": content_security_policy(hashes, config.embed_frame_ancestors())}

    @app.server.errorhandler(DBAPIError)
    def database_away(_error):
        return Response(DATABASE_AWAY + "\n", status=503, mimetype="text/plain", headers={"Retry-After": "30"})

    @app.server.after_request
    def add_security_headers(response):
        chosen = embed_headers if request.path.rstrip("/") == "/embed" else headers
        for name, value in chosen.items():
            response.headers.setdefault(name, value)
        return response

    return app


def main(argv: list[str] | None = None) -> int:
    """The ``fundatlas`` command; ``python app.py`` with no arguments serves the dashboard."""
    from data_sources.cli import main as cli_main

    return cli_main(argv)


def __getattr__(name: str):
    # `gunicorn app:server` builds the app on first access, not at import (tests import app freely).
    if name == "server":
        return create_app().server
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["serve"]))
