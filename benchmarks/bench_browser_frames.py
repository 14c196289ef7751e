"""Chromium frame pacing against browser call latency: `python benchmarks/bench_browser_frames.py` (about 2 min).

Issue 12 asks for browser calls at most 2x `legible --help`. At 60 Hz a `click` waits for Playwright's
"stable" check (the same box in two consecutive animation frames) and a screenshot for a painted frame, so
switches that lift Chromium's frame pacing look like a lever. This bench measures, for each set of switches
below, in the same run and on the same machine:

- warm calls through the browser agent (its Unix socket, as `legible browser` sends them, with the process
  start taken away): `click #name` and `screenshot` on the example shop's `/order`, and the first `fill`
  after `open` (a new document), median of N; every set's agent runs at once and the calls go round robin,
  so a change of load on this shared machine hits every set alike;
- the cost: CPU seconds Chromium's processes (browser, renderer, GPU and utility helpers) use during 10 s
  on the idle `/order` page and on a page with one running CSS animation (a spinner), read from
  ``/proc`` through psutil.

Each set launches its own agent and Chromium (`legible.browser.agent`, with the switches appended to
:func:`legible.browser.chromium_args`); the shop runs once for all of them. Switches, from
https://peter.sh/experiments/chromium-command-line-switches/: ``--disable-frame-rate-limit`` (frames are
produced back to back instead of at the display rate), ``--disable-gpu-vsync``.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from _report import record, venv_env

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
N = 20
CPU_WINDOW_S = 10.0
SETS: dict[str, list[str]] = {
    "default": [],
    "--disable-frame-rate-limit": ["--disable-frame-rate-limit"],
    "--disable-gpu-vsync": ["--disable-gpu-vsync"],
    "both": ["--disable-frame-rate-limit", "--disable-gpu-vsync"],
}
#: One element turning forever (a CSS animation, as a loading spinner): what a page left animating costs.
SPINNER = (
    "data:text/html,<title>spinner</title><style>@keyframes r{to{transform:rotate(360deg)}}"
    "div{width:40px;height:40px;border:4px solid %23ccc;border-top-color:%23333;border-radius:50%25;"
    "animation:r 1s linear infinite}</style><div></div>"
)
#: The agent's entry point with extra Chromium switches appended (argv[1]: a JSON list), then its own flags.
AGENT = """
import json, sys
import legible.browser as b
extra = json.loads(sys.argv.pop(1))
base = b.chromium_args
b.chromium_args = lambda cdp_port=None: [*base(cdp_port), *extra]
from legible.browser.agent import main
main(sys.argv[1:])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not ready after {timeout:g} s")
        time.sleep(0.05)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def chromium_cpu_s(pid: int) -> float:
    """User + system CPU seconds of Chromium's browser process and its descendants so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


class Agent:
    """A browser agent with extra Chromium switches, in a temp state directory; stop it with :meth:`stop`."""

    def __init__(self, extra: list[str], app_url: str, env: dict[str, str], tmp: Path) -> None:
        from legible.browser import find_chromium

        self.state = tmp / ".legible"
        self.state.mkdir(parents=True)
        self.log = (tmp / "agent.log").open("w")
        argv = [sys.executable, "-c", AGENT, json.dumps(extra), "--state-dir", str(self.state), "--app-url", app_url]
        argv += ["--chromium", str(find_chromium())]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def call(self, op: str, args: dict[str, object]) -> float:
        """Send one request; return how long the answer took, in ms."""
        from legible.browser.client import call

        t0 = time.perf_counter()
        call(self.state, op, args)
        return (time.perf_counter() - t0) * 1000

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.log.close()


def measure(agents: dict[str, Agent]) -> dict[str, dict[str, float]]:
    """Warm call latencies (round robin over the agents) then Chromium's CPU (one agent at a time)."""
    from legible.browser.client import pid_file, socket_path

    for agent in agents.values():
        wait_for(lambda a=agent: socket_path(a.state).exists(), "browser agent")
        agent.call("open", {"url": "/order"})
    figs = ("click", "screenshot", "fill after open")
    times: dict[str, dict[str, list[float]]] = {name: {f: [] for f in figs} for name in agents}
    for i in range(N):
        for name, agent in agents.items():  # round robin: a change of load hits every set alike
            t = times[name]
            t["click"].append(agent.call("click", {"target": "#name"}))
            t["screenshot"].append(agent.call("screenshot", {}))
            if i % 2:
                agent.call("open", {"url": "/order"})
                t["fill after open"].append(agent.call("fill", {"target": "#name", "text": "Ada"}))
    out = {name: {f: statistics.median(v) for f, v in t.items()} for name, t in times.items()}
    for name, agent in agents.items():
        pid = int(pid_file(agent.state).read_text())
        for fig, url in (("cpu idle page", "/order"), ("cpu spinner page", SPINNER)):
            agent.call("open", {"url": url})
            time.sleep(1.0)  # past the load's own work
            c0 = chromium_cpu_s(pid)
            time.sleep(CPU_WINDOW_S)  # the measured window itself, not a wait for a state
            out[name][fig] = chromium_cpu_s(pid) - c0
        agent.call("open", {"url": "about:blank"})  # no spinner left running while the next set is measured
    return out


def main() -> None:
    env = venv_env()
    port = free_port()
    shop = REPO / "examples" / "shop"
    app = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=shop,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(app_url + "/healthz"), "the example shop")
        with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
            agents = {
                name: Agent(extra, app_url, env, Path(tmp) / str(i)) for i, (name, extra) in enumerate(SETS.items())
            }
            try:
                results = measure(agents)
            finally:
                for agent in agents.values():
                    agent.stop()
    finally:
        app.terminate()
        app.wait(10)
    base = results["default"]
    print(f"warm calls through the agent, median of {N} (`default`: the switches legible launches Chromium with):")
    for name, r in results.items():
        for fig in ("click", "screenshot", "fill after open"):
            record(f"{fig} [{name}]", r[fig], "ms", baseline=base[fig], baseline_name="default")
    print(f"Chromium CPU seconds per {CPU_WINDOW_S:g} s (browser + helpers):")
    for name, r in results.items():
        for fig in ("cpu idle page", "cpu spinner page"):
            record(
                f"{fig} [{name}]",
                r[fig],
                "s",
                baseline=base[fig] or None,
                baseline_name="default",
                target="twenty stacks share 2 cores",
            )


if __name__ == "__main__":
    main()
