"""A stand-in for GitHub's `gh` CLI, shared by the tests of `legible proof --post`.

GitHub cannot be reached from here, so this script plays gh: it keeps the PR's comments in a JSON file
(``FAKE_GH_DB``), applies ``--jq`` with the real jq page by page as ``gh --paginate`` does, records every call
(``FAKE_GH_LOG``, optional), reports version ``FAKE_GH_VERSION`` (default 2.45.0) and is authenticated unless
``FAKE_GH_AUTH=0``.
"""

from __future__ import annotations

from pathlib import Path

STAND_IN_GH = r"""#!/usr/bin/env python3
import json, os, re, subprocess, sys
db, log = os.environ["FAKE_GH_DB"], os.environ.get("FAKE_GH_LOG")
state = json.load(open(db)) if os.path.exists(db) else {"comments": [], "next": 100}
args = sys.argv[1:]
if log:
    with open(log, "a") as f:
        f.write(json.dumps({"args": args, "cwd": os.getcwd()}) + "\n")
out = ""
def page(items, jq):
    # gh --paginate --jq runs the filter on every page of 2 comments and prints the results in order
    text = ""
    for i in range(0, len(items), 2):
        chunk = json.dumps(items[i : i + 2])
        text += subprocess.run(["jq", "-r", jq], input=chunk, capture_output=True, text=True, check=True).stdout
    return text.strip()
if args == ["--version"]:
    out = f"gh version {os.environ.get('FAKE_GH_VERSION', '2.45.0')} (2026-10-01)\nhttps://github.com/cli/cli/releases/latest"
elif args[:2] == ["auth", "status"]:
    sys.exit(0 if os.environ.get("FAKE_GH_AUTH", "1") == "1" else 1)
elif args[:2] == ["repo", "view"]:
    out = "acme/shop"
elif args[:2] == ["pr", "view"]:
    out = "7"
elif args[:2] == ["pr", "comment"]:
    body = open(args[args.index("--body-file") + 1]).read()
    attached = [args[i + 1] for i, a in enumerate(args) if a == "--attach"]
    for n, path in enumerate(attached):
        assert os.path.isfile(path), path
        body = body.replace(f"]({path})", f"](https://github.com/user-attachments/assets/{n})")
    c = {"id": state["next"], "body": body}
    state["next"] += 1
    state["comments"].append(c)
    out = f"https://github.com/acme/shop/pull/7#issuecomment-{c['id']}"
elif args[0] == "api":
    jq = args[args.index("--jq") + 1] if "--jq" in args else None
    rest = [a for a in args[1:] if a not in ("--paginate", "--jq", jq)]
    body = next((a.split("=@", 1)[1] for a in rest if a.startswith("body=@")), None)
    if rest[:2] == ["-X", "PATCH"]:
        cid = int(rest[2].rsplit("/", 1)[1])
        for c in state["comments"]:
            if c["id"] == cid:
                c["body"] = open(body).read()
        out = "{}"
    elif rest[:2] == ["-X", "DELETE"]:
        cid = int(rest[2].rsplit("/", 1)[1])
        state["comments"] = [c for c in state["comments"] if c["id"] != cid]
    elif body is not None:
        c = {"id": state["next"], "body": open(body).read()}
        state["next"] += 1
        state["comments"].append(c)
        out = json.dumps(c)
    else:
        out = page(state["comments"], jq) if jq else json.dumps(state["comments"])
json.dump(state, open(db, "w"))
print(out)
"""


def install_gh(bindir: Path) -> Path:
    """Write the stand-in as ``bindir/gh`` (executable); put ``bindir`` first on PATH to use it."""
    bindir.mkdir(parents=True, exist_ok=True)
    gh = bindir / "gh"
    gh.write_text(STAND_IN_GH)
    gh.chmod(0o755)
    return gh
