"""The ordered registry of loaders, and format detection from a file's content."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from data_sources import crs, fts, giving360, hdx3w, iati, table, textfiles
from data_sources.errors import FormatNotRecognised, LoadError

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
log = logging.getLogger(__name__)


def read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(HEAD_BYTES)


def _accepts(loader: ModuleType, head: bytes, path: Path) -> bool:
    """Whether ``loader`` claims the file; an unexpected error in its detection means "no".

    Detection must never stop a load: a detector that raises on an odd head (it did: ``csv.Error``
    on a bare "\\r" in a .dbf file) is logged as a bug and the next loader is tried.
    """
    try:
        return _claims(loader, head, path)
    except Exception:  # noqa: BLE001 - the safety net: any detector bug is "not this format"
        log.warning("format detection by %s failed on %s; taken as not that format", loader.NAME, path,
                    exc_info=True)
        return False


def _claims(loader: ModuleType, head: bytes, path: Path) -> bool:
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
    if head.startswith(textfiles.XLS_MAGIC):
        raise FormatNotRecognised(
            str(path), "an old binary .xls workbook (whatever its name says): no loader reads it; "
            "save it as .xlsx or CSV",
        )
    for loader in LOADERS.values():
        if _accepts(loader, head, path):
            return loader
    if head.startswith(textfiles.XLSX_MAGIC):
        raise FormatNotRecognised(str(path), _workbook_reason(path))
    raise FormatNotRecognised(
        str(path),
        "format not recognised from its content; expected an IATI activity XML file (<iati-activities> "
        "root), a 360Giving JSON package, CSV or XLSX (titles such as 'Identifier', 'Amount Awarded'), "
        "OCHA FTS flow JSON or CSV, an OECD CRS file (DonorName, RecipientName, PurposeCode, USD_...), "
        "or an HDX 3W/4W table with an HXL hashtag row; for any other table use "
        "--format table --mapping FILE",
    )


def _workbook_reason(path: Path) -> str:
    """Why a zip file was not recognised: not a readable workbook, or no sheet with known titles."""
    try:
        with textfiles.open_workbook(path) as wb:
            for ws in wb.worksheets:  # the first rows of each sheet, as detection read them
                for _ in textfiles.sheet_rows(ws, max_row=25):
                    pass
    except Exception as exc:  # noqa: BLE001 - any failure to open it is the reason given
        return exc.reason if isinstance(exc, LoadError) else f"not a readable XLSX workbook: {exc}"
    return (
        "an XLSX workbook in which no sheet has 360Giving column titles (Identifier, Amount Awarded, "
        "Funding Org:...) or an HDX HXL hashtag row in its first rows; for any other table use "
        "--format table --mapping FILE"
    )
