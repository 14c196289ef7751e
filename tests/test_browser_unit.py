"""Fast tests of the browser's pure parts: snapshot compaction, ref resolution, the chromium plan, OTLP encoding."""

from __future__ import annotations

from pathlib import Path

from legible.browser import chromium_args, chromium_env
from legible.browser._otlp import Span, encode_spans, traceparent
from legible.browser._snapshot import compact, resolve_ref
from legible.browser.client import browser_tmp_dir

RAW = """\
- generic [active] [ref=f5e1]:
  - banner [ref=f5e2]:
    - paragraph [ref=f5e3]:
      - strong [ref=f5e4]:
        - link "Shop" [ref=f5e5] [cursor=pointer]:
          - /url: /
  - main [ref=f5e14]:
    - heading "Place an order" [level=1] [ref=f5e15]
    - generic [ref=f5e16]:
      - paragraph [ref=f5e17]:
        - generic [ref=f5e18]: Name
        - textbox "Name" [ref=f5e19]
      - paragraph [ref=f5e26]:
        - generic [ref=f5e27]: Quantity
        - spinbutton "Quantity" [ref=f5e28]: "1"
      - paragraph [ref=f5e29]:
        - text: Total
        - button "Place order" [ref=f5e30]
"""


def test_compact_drops_wrappers_labels_and_inert_refs() -> None:
    text, prefix, refs = compact(RAW)
    assert prefix == "f5" and refs == 4
    assert text == (
        "- banner:\n"
        '  - link "Shop" [ref=e5] [url=/]\n'
        "- main:\n"
        '  - heading "Place an order" [level=1]\n'
        '  - textbox "Name" [ref=e19]\n'
        '  - spinbutton "Quantity" [ref=e28]: "1"\n'
        "  - text: Total\n"
        '  - button "Place order" [ref=e30]\n'
    )
    assert len(text) < len(RAW) / 2


def test_compact_empty_page() -> None:
    assert compact("") == ("", "", 0)


def test_resolve_ref_accepts_short_and_prefixed_forms() -> None:
    assert resolve_ref("e19", "f5") == "f5e19"
    assert resolve_ref("@e19", "f5") == "f5e19"
    assert resolve_ref("ref=e19", "f5") == "f5e19"
    assert resolve_ref("f3e2", "f5") == "f3e2"
    assert resolve_ref("text=Order", "f5") is None
    assert resolve_ref("#email", "f5") is None


def test_chromium_flags_open_no_cdp_port_unless_asked_and_then_on_loopback(tmp_path: Path) -> None:
    args = chromium_args()
    assert "--headless=new" in args
    assert not any(a.startswith("--remote-debugging") for a in args)  # Playwright adds --remote-debugging-pipe
    # frames stay at the display rate: unthrottled, one CSS spinner costs 1.7 cores (legible.browser's docstring)
    assert "--disable-frame-rate-limit" not in args and "--disable-gpu-vsync" not in args
    opened = chromium_args(12345)
    assert "--remote-debugging-address=127.0.0.1" in opened and "--remote-debugging-port=12345" in opened
    env = chromium_env(tmp_path / "browser", tmp_path / "tmp")
    assert env["TMPDIR"] == str(tmp_path / "tmp") and env["XDG_CONFIG_HOME"].startswith(str(tmp_path))


def test_traceparent_and_span_encoding() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    tid, sid = "ab" * 16, "cd" * 8
    assert traceparent(tid, sid) == f"00-{tid}-{sid}-01"
    body = encode_spans([Span("journey x", tid, sid, "", 1, 2, {"legible.journey": "x"}, "")], "wt-1")
    req = ExportTraceServiceRequest.FromString(body)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "journey x" and span.trace_id.hex() == tid and not span.parent_span_id
    attrs = {kv.key: kv.value.string_value for kv in req.resource_spans[0].resource.attributes}
    assert attrs == {"service.name": "browser", "legible.worktree": "wt-1"}


def test_chromium_planned_only_with_browser(tmp_path: Path) -> None:
    from legible.config import parse_config
    from legible.lease import Lease
    from legible.plan import build_plan
    from legible.worktree import Worktree

    (tmp_path / "app.py").write_text("")
    cfg = parse_config({"app": {"command": "python app.py"}})
    wt = Worktree(tmp_path, "t-00000000")
    lease = Lease("t-00000000", str(tmp_path), 20000)
    assert "chromium" not in [s.name for s in build_plan(wt, cfg, lease).services]
    plan = build_plan(wt, cfg, lease, browser=True)
    names = [s.name for s in plan.services]
    assert names[-1] == "chromium"
    sp = plan.services[-1]
    assert sp.role == "browser" and sp.depends_on == ["app"] and sp.port == 0
    assert sp.argv[1:3] == ["-m", "legible.browser.agent"] and sp.probe.kind == "log"
    assert not any(a.startswith("--cdp-port") for a in sp.argv)
    assert sp.env["TMPDIR"] == str(browser_tmp_dir(wt.state_dir))
    cfg = parse_config({"app": {"command": "python app.py"}, "stack": {"cdp_port": True}})
    sp = build_plan(wt, cfg, lease, browser=True).services[-1]
    assert sp.port == 20005 and "--cdp-port=20005" in sp.argv


def test_journey_does_not_import_the_agent_and_every_operation_is_a_documented_table_entry() -> None:
    import subprocess
    import sys

    probe = "import sys, legible.browser.journey, legible.browser._ops; print('legible.browser.agent' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # no import cycle: journey and the operations use _common

    from legible.browser._ops import OPS

    assert {"open", "snapshot", "click", "fill", "press", "wait", "screenshot", "console", "network"} <= set(OPS)
    assert {"vitals", "status", "record.start", "record.chapter", "record.stop", "journey"} <= set(OPS)
    for name, fn in OPS.items():
        assert fn.__doc__ and fn.__name__ == "op_" + name.replace(".", "_"), name
