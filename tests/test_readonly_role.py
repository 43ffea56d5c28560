"""On PostgreSQL the app can run as a read-only role: pages and exports work, writes are refused."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, make_url, text

from app import create_app
from data_sources.errors import LoadError
from data_sources.loading import load_file
from data_sources.store import open_store
from tests.conftest import _drop_pg, _new_pg_url, _pg_admin_url, shared_file

GRANTS = (
    'GRANT CONNECT ON DATABASE "{db}" TO {role}',
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
)


def test_app_runs_as_a_read_only_role(pg_template):
    url = _new_pg_url(pg_template)
    role = f"fundatlas_reader_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    owner = open_store(url)
    try:
        load_file(owner, shared_file("iati", "dportal_foodsecurity.xml"))
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            for grant in GRANTS:
                conn.execute(text(grant.format(db=make_url(url).database, role=role)))
        reader_url = make_url(url).set(username=role).render_as_string(hide_password=False)

        client = create_app(database_url=reader_url, auto_demo=False).server.test_client()
        assert client.get("/_dash-layout").status_code == 200
        as_reader = client.get("/export/csv?source=iati")
        assert as_reader.status_code == 200 and as_reader.data.count(b"\r\n") > 50

        with pytest.raises(LoadError, match="permission denied"):
            load_file(open_store(reader_url), shared_file("360giving", "esmee_grantnav-20180903134856.json"))
    finally:
        owner.dispose()
        _drop_pg(url)
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
