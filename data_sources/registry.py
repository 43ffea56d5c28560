"""The ordered registry of loaders, and format detection from a file's content."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from data_sources import crs, fts, giving360, hdx3w, iati, table
from data_sources.errors import FormatNotRecognised

# Order matters: the first loader whose detect() accepts the content wins.
LOADERS: dict[str, ModuleType] = {
    iati.NAME: iati,
    giving360.NAME: giving360,
    fts.NAME: fts,
    crs.NAME: crs,
    hdx3w.NAME: hdx3w,
    table.NAME: table,  # never detected: a table needs --mapping
}
HEAD_BYTES = 64 * 1024


def read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(HEAD_BYTES)


def _accepts(loader: ModuleType, head: bytes, path: Path) -> bool:
    if not loader.detect(head):
        return False
    # A spreadsheet's head is a zip directory: the 360Giving loader opens it to look at the titles.
    confirm = getattr(loader, "sniff_xlsx", None)
    if confirm is not None and head.startswith(b"PK"):
        return bool(confirm(path))
    return True


def detect_format(path: Path, requested: str = "auto") -> ModuleType:
    """The loader for ``path``: the one asked for, or the first whose detect() accepts the content."""
    if requested != "auto":
        if requested not in LOADERS:
            known = ", ".join(LOADERS)
            raise FormatNotRecognised(str(path), f"unknown format {requested!r}; this version reads: {known}")
        return LOADERS[requested]
    head = read_head(path)
    if not head.strip():
        raise FormatNotRecognised(str(path), "the file is empty")
    for loader in LOADERS.values():
        if _accepts(loader, head, path):
            return loader
    raise FormatNotRecognised(
        str(path),
        "format not recognised from its content; expected an IATI activity XML file (<iati-activities> "
        "root), a 360Giving JSON package, CSV or XLSX (titles such as 'Identifier', 'Amount Awarded'), "
        "OCHA FTS flow JSON or CSV, an OECD CRS file (DonorName, RecipientName, PurposeCode, USD_...), "
        "or an HDX 3W/4W table with an HXL hashtag row; for any other table use "
        "--format table --mapping FILE",
    )
