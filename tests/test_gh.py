"""`legible proof --post` through a stand-in `gh`: GitHub cannot be reached from here, so a small script
plays gh (keeps the PR's comments in a JSON file, applies --jq with the real jq, records every call)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from legible._gh import post_summary
from legible.proof import MARKER

from ._gh_standin import install_gh

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="the stand-in gh applies --jq with jq")


#: Comments already on the PR: bodies with `][` (which broke the old lookup), and a legible comment with one.
EXISTING = [
    {"id": 1, "body": "LGTM, but `a[i][j]` is off by one]["},
    {"id": 2, "body": "[x][y] see above"},
    {"id": 3, "body": f"{MARKER}\n## legible proof: an earlier run, m[0][1] = 2"},
    {"id": 4, "body": "[][][]"},
]


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bindir = tmp_path / "bin"
    install_gh(bindir)
    db, log = tmp_path / "gh.json", tmp_path / "gh.log"
    db.write_text(json.dumps({"comments": EXISTING, "next": 100}))
    monkeypatch.setenv("PATH", f"{bindir}:{monkeypatch.delenv('PATH', raising=False) or '/usr/bin:/bin'}")
    monkeypatch.setenv("FAKE_GH_DB", str(db))
    monkeypatch.setenv("FAKE_GH_LOG", str(log))

    def calls() -> list[list[str]]:
        return [json.loads(line)["args"] for line in log.read_text().splitlines()]

    def comments() -> list[dict]:
        return json.loads(db.read_text())["comments"]

    return monkeypatch, calls, comments


def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "proof" / "20261129T050000Z"
    for rel in ("charts/latency.png", "journeys/checkout/checkout.gif", "journeys/checkout/checkout-poster.jpg"):
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).write_bytes(b"\x89PNG fake image")
    (b / "journeys/checkout/checkout.mp4").write_bytes(b"fake video")
    (b / "summary.md").write_text(
        f"{MARKER}\n## legible proof: PASS\n\n![latency](charts/latency.png)\n"
        "![checkout: checkout.gif](journeys/checkout/checkout.gif)\n"
        "![checkout: checkout-poster.jpg](journeys/checkout/checkout-poster.jpg)\n"
        "- [checkout: checkout.mp4](journeys/checkout/checkout.mp4)\n"
        "a `b[0][1]` in the body ][\n"
    )
    return b


def test_old_gh_updates_the_marked_comment_in_place_with_media_base(gh, tmp_path: Path) -> None:
    monkeypatch, calls, comments = gh
    monkeypatch.setenv("FAKE_GH_VERSION", "2.45.0")
    b = bundle(tmp_path)
    res = post_summary(b / "summary.md", cwd=b, marker=MARKER, media_base="https://artifacts.example/run-1/")
    assert res == {"pr": 7, "repo": "acme/shop", "comment_id": 3, "action": "updated", "attached": []}
    lookups = [c for c in calls() if c[:1] == ["api"] and "--jq" in c]  # the lookup: one gh api call with --jq
    assert len(lookups) == 1 and lookups[0][:2] == ["api", "--paginate"]
    assert lookups[0][-1] == "repos/acme/shop/issues/7/comments"
    assert not any(c[:2] == ["pr", "comment"] for c in calls())
    marked = [c for c in comments() if MARKER in c["body"]]
    assert [c["id"] for c in marked] == [3]
    assert "![latency](https://artifacts.example/run-1/charts/latency.png)" in marked[0]["body"]
    assert "a `b[0][1]` in the body ][" in marked[0]["body"]
    # posting again finds its own comment (whose body now has `][`) and updates it: still one
    res = post_summary(b / "summary.md", cwd=b, marker=MARKER)
    assert (res["comment_id"], res["action"]) == (3, "updated")
    assert [c["id"] for c in comments()] == [1, 2, 3, 4]


def test_gh_2_99_attaches_the_images_and_keeps_one_comment(gh, tmp_path: Path) -> None:
    monkeypatch, calls, comments = gh
    monkeypatch.setenv("FAKE_GH_VERSION", "2.99.0")
    b = bundle(tmp_path)
    res = post_summary(b / "summary.md", cwd=b, marker=MARKER, media_base="https://artifacts.example/run-2/")
    images = ["charts/latency.png", "journeys/checkout/checkout.gif", "journeys/checkout/checkout-poster.jpg"]
    assert res == {"pr": 7, "repo": "acme/shop", "comment_id": 100, "action": "replaced", "attached": images}
    comment = next(c for c in calls() if c[:2] == ["pr", "comment"])
    assert comment[:5] == ["pr", "comment", "7", "--body-file", "summary.posted.md"]
    assert comment[5:] == [a for f in images for a in ("--attach", f)]
    assert ["api", "-X", "DELETE", "repos/acme/shop/issues/comments/3"] in calls()
    marked = [c for c in comments() if MARKER in c["body"]]
    assert [c["id"] for c in marked] == [100]
    body = marked[0]["body"]
    assert "![latency](https://github.com/user-attachments/assets/0)" in body
    assert "(https://github.com/user-attachments/assets/2)" in body
    assert "- [checkout: checkout.mp4](https://artifacts.example/run-2/journeys/checkout/checkout.mp4)" in body
    # the next run finds comment 100 (its body has `][`) and replaces it: never two legible comments
    res = post_summary(b / "summary.md", cwd=b, marker=MARKER)
    assert (res["comment_id"], res["action"]) == (101, "replaced")
    assert [c["id"] for c in comments() if MARKER in c["body"]] == [101]
    assert [c["id"] for c in comments()][:3] == [1, 2, 4]
