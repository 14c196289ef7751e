"""`legible init` on fixtures of real repository shapes: the guessed command, and for the runtimes this
machine has (Node, Python) that `legible up --wait` then boots it."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from legible.config import load_config
from legible.init import NODE_OPTIONS, guess

from .conftest import cli, cli_json, make_repo

NODE_SERVER = """\
const http = require("http");
http.createServer((req, res) => res.end("ok")).listen(Number(process.env.PORT), process.env.HOST);
"""
FLASK_APP = """\
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return "ok"
"""


def repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = make_repo(tmp_path / "r", "", files)
    (root / "legible.toml").unlink()
    return root


def init(root: Path) -> dict:
    code, doc = cli_json(root, "init")
    assert code == 0, doc
    load_config(root)  # what it wrote is a valid config
    return doc


@pytest.mark.parametrize(
    ("files", "command", "instrument"),
    [
        (
            {"package.json": json.dumps({"scripts": {"dev": "vite"}})},
            "npm run dev -- --port $PORT --strictPort --host 127.0.0.1",
            False,
        ),
        (
            {"package.json": json.dumps({"scripts": {"dev": "next dev", "start": "next start"}})},
            "npm run dev -- --port $PORT --hostname 127.0.0.1",
            False,
        ),
        ({"package.json": json.dumps({"scripts": {"start": "node server.js"}})}, "npm start", False),
        ({"package.json": json.dumps({"main": "lib/serve.js"}), "lib/serve.js": ""}, "node lib/serve.js", False),
        ({"package.json": "{}", "app.js": ""}, "node app.js", False),
        ({"manage.py": "", "shop/settings.py": ""}, "python manage.py runserver 127.0.0.1:$PORT --noreload", True),
        (
            {"main.py": "from fastapi import FastAPI\napi = FastAPI()\n"},
            "uvicorn main:api --host 127.0.0.1 --port $PORT",
            True,
        ),
        (
            {"app/main.py": "from starlette.applications import Starlette\napp = Starlette()\n"},
            "uvicorn app.main:app --host 127.0.0.1 --port $PORT",
            True,
        ),
        ({"app.py": FLASK_APP}, "flask --app app:app run --host 127.0.0.1 --port $PORT --no-reload", True),
        ({"server.py": "import os\nPORT = int(os.environ['PORT'])\n"}, "python server.py", True),
        ({"shopd/__main__.py": "", "shopd/__init__.py": ""}, "python -m shopd", True),
        ({"go.mod": "module example.com/shop\n", "main.go": ""}, "go run .", False),
        ({"Cargo.toml": "[package]\nname = 'shop'\n", "src/main.rs": ""}, "cargo run", False),
        (
            {"Procfile": "web: gunicorn shop.wsgi --bind 0.0.0.0:$PORT\nworker: celery -A shop worker\n"},
            "gunicorn shop.wsgi --bind 127.0.0.1:$PORT",
            True,
        ),
    ],
    ids=[
        "vite",
        "next",
        "npm-start",
        "node-main",
        "node-app-js",
        "django",
        "fastapi",
        "starlette",
        "flask",
        "python-port",
        "python-m",
        "go",
        "rust",
        "procfile",
    ],
)
def test_guesses_the_command_of_each_stack(
    tmp_path: Path, files: dict[str, str], command: str, instrument: bool
) -> None:
    root = repo(tmp_path, files)
    doc = init(root)
    assert doc["command"] == command
    app = tomllib.loads((root / "legible.toml").read_text())["app"]
    assert app["command"] == command
    assert app.get("instrument", False) is instrument
    assert "0.0.0.0" not in (root / "legible.toml").read_text()


def test_procfile_with_shell_syntax_runs_in_a_shell(tmp_path: Path) -> None:
    root = repo(tmp_path, {"Procfile": "web: bin/migrate && exec gunicorn app:app -b 0.0.0.0:${PORT:-5000}\n"})
    init(root)
    app = tomllib.loads((root / "legible.toml").read_text())["app"]
    assert app["command"] == "bin/migrate && exec gunicorn app:app -b 127.0.0.1:${PORT:-5000}"
    assert app["shell"] is True


def test_node_with_auto_instrumentations_gets_node_options(tmp_path: Path) -> None:
    pkg = {
        "scripts": {"start": "node server.js"},
        "dependencies": {"@opentelemetry/auto-instrumentations-node": "^0.50"},
    }
    root = repo(tmp_path, {"package.json": json.dumps(pkg)})
    init(root)
    app = tomllib.loads((root / "legible.toml").read_text())["app"]
    assert app["env"] == {"NODE_OPTIONS": NODE_OPTIONS} and "instrument" not in app
    without = guess(repo(tmp_path / "other", {"package.json": json.dumps({"scripts": {"start": "node s.js"}})}))
    assert without.env == {} and any(
        "npm install @opentelemetry/auto-instrumentations-node" in n for n in without.notes
    )


def test_compose_file_says_what_to_move_into_services(tmp_path: Path) -> None:
    compose = (
        "services:\n  web:\n    build: .\n  db:\n    image: postgres:16\n    ports: ['5432:5432']\n"
        '  cache:\n    image: "redis:7"\n'
    )
    root = repo(tmp_path, {"compose.yaml": compose, "app.py": FLASK_APP})
    doc = init(root)
    assert doc["command"].startswith("flask --app app:app run")
    text = (root / "legible.toml").read_text()
    assert "# compose.yaml defines: web (build), db (postgres:16), cache (redis:7)" in text
    assert "# [services.db]" in text and "# [services.cache]" in text


def test_unknown_repository_gets_a_placeholder_that_fails_clearly(tmp_path: Path, down_after: list[Path]) -> None:
    root = repo(tmp_path, {"README.md": "hello"})
    doc = init(root)
    assert doc["guessed_from"] == "nothing recognisable (placeholder)"
    down_after.append(root)
    res = cli(root, "up", "--wait", "--timeout", "30", timeout=90)
    assert res.returncode == 4, (res.stdout, res.stderr)  # not ready: the app exited at once
    assert "set [app] command" in res.stderr  # its own message, in the log tail the error shows


@pytest.mark.slow
@pytest.mark.parametrize(
    "files",
    [
        {"package.json": json.dumps({"scripts": {"start": "node server.js"}}), "server.js": NODE_SERVER},
        {"app.py": FLASK_APP},
    ],
    ids=["node", "python-flask"],
)
def test_up_boots_the_guessed_command(tmp_path: Path, files: dict[str, str], down_after: list[Path]) -> None:
    runtime = "npm" if "package.json" in files else "flask"
    if shutil.which(runtime) is None:
        pytest.skip(f"{runtime} is not installed here")
    root = repo(tmp_path, files)
    init(root)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60", timeout=120)
    assert code == 0, doc
    import urllib.request

    assert urllib.request.urlopen(doc["endpoints"]["app"] + "/", timeout=10).read() == b"ok"  # noqa: S310


def test_procfile_hosts_on_all_interfaces_become_loopback_and_others_stay(tmp_path: Path) -> None:
    web = "web: gunicorn app:app -b [::]:$PORT --forwarded-allow-ips 10.0.0.0 --host :: --proxy 192.168.1.10\n"
    root = repo(tmp_path, {"Procfile": web})
    init(root)
    app = tomllib.loads((root / "legible.toml").read_text())["app"]
    assert app["command"] == (
        "gunicorn app:app -b 127.0.0.1:$PORT --forwarded-allow-ips 10.0.0.0 --host 127.0.0.1 --proxy 192.168.1.10"
    )
