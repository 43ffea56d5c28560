"""The ``fundatlas`` command line: load, export, summary, serve, demo (../shared/DESIGN.md)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from data_sources import config
from data_sources.errors import FundatlasError
from data_sources.filters import FILTER_NAMES, FilterError, Filters
from data_sources.schema import FLOW_TYPES, SOURCES


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the store (default: $FUNDATLAS_DB, else a SQLite file "
        f"in {config.data_dir()})",
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (repeat a filter to give several values)")
    group.add_argument("--country", action="append", metavar="ISO3")
    group.add_argument("--admin1", action="append", metavar="PCODE")
    group.add_argument("--funder", action="append", metavar="NAME_OR_ID")
    group.add_argument("--recipient", action="append", metavar="NAME_OR_ID")
    group.add_argument("--theme", action="append")
    group.add_argument("--sector", action="append", metavar="CODE")
    group.add_argument("--source", action="append", choices=SOURCES)
    group.add_argument("--flow-type", action="append", choices=FLOW_TYPES)
    group.add_argument("--year-from", type=int)
    group.add_argument("--year-to", type=int)
    group.add_argument("--min-usd", type=float)
    group.add_argument("--q", metavar="TEXT", help="free text over titles, descriptions and names")


def filters_from_args(args: argparse.Namespace) -> Filters:
    values = {}
    for name in FILTER_NAMES:
        value = getattr(args, name.replace("-", "_"), None)
        if value is not None:
            values[name] = value
    return Filters.from_mapping(values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fundatlas", description="Who funds what, where: load, explore, export.")
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser("load", help="load files into the store")
    load.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    load.add_argument("--format", default="auto", choices=("auto", *SOURCES),
                      help="auto (default) detects the format from the content")
    load.add_argument("--mapping", metavar="FILE", help="TOML/YAML mapping for --format table (see docs/mapping.md)")
    load.add_argument("--units", type=float, metavar="N",
                      help="OECD CRS amount units in US dollars (1e6 for millions, 1e3, 1); default: detected")
    load.add_argument("--report", metavar="FILE", help="write every rejection (file, record, field, reason) as CSV")
    _add_db(load)

    export = commands.add_parser("export", help="write the filtered allocation rows")
    export.add_argument("--format", choices=("csv", "xlsx", "geojson"), default="csv")
    export.add_argument("-o", "--output", metavar="FILE", help="output file (default: standard output)")
    export.add_argument("--columns", metavar="A,B,C", help="canonical columns to write, comma-separated "
                        "(always in canonical order; default: all)")
    export.add_argument("--manifest", metavar="FILE", help="also write the export's manifest (filters, files "
                        "and loads, exchange rates, duplicate rules) as JSON; XLSX and GeoJSON always embed it")
    _add_filters(export)
    _add_db(export)

    summary = commands.add_parser("summary", help="totals counted once, by source and by year")
    summary.add_argument("--json", action="store_true", help="print JSON")
    _add_filters(summary)
    _add_db(summary)

    quality = commands.add_parser("quality", help="data quality: shares of money with a known place, sector, "
                                  "recipient and USD value, duplicates, per source and per load")
    quality.add_argument("--json", action="store_true", help="print JSON")
    _add_db(quality)

    reconcile = commands.add_parser("reconcile", help="run the passes that follow every load again: places, "
                                    "organisations, duplicates (and refresh the dashboard's copy)")
    reconcile.add_argument("--pass", dest="passes", action="append", choices=("places", "organisations",
                           "duplicates"), help="run only this pass (repeatable; default: all, in order)")
    _add_db(reconcile)

    duplicates = commands.add_parser("duplicates", help="the double-count ledger: raw vs counted totals per "
                                     "stream, and each excluded record with its rule and the record that counts")
    duplicates.add_argument("--json", action="store_true", help="print JSON")
    duplicates.add_argument("--limit", type=int, default=50, metavar="N", help="excluded rows to list (default 50)")
    _add_db(duplicates)

    serve = commands.add_parser("serve", help="run the dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8050)
    _add_db(serve)

    demo = commands.add_parser("demo", help="write the fictional demo files and load them")
    demo.add_argument("--dir", type=Path, help=f"where to write the files (default: {config.demo_dir()})")
    _add_db(demo)

    boundaries = commands.add_parser("boundaries", help="admin areas (admin-1, admin-2) rows are placed in")
    areas = boundaries.add_subparsers(dest="boundaries_command", required=True)
    add = areas.add_parser("add", help="store a GeoJSON, GeoPackage, shapefile or TopoJSON of admin areas, "
                           "then place the stored rows in them")
    add.add_argument("file", metavar="FILE")
    add.add_argument("--country", metavar="ISO3", help="the country of every area (default: from the file)")
    add.add_argument("--level", type=int, choices=(1, 2), help="admin level (default: from the fields, else 1)")
    for name in ("code", "name", "country"):
        add.add_argument(f"--{name}-field", metavar="F", help=f"the field holding the area's {name} "
                         "(default: detected, e.g. ADM1_PCODE / ADM1_EN / ADM0_PCODE or code_hasc / name / adm0_a3)")
    add.add_argument("--layer", help="the layer of a multi-layer file (default: the one named like adm1)")
    _add_db(add)
    _add_db(areas.add_parser("list", help="the stored admin areas and the place names no area matched"))
    return parser


def _engine(args: argparse.Namespace):
    from data_sources.store import open_store

    return open_store(config.database_url(args.db))


def _print_result(result) -> None:
    print(f"{result.source_file} [{result.format}] {result.status}: {result.message}")
    for rejection in result.rejections[:20]:
        print(f"  rejected record {rejection.record_id}, field {rejection.field}: {rejection.reason}")
    if len(result.rejections) > 20:
        print(f"  ... and {len(result.rejections) - 20} more rejections (use --report FILE for all)")


def _load_one(engine, item: str, fmt: str, progress, mapping: str | None, units: float | None = None):
    """Load a path, or an http(s) URL fetched to a temporary folder first (FTS API queries: every page)."""
    from data_sources.loading import load_file
    from data_sources.remote import fetch_source, is_url

    options = {"mapping": Path(mapping) if mapping else None, "units": units}
    if is_url(item):
        with tempfile.TemporaryDirectory(prefix="fundatlas-") as tmp:
            path = fetch_source(item, Path(tmp))
            return load_file(engine, path, fmt, progress=progress, source_name=item, options=options)
    return load_file(engine, item, fmt, progress=progress, options=options)


def load_paths(
    engine,
    paths: Sequence[str | Path],
    fmt: str = "auto",
    report: str | None = None,
    mapping: str | None = None,
    units: float | None = None,
) -> int:
    """Load each path or URL; prints per-file counts; returns the number of files that failed."""
    from tqdm import tqdm

    if mapping and fmt == "auto":
        fmt = "table"  # a mapping file only makes sense for a generic table
    if mapping and fmt != "table":
        print(f"fundatlas: --mapping is for --format table, not --format {fmt}", file=sys.stderr)
        return len(paths)
    failed = 0
    changed = False
    report_rows: list[dict[str, str]] = []
    for path in paths:
        name = str(path).rstrip("/").rsplit("/", 1)[-1] or str(path)
        with tqdm(desc=name, unit=" records", file=sys.stderr, disable=None, leave=False) as bar:
            try:
                result = _load_one(engine, str(path), fmt, bar.update, mapping, units)
            except FundatlasError as exc:
                failed += 1
                print(f"FAILED {exc}", file=sys.stderr)
                report_rows.append({"file": str(path), "record_id": "", "field": exc_field(exc), "reason": str(exc)})
                continue
        _print_result(result)
        changed = changed or result.status == "succeeded"
        report_rows.extend(
            {"file": result.source_file, "record_id": r.record_id, "field": r.field, "reason": r.reason}
            for r in result.rejections
        )
    if report:
        from data_sources.export import REPORT_COLUMNS, iter_csv

        with open(report, "wb") as fh:
            for chunk in iter_csv(report_rows, REPORT_COLUMNS):
                fh.write(chunk)
    if changed:
        failed += after_writes(engine)
    return failed


def after_writes(engine, passes: Sequence[str] | None = None) -> int:
    """The reconciliation passes, then the dashboard's columnar copy, brought up to date after the
    store changed; prints what they did. Returns 1 when a pass failed (the loads stay stored)."""
    from data_sources import columnar
    from data_sources.reconcile import PASSES, ReconcileError, reconcile

    started = time.perf_counter()
    try:
        result = reconcile(engine, tuple(passes or PASSES),
                           progress=lambda name: print(f"reconciling: {name} ...", file=sys.stderr))
    except ReconcileError as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    print(_reconcile_summary(result))
    if config.columnar_enabled():
        copy_started = time.perf_counter()
        table = columnar.ensure(engine)
        print(f"dashboard copy: {table.rows:,} rows ready in {time.perf_counter() - copy_started:.1f} s")
    print(f"after the loads: {time.perf_counter() - started:.1f} s")
    return 0


def _reconcile_summary(result) -> str:
    parts = []
    places = result.stats.get("places")
    if places is not None:
        parts.append(f"places: {places.get('points_placed', 0):,} points placed, "
                     f"{len(places.get('unmatched', [])):,} place names unmatched")
    orgs = result.stats.get("organisations")
    if orgs is not None:
        parts.append(f"organisations: {orgs.get('organisations', 0):,} identities")
    dupes = result.stats.get("duplicates")
    if dupes is not None:
        parts.append(f"duplicates: {dupes.get('links', 0):,} rows linked")
    timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.seconds.items())
    return "reconciled: " + "; ".join(parts) + (f" ({timing})" if timing else "")


def exc_field(exc: Exception) -> str:
    return getattr(exc, "field", None) or "file"


def _format_usd(value: float) -> str:
    return f"${value:,.0f}"


def _print_summary(data: dict) -> None:
    print(f"records {data['records']:,}  rows {data['rows']:,}  USD counted once {_format_usd(data['usd'])}")
    if data["duplicate_rows_excluded"]:
        print(f"duplicate rows excluded from totals: {data['duplicate_rows_excluded']:,}")
    for title, key in (("by source", "by_source"), ("by flow type", "by_flow_type"), ("by year", "by_year")):
        print(title)
        for name, figures in data[key].items():
            print(f"  {name:<12} {figures['records']:>9,} records {figures['rows']:>9,} rows "
                  f"{_format_usd(figures['usd']):>20}")


def run_demo(engine, directory: Path | None = None) -> int:
    from data_sources.demo import write_demo_bundle

    directory = directory or config.demo_dir()
    paths = write_demo_bundle(directory)
    data_files = [p for p in paths if p.suffix in (".json", ".xml")]
    failed = load_paths(engine, data_files)
    if not failed:
        from data_sources.demo import add_demo_boundaries

        add_demo_boundaries(engine)  # admin-1 areas for the map's drill-down
    return failed


def _print_unmatched(unmatched: list[dict], limit: int = 20) -> None:
    for u in unmatched[:limit]:
        place = " ".join(str(v) for v in (u["code"], u["name"]) if v)
        print(f"  unmatched {u['country_iso3']} {place!r} ({u['rows']:,} rows): {u['reason']}")
    if len(unmatched) > limit:
        print(f"  ... and {len(unmatched) - limit} more unmatched places")


def run_boundaries(engine, args: argparse.Namespace) -> int:
    """``boundaries add`` (store a file, place the rows, print counts) and ``boundaries list``."""
    from data_sources import boundaries

    if args.boundaries_command == "add":
        result = boundaries.add_boundaries(
            engine, args.file, country=args.country, level=args.level, code_field=args.code_field,
            name_field=args.name_field, country_field=args.country_field, layer=args.layer)
        b, stored, placed = result.boundary, result.stored, result.assignment
        fields = b.fields
        print(f"{b.path}: {b.features} features, {len(b.areas)} admin-{fields.level} areas in "
              f"{', '.join(b.countries)} (code {fields.code}, name {fields.name}); {b.merged} merged, "
              f"{b.repaired} repaired; {stored.added} stored, {stored.removed} replaced, "
              f"{len(stored.unchanged)} country/levels unchanged")
        print(f"rows placed: {placed['points_placed']:,} points newly placed, {placed['points_outside']:,} outside "
              f"every area; by method: {placed['rows_by_method']}")
        _print_unmatched(placed["unmatched"])
        return 0
    entries = boundaries.list_boundaries(engine)
    if not entries:
        print("no admin areas stored: add a boundary file with `fundatlas boundaries add FILE`")
    for entry in entries:
        print(f"{entry['country_iso3']} admin-{entry['level']}: {entry['areas']} areas, "
              f"{entry['rows_placed']:,} rows placed, from {entry['source_file']} ({entry['added_at']})")
    with engine.connect() as conn:
        _print_unmatched(boundaries.unmatched_places(conn))
    return 0


def run_export(engine, args: argparse.Namespace) -> int:
    """``fundatlas export``: the rows the app's /export route writes for the same filters and columns;
    XLSX and GeoJSON embed the manifest, as the app's do; ``--manifest FILE`` writes it as JSON (what
    the app serves at /export/manifest.json)."""
    from data_sources.export import choose_columns, write_export
    from data_sources.manifest import build_manifest
    from data_sources.view import View, ViewError

    filters = filters_from_args(args)
    try:
        columns = choose_columns(args.columns)
    except ViewError as exc:
        print(f"fundatlas: --columns: {exc}", file=sys.stderr)
        return 2
    manifest = None
    if args.manifest or args.format != "csv":
        view = View(columns=None if args.columns is None else columns)
        query = "&".join(p for p in (filters.to_query_string(), view.to_query_string()) if p)
        manifest = build_manifest(engine, filters, view, query_string=query, columns=columns,
                                  export={"kind": "rows", "format": args.format})
    if args.manifest:
        Path(args.manifest).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                                       encoding="utf-8")
    embedded = manifest if args.format != "csv" else None
    if args.output:
        with open(args.output, "wb") as out:
            write_export(engine, filters, args.format, out, columns, embedded)
    else:
        write_export(engine, filters, args.format, sys.stdout.buffer, columns, embedded)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "load":
            failed = load_paths(_engine(args), args.paths, args.format, args.report, args.mapping, args.units)
            return 1 if failed else 0
        if args.command == "export":
            return run_export(_engine(args), args)
        if args.command == "summary":
            from data_sources.queries import summary

            data = summary(_engine(args), filters_from_args(args))
            print(json.dumps(data, indent=2)) if args.json else _print_summary(data)
            return 0
        if args.command in ("quality", "duplicates"):
            from data_sources.quality import print_duplicates, print_quality

            return (print_quality if args.command == "quality" else print_duplicates)(_engine(args), args)
        if args.command == "reconcile":
            return after_writes(_engine(args), args.passes)
        if args.command == "demo":
            return 1 if run_demo(_engine(args), args.dir) else 0
        if args.command == "boundaries":
            return run_boundaries(_engine(args), args)
        if args.command == "serve":
            from app import create_app

            app = create_app(database_url=config.database_url(args.db))
            app.run(host=args.host, port=args.port, debug=config.debug_enabled())
            return 0
    except (FundatlasError, FilterError) as exc:
        print(f"fundatlas: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
