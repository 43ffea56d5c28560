"""The store: the canonical table, the table of loads and their rejections, through SQLAlchemy 2.

SQLite (a file) is the embedded default; PostgreSQL with PostGIS is the server option, where
``allocations.geom`` is a generated point column with a spatial index. The store is the only
module that writes; every write of a load happens in one transaction (see ``loading``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)

from data_sources.schema import COLUMNS

metadata = MetaData()

_SQL_TYPES = {"str": Text, "int": Integer, "float": lambda: Float(precision=53), "date": lambda: String(10)}
# Short columns get bounded types so PostgreSQL can index them cheaply.
_SHORT = {"source": 16, "currency": 3, "country_iso3": 3, "recipient_country_iso3": 3, "geo_level": 8,
          "flow_type": 16, "sector_code": 16}


def _column(name: str, kind: str, required: bool) -> Column:
    sql_type = String(_SHORT[name]) if name in _SHORT else _SQL_TYPES[kind]()
    return Column(name, sql_type, nullable=not required)


allocations = Table(
    "allocations",
    metadata,
    Column("row_id", Integer, primary_key=True, autoincrement=True),
    *(_column(c.name, c.kind, c.required) for c in COLUMNS),
    UniqueConstraint("source", "record_id", "alloc", name="uq_allocations_record_alloc"),
    Index("ix_allocations_load", "load_id"),
    Index("ix_allocations_source_file", "source_file"),
    Index("ix_allocations_country_year", "country_iso3", "year"),
    Index("ix_allocations_year", "year"),
    Index("ix_allocations_funder", "funder_name"),
    Index("ix_allocations_recipient", "recipient_name"),
    Index("ix_allocations_theme", "theme"),
)

loads = Table(
    "loads",
    metadata,
    Column("load_id", Integer, primary_key=True, autoincrement=True),
    Column("source_file", Text, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("format", String(16)),
    Column("status", String(16), nullable=False),  # running, succeeded, failed, replaced
    Column("records_read", Integer, nullable=False, default=0),
    Column("rows_stored", Integer, nullable=False, default=0),
    Column("records_rejected", Integer, nullable=False, default=0),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("message", Text),
    Index("ix_loads_checksum", "checksum"),
    Index("ix_loads_source_file", "source_file"),
)

load_rejections = Table(
    "load_rejections",
    metadata,
    Column("rejection_id", Integer, primary_key=True, autoincrement=True),
    Column("load_id", Integer, nullable=False, index=True),
    Column("record_id", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

# One row: a revision that any writer other than a load (reconciliation passes, boundary files)
# raises, so caches keyed by the data version see their changes too (see ``queries.data_version``).
store_state = Table(
    "store_state",
    metadata,
    Column("state_id", Integer, primary_key=True),
    Column("revision", Integer, nullable=False, default=0),
)


def lock_for_writes(conn) -> None:
    """Take the store's write lock as the first statement of a writing transaction (a load, a
    reconciliation pass, boundaries); held to the commit or rollback, or the death of the process.
    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock now rather than at the first write,
    waiting up to the busy timeout; readers go on (WAL). PostgreSQL: a transaction-level advisory
    lock, one key per database, so writers cannot race on the unique record key or a file's
    replacement."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('fundatlas.load'))"))


def mark_changed(conn) -> None:
    """Record that this transaction changed stored rows outside a load (call inside the transaction)."""
    updated = conn.execute(store_state.update().where(store_state.c.state_id == 1)
                           .values(revision=store_state.c.revision + 1))
    if updated.rowcount == 0:
        conn.execute(store_state.insert().values(state_id=1, revision=1))


_ALLOCATION_COLUMNS = ", ".join(c.name for c in COLUMNS)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_allocation_rows(conn: Connection, rows: Sequence[Sequence[object]]) -> None:
    """Insert allocation rows (value tuples in ``schema.COLUMN_NAMES`` order) in the connection's
    transaction: COPY on PostgreSQL with psycopg, one executemany of tuples elsewhere (the driver's
    own loop, without SQLAlchemy building a parameter dict per row)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with conn.connection.dbapi_connection.cursor() as cursor:  # the transaction's own connection
            with cursor.copy(f"COPY allocations ({_ALLOCATION_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if mark is None:  # a driver with named parameters: SQLAlchemy's own insert
        names = [c.name for c in COLUMNS]
        conn.execute(allocations.insert(), [dict(zip(names, row, strict=True)) for row in rows])
        return
    values = ", ".join([mark] * len(COLUMNS))
    # Fixed column names and placeholders only: every value is a bound parameter.
    statement = f"INSERT INTO allocations ({_ALLOCATION_COLUMNS}) VALUES ({values})"  # noqa: S608
    conn.exec_driver_sql(statement, list(rows))


_POSTGIS_DDL = (
    "CREATE EXTENSION IF NOT EXISTS postgis",
    "ALTER TABLE allocations ADD COLUMN IF NOT EXISTS geom geometry(Point, 4326) GENERATED ALWAYS AS "
    "(CASE WHEN lat IS NOT NULL AND lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END) STORED",
    "CREATE INDEX IF NOT EXISTS ix_allocations_geom ON allocations USING GIST (geom)",
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while a load writes; the busy timeout makes a second writer wait.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's folder when needed."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def initialise(engine: Engine) -> None:
    """Create the tables (and the PostGIS point column) if they do not exist yet, and add the columns
    a store made by an earlier version lacks."""
    metadata.create_all(engine)
    present = {c["name"] for c in inspect(engine).get_columns("allocations")}
    missing = [c for c in allocations.columns if c.name not in present]
    if missing:
        with engine.begin() as conn:
            for column in missing:  # nullable columns only: rows stored before they existed read NULL
                sql_type = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE allocations ADD COLUMN "{column.name}" {sql_type}'))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # ALTER TABLE and CREATE INDEX lock the table even when IF NOT EXISTS makes them no-ops: each
            # command's start would wait for a running load, and readers would queue behind it. The index
            # (made with the column, in one transaction) says whether they are needed.
            if conn.execute(text("SELECT to_regclass('ix_allocations_geom')")).scalar() is None:
                for statement in _POSTGIS_DDL:
                    conn.execute(text(statement))


def open_store(url: str) -> Engine:
    engine = make_engine(url)
    initialise(engine)
    return engine
