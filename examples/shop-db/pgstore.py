"""The shop's store on Postgres (orders, products) with the product list cached in Redis.

Same interface as the shop's in-memory ``store.Store``, so the shop's Flask app runs on it unchanged. Every
call opens its own connection (``DATABASE_URL``): simple, and a restarted Postgres is picked up at the next
request. The catalogue is cached in Redis (``REDIS_URL``) for a few seconds and dropped when an order
changes the stock (cache-aside).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shop"))
from store import (  # noqa: E402  the shop's types and validation rules
    _EMAIL_RE,
    MAX_NAME_LENGTH,
    MAX_QUANTITY,
    RESTOCK_STEP,
    RESTOCK_TARGET,
    Order,
    OrderError,
    Product,
    _whole_number,
)

CACHE_KEY = "shop:products"
CACHE_TTL_S = 5
_ORDER_COLUMNS = "o.id, o.name, o.email, o.product_id, p.name, o.quantity, o.total_cents, o.created_at"


class PgStore:
    """Products and orders in Postgres; see the module docstring."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self._url = database_url
        self._cache = redis.Redis.from_url(redis_url)

    @classmethod
    def seeded(cls) -> PgStore:
        """The store of this stack (the seed step filled the catalogue)."""
        return cls(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url)

    def products(self) -> list[Product]:
        """Return every product, by id (from the cache when fresh)."""
        cached = self._cache.get(CACHE_KEY)
        if cached:
            return [Product(**p) for p in json.loads(cached)]
        with self._connect() as conn:
            rows = conn.execute("SELECT id, name, description, price_cents, stock FROM products ORDER BY id").fetchall()
        products = [Product(*r) for r in rows]
        self._cache.set(CACHE_KEY, json.dumps([p.to_json() for p in products]), ex=CACHE_TTL_S)
        return products

    def product(self, product_id: int) -> Product | None:
        """Return the product with this id, or ``None``."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id, name, description, price_cents, stock FROM products WHERE id = %s", (product_id,)
            ).fetchone()
        return Product(*row) if row else None

    def orders(self) -> list[Order]:
        """Return every order, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders o JOIN products p ON p.id = o.product_id ORDER BY o.id DESC"
            ).fetchall()
        return [Order(*r) for r in rows]

    def order(self, order_id: int) -> Order | None:
        """Return the order with this id, or ``None``."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders o JOIN products p ON p.id = o.product_id WHERE o.id = %s",
                (order_id,),
            ).fetchone()
        return Order(*row) if row else None

    def place_order(self, name: Any, email: Any, product_id: Any, quantity: Any) -> Order:
        """Validate raw input like the shop does, take the stock and insert the order in one transaction.

        Raises:
            OrderError: the input is invalid or there is not enough stock; the message says which.
        """
        name = name.strip() if isinstance(name, str) else ""
        email = email.strip() if isinstance(email, str) else ""
        if not name:
            raise OrderError("Please enter your name.")
        if len(name) > MAX_NAME_LENGTH:
            raise OrderError(f"Name must be at most {MAX_NAME_LENGTH} characters.")
        if not _EMAIL_RE.match(email):
            raise OrderError("Please enter a valid email address, like ada@example.com.")
        pid = _whole_number(product_id)
        if pid is None:
            raise OrderError("Please choose a product.")
        qty = _whole_number(quantity)
        if qty is None or not 1 <= qty <= MAX_QUANTITY:
            raise OrderError(f"Quantity must be a whole number from 1 to {MAX_QUANTITY}.")
        with self._connect() as conn, conn.transaction():
            row = conn.execute(
                "SELECT name, price_cents, stock FROM products WHERE id = %s FOR UPDATE", (pid,)
            ).fetchone()
            if row is None:
                raise OrderError(f"Unknown product {pid}.")
            pname, price, stock = row
            if stock < qty:
                raise OrderError(f"Only {stock} of {pname} left in stock.")
            conn.execute("UPDATE products SET stock = stock - %s WHERE id = %s", (qty, pid))
            now = time.time()
            (oid,) = conn.execute(
                "INSERT INTO orders (name, email, product_id, quantity, total_cents, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (name, email, pid, qty, price * qty, now),
            ).fetchone() or (0,)
        self._cache.delete(CACHE_KEY)
        return Order(oid, name, email, pid, pname, qty, price * qty, now)

    def restock(self) -> int:
        """Add up to ``RESTOCK_STEP`` units to every product below ``RESTOCK_TARGET``; return units added."""
        with self._connect() as conn:
            rows = conn.execute(
                "UPDATE products p SET stock = LEAST(o.stock + %s, %s)"
                " FROM (SELECT id, stock FROM products WHERE stock < %s FOR UPDATE) o"
                " WHERE p.id = o.id RETURNING p.stock - o.stock",
                (RESTOCK_STEP, RESTOCK_TARGET, RESTOCK_TARGET),
            ).fetchall()
        if rows:
            self._cache.delete(CACHE_KEY)
        return sum(r[0] for r in rows)
