"""The example shop on Postgres and Redis: the shop's Flask app (``examples/shop``) on :class:`PgStore`.

Orders and products live in the stack's Postgres (``[services.db] kind = "postgres"``), the catalogue is
cached in its Redis (``[services.cache] kind = "redis"``); ``migrate.py`` and ``seed.py`` run before each
deploy (``[app] setup``). The psycopg and redis-py OpenTelemetry instrumentations make every SQL statement
and Redis command a client span under the request that made it, so ``legible trace`` shows a checkout from
the browser's click down to ``INSERT INTO orders``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor

SHOP = Path(__file__).resolve().parent.parent / "shop"
sys.path.insert(0, str(SHOP))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgstore import PgStore  # noqa: E402


def _shop_module():  # noqa: ANN202 - the shop's app module, loaded under its own name
    spec = importlib.util.spec_from_file_location("shop_app", SHOP / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Serve the shop with its store in Postgres; see the module docstring."""
    PsycopgInstrumentor().instrument()  # spans carry db.statement (the SQL with placeholders, no values)
    RedisInstrumentor().instrument()
    shop = _shop_module()
    shop.Store = PgStore  # the shop's main() builds its store with Store.seeded()
    return int(shop.main())


if __name__ == "__main__":
    sys.exit(main())
