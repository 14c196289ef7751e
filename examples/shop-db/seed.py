"""Setup step 2 (``[app] setup``): the demo catalogue, inserted once (existing products are kept)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shop"))
from store import _SEED  # noqa: E402  the shop's catalogue


def main() -> None:
    """Insert the products that are not there yet."""
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        added = 0
        for p in _SEED:
            cur = conn.execute(
                "INSERT INTO products (id, name, description, price_cents, stock) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (p.id, p.name, p.description, p.price_cents, p.stock),
            )
            added += cur.rowcount
    print(f"seed: {added} products added")


if __name__ == "__main__":
    main()
