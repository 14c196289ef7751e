"""The agent's inner loop with real processes: edit, ``legible restart``, drive traffic, ``legible diff``.

Every test runs on a copy of the example shop in a temp git repository (never on ``examples/shop``).
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import REPO, cli, cli_json, git
from .test_stack import shop_repo, wait_until

EXAMPLE_TOML = (REPO / "examples" / "shop" / "legible.toml").read_text()
ORDER = {"name": "Ada Lovelace", "email": "ada@example.com", "product_id": "1", "quantity": "1"}


def _edit(root: Path, old: str, new: str) -> None:
    app = root / "app.py"
    text = app.read_text()
    assert old in text, old
    app.write_text(text.replace(old, new, 1))


def _status(root: Path) -> dict:
    code, doc = cli_json(root, "status")
    assert code == 0, doc
    return doc


def _restart(root: Path, *names: str) -> dict:
    code, doc = cli_json(root, "restart", *names, "--timeout", "60")
    assert code == 0, doc
    assert doc["schema"] == "legible.restart/v1" and doc["deploy"]["status"] == "ready"
    return doc


def _journeys(root: Path, name: str, times: int) -> None:
    for _ in range(times):
        res = cli(root, "journey", "run", name)
        assert res.returncode == 0, res.stdout + res.stderr


def _cdp(state: dict) -> str:
    return f"http://127.0.0.1:{state['services']['chromium']['port']}"


def _diff(root: Path, *args: str) -> dict:
    code, doc = cli_json(root, "diff", *args)
    assert code == 0, doc
    assert doc["schema"] == "legible.diff/v1"
    return doc


def _order_errors_seen(root: Path, since: str = "deploy") -> bool:
    code, doc = cli_json(root, "logs", "--level", "error", "--since", since)
    return code == 0 and doc["total"] > 0


@contextlib.contextmanager
def _in_tmp(path: Path) -> Iterator[None]:
    """``TMPDIR`` is ``path`` meanwhile: this test's own Playwright driver leaves an empty
    ``playwright-artifacts-*`` behind after ``connect_over_cdp``, and it belongs in the test's directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(path))
        yield


def test_edit_restart_diff_on_the_example_shop(tmp_path: Path, down_after: list[Path]) -> None:
    from playwright.sync_api import sync_playwright

    # the test looks at the browser's tab and cookies from outside, through a loopback CDP port
    assert "[stack]\nbrowser = true\n" in EXAMPLE_TOML
    toml = EXAMPLE_TOML.replace("[stack]\nbrowser = true\n", "[stack]\nbrowser = true\ncdp_port = true\n")
    root = shop_repo(tmp_path / "shop", toml)
    down_after.append(root)
    code, up = cli_json(root, "up", "--wait", "--timeout", "90")
    assert code == 0, up
    app_url = up["endpoints"]["app"]
    st = _status(root)
    assert st["deploy"]["number"] == 1 and st["deploy"]["trigger"] == "up" and not st["stale"]["stale"]
    _journeys(root, "report", 3)
    # the browser's state before the restart: a tab on a page, and a cookie
    assert cli(root, "browser", "open", "/orders").returncode == 0
    with _in_tmp(tmp_path), sync_playwright() as pw:
        ctx = pw.chromium.connect_over_cdp(_cdp(st)).contexts[0]
        ctx.add_cookies([{"name": "agent", "value": "kept", "url": app_url}])
    tabs = {t["id"] for t in requests.get(_cdp(st) + "/json/list", timeout=5).json() if t["type"] == "page"}

    # 1. /slow gets slower: stale before the restart, current after; diff flags GET /slow and nothing else
    _edit(root, "SLOW_DEFAULT_MS = 1200", "SLOW_DEFAULT_MS = 2400")
    stale = _status(root)["stale"]
    assert stale["stale"] and stale["changed"] == ["app.py"]
    text = cli(root, "status").stdout
    assert "warning: app runs deploy 1 (commit " in text and "1 file changed since): legible restart" in text
    assert cli(root, "logs").stdout.startswith("warning: app runs deploy 1")
    for cmd in ("logs", "traces"):  # the same lines in the JSON documents
        _, doc = cli_json(root, cmd)
        assert [w[:29] for w in doc["warnings"]] == ["warning: app runs deploy 1 (c"], (cmd, doc["warnings"])
    restarted = _restart(root)
    assert restarted["deploy"]["number"] == 2 and restarted["deploy"]["dirty"]
    assert restarted["ready_ms"] > 0
    st = _status(root)
    assert not st["stale"]["stale"] and st["deploy"]["number"] == 2
    assert "warning:" not in cli(root, "status").stdout
    assert st["services"]["chromium"]["pid"] == up["services"]["chromium"]["pid"]  # the browser stayed up
    assert st["services"]["victoria-metrics"]["pid"] == up["services"]["victoria-metrics"]["pid"]
    assert st["services"]["app"]["pid"] != up["services"]["app"]["pid"]
    # same tab, same cookie; a journey runs right after
    after_tabs = {t["id"] for t in requests.get(_cdp(st) + "/json/list", timeout=5).json() if t["type"] == "page"}
    assert tabs <= after_tabs
    code, bstatus = cli_json(root, "browser", "status")
    assert code == 0 and bstatus["url"].endswith("/orders"), bstatus
    with _in_tmp(tmp_path), sync_playwright() as pw:
        cookies = pw.chromium.connect_over_cdp(_cdp(st)).contexts[0].cookies(app_url)
    assert {"name": "agent", "value": "kept"}.items() <= next(c for c in cookies if c["name"] == "agent").items()
    _journeys(root, "report", 3)
    doc = _diff(root)
    assert doc["after"]["deploy"] == 2 and doc["before"]["deploy"] == 1
    slow = next(r for r in doc["routes"] if r["name"] == "GET /slow")
    assert slow["flagged"] and slow["note"] == "slower" and slow["change_p50_pct"] > 50, slow
    assert [r["name"] for r in doc["routes"] if r["flagged"]] == ["GET /slow"]
    assert doc["errors"]["new"] == [] and doc["summary"]["slower"] == 1
    out = cli(root, "diff").stdout
    assert re.search(r"^! GET /slow \[app\] .* p50 1\.2\d* s -> 2\.4\d* s \+\d+%", out, re.M), out
    assert len(out.splitlines()) <= 40
    # the startup check judges the current deploy
    code, chk = cli_json(root, "check", "fast-start")
    assert chk["checks"][0]["details"]["deploy"] == 2
    assert chk["checks"][0]["measured"] == st["services"]["app"]["first_ready_ms"]

    # 2. a new exception on POST /order: exactly that new error group, with a trace id
    _edit(
        root,
        '        values = {k: request.form.get(k, "") for k in',
        '        raise RuntimeError("inventory service unreachable")\n'
        '        values = {k: request.form.get(k, "") for k in',
    )
    _restart(root)
    assert requests.post(app_url + "/order", data=ORDER, timeout=10, allow_redirects=False).status_code == 500
    wait_until(lambda: _order_errors_seen(root), timeout=20)
    doc = _diff(root)
    assert doc["after"]["deploy"] == 3 and len(doc["errors"]["new"]) == 1, doc["errors"]
    new = doc["errors"]["new"][0]
    assert new["headline"] == "RuntimeError: inventory service unreachable" and re.fullmatch(
        r"[0-9a-f]{32}", new["trace_id"] or ""
    )
    assert "+ error app  RuntimeError: inventory service unreachable" in cli(root, "diff").stdout

    # 3. revert: the group is gone
    git(root, "checkout", "--", "app.py")
    _restart(root)
    assert requests.post(app_url + "/order", data=ORDER, timeout=10, allow_redirects=False).status_code == 303
    wait_until(lambda: cli_json(root, "traces", "--since", "deploy", "--name", "POST /order")[1]["total"] > 0, 20)
    doc = _diff(root)
    assert [g["headline"] for g in doc["errors"]["gone"]] == ["RuntimeError: inventory service unreachable"]
    assert doc["errors"]["new"] == []
    assert _status(root)["stale"]["stale"] is False  # a checkout to the deployed content is not stale

    # 4. an app that fails to start: one error line with its log tail, exit 4; the stack stays up
    _edit(root, "def create_app(", "raise SystemExit('broken on purpose')\n\n\ndef create_app(")
    res = cli(root, "restart")
    assert res.returncode == 4, res.stdout + res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].startswith("error: deploy 5: app exited with code 1 while deploy 5 was starting"), lines
    assert any("broken on purpose" in ln for ln in lines) and lines[-1].startswith("hint: ")
    assert not any("restock" in ln for ln in lines)  # only this start's output, not the previous deploy's
    st = _status(root)
    assert st["alive"] and st["status"] == "degraded" and st["services"]["app"]["status"] == "failed"
    assert st["services"]["collector"]["status"] == "ready" and st["deploy"]["status"] == "failed"
    text = cli(root, "status").stdout
    assert "app is down: app exited with code 1 while deploy 5 was starting; the observability stack runs" in text
    code, logs = cli_json(root, "logs", "--since", "deploy~1")
    assert code == 0 and logs["total"] > 0  # the previous deploy's data is still there
    code, deps = cli_json(root, "deploys")
    assert [d["status"] for d in deps["deploys"]] == ["failed", "ready", "ready", "ready", "ready"]
    assert [d["trigger"] for d in deps["deploys"]][-1] == "up"


def test_restart_with_extra_services_depends_on_chains_and_watch(tmp_path: Path, down_after: list[Path]) -> None:
    toml = textwrap.dedent(
        """\
        [app]
        command = "python app.py"
        ready = { http = "/healthz" }
        watch = ["*.py", "templates/**"]

        [services.worker]
        command = "python worker.py worker"
        ready = { log = "worker up" }
        depends_on = ["app"]

        [services.mailer]
        command = "python worker.py mailer"
        ready = { log = "mailer up" }
        depends_on = ["worker"]

        [services.cache]
        command = "python worker.py cache"
        ready = { log = "cache up" }
        """
    )
    root = shop_repo(tmp_path / "shop", toml)
    (root / "worker.py").write_text(
        "import sys, time\nprint(sys.argv[1], 'up', flush=True)\nwhile True:\n    time.sleep(0.2)\n"
    )
    git(root, "add", "worker.py")
    git(root, "commit", "-q", "-m", "worker")
    down_after.append(root)
    code, up = cli_json(root, "up", "--wait", "--timeout", "90")
    assert code == 0, up
    pids = {n: s["pid"] for n, s in up["services"].items()}

    doc = _restart(root)  # all user services, dependencies first
    assert doc["deploy"]["services"] == ["app", "cache", "worker", "mailer"]  # the plan's start order
    st = _status(root)
    assert all(st["services"][n]["pid"] != pids[n] for n in ("app", "worker", "mailer", "cache"))
    assert st["services"]["collector"]["pid"] == pids["collector"]
    pids = {n: s["pid"] for n, s in st["services"].items()}

    doc = _restart(root, "worker")  # worker and what depends on it; not the app nor the cache
    assert doc["deploy"]["services"] == ["worker", "mailer"]
    st = _status(root)
    assert st["services"]["app"]["pid"] == pids["app"] and st["services"]["cache"]["pid"] == pids["cache"]
    assert st["services"]["worker"]["pid"] != pids["worker"] and st["services"]["mailer"]["pid"] != pids["mailer"]

    def deploy_labels() -> set[str]:  # startup history as a metric: one series per deploy
        doc = cli_json(root, "metrics", 'sum by (deploy) (legible_deploy_ready_seconds{service="worker"})')[1]
        return {ser["labels"].get("deploy") for ser in doc.get("series", [])}

    assert wait_until(lambda: deploy_labels() == {"1", "2", "3"}, timeout=20)

    res = cli(root, "restart", "collector")
    assert res.returncode == 2 and res.stderr.startswith("error: collector is part of the observability stack")

    # watch: an edit restarts the app (and its dependents) as a deploy of its own
    with (root / "app.py").open("a") as fh:
        fh.write("\n# an edit\n")

    def watched() -> dict | None:
        deps = cli_json(root, "deploys")[1]["deploys"]
        return deps[0] if deps[0]["trigger"] == "watch" and deps[0]["status"] == "ready" else None

    rec = wait_until(watched, timeout=30, every=0.5)
    assert rec["number"] == 4 and rec["services"] == ["app", "worker", "mailer"] and rec["dirty"]
    assert not _status(root)["stale"]["stale"]
    assert json.loads((root / ".legible" / "deploys.jsonl").read_text().splitlines()[-1])["number"] == 4
    assert oct((root / ".legible" / "deploys.jsonl").stat().st_mode & 0o777) == "0o600"


P99_SLOW = (
    "histogram_quantile(0.99, sum by (vmrange) "
    '(increase(legible_span_duration_seconds_bucket{span_name="GET /slow"}[10m])))'
)


def test_the_eight_questions_each_take_at_most_two_commands_and_2_kb(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", EXAMPLE_TOML)
    down_after.append(root)
    code, up = cli_json(root, "up", "--wait", "--timeout", "90")
    assert code == 0, up
    app_url = up["endpoints"]["app"]
    requests.get(app_url + "/slow", timeout=10)
    _edit(root, "SLOW_DEFAULT_MS = 1200", "SLOW_DEFAULT_MS = 1300")  # "my change", on top of main
    _restart(root)
    assert requests.get(app_url + "/error", timeout=10).status_code == 500
    requests.get(app_url + "/slow", timeout=10)
    wait_until(lambda: _order_errors_seen(root), timeout=20)
    wait_until(lambda: cli_json(root, "metrics", P99_SLOW)[1].get("series"), timeout=30)

    def ask(*commands: list[str], codes: tuple[int, ...] = (0,)) -> str:
        out = ""
        for args in commands:
            if "<trace-id>" in args:  # the id the previous command printed
                args = [re.findall(r"trace=([0-9a-f]{32})", out)[0] if a == "<trace-id>" else a for a in args]
            res = cli(root, *args)
            assert res.returncode in codes, res.stdout + res.stderr
            out += res.stdout
        assert len(commands) <= 2 and len(out.encode()) <= 2048, (len(out.encode()), out)
        return out

    why = ask(["logs", "--level", "error", "--since", "deploy"], ["trace", "<trace-id>"])
    assert "ValueError: payment provider rejected card 4242" in why and "GET /error" in why
    assert re.search(
        r"(PASS|FAIL) +startup-1 +app ready in .* 800 ms \(deploy 2\)",
        ask(["check", "--startup", "800ms"], codes=(0, 1)),
    )
    assert re.search(r"app +GET /slow +1\.\d+ s", ask(["journey", "run", "report"]))
    assert re.search(r"\d\.\d+ s", ask(["metrics", P99_SLOW]))
    assert "ValueError: payment provider rejected card 4242" in ask(["logs", "--level", "error", "--since", "deploy"])
    assert "PASS  browser-1  0 console errors" in ask(["check", "--browser", "pages=/order,console_errors=0"])
    assert "Thank you, Ada Lovelace" in ask(["journey", "run", "checkout"], ["browser", "snapshot"])
    assert ask(["diff", "--against", "deploy:1"]).startswith("deploy 2 (")


def test_up_watch_restarts_on_an_edit_and_not_on_its_own_writes(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop")
    down_after.append(root)
    code, up = cli_json(root, "up", "--wait", "--watch", "--timeout", "90")
    assert code == 0, up
    requests.get(up["endpoints"]["app"] + "/", timeout=10)  # logs and spans written under .legible/
    wait_until(lambda: cli_json(root, "traces", "--since", "deploy")[1]["total"] > 0, timeout=20)
    assert [d["number"] for d in cli_json(root, "deploys")[1]["deploys"]] == [1]  # its own writes: no restart
    template = root / "templates" / "layout.html"
    template.write_text(template.read_text() + "\n<!-- an edit -->\n")

    def watched() -> dict | None:
        deps = cli_json(root, "deploys")[1]["deploys"]
        return deps[0] if deps[0]["trigger"] == "watch" and deps[0]["status"] == "ready" else None

    rec = wait_until(watched, timeout=30, every=0.5)
    assert rec["number"] == 2 and rec["services"] == ["app"]
    assert "<!-- an edit -->" in requests.get(up["endpoints"]["app"] + "/", timeout=10).text
