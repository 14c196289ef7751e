"""`legible browser diff` on the example shop after changing a page's heading: one changed line in the
accessibility snapshot, and a screenshot diff image with the changed fraction."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest

from legible.browser.diff import snapshot_diff

from .conftest import REPO, cli, cli_json, stack_pids
from .test_stack import shop_repo, wait_until


def test_snapshot_diff_pairs_changed_lines_and_ignores_refs() -> None:
    before = '- heading "Products" [level=1]\n- link "Shop" [ref=e5]\n- button "Buy" [ref=e7]\n'
    after = '- heading "Our products" [level=1]\n- link "Shop" [ref=e12]\n- button "Buy" [ref=e14]\n- text: new\n'
    d = snapshot_diff(before, after)
    assert d.changed == [('- heading "Products" [level=1]', '- heading "Our products" [level=1]')]
    assert d.added == ["- text: new"] and d.removed == []
    # a different page: a heading renamed is a change; unrelated lines are removed and added, never paired
    d = snapshot_diff(
        '- heading "Products" [level=1]\n- table:\n', '- heading "Place an order" [level=1]\n- textbox "Name"\n'
    )
    assert d.changed == [('- heading "Products" [level=1]', '- heading "Place an order" [level=1]')]
    assert d.removed == ["- table:"] and d.added == ['- textbox "Name"']


def app_pid(key: str) -> int | None:
    for pid in stack_pids(key):
        try:
            if "app.py" in " ".join(psutil.Process(pid).cmdline()):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.mark.slow
def test_diff_after_changing_a_heading(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", (REPO / "examples" / "shop" / "legible.toml").read_text())
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "90", timeout=120)
    assert code == 0, doc
    app, key = doc["endpoints"]["app"], doc["key"]
    assert cli(root, "browser", "open", "/orders").returncode == 0
    first = cli(root, "browser", "diff")
    assert first.returncode == 0, first.stderr
    ref = re.search(r": (/\S+\.png)$", cli(root, "browser", "screenshot", "--png").stdout.strip()).group(1)

    # change the order page's heading; the supervisor restarts the app we stop, which then serves it
    # (the orders page: the order form's stock counts change on their own while the shop restocks)
    template = root / "templates" / "orders.html"
    template.write_text(template.read_text().replace("{% block title %}Orders{%", "{% block title %}Your orders{%"))
    old = app_pid(key)
    assert old is not None
    os.kill(old, signal.SIGTERM)

    def serves_new_heading() -> bool:
        if app_pid(key) in (None, old):
            return False
        try:
            return b"Your orders" in urllib.request.urlopen(app + "/orders", timeout=5).read()  # noqa: S310
        except OSError:
            return False  # restarting

    wait_until(serves_new_heading, timeout=60, every=0.5)
    assert cli(root, "browser", "open", "/orders").returncode == 0
    res = cli(root, "browser", "diff", "--screenshot", ref)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert re.match(r"snapshot vs previous \(\S+\.yaml\): 1 changed, 0 added, 0 removed lines$", lines[0]), "\n".join(
        lines
    )
    assert lines[1] == '~ - heading "Orders" [level=1]  ->  - heading "Your orders" [level=1]'
    m = re.match(r"screenshot vs \S+: (\d+\.\d+)% of pixels changed \((\d+) of (\d+)\); diff image: (\S+)$", lines[2])
    assert m, lines
    assert 0 < int(m.group(2)) < int(m.group(3))
    assert Path(m.group(4)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, same = cli_json(root, "browser", "diff", "--screenshot", ref)
    assert same["schema"] == "legible.browser-diff/v1"
    assert same["lines"] == {"changed": [], "added": [], "removed": []}
    assert same["screenshot"]["changed_fraction"] > 0  # still different from the old reference
    json.dumps(same)


@pytest.mark.slow
def test_proof_baseline_adds_each_journeys_end_state_diff(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", (REPO / "examples" / "shop" / "legible.toml").read_text())
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "90", timeout=120)
    assert code == 0, doc
    _, first = cli_json(root, "proof", "--no-record", timeout=180)
    bundle1 = root / ".legible" / "proof" / first["run_id"]
    assert (bundle1 / "journeys" / "checkout" / "end-state.png").is_file()
    _, second = cli_json(root, "proof", "--no-record", "--baseline", first["run_id"], timeout=180)
    visual = {r["journey"]: r for r in second["baseline"]["visual"]}
    assert set(visual) == {"checkout", "report"}
    bundle2 = root / ".legible" / "proof" / second["run_id"]
    summary = (bundle2 / "summary.md").read_text()
    assert "### End state vs baseline" in summary
    for name, row in visual.items():
        assert 0 <= row["changed_fraction"] < 1, row
        assert (bundle2 / row["diff"]).read_bytes()[:4] == b"\x89PNG"
        assert f"| {name} | {row['changed_fraction']:.2%} | ![{name} diff]({row['diff']}) |" in summary
    # the order confirmation names a new order number each run: its end state differs from the baseline's
    assert visual["checkout"]["changed_fraction"] > 0
    assert any(f["path"] == visual["checkout"]["diff"] for f in second["files"])
