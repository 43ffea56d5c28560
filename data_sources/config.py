"""Configuration, from CLI flags and environment variables, with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| FUNDATLAS_DB | sqlite file in the user data directory | SQLAlchemy URL of the store |
| FUNDATLAS_SECRET_KEY | random per process | Flask secret key (set it when running several workers) |
| FUNDATLAS_DEBUG | unset | "1" turns on Dash debug mode (never in production) |
| FUNDATLAS_DEMO_DIR | `demo/` in the user data directory | where `fundatlas demo` writes its files |
| FUNDATLAS_AUTO_DEMO | "1" | build the demo data when the app starts on an empty store |
| FUNDATLAS_BASIC_AUTH | unset | "user:password[,user2:password2]": require a login (private deployments) |
| FUNDATLAS_COLUMNAR | "1" | "0" answers the dashboard from SQL only, without the columnar copy |
| FUNDATLAS_CACHE_DIR | the user cache directory | where the columnar copy of each store is kept (safe to delete) |
| REDIS_URL | unset | a Redis URL: the app's result cache is shared by every worker and replica |
| FUNDATLAS_EMBED_ORIGINS | "*" | sites that may frame /embed: origins (space-separated), "*" or "none" |
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "fundatlas"


def data_dir() -> Path:
    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'fundatlas.sqlite'}"


def database_url(cli_value: str | None = None) -> str:
    """The store's URL: the --db flag, else FUNDATLAS_DB, else the embedded SQLite default."""
    return cli_value or os.environ.get("FUNDATLAS_DB") or default_database_url()


def demo_dir() -> Path:
    return Path(os.environ.get("FUNDATLAS_DEMO_DIR") or data_dir() / "demo")


def secret_key() -> str:
    return os.environ.get("FUNDATLAS_SECRET_KEY") or secrets.token_hex(32)


def debug_enabled() -> bool:
    return os.environ.get("FUNDATLAS_DEBUG") == "1"


def basic_auth_users() -> dict[str, str]:
    """Users allowed in when FUNDATLAS_BASIC_AUTH is set; empty means the app is public."""
    users = {}
    for entry in filter(None, (e.strip() for e in os.environ.get("FUNDATLAS_BASIC_AUTH", "").split(","))):
        name, sep, password = entry.partition(":")
        if not sep or not name or not password:
            raise ValueError("FUNDATLAS_BASIC_AUTH takes user:password pairs separated by commas")
        users[name] = password
    return users


def auto_demo_enabled() -> bool:
    return os.environ.get("FUNDATLAS_AUTO_DEMO", "1") == "1"


def columnar_enabled() -> bool:
    return os.environ.get("FUNDATLAS_COLUMNAR", "1") != "0"


def embed_frame_ancestors() -> str:
    """The CSP ``frame-ancestors`` sources for the embed page: any site by default (the embedded map has
    no action a framing site could trick a user into), a list of origins, or ``'none'``."""
    raw = os.environ.get("FUNDATLAS_EMBED_ORIGINS", "*").strip() or "*"
    if raw.lower() == "none":
        return "'none'"
    origins = raw.split()
    for origin in origins:
        if origin != "*" and not (origin.startswith(("https://", "http://")) and ";" not in origin
                                  and "'" not in origin and "," not in origin):
            raise ValueError(f"FUNDATLAS_EMBED_ORIGINS: {origin!r} is not an origin like https://example.org")
    return " ".join(origins)
