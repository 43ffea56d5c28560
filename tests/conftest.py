"""Shared fixtures. Real files come from ../shared/data; a missing file fails, never skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from tests.http_fixtures import http_server  # noqa: F401  (a fixture shared by the HTTP tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """Path of a file in ../shared/data; fails the test (not skips) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared data file missing: {path} (tests read real files from ../shared/data)")
    return path


def shared_files(folder: str, pattern: str) -> list[Path]:
    files = sorted((SHARED_DATA / folder).glob(pattern))
    if not files:
        raise RuntimeError(f"no files matching {pattern} in {SHARED_DATA / folder}")
    return files


# --- stores: every store test runs on SQLite and on PostgreSQL/PostGIS -----------------------------
PG_URL_VARIABLE = "FUNDATLAS_TEST_PG_URL"


def _pg_admin_url() -> str:
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        pytest.fail(
            f"{PG_URL_VARIABLE} is not set: the store tests need PostgreSQL with PostGIS. "
            "Run the tests through `bash .ci/run`, which starts one on loopback."
        )
    return url


@pytest.fixture(scope="session")
def pg_template() -> str:
    """A template database with PostGIS, so each test's database is created quickly."""
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"fundatlas_tpl_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    tpl = create_engine(admin.url.set(database=name))
    with tpl.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    tpl.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _new_pg_url(template: str) -> str:
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"fundatlas_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return admin.url.set(database=name).render_as_string(hide_password=False)


def _drop_pg(url: str) -> None:
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty store URL: an SQLite file, or a new PostgreSQL database with PostGIS."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    url = _new_pg_url(request.getfixturevalue("pg_template"))
    yield url
    _drop_pg(url)


@pytest.fixture
def engine(store_url):
    from data_sources.store import open_store

    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    from data_sources.store import open_store

    engine = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield engine
    engine.dispose()


# --- browser tests: Debian Chromium, headless, no network but loopback ----------------------------
def pytest_setup_options():
    """Chrome options for dash[testing]: the Debian Chromium, kept off the network."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = os.environ.get("FUNDATLAS_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1400,1100"):
        options.add_argument(flag)
    return options


def demo_engine_of(request, tmp_path_factory, name: str, edge_cases: Callable[[Engine], None]) -> Iterator[Engine]:
    """For a module's ``demo_engine`` fixture (params sqlite, postgresql): the demo bundle in a fresh store
    of that kind, with the module's ``edge_cases`` applied; the store is dropped afterwards."""
    from data_sources.cli import run_demo
    from data_sources.store import open_store

    folder = tmp_path_factory.mktemp(name)
    url = f"sqlite:///{folder / 'store.sqlite'}" if request.param == "sqlite" else _new_pg_url(
        request.getfixturevalue("pg_template"))
    engine = open_store(url)
    assert run_demo(engine, folder / "files") == 0
    edge_cases(engine)
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        _drop_pg(url)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> str:
    """An SQLite store with the demo bundle loaded (built once per test session)."""
    from data_sources.cli import run_demo
    from data_sources.store import open_store

    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'demo.sqlite'}"
    engine = open_store(url)
    assert run_demo(engine, folder / "files") == 0
    engine.dispose()
    return url


# --- Redis for the shared cache: a throwaway server on loopback, nothing saved -------------------
@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: the shared-cache tests need it (`bash .ci/run` installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


@pytest.fixture(autouse=True, scope="session")
def _columnar_copies_in_a_scratch_folder(tmp_path_factory):
    """Loads refresh the dashboard's columnar copy: keep the tests' copies out of the user's cache."""
    folder = tmp_path_factory.mktemp("columnar-copies")
    previous = os.environ.get("FUNDATLAS_CACHE_DIR")
    os.environ["FUNDATLAS_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("FUNDATLAS_CACHE_DIR", None)
    else:
        os.environ["FUNDATLAS_CACHE_DIR"] = previous
