#!/usr/bin/env bash
# Set up everything legible needs on a fresh Debian machine: a virtualenv with legible and its test/example
# extras, then Debian's victoria-metrics, chromium, postgresql, redis-server, and jq for the tests' stand-in
# gh (apt as root; otherwise `legible doctor --install`, which unpacks the .deb into legible's tool cache).
# Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # the third-party app of the tests; --no-deps: see the comment in pyproject.toml's "example" extra
  .venv/bin/python -m pip install -q --no-deps 'httpbin==0.10.4'
  touch "$stamp"
fi
# Bytecode of legible's own modules, as pip writes it when it installs a wheel: an editable install has
# none, and with PYTHONDONTWRITEBYTECODE set every process (each command, the supervisor, the collector)
# compiled them from source again, about 0.2 s of CPU per `legible up` (issue 12). Up-to-date files are skipped.
.venv/bin/python -m compileall -q legible clis >/dev/null
if ! command -v victoria-metrics >/dev/null || ! command -v chromium >/dev/null \
  || ! command -v redis-server >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
  || ! command -v jq >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq victoria-metrics chromium postgresql redis-server jq >/dev/null
  else
    .venv/bin/legible doctor --install || true
  fi
fi
PATH="$PWD/.venv/bin:$PATH" .venv/bin/legible doctor
