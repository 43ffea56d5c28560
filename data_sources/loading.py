"""Load one file into the store, in one transaction.

- The same content loaded again (same checksum, still current) changes nothing.
- A newer version of a file (same path, new checksum) replaces that file's rows.
- A load that fails is rolled back whole: the store is as it was, and the failure is logged in
  ``loads`` (status ``failed``) in a transaction of its own, so users can see what went wrong.
- Loads into one store run one at a time: each load's transaction first takes the store's write
  lock, then checks the checksum again, so two loads at once neither double nor rewrite rows.
- Records that cannot be used are rejected one by one, each with its record id, field and reason;
  the rest of the file loads.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pandera.errors import SchemaErrors
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from data_sources import read_ahead, registry, schema
from data_sources.errors import LoadError, Rejection
from data_sources.read_ahead import Prepared
from data_sources.store import allocations, insert_allocation_rows, load_rejections, loads, lock_for_writes

CHUNK_RECORDS = 5000
ProgressCallback = Callable[[int], None]


@dataclass
class LoadResult:
    source_file: str
    format: str
    status: str  # succeeded, unchanged, failed
    load_id: int | None = None
    records_read: int = 0
    rows_stored: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    message: str = ""

    @property
    def records_rejected(self) -> int:
        return len(self.rejections)


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _options_for(loader, options: dict | None) -> dict:
    """The options this loader's ``read`` takes (e.g. ``units`` only reaches the CRS loader)."""
    accepted = inspect.signature(loader.read).parameters
    return {k: v for k, v in (options or {}).items() if k in accepted and v is not None}


def _content_checksum(path: Path, options: dict | None) -> str:
    """The file's checksum; with a mapping, the mapping's too, so a corrected mapping loads again."""
    checksum = file_checksum(path)
    mapping = (options or {}).get("mapping")
    units = (options or {}).get("units")
    if mapping is not None:
        from data_sources.table import load_mapping

        checksum = hashlib.sha256((checksum + load_mapping(mapping).fingerprint()).encode()).hexdigest()
    if units is not None:  # the same file read at other units is other data
        checksum = hashlib.sha256(f"{checksum}:units={units}".encode()).hexdigest()
    return checksum


def _now() -> datetime:
    return datetime.now(UTC)


def _current_load_with_checksum(conn: Connection, checksum: str) -> tuple[int, str] | None:
    row = conn.execute(
        select(loads.c.load_id, loads.c.source_file)
        .where(loads.c.checksum == checksum, loads.c.status == "succeeded")
        .order_by(loads.c.load_id.desc())
    ).first()
    return (row.load_id, row.source_file) if row else None


def _ids_stored_elsewhere(conn: Connection, source: str, record_ids: list[str]) -> dict[str, str]:
    """record_id -> source_file for records of ``source`` already stored from other files."""
    found: dict[str, str] = {}
    for start in range(0, len(record_ids), 500):  # SQLite caps bound parameters per statement
        batch = record_ids[start : start + 500]
        rows = conn.execute(
            select(allocations.c.record_id, allocations.c.source_file)
            .where(allocations.c.source == source, allocations.c.record_id.in_(batch))
            .distinct()
        )
        found.update({r.record_id: r.source_file for r in rows})
    return found


def _validated_rows(rows: list[tuple[object, ...]], source_file: str) -> list[tuple[object, ...]]:
    """``rows`` (tuples in ``schema.COLUMN_NAMES`` order) checked against the canonical schema, as the
    store's plain values (NaN and pandas NA as None). Rows that pass the fast vectorised checks skip
    pandera; otherwise pandera validates them and its failures name record and field."""
    plain = schema.plain_rows(rows)
    if plain is not None:
        return plain
    frame = schema.coerce(pd.DataFrame.from_records(rows, columns=list(schema.COLUMN_NAMES)))
    try:
        schema.validate(frame)
    except SchemaErrors as exc:
        cases = exc.failure_cases.head(5)
        details = []
        record_at = schema.COLUMN_NAMES.index("record_id")
        for case in cases.itertuples():
            index = case.index
            record = rows[int(index)][record_at] if isinstance(index, int | float) and index == index else None
            details.append(f"record {record}, field {case.column}: {case.check} (value {case.failure_case!r})")
        raise LoadError(source_file, "rows fail the canonical schema: " + "; ".join(details)) from exc
    # Plain Python values for the driver: NaN and pandas NA become NULL.
    return [
        tuple(None if pd.isna(v) else v.item() if hasattr(v, "item") else v for v in row)
        for row in frame.itertuples(index=False, name=None)
    ]


def _batched(items: Iterable[Prepared | Rejection], size: int) -> Iterator[list[Prepared | Rejection]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _store_records(
    conn: Connection,
    items: Iterable[Prepared | Rejection],
    result: LoadResult,
    load_id: int,
    progress: ProgressCallback | None,
) -> None:
    # Records of this file stored by earlier chunks are found in the store (its rows of any older
    # version were deleted first), so no set of every id read grows with the file; only the ids
    # rejected as stored from another file are kept, as "seen" for a later duplicate in this file.
    rejected_elsewhere: set[tuple[str, str]] = set()
    for batch in _batched(items, CHUNK_RECORDS):
        by_source: dict[str, list[str]] = {}
        for item in batch:
            if not isinstance(item, Rejection):
                by_source.setdefault(item[0], []).append(item[1])
        stored: dict[tuple[str, str], str] = {}
        for source, ids in by_source.items():
            for record_id, other in _ids_stored_elsewhere(conn, source, list(dict.fromkeys(ids))).items():
                stored[(source, record_id)] = other
        seen: set[tuple[str, str]] = set()
        kept: list[Prepared] = []
        for item in batch:
            result.records_read += 1
            if isinstance(item, Rejection):
                result.rejections.append(item)
                continue
            key = (item[0], item[1])
            if key in seen or key in rejected_elsewhere or stored.get(key) == result.source_file:
                duplicate = Rejection(item[1], "record_id", "duplicate id in this file; first kept")
                result.rejections.append(duplicate)
            else:
                seen.add(key)
                kept.append(item)
        rows: list[tuple[object, ...]] = []
        for source, record_id, record_rows, failure in kept:
            key = (source, record_id)
            other = stored.get(key)
            if other is not None:
                reason = f"already stored from {other}; that copy is kept"
                result.rejections.append(Rejection(record_id, "record_id", reason))
                rejected_elsewhere.add(key)
                continue
            if failure is not None:
                raise LoadError(result.source_file, failure, record=record_id)
            rows.extend(record_rows)
        if rows:
            insert_allocation_rows(conn, _validated_rows(rows, result.source_file))
            result.rows_stored += len(rows)
        if progress is not None:
            progress(len(batch))


def load_file(
    engine: Engine,
    path: Path | str,
    fmt: str = "auto",
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
    options: dict | None = None,
    read_ahead_setting: str | None = None,
) -> LoadResult:
    """Load ``path`` into the store. ``source_name`` overrides the provenance name (e.g. a URL);
    ``options`` go to the loader's ``read`` (e.g. ``mapping`` for a generic table);
    ``read_ahead_setting`` overrides ``FUNDATLAS_READ_AHEAD`` (see ``read_ahead.wanted``)."""
    path = Path(path)
    source_file = source_name or str(path.resolve())
    result = LoadResult(source_file=source_file, format=fmt, status="failed")
    if not path.is_file():
        raise LoadError(str(path), "no such file")
    loader = registry.detect_format(path, fmt)
    result.format = loader.NAME
    options = _options_for(loader, options)
    checksum = _content_checksum(path, options)
    started = _now()
    with engine.connect() as conn:  # quick answer for unchanged content, without waiting for the lock
        already = _current_load_with_checksum(conn, checksum)
    if already is not None:
        return _unchanged(result, already)
    try:
        with engine.begin() as conn:
            # Another load waits here, then sees this one's result: the same content is then
            # ``unchanged``, and records it stored are ``already stored``.
            lock_for_writes(conn)
            # Checked again under the lock: a load of the same content may have committed meanwhile.
            already = _current_load_with_checksum(conn, checksum)
            if already is not None:
                return _unchanged(result, already)
            load_id = conn.execute(
                insert(loads).values(
                    source_file=source_file, checksum=checksum, format=loader.NAME,
                    status="running", started_at=started,
                )
            ).inserted_primary_key[0]
            result.load_id = load_id
            # A newer version of the file replaces the rows of the older one.
            conn.execute(delete(allocations).where(allocations.c.source_file == source_file))
            conn.execute(
                update(loads)
                .where(loads.c.source_file == source_file, loads.c.status == "succeeded")
                .values(status="replaced")
            )
            items = _prepared_items(loader, path, options, source_file, load_id, read_ahead_setting)
            try:
                _store_records(conn, items, result, load_id, progress)
            finally:
                items.close()  # stops a read-ahead child at once when the write fails
            if result.rejections:
                conn.execute(
                    insert(load_rejections),
                    [{"load_id": load_id, **vars(r)} for r in result.rejections],
                )
            result.status = "succeeded"
            result.message = (
                f"{result.records_read} records read, {result.rows_stored} rows stored, "
                f"{result.records_rejected} records rejected"
            )
            conn.execute(
                update(loads).where(loads.c.load_id == load_id).values(
                    status="succeeded", records_read=result.records_read, rows_stored=result.rows_stored,
                    records_rejected=result.records_rejected, finished_at=_now(), message=result.message,
                )
            )
    except Exception as exc:
        result.status, result.rows_stored = "failed", 0
        error = exc if isinstance(exc, LoadError) else LoadError(source_file, _reason(exc))
        result.message = str(error)
        _log_failed_load(engine, result, checksum, started)
        raise error from exc
    return result


def _prepared_items(
    loader, path: Path, options: dict, source_file: str, load_id: int, setting: str | None
) -> Iterator[Prepared | Rejection]:
    """The file's records with their rows: prepared in a child process while this one writes, when
    the file is large and there is a second core; else here, one after the other."""
    if read_ahead.wanted(path, setting) and read_ahead.can_send(options):
        return read_ahead.prepared_in_child(loader.NAME, path, options, source_file, load_id)
    return read_ahead.prepare(loader.read(path, **options), source_file, load_id)


def _reason(exc: Exception) -> str:
    """A failure in words a user can act on; database errors without the driver's internals."""
    if isinstance(exc, DBAPIError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        if "database is locked" in detail:
            return "another load is writing to this store and did not finish in time; load again after it"
        return f"the store refused the write: {detail}"
    return f"{type(exc).__name__}: {exc}"


def _unchanged(result: LoadResult, already: tuple[int, str]) -> LoadResult:
    result.status, result.load_id = "unchanged", already[0]
    result.message = f"unchanged: the same content is already loaded (load {already[0]}, {already[1]})"
    return result


def _log_failed_load(engine: Engine, result: LoadResult, checksum: str, started: datetime) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(loads).values(
                    source_file=result.source_file, checksum=checksum, format=result.format, status="failed",
                    records_read=result.records_read, rows_stored=0, records_rejected=result.records_rejected,
                    started_at=started, finished_at=_now(), message=result.message[:4000],
                )
            )
    except Exception:  # noqa: BLE001 - the store may be the thing that failed; the error is raised anyway
        pass
