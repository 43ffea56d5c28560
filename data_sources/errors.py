"""Errors that name the file, the record and the field, so users can fix their input."""

from __future__ import annotations

from dataclasses import dataclass


class FundatlasError(Exception):
    """Base class for errors the command line reports without a traceback."""


class LoadError(FundatlasError):
    """A file that cannot be loaded at all; nothing of it is stored."""

    def __init__(self, file: str, reason: str, record: str | None = None, field: str | None = None):
        self.file = file
        self.reason = reason
        self.record = record
        self.field = field
        where = [file]
        if record:
            where.append(f"record {record}")
        if field:
            where.append(f"field {field}")
        super().__init__(f"{': '.join(where)}: {reason}")


class FormatNotRecognised(LoadError):
    """The content matches none of the registered formats (or not the one asked for)."""


@dataclass(frozen=True)
class Rejection:
    """One source record that was read but not stored, and why."""

    record_id: str
    field: str
    reason: str
