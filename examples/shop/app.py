"""A small web shop that legible's demo and tests run on.

Run it with ``python examples/shop/app.py``; it serves on ``127.0.0.1:$PORT`` (default 8000). See README.md.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from flask import Flask, Response, g, jsonify, redirect, render_template, request, url_for
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from werkzeug.serving import make_server

# isort: split
# The shop's own modules, next to this file (on sys.path because the script is run directly).
from store import MAX_QUANTITY, Order, OrderError, Store
from telemetry import setup_telemetry

HOST = "127.0.0.1"  # loopback only: never expose the demo beyond this machine
DEFAULT_PORT = 8000
RESTOCK_INTERVAL_S = 2.0
SLOW_DEFAULT_MS = 1200
SLOW_MAX_MS = 10000
# Probe and scrape traffic: counted in /metrics but neither traced nor logged, or it would drown the rest.
QUIET_ROUTES = ("/healthz", "/metrics")

log = logging.getLogger("shop")
tracer = trace.get_tracer("shop")


def create_app(store: Store) -> Flask:
    """Build the Flask app: pages, JSON API, probes and both kinds of metrics.

    Args:
        store: where products and orders live.

    Returns:
        The instrumented Flask application.
    """
    app = Flask("shop", root_path=str(Path(__file__).resolve().parent))
    FlaskInstrumentor().instrument_app(app, excluded_urls=",".join(f"{r}$" for r in QUIET_ROUTES))

    disable_created_metrics()  # the *_created series only add noise to every scrape
    registry = CollectorRegistry()
    http_requests = Counter(
        "shop_http_requests", "HTTP requests served.", ["method", "route", "status"], registry=registry
    )
    http_duration = Histogram(
        "shop_http_request_duration_seconds", "Time to serve an HTTP request.", ["route"], registry=registry
    )
    orders_total = Counter("shop_orders", "Orders placed.", registry=registry)
    meter = metrics.get_meter("shop")
    otel_orders = meter.create_counter("shop.orders", unit="{order}", description="Orders placed.")
    otel_order_value = meter.create_histogram("shop.order.value", unit="USD", description="Order totals.")

    def place_order(fields: dict[str, Any]) -> Order:
        """Validate and record an order from form or JSON fields; count it and log it."""
        with tracer.start_as_current_span("order.place", record_exception=False, set_status_on_exception=False) as span:
            try:
                order = store.place_order(
                    fields.get("name"), fields.get("email"), fields.get("product_id"), fields.get("quantity")
                )
            except OrderError as exc:
                # A refused order is the customer's mistake, not a fault: a 400 and a warning, no error span.
                span.set_attribute("shop.order.rejected", str(exc))
                log.warning("order rejected: %s", exc)
                raise
            span.set_attributes(
                {
                    "shop.order.id": order.id,
                    "shop.product.id": order.product_id,
                    "shop.order.quantity": order.quantity,
                }
            )
        orders_total.inc()
        otel_orders.add(1, {"product": order.product_name})
        otel_order_value.record(order.total_cents / 100, {"product": order.product_name})
        log.info(
            "order %d placed: %d x %s for %s",
            order.id,
            order.quantity,
            order.product_name,
            order.total,
            extra={"order_id": order.id, "total_cents": order.total_cents},
        )
        return order

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        http_requests.labels(request.method, route, str(response.status_code)).inc()
        http_duration.labels(route).observe(elapsed)
        if route not in QUIET_ROUTES:
            status = response.status_code
            level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
            log.log(
                level,
                "%s %s %d",
                request.method,
                request.path,
                status,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        return response

    @app.errorhandler(404)
    def not_found(_error: Exception) -> tuple[str, int]:
        return render_template("message.html", title="Not found", message="There is no such page."), 404

    @app.get("/")
    def home() -> str:
        return render_template("home.html", products=store.products())

    @app.get("/products/<int:product_id>")
    def product_page(product_id: int) -> str | tuple[str, int]:
        product = store.product(product_id)
        if product is None:
            return render_template("message.html", title="Not found", message="No such product."), 404
        return render_template("product.html", product=product)

    def order_form(values: dict[str, Any], error: str | None = None, status: int = 200) -> tuple[str, int]:
        html = render_template(
            "order_form.html",
            products=store.products(),
            values=values,
            error=error,
            max_quantity=MAX_QUANTITY,
        )
        return html, status

    @app.get("/order")
    def order_get() -> tuple[str, int]:
        return order_form({"product_id": request.args.get("product", ""), "quantity": "1"})

    @app.post("/order")
    def order_post() -> Any:
        values = {k: request.form.get(k, "") for k in ("name", "email", "product_id", "quantity")}
        try:
            order = place_order(values)
        except OrderError as exc:
            return order_form(values, error=str(exc), status=400)
        return redirect(url_for("order_page", order_id=order.id), code=303)

    @app.get("/orders")
    def orders_page() -> str:
        return render_template("orders.html", orders=store.orders())

    @app.get("/orders/<int:order_id>")
    def order_page(order_id: int) -> str | tuple[str, int]:
        order = store.order(order_id)
        if order is None:
            return render_template("message.html", title="Not found", message="No such order."), 404
        return render_template("order_confirm.html", order=order)

    @app.get("/api/products")
    def api_products() -> Response:
        return jsonify(products=[p.to_json() for p in store.products()])

    @app.get("/api/orders")
    def api_orders() -> Response:
        return jsonify(orders=[o.to_json() for o in store.orders()])

    @app.post("/api/orders")
    def api_create_order() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error="Send a JSON object with name, email, product_id and quantity."), 400
        try:
            order = place_order(body)
        except OrderError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(order.to_json()), 201, {"Location": f"/api/orders/{order.id}"}

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.get("/slow")
    def slow() -> Response | tuple[str, int]:
        raw = request.args.get("ms", str(SLOW_DEFAULT_MS)).strip()
        if not raw.isascii() or not raw.isdigit():
            return f"ms must be a whole number of milliseconds (at most {SLOW_MAX_MS})", 400
        ms = min(int(raw), SLOW_MAX_MS)
        with tracer.start_as_current_span("slow.compute") as span:
            span.set_attribute("shop.slow.ms", ms)
            time.sleep(ms / 1000)
        return Response(f"slept {ms} ms", mimetype="text/plain")

    @app.get("/error")
    def error() -> NoReturn:
        with tracer.start_as_current_span("payment.charge") as span:
            span.set_attribute("shop.payment.card_last4", "4242")
            raise ValueError("payment provider rejected card 4242")

    return app


def restock_forever(store: Store, stop: threading.Event, interval_s: float = RESTOCK_INTERVAL_S) -> None:
    """Restock low products every ``interval_s`` seconds, each run in a ``job.restock`` span, until ``stop``.

    Args:
        store: the store to restock.
        stop: set it to end the loop.
        interval_s: seconds between runs.
    """
    while not stop.wait(interval_s):
        with tracer.start_as_current_span("job.restock") as span:
            added = store.restock()
            span.set_attribute("shop.restock.units", added)
            log.info("restock: added %d units", added, extra={"job": "restock", "units": added})


def _port_from_env() -> int:
    """Return ``$PORT`` (default 8000), or exit with status 2 when it is not a valid port."""
    raw = os.environ.get("PORT", str(DEFAULT_PORT))
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 65536:
        print(f"shop: PORT must be a number from 1 to 65535, not {raw!r}", file=sys.stderr, flush=True)
        sys.exit(2)
    return int(raw)


def _exit_on_sigterm(_signum: int, _frame: object) -> NoReturn:
    """Turn SIGTERM into ``SystemExit`` so ``main`` shuts down cleanly and flushes telemetry."""
    sys.exit(0)


def main() -> int:
    """Serve the shop on 127.0.0.1:$PORT until SIGTERM or Ctrl-C.

    Returns:
        The process exit status.
    """
    port = _port_from_env()
    telemetry = setup_telemetry()
    store = Store.seeded()
    app = create_app(store)
    try:
        server = make_server(HOST, port, app, threaded=True)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", HOST, port, exc)
        telemetry.shutdown()
        return 1
    stop = threading.Event()
    threading.Thread(target=restock_forever, args=(store, stop), name="restock", daemon=True).start()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    print(f"shop listening on http://{HOST}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        log.info("shop stopped")
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
