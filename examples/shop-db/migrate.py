"""Setup step 1 (``[app] setup``): bring the shop's schema up to date, each migration applied once.

Numbered migrations recorded in ``schema_migrations`` (llm's ``migrations.py`` idea); safe to run before
every deploy. Reads ``DATABASE_URL`` (set by legible for ``[services.db] kind = "postgres"``).
"""

from __future__ import annotations

import os

import psycopg

MIGRATIONS = [
    (
        "m001_products_orders",
        """
        CREATE TABLE products (
            id          integer PRIMARY KEY,
            name        text NOT NULL,
            description text NOT NULL,
            price_cents integer NOT NULL CHECK (price_cents >= 0),
            stock       integer NOT NULL CHECK (stock >= 0)
        );
        CREATE TABLE orders (
            id          serial PRIMARY KEY,
            name        text NOT NULL,
            email       text NOT NULL,
            product_id  integer NOT NULL REFERENCES products (id),
            quantity    integer NOT NULL CHECK (quantity > 0),
            total_cents integer NOT NULL,
            created_at  double precision NOT NULL
        );
        """,
    ),
]


def main() -> None:
    """Apply the migrations not applied yet, in order, each in its own transaction."""
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz)")
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (%s, now())", (name,))
            print(f"migrate: applied {name}")
    print(f"migrate: {len(MIGRATIONS)} migrations, database {os.environ.get('PGDATABASE', '?')} is up to date")


if __name__ == "__main__":
    main()
