#!/usr/bin/env bash
# The README's first command: boot this repository's stack (the example shop), drive some traffic,
# show what legible answers, and say how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@" || echo "(exit $?)"; }

run legible up --wait --timeout 60
set -a; . .legible/env; set +a
say "traffic: home, products API, an order, /slow, /error"
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/"
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/api/products"
curl -fsS -o /dev/null -d 'name=Ada&email=ada@example.com&product_id=1&quantity=2' "$LEGIBLE_APP_URL/order"
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/slow" || true
curl -sS -o /dev/null "$LEGIBLE_APP_URL/error" || true
run legible status
run legible logs --level warn --since 5m
trace=$(legible traces --errors --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"][:12])')
run legible trace "$trace"
run legible traces --slowest 5
run legible metrics 'histogram_quantile(0.99, sum by (vmrange) (increase(legible_span_duration_seconds_bucket{span_name="GET /slow"}[10m])))'
run legible metrics 'sum by (service) (legible_service_ready_seconds)'
run legible journey run checkout
run legible journey run report
run legible check
cat <<MSG

The stack keeps running: app $LEGIBLE_APP_URL, VictoriaMetrics $LEGIBLE_VICTORIA_METRICS_URL
Use it:   . .venv/bin/activate; legible status   (and the commands above)
Stop it:  .venv/bin/legible down          (add --purge to delete .legible/)
MSG
