#!/usr/bin/env bash
# The README's first command: boot this repository's stack (the example shop), drive some traffic,
# show what legible answers, and say how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run legible up --wait --timeout 60
set -a; . .legible/env; set +a
say "traffic: home, products API, an order, /slow, /error"
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/"
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/api/products"
curl -fsS -o /dev/null -d 'name=Ada&email=ada@example.com&product=1&quantity=2' "$LEGIBLE_APP_URL/order" || true
curl -fsS -o /dev/null "$LEGIBLE_APP_URL/slow" || true
curl -sS -o /dev/null "$LEGIBLE_APP_URL/error" || true
sleep 2
run legible status
if legible --help | grep -q ' metrics '; then
  run legible metrics 'legible_service_ready_seconds'
  run legible metrics 'sum by (route, status) (shop_http_requests_total)'
else
  say "curl VictoriaMetrics: legible_service_ready_seconds"
  curl -fsS "$LEGIBLE_VICTORIA_METRICS_URL/api/v1/query?query=legible_service_ready_seconds"; echo
fi
if legible --help | grep -q ' logs '; then
  run legible logs --level warn --since 5m
fi
if legible --help | grep -q ' traces '; then
  run legible traces --slowest 5
fi
cat <<MSG

The stack keeps running: app $LEGIBLE_APP_URL, VictoriaMetrics $LEGIBLE_VICTORIA_METRICS_URL
Use it:   . .venv/bin/activate; legible status   (and the commands above)
Stop it:  .venv/bin/legible down          (add --purge to delete .legible/)
MSG
