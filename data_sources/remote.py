"""Load by URL: download an IATI / 360Giving file or an OCHA FTS API query (all pages) to a local file.

``fundatlas load`` hands a URL to :func:`fetch_source`, which returns a path in a directory the caller
owns; the file is then loaded like any local file (format detected from content). Downloads:

* stream to a hidden temporary file in the destination directory and are renamed only when complete,
  so a half-downloaded file never appears under its final name;
* retry connection errors, timeouts, 408/429/5xx and broken or undecodable bodies with exponential
  backoff plus jitter, honouring ``Retry-After`` up to a cap; other 4xx fail at once;
* stop at a size cap (``FUNDATLAS_MAX_DOWNLOAD_BYTES``, default 2 GiB), checked against
  ``Content-Length`` and against the bytes actually written (after gzip decoding, which also stops
  decompression bombs);
* follow at most a few redirects, and only to http(s) URLs;
* fail with :class:`DownloadError` (a :class:`~data_sources.errors.LoadError`) naming the URL and the attempts.
"""

from __future__ import annotations

import email.message
import hashlib
import inspect
import io
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import BadStatusLine, RemoteDisconnected
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import requests

from data_sources.errors import LoadError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DownloadError",
    "FTS_API_HOSTS",
    "MAX_BYTES_VARIABLE",
    "USER_AGENT",
    "default_max_bytes",
    "fetch",
    "fetch_fts",
    "fetch_source",
    "is_fts_api_url",
    "is_url",
]

USER_AGENT = "fundatlas/0.1 (+https://github.com/fundatlas)"
DEFAULT_MAX_BYTES = 2 * 1024**3
MAX_BYTES_VARIABLE = "FUNDATLAS_MAX_DOWNLOAD_BYTES"
FTS_HOSTS_VARIABLE = "FUNDATLAS_FTS_API_HOSTS"
FTS_API_HOSTS: tuple[str, ...] = ("hpc.tools",)
_FTS_FLOW_PATH = re.compile(r"/fts/flow(?:/custom-search)?/?$", re.IGNORECASE)
ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
MAX_PAGES = 1000
RETRY_AFTER_CAP = 60.0  # seconds; a server asking for more is retried after this anyway
MAX_BACKOFF = 60.0  # seconds; so a large ``retries`` does not mean waiting for hours
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx
CHUNK_BYTES = 64 * 1024
MAX_NAME_CHARS = 120

ProgressArg = bool | Callable[[int], object]
T = TypeVar("T")

# A scheme followed by "://", or "file:" alone; one-letter schemes are Windows drive letters (C:\...).
_URL_LIKE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://|^(?P<file>file):", re.IGNORECASE)


class DownloadError(LoadError):
    """A URL that could not be downloaded; ``attempts`` says how many requests were made for it."""

    def __init__(self, url: str, reason: str, attempts: int = 1):
        super().__init__(url, reason)
        self.attempts = attempts


class _Transient(Exception):
    """A failure worth retrying (network, timeout, 5xx, 429, garbled body)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Permanent(Exception):
    """A failure that retrying cannot fix (404, size cap, refused redirect)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- URLs ------------------------------------------------------------------------------------------


def is_url(text: str) -> bool:
    """True for an http(s) URL, False for a local path; raises LoadError for other URL schemes.

    ``file:``, ``ftp:`` and the like are refused rather than treated as paths, so that a typo or a
    pasted link fails with a clear message instead of "no such file".
    """
    text = str(text).strip()
    match = _URL_LIKE.match(text)
    if not match:
        return False
    scheme = (match.group("scheme") or match.group("file")).lower()
    if scheme not in ALLOWED_SCHEMES:
        hint = " (give the local path instead)" if scheme == "file" else ""
        raise LoadError(text, f"only http and https URLs can be loaded, not {scheme}:{hint}")
    if not urlsplit(text).hostname:
        raise LoadError(text, "the URL has no host name")
    return True


def _require_url(url: str) -> None:
    if not is_url(url):
        raise LoadError(str(url), "not an http or https URL")


def _fts_hosts() -> tuple[str, ...]:
    extra = os.environ.get(FTS_HOSTS_VARIABLE, "")
    return FTS_API_HOSTS + tuple(h.strip().lower() for h in extra.split(",") if h.strip())


def is_fts_api_url(url: str, hosts: tuple[str, ...] | None = None) -> bool:
    """True for an OCHA FTS API flow search, e.g. ``https://api.hpc.tools/v1/public/fts/flow?year=2020``.

    The path must end in ``/fts/flow`` or ``/fts/flow/custom-search``; ``groupby`` reports and the plan
    overview (``/fts/flow/plan/overview/...``) are not lists of flows. ``hosts`` (each also matching its
    subdomains) defaults to ``hpc.tools`` plus the comma-separated ``FUNDATLAS_FTS_API_HOSTS``.
    """
    try:
        parts = urlsplit(str(url).strip())
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not host:
        return False
    allowed = tuple(h.lower() for h in hosts) if hosts is not None else _fts_hosts()
    if not any(host == h or host.endswith("." + h) for h in allowed):
        return False
    if not _FTS_FLOW_PATH.search(parts.path):
        return False
    return "groupby" not in {key.lower() for key in parse_qs(parts.query)}


# --- sizes -------------------------------------------------------------------------------------------


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def default_max_bytes() -> int:
    """The size cap: ``FUNDATLAS_MAX_DOWNLOAD_BYTES`` (bytes, or e.g. ``500M``, ``4G``), else 2 GiB."""
    raw = os.environ.get(MAX_BYTES_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    match = _SIZE.match(raw)
    if not match:
        raise LoadError(MAX_BYTES_VARIABLE, f"expected a number of bytes such as 4294967296 or 4G, not {raw!r}")
    factor = 1024 ** " KMGT".index((match.group(2) or " ").upper())
    return int(float(match.group(1)) * factor)


def _cap_reason(cap: int, size: int | None = None) -> str:
    what = f"the download ({_human_bytes(size)})" if size is not None else "the download"
    return f"{what} is larger than the {_human_bytes(cap)} cap; set {MAX_BYTES_VARIABLE} to raise it"


# --- file names --------------------------------------------------------------------------------------


def _sanitise_name(name: str, fallback: str = "download") -> str:
    """A safe single file name: no directories, no leading dots, no control characters, bounded length."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]  # a header or URL may carry a path; keep the last part only
    name = re.sub(r"[^\w.\-+()\[\] ]", "_", name).strip(" ._")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        name = fallback
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME_CHARS]
    return name


def _name_from_response(resp: requests.Response, url: str) -> str:
    disposition = resp.headers.get("content-disposition")
    if disposition:
        msg = email.message.Message()
        msg["content-disposition"] = disposition
        filename = msg.get_filename()  # handles filename*=UTF-8''... (RFC 2231) too
        if filename:
            return _sanitise_name(filename)
    path = urlsplit(url).path
    return _sanitise_name(unquote(path.rstrip("/").rpartition("/")[2]))


def _unique_path(dest_dir: Path, name: str) -> Path:
    """``dest_dir/name``, or ``name-1.ext``, ``name-2.ext``... when taken (several URLs, one directory)."""
    candidate = dest_dir / name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n = 1
    while candidate.exists():
        candidate = dest_dir / (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
        n += 1
    return candidate


# --- HTTP --------------------------------------------------------------------------------------------


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.max_redirects = MAX_REDIRECTS
    return session


def _causes(exc: BaseException):
    """The exception and everything it wraps (urllib3 nests the real cause in args, reason, __cause__)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])


def _describe(exc: BaseException, timeout: float) -> str:
    causes = list(_causes(exc))
    text = " ".join(str(c) for c in causes).lower()
    if any(isinstance(c, TimeoutError | socket.timeout | requests.Timeout) for c in causes) or "timed out" in text:
        return f"timed out ({timeout:g} s)"
    if any(isinstance(c, ConnectionResetError) for c in causes) or "reset by peer" in text:
        return "connection reset by the server"
    if any(isinstance(c, RemoteDisconnected) for c in causes):
        return "the server closed the connection without a response"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, socket.gaierror) for c in causes) or "name resolution" in text:
        return "host name not found"
    if any(isinstance(c, BadStatusLine) for c in causes):
        return "the server did not answer with HTTP"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "the response could not be decoded (broken compression)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the response ended early or was malformed"
    detail = str(exc) or type(exc).__name__
    return detail if len(detail) <= 200 else detail[:197] + "..."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _open(session: requests.Session, url: str, timeout: float) -> requests.Response:
    """GET ``url`` streaming, following redirects ourselves so each target's scheme is checked."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            resp = session.get(current, stream=True, timeout=(timeout, timeout), allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(_describe(exc, timeout)) from exc
        except requests.RequestException as exc:  # invalid URL and the like: retrying cannot help
            raise _Permanent(_describe(exc, timeout)) from exc
        target = session.get_redirect_target(resp)
        if target is None:
            return resp
        resp.close()
        target = urljoin(current, target)
        if urlsplit(target).scheme.lower() not in ALLOWED_SCHEMES:
            raise _Permanent(f"refused a redirect to {target!r}: only http and https URLs are followed")
        current = target
    raise _Permanent(f"more than {MAX_REDIRECTS} redirects")


def _check_status(resp: requests.Response, retry_after_cap: float) -> None:
    status = resp.status_code
    if 200 <= status < 300:
        return
    reason = f"HTTP {status} {resp.reason or ''}".rstrip()
    resp.close()
    if status in RETRY_STATUSES or 500 <= status < 600:
        wait = _retry_after(resp.headers.get("retry-after"))
        raise _Transient(reason, None if wait is None else min(wait, retry_after_cap))
    raise _Permanent(reason)


def _stream_body(
    resp: requests.Response,
    sink: IO[bytes],
    *,
    max_bytes: int,
    timeout: float,
    progress: ProgressArg,
    desc: str,
) -> int:
    """Write the (decoded) body to ``sink``; returns the byte count. Enforces the cap while streaming."""
    length_header = resp.headers.get("content-length", "")
    length = int(length_header) if length_header.isdigit() else None
    if length is not None and length > max_bytes:
        resp.close()
        raise _Permanent(_cap_reason(max_bytes, length))
    # A Content-Length of a gzip-encoded body counts compressed bytes, not those we write.
    total = length if not resp.headers.get("content-encoding") else None
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=None,
            leave=False,
        )
    written = 0
    try:
        for chunk in resp.iter_content(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise _Permanent(_cap_reason(max_bytes))
            sink.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
            elif callable(progress):
                progress(len(chunk))
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        raise _Transient(_describe(exc, timeout)) from exc
    finally:
        resp.close()
        if bar is not None:
            bar.close()
    return written


def _retrying(
    url: str,
    attempt: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    context: str = "",
) -> T:
    """Run ``attempt`` up to ``retries + 1`` times; wrap the final failure in a DownloadError."""
    prefix = f"{context}: " if context else ""
    reasons: list[str] = []
    attempts = max(0, retries) + 1
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except _Permanent as exc:
            earlier = f" (after {number - 1} failed attempts: {'; '.join(reasons)})" if reasons else ""
            raise DownloadError(url, f"{prefix}{exc.reason}{earlier}", attempts=number) from exc
        except _Transient as exc:
            reasons.append(exc.reason)
            if number == attempts:
                break
            delay = min(backoff * 2 ** (number - 1), MAX_BACKOFF)
            delay += random.uniform(0, delay * 0.1)  # jitter, so many clients do not retry in step
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            time.sleep(delay)
    if len(set(reasons)) == 1:
        detail = reasons[-1]
    else:
        detail = f"{reasons[-1]} (attempts: {'; '.join(reasons)})"
    raise DownloadError(
        url, f"{prefix}gave up after {attempts} attempt{'s' if attempts > 1 else ''}: {detail}", attempts=attempts
    )


def _temporary(dest_dir: Path, mode: str = "w+b", **kwargs: Any) -> IO[Any]:
    # Hidden, and with a suffix no loader matches, in the same directory so the final rename is atomic.
    return tempfile.NamedTemporaryFile(mode, dir=dest_dir, prefix=".fundatlas-", suffix=".part", delete=False, **kwargs)


def _temporary_or_fail(url: str, dest_dir: Path, mode: str = "w+b", **kwargs: Any) -> IO[Any]:
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        return _temporary(dest_dir, mode, **kwargs)
    except OSError as exc:
        raise LoadError(url, f"cannot write downloads to {dest_dir}: {exc}") from exc


def _discard(tmp: IO[Any]) -> None:
    tmp.close()
    try:
        os.unlink(tmp.name)
    except FileNotFoundError:
        pass


# --- public: fetch -----------------------------------------------------------------------------------


def fetch(
    url: str,
    dest_dir: Path,
    *,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 0.5,
    max_bytes: int | None = None,
    progress: ProgressArg = True,
    session: requests.Session | None = None,
    retry_after_cap: float = RETRY_AFTER_CAP,
) -> Path:
    """Download ``url`` into ``dest_dir`` and return the new file's path.

    ``timeout`` applies to connecting and to each read; ``retries`` is the number of extra attempts;
    the wait before attempt n+1 is ``backoff * 2**(n-1)`` plus up to 10 % jitter, or the server's
    ``Retry-After`` (at most ``retry_after_cap`` seconds) when longer. ``max_bytes`` defaults to
    :func:`default_max_bytes`. ``progress``: True for a tqdm bar on stderr (hidden when stderr is not a
    terminal), False for none, or a callable given each chunk's byte count (a retry starts over).
    The file name comes from Content-Disposition or the URL path, sanitised, made unique in ``dest_dir``.
    """
    _require_url(url)
    cap = default_max_bytes() if max_bytes is None else max_bytes
    dest_dir = Path(dest_dir)
    own_session = session is None
    tmp = _temporary_or_fail(url, dest_dir)
    http = _new_session() if session is None else session
    names: list[str] = []

    def attempt() -> int:
        tmp.seek(0)
        tmp.truncate()
        resp = _open(http, url, timeout)
        _check_status(resp, retry_after_cap)
        names.append(_name_from_response(resp, resp.url or url))
        return _stream_body(resp, tmp, max_bytes=cap, timeout=timeout, progress=progress, desc=names[-1])

    try:
        _retrying(url, attempt, retries=retries, backoff=backoff)
        tmp.flush()
        os.fsync(tmp.fileno())
        tmp.close()
        final = _unique_path(dest_dir, names[-1])
        os.replace(tmp.name, final)
        return final
    except LoadError:
        _discard(tmp)
        raise
    except requests.RequestException as exc:  # one the attempt did not classify; still the server's doing
        _discard(tmp)
        raise DownloadError(url, _describe(exc, timeout)) from exc
    except OSError as exc:  # disk full, permissions: say so instead of a traceback
        _discard(tmp)
        raise LoadError(url, f"could not save the download in {dest_dir}: {exc}") from exc
    except BaseException:
        _discard(tmp)
        raise
    finally:
        if own_session:
            http.close()


# --- public: FTS API ---------------------------------------------------------------------------------


def _raw_next_link(document: dict) -> str | None:
    meta = document.get("meta") if isinstance(document, dict) else None
    link = meta.get("nextLink") if isinstance(meta, dict) else None
    return link.strip() if isinstance(link, str) and link.strip() else None


def _next_link(document: dict, page_url: str) -> str | None:
    """The absolute next page URL: ``meta.nextLink`` via the FTS loader's rule when it is there.

    The loader's ``next_link`` turns a non-http(s) link into None; here such a link is an error rather
    than a silent last page, so the raw value is checked as well.
    """
    raw = _raw_next_link(document)
    if raw is None:
        return None
    try:
        from data_sources import fts
    except ModuleNotFoundError as exc:
        if exc.name != "data_sources.fts":
            raise
        fts = None
    shared = getattr(fts, "next_link", None)
    if shared is None:
        link: str | None = urljoin(page_url, raw)
    elif "base_url" in inspect.signature(shared).parameters:
        link = shared(document, base_url=page_url)
    else:
        link = shared(document)
        link = urljoin(page_url, link) if link else None
    if link is None or urlsplit(link).scheme.lower() not in ALLOWED_SCHEMES:
        raise _Permanent(f"links to {raw!r}: only http and https URLs are followed")
    return link


def _parse_page(body: bytes) -> dict:
    """The page as a dict with a ``data.flows`` list; raises _Transient (a garbled page may be a hiccup)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Transient(f"not FTS flow JSON ({exc})") from exc
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("flows"), list):
        raise _Transient("not FTS flow JSON (no data.flows list)")
    return document


def fetch_fts(
    url: str,
    dest_dir: Path,
    *,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 0.5,
    max_bytes: int | None = None,
    progress: ProgressArg = True,
    session: requests.Session | None = None,
    retry_after_cap: float = RETRY_AFTER_CAP,
    max_pages: int = MAX_PAGES,
) -> Path:
    """Fetch an FTS API flow query and every page behind ``meta.nextLink``; return one JSON file.

    The file is ``{"data": {"flows": [...all pages, in order]}, "meta": {"count": <first page's
    meta.count>, "pages": n, "source": url}}``. Each page is retried like :func:`fetch`; a page that is
    not JSON with a ``data.flows`` list, a link back to a page already fetched, or more than
    ``max_pages`` pages raise DownloadError. ``max_bytes`` caps the pages' bytes together. With
    ``progress=True`` the bar counts flows; a callable is given byte counts as in :func:`fetch`.
    """
    _require_url(url)
    cap = default_max_bytes() if max_bytes is None else max_bytes
    dest_dir = Path(dest_dir)
    own_session = session is None
    out = _temporary_or_fail(url, dest_dir, "w", encoding="utf-8")
    http = _new_session() if session is None else session
    bar = None
    page_url: str | None = url
    seen = {url}
    pages = 0
    fetched = 0
    count: object = None
    first_flow = True

    def get_page(page: str, remaining: int) -> tuple[dict, int]:
        resp = _open(http, page, timeout)
        _check_status(resp, retry_after_cap)
        buffer = io.BytesIO()
        size = _stream_body(
            resp,
            buffer,
            max_bytes=remaining,
            timeout=timeout,
            progress=progress if callable(progress) else False,
            desc=f"page {pages}",
        )
        return _parse_page(buffer.getvalue()), size

    try:
        out.write('{"data": {"flows": [')
        while page_url is not None:
            pages += 1
            if pages > max_pages:
                raise DownloadError(url, f"more than {max_pages} pages; stopped (the query may be too broad)")
            context = f"page {pages} ({page_url})" if pages > 1 else ""
            document, size = _retrying(
                url,
                lambda p=page_url, left=cap - fetched: get_page(p, left),
                retries=retries,
                backoff=backoff,
                context=context,
            )
            fetched += size
            flows = document["data"]["flows"]
            if pages == 1:
                meta = document.get("meta")
                count = meta.get("count") if isinstance(meta, dict) else None
                if progress is True:
                    from tqdm import tqdm

                    bar = tqdm(
                        total=count if isinstance(count, int) else None,
                        desc="FTS flows",
                        unit=" flows",
                        file=sys.stderr,
                        disable=None,
                        leave=False,
                    )
            for flow in flows:
                out.write("" if first_flow else ",\n")
                out.write(json.dumps(flow, ensure_ascii=False))
                first_flow = False
            if bar is not None:
                bar.update(len(flows))
            try:
                target = _next_link(document, page_url)
            except _Permanent as exc:
                raise DownloadError(url, f"page {pages} {exc.reason}") from exc
            if target is None:
                break
            if target in seen:
                raise DownloadError(
                    url, f"page {pages} links back to a page already fetched ({target}); stopped to avoid a loop"
                )
            seen.add(target)
            page_url = target
        meta_out = {"count": count, "pages": pages, "source": url}
        out.write(f']}}, "meta": {json.dumps(meta_out, ensure_ascii=False)}}}\n')
        out.flush()
        os.fsync(out.fileno())
        out.close()
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
        segment = _sanitise_name(unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]), "flow")
        final = _unique_path(dest_dir, _sanitise_name(f"fts-{segment}-{digest}.json"))
        os.replace(out.name, final)
        return final
    except LoadError:
        _discard(out)
        raise
    except requests.RequestException as exc:  # one the attempt did not classify; still the server's doing
        _discard(out)
        raise DownloadError(url, _describe(exc, timeout)) from exc
    except OSError as exc:
        _discard(out)
        raise LoadError(url, f"could not save the download in {dest_dir}: {exc}") from exc
    except BaseException:
        _discard(out)
        raise
    finally:
        if bar is not None:
            bar.close()
        if own_session:
            http.close()


def fetch_source(url: str, dest_dir: Path, *, fts: bool | None = None, **options: Any) -> Path:
    """Download a URL given to ``fundatlas load``: an FTS API flow query (all pages) or a single file.

    ``fts=None`` decides by :func:`is_fts_api_url`; True/False force the choice. ``options`` are those
    of :func:`fetch` (and ``max_pages`` for FTS).
    """
    _require_url(url)
    if fts is None:
        fts = is_fts_api_url(url)
    if fts:
        return fetch_fts(url, dest_dir, **options)
    options.pop("max_pages", None)
    return fetch(url, dest_dir, **options)
