"""Downloads by URL (data_sources.remote) against a local HTTP server serving the real fixture files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from data_sources import remote
from data_sources.errors import LoadError
from data_sources.remote import (
    DownloadError,
    default_max_bytes,
    fetch,
    fetch_fts,
    fetch_source,
    is_fts_api_url,
    is_url,
)
from tests.http_fixtures import FixtureServer, fts_page_paths, serve_fixtures, shared_data

# Small timeouts and backoffs keep the whole module fast; the behaviour is the same at production values.
FAST = {"timeout": 0.5, "retries": 2, "backoff": 0.01, "progress": False}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.delenv(remote.MAX_BYTES_VARIABLE, raising=False)
    with serve_fixtures() as srv:
        yield srv


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- URL recognition ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["http://example.org/a.xml", "https://api.hpc.tools/v1/public/fts/flow?year=2020", "HTTPS://EXAMPLE.ORG/x"],
)
def test_is_url_accepts_http_and_https(text: str) -> None:
    assert is_url(text)


@pytest.mark.parametrize("text", ["data/grants.json", "/tmp/x.xml", r"C:\data\x.csv", "C:/data/x.csv", "grants"])
def test_is_url_leaves_paths_alone(text: str) -> None:
    assert not is_url(text)


@pytest.mark.parametrize("text", ["file:///etc/passwd", "file:data.json", "ftp://example.org/x.csv", "gopher://x/"])
def test_is_url_refuses_other_schemes_clearly(text: str) -> None:
    with pytest.raises(LoadError, match="only http and https URLs"):
        is_url(text)


def test_is_url_refuses_a_url_without_host() -> None:
    with pytest.raises(LoadError, match="no host"):
        is_url("http:///x.json")


def test_is_fts_api_url() -> None:
    assert is_fts_api_url("https://api.hpc.tools/v1/public/fts/flow?locationid=1&year=2020")
    assert is_fts_api_url("https://api.hpc.tools/v1/public/fts/flow/custom-search?locationid=1")
    assert not is_fts_api_url("https://api.hpc.tools/v1/public/location")
    assert not is_fts_api_url("https://api.hpc.tools/v1/public/fts/flow/plan/overview/progress/2020")
    assert not is_fts_api_url("https://api.hpc.tools/v1/public/fts/flow?year=2020&groupby=organization")
    assert not is_fts_api_url("ftp://api.hpc.tools/v1/public/fts/flow")
    assert not is_fts_api_url("https://example.org/v1/public/fts/flow")
    assert not is_fts_api_url("data/fts.json")
    assert is_fts_api_url("http://127.0.0.1:8000/v1/public/fts/flow", hosts=("127.0.0.1",))


def test_more_fts_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.FTS_HOSTS_VARIABLE, "fts.example.org, 127.0.0.1")
    assert is_fts_api_url("http://127.0.0.1:8000/fts/flow")
    assert is_fts_api_url("https://api.hpc.tools/v1/public/fts/flow")


def test_an_unwritable_destination_is_a_load_error(server: FixtureServer, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(LoadError, match="cannot write downloads"):
        fetch(server.add_bytes("/x", b"x"), not_a_dir / "sub", **FAST)


def test_fetch_refuses_non_http_urls(dest: Path) -> None:
    with pytest.raises(LoadError, match="only http and https"):
        fetch("file:///etc/passwd", dest, **FAST)
    assert _files(dest) == []


# --- real files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts", [("iati", "dportal_foodsecurity.xml"), ("360giving", "esmee_grantnav-20180903134856.json")]
)
def test_fetch_gives_a_byte_identical_copy(server: FixtureServer, dest: Path, parts: tuple[str, str]) -> None:
    original = shared_data(*parts)
    url = server.add_file(f"/files/{original.name}", original)
    path = fetch(url, dest, **FAST)
    assert path.parent == dest
    assert path.name == original.name  # extension kept; detection is by content anyway
    assert path.read_bytes() == original.read_bytes()
    assert _files(dest) == [original.name]  # no temporary file left behind
    method, _, headers = server.requests[-1]
    assert method == "GET"
    assert headers["User-Agent"] == remote.USER_AGENT


def test_fetch_decodes_gzip_content_encoding(server: FixtureServer, dest: Path) -> None:
    original = shared_data("iati", "dportal_foodsecurity.xml")
    url = server.add_file("/gz/activities.xml", original, gzip=True)
    path = fetch(url, dest, **FAST)
    assert path.read_bytes() == original.read_bytes()


def test_fetch_reports_progress_in_bytes(server: FixtureServer, dest: Path) -> None:
    original = shared_data("360giving", "esmee_grantnav-20180903134856.json")
    url = server.add_file("/grants.json", original)
    seen: list[int] = []
    fetch(url, dest, **{**FAST, "progress": seen.append})
    assert sum(seen) == original.stat().st_size


def test_fetch_twice_into_one_directory_keeps_both(server: FixtureServer, dest: Path) -> None:
    url = server.add_bytes("/same.json", b"{}")
    first, second = fetch(url, dest, **FAST), fetch(url, dest, **FAST)
    assert (first.name, second.name) == ("same.json", "same-1.json")


def test_file_name_from_content_disposition_is_sanitised(server: FixtureServer, dest: Path) -> None:
    url = server.add_bytes(
        "/download", b"{}", headers={"Content-Disposition": 'attachment; filename="../../etc/..evil.json"'}
    )
    path = fetch(url, dest, **FAST)
    assert path.parent == dest
    assert path.name == "evil.json"


def test_file_name_rfc2231_and_fallback(server: FixtureServer, dest: Path) -> None:
    disposition = "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.csv"
    url = server.add_bytes("/dl", b"a", headers={"Content-Disposition": disposition})
    assert fetch(url, dest, **FAST).name == "résumé.csv"
    assert fetch(server.add_bytes("/", b"b"), dest, **FAST).name == "download"


def test_long_names_are_cut_but_keep_their_extension() -> None:
    name = remote._sanitise_name("x" * 500 + ".json")
    assert len(name) <= remote.MAX_NAME_CHARS and name.endswith(".json")
    assert remote._sanitise_name("..") == "download"
    assert remote._sanitise_name("a\\b\\c.xml") == "c.xml"


# --- FTS API: all pages -------------------------------------------------------------------------------


def _page_flows() -> list[dict]:
    flows: list[dict] = []
    for page in fts_page_paths():
        flows.extend(json.loads(page.read_text(encoding="utf-8"))["data"]["flows"])
    return flows


def test_fetch_fts_follows_next_link_across_pages(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages()
    path = fetch_fts(url, dest, **FAST)
    document = json.loads(path.read_text(encoding="utf-8"))
    flows = document["data"]["flows"]
    assert len(flows) == 484 == 200 + 200 + 84
    assert flows == _page_flows()
    assert document["meta"] == {"count": 484, "pages": 3, "source": url}
    assert [server.hits[f"/fts/page-{n}"] for n in (1, 2, 3)] == [1, 1, 1]
    assert _files(dest) == [path.name]


def test_fetch_source_chooses_fts_or_plain_download(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages()
    merged = json.loads(fetch_source(url, dest, fts=True, **FAST).read_text(encoding="utf-8"))
    assert len(merged["data"]["flows"]) == 484
    # Not an api.hpc.tools URL: downloaded as one plain file, page 1 only.
    plain = fetch_source(url, dest, **FAST)
    assert plain.read_bytes().startswith(b'{"status": "ok"')
    assert len(json.loads(plain.read_bytes())["data"]["flows"]) == 200


def test_fts_page_that_is_not_json_is_retried_then_named(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages()
    server.add_bytes("/fts/page-2", b"<html>upstream error</html>", content_type="text/html")
    with pytest.raises(DownloadError) as caught:
        fetch_fts(url, dest, **FAST)
    message = str(caught.value)
    assert "page 2" in message and "not FTS flow JSON" in message and url in message
    assert caught.value.attempts == 3
    assert server.hits["/fts/page-2"] == 3
    assert server.hits["/fts/page-3"] == 0
    assert _files(dest) == []


def test_fts_page_without_flows_is_refused(server: FixtureServer, dest: Path) -> None:
    plans = shared_data("ocha_fts", "2-fts-flow-plan-overview-progress-2020.json")
    url = server.add_bytes("/fts/plan", plans.read_bytes())
    with pytest.raises(LoadError, match="not FTS flow JSON"):
        fetch_fts(url, dest, **FAST)


def test_fts_next_link_loop_is_detected(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages(next_links={2: server.url("/fts/page-1") + "?locationid=1&year=2020"})
    with pytest.raises(LoadError, match="loop"):
        fetch_fts(url, dest, **FAST)
    assert server.hits["/fts/page-1"] == 1
    assert _files(dest) == []


def test_fts_page_cap(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages()
    with pytest.raises(LoadError, match="more than 2 pages"):
        fetch_fts(url, dest, **FAST, max_pages=2)


def test_fts_next_link_to_another_scheme_is_refused(server: FixtureServer, dest: Path) -> None:
    url = server.add_fts_pages(next_links={1: "file:///etc/passwd"})
    with pytest.raises(LoadError, match="only http and https"):
        fetch_fts(url, dest, **FAST)


# --- faults: retried -----------------------------------------------------------------------------------


def test_503_twice_then_success_is_retried(server: FixtureServer, dest: Path) -> None:
    original = shared_data("iati", "dportal_foodsecurity.xml")
    url = server.add_flaky("/flaky.xml", failures=2, then=original)
    path = fetch(url, dest, **{**FAST, "retries": 3})
    assert path.read_bytes() == original.read_bytes()
    assert server.hits["/flaky.xml"] == 3


def test_persistent_503_gives_up_with_the_attempts(server: FixtureServer, dest: Path) -> None:
    url = server.add_status("/down", 503)
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts: HTTP 503") as caught:
        fetch(url, dest, **FAST)
    assert caught.value.attempts == 3 and caught.value.file == url
    assert server.hits["/down"] == 3
    assert _files(dest) == []


def test_429_retry_after_is_honoured_up_to_the_cap(server: FixtureServer, dest: Path) -> None:
    url = server.add_flaky("/busy", failures=1, then=b"ok", status=429, retry_after="30")
    started = time.monotonic()
    path = fetch(url, dest, **{**FAST, "backoff": 0}, retry_after_cap=0.3)
    elapsed = time.monotonic() - started
    assert path.read_bytes() == b"ok"
    assert 0.3 <= elapsed < 3
    assert server.hits["/busy"] == 2


def test_timeout_is_retried_then_reported(server: FixtureServer, dest: Path) -> None:
    url = server.add_slow("/slow", delay=3)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"gave up after 2 attempts: timed out \(0.2 s\)") as caught:
        fetch(url, dest, **{**FAST, "timeout": 0.2, "retries": 1})
    assert time.monotonic() - started < 2
    assert caught.value.attempts == 2
    assert server.hits["/slow"] == 2
    assert _files(dest) == []


def test_a_stall_in_the_middle_of_the_body_is_a_timeout(server: FixtureServer, dest: Path) -> None:
    url = server.add_slow("/stall", delay=3, body=b"x" * 1000, after_headers=True)
    with pytest.raises(DownloadError, match=r"timed out \(0.2 s\)"):
        fetch(url, dest, **{**FAST, "timeout": 0.2, "retries": 1})
    assert server.hits["/stall"] == 2
    assert _files(dest) == []


def test_connection_reset_is_retried_then_reported(server: FixtureServer, dest: Path) -> None:
    url = server.add_reset("/reset")
    with pytest.raises(DownloadError, match="gave up after 3 attempts") as caught:
        fetch(url, dest, **FAST)
    assert "connection" in str(caught.value)
    assert server.hits["/reset"] == 3
    assert _files(dest) == []


def test_an_answer_that_is_not_http_is_retried_then_reported(server: FixtureServer, dest: Path) -> None:
    url = server.add_not_http("/garbage")
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch(url, dest, **FAST)
    assert server.hits["/garbage"] == 3


def test_a_refused_connection_is_retried_then_reported(dest: Path) -> None:
    with serve_fixtures() as srv:
        url = srv.url("/gone")  # the port is free again once the server has stopped
    with pytest.raises(DownloadError, match="gave up after 2 attempts"):
        fetch(url, dest, **{**FAST, "retries": 1})


def test_broken_gzip_is_retried_then_reported(server: FixtureServer, dest: Path) -> None:
    url = server.add_bytes("/bad.gz", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(DownloadError, match="could not be decoded"):
        fetch(url, dest, **FAST)
    assert server.hits["/bad.gz"] == 3


# --- faults: not retried ------------------------------------------------------------------------------


def test_404_fails_at_once(server: FixtureServer, dest: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        fetch(server.url("/missing.xml"), dest, **FAST)
    assert caught.value.attempts == 1
    assert server.hits["/missing.xml"] == 1
    assert _files(dest) == []


def test_too_large_content_length_is_refused_with_the_cap(server: FixtureServer, dest: Path) -> None:
    url = server.add_declared_length("/huge", declared=3 * 1024**3)
    with pytest.raises(DownloadError) as caught:
        fetch(url, dest, **FAST)
    message = str(caught.value)
    assert "larger than the 2.0 GiB cap" in message and "FUNDATLAS_MAX_DOWNLOAD_BYTES" in message
    assert server.hits["/huge"] == 1
    assert _files(dest) == []


def test_streamed_body_over_the_cap_leaves_no_file(server: FixtureServer, dest: Path) -> None:
    url = server.add_stream("/endless", total_bytes=2 * 1024 * 1024)
    with pytest.raises(DownloadError, match="larger than the 1.0 MiB cap"):
        fetch(url, dest, **FAST, max_bytes=1024 * 1024)
    assert server.hits["/endless"] == 1
    assert _files(dest) == []


def test_the_cap_comes_from_the_environment(server: FixtureServer, dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_max_bytes() == 2 * 1024**3
    monkeypatch.setenv(remote.MAX_BYTES_VARIABLE, "4G")
    assert default_max_bytes() == 4 * 1024**3
    monkeypatch.setenv(remote.MAX_BYTES_VARIABLE, "1000")
    url = server.add_file("/iati.xml", shared_data("iati", "dportal_foodsecurity.xml"))
    with pytest.raises(DownloadError, match="larger than the 1000 bytes cap"):
        fetch(url, dest, **FAST)
    monkeypatch.setenv(remote.MAX_BYTES_VARIABLE, "lots")
    with pytest.raises(LoadError, match=remote.MAX_BYTES_VARIABLE):
        default_max_bytes()


def test_gzip_bomb_is_stopped_by_the_cap(server: FixtureServer, dest: Path) -> None:
    url = server.add_bytes("/bomb", b"\0" * (4 * 1024 * 1024), gzip=True)  # ~4 KiB on the wire
    with pytest.raises(DownloadError, match="cap"):
        fetch(url, dest, **FAST, max_bytes=1024 * 1024)
    assert _files(dest) == []


def test_redirect_to_file_scheme_is_refused(server: FixtureServer, dest: Path) -> None:
    url = server.add_redirect("/sneaky", "file:///etc/passwd")
    with pytest.raises(DownloadError, match="refused a redirect") as caught:
        fetch(url, dest, **FAST)
    assert caught.value.attempts == 1
    assert _files(dest) == []


def test_redirects_are_followed_and_capped(server: FixtureServer, dest: Path) -> None:
    original = shared_data("360giving", "esmee_grantnav-20180903134856.json")
    server.add_file("/data/grants.json", original)
    url = server.add_redirect("/latest", "/data/grants.json", status=301)
    path = fetch(url, dest, **FAST)
    assert path.name == "grants.json"  # named after the final URL
    assert path.read_bytes() == original.read_bytes()
    loop = server.add_redirect("/loop", "/loop")
    with pytest.raises(DownloadError, match="more than 5 redirects"):
        fetch(loop, dest, **FAST)
    assert server.hits["/loop"] == remote.MAX_REDIRECTS + 1


def test_gzip_of_the_real_fts_page(server: FixtureServer, dest: Path) -> None:
    page = fts_page_paths()[2]
    url = server.add_file("/fts-last", page, gzip=True)
    document = json.loads(fetch_fts(url, dest, **FAST).read_text(encoding="utf-8"))
    assert len(document["data"]["flows"]) == 84
