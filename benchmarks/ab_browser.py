"""Browser calls, this tree against another revision, in the same run: `python benchmarks/ab_browser.py --base REV`.

Not a `bench_*` file (``make bench`` does not run it): it needs a revision to compare with. It exports
``REV`` (``git archive``) into a temp directory, boots one stack of the example shop with the browser per
tree (each tree's code: ``PYTHONPATH``, so its CLI, fork server and browser agent), and then calls, round
robin over the two stacks (A: the base revision, B: this tree; each tree first in every other round), so a
change of load on this shared machine hits both alike, each call a new process as an agent runs it:

``python -c pass``, ``legible --help``, ``browser snapshot``, ``browser screenshot``, ``browser click #name``
(no navigation), ``browser open /order`` then ``browser snapshot`` (the first call on a new document),
``browser open /order`` then ``browser fill #name Ada``, and ``browser press Tab``; then ``--journeys`` runs
of the shop's ``checkout`` journey, unrecorded, alternating (its walk's ``duration_ms`` and the sum of its
three click steps, each of which navigates).

Prints, per tree, each call's median of N and its ratio to that tree's ``legible --help`` (issue 12: browser
calls at most 2x), then B against A per call and for the journey. About 3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import record, venv_env

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: (figure, argv after ``legible``); ``None`` is ``python -c pass``. Run in this order, per tree, per round.
CALLS: list[tuple[str, list[str] | None]] = [
    ("python -c pass", None),
    ("legible --help", ["--help"]),
    ("snapshot", ["browser", "snapshot"]),
    ("screenshot", ["browser", "screenshot"]),
    ("click #name", ["browser", "click", "#name"]),
    ("open /order", ["browser", "open", "/order"]),
    ("snapshot after open", ["browser", "snapshot"]),
    ("open /order (2)", ["browser", "open", "/order"]),
    ("fill after open", ["browser", "fill", "#name", "Ada"]),
    ("press Tab", ["browser", "press", "Tab"]),
]


class Tree:
    """One source tree's stack of the example shop (browser on), driven through that tree's CLI."""

    def __init__(self, name: str, src: Path, tmp: Path) -> None:
        from tests.conftest import make_repo

        self.name, self.src = name, src
        files = {}
        shop = REPO / "examples" / "shop"
        for f in shop.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.name != "legible.toml":
                files[str(f.relative_to(shop))] = f.read_text()
        toml = (shop / "legible.toml").read_text()  # the shop's journeys; its [stack] turns the browser on
        self.root = make_repo(tmp / name / "shop", toml, files)
        self.env = venv_env(
            {
                "PYTHONPATH": str(src),
                "XDG_STATE_HOME": str(tmp / name / "state"),
                "XDG_CACHE_HOME": str(tmp / name / "cache"),
                "COLUMNS": "80",
            }
        )
        self.leg = [sys.executable, "-m", "legible.cli.main"]

    def run(self, argv: list[str] | None) -> float:
        """Run one call to its end; return its wall time in ms."""
        full = [sys.executable, "-c", "pass"] if argv is None else [*self.leg, *argv]
        t0 = time.perf_counter()
        out = subprocess.run(full, cwd=self.root, env=self.env, capture_output=True, text=True, check=False)
        ms = (time.perf_counter() - t0) * 1000
        if out.returncode != 0:
            raise SystemExit(f"[{self.name}] {full} exit {out.returncode}: {out.stderr}")
        return ms

    def journey(self, name: str) -> dict[str, Any]:
        """Run journey ``name`` unrecorded; return its ``legible.journey/v1`` document."""
        out = subprocess.run(
            [*self.leg, "journey", "run", name, "--json"], cwd=self.root, env=self.env, capture_output=True, text=True
        )
        doc: dict[str, Any] = json.loads(out.stdout)
        if out.returncode != 0 or not doc.get("ok"):
            raise SystemExit(f"[{self.name}] journey {name} failed: {out.stdout}{out.stderr}")
        return doc

    def up(self) -> None:
        self.run(["up", "--wait", "--browser", "--json"])
        self.run(["browser", "open", "/order"])  # Chromium starts at the first call (lazy browser)

    def down(self) -> None:
        subprocess.run([*self.leg, "down", "--purge"], cwd=self.root, env=self.env, capture_output=True, check=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the revision to compare with (A), e.g. HEAD~1")
    p.add_argument("-n", type=int, default=15, help="rounds (each call's median is over this many)")
    p.add_argument("--journeys", type=int, default=9, help="runs of the checkout journey per tree")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-browser-") as tmp_s:
        tmp = Path(tmp_s)
        base = tmp / "base-src"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        for src in (base, REPO):  # compiled alike before the stacks start: a fork server stops when a module
            # file changes under it, and a first import writing __pycache__ would be such a change
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(src / "legible"), str(src / "clis")], check=True
            )
        trees = [Tree("A", base, tmp), Tree("B", REPO, tmp)]
        times: dict[str, dict[str, list[float]]] = {t.name: {f: [] for f, _ in CALLS} for t in trees}
        try:
            for t in trees:
                t.up()
            for i in range(args.n):
                for t in trees if i % 2 == 0 else trees[::-1]:  # each tree first in every other round
                    for fig, argv in CALLS:
                        times[t.name][fig].append(t.run(argv))
            walks: dict[str, dict[str, list[float]]] = {t.name: {"walk": [], "clicks": []} for t in trees}
            for i in range(args.journeys):
                for t in trees if i % 2 == 0 else trees[::-1]:
                    doc = t.journey("checkout")
                    walks[t.name]["walk"].append(doc["duration_ms"])
                    walks[t.name]["clicks"].append(sum(s["ms"] for s in doc["steps"] if s["action"] == "click"))
        finally:
            for t in trees:
                t.down()
    med = {name: {f: statistics.median(v) for f, v in figs.items()} for name, figs in times.items()}
    print(f"median of {args.n} rounds, each call a new process, round robin over A ({args.base}) and B (this tree):")
    print(f"{'call':22} {'A ms':>7} {'A/help':>7} {'B ms':>7} {'B/help':>7} {'B/A':>6}")
    for fig, _ in CALLS:
        a, b = med["A"][fig], med["B"][fig]
        ha, hb = med["A"]["legible --help"], med["B"]["legible --help"]
        print(f"{fig:22} {a:7.1f} {a / ha:6.2f}x {b:7.1f} {b / hb:6.2f}x {b / a:5.2f}x")
    pairs = (
        ("open + snapshot", "open /order", "snapshot after open"),
        ("open + fill", "open /order (2)", "fill after open"),
    )
    for name, first, second in pairs:
        a = statistics.median(x + y for x, y in zip(times["A"][first], times["A"][second], strict=True))
        b = statistics.median(x + y for x, y in zip(times["B"][first], times["B"][second], strict=True))
        print(f"{name:22} {a:7.1f} {'':7} {b:7.1f} {'':7} {b / a:5.2f}x")
    for fig, label in (("walk", "checkout walk (duration_ms)"), ("clicks", "its 3 click steps (ms)")):
        if not args.journeys:  # --journeys 0: the calls only
            break
        a, b = (statistics.median(walks[n][fig]) for n in ("A", "B"))
        print(f"{label:30} A {a:7.1f}  B {b:7.1f}  B/A {b / a:5.2f}x  (median of {args.journeys})")
        record(f"journey {label} [B]", b, "ms", baseline=a, baseline_name=f"A: {args.base}")
    for fig, _ in CALLS[2:]:
        record(f"browser {fig} [B]", med["B"][fig], "ms", baseline=med["A"][fig], baseline_name=f"A: {args.base}")
    print(json.dumps({"medians": med}, indent=None))


if __name__ == "__main__":
    main()
