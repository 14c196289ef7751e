"""Spans, logs and metrics of real apps reach the stack's collector over OTLP/HTTP and OTLP/gRPC, and the
query commands answer from them: the example shop, and an unmodified third-party app (httpbin) started
under `opentelemetry-instrument`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from .conftest import cli, cli_json, make_repo
from .test_stack import shop_repo
from .test_stack import wait_until as wait_for

GRPC_ENV = (
    'env = { OTEL_EXPORTER_OTLP_PROTOCOL = "grpc", OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:$OTLP_GRPC_PORT" }'
)


def signals_reach_the_commands(root: Path, hits: list[str], span: str, metric: str) -> None:
    code, doc = cli_json(root, "up", "--wait", timeout=120)
    assert code == 0, doc
    try:
        app = doc["endpoints"]["app"]
        for path in hits:
            requests.get(app + path, timeout=10)

        def traces() -> str | None:
            out = cli(root, "traces", "--since", "5m").stdout
            return out if span in out else None

        def otlp_logs() -> int:
            _, res = cli_json(root, "logs", "--sql", "SELECT count(*) FROM logs WHERE source = 'otlp'")
            return int(res["rows"][0][0])

        def metrics() -> str | None:
            out = cli(root, "metrics", "list", metric).stdout
            return out if not out.startswith("0 metrics") else None

        assert " app " in wait_for(traces)  # the trace list names the service
        assert wait_for(otlp_logs) > 0  # OTLP log records (not only the tailed stdout)
        assert metric in wait_for(metrics, timeout=30)  # OTLP metrics converted into VictoriaMetrics
    finally:
        cli(root, "down")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_example_shop_over_each_protocol(tmp_path: Path, protocol: str) -> None:
    toml = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n'
    if protocol == "grpc":
        toml += GRPC_ENV + "\n"
    root = shop_repo(tmp_path / "shop", toml)
    signals_reach_the_commands(root, ["/", "/error", "/slow?ms=50"], "GET /error", "http_server")


@pytest.mark.skipif(shutil.which("opentelemetry-instrument") is None, reason="needs legible[example]")
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unmodified_httpbin_under_opentelemetry_instrument_over_each_protocol(tmp_path: Path, protocol: str) -> None:
    toml = (
        '[app]\ncommand = "python -m httpbin.core --port $PORT --host 127.0.0.1"\n'
        'instrument = true\nready = { http = "/get" }\n'
    )
    if protocol == "grpc":
        toml += GRPC_ENV + "\n"
    root = make_repo(tmp_path / "httpbin", toml)
    signals_reach_the_commands(root, ["/get", "/status/500", "/delay/0"], "GET /status/<codes>", "http_server")


def test_example_shop_with_only_grpc_in_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default of several SDKs: OTEL_EXPORTER_OTLP_PROTOCOL=grpc and nothing else; legible points the
    endpoint at the collector's gRPC port, so spans, logs and metrics arrive."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    toml = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n'
    root = shop_repo(tmp_path / "shop", toml)
    signals_reach_the_commands(root, ["/", "/error", "/slow?ms=50"], "GET /error", "http_server")


def test_traces_explain_why_no_span_arrived(tmp_path: Path) -> None:
    """gRPC sent to the OTLP/HTTP port (legible.toml overrides the endpoint): `legible traces` says that no
    span came from the app since it became ready, and why, in one line."""
    toml = (
        '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n'
        'env = { OTEL_EXPORTER_OTLP_PROTOCOL = "grpc", '
        'OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:$OTLP_HTTP_PORT" }\n'
    )
    root = shop_repo(tmp_path / "shop", toml)
    code, doc = cli_json(root, "up", "--wait", timeout=120)
    assert code == 0, doc
    try:
        for path in ["/", "/error"]:
            requests.get(doc["endpoints"]["app"] + path, timeout=10)
        out = cli(root, "traces", "--since", "5m").stdout.splitlines()
        assert out[0].startswith("0 traces")
        assert out[1].startswith("no spans from app since it became ready ") and len(out) == 2
        _, res = cli_json(root, "traces", "--since", "5m")
        assert res["missing"].startswith("no spans from app since it became ready ")
    finally:
        cli(root, "down")
