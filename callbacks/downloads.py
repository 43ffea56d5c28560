"""The download routes (Flask, beside the Dash app): row exports, summary exports and their manifest.

``/export/<fmt>?<query>``: the filtered rows as CSV, XLSX or GeoJSON, streamed, the columns the
query's ``columns=`` names (all canonical columns without it). ``/export/summary/<by>.<fmt>?<query>``:
totals per funder, recipient, place or year, in US dollars and in the query's display currency.
``/export/manifest.json?<query>``: the manifest of the rows the same query exports (embedded in XLSX
and GeoJSON files; a CSV response names it in the ``X-Fundatlas-Manifest`` header). The query is the
app's own (filters and view settings); anything crafted is a 400 with the reason, never a full dump.
"""

from __future__ import annotations

from urllib.parse import quote

from dash import Dash
from flask import Response, abort, jsonify, request, stream_with_context

from data_sources import queries
from data_sources.export import FORMATS, MEDIA_TYPES, export_chunks
from data_sources.filters import FilterError, Filters
from data_sources.manifest import build_manifest
from data_sources.schema import COLUMN_NAMES
from data_sources.summaries import SUMMARY_BYS, SUMMARY_FORMATS, summary_chunks, summary_columns
from data_sources.view import View, ViewError

MANIFEST_PATH = "/export/manifest.json"


class BadQuery(ValueError):
    """A download query the routes refuse (400)."""


def parse_download_query(query: str) -> tuple[Filters, View]:
    """Filters and view settings of a download query, strictly: a crafted value is a BadQuery."""
    try:
        return Filters.from_query_string(query), View.from_query_string(query)
    except (FilterError, ViewError) as exc:
        raise BadQuery(str(exc)) from None


def parse_summary_name(name: str) -> tuple[str, str]:
    """(by, fmt) of ``funder.csv`` and the like; BadQuery for any other name."""
    by, dot, fmt = name.partition(".")
    if not dot or by not in SUMMARY_BYS or fmt not in SUMMARY_FORMATS:
        raise BadQuery(f"no summary {name[:40]!r}: summaries are {', '.join(SUMMARY_BYS)} as "
                       f"{' or '.join(SUMMARY_FORMATS)} (e.g. /export/summary/funder.csv)")
    return by, fmt


def manifest_href(query: str) -> str:
    return MANIFEST_PATH + (f"?{query}" if query else "")


def _query() -> str:
    return request.query_string.decode("utf-8", "replace")


def _bad(exc: Exception) -> Response:
    return Response(f"Bad request: {exc}\n", status=400, mimetype="text/plain")


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{quote(name)}"'}


def register_routes(app: Dash, engine) -> None:
    @app.server.route("/export/<fmt>")
    def export_file(fmt: str):
        if fmt not in FORMATS:
            abort(404)
        query = _query()
        try:
            chosen, view = parse_download_query(query)
        except BadQuery as exc:
            return _bad(exc)
        columns = view.columns or COLUMN_NAMES
        headers = _attachment(f"fundatlas-export.{fmt}")
        manifest = None
        if fmt == "csv":
            # Counting first reaches the database before the download starts: an outage is a clear 503,
            # not a file cut short.
            rows = queries.filtered_row_count(engine, chosen)
            headers["X-Fundatlas-Manifest"] = manifest_href(query)
        else:
            manifest = build_manifest(engine, chosen, view, query_string=query, columns=columns,
                                      export={"kind": "rows", "format": fmt})
            rows = manifest["row_count"]
        headers["X-Fundatlas-Rows"] = str(rows)
        return Response(stream_with_context(export_chunks(engine, chosen, fmt, columns, manifest)),
                        mimetype=MEDIA_TYPES[fmt], headers=headers)

    @app.server.route("/export/summary/<name>")
    def export_summary(name: str):
        query = _query()
        try:
            by, fmt = parse_summary_name(name)
            chosen, view = parse_download_query(query)
        except BadQuery as exc:
            return _bad(exc)
        columns = list(summary_columns(by, view.currency))
        manifest = build_manifest(engine, chosen, view, query_string=query, columns=columns,
                                  export={"kind": "summary", "by": by, "format": fmt}) if fmt == "xlsx" else None
        headers = {**_attachment(f"fundatlas-summary-{by}.{fmt}"), "X-Fundatlas-Manifest": manifest_href(query)}
        # Summaries are small (one line per group): built whole, so an outage is a clean 503.
        body = b"".join(summary_chunks(engine, chosen, by, fmt, view.currency, manifest))
        return Response(body, mimetype=MEDIA_TYPES[fmt], headers=headers)

    @app.server.route(MANIFEST_PATH)
    def export_manifest():
        query = _query()
        try:
            chosen, view = parse_download_query(query)
        except BadQuery as exc:
            return _bad(exc)
        manifest = build_manifest(engine, chosen, view, query_string=query, columns=view.columns or COLUMN_NAMES)
        response = jsonify(manifest)
        return response
