"""Create a PostgreSQL database when it is missing (for `make up`'s server backends).

``python -m db.create URL [URL ...]``: for each ``postgresql`` URL, connect to the server's
``postgres`` database and ``CREATE DATABASE`` the URL's database unless it exists. Other URLs
(SQLite) are left alone. Prints one line per URL; exits 1 naming a server it cannot reach.
"""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def ensure_database(url: str) -> bool:
    """Create the URL's PostgreSQL database if missing; True when it was created."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        return False
    driver = "postgresql+psycopg" if parsed.drivername == "postgresql" else parsed.drivername
    if driver == "postgresql+asyncpg":  # Prefect's URL: the same server, a sync driver here
        driver = "postgresql+psycopg"
    admin = create_engine(
        parsed.set(drivername=driver, database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            ).first()
            if exists:
                return False
            quoted = parsed.database.replace('"', '""')
            conn.execute(text(f'CREATE DATABASE "{quoted}"'))
            return True
    finally:
        admin.dispose()


def main(urls: list[str]) -> int:
    for url in urls:
        shown = make_url(url).render_as_string(hide_password=True)
        try:
            created = ensure_database(url)
        except Exception as exc:  # any driver/network error: one line, non-zero exit
            reason = str(exc).splitlines()[0]
            print(f"{shown}: cannot create the database: {reason}", file=sys.stderr)
            return 1
        if created:
            print(f"{shown}: created")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
