"""legible proof on the example shop with secrets planted everywhere: none reaches any file of the bundle.

Planted: secret env values (one with digits, which the store's log templates fold to ``<n>``), a bearer
credential, URL credentials, a ``?token=`` query, ``password="..."`` and JSON ``{"password": ...}`` in app
logs, a Stripe-shaped key, and a journey URL with ``password=`` (drawn as a chapter card and written into
the MP4's chapter metadata). The bundle's bytes (MP4 and GIF included) are grepped; the worktree path must
stay readable, and proof must finish with a manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import cli

pytestmark = pytest.mark.slow

SECRETS = {
    "DB_PASSWORD": "Geheim-2024-Kette",
    "STRIPE_API_KEY": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "bearer": "BearerCred-9f8e7d6c",
    "url": "UrlSecret-77x",
    "query": "QueryTok-5521",
    "quoted": "Pw Quoted 8812",
    "json": "JsonPw-3310",
    "journey": "JourneyPw-4242",
}

TOML = f"""
[app]
command = "python app.py"
ready = {{ http = "/healthz" }}
metrics_path = "/metrics"

[services.leaky]
shell = true
command = '''echo "ERROR cannot reach the db as $DB_PASSWORD"
echo "ERROR charge failed with $STRIPE_API_KEY"
echo "ERROR upstream 401 for Authorization: Bearer {SECRETS["bearer"]}"
echo "ERROR fetch https://shopper:{SECRETS["url"]}@pay.example.invalid/x failed"
echo "ERROR callback GET /cb?token={SECRETS["query"]}&step=2 failed"
echo 'ERROR login failed password="{SECRETS["quoted"]}"'
echo '{{"level": "error", "msg": "bad login", "password": "{SECRETS["json"]}"}}'
sleep 300'''
env = {{ DB_PASSWORD = "{SECRETS["DB_PASSWORD"]}", STRIPE_API_KEY = "{SECRETS["STRIPE_API_KEY"]}" }}

[journeys.login]
steps = [
  {{ goto = "/?password={SECRETS["journey"]}" }},
  {{ expect_text = "Espresso cup" }},
]

[checks.no-errors]
logs = {{ level = "error", max_count = 0, since = "15m" }}

[checks.login]
journey = {{ name = "login", max = "60s" }}

[stack]
browser = true
"""


def test_no_planted_secret_reaches_any_file_and_the_worktree_path_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_stack import shop_repo, wait_until

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    root = shop_repo(tmp_path / "shop", TOML)
    try:
        up = cli(root, "up", "--wait", timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        logs = lambda: cli(root, "logs", "--service", "leaky", "--level", "error").stdout  # noqa: E731
        assert wait_until(lambda: "bad login" in logs() and "cannot reach" in logs(), timeout=20), logs()
        res = cli(root, "proof", "--json", timeout=300)
    finally:
        cli(root, "down")
    assert res.returncode in (0, 1), res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    manifest = json.loads(res.stdout)
    bundle = root / ".legible" / "proof" / manifest["run_id"]
    assert (bundle / "manifest.json").is_file()
    assert manifest["journeys"]["login"]["passed"], manifest["journeys"]
    files = [p for p in bundle.rglob("*") if p.is_file()]
    names = {p.relative_to(bundle).as_posix() for p in files}
    assert any(n.endswith(".mp4") for n in names) and any(n.endswith(".gif") for n in names), names
    needles = {k: v.encode() for k, v in SECRETS.items()}
    needles["folded"] = b"Geheim-<n>-Kette"  # the DB password as the error groups' template shows it
    for path in files:
        data = path.read_bytes()
        for kind, needle in needles.items():
            assert needle not in data, (kind, path.relative_to(bundle))
        assert not any(v in str(path) for v in SECRETS.values())
    summary = (bundle / "summary.md").read_text()
    assert "[REDACTED]" in summary and "| ❌ | no-errors |" in summary
    on_disk = (bundle / "manifest.json").read_text()
    assert str(root) in on_disk and json.loads(on_disk)["worktree"] == str(root)
