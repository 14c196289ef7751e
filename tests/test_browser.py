"""End to end: a real stack with the example shop and a real Chromium, driven through the real CLI.

One stack serves the whole module (``legible up --wait --browser`` once); the last test stops it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .conftest import REPO, make_repo, wait_until

pytestmark = pytest.mark.slow

TOML = """\
[app]
command = "python app.py"
ready = { http = "/healthz" }
metrics_path = "/metrics"

[stack]
scrape_interval = "1s"

[journeys.checkout]
description = "order through the form"
steps = [
  { goto = "/" },
  { click = "text=Espresso cup", title = "open a product" },
  { click = "text=Order this" },
  { fill = { selector = "#name", text = "Ada Lovelace" } },
  { fill = { selector = "#email", text = "ada@example.com" } },
  { click = "role=button[name='Place order']", title = "submit" },
  { expect_text = "Thank you" },
]

[journeys.broken]
steps = [
  { goto = "/order" },
  { fill = { selector = "#name", text = "Ada" } },
  { expect_text = "Thank you", timeout_ms = 1000 },
  { click = "text=Orders" },
]

[journeys.scripted]
description = "the same order, written as a Python script"
script = "journeys/scripted.py"

# a key press with no element (page.keyboard.press) whose handler navigates from a timer: the journey's last
# step, so the run's final URL is the new page only if the step waited for that navigation
[journeys.keys]
steps = [
  { goto = "/static/later.html" },
  { click = "#field" },
  { press = "Enter" },
]

[journeys.short]
steps = [
  { chapter = "The order form" },
  { goto = "/order" },
  { fill = { selector = "#name", text = "Ada" } },
  { expect_text = "Place an order" },
]
"""

SCRIPTED_JOURNEY = """\
async def run(page, journey):
    async with journey.step("open the order form"):
        await page.goto(journey.url("/order"))
    async with journey.step("fill and submit"):
        await page.fill("#name", "Grace Hopper")
        await page.fill("#email", "grace@example.com")
        await page.select_option("#product_id", index=1)
        await page.click("role=button[name='Place order']")
    async with journey.step("see the confirmation"):
        await page.get_by_text("Thank you").wait_for(timeout=5000)
"""

THROW_HTML = """<!doctype html>
<html lang="en"><head><title>Throws</title></head>
<body><h1>A page that throws</h1>
<script>
console.warn("a warning from the test page");
function boom() {
  throw new Error("boom from the test page");
}
boom();
</script>
</body></html>
"""

#: Buttons whose handlers navigate later than the click itself (a timer, a promise) or not at all.
LATER_HTML = """<!doctype html>
<html lang="en"><head><title>Later</title></head>
<body>
<button id="timer" onclick="setTimeout(() => { location.href = '/orders'; }, 0)">Timer</button>
<button id="promise" onclick="Promise.resolve().then(() => { location.href = '/order'; })">Promise</button>
<input id="field" onkeydown="if (event.key === 'Enter') setTimeout(() => { location.href = '/'; }, 0)">
<button id="stay" onclick="document.title = 'Stayed'">Stay</button>
</body></html>
"""

#: A narrow button that, once #start is clicked, slides 900 px to the right in 0.3 s (a CSS transition, 3 px/ms:
#: a frame moves it about 50 px, more than its width) over a wide decoy that takes every click that misses it.
MOVING_HTML = """<!doctype html>
<html lang="en"><head><title>Moving</title>
<style>
#decoy { position: absolute; left: 0; top: 100px; width: 1200px; height: 40px; }
#go { position: absolute; left: 20px; top: 100px; width: 40px; height: 40px; padding: 0;
      transition: transform 300ms linear; }
#go.moved { transform: translateX(900px); }
</style></head>
<body>
<button id="start" onclick="document.getElementById('go').classList.add('moved')">Start</button>
<button id="decoy" onclick="document.title = 'Decoy'">Decoy</button>
<button id="go" onclick="document.title = 'Hit at ' + Math.round(this.getBoundingClientRect().left)">Go</button>
</body></html>
"""

#: ``#reveal`` adds a ``#late`` button whose click renames the page; two ``.twin`` buttons.
LATE_HTML = """<!doctype html>
<html lang="en"><head><title>Late</title></head>
<body>
<button id="reveal" onclick="const b = document.createElement('button'); b.id = 'late'; b.textContent = 'Late';
  b.onclick = () => { document.title = 'Late clicked'; }; document.body.append(b);">Reveal</button>
<button class="twin" onclick="document.title = 'Twin 1'">Twin 1</button>
<button class="twin" onclick="document.title = 'Twin 2'">Twin 2</button>
</body></html>
"""


def _run(root: Path, env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PYTHONPATH": str(REPO)},
    )


class Stack:
    def __init__(self, root: Path, env: dict[str, str], up: dict) -> None:
        self.root, self.env, self.up = root, env, up
        self.key = up["key"]

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return _run(self.root, self.env, *args, timeout=timeout)

    def json(self, *args: str, ok: bool = True) -> dict:
        res = self.cli(*args, "--json")
        if ok:
            assert res.returncode == 0, res.stderr + res.stdout
        return json.loads(res.stdout)

    def sql(self, sql: str, params: list) -> list[dict]:
        from legible.store import open_store

        store = open_store(self.root / ".legible", collector_url=self.up["endpoints"]["otlp-http"], worktree=self.key)
        return store.query(sql, params).dicts()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("browser")
    files = {}
    src = REPO / "examples" / "shop"
    for f in src.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts and f.name != "legible.toml":
            files[str(f.relative_to(src))] = f.read_text()
    files["static/throw.html"] = THROW_HTML
    files["static/later.html"] = LATER_HTML
    files["static/moving.html"] = MOVING_HTML
    files["static/late.html"] = LATE_HTML
    files["journeys/scripted.py"] = SCRIPTED_JOURNEY
    root = make_repo(base / "shop", TOML, files)
    env = {**os.environ, "XDG_STATE_HOME": str(base / "state"), "XDG_CACHE_HOME": str(base / "cache")}
    res = _run(root, env, "up", "--wait", "--browser", "--timeout", "60", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    s = Stack(root, env, json.loads(res.stdout))
    yield s
    _run(root, env, "down")


def _chromium_procs(key: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if "chrom" in (p.info["name"] or "") and p.environ().get("LEGIBLE_STACK") == key:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def test_chromium_ready_after_app_with_no_cdp_port_and_a_private_socket(stack: Stack) -> None:
    svc = stack.up["services"]["chromium"]
    assert svc["status"] == "idle" and svc["role"] == "browser"
    assert svc["ready_ms"] > 0  # how fast: benchmarks/bench_browser.py
    assert not svc["port"] and stack.up["warnings"] == []
    assert stack.json("status")["services"]["chromium"]["status"] == "idle"  # lazy: no Chromium before a call
    assert _chromium_procs(stack.key) == []
    first = stack.cli("browser", "status")
    assert first.returncode == 0 and "started Chromium for this stack" in first.stderr, first.stderr
    assert "started Chromium" not in stack.cli("browser", "status").stderr  # said once
    assert stack.json("status")["services"]["chromium"]["status"] == "ready"
    procs = _chromium_procs(stack.key)
    assert procs, "no chromium process carries the stack marker"
    main = [p for p in procs if "--user-data-dir" in " ".join(p.cmdline()) and "--type=" not in " ".join(p.cmdline())]
    assert len(main) == 1 and "--remote-debugging-pipe" in main[0].cmdline()
    listening = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening == [], f"chromium listens on {listening}: CDP must go over the pipe"
    from legible.browser.client import socket_path

    sock = socket_path(stack.root / ".legible")
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o600
    assert stack.json("browser", "status")["cdp_port"] is None


def test_open_snapshot_fill_by_ref_submit_screenshot(stack: Stack) -> None:
    res = stack.cli("browser", "open", "/order")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("opened http://127.0.0.1:") and "Place an order" in res.stdout
    snap = stack.json("browser", "snapshot")
    assert snap["bytes"] < 2048 and Path(snap["path"]).read_text() == snap["text"]
    refs = dict(re.findall(r'(?:textbox|button|spinbutton) "([^"]+)" \[ref=(e\d+)\]', snap["text"]))
    assert {"Name", "Email", "Quantity", "Place order"} <= set(refs), snap["text"]
    # each call is a new process: the tab and the refs of the last snapshot persist between them
    assert stack.cli("browser", "fill", refs["Name"], "Grace Hopper").returncode == 0
    assert stack.cli("browser", "fill", refs["Email"], "grace@example.com").returncode == 0
    assert stack.cli("browser", "fill", "#product_id", "Milk jug").returncode == 0
    form = stack.json("browser", "snapshot", "--selector", "form")
    assert 'textbox "Name" [ref=' in form["text"] and ": Grace Hopper" in form["text"]
    click = stack.json("browser", "click", refs["Place order"])
    assert click["navigated"] and "/orders/" in click["url"]
    status = stack.json("browser", "status")
    assert status["url"] == click["url"] and "confirmed" in status["title"]
    shot = stack.cli("browser", "screenshot")
    assert shot.returncode == 0 and "base64" not in shot.stdout and len(shot.stdout) < 300
    path = Path(shot.stdout.strip().rsplit(": ", 1)[1])
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    from PIL import Image, ImageChops

    view = stack.json("browser", "screenshot")  # the viewport: captured while its size is read
    whole = stack.json("browser", "screenshot", "--full")  # a clip of the page, which fits the viewport here
    with Image.open(view["path"]) as a, Image.open(whole["path"]) as b:
        assert a.size == (view["width"], view["height"]) == (1280, 800) == b.size
        diff = ImageChops.difference(a.convert("L"), b.convert("L"))
        assert max(diff.getextrema()) < 32, diff.getbbox()  # the same pixels, up to JPEG noise
    full = stack.json("browser", "screenshot", "--full", "--png")
    assert Path(full["path"]).read_bytes()[:4] == b"\x89PNG"
    assert max(full["width"], full["height"]) <= 1568
    # a stale ref is a usage error with a hint, not a hang
    stale = stack.cli("browser", "click", refs["Name"])
    assert stale.returncode == 2 and "legible browser snapshot" in stale.stderr


@pytest.mark.parametrize(
    ("action", "lands_on", "title"),
    [
        (["click", "#timer"], "/orders", "Orders"),
        (["click", "#promise"], "/order", "Place an order"),
        (["press", "Enter", "--target", "#field"], "/", "Products"),
        (["click", "#stay"], "/static/later.html", "Stayed"),
    ],
)
def test_an_action_waits_for_the_navigation_its_handlers_start(
    stack: Stack, action: list[str], lands_on: str, title: str
) -> None:
    """A handler that navigates from a timer or a promise: the answer is the new page, loaded, not the old one."""
    assert stack.cli("browser", "open", "/static/later.html").returncode == 0
    doc = stack.json("browser", *action)
    assert doc["url"] == stack.up["endpoints"]["app"] + lands_on
    assert doc["navigated"] is (lands_on != "/static/later.html")
    assert doc["title"].startswith(title), doc["title"]
    status = stack.json("browser", "status")
    assert (status["url"], status["title"]) == (doc["url"], doc["title"])


def test_a_key_press_with_no_target_waits_for_the_navigation_its_handlers_start(stack: Stack) -> None:
    # `press KEY` alone goes to the focused element through page.keyboard.press, which waits for no navigation:
    # the agent arms a watch in the page before the key, so a navigation the key's handlers request is waited for
    app = stack.up["endpoints"]["app"]
    assert stack.cli("browser", "open", "/static/later.html").returncode == 0
    assert stack.cli("browser", "click", "#field").returncode == 0
    doc = stack.json("browser", "press", "Enter")  # the field's keydown handler navigates from a timer
    assert (doc["url"], doc["navigated"]) == (app + "/", True) and doc["title"].startswith("Products"), doc
    # Enter in a form's field submits it (implicit submission, a POST): the answer is the order's page, loaded
    assert stack.cli("browser", "open", "/order").returncode == 0
    for field, text in (("#name", "Ada Lovelace"), ("#product_id", "Milk jug"), ("#email", "ada@example.com")):
        assert stack.cli("browser", "fill", field, text).returncode == 0
    doc = stack.json("browser", "press", "Enter")  # the email field has the focus
    assert doc["navigated"] and "/orders/" in doc["url"] and "confirmed" in doc["title"], doc
    # a key that navigates nowhere answers at once, on the same page
    doc = stack.json("browser", "press", "Tab")
    assert not doc["navigated"] and "/orders/" in doc["url"], doc


def test_calls_at_once_after_a_navigation_act_on_the_new_page(stack: Stack) -> None:
    # after each answer that follows a navigation the agent prepares the new document for locators in the
    # background (Agent.prepare_next); a call sent at once (no process start between, as here) runs beside that
    # and must still act on the new page: its snapshot's refs hold, the field filled is the new page's, the option
    # picked is kept
    from legible.browser.client import call

    state = stack.root / ".legible"
    for i in range(3):
        call(state, "open", {"url": "/"})
        call(state, "click", {"target": "text=Espresso cup"})  # navigates to the product
        nav = call(state, "click", {"target": "text=Order this"})  # navigates to the order form
        assert nav["navigated"] and "/order" in nav["url"], nav
        refs = dict(re.findall(r'textbox "([^"]+)" \[ref=(e\d+)\]', call(state, "snapshot", {})["text"]))
        filled = call(state, "fill", {"target": refs["Name"], "text": f"Ada {i}"})  # a ref of the new page's snapshot
        assert "/order" in filled["url"], filled
        call(state, "fill", {"target": "#product_id", "text": "Milk jug"})
        form = call(state, "snapshot", {"selector": "form"})["text"]
        assert 'textbox "Name" [ref=' in form and f": Ada {i}" in form, form
        assert re.search(r'option "Milk jug [^"]*" \[selected\]', form), form


def test_a_click_on_an_element_in_a_css_transition_lands_on_it_where_it_stops(stack: Stack) -> None:
    # Playwright's actionability checks stay (no force=True): "stable" waits until the button's box holds for two
    # frames, then the mouse goes to where it stopped; a click aimed where it was lands on the decoy instead
    from legible.browser.client import call

    state = stack.root / ".legible"
    for _ in range(3):
        call(state, "open", {"url": "/static/moving.html"})
        call(state, "click", {"target": "#start"})
        done = call(state, "click", {"target": "#go"})  # sent at once: the button is sliding
        assert done["title"] == "Hit at 920", done


def test_a_target_that_matches_nothing_is_an_error_and_nothing_is_clicked_later(stack: Stack) -> None:
    # `click` sends the match count beside the click (Agent.act): when nothing matches, the click (still waiting
    # for an element) is aborted before the error is answered, so an element that appears afterwards within the
    # click's timeout is not clicked; the answers are the ones a count before the click gave
    from legible._errors import UsageError
    from legible.browser.client import call

    state = stack.root / ".legible"
    call(state, "open", {"url": "/static/late.html"})
    with pytest.raises(UsageError, match=r"nothing on http://\S+/static/late.html matches '#late'") as err:
        call(state, "click", {"target": "#late", "timeout_ms": 3000})
    assert "legible browser snapshot" in err.value.hint
    assert call(state, "click", {"target": "#reveal"})["title"] == "Late"  # #late is on the page from now on
    deadline = time.monotonic() + 4  # past the aborted click's 3 s: an unaborted one would have clicked #late
    while time.monotonic() < deadline:
        assert call(state, "status")["title"] == "Late"
    assert call(state, "click", {"target": "#late"})["title"] == "Late clicked"  # it was clickable all along

    call(state, "open", {"url": "/static/late.html"})
    twin = call(state, "click", {"target": ".twin"})
    assert (twin["target"], twin["title"]) == (".twin (first of 2 matches)", "Twin 1")
    with pytest.raises(UsageError, match=r"bad selector 'role=button\[name=': Locator.count: InvalidSelectorError"):
        call(state, "click", {"target": "role=button[name="})
    with pytest.raises(UsageError, match=r"ref e9999 is not on the page"):
        call(state, "click", {"target": "e9999"})
    with pytest.raises(UsageError, match=r"nothing on \S+ matches '#late'"):
        call(state, "fill", {"target": "#late", "text": "x"})
    with pytest.raises(UsageError, match=r"nothing on \S+ matches '#late'"):
        call(state, "snapshot", {"selector": "#late"})
    res = stack.cli("browser", "click", "#nothing-here")
    assert res.returncode == 2 and res.stderr.startswith("error: nothing on "), res.stderr


def test_snapshots_of_the_shop_are_small(stack: Stack) -> None:
    for path in ("/", "/products/1", "/order", "/orders"):
        assert stack.cli("browser", "open", path).returncode == 0
        snap = stack.json("browser", "snapshot")
        assert 0 < snap["bytes"] < 2048, (path, snap["bytes"])
        assert snap["refs"] >= 4


def test_network_and_vitals(stack: Stack) -> None:
    stack.json("browser", "network")  # reset "since the last call"
    stack.cli("browser", "open", "/slow?ms=600")
    stack.cli("browser", "open", "/error")
    net = stack.json("browser", "network")
    assert any(r["status"] == 500 and r["url"].endswith("/error") for r in net["failed"])
    assert any(r["url"].endswith("/slow?ms=600") and r["ms"] >= 600 for r in net["slow"])
    assert stack.json("browser", "network")["requests"] == 0
    stack.cli("browser", "open", "/")
    v = stack.json("browser", "vitals")
    assert v["load_ms"] > 0 and v["ttfb_ms"] is not None and v["lcp_ms"] is not None and v["cls"] is not None


def test_js_error_in_console_and_in_the_store(stack: Stack) -> None:
    stack.json("browser", "console")  # reset
    assert stack.cli("browser", "open", "/static/throw.html").returncode == 0
    out = stack.cli("browser", "console")
    assert out.returncode == 0
    assert "Uncaught Error: boom from the test page" in out.stdout
    assert re.search(r"throw\.html:\d+:\d+", out.stdout), out.stdout
    assert "a warning from the test page" in out.stdout
    assert stack.json("browser", "console")["errors"] == 0  # only new ones
    rows = wait_until(
        lambda: stack.sql(
            "SELECT level, body, source FROM logs WHERE service = 'browser' AND body LIKE ?",
            ["%boom from the test page%"],
        ),
        10,
        "the page's uncaught error stored as a browser log line",
        every=0.2,
    )
    assert rows[0]["level"] == "error" and rows[0]["source"] == "browser"
    logs = stack.cli("logs", "--service", "browser", "--level", "error")
    assert "boom from the test page" in logs.stdout, logs.stdout + logs.stderr


def test_journey_passes_and_its_trace_holds_the_backend(stack: Stack) -> None:
    listed = stack.cli("journey", "list")
    assert "checkout" in listed.stdout and "broken" in listed.stdout
    doc = stack.json("journey", "run", "checkout")
    assert doc["ok"] and len(doc["steps"]) == 7 and all(s["ok"] for s in doc["steps"])
    assert doc["backend"]["spans"] >= 5 and doc["backend"]["slowest"]
    spans = stack.sql("SELECT span_id, parent_span_id, service, name FROM spans WHERE trace_id = ?", [doc["trace_id"]])
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [(r["service"], r["name"]) for r in roots] == [("browser", "journey checkout")]
    backend = [s for s in spans if s["service"] != "browser"]
    assert {"POST /order", "order.place"} <= {s["name"] for s in backend}
    for s in backend:  # every backend span hangs under a step span under the root
        p = s
        while p["service"] != "browser":
            p = by_id[p["parent_span_id"]]
        assert p["name"].startswith("step ") and p["parent_span_id"] == roots[0]["span_id"]
    text = stack.cli("journey", "run", "checkout")
    assert text.returncode == 0 and "journey checkout: passed" in text.stdout and "slowest" in text.stdout


def test_a_journey_key_press_waits_for_the_navigation_its_handler_starts(stack: Stack) -> None:
    doc = stack.json("journey", "run", "keys")  # Enter in #field navigates to / from a setTimeout(0)
    assert doc["ok"] and doc["url"] == stack.up["endpoints"]["app"] + "/", doc


def test_broken_journey_fails_at_the_right_step(stack: Stack) -> None:
    res = stack.cli("journey", "run", "broken")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "journey broken: FAILED" in res.stdout
    assert "reason: step 3 expect_text: 'Thank you': not visible after 1000 ms" in res.stdout
    shot = re.search(r"screenshot: (\S+)", res.stdout)
    assert shot and Path(shot[1]).is_file()
    doc = stack.json("journey", "run", "broken", ok=False)
    assert doc["failed"]["n"] == 3 and len(doc["steps"]) == 3  # step 4 never ran


def test_recorded_journey_is_a_small_playable_video_with_chapters(stack: Stack) -> None:
    from legible.browser._video import frame_rgb, probe

    doc = stack.json("journey", "run", "short", "--record")
    v = doc["video"]
    assert v and not v.get("error"), v
    video = Path(v["video"])
    info = probe(video)
    assert info["codec"] == "h264" and 1.0 < info["duration_s"] < 20
    assert info["chapters"] == len(v["chapters"]) >= 4
    assert video.stat().st_size < 1_000_000
    assert Path(v["gif"]).read_bytes()[:6] in (b"GIF89a", b"GIF87a") and Path(v["poster"]).is_file()
    # every chapter's card (a dark blue full-viewport card) is on screen 0.3 s into its chapter: the card has a
    # captured frame of its own, where its chapter starts, held 0.7 s (1 s for the journey's title card)
    seen = []
    for ch in v["chapters"]:
        w, h, px = frame_rgb(video, ch["start_s"] + 0.3)
        r, g, b = (sum(px[i::3]) / (w * h) for i in range(3))
        seen.append((ch["title"], b > 90 and b > r + 50, round(r), round(g), round(b)))
    assert all(card for _, card, *_ in seen), seen
    # and the page itself, not a card, is on screen between the cards (the walk is in the video)
    w, h, px = frame_rgb(video, v["chapters"][-1]["start_s"] - 0.1)
    r, g, b = (sum(px[i::3]) / (w * h) for i in range(3))
    assert not (b > 90 and b > r + 50), (r, g, b)


def test_a_journey_written_as_a_python_script_runs_traced(stack: Stack) -> None:
    doc = stack.json("journey", "run", "scripted")
    assert doc["ok"], doc
    assert [st["title"] for st in doc["steps"]] == ["open the order form", "fill and submit", "see the confirmation"]
    assert doc["backend"]["spans"] >= 2  # GET /order, POST /order, ... under the script's trace
    rows = stack.sql("SELECT name FROM spans WHERE trace_id = ? AND parent_span_id IS NULL", [doc["trace_id"]])
    assert [r["name"] for r in rows] == ["journey scripted"]


def test_manual_recording_around_browser_commands(stack: Stack) -> None:
    from legible.browser._video import probe

    assert stack.cli("browser", "record", "start").returncode == 0
    assert stack.json("browser", "status")["recording"] is True
    stack.cli("browser", "record", "chapter", "The home page")
    stack.cli("browser", "open", "/")
    stack.cli("browser", "record", "chapter", "The order form")
    stack.cli("browser", "open", "/order")
    doc = stack.json("browser", "record", "stop")
    info = probe(Path(doc["video"]))
    assert info["codec"] == "h264" and info["duration_s"] > 0.5 and info["chapters"] == 2
    assert Path(doc["gif"]).is_file() and Path(doc["poster"]).is_file()
    stopped_twice = stack.cli("browser", "record", "stop")
    assert stopped_twice.returncode == 2 and "no recording is running" in stopped_twice.stderr


def test_down_leaves_no_chromium(stack: Stack) -> None:
    assert _chromium_procs(stack.key)
    res = stack.cli("down")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: _chromium_procs(stack.key) == [], 10, "no chromium process of the stack after down")
    assert not (stack.root / ".legible" / "tmp").exists()  # the profile and temp files go at down
    profile = str(stack.root / ".legible" / "tmp" / "browser-profile")
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(profile in a for a in p.info["cmdline"] or []):
                left.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    assert left == []
