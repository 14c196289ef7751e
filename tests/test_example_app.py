"""The example shop (examples/shop) as a real process: pages, JSON API, probes, Prometheus metrics, and
OTLP export both to a dead endpoint (the app must shrug) and to a stand-in OTLP/HTTP receiver."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import psutil
import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import wait_until

REPO = Path(__file__).resolve().parent.parent
APP = "examples/shop/app.py"
STARTUP_TIMEOUT_S = 15.0
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# Lines the OpenTelemetry exporters print when they cannot reach the endpoint.
EXPORTER_NOISE = re.compile(r"opentelemetry\.exporter|Transient error|Failed to export|Exception while exporting")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Shop:
    """A running shop process and where its output goes."""

    proc: subprocess.Popen[bytes]
    url: str
    out_path: Path
    err_path: Path
    files: list[IO[bytes]] = field(default_factory=list)

    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 15)
        return requests.get(self.url + path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 15)
        return requests.post(self.url + path, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for f in self.files:
            f.close()


def start_shop(workdir: Path, **env: str) -> Shop:
    """Start ``python examples/shop/app.py`` with a fresh port and ``env``; return once /healthz answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(PORT=str(port), **env)
    out_path, err_path = workdir / "stdout.log", workdir / "stderr.log"
    out, err = out_path.open("wb"), err_path.open("wb")
    proc = subprocess.Popen([sys.executable, APP], cwd=REPO, env=full_env, stdout=out, stderr=err)
    shop = Shop(proc, f"http://127.0.0.1:{port}", out_path, err_path, [out, err])
    try:
        _wait_ready(shop)
    except BaseException:
        shop.stop()
        raise
    return shop


def _wait_ready(shop: Shop) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if shop.proc.poll() is not None:
            pytest.fail(f"shop exited with {shop.proc.returncode}: {shop.stderr()[-2000:]}")
        try:
            if shop.get("/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"shop not ready in {STARTUP_TIMEOUT_S}s: {shop.stderr()[-2000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """One shop for the module, exporting OTLP to a port where nothing listens."""
    running = start_shop(
        tmp_path_factory.mktemp("shop"),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_SERVICE_NAME="shop-test",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    )
    yield running
    running.stop()


def test_startup_line_is_printed_once_bound(shop: Shop) -> None:
    first = shop.stdout().splitlines()[0]
    assert first == f"shop listening on {shop.url}"


def test_home_lists_products_with_nav(shop: Shop) -> None:
    r = shop.get("/")
    assert r.status_code == 200
    assert "Espresso cup" in r.text and "Burr grinder" in r.text
    assert 'href="/products/1"' in r.text
    assert '<nav aria-label="Main">' in r.text
    page = shop.get("/products/3")
    assert page.status_code == 200 and "Burr grinder" in page.text
    assert shop.get("/products/999").status_code == 404


def test_order_form_creates_order_and_redirects(shop: Shop) -> None:
    form = shop.get("/order")
    assert form.status_code == 200
    for name in ("name", "email", "product_id", "quantity"):
        assert f'<label for="{name}">' in form.text and f'id="{name}"' in form.text
    r = shop.post(
        "/order",
        data={"name": "Ada Lovelace", "email": "ada@example.com", "product_id": "4", "quantity": "2"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    location = r.headers["Location"]
    assert re.fullmatch(r"/orders/\d+", location)
    confirmation = shop.get(location)
    assert confirmation.status_code == 200
    assert "Ada Lovelace" in confirmation.text and "$48.00" in confirmation.text
    assert "Ada Lovelace" in shop.get("/orders").text


def test_invalid_order_form_is_400_with_message(shop: Shop) -> None:
    r = shop.post("/order", data={"name": "Bo", "email": "bo@example.com", "product_id": "1", "quantity": "0"})
    assert r.status_code == 400
    assert 'role="alert"' in r.text
    assert "Quantity must be a whole number from 1 to 20." in r.text
    assert 'value="bo@example.com"' in r.text  # what was typed is kept
    r = shop.post("/order", data={"name": "Bo", "email": "nope", "product_id": "1", "quantity": "1"})
    assert r.status_code == 400 and "valid email address" in r.text


def test_json_api(shop: Shop) -> None:
    r = shop.get("/api/products")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    products = r.json()["products"]
    assert len(products) >= 5
    assert {"id", "name", "description", "price_cents", "stock"} <= set(products[0])
    created = shop.post("/api/orders", json={"name": "Cy", "email": "cy@example.com", "product_id": 5, "quantity": 3})
    assert created.status_code == 201
    order = created.json()
    assert order["total_cents"] == 3 * 650 and created.headers["Location"] == f"/api/orders/{order['id']}"
    assert any(o["id"] == order["id"] for o in shop.get("/api/orders").json()["orders"])
    bad = shop.post("/api/orders", json={"name": "Cy", "email": "cy@example.com", "product_id": 999, "quantity": 1})
    assert bad.status_code == 400 and bad.json() == {"error": "Unknown product 999."}
    assert shop.post("/api/orders", data="not json").status_code == 400


def test_slow_endpoint(shop: Shop) -> None:
    t0 = time.monotonic()
    r = shop.get("/slow")
    assert r.status_code == 200 and time.monotonic() - t0 >= 1.0
    assert shop.get("/slow", params={"ms": "30"}).text == "slept 30 ms"
    assert shop.get("/slow", params={"ms": "soon"}).status_code == 400


def test_error_endpoint_is_500_with_traceback_on_stderr(shop: Shop) -> None:
    r = shop.get("/error")
    assert r.status_code == 500
    err = shop.stderr()
    assert "Traceback (most recent call last):" in err
    assert "ValueError: payment provider rejected card 4242" in err
    access = [json.loads(line) for line in shop.stdout().splitlines() if line.startswith("{")]
    line = next(d for d in access if d.get("path") == "/error")
    assert line["status"] == 500 and line["level"] == "error" and HEX32.match(line["trace_id"])
    assert re.search(rf"ERROR shop trace_id={line['trace_id']} Exception on /error", err)


def test_stdout_is_json_lines(shop: Shop) -> None:
    shop.get("/api/products")
    lines = shop.stdout().splitlines()[1:]
    docs = [json.loads(line) for line in lines]  # every line after the startup line is JSON
    access = [d for d in docs if d.get("path") == "/api/products"]
    assert access, lines[-5:]
    for key in ("ts", "level", "msg", "method", "path", "status", "duration_ms", "trace_id"):
        assert key in access[-1]
    assert not any(d.get("path") == "/healthz" for d in docs)  # probes are counted, not logged


def test_prometheus_metrics(shop: Shop) -> None:
    shop.get("/")
    r = shop.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = families["shop_http_requests"].samples
    assert any(
        s.name == "shop_http_requests_total"
        and s.labels == {"method": "GET", "route": "/", "status": "200"}
        and s.value >= 1
        for s in samples
    )
    assert any(s.labels.get("route") == "/products/<int:product_id>" for s in samples)
    durations = families["shop_http_request_duration_seconds"].samples
    assert any(s.name.endswith("_count") and s.labels == {"route": "/"} for s in durations)
    assert families["shop_orders"].samples[0].value >= 1
    assert "_created" not in r.text


def test_listens_only_on_loopback(shop: Shop) -> None:
    listening = [c for c in psutil.Process(shop.proc.pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert {c.laddr.port for c in listening} == {int(shop.url.rsplit(":", 1)[1])}


def test_dead_otlp_endpoint_is_survived_quietly(shop: Shop) -> None:
    for _ in range(10):
        shop.get("/")
        shop.get("/error")

    def noise_lines() -> list[str]:
        return [ln for ln in (shop.stdout() + shop.stderr()).splitlines() if EXPORTER_NOISE.search(ln)]

    noise = wait_until(noise_lines, 15, "a short note that the export to the dead endpoint failed")
    assert shop.proc.poll() is None
    assert shop.get("/healthz").text == "ok"
    assert len(noise) <= 20, noise
    assert all(len(ln) < 400 for ln in noise)


def _quiet_shop_noise(tmp_path: Path, expect_noise: bool, **env: str) -> tuple[list[str], str]:
    """Start a shop with ``env``, make a few requests, and return its exporter noise lines and stdout.

    With ``expect_noise`` it waits for the first noise line (an export was tried and failed); without, for
    the request log lines that carry trace ids (spans exist; the shop's stop flushes any exporter).
    """
    shop = start_shop(tmp_path, OTEL_BSP_SCHEDULE_DELAY="200", OTEL_BLRP_SCHEDULE_DELAY="200", **env)
    try:
        for _ in range(5):
            assert shop.get("/").status_code == 200
            assert shop.get("/error").status_code == 500
        if expect_noise:
            wait_until(
                lambda: EXPORTER_NOISE.search(shop.stdout() + shop.stderr()), 15, "a failed-export note from the shop"
            )
        else:
            wait_until(lambda: '"trace_id":"' in shop.stdout(), 10, "request log lines with trace ids on stdout")
        assert shop.get("/healthz").text == "ok"
    finally:
        shop.stop()
    out = shop.stdout() + shop.stderr()
    return [ln for ln in out.splitlines() if EXPORTER_NOISE.search(ln)], shop.stdout()


def test_grpc_protocol_with_dead_endpoint(tmp_path: Path) -> None:
    noise, _ = _quiet_shop_noise(
        tmp_path,
        True,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    assert noise and len(noise) <= 20, noise
    assert all("grpc" in ln for ln in noise)


def test_no_endpoint_means_no_export(tmp_path: Path) -> None:
    noise, out = _quiet_shop_noise(tmp_path, False)
    assert noise == []
    assert '"trace_id":"' in out  # spans still exist locally, so log lines carry trace ids


# --- A stand-in OTLP/HTTP receiver. legible's collector is being built in parallel; this tiny server plays
# its part: it accepts POSTs to /v1/traces, /v1/logs and /v1/metrics and decodes them with the OTLP protobufs.

_DECODERS = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
}


class OtlpReceiver:
    """Records every OTLP/HTTP export it receives, decoded, by path."""

    def __init__(self) -> None:
        self.received: dict[str, list] = {path: [] for path in _DECODERS}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                decoder = _DECODERS.get(self.path)
                if decoder is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                message = decoder.FromString(body)
                with receiver.lock:
                    receiver.received[self.path].append(message)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self, path: str) -> list:
        with self.lock:
            return list(self.received[path])


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _attrs(kvs) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def test_exports_traces_logs_and_metrics_to_a_real_otlp_receiver(tmp_path: Path, receiver: OtlpReceiver) -> None:
    shop = start_shop(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="shop-otlp-test",
        OTEL_RESOURCE_ATTRIBUTES="legible.worktree=main-0123abcd",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="300",
    )
    try:
        assert shop.get("/error").status_code == 500
        order = {"name": "Di", "email": "di@example.com", "product_id": 1, "quantity": 2}
        assert shop.post("/api/orders", json=order).status_code == 201

        def error_spans():
            found = []
            for req in receiver.snapshot("/v1/traces"):
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        found += [(rs.resource, sp) for sp in ss.spans if sp.status.code == 2]  # STATUS_CODE_ERROR
            return found

        spans = wait_until(error_spans, 10, "a span with status ERROR at the receiver")
        resource, _ = spans[0]
        assert _attrs(resource.attributes)["service.name"] == "shop-otlp-test"
        assert _attrs(resource.attributes)["legible.worktree"] == "main-0123abcd"
        charge = next(sp for _, sp in spans if sp.name == "payment.charge")
        event = next(e for e in charge.events if e.name == "exception")
        assert _attrs(event.attributes)["exception.message"] == "payment provider rejected card 4242"
        assert any(sp.name == "GET /error" for _, sp in spans)  # the Flask server span fails too

        def error_logs():
            return [
                lr
                for req in receiver.snapshot("/v1/logs")
                for rl in req.resource_logs
                for sl in rl.scope_logs
                for lr in sl.log_records
                if lr.trace_id == charge.trace_id and lr.severity_text == "ERROR"
            ]

        logs = wait_until(error_logs, 10, "an ERROR log record with the failing trace's id at the receiver")
        assert any("ValueError" in str(_attrs(lr.attributes).get("exception.stacktrace", "")) for lr in logs)
        all_logs = [
            lr
            for req in receiver.snapshot("/v1/logs")
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for lr in sl.log_records
        ]
        assert all(len(lr.trace_id) == 16 for lr in all_logs if lr.body.string_value.startswith("GET "))

        def metric_names():
            return {
                m.name
                for req in receiver.snapshot("/v1/metrics")
                for rm in req.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            } >= {"shop.orders", "shop.order.value"}

        wait_until(metric_names, 10, "shop.orders and shop.order.value at the receiver")
    finally:
        shop.stop()
    assert shop.proc.returncode == 0
