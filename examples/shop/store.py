"""The shop's in-memory catalogue and orders, safe to use from many request threads at once."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

MAX_QUANTITY = 20
MAX_NAME_LENGTH = 80
RESTOCK_TARGET = 10
RESTOCK_STEP = 2
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DIGITS_RE = re.compile(r"^[0-9]{1,9}$")


class OrderError(ValueError):
    """An order was refused; the message is meant for the customer."""


@dataclass(frozen=True)
class Product:
    """A product on sale; prices are in cents so sums stay exact."""

    id: int
    name: str
    description: str
    price_cents: int
    stock: int

    @property
    def price(self) -> str:
        """The price formatted for display, such as ``$12.50``."""
        return format_cents(self.price_cents)

    def to_json(self) -> dict[str, Any]:
        """Return the product as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Order:
    """A placed order."""

    id: int
    name: str
    email: str
    product_id: int
    product_name: str
    quantity: int
    total_cents: int
    created_at: float

    @property
    def total(self) -> str:
        """The order total formatted for display, such as ``$25.00``."""
        return format_cents(self.total_cents)

    def to_json(self) -> dict[str, Any]:
        """Return the order as a JSON-ready dict."""
        return asdict(self)


def format_cents(cents: int) -> str:
    """Format an amount in cents as dollars, such as ``$12.50``."""
    return f"${cents // 100}.{cents % 100:02d}"


_SEED = [
    Product(1, "Espresso cup", "A thick-walled porcelain cup that keeps a double shot hot.", 1250, 12),
    Product(2, "Pour-over kettle", "Gooseneck kettle for a slow, even pour.", 4900, 5),
    Product(3, "Burr grinder", "Hand grinder with 40 click settings.", 8900, 3),
    Product(4, "Coffee beans, 1 kg", "Medium roast from a single estate.", 2400, 25),
    Product(5, "Paper filters (100)", "Unbleached filters for cone drippers.", 650, 40),
    Product(6, "Milk jug", "Stainless steel pitcher for latte art.", 1800, 8),
]


class Store:
    """Products and orders in memory, guarded by one lock."""

    def __init__(self, products: list[Product]) -> None:
        self._lock = threading.Lock()
        self._products = {p.id: p for p in products}
        self._orders: dict[int, Order] = {}
        self._next_order_id = 1

    @classmethod
    def seeded(cls) -> Store:
        """Return a store stocked with the demo catalogue."""
        return cls(list(_SEED))

    def products(self) -> list[Product]:
        """Return every product, by id."""
        with self._lock:
            return [self._products[k] for k in sorted(self._products)]

    def product(self, product_id: int) -> Product | None:
        """Return the product with this id, or ``None``."""
        with self._lock:
            return self._products.get(product_id)

    def orders(self) -> list[Order]:
        """Return every order, newest first."""
        with self._lock:
            return sorted(self._orders.values(), key=lambda o: o.id, reverse=True)

    def order(self, order_id: int) -> Order | None:
        """Return the order with this id, or ``None``."""
        with self._lock:
            return self._orders.get(order_id)

    def place_order(self, name: Any, email: Any, product_id: Any, quantity: Any) -> Order:
        """Validate raw input (from a form or JSON), take the stock and record the order.

        Args:
            name: the customer's name.
            email: the customer's email address.
            product_id: a product id, as an int or a string of digits.
            quantity: how many, as an int or a string of digits.

        Returns:
            The new order.

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
        with self._lock:
            product = self._products.get(pid)
            if product is None:
                raise OrderError(f"Unknown product {pid}.")
            if product.stock < qty:
                raise OrderError(f"Only {product.stock} of {product.name} left in stock.")
            self._products[pid] = replace(product, stock=product.stock - qty)
            order = Order(
                id=self._next_order_id,
                name=name,
                email=email,
                product_id=pid,
                product_name=product.name,
                quantity=qty,
                total_cents=product.price_cents * qty,
                created_at=time.time(),
            )
            self._orders[order.id] = order
            self._next_order_id += 1
            return order

    def restock(self) -> int:
        """Add up to ``RESTOCK_STEP`` units to every product below ``RESTOCK_TARGET``; return units added."""
        added = 0
        with self._lock:
            for pid, product in self._products.items():
                units = min(RESTOCK_STEP, max(0, RESTOCK_TARGET - product.stock))
                if units:
                    self._products[pid] = replace(product, stock=product.stock + units)
                    added += units
        return added


def _whole_number(value: Any) -> int | None:
    """Return ``value`` as an int if it is an int (not a bool) or a string of digits, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return int(value.strip())
    return None
